/* targets.h — the fuzz target bodies, shared by the libFuzzer harnesses (C, tests/fuzz/fuzz_NAME.c) and the
 * corpus replay in the Catch2 suite (C++, test_format.cpp and test_bundle.cpp). */
#ifndef VQZ_TESTS_FUZZ_TARGETS_H
#define VQZ_TESTS_FUZZ_TARGETS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/bundle.h"
#include "format/bytes.h"
#include "format/container.h"
#include "format/crc32.h"

/* Written in the common subset of C11 and C++14. Each target returns 0, or 1 when it found a wrong
 * result rather than a rejected input (the harness then aborts). */

/* Limits small enough that one input cannot make the fuzzer run out of memory. */
static inline void vqz_fuzz_limits(vqz_limits *lim)
{
    vqz_limits_default(lim);
    lim->max_level_indices = (uint64_t)1 << 20;
    lim->max_chunk_indices = (uint64_t)1 << 18;
    lim->max_alpha_bytes = (uint64_t)1 << 22;
    lim->max_image_pixels = (uint64_t)1 << 22;
    lim->max_header_bytes = (uint64_t)1 << 22;
}

/* Recompute every CRC the way a writer would, following the table layout of spec/vqz-format.md, so that
 * mutated inputs get past the checksums and exercise the parser behind them. */
static inline void vqz_fuzz_repair_crcs(uint8_t *d, size_t n)
{
    if (n < 24)
        return;
    uint64_t hs = vqz_get_u32(d + 12);
    if (hs < 24 || hs > n)
        return;
    uint64_t pos = (uint64_t)vqz_get_u16(d + 16) + 4u * d[19] + d[22];
    uint64_t nsec = vqz_get_u16(d + 20), body = hs;
    for (uint64_t s = 0; s < nsec && pos + 16 <= hs - 4; s++, pos += 16) {
        uint64_t size = vqz_get_u64(d + pos + 8);
        if (body <= n && size <= n - body)
            vqz_put_u32(d + pos + 4, vqz_crc32(d + body, (size_t)size));
        body = size <= n ? body + size : n + 1;
    }
    for (; pos + 12 <= hs - 4; pos += 12) {
        uint64_t comp = vqz_get_u32(d + pos);
        if (body <= n && comp <= n - body)
            vqz_put_u32(d + pos + 8, vqz_crc32(d + body, (size_t)comp));
        body = comp <= n ? body + comp : n + 1;
    }
    vqz_put_u32(d + hs - 4, vqz_crc32(d, (size_t)(hs - 4)));
}

/* A prior for every level of h (counts falling as 1 / (k + 1)), so that modelled frames starting from a
 * prior are decoded too. Returns 0 when out of memory; free with vqz_fuzz_priors_free. */
static inline int vqz_fuzz_priors(const vqz_header *h, vqz_prior *pr)
{
    memset(pr, 0, sizeof(vqz_prior) * VQZ_MAX_LEVELS);
    for (int l = 0; l < h->levels; l++) {
        uint32_t K = h->K[l];
        double *counts = (double *)malloc(sizeof(double) * K);
        uint32_t *f = (uint32_t *)malloc(sizeof(uint32_t) * K);
        int ok = counts && f;
        for (uint32_t k = 0; ok && k < K; k++)
            counts[k] = 1000.0 / (k + 1);
        ok = ok && vqz_prior_from_counts(counts, K, 0.5, f) == VQZ_OK && vqz_prior_init(&pr[l], f, K) == VQZ_OK;
        free(counts);
        free(f);
        if (!ok)
            return 0;
    }
    return 1;
}

static inline void vqz_fuzz_priors_free(vqz_prior *pr)
{
    for (int l = 0; l < VQZ_MAX_LEVELS; l++)
        vqz_prior_free(&pr[l]);
}

