/* sha256.h — SHA-256 (FIPS 180-4), used to identify a weight bundle inside .vqz files. */
#ifndef VQZ_FORMAT_SHA256_H
#define VQZ_FORMAT_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define VQZ_SHA256_SIZE 32

typedef struct {
    uint32_t h[8];
    uint64_t total;  /* bytes hashed so far */
    uint8_t buf[64]; /* pending partial block */
    size_t used;     /* bytes in buf */
} vqz_sha256_ctx;

void vqz_sha256_init(vqz_sha256_ctx *c);
void vqz_sha256_update(vqz_sha256_ctx *c, const void *data, size_t n);
void vqz_sha256_final(vqz_sha256_ctx *c, uint8_t out[VQZ_SHA256_SIZE]);
/* One-shot digest of n bytes. */
void vqz_sha256(const void *data, size_t n, uint8_t out[VQZ_SHA256_SIZE]);
/* Lower-case hex of a digest into hex[65] (NUL-terminated). */
void vqz_sha256_hex(const uint8_t digest[VQZ_SHA256_SIZE], char hex[2 * VQZ_SHA256_SIZE + 1]);

#endif
