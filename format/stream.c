/* stream.c — audio stream packets (spec/vqz-format.md §11): header and data packet encoding, and the
 * parser, which checks every size against the format's limits and the packet's length before anything
 * of that size is allocated or decompressed. */
#include "format/stream.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "format/bytes.h"
#include "format/container_internal.h"
#include "format/crc32.h"
#include "format/pack.h"
#include "format/utf8.h"

const uint8_t vqz_stream_signature[8] = {0x89, 'V', 'Q', 'S', 0x0d, 0x0a, 0x1a, 0x0a};
const uint8_t vqz_stream_data_magic[4] = {0x8a, 'V', 'Q', 'P'};

/* Byte offsets of the header packet's fixed part and of a data packet's header (spec §11.2, §11.3). */
enum {
    SH_SIGNATURE = 0,
    SH_MAJOR = 8,
    SH_MINOR = 10,
    SH_PACKET_SIZE = 12,
    SH_FIXED_SIZE = 16,
    SH_LEVELS = 18,
    SH_NAME_LEN = 19,
    SH_CHANNELS = 20,
    SH_RESERVED0 = 22,
    SH_RATE = 24,
    SH_MODEL_RATE = 28,
    SH_STRIDE = 32,
    SH_PACKET_FRAMES = 36,
    SH_SHA = 40,
    SH_RESERVED1 = 72,

    SD_MAGIC = 0,
    SD_PACKET_SIZE = 4,
    SD_SEQUENCE = 8,
    SD_FRAMES = 12,
    SD_LEVELS = 14,
    SD_FLAGS = 15,
    SD_FIRST_FRAME = 16,
    SD_TOTAL = 24,
};

#define MAX_RATE 1048576u
#define ZSTD_MIN_FRAME 4 /* the magic number alone: any zstd frame is longer */

struct vqz_stream_coder {
    int zstd_level;
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    uint8_t *raw;
    size_t raw_cap;
    size_t *seg;
    size_t seg_cap;
};

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static int name_ok(const char *name, size_t n)
{
    if (n == 0 || n > VQZ_MODEL_NAME_MAX || !vqz_utf8_valid((const uint8_t *)name, n, NULL))
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)name[i] < 0x20 || (uint8_t)name[i] == 0x7f)
            return 0;
    return 1;
}

uint64_t vqz_stream_raw_size(const vqz_stream_header *h, int levels, uint64_t frames)
{
    uint64_t n = (uint64_t)h->channels * frames, raw = 0;
    for (int l = 0; l < levels && l < h->levels; l++)
        raw += vqz_pack_size(h->K[l], (size_t)n);
    return raw;
}

/* Field constraints of spec §11.2. `bad` is the status of a violated constraint: VQZ_ERR_INVALID_ARG
 * for the writer, VQZ_ERR_FORMAT for the reader (limits are VQZ_ERR_LIMIT for both). */
