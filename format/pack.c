/* pack.c — index packing before zstd. zstd codes literals with one Huffman table per block over bytes,
 * so for K > 256 the low bytes are grouped by their high bits: each group gets its own block and table,
 * which codes low | high instead of the low byte's marginal (measured in spec/vqz-format.md §6.4). */
#include "format/pack.h"

#include <string.h>

int vqz_pack_high_bits(uint32_t K)
{
    int bits = 0;
    while (bits < 32 && ((uint64_t)1 << bits) < K)
        bits++;
    return bits > 8 ? bits - 8 : 0;
}

/* High values per byte of the high plane: whole values only, so each byte is a tuple that zstd's
 * byte-wise Huffman can code jointly. */
static int high_per_byte(int hb)
{
    if (hb <= 2)
        return 8 / hb;
    if (hb <= 4)
        return 2;
    return 1;
}

size_t vqz_pack_size(uint32_t K, size_t n)
{
    int hb = vqz_pack_high_bits(K);
    if (hb == 0)
        return n;
    size_t per = (size_t)high_per_byte(hb);
    return (n + per - 1) / per + n;
}

void vqz_pack_indices(const uint16_t *idx, size_t n, uint32_t K, uint8_t *out, size_t *seg_sizes, int *nseg)
{
    int hb = vqz_pack_high_bits(K);
    if (hb == 0) {
        for (size_t i = 0; i < n; i++)
            out[i] = (uint8_t)idx[i];
        if (seg_sizes) {
            seg_sizes[0] = n;
            *nseg = 1;
        }
        return;
    }
    int per = high_per_byte(hb);
    size_t high_bytes = (n + (size_t)per - 1) / (size_t)per;
    memset(out, 0, high_bytes);
    size_t count[256] = {0};
    for (size_t i = 0; i < n; i++) {
        unsigned h = idx[i] >> 8;
        out[i / (size_t)per] |= (uint8_t)(h << (hb * (int)(i % (size_t)per)));
        count[h]++;
    }
    size_t start[256];
    size_t pos = high_bytes;
    for (int h = 0; h < (1 << hb); h++) {
        start[h] = pos;
        pos += count[h];
    }
    for (size_t i = 0; i < n; i++)
        out[start[idx[i] >> 8]++] = (uint8_t)(idx[i] & 0xff);
    if (seg_sizes) {
        seg_sizes[0] = high_bytes;
        for (int h = 0; h < (1 << hb); h++)
            seg_sizes[1 + h] = count[h];
        *nseg = 1 + (1 << hb);
    }
}

vqz_status vqz_unpack_indices(const uint8_t *raw, size_t raw_size, uint32_t K, uint16_t *idx, size_t n)
{
    VQZ_FAIL_IF(raw_size != vqz_pack_size(K, n), VQZ_ERR_FORMAT,
                "packed size %zu bytes, expected %zu for %zu indices with K=%u", raw_size, vqz_pack_size(K, n),
                n, K);
    int hb = vqz_pack_high_bits(K);
    if (hb == 0) {
        for (size_t i = 0; i < n; i++) {
            VQZ_FAIL_IF(raw[i] >= K, VQZ_ERR_INDEX_RANGE, "index %u at position %zu is >= K=%u", raw[i], i, K);
            idx[i] = raw[i];
        }
        return VQZ_OK;
    }
    int per = high_per_byte(hb);
    size_t high_bytes = (n + (size_t)per - 1) / (size_t)per;
    unsigned mask = (1u << hb) - 1;
    size_t count[256] = {0};
    for (size_t i = 0; i < n; i++)
        count[(raw[i / (size_t)per] >> (hb * (int)(i % (size_t)per))) & mask]++;
    /* Bits past the last value of the last byte, and the unused top bits of each byte, must be zero so
     * that every index stream has exactly one packed form. */
    for (size_t b = 0; b < high_bytes; b++) {
        size_t vals = (b + 1 < high_bytes || n % (size_t)per == 0) ? (size_t)per : n % (size_t)per;
        unsigned used = (unsigned)(hb * (int)vals);
        if (used < 8)
            VQZ_FAIL_IF(raw[b] >> used, VQZ_ERR_FORMAT, "high-bit plane byte %zu has padding bits set (0x%02x)",
                        b, raw[b]);
    }
    size_t next[256];
    size_t pos = high_bytes;
    for (unsigned h = 0; h <= mask; h++) {
        next[h] = pos;
        pos += count[h];
    }
    for (size_t i = 0; i < n; i++) {
        unsigned h = (raw[i / (size_t)per] >> (hb * (int)(i % (size_t)per))) & mask;
        uint32_t v = (h << 8) | raw[next[h]++];
        VQZ_FAIL_IF(v >= K, VQZ_ERR_INDEX_RANGE, "index %u at position %zu is >= K=%u", v, i, K);
        idx[i] = (uint16_t)v;
    }
    return VQZ_OK;
}
