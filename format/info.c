/* info.c — what vqz-info reports about a .vqz file: per-level sizes and the empirical 0th-order entropy
 * of the indices beside the bytes actually spent, and names for the enumerations. */
#include <math.h>
#include <stdlib.h>

#include "format/container.h"
#include "format/pack.h"

vqz_status vqz_index_entropy(const uint16_t *idx, size_t n, uint32_t K, double *bits, uint32_t *distinct)
{
    *bits = 0;
    if (distinct)
        *distinct = 0;
    VQZ_FAIL_IF(K < 1 || K > VQZ_MAX_K, VQZ_ERR_INVALID_ARG, "entropy: K=%u is not in 1..%d", K, VQZ_MAX_K);
    if (n == 0)
        return VQZ_OK;
    uint64_t *count = (uint64_t *)calloc(K, sizeof *count);
    VQZ_FAIL_IF(!count, VQZ_ERR_NOMEM, "entropy: cannot allocate %u counters", K);
    for (size_t i = 0; i < n; i++) {
        if (idx[i] >= K) {
            free(count);
            return vqz_fail(VQZ_ERR_INDEX_RANGE, "entropy: index %u at %zu is >= K=%u", idx[i], i, K);
        }
        count[idx[i]]++;
    }
    double h = 0;
    uint32_t used = 0;
    for (uint32_t k = 0; k < K; k++) {
        if (!count[k])
            continue;
        double p = (double)count[k] / (double)n;
        h -= p * log2(p);
        used++;
    }
    free(count);
    *bits = h;
    if (distinct)
        *distinct = used;
    return VQZ_OK;
}

vqz_status vqz_container_level_stats(vqz_container *c, int level, vqz_level_stats *st)
{
    const vqz_header *h = vqz_container_header(c);
    VQZ_FAIL_IF(level < 0 || level >= h->levels, VQZ_ERR_INVALID_ARG, "level %d is not in 0..%d", level,
                h->levels - 1);
    st->indices = vqz_header_level_indices(h);
    st->comp_bytes = st->raw_bytes = 0;
    st->table_bytes = (uint64_t)VQZ_FRAME_ENTRY_SIZE * vqz_header_chunk_count(h);
    st->entropy_bits = 0;
    st->distinct = st->modelled = 0;
    for (uint32_t ch = 0; ch < vqz_header_chunk_count(h); ch++) {
        vqz_frame_info f;
        VQZ_TRY(vqz_container_frame_info(c, level, ch, &f));
        st->comp_bytes += f.comp_size;
        st->raw_bytes += f.raw_size;
    }
    uint16_t *grid = (uint16_t *)malloc((size_t)st->indices * sizeof *grid);
    VQZ_FAIL_IF(!grid, VQZ_ERR_NOMEM, "cannot allocate %llu indices", (unsigned long long)st->indices);
    vqz_status s = vqz_container_read_level(c, level, grid, (size_t)st->indices);
    if (s == VQZ_OK)
        s = vqz_index_entropy(grid, (size_t)st->indices, h->K[level], &st->entropy_bits, &st->distinct);
    free(grid);
    for (uint32_t ch = 0; s == VQZ_OK && ch < vqz_header_chunk_count(h); ch++) {
        int m = 0;
        s = vqz_container_frame_modelled(c, level, ch, &m);
        st->modelled += (uint32_t)m;
    }
    return s;
}

const char *vqz_media_kind_name(int kind)
{
    switch (kind) {
    case VQZ_MEDIA_IMAGE: return "image";
    case VQZ_MEDIA_AUDIO: return "audio";
    }
    return "unknown";
}

const char *vqz_colour_space_name(int cs)
{
    switch (cs) {
    case VQZ_COLOUR_UNSPECIFIED: return "unspecified";
    case VQZ_COLOUR_SRGB: return "sRGB";
    case VQZ_COLOUR_LINEAR: return "linear";
    }
    return "unknown";
}