static vqz_status check_header_fields(const vqz_stream_header *h, vqz_status bad)
{
    VQZ_FAIL_IF(h->levels < 1 || h->levels > VQZ_MAX_LEVELS, bad, "level count %d is not in 1..%d", h->levels,
                VQZ_MAX_LEVELS);
    for (int l = 0; l < h->levels; l++)
        VQZ_FAIL_IF(h->K[l] < VQZ_MIN_K || h->K[l] > VQZ_MAX_K, bad, "level %d: K = %u is not in %d..%d", l + 1,
                    h->K[l], VQZ_MIN_K, VQZ_MAX_K);
    VQZ_FAIL_IF(h->channels < 1, bad, "channel count %d is not positive", h->channels);
    VQZ_FAIL_IF(h->channels > VQZ_STREAM_MAX_CHANNELS, VQZ_ERR_LIMIT, "%d channels exceed the limit of %d",
                h->channels, VQZ_STREAM_MAX_CHANNELS);
    VQZ_FAIL_IF(h->sample_rate < 1 || h->sample_rate > MAX_RATE, bad, "sample_rate %u Hz is not in 1..%u",
                h->sample_rate, MAX_RATE);
    VQZ_FAIL_IF(h->model_rate < 1 || h->model_rate > MAX_RATE, bad, "model_rate %u Hz is not in 1..%u",
                h->model_rate, MAX_RATE);
    VQZ_FAIL_IF(h->stride < 1 || h->stride > 65536, bad, "stride %u is not in 1..65536", h->stride);
    VQZ_FAIL_IF(h->packet_frames < 1 || h->packet_frames > VQZ_STREAM_MAX_FRAMES, bad,
                "packet_frames %u is not in 1..%d", h->packet_frames, VQZ_STREAM_MAX_FRAMES);
    uint64_t per_packet = (uint64_t)h->levels * (uint64_t)h->channels * h->packet_frames;
    VQZ_FAIL_IF(per_packet > VQZ_STREAM_MAX_INDICES, VQZ_ERR_LIMIT,
                "%d levels x %d channels x %u frames per packet exceed the limit of %u indices", h->levels,
                h->channels, h->packet_frames, VQZ_STREAM_MAX_INDICES);
    size_t nlen = strnlen(h->model_name, sizeof h->model_name);
    VQZ_FAIL_IF(!name_ok(h->model_name, nlen), bad, "model name must be 1..%d bytes of printable UTF-8",
                VQZ_MODEL_NAME_MAX);
    return VQZ_OK;
}

vqz_status vqz_stream_packet_kind_of(const uint8_t *p, size_t n, vqz_stream_packet_kind *kind)
{
    VQZ_FAIL_IF(n == 0, VQZ_ERR_TRUNCATED, "empty packet");
    if (p[0] == vqz_stream_signature[0]) {
        size_t k = n < 8 ? n : 8;
        if (memcmp(p, vqz_stream_signature, k) == 0) {
            VQZ_FAIL_IF(n < 8, VQZ_ERR_TRUNCATED, "packet cut after %zu bytes of the signature", n);
            *kind = VQZ_STREAM_PACKET_HEADER;
            return VQZ_OK;
        }
        VQZ_FAIL_IF(memcmp(p, vqz_signature, k) == 0, VQZ_ERR_SIGNATURE,
                    "a .vqz file, not a stream packet (decode it with vqz_decode_file)");
    } else if (p[0] == vqz_stream_data_magic[0]) {
        size_t k = n < 4 ? n : 4;
        if (memcmp(p, vqz_stream_data_magic, k) == 0) {
            VQZ_FAIL_IF(n < 4, VQZ_ERR_TRUNCATED, "packet cut after %zu bytes of the magic number", n);
            *kind = VQZ_STREAM_PACKET_DATA;
            return VQZ_OK;
        }
    }
    return vqz_fail(VQZ_ERR_SIGNATURE, "not a stream packet (starts with %02x %02x)", p[0], n > 1 ? p[1] : 0);
}

