/* container_write.c — the .vqz writer: header encoding, index frames compressed with zstd (one block per
 * packed segment), sections, and output through a temporary file renamed into place. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "format/bytes.h"
#include "format/container.h"
#include "format/container_internal.h"
#include "format/crc32.h"
#include "format/fileio.h"
#include "format/pack.h"
#include "format/arith.h"
#include "format/utf8.h"

#define ZSTD_MAGIC 0xFD2FB528u

/* ---------------------------------------------------------------------------------------------- */
/* zstd helpers */

vqz_status vqz_zstd_compress(void *cctx_, int level, const uint8_t *src, size_t n, const size_t *seg, int nseg,
                             uint8_t **out, size_t *out_n)
{
    ZSTD_CCtx *cctx = (ZSTD_CCtx *)cctx_;
    *out = NULL;
    *out_n = 0;
    size_t cap = (size_t)vqz_comp_bound(n);
    uint8_t *dst = (uint8_t *)malloc(cap);
    VQZ_FAIL_IF(!dst, VQZ_ERR_NOMEM, "cannot allocate %zu bytes", cap);
    ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
    size_t r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
    /* Index streams are close to memoryless: 3- to 5-byte matches found by chance cost more than the
     * literals they replace, so only longer repeats (flat regions, silence) are worth a match. */
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_minMatch, 6);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setPledgedSrcSize(cctx, n);
    ZSTD_outBuffer ob = {dst, cap, 0};
    const char *why = NULL;
    int last = -1;
    size_t total = 0;
    for (int i = 0; i < nseg; i++) {
        total += seg[i];
        if (seg[i] > 0)
            last = i;
    }
    if (total != n)
        why = "segments do not cover the input";
    /* A flush after each segment ends the block, so the next segment starts with its own literal
     * statistics (and its own Huffman table when that pays); the last one ends the frame. */
    size_t done = 0;
    for (int i = 0; i <= last && !ZSTD_isError(r) && !why; i++) {
        if (seg[i] == 0)
            continue;
        ZSTD_EndDirective mode = i == last ? ZSTD_e_end : ZSTD_e_flush;
        ZSTD_inBuffer ib = {src + done, seg[i], 0};
        do {
            r = ZSTD_compressStream2(cctx, &ob, &ib, mode);
        } while (!ZSTD_isError(r) && r != 0 && ob.pos < ob.size);
        if (!ZSTD_isError(r) && (r != 0 || ib.pos != ib.size))
            why = "output bound exceeded";
        done += seg[i];
    }
    if (!ZSTD_isError(r) && !why && last < 0) { /* empty input: a frame with one empty block */
        ZSTD_inBuffer ib = {src, 0, 0};
        do {
            r = ZSTD_compressStream2(cctx, &ob, &ib, ZSTD_e_end);
        } while (!ZSTD_isError(r) && r != 0 && ob.pos < ob.size);
        if (!ZSTD_isError(r) && r != 0)
            why = "output bound exceeded";
    }
    if (ZSTD_isError(r) || why) {
        free(dst);
        return vqz_fail(VQZ_ERR_INTERNAL, "zstd compression of %zu bytes failed: %s", n,
                        why ? why : ZSTD_getErrorName(r));
    }
    *out = dst;
    *out_n = ob.pos;
    return VQZ_OK;
}

vqz_status vqz_zstd_check_frame(const uint8_t *frame, size_t n, uint64_t raw)
{
    VQZ_FAIL_IF(n < 4 || vqz_get_u32(frame) != ZSTD_MAGIC, VQZ_ERR_FORMAT, "not a zstd frame (bad magic number)");
    size_t fs = ZSTD_findFrameCompressedSize(frame, n);
    VQZ_FAIL_IF(ZSTD_isError(fs), VQZ_ERR_FORMAT, "damaged zstd frame: %s", ZSTD_getErrorName(fs));
    VQZ_FAIL_IF(fs != n, VQZ_ERR_FORMAT, "%zu bytes follow the zstd frame", n - fs);
    unsigned long long cs = ZSTD_getFrameContentSize(frame, n);
    VQZ_FAIL_IF(cs == ZSTD_CONTENTSIZE_ERROR, VQZ_ERR_FORMAT, "damaged zstd frame header");
    VQZ_FAIL_IF(cs != ZSTD_CONTENTSIZE_UNKNOWN && cs != raw, VQZ_ERR_FORMAT,
                "zstd frame declares %llu bytes, the table %llu", cs, (unsigned long long)raw);
    return VQZ_OK;
}