/* Parse anything: header, every frame through both paths (level and chunk), sections, statistics. */
static inline int vqz_fuzz_container_once(const uint8_t *data, size_t size)
{
    vqz_limits lim;
    vqz_fuzz_limits(&lim);
    vqz_container *c = NULL;
    if (vqz_container_open_memory(data, size, &lim, &c) != VQZ_OK)
        return 0;
    const vqz_header *h = vqz_container_header(c);
    int bad = 0;
    size_t n = (size_t)vqz_header_level_indices(h);
    uint16_t *grid = (uint16_t *)malloc(n * sizeof *grid);
    uint16_t *part = (uint16_t *)malloc(n * sizeof *part);
    vqz_prior pr[VQZ_MAX_LEVELS];
    int with_prior = vqz_fuzz_priors(h, pr);
    for (int l = 0; with_prior && l < h->levels; l++)
        if (vqz_container_set_prior(c, l, &pr[l]) != VQZ_OK)
            bad = 1;
    if (grid && part) {
        for (int l = 0; l < h->levels; l++) {
            vqz_status s = vqz_container_read_level(c, l, grid, n);
            for (uint32_t ch = 0; ch < vqz_header_chunk_count(h); ch++) {
                size_t cn = (size_t)vqz_header_chunk_indices(h, ch);
                vqz_status sc = vqz_container_read_chunk(c, l, ch, part, cn);
                /* A level reads only if every one of its chunks reads, and they agree. */
                if (s == VQZ_OK && sc != VQZ_OK)
                    bad = 1;
                if (s == VQZ_OK && sc == VQZ_OK) {
                    vqz_chunk_rect r = vqz_header_chunk_rect(h, ch);
                    for (uint32_t p = 0; p < h->grid_planes; p++)
                        for (uint32_t y = 0; y < r.h; y++)
                            if (memcmp(part + ((size_t)p * r.h + y) * r.w,
                                       grid + ((size_t)p * h->grid_height + r.y + y) * h->grid_width + r.x,
                                       r.w * sizeof *part) != 0)
                                bad = 1;
                }
            }
            if (s == VQZ_OK) {
                for (size_t i = 0; i < n; i++)
                    if (grid[i] >= h->K[l])
                        bad = 1;
                vqz_level_stats st;
                if (vqz_container_level_stats(c, l, &st) != VQZ_OK)
                    bad = 1;
            }
        }
    }
    free(grid);
    free(part);
    const char *text;
    size_t len;
    vqz_container_metadata(c, &text, &len);
    if (vqz_container_has_alpha(c)) {
        size_t an = (size_t)vqz_container_alpha_size(c);
        uint8_t *a = (uint8_t *)malloc(an ? an : 1);
        if (a)
            vqz_container_read_alpha(c, a, an);
        free(a);
    }
    vqz_container_free(c);
    vqz_fuzz_priors_free(pr);
    return bad;
}

/* The input as it is, then with its checksums repaired. */
static inline int vqz_fuzz_container(const uint8_t *data, size_t size)
{
    int bad = vqz_fuzz_container_once(data, size);
    uint8_t *copy = (uint8_t *)malloc(size ? size : 1);
    if (copy) {
        memcpy(copy, data, size);
        vqz_fuzz_repair_crcs(copy, size);
        bad |= vqz_fuzz_container_once(copy, size);
        free(copy);
    }
    return bad;
}

/* Parse anything as a bundle; load every float tensor and read the metadata. */
static inline int vqz_fuzz_bundle(const uint8_t *data, size_t size)
{
    vqz_bundle *b = NULL;
    if (vqz_bundle_open_memory(data, size, &b) != VQZ_OK)
        return 0;
    int bad = 0;
    for (int i = 0; i < vqz_bundle_tensor_count(b); i++) {
        vqz_tensor_info t;
        if (vqz_bundle_tensor_at(b, i, &t) != VQZ_OK || t.offset + t.nbytes > size) {
            bad = 1;
            continue;
        }
        float *out = (float *)malloc((size_t)t.numel * sizeof(float) + 1);
        if (out) {
            vqz_status s = vqz_bundle_get_f32(b, t.name, t.ndim, t.shape, out);
            if (s == VQZ_OK && t.dtype != VQZ_DTYPE_F32 && t.dtype != VQZ_DTYPE_F16 && t.dtype != VQZ_DTYPE_BF16)
                bad = 1;
        }
        free(out);
        vqz_tensor_info again;
        if (vqz_bundle_find(b, t.name, &again) != VQZ_OK || again.offset != t.offset)
            bad = 1;
    }
    for (int i = 0; i < vqz_bundle_meta_count(b); i++) {
        const char *k, *v, *v2;
        if (vqz_bundle_meta_at(b, i, &k, &v) != VQZ_OK || vqz_bundle_meta_get(b, k, &v2) != VQZ_OK || v != v2)
            bad = 1;
    }
    vqz_bundle_check_vqz(b);
    vqz_bundle_free(b);
    return bad;
}

/* Round trip: the input drives a header and index streams; write, read back, compare; then the
 * lower-rate prefix must still decode. */