vqz_status vqz_stream_packet_size(const uint8_t *p, size_t n, size_t *size)
{
    vqz_stream_packet_kind kind;
    VQZ_TRY(vqz_stream_packet_kind_of(p, n, &kind));
    size_t at = kind == VQZ_STREAM_PACKET_HEADER ? SH_PACKET_SIZE : SD_PACKET_SIZE;
    VQZ_FAIL_IF(n < at + 4, VQZ_ERR_TRUNCATED, "packet cut after %zu bytes, before its size field", n);
    *size = vqz_get_u32(p + at);
    return VQZ_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Header packet */

vqz_status vqz_stream_header_write(const vqz_stream_header *h, uint8_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    vqz_status s = check_header_fields(h, VQZ_ERR_INVALID_ARG);
    if (s != VQZ_OK) {
        vqz_error_prefix("stream header: ");
        return s;
    }
    size_t nlen = strlen(h->model_name);
    size_t size = VQZ_STREAM_FIXED_SIZE + 4 * (size_t)h->levels + nlen + 4;
    uint8_t *b = calloc(1, size);
    VQZ_FAIL_IF(!b, VQZ_ERR_NOMEM, "stream header: cannot allocate %zu bytes", size);
    memcpy(b + SH_SIGNATURE, vqz_stream_signature, 8);
    vqz_put_u16(b + SH_MAJOR, VQZ_STREAM_MAJOR);
    vqz_put_u16(b + SH_MINOR, VQZ_STREAM_MINOR);
    vqz_put_u32(b + SH_PACKET_SIZE, (uint32_t)size);
    vqz_put_u16(b + SH_FIXED_SIZE, VQZ_STREAM_FIXED_SIZE);
    b[SH_LEVELS] = (uint8_t)h->levels;
    b[SH_NAME_LEN] = (uint8_t)nlen;
    vqz_put_u16(b + SH_CHANNELS, (uint16_t)h->channels);
    vqz_put_u32(b + SH_RATE, h->sample_rate);
    vqz_put_u32(b + SH_MODEL_RATE, h->model_rate);
    vqz_put_u32(b + SH_STRIDE, h->stride);
    vqz_put_u32(b + SH_PACKET_FRAMES, h->packet_frames);
    memcpy(b + SH_SHA, h->model_sha256, 32);
    size_t pos = VQZ_STREAM_FIXED_SIZE;
    for (int l = 0; l < h->levels; l++, pos += 4)
        vqz_put_u32(b + pos, h->K[l]);
    memcpy(b + pos, h->model_name, nlen);
    pos += nlen;
    vqz_put_u32(b + pos, vqz_crc32(b, pos));
    *out = b;
    *n = size;
    return VQZ_OK;
}

static vqz_status read_header_impl(const uint8_t *p, size_t n, vqz_stream_header *h)
{
    memset(h, 0, sizeof *h);
    vqz_stream_packet_kind kind;
    VQZ_TRY(vqz_stream_packet_kind_of(p, n, &kind));
    VQZ_FAIL_IF(kind != VQZ_STREAM_PACKET_HEADER, VQZ_ERR_FORMAT,
                "a data packet where the stream header packet was expected");
    VQZ_FAIL_IF(n < SH_FIXED_SIZE, VQZ_ERR_TRUNCATED, "packet cut after %zu bytes", n);
    h->version_major = vqz_get_u16(p + SH_MAJOR);
    h->version_minor = vqz_get_u16(p + SH_MINOR);
    VQZ_FAIL_IF(h->version_major != VQZ_STREAM_MAJOR, VQZ_ERR_VERSION,
                "stream format version %u.%u (this reader knows %d.x)", h->version_major, h->version_minor,
                VQZ_STREAM_MAJOR);
    uint32_t size = vqz_get_u32(p + SH_PACKET_SIZE);
    const uint32_t min_size = VQZ_STREAM_FIXED_SIZE + 4 + 1 + 4;
    const uint32_t max_size = 65535 + 4 * VQZ_MAX_LEVELS + VQZ_MODEL_NAME_MAX + 4;
    VQZ_FAIL_IF(size < min_size, VQZ_ERR_FORMAT, "packet_size %u is below the smallest header packet (%u)", size,
                min_size);
    VQZ_FAIL_IF(size > max_size, VQZ_ERR_LIMIT, "packet_size %u exceeds the limit of %u", size, max_size);
    VQZ_FAIL_IF(n < size, VQZ_ERR_TRUNCATED, "packet of %zu bytes, its packet_size says %u", n, size);
    VQZ_FAIL_IF(n > size, VQZ_ERR_FORMAT, "%zu bytes follow the packet (packet_size %u)", n - size, size);
    uint32_t stored = vqz_get_u32(p + size - 4), crc = vqz_crc32(p, size - 4);
    VQZ_FAIL_IF(stored != crc, VQZ_ERR_CHECKSUM, "CRC-32 mismatch (stored %08x, computed %08x)", stored, crc);

    uint16_t fixed = vqz_get_u16(p + SH_FIXED_SIZE);
    int strict = h->version_minor <= VQZ_STREAM_MINOR;
    VQZ_FAIL_IF(fixed < VQZ_STREAM_FIXED_SIZE || (strict && fixed != VQZ_STREAM_FIXED_SIZE), VQZ_ERR_FORMAT,
                "fixed_size %u (version %u.%u has %d)", fixed, h->version_major, h->version_minor,
                VQZ_STREAM_FIXED_SIZE);
    h->levels = p[SH_LEVELS];
    uint32_t name_len = p[SH_NAME_LEN];
    h->channels = vqz_get_u16(p + SH_CHANNELS);
    h->sample_rate = vqz_get_u32(p + SH_RATE);
    h->model_rate = vqz_get_u32(p + SH_MODEL_RATE);
    h->stride = vqz_get_u32(p + SH_STRIDE);
    h->packet_frames = vqz_get_u32(p + SH_PACKET_FRAMES);
    memcpy(h->model_sha256, p + SH_SHA, 32);
    VQZ_FAIL_IF(strict && (!all_zero(p + SH_RESERVED0, 2) || !all_zero(p + SH_RESERVED1, 8)), VQZ_ERR_FORMAT,
                "reserved bytes are not zero");
    VQZ_FAIL_IF(h->levels < 1 || h->levels > VQZ_MAX_LEVELS, VQZ_ERR_FORMAT, "level count %d is not in 1..%d",
                h->levels, VQZ_MAX_LEVELS);
    VQZ_FAIL_IF(name_len < 1, VQZ_ERR_FORMAT, "model name is empty");
    uint64_t expect = (uint64_t)fixed + 4u * (uint32_t)h->levels + name_len + 4;
    VQZ_FAIL_IF(size != expect, VQZ_ERR_FORMAT,
                "packet_size %u, but fixed_size %u, %d levels and a %u-byte model name need %llu", size, fixed,
                h->levels, name_len, (unsigned long long)expect);
    size_t pos = fixed;
    for (int l = 0; l < h->levels; l++, pos += 4)
        h->K[l] = vqz_get_u32(p + pos);
    memcpy(h->model_name, p + pos, name_len);
    h->model_name[name_len] = '\0';
    VQZ_FAIL_IF(!name_ok(h->model_name, name_len), VQZ_ERR_FORMAT,
                "model name is not printable UTF-8 without NUL bytes");
    return check_header_fields(h, VQZ_ERR_FORMAT);
}

vqz_status vqz_stream_header_read(const uint8_t *p, size_t n, vqz_stream_header *h)
{
    vqz_status s = read_header_impl(p, n, h);
    if (s != VQZ_OK)
        vqz_error_prefix("stream packet 0 (header): ");
    return s;
}

/* ---------------------------------------------------------------------------------------------- */
/* Data packets */

vqz_status vqz_stream_coder_create(int zstd_level, vqz_stream_coder **out)
{
    *out = NULL;
    if (zstd_level == 0)
        zstd_level = VQZ_DEFAULT_ZSTD_LEVEL;
    VQZ_FAIL_IF(zstd_level < ZSTD_minCLevel() || zstd_level > ZSTD_maxCLevel(), VQZ_ERR_INVALID_ARG,
                "zstd level %d is not in %d..%d", zstd_level, ZSTD_minCLevel(), ZSTD_maxCLevel());
    vqz_stream_coder *c = calloc(1, sizeof *c);
    VQZ_FAIL_IF(!c, VQZ_ERR_NOMEM, "out of memory for a stream coder");
    c->zstd_level = zstd_level;
    c->cctx = ZSTD_createCCtx();
    c->dctx = ZSTD_createDCtx();
    if (!c->cctx || !c->dctx) {
        vqz_stream_coder_free(c);
        return vqz_fail(VQZ_ERR_NOMEM, "out of memory for zstd contexts");
    }
    *out = c;
    return VQZ_OK;
}

void vqz_stream_coder_free(vqz_stream_coder *c)
{
    if (!c)
        return;
    ZSTD_freeCCtx(c->cctx);
    ZSTD_freeDCtx(c->dctx);
    free(c->raw);
    free(c->seg);
    free(c);
}

static vqz_status grow_raw(vqz_stream_coder *c, size_t n)
{
    if (n <= c->raw_cap)
        return VQZ_OK;
    uint8_t *p = realloc(c->raw, n);
    VQZ_FAIL_IF(!p, VQZ_ERR_NOMEM, "cannot allocate %zu bytes", n);
    c->raw = p;
    c->raw_cap = n;
    return VQZ_OK;
}

/* Checks what the writer and the parser both require of a data packet's fields. */
static vqz_status check_packet_fields(const vqz_stream_header *h, const vqz_stream_packet *pk, vqz_status bad)
{
    VQZ_FAIL_IF(pk->sequence < 1, bad, "sequence number 0 (data packets count from 1)");
    VQZ_FAIL_IF(pk->levels < 1 || pk->levels > h->levels, bad, "level count %d is not in 1..%d (the stream's)",
                pk->levels, h->levels);
    VQZ_FAIL_IF(pk->frame_count > h->packet_frames, bad, "frame_count %u exceeds the stream's packet_frames %u",
                pk->frame_count, h->packet_frames);
    VQZ_FAIL_IF(pk->frame_count == 0 && !pk->end, bad, "frame_count 0 in a packet that does not end the stream");
    VQZ_FAIL_IF(pk->first_frame > VQZ_STREAM_MAX_SAMPLES, bad, "first_frame %llu exceeds 2^48",
                (unsigned long long)pk->first_frame);
    VQZ_FAIL_IF(!pk->end && pk->total_samples != 0, bad, "total_samples %llu in a packet that does not end the stream",
                (unsigned long long)pk->total_samples);
    VQZ_FAIL_IF(pk->total_samples > VQZ_STREAM_MAX_SAMPLES, bad, "total_samples %llu exceeds 2^48",
                (unsigned long long)pk->total_samples);
    return VQZ_OK;
}

static vqz_status write_packet_impl(vqz_stream_coder *c, const vqz_stream_header *h, const vqz_stream_packet *pk,
                                    const uint16_t *const *idx, uint8_t **out, size_t *n)
{
    VQZ_TRY(check_packet_fields(h, pk, VQZ_ERR_INVALID_ARG));
    size_t per_level = (size_t)h->channels * pk->frame_count;
    size_t raw_n = (size_t)vqz_stream_raw_size(h, pk->levels, pk->frame_count);
    VQZ_TRY(grow_raw(c, raw_n > 0 ? raw_n : 1));
    size_t seg_need = (size_t)pk->levels * VQZ_PACK_MAX_SEGMENTS;
    if (seg_need > c->seg_cap) {
        size_t *sp = realloc(c->seg, seg_need * sizeof *sp);
        VQZ_FAIL_IF(!sp, VQZ_ERR_NOMEM, "out of memory for %zu segment sizes", seg_need);
        c->seg = sp;
        c->seg_cap = seg_need;
    }
    /* each level's segments are its own zstd blocks, as in a .vqz frame: levels have their own statistics */
    size_t pos = 0;
    int nseg = 0;
    for (int l = 0; l < pk->levels; l++) {
        uint32_t K = h->K[l];
        for (size_t i = 0; i < per_level; i++)
            VQZ_FAIL_IF(idx[l][i] >= K, VQZ_ERR_INDEX_RANGE, "level %d: index %u at %zu is >= K=%u", l + 1,
                        idx[l][i], i, K);
        int ns = 0;
        vqz_pack_indices(idx[l], per_level, K, c->raw + pos, c->seg + nseg, &ns);
        nseg += ns;
        pos += vqz_pack_size(K, per_level);
    }
    uint8_t *comp = NULL;
    size_t comp_n = 0;
    VQZ_TRY(vqz_zstd_compress(c->cctx, c->zstd_level, c->raw, raw_n, c->seg, nseg, &comp, &comp_n));
    size_t size = VQZ_STREAM_DATA_HEADER + comp_n + 4;
    uint8_t *b = malloc(size);
    if (!b) {
        free(comp);
        return vqz_fail(VQZ_ERR_NOMEM, "cannot allocate %zu bytes", size);
    }
    memcpy(b + SD_MAGIC, vqz_stream_data_magic, 4);
    vqz_put_u32(b + SD_PACKET_SIZE, (uint32_t)size);
    vqz_put_u32(b + SD_SEQUENCE, pk->sequence);
    vqz_put_u16(b + SD_FRAMES, (uint16_t)pk->frame_count);
    b[SD_LEVELS] = (uint8_t)pk->levels;
    b[SD_FLAGS] = pk->end ? VQZ_STREAM_FLAG_END : 0;
    vqz_put_u64(b + SD_FIRST_FRAME, pk->first_frame);
    vqz_put_u64(b + SD_TOTAL, pk->total_samples);
    memcpy(b + VQZ_STREAM_DATA_HEADER, comp, comp_n);
    free(comp);
    vqz_put_u32(b + size - 4, vqz_crc32(b, size - 4));
    *out = b;
    *n = size;
    return VQZ_OK;
}

vqz_status vqz_stream_packet_write(vqz_stream_coder *c, const vqz_stream_header *h, const vqz_stream_packet *pk,
                                   const uint16_t *const *idx, uint8_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    vqz_status s = write_packet_impl(c, h, pk, idx, out, n);
    if (s != VQZ_OK)
        vqz_error_prefix("stream packet %u: ", pk->sequence);
    return s;
}

static vqz_status parse_impl(const vqz_stream_header *h, const uint8_t *p, size_t n, vqz_stream_packet *pk)
{
    memset(pk, 0, sizeof *pk);
    vqz_stream_packet_kind kind;
    VQZ_TRY(vqz_stream_packet_kind_of(p, n, &kind));
    VQZ_FAIL_IF(kind != VQZ_STREAM_PACKET_DATA, VQZ_ERR_FORMAT, "a second stream header packet");
    VQZ_FAIL_IF(n < VQZ_STREAM_DATA_HEADER, VQZ_ERR_TRUNCATED, "packet cut after %zu bytes of its %d-byte header",
                n, VQZ_STREAM_DATA_HEADER);
    uint32_t size = vqz_get_u32(p + SD_PACKET_SIZE);
    /* the largest packet the stream header allows, before anything of that size is touched */
    uint64_t raw_max = vqz_stream_raw_size(h, h->levels, h->packet_frames);
    uint64_t max_size = VQZ_STREAM_DATA_HEADER + vqz_comp_bound(raw_max) + 4;
    VQZ_FAIL_IF(size < VQZ_STREAM_DATA_HEADER + ZSTD_MIN_FRAME + 4, VQZ_ERR_FORMAT,
                "packet_size %u is below the smallest data packet (%d)", size,
                VQZ_STREAM_DATA_HEADER + ZSTD_MIN_FRAME + 4);
    VQZ_FAIL_IF(size > max_size, VQZ_ERR_LIMIT, "packet_size %u exceeds the %llu bytes the stream header allows",
                size, (unsigned long long)max_size);
    VQZ_FAIL_IF(n < size, VQZ_ERR_TRUNCATED, "packet of %zu bytes, its packet_size says %u", n, size);
    VQZ_FAIL_IF(n > size, VQZ_ERR_FORMAT, "%zu bytes follow the packet (packet_size %u)", n - size, size);
    uint32_t stored = vqz_get_u32(p + size - 4), crc = vqz_crc32(p, size - 4);
    VQZ_FAIL_IF(stored != crc, VQZ_ERR_CHECKSUM, "CRC-32 mismatch (stored %08x, computed %08x)", stored, crc);

    pk->sequence = vqz_get_u32(p + SD_SEQUENCE);
    pk->frame_count = vqz_get_u16(p + SD_FRAMES);
    pk->levels = p[SD_LEVELS];
    uint8_t flags = p[SD_FLAGS];
    pk->end = (flags & VQZ_STREAM_FLAG_END) != 0;
    pk->first_frame = vqz_get_u64(p + SD_FIRST_FRAME);
    pk->total_samples = vqz_get_u64(p + SD_TOTAL);
    VQZ_FAIL_IF(h->version_minor <= VQZ_STREAM_MINOR && (flags & ~VQZ_STREAM_FLAG_END), VQZ_ERR_FORMAT,
                "reserved flag bits set (flags %02x)", flags);
    VQZ_TRY(check_packet_fields(h, pk, VQZ_ERR_FORMAT));
    pk->raw_size = (size_t)vqz_stream_raw_size(h, pk->levels, pk->frame_count);
    pk->comp_size = size - VQZ_STREAM_DATA_HEADER - 4;
    VQZ_FAIL_IF(pk->comp_size > vqz_comp_bound(pk->raw_size), VQZ_ERR_FORMAT,
                "zstd frame of %zu bytes exceeds the bound %llu for %zu packed bytes", pk->comp_size,
                (unsigned long long)vqz_comp_bound(pk->raw_size), pk->raw_size);
    return VQZ_OK;
}

vqz_status vqz_stream_packet_parse(const vqz_stream_header *h, uint64_t packet_no, const uint8_t *p, size_t n,
                                   vqz_stream_packet *pk)
{
    vqz_status s = parse_impl(h, p, n, pk);
    if (s != VQZ_OK)
        vqz_error_prefix("stream packet %llu: ", (unsigned long long)packet_no);
    return s;
}

static vqz_status indices_impl(vqz_stream_coder *c, const vqz_stream_header *h, const uint8_t *p,
                               const vqz_stream_packet *pk, uint16_t *idx, size_t n)
{
    size_t per_level = (size_t)h->channels * pk->frame_count;
    VQZ_FAIL_IF(n != per_level * (size_t)pk->levels, VQZ_ERR_INVALID_ARG,
                "the packet holds %zu indices, the buffer %zu", per_level * (size_t)pk->levels, n);
    VQZ_TRY(grow_raw(c, pk->raw_size > 0 ? pk->raw_size : 1));
    VQZ_TRY(vqz_zstd_decompress(c->dctx, p + VQZ_STREAM_DATA_HEADER, pk->comp_size, c->raw, pk->raw_size));
    size_t pos = 0;
    for (int l = 0; l < pk->levels; l++) {
        size_t len = vqz_pack_size(h->K[l], per_level);
        vqz_status s = vqz_unpack_indices(c->raw + pos, len, h->K[l], idx + (size_t)l * per_level, per_level);
        if (s != VQZ_OK) {
            vqz_error_prefix("level %d: ", l + 1);
            return s;
        }
        pos += len;
    }
    return VQZ_OK;
}

vqz_status vqz_stream_packet_indices(vqz_stream_coder *c, const vqz_stream_header *h, uint64_t packet_no,
                                     const uint8_t *p, const vqz_stream_packet *pk, uint16_t *idx, size_t n)
{
    vqz_status s = indices_impl(c, h, p, pk, idx, n);
    if (s != VQZ_OK)
        vqz_error_prefix("stream packet %llu: ", (unsigned long long)packet_no);
    return s;
}
