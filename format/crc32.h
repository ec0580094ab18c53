/* crc32.h — CRC-32 (ISO-HDLC, as in zlib/PNG) for .vqz headers, sections and frames. */
#ifndef VQZ_FORMAT_CRC32_H
#define VQZ_FORMAT_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32 of n bytes. */
uint32_t vqz_crc32(const void *data, size_t n);
/* Continue a CRC: vqz_crc32_update(vqz_crc32(a, n), b, m) == CRC of a followed by b. Start from 0. */
uint32_t vqz_crc32_update(uint32_t crc, const void *data, size_t n);

#endif
