/* fileio.h — atomic file output shared by the container and bundle writers. */
#ifndef VQZ_FORMAT_FILEIO_H
#define VQZ_FORMAT_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* Write buf[n] to path through a temporary file in the same folder (".NAME.XXXXXX"), then rename it
 * over path. On failure the temporary file is removed and an existing path is left untouched. */
vqz_status vqz_write_file_atomic(const char *path, const uint8_t *buf, size_t n);

#endif