vqz_status vqz_zstd_decompress(void *dctx, const uint8_t *src, size_t comp, uint8_t *dst, size_t raw)
{
    VQZ_TRY(vqz_zstd_check_frame(src, comp, raw));
    /* dst holds exactly the declared size: zstd stops with an error rather than write past it. */
    size_t r = ZSTD_decompressDCtx((ZSTD_DCtx *)dctx, dst, raw, src, comp);
    VQZ_FAIL_IF(ZSTD_isError(r), VQZ_ERR_FORMAT, "zstd: %s (declared %zu bytes)", ZSTD_getErrorName(r), raw);
    VQZ_FAIL_IF(r != raw, VQZ_ERR_FORMAT, "zstd frame holds %zu bytes, declared %zu", r, raw);
    return VQZ_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Header encoding */

uint64_t vqz_encoded_header_size(const vqz_header *h, uint32_t nsections)
{
    size_t nlen = strnlen(h->model_name, sizeof h->model_name);
    return VQZ_FIXED_HEADER_SIZE + 4u * h->levels + nlen + (uint64_t)VQZ_SECTION_ENTRY_SIZE * nsections +
           (uint64_t)VQZ_FRAME_ENTRY_SIZE * h->levels * vqz_header_chunk_count(h) + 4;
}

void vqz_encode_header(const vqz_header *h, const vqz_section_entry *sections, uint32_t nsections,
                       const vqz_frame_info *frames, uint8_t *out)
{
    uint64_t size = vqz_encoded_header_size(h, nsections);
    size_t nlen = strnlen(h->model_name, sizeof h->model_name);
    memset(out, 0, VQZ_FIXED_HEADER_SIZE);
    memcpy(out + OFF_SIGNATURE, vqz_signature, VQZ_SIGNATURE_SIZE);
    vqz_put_u16(out + OFF_MAJOR, VQZ_FORMAT_MAJOR);
    /* 1.1 only when the file needs it (modelled frames, spec §6.5): other files stay readable as 1.0 */
    int prior = 0;
    for (uint32_t i = 0; i < nsections; i++)
        prior |= sections[i].type == VQZ_SECTION_PRIOR;
    vqz_put_u16(out + OFF_MINOR, prior ? 1 : 0);
    vqz_put_u32(out + OFF_HEADER_SIZE, (uint32_t)size);
    vqz_put_u16(out + OFF_FIXED_SIZE, VQZ_FIXED_HEADER_SIZE);
    out[OFF_MEDIA_KIND] = h->media_kind;
    out[OFF_LEVELS] = h->levels;
    vqz_put_u16(out + OFF_SECTIONS, (uint16_t)nsections);
    out[OFF_NAME_LEN] = (uint8_t)nlen;
    vqz_put_u32(out + OFF_GRID_PLANES, h->grid_planes);
    vqz_put_u32(out + OFF_GRID_HEIGHT, h->grid_height);
    vqz_put_u32(out + OFF_GRID_WIDTH, h->grid_width);
    vqz_put_u32(out + OFF_CHUNK_HEIGHT, h->chunk_height);
    vqz_put_u32(out + OFF_CHUNK_WIDTH, h->chunk_width);
    vqz_put_u32(out + OFF_STRIDE, h->stride);
    memcpy(out + OFF_MODEL_SHA, h->model_sha256, 32);
    if (h->media_kind == VQZ_MEDIA_IMAGE) {
        vqz_put_u32(out + OFF_IMG_WIDTH, h->image.width);
        vqz_put_u32(out + OFF_IMG_HEIGHT, h->image.height);
        out[OFF_IMG_CHANNELS] = h->image.channels;
        out[OFF_IMG_DEPTH] = h->image.bit_depth;
        out[OFF_IMG_COLOUR] = h->image.colour_space;
    } else {
        vqz_put_u32(out + OFF_AUD_RATE, h->audio.sample_rate);
        vqz_put_u32(out + OFF_AUD_MODEL_RATE, h->audio.model_rate);
        vqz_put_u64(out + OFF_AUD_SAMPLES, h->audio.sample_count);
        vqz_put_u16(out + OFF_AUD_CHANNELS, h->audio.channels);
        out[OFF_AUD_DEPTH] = h->audio.bit_depth;
    }
    uint8_t *p = out + VQZ_FIXED_HEADER_SIZE;
    for (int l = 0; l < h->levels; l++, p += 4)
        vqz_put_u32(p, h->K[l]);
    memcpy(p, h->model_name, nlen);
    p += nlen;
    for (uint32_t s = 0; s < nsections; s++, p += VQZ_SECTION_ENTRY_SIZE) {
        vqz_put_u16(p, sections[s].type);
        vqz_put_u16(p + 2, sections[s].flags);
        vqz_put_u32(p + 4, sections[s].crc32);
        vqz_put_u64(p + 8, sections[s].size);
    }
    uint64_t nframes = (uint64_t)h->levels * vqz_header_chunk_count(h);
    for (uint64_t f = 0; f < nframes; f++, p += VQZ_FRAME_ENTRY_SIZE) {
        vqz_put_u32(p, frames[f].comp_size);
        vqz_put_u32(p + 4, frames[f].raw_size);
        vqz_put_u32(p + 8, frames[f].crc32);
    }
    vqz_put_u32(p, vqz_crc32(out, (size_t)size - 4));
}

/* ---------------------------------------------------------------------------------------------- */
/* Writer */

struct vqz_container_writer {
    vqz_header h;
    vqz_limits lim;
    int zstd_level;
    uint32_t chunks;
    vqz_frame_info *frames; /* offset unused until serialisation */
    uint8_t **data;         /* compressed frame bytes, levels x chunks */
    /* section bodies in file order: metadata, alpha */
    vqz_section_entry sec[2];
    uint8_t *sec_body[2];
    int has_sec[2];
    const vqz_prior *prior[VQZ_MAX_LEVELS]; /* borrowed; NULL: modelled frames start uniform */
    int modelled;                           /* 0: zstd frames only, a file every 1.0 reader decodes */
    uint64_t n_modelled;                    /* frames stored that are modelled: the file then needs section 3 */
    ZSTD_CCtx *cctx;
};

vqz_status vqz_container_writer_create(const vqz_header *h, vqz_container_writer **out)
{
    *out = NULL;
    vqz_limits lim;
    vqz_limits_default(&lim);
    vqz_status s = vqz_header_validate(h, &lim);
    if (s != VQZ_OK) {
        vqz_error_prefix("vqz writer: ");
        return s;
    }
    VQZ_FAIL_IF(vqz_encoded_header_size(h, 3) > lim.max_header_bytes, VQZ_ERR_LIMIT,
                "vqz writer: header of %llu bytes exceeds the limit of %llu",
                (unsigned long long)vqz_encoded_header_size(h, 3), (unsigned long long)lim.max_header_bytes);
    vqz_container_writer *w = (vqz_container_writer *)calloc(1, sizeof *w);
    VQZ_FAIL_IF(!w, VQZ_ERR_NOMEM, "vqz writer: out of memory");
    w->h = *h;
    w->h.version_major = VQZ_FORMAT_MAJOR;
    w->h.version_minor = 0; /* 1 when written with modelled frames */
    /* Geometry of the other media kind is not stored: clear it so reads compare equal. */
    if (h->media_kind == VQZ_MEDIA_IMAGE)
        memset(&w->h.audio, 0, sizeof w->h.audio);
    else
        memset(&w->h.image, 0, sizeof w->h.image);
    for (int l = h->levels; l < VQZ_MAX_LEVELS; l++)
        w->h.K[l] = 0;
    size_t nlen = strnlen(w->h.model_name, sizeof w->h.model_name);
    memset(w->h.model_name + nlen, 0, sizeof w->h.model_name - nlen);
    w->lim = lim;
    w->zstd_level = VQZ_DEFAULT_ZSTD_LEVEL;
    w->modelled = 1;
    w->chunks = vqz_header_chunk_count(h);
    uint64_t nframes = (uint64_t)h->levels * w->chunks;
    w->frames = (vqz_frame_info *)calloc(nframes, sizeof *w->frames);
    w->data = (uint8_t **)calloc(nframes, sizeof *w->data);
    w->cctx = ZSTD_createCCtx();
    if (!w->frames || !w->data || !w->cctx) {
        vqz_container_writer_free(w);
        return vqz_fail(VQZ_ERR_NOMEM, "vqz writer: cannot allocate tables for %llu frames",
                        (unsigned long long)nframes);
    }
    *out = w;
    return VQZ_OK;
}

void vqz_container_writer_free(vqz_container_writer *w)
{
    if (!w)
        return;
    if (w->data) {
        uint64_t nframes = (uint64_t)w->h.levels * w->chunks;
        for (uint64_t f = 0; f < nframes; f++)
            free(w->data[f]);
    }
    free(w->data);
    free(w->frames);
    free(w->sec_body[0]);
    free(w->sec_body[1]);
    ZSTD_freeCCtx(w->cctx);
    free(w);
}

vqz_status vqz_container_writer_set_zstd_level(vqz_container_writer *w, int level)
{
    VQZ_FAIL_IF(level < ZSTD_minCLevel() || level > ZSTD_maxCLevel(), VQZ_ERR_INVALID_ARG,
                "vqz writer: zstd level %d is not in %d..%d", level, ZSTD_minCLevel(), ZSTD_maxCLevel());
    w->zstd_level = level;
    return VQZ_OK;
}

static void set_section(vqz_container_writer *w, int slot, uint16_t type, uint16_t flags, uint8_t *body,
                        uint64_t size)
{
    free(w->sec_body[slot]);
    w->sec_body[slot] = body;
    w->sec[slot].type = type;
    w->sec[slot].flags = flags;
    w->sec[slot].size = size;
    w->sec[slot].crc32 = vqz_crc32(body, (size_t)size);
    w->has_sec[slot] = 1;
}

vqz_status vqz_container_writer_set_metadata(vqz_container_writer *w, const char *utf8, size_t len)
{
    VQZ_FAIL_IF(len > w->lim.max_metadata_bytes, VQZ_ERR_LIMIT, "vqz writer: metadata of %zu bytes exceeds the limit of %llu",
                len, (unsigned long long)w->lim.max_metadata_bytes);
    size_t bad = 0;
    VQZ_FAIL_IF(!vqz_utf8_valid((const uint8_t *)utf8, len, &bad), VQZ_ERR_INVALID_ARG,
                "vqz writer: metadata is not UTF-8 without NUL bytes (byte %zu)", bad);
    uint8_t *body = (uint8_t *)malloc(len ? len : 1);
    VQZ_FAIL_IF(!body, VQZ_ERR_NOMEM, "vqz writer: out of memory");
    if (len)
        memcpy(body, utf8, len);
    set_section(w, 0, VQZ_SECTION_METADATA, 0, body, len);
    return VQZ_OK;
}

static uint64_t alpha_bytes(const vqz_header *h)
{
    return (uint64_t)h->image.width * h->image.height * (h->image.bit_depth / 8);
}

vqz_status vqz_container_writer_set_alpha(vqz_container_writer *w, const uint8_t *plane, size_t n)
{
    const vqz_header *h = &w->h;
    VQZ_FAIL_IF(h->media_kind != VQZ_MEDIA_IMAGE || (h->image.channels != 2 && h->image.channels != 4),
                VQZ_ERR_INVALID_ARG, "vqz writer: alpha plane for a file without an alpha channel");
    VQZ_FAIL_IF(n != alpha_bytes(h), VQZ_ERR_INVALID_ARG, "vqz writer: alpha plane of %zu bytes, expected %llu", n,
                (unsigned long long)alpha_bytes(h));
    VQZ_FAIL_IF(n > w->lim.max_alpha_bytes, VQZ_ERR_LIMIT, "vqz writer: alpha plane of %zu bytes exceeds the limit",
                n);
    uint8_t *comp;
    size_t cn;
    size_t seg = n;
    VQZ_TRY(vqz_zstd_compress(w->cctx, w->zstd_level, plane, n, &seg, 1, &comp, &cn));
    uint8_t *body = (uint8_t *)malloc(VQZ_ALPHA_PREFIX + cn);
    if (!body) {
        free(comp);
        return vqz_fail(VQZ_ERR_NOMEM, "vqz writer: out of memory");
    }
    vqz_put_u64(body, n);
    memcpy(body + VQZ_ALPHA_PREFIX, comp, cn);
    free(comp);
    set_section(w, 1, VQZ_SECTION_ALPHA, VQZ_SECTION_CRITICAL, body, VQZ_ALPHA_PREFIX + cn);
    return VQZ_OK;
}

void vqz_container_writer_set_modelled(vqz_container_writer *w, int allow)
{
    w->modelled = allow != 0;
}

vqz_status vqz_container_writer_set_prior(vqz_container_writer *w, int level, const vqz_prior *prior)
{
    VQZ_FAIL_IF(level < 0 || level >= w->h.levels, VQZ_ERR_INVALID_ARG, "vqz writer: level %d is not in 0..%d",
                level, w->h.levels - 1);
    VQZ_FAIL_IF(prior && prior->K != w->h.K[level], VQZ_ERR_INVALID_ARG,
                "vqz writer: level %d has K=%u, its prior K=%u", level, w->h.K[level], prior->K);
    w->prior[level] = prior;
    return VQZ_OK;
}

vqz_status vqz_container_writer_put_section_raw(vqz_container_writer *w, const vqz_section_entry *e,
                                                const uint8_t *body)
{
    if (e->type == VQZ_SECTION_PRIOR) /* derived from the frames when the file is written */
        return VQZ_OK;
    int slot = e->type == VQZ_SECTION_METADATA ? 0 : 1;
    uint8_t *copy = (uint8_t *)malloc(e->size ? (size_t)e->size : 1);
    VQZ_FAIL_IF(!copy, VQZ_ERR_NOMEM, "vqz writer: out of memory");
    if (e->size)
        memcpy(copy, body, (size_t)e->size);
    set_section(w, slot, e->type, e->flags, copy, e->size);
    return VQZ_OK;
}

static vqz_status frame_args(const vqz_container_writer *w, int level, uint32_t chunk)
{
    VQZ_FAIL_IF(level < 0 || level >= w->h.levels, VQZ_ERR_INVALID_ARG, "vqz writer: level %d is not in 0..%d",
                level, w->h.levels - 1);
    VQZ_FAIL_IF(chunk >= w->chunks, VQZ_ERR_INVALID_ARG, "vqz writer: chunk %u is not in 0..%u", chunk,
                w->chunks - 1);
    return VQZ_OK;
}

static void store_frame(vqz_container_writer *w, int level, uint32_t chunk, uint8_t *data, size_t n,
                        uint32_t raw_size)
{
    uint64_t f = (uint64_t)level * w->chunks + chunk;
    if (w->data[f])
        w->n_modelled -= (uint64_t)vqz_arith_is_frame(w->data[f], w->frames[f].comp_size);
    w->n_modelled += (uint64_t)vqz_arith_is_frame(data, n);
    free(w->data[f]);
    w->data[f] = data;
    w->frames[f].comp_size = (uint32_t)n;
    w->frames[f].raw_size = raw_size;
    w->frames[f].crc32 = vqz_crc32(data, n);
}

vqz_status vqz_container_writer_put_chunk(vqz_container_writer *w, int level, uint32_t chunk, const uint16_t *idx,
                                          size_t n)
{
    VQZ_TRY(frame_args(w, level, chunk));
    uint64_t want = vqz_header_chunk_indices(&w->h, chunk);
    VQZ_FAIL_IF(n != want, VQZ_ERR_INVALID_ARG, "vqz writer: chunk %u takes %llu indices, got %zu", chunk,
                (unsigned long long)want, n);
    uint32_t K = w->h.K[level];
    for (size_t i = 0; i < n; i++)
        VQZ_FAIL_IF(idx[i] >= K, VQZ_ERR_INDEX_RANGE, "vqz writer: level %d, chunk %u: index %u at %zu is >= K=%u",
                    level, chunk, idx[i], i, K);
    size_t raw_n = vqz_pack_size(K, n);
    uint8_t *raw = (uint8_t *)malloc(raw_n);
    VQZ_FAIL_IF(!raw, VQZ_ERR_NOMEM, "vqz writer: cannot allocate %zu bytes", raw_n);
    size_t seg[VQZ_PACK_MAX_SEGMENTS];
    int nseg = 0;
    vqz_pack_indices(idx, n, K, raw, seg, &nseg);
    uint8_t *comp;
    size_t cn;
    vqz_status s = vqz_zstd_compress(w->cctx, w->zstd_level, raw, raw_n, seg, nseg, &comp, &cn);
    free(raw);
    VQZ_TRY(s);
    /* The modelled frame instead when it is smaller: the usual case for short chunks of large codebooks,
     * while zstd keeps the chunks whose indices repeat in runs or patterns (its matches see those) */
    double bits = INFINITY;
    vqz_arith_params prm = {0, 0};
    if (w->modelled && vqz_arith_allowed(K, n))
        prm = vqz_arith_choose(w->prior[level], K, idx, n, &bits);
    if (bits / 8 + VQZ_ARITH_HEADER + 5 < (double)cn) {
        size_t cap = vqz_arith_bound(n), an = 0;
        uint8_t *coded = (uint8_t *)malloc(cap);
        if (!coded) {
            free(comp);
            return vqz_fail(VQZ_ERR_NOMEM, "vqz writer: cannot allocate %zu bytes", cap);
        }
        s = vqz_arith_encode(w->prior[level], K, prm, idx, n, coded, cap, &an);
        if (s == VQZ_OK && an < cn) {
            free(comp);
            comp = coded, cn = an;
        } else {
            free(coded);
        }
        if (s != VQZ_OK) {
            free(comp);
            return s;
        }
    }
    store_frame(w, level, chunk, comp, cn, (uint32_t)raw_n);
    return VQZ_OK;
}

vqz_status vqz_container_writer_put_level(vqz_container_writer *w, int level, const uint16_t *grid, size_t n)
{
    const vqz_header *h = &w->h;
    VQZ_FAIL_IF(n != vqz_header_level_indices(h), VQZ_ERR_INVALID_ARG, "vqz writer: level takes %llu indices, got %zu",
                (unsigned long long)vqz_header_level_indices(h), n);
    size_t cap = (size_t)h->grid_planes * h->chunk_height * h->chunk_width;
    uint16_t *tmp = (uint16_t *)malloc(cap * sizeof *tmp);
    VQZ_FAIL_IF(!tmp, VQZ_ERR_NOMEM, "vqz writer: cannot allocate %zu indices", cap);
    vqz_status s = VQZ_OK;
    for (uint32_t ch = 0; ch < w->chunks && s == VQZ_OK; ch++) {
        vqz_chunk_rect r = vqz_header_chunk_rect(h, ch);
        for (uint32_t p = 0; p < h->grid_planes; p++)
            for (uint32_t y = 0; y < r.h; y++)
                memcpy(tmp + ((uint64_t)p * r.h + y) * r.w,
                       grid + ((uint64_t)p * h->grid_height + r.y + y) * h->grid_width + r.x, r.w * sizeof *tmp);
        s = vqz_container_writer_put_chunk(w, level, ch, tmp, (size_t)h->grid_planes * r.h * r.w);
    }
    free(tmp);
    return s;
}

vqz_status vqz_container_writer_put_frame(vqz_container_writer *w, int level, uint32_t chunk, const uint8_t *frame,
                                          size_t n, uint32_t raw_size)
{
    VQZ_TRY(frame_args(w, level, chunk));
    uint64_t want = vqz_pack_size(w->h.K[level], (size_t)vqz_header_chunk_indices(&w->h, chunk));
    VQZ_FAIL_IF(raw_size != want, VQZ_ERR_INVALID_ARG, "vqz writer: level %d, chunk %u: raw size %u, expected %llu",
                level, chunk, raw_size, (unsigned long long)want);
    VQZ_FAIL_IF(n > vqz_comp_bound(want), VQZ_ERR_LIMIT, "vqz writer: level %d, chunk %u: frame of %zu bytes exceeds %llu",
                level, chunk, n, (unsigned long long)vqz_comp_bound(want));
    vqz_status s = VQZ_OK;
    if (vqz_arith_is_frame(frame, n))
        VQZ_FAIL_IF(n < VQZ_ARITH_HEADER + 5, VQZ_ERR_FORMAT,
                    "vqz writer: level %d, chunk %u: modelled frame of %zu bytes is too short", level, chunk, n);
    else
        s = vqz_zstd_check_frame(frame, n, raw_size);
    if (s != VQZ_OK) {
        vqz_error_prefix("vqz writer: level %d, chunk %u: ", level, chunk);
        return s;
    }
    uint8_t *copy = (uint8_t *)malloc(n);
    VQZ_FAIL_IF(!copy, VQZ_ERR_NOMEM, "vqz writer: out of memory");
    memcpy(copy, frame, n);
    store_frame(w, level, chunk, copy, n, raw_size);
    return VQZ_OK;
}

/* The section table in file order: metadata, alpha, modelled frames. Returns the count. */
static uint32_t section_table(const vqz_container_writer *w, vqz_section_entry sec[3])
{
    uint32_t ns = 0;
    for (int s = 0; s < 2; s++)
        if (w->has_sec[s])
            sec[ns++] = w->sec[s];
    if (w->n_modelled > 0) { /* the modelled-frames section: critical, empty */
        vqz_section_entry e = {VQZ_SECTION_PRIOR, VQZ_SECTION_CRITICAL, 0, 0}; /* CRC-32 of no bytes is 0 */
        sec[ns++] = e;
    }
    return ns;
}

static uint32_t section_count(const vqz_container_writer *w)
{
    vqz_section_entry sec[3];
    return section_table(w, sec);
}

vqz_status vqz_container_writer_size(const vqz_container_writer *w, uint64_t *size)
{
    const vqz_header *h = &w->h;
    if (h->media_kind == VQZ_MEDIA_IMAGE && (h->image.channels == 2 || h->image.channels == 4))
        VQZ_FAIL_IF(!w->has_sec[1], VQZ_ERR_INVALID_ARG, "vqz writer: image with alpha needs an alpha plane");
    uint64_t total = vqz_encoded_header_size(h, section_count(w));
    for (int s = 0; s < 2; s++)
        if (w->has_sec[s])
            total += w->sec[s].size;
    for (int l = 0; l < h->levels; l++)
        for (uint32_t ch = 0; ch < w->chunks; ch++) {
            uint64_t f = (uint64_t)l * w->chunks + ch;
            VQZ_FAIL_IF(!w->data[f], VQZ_ERR_INVALID_ARG, "vqz writer: level %d, chunk %u was not given", l, ch);
            total += w->frames[f].comp_size;
        }
    *size = total;
    return VQZ_OK;
}

vqz_status vqz_container_writer_write_buffer(const vqz_container_writer *w, uint8_t *buf, size_t cap)
{
    uint64_t total;
    VQZ_TRY(vqz_container_writer_size(w, &total));
    VQZ_FAIL_IF(cap < total, VQZ_ERR_INVALID_ARG, "vqz writer: buffer of %zu bytes, need %llu", cap,
                (unsigned long long)total);
    vqz_section_entry sec[3];
    uint32_t ns = section_table(w, sec);
    vqz_encode_header(&w->h, sec, ns, w->frames, buf);
    uint64_t pos = vqz_encoded_header_size(&w->h, ns);
    for (int s = 0; s < 2; s++)
        if (w->has_sec[s]) {
            memcpy(buf + pos, w->sec_body[s], (size_t)w->sec[s].size);
            pos += w->sec[s].size;
        }
    uint64_t nframes = (uint64_t)w->h.levels * w->chunks;
    for (uint64_t f = 0; f < nframes; f++) {
        memcpy(buf + pos, w->data[f], w->frames[f].comp_size);
        pos += w->frames[f].comp_size;
    }
    return VQZ_OK;
}

vqz_status vqz_container_writer_write_file(const vqz_container_writer *w, const char *path)
{
    uint64_t total;
    VQZ_TRY(vqz_container_writer_size(w, &total));
    VQZ_FAIL_IF(total > SIZE_MAX / 2, VQZ_ERR_LIMIT, "%s: file of %llu bytes is too large", path,
                (unsigned long long)total);
    uint8_t *buf = (uint8_t *)malloc((size_t)total);
    VQZ_FAIL_IF(!buf, VQZ_ERR_NOMEM, "%s: cannot allocate %llu bytes", path, (unsigned long long)total);
    vqz_status s = vqz_container_writer_write_buffer(w, buf, (size_t)total);
    if (s == VQZ_OK)
        s = vqz_write_file_atomic(path, buf, (size_t)total);
    free(buf);
    return s;
}