static inline int vqz_fuzz_roundtrip(const uint8_t *data, size_t size)
{
    if (size < 12)
        return 0;
    vqz_header h;
    memset(&h, 0, sizeof h);
    h.media_kind = (data[0] & 1) ? VQZ_MEDIA_AUDIO : VQZ_MEDIA_IMAGE;
    h.levels = (uint8_t)(1 + data[1] % 4);
    for (int l = 0; l < h.levels; l++) {
        uint32_t bits = 1 + (uint32_t)(data[2 + l] % 16);
        /* 2^bits minus up to half of it: every K from 2 to 65536 is reachable */
        h.K[l] = (1u << bits) - (uint32_t)(data[2 + l] >> 4) % ((1u << bits) / 2);
    }
    h.grid_planes = 1 + data[6] % 2;
    h.grid_height = 1 + data[7] % 9;
    h.grid_width = 1 + data[8] % 17;
    h.chunk_height = 1 + data[9] % h.grid_height;
    h.chunk_width = 1 + data[10] % h.grid_width;
    h.stride = 8;
    strcpy(h.model_name, "fuzz");
    if (h.media_kind == VQZ_MEDIA_IMAGE) {
        h.image.width = h.grid_width * 8;
        h.image.height = h.grid_height * 8;
        h.image.channels = 3;
        h.image.bit_depth = 8;
    } else {
        h.audio.sample_rate = h.audio.model_rate = 24000;
        h.audio.sample_count = (uint64_t)h.grid_width * 8;
        h.audio.channels = (uint16_t)h.grid_planes;
    }
    const uint8_t *src = data + 11;
    size_t srcn = size - 11;
    size_t n = (size_t)vqz_header_level_indices(&h);
    uint16_t *idx = (uint16_t *)malloc((size_t)h.levels * n * sizeof *idx);
    uint16_t *back = (uint16_t *)malloc(n * sizeof *back);
    vqz_container_writer *w = NULL;
    uint8_t *buf = NULL;
    int bad = 0, with_prior = 0;
    vqz_prior pr[VQZ_MAX_LEVELS];
    memset(pr, 0, sizeof pr);
    if (!idx || !back || vqz_container_writer_create(&h, &w) != VQZ_OK) {
        bad = 1;
        goto done;
    }
    vqz_container_writer_set_zstd_level(w, 1);
    /* half the inputs write with the model's prior, so modelled frames of both kinds are read back */
    with_prior = (data[0] & 2) && vqz_fuzz_priors(&h, pr);
    for (int l = 0; with_prior && l < h.levels; l++)
        vqz_container_writer_set_prior(w, l, &pr[l]);
    for (int l = 0; l < h.levels; l++) {
        for (size_t i = 0; i < n; i++) {
            size_t k = ((size_t)l * n + i) * 2;
            uint32_t v = (uint32_t)src[k % srcn] | ((uint32_t)src[(k + 1) % srcn] << 8);
            idx[(size_t)l * n + i] = (uint16_t)(v % h.K[l]);
        }
        if (vqz_container_writer_put_level(w, l, idx + (size_t)l * n, n) != VQZ_OK)
            bad = 1;
    }
    if (srcn > 3)
        vqz_container_writer_set_metadata(w, "fuzz", 4);
    uint64_t total;
    if (bad || vqz_container_writer_size(w, &total) != VQZ_OK || !(buf = (uint8_t *)malloc((size_t)total)) ||
        vqz_container_writer_write_buffer(w, buf, (size_t)total) != VQZ_OK) {
        bad = 1;
        goto done;
    }
    /* Every cut position between levels decodes exactly the levels before it. */
    for (int keep = h.levels; keep >= 0 && !bad; keep--) {
        vqz_container *c = NULL;
        size_t cut = (size_t)total;
        if (keep < h.levels) {
            vqz_container *full = NULL;
            vqz_frame_info f;
            if (vqz_container_open_memory(buf, (size_t)total, NULL, &full) != VQZ_OK ||
                vqz_container_frame_info(full, keep, 0, &f) != VQZ_OK) {
                vqz_container_free(full);
                bad = 1;
                break;
            }
            cut = (size_t)f.offset;
            vqz_container_free(full);
        }
        if (vqz_container_open_memory(buf, cut, NULL, &c) != VQZ_OK) {
            bad = 1;
            break;
        }
        for (int l = 0; with_prior && l < h.levels; l++)
            vqz_container_set_prior(c, l, &pr[l]);
        if (vqz_container_levels_available(c) != keep)
            bad = 1;
        for (int l = 0; l < h.levels && !bad; l++) {
            vqz_status s = vqz_container_read_level(c, l, back, n);
            if (l < keep)
                bad = s != VQZ_OK || memcmp(back, idx + (size_t)l * n, n * sizeof *back) != 0;
            else
                bad = s != VQZ_ERR_MISSING;
        }
        vqz_container_free(c);
    }
done:
    free(buf);
    free(idx);
    free(back);
    vqz_container_writer_free(w);
    vqz_fuzz_priors_free(pr);
    return bad;
}

#endif
