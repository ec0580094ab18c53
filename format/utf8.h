/* utf8.h — strict UTF-8 validation for the text fields of .vqz files and bundle headers. */
#ifndef VQZ_FORMAT_UTF8_H
#define VQZ_FORMAT_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* 1 when s[n] is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF) and
 * holds no NUL byte; else 0, with *bad_offset (when not NULL) at the first offending byte. */
int vqz_utf8_valid(const uint8_t *s, size_t n, size_t *bad_offset);

#endif
