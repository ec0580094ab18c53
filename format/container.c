/* container.c — the .vqz reader: header parsing and validation, section and frame tables, random access
 * to one level or one chunk, and the lower-rate copy. Every size is checked against the limits and the
 * file size before anything is allocated or read. */
#include "format/container.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "format/bytes.h"
#include "format/container_internal.h"
#include "format/crc32.h"
#include "format/pack.h"
#include "format/sha256.h"
#include "format/utf8.h"

const uint8_t vqz_signature[VQZ_SIGNATURE_SIZE] = {0x89, 'V', 'Q', 'Z', 0x0d, 0x0a, 0x1a, 0x0a};

void vqz_limits_default(vqz_limits *lim)
{
    lim->max_header_bytes = (uint64_t)16 << 20;
    lim->max_level_indices = (uint64_t)1 << 26;
    lim->max_chunk_indices = (uint64_t)1 << 24;
    lim->max_metadata_bytes = (uint64_t)1 << 20;
    lim->max_alpha_bytes = (uint64_t)1 << 29;
    lim->max_image_pixels = (uint64_t)1 << 28;
}

/* ---------------------------------------------------------------------------------------------- */
/* Derived geometry */

uint32_t vqz_header_chunks_x(const vqz_header *h)
{
    return h->chunk_width ? (uint32_t)(((uint64_t)h->grid_width + h->chunk_width - 1) / h->chunk_width) : 0;
}

uint32_t vqz_header_chunks_y(const vqz_header *h)
{
    return h->chunk_height ? (uint32_t)(((uint64_t)h->grid_height + h->chunk_height - 1) / h->chunk_height) : 0;
}

uint32_t vqz_header_chunk_count(const vqz_header *h)
{
    return vqz_header_chunks_x(h) * vqz_header_chunks_y(h);
}

vqz_chunk_rect vqz_header_chunk_rect(const vqz_header *h, uint32_t c)
{
    vqz_chunk_rect r;
    uint32_t cx = vqz_header_chunks_x(h);
    r.y = (c / cx) * h->chunk_height;
    r.x = (c % cx) * h->chunk_width;
    r.h = h->grid_height - r.y < h->chunk_height ? h->grid_height - r.y : h->chunk_height;
    r.w = h->grid_width - r.x < h->chunk_width ? h->grid_width - r.x : h->chunk_width;
    return r;
}

uint64_t vqz_header_chunk_indices(const vqz_header *h, uint32_t c)
{
    vqz_chunk_rect r = vqz_header_chunk_rect(h, c);
    return (uint64_t)h->grid_planes * r.h * r.w;
}

uint64_t vqz_header_level_indices(const vqz_header *h)
{
    return (uint64_t)h->grid_planes * h->grid_height * h->grid_width;
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

vqz_status vqz_header_validate(const vqz_header *h, const vqz_limits *lim)
{
    vqz_limits def;
    if (!lim) {
        vqz_limits_default(&def);
        lim = &def;
    }
    VQZ_FAIL_IF(h->media_kind != VQZ_MEDIA_IMAGE && h->media_kind != VQZ_MEDIA_AUDIO, VQZ_ERR_UNSUPPORTED,
                "media kind %u is not image (1) or audio (2)", h->media_kind);
    VQZ_FAIL_IF(h->levels < 1 || h->levels > VQZ_MAX_LEVELS, VQZ_ERR_FORMAT, "level count %u is not in 1..%d",
                h->levels, VQZ_MAX_LEVELS);
    for (int l = 0; l < h->levels; l++)
        VQZ_FAIL_IF(h->K[l] < VQZ_MIN_K || h->K[l] > VQZ_MAX_K, VQZ_ERR_FORMAT,
                    "level %d: codebook size K=%u is not in %d..%d", l, h->K[l], VQZ_MIN_K, VQZ_MAX_K);
    VQZ_FAIL_IF(h->grid_planes < 1 || h->grid_height < 1 || h->grid_width < 1, VQZ_ERR_FORMAT,
                "latent grid %u x %u x %u has an empty dimension", h->grid_planes, h->grid_height, h->grid_width);
    /* Step by step so the product cannot overflow before it is compared. */
    uint64_t plane_cells = (uint64_t)h->grid_height * h->grid_width;
    VQZ_FAIL_IF(plane_cells > lim->max_level_indices || h->grid_planes > lim->max_level_indices / plane_cells,
                VQZ_ERR_LIMIT, "latent grid %u x %u x %u exceeds the limit of %llu indices per level",
                h->grid_planes, h->grid_height, h->grid_width, (unsigned long long)lim->max_level_indices);
    VQZ_FAIL_IF(h->chunk_height < 1 || h->chunk_height > h->grid_height || h->chunk_width < 1 ||
                    h->chunk_width > h->grid_width,
                VQZ_ERR_FORMAT, "chunk %u x %u does not fit the latent grid %u x %u", h->chunk_height,
                h->chunk_width, h->grid_height, h->grid_width);
    uint64_t chunk_cells = (uint64_t)h->grid_planes * h->chunk_height * h->chunk_width;
    VQZ_FAIL_IF(chunk_cells > lim->max_chunk_indices, VQZ_ERR_LIMIT,
                "chunk of %u x %u x %u indices exceeds the limit of %llu", h->grid_planes, h->chunk_height,
                h->chunk_width, (unsigned long long)lim->max_chunk_indices);
    VQZ_FAIL_IF(h->stride < 1 || h->stride > 65536, VQZ_ERR_FORMAT, "stride %u is not in 1..65536", h->stride);
    size_t nlen = strnlen(h->model_name, sizeof h->model_name);
    VQZ_FAIL_IF(!name_ok(h->model_name, nlen), VQZ_ERR_FORMAT,
                "model name must be 1..%d bytes of printable UTF-8", VQZ_MODEL_NAME_MAX);
    if (h->media_kind == VQZ_MEDIA_IMAGE) {
        const vqz_image_geometry *g = &h->image;
        VQZ_FAIL_IF(g->width < 1 || g->height < 1, VQZ_ERR_FORMAT, "image size %u x %u is empty", g->width,
                    g->height);
        VQZ_FAIL_IF((uint64_t)g->width * g->height > lim->max_image_pixels, VQZ_ERR_LIMIT,
                    "image %u x %u exceeds the limit of %llu pixels", g->width, g->height,
                    (unsigned long long)lim->max_image_pixels);
        VQZ_FAIL_IF(g->channels < 1 || g->channels > 4, VQZ_ERR_FORMAT, "image channel count %u is not in 1..4",
                    g->channels);
        VQZ_FAIL_IF(g->bit_depth != 8 && g->bit_depth != 16, VQZ_ERR_FORMAT, "image bit depth %u is not 8 or 16",
                    g->bit_depth);
        VQZ_FAIL_IF(g->colour_space > VQZ_COLOUR_LINEAR, VQZ_ERR_UNSUPPORTED, "colour space %u is unknown",
                    g->colour_space);
    } else {
        const vqz_audio_geometry *g = &h->audio;
        VQZ_FAIL_IF(g->sample_rate < 1 || g->sample_rate > 1048576 || g->model_rate < 1 ||
                        g->model_rate > 1048576,
                    VQZ_ERR_FORMAT, "sample rates %u / %u Hz are not in 1..1048576", g->sample_rate,
                    g->model_rate);
        VQZ_FAIL_IF(g->sample_count < 1 || g->sample_count > ((uint64_t)1 << 48), VQZ_ERR_FORMAT,
                    "sample count %llu is not in 1..2^48", (unsigned long long)g->sample_count);
        VQZ_FAIL_IF(g->channels < 1, VQZ_ERR_FORMAT, "audio has no channels");
        VQZ_FAIL_IF(g->bit_depth != 0 && g->bit_depth != 8 && g->bit_depth != 16 && g->bit_depth != 24 &&
                        g->bit_depth != 32,
                    VQZ_ERR_FORMAT, "audio bit depth %u is not 0, 8, 16, 24 or 32", g->bit_depth);
    }
    return VQZ_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Reader */

struct vqz_container {
    char name[256]; /* file name for messages */
    const uint8_t *mem;
    int fd;
    uint64_t file_size;
    vqz_limits lim;
    vqz_header h;
    uint32_t chunks;
    uint64_t header_size, payload_start, full_size;
    vqz_frame_info *frames; /* levels x chunks, level-major */
    uint32_t nsections;
    vqz_section_entry *sections;
    uint64_t *section_offsets;
    int meta_index, alpha_index; /* into sections, -1 when absent */
    int has_prior_section;
    const vqz_prior *prior[VQZ_MAX_LEVELS]; /* borrowed, per level; NULL until set */
    uint64_t alpha_raw;
    char *meta_text;
    uint8_t *cbuf, *rbuf;
    size_t cbuf_cap, rbuf_cap;
    ZSTD_DCtx *dctx;
};

static vqz_status read_at(const vqz_container *c, uint64_t off, void *buf, size_t n)
{
    if (off > c->file_size || n > c->file_size - off)
        return vqz_fail(VQZ_ERR_TRUNCATED, "needs bytes %llu..%llu, the file has %llu",
                        (unsigned long long)off, (unsigned long long)(off + n), (unsigned long long)c->file_size);
    if (n == 0)
        return VQZ_OK; /* buf may be NULL: an empty section has no buffer */
    if (c->mem) {
        memcpy(buf, c->mem + off, n);
        return VQZ_OK;
    }
    uint8_t *p = (uint8_t *)buf;
    while (n > 0) {
        ssize_t r = pread(c->fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return vqz_fail(VQZ_ERR_IO, "read of %zu bytes at offset %llu failed: %s", n, (unsigned long long)off,
                            r < 0 ? strerror(errno) : "unexpected end of file");
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return VQZ_OK;
}

static vqz_status grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return VQZ_OK;
    uint8_t *p = (uint8_t *)realloc(*buf, need);
    VQZ_FAIL_IF(!p, VQZ_ERR_NOMEM, "cannot allocate %zu bytes", need);
    *buf = p;
    *cap = need;
    return VQZ_OK;
}

/* Explain a signature that does not match, naming the usual transfer damage. */
static vqz_status signature_error(const uint8_t *b, size_t n)
{
    static const uint8_t lf_only[7] = {0x89, 'V', 'Q', 'Z', 0x0a, 0x1a, 0x0a};
    if (n >= 7 && memcmp(b, lf_only, 7) == 0)
        return vqz_fail(VQZ_ERR_SIGNATURE, "bad signature: CR LF became LF (transferred in text mode?)");
    if (n >= 8 && b[0] == 0x89 && memcmp(b + 1, "VQZ\r\r\n", 6) == 0)
        return vqz_fail(VQZ_ERR_SIGNATURE, "bad signature: LF became CR LF (transferred in text mode?)");
    if (n >= 4 && b[0] == 0x09 && memcmp(b + 1, "VQZ", 3) == 0)
        return vqz_fail(VQZ_ERR_SIGNATURE, "bad signature: high bit of byte 0 cleared (7-bit transfer?)");
    char hex[3 * VQZ_SIGNATURE_SIZE + 1];
    size_t m = n < VQZ_SIGNATURE_SIZE ? n : VQZ_SIGNATURE_SIZE;
    for (size_t i = 0; i < m; i++)
        snprintf(hex + 3 * i, 4, "%02x ", b[i]);
    hex[m ? 3 * m - 1 : 0] = '\0';
    return vqz_fail(VQZ_ERR_SIGNATURE, "bad signature: not a vqz file (starts with %s)", hex);
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Parse and check the header bytes hb[header_size] (CRC already verified). */
static vqz_status parse_header(vqz_container *c, const uint8_t *hb, uint64_t header_size)
{
    vqz_header *h = &c->h;
    memset(h, 0, sizeof *h);
    h->version_major = vqz_get_u16(hb + OFF_MAJOR);
    h->version_minor = vqz_get_u16(hb + OFF_MINOR);
    /* Reserved bytes are ours to check only when the file is not newer than this reader. */
    int strict = h->version_minor <= VQZ_FORMAT_MINOR;
    uint16_t fixed_size = vqz_get_u16(hb + OFF_FIXED_SIZE);
    VQZ_FAIL_IF(fixed_size < VQZ_FIXED_HEADER_SIZE || (strict && fixed_size != VQZ_FIXED_HEADER_SIZE),
                VQZ_ERR_FORMAT, "fixed header size %u, expected %d", fixed_size, VQZ_FIXED_HEADER_SIZE);
    h->media_kind = hb[OFF_MEDIA_KIND];
    h->levels = hb[OFF_LEVELS];
    uint32_t nsections = vqz_get_u16(hb + OFF_SECTIONS);
    uint32_t name_len = hb[OFF_NAME_LEN];
    VQZ_FAIL_IF(strict && (hb[OFF_RESERVED0] || !all_zero(hb + OFF_RESERVED1, VQZ_FIXED_HEADER_SIZE - OFF_RESERVED1)),
                VQZ_ERR_FORMAT, "reserved header bytes are not zero");
    h->grid_planes = vqz_get_u32(hb + OFF_GRID_PLANES);
    h->grid_height = vqz_get_u32(hb + OFF_GRID_HEIGHT);
    h->grid_width = vqz_get_u32(hb + OFF_GRID_WIDTH);
    h->chunk_height = vqz_get_u32(hb + OFF_CHUNK_HEIGHT);
    h->chunk_width = vqz_get_u32(hb + OFF_CHUNK_WIDTH);
    h->stride = vqz_get_u32(hb + OFF_STRIDE);
    memcpy(h->model_sha256, hb + OFF_MODEL_SHA, 32);
    if (h->media_kind == VQZ_MEDIA_IMAGE) {
        h->image.width = vqz_get_u32(hb + OFF_IMG_WIDTH);
        h->image.height = vqz_get_u32(hb + OFF_IMG_HEIGHT);
        h->image.channels = hb[OFF_IMG_CHANNELS];
        h->image.bit_depth = hb[OFF_IMG_DEPTH];
        h->image.colour_space = hb[OFF_IMG_COLOUR];
        VQZ_FAIL_IF(strict && !all_zero(hb + OFF_IMG_RESERVED, OFF_RESERVED1 - OFF_IMG_RESERVED), VQZ_ERR_FORMAT,
                    "reserved image geometry bytes are not zero");
    } else if (h->media_kind == VQZ_MEDIA_AUDIO) {
        h->audio.sample_rate = vqz_get_u32(hb + OFF_AUD_RATE);
        h->audio.model_rate = vqz_get_u32(hb + OFF_AUD_MODEL_RATE);
        h->audio.sample_count = vqz_get_u64(hb + OFF_AUD_SAMPLES);
        h->audio.channels = vqz_get_u16(hb + OFF_AUD_CHANNELS);
        h->audio.bit_depth = hb[OFF_AUD_DEPTH];
        VQZ_FAIL_IF(strict && !all_zero(hb + OFF_AUD_RESERVED, OFF_RESERVED1 - OFF_AUD_RESERVED), VQZ_ERR_FORMAT,
                    "reserved audio geometry bytes are not zero");
    }
    /* The level table and name are needed for validation; their bytes are inside header_size only if the
     * declared size is large enough, so check that first. */
    uint64_t pos = fixed_size;
    VQZ_FAIL_IF(h->levels < 1 || h->levels > VQZ_MAX_LEVELS, VQZ_ERR_FORMAT, "level count %u is not in 1..%d",
                h->levels, VQZ_MAX_LEVELS);
    VQZ_FAIL_IF(pos + 4u * h->levels + name_len + 4 > header_size, VQZ_ERR_FORMAT,
                "header size %llu is too small for %u levels and a %u-byte model name",
                (unsigned long long)header_size, h->levels, name_len);
    for (int l = 0; l < h->levels; l++)
        h->K[l] = vqz_get_u32(hb + pos + 4u * (uint32_t)l);
    pos += 4u * h->levels;
    VQZ_FAIL_IF(name_len == 0, VQZ_ERR_FORMAT, "model name is empty");
    memcpy(h->model_name, hb + pos, name_len);
    h->model_name[name_len] = '\0';
    VQZ_FAIL_IF(!name_ok(h->model_name, name_len), VQZ_ERR_FORMAT,
                "model name is not printable UTF-8 without NUL bytes");
    pos += name_len;
    VQZ_TRY(vqz_header_validate(h, &c->lim));

    /* Only now are the table sizes known to be small: the grid is within the limits. */
    c->chunks = vqz_header_chunk_count(h);
    uint64_t nframes = (uint64_t)h->levels * c->chunks;
    uint64_t expect = pos + (uint64_t)VQZ_SECTION_ENTRY_SIZE * nsections + VQZ_FRAME_ENTRY_SIZE * nframes + 4;
    VQZ_FAIL_IF(header_size != expect, VQZ_ERR_FORMAT,
                "header size %llu, but %u levels x %u chunks and %u sections need %llu",
                (unsigned long long)header_size, h->levels, c->chunks, nsections, (unsigned long long)expect);

    /* Sections. */
    c->nsections = nsections;
    c->meta_index = c->alpha_index = -1;
    if (nsections) {
        c->sections = (vqz_section_entry *)calloc(nsections, sizeof *c->sections);
        c->section_offsets = (uint64_t *)calloc(nsections, sizeof *c->section_offsets);
        VQZ_FAIL_IF(!c->sections || !c->section_offsets, VQZ_ERR_NOMEM, "cannot allocate the section table");
    }
    uint64_t body = header_size;
    for (uint32_t s = 0; s < nsections; s++) {
        const uint8_t *e = hb + pos + (uint64_t)VQZ_SECTION_ENTRY_SIZE * s;
        vqz_section_entry *se = &c->sections[s];
        se->type = vqz_get_u16(e);
        se->flags = vqz_get_u16(e + 2);
        se->crc32 = vqz_get_u32(e + 4);
        se->size = vqz_get_u64(e + 8);
        VQZ_FAIL_IF(strict && (se->flags & ~VQZ_SECTION_CRITICAL), VQZ_ERR_FORMAT,
                    "section %u: reserved flag bits 0x%04x set", s, se->flags);
        /* Any size beyond the file is caught below; this bound keeps the running sum from overflowing. */
        VQZ_FAIL_IF(se->size > ((uint64_t)1 << 48), VQZ_ERR_LIMIT, "section %u: size %llu is absurd", s,
                    (unsigned long long)se->size);
        c->section_offsets[s] = body;
        body += se->size;
        if (se->type == VQZ_SECTION_METADATA) {
            VQZ_FAIL_IF(c->meta_index >= 0, VQZ_ERR_FORMAT, "section %u: second metadata section", s);
            VQZ_FAIL_IF(se->size > c->lim.max_metadata_bytes, VQZ_ERR_LIMIT,
                        "metadata of %llu bytes exceeds the limit of %llu", (unsigned long long)se->size,
                        (unsigned long long)c->lim.max_metadata_bytes);
            c->meta_index = (int)s;
        } else if (se->type == VQZ_SECTION_ALPHA) {
            VQZ_FAIL_IF(c->alpha_index >= 0, VQZ_ERR_FORMAT, "section %u: second alpha section", s);
            VQZ_FAIL_IF(h->media_kind != VQZ_MEDIA_IMAGE || (h->image.channels != 2 && h->image.channels != 4),
                        VQZ_ERR_FORMAT, "section %u: alpha plane in a file without an alpha channel", s);
            c->alpha_index = (int)s;
        } else if (se->type == VQZ_SECTION_PRIOR) {
            VQZ_FAIL_IF(c->has_prior_section, VQZ_ERR_FORMAT, "section %u: second modelled-frames section", s);
            VQZ_FAIL_IF(se->size != 0 || se->crc32 != 0 || !(se->flags & VQZ_SECTION_CRITICAL), VQZ_ERR_FORMAT,
                        "section %u: the modelled-frames section must be empty and critical (size %llu, flags 0x%04x)", s,
                        (unsigned long long)se->size, se->flags);
            c->has_prior_section = 1;
        } else if (se->flags & VQZ_SECTION_CRITICAL) {
            return vqz_fail(VQZ_ERR_UNSUPPORTED, "section %u: unknown critical section type %u (format %u.%u)", s,
                            se->type, h->version_major, h->version_minor);
        }
    }
    if (h->media_kind == VQZ_MEDIA_IMAGE && (h->image.channels == 2 || h->image.channels == 4))
        VQZ_FAIL_IF(c->alpha_index < 0, VQZ_ERR_FORMAT, "image has %u channels but no alpha section",
                    h->image.channels);
    if (c->alpha_index >= 0) {
        const vqz_section_entry *se = &c->sections[c->alpha_index];
        uint64_t want = (uint64_t)h->image.width * h->image.height * (h->image.bit_depth / 8);
        VQZ_FAIL_IF(want > c->lim.max_alpha_bytes, VQZ_ERR_LIMIT, "alpha plane of %llu bytes exceeds the limit of %llu",
                    (unsigned long long)want, (unsigned long long)c->lim.max_alpha_bytes);
        VQZ_FAIL_IF(se->size < VQZ_ALPHA_PREFIX + 4 || se->size - VQZ_ALPHA_PREFIX > vqz_comp_bound(want),
                    VQZ_ERR_LIMIT, "alpha section of %llu bytes for a %llu-byte plane", (unsigned long long)se->size,
                    (unsigned long long)want);
        c->alpha_raw = want;
    }
    pos += (uint64_t)VQZ_SECTION_ENTRY_SIZE * nsections;

    /* Frame table. */
    c->payload_start = body;
    c->frames = (vqz_frame_info *)calloc(nframes, sizeof *c->frames);
    VQZ_FAIL_IF(!c->frames, VQZ_ERR_NOMEM, "cannot allocate the frame table (%llu frames)",
                (unsigned long long)nframes);
    uint64_t off = body;
    for (int l = 0; l < h->levels; l++) {
        for (uint32_t ch = 0; ch < c->chunks; ch++) {
            const uint8_t *e = hb + pos;
            vqz_frame_info *f = &c->frames[(uint64_t)l * c->chunks + ch];
            f->offset = off;
            f->comp_size = vqz_get_u32(e);
            f->raw_size = vqz_get_u32(e + 4);
            f->crc32 = vqz_get_u32(e + 8);
            pos += VQZ_FRAME_ENTRY_SIZE;
            uint64_t n = vqz_header_chunk_indices(h, ch);
            uint64_t want = vqz_pack_size(h->K[l], (size_t)n);
            VQZ_FAIL_IF(f->raw_size != want, VQZ_ERR_FORMAT,
                        "level %d, chunk %u: packed size %u bytes, expected %llu for %llu indices with K=%u", l, ch,
                        f->raw_size, (unsigned long long)want, (unsigned long long)n, h->K[l]);
            VQZ_FAIL_IF(f->comp_size < 4 || f->comp_size > vqz_comp_bound(want), VQZ_ERR_LIMIT,
                        "level %d, chunk %u: compressed size %u bytes is outside 4..%llu", l, ch, f->comp_size,
                        (unsigned long long)vqz_comp_bound(want));
            off += f->comp_size;
        }
    }
    c->full_size = off;
    return VQZ_OK;
}

static vqz_status open_common(vqz_container *c)
{
    uint8_t head[16];
    size_t got = c->file_size < sizeof head ? (size_t)c->file_size : sizeof head;
    VQZ_TRY(read_at(c, 0, head, got));
    VQZ_FAIL_IF(got == 0, VQZ_ERR_TRUNCATED, "file is empty");
    size_t m = got < VQZ_SIGNATURE_SIZE ? got : VQZ_SIGNATURE_SIZE;
    if (memcmp(head, vqz_signature, m) != 0)
        return signature_error(head, got);
    VQZ_FAIL_IF(got < sizeof head, VQZ_ERR_TRUNCATED, "header cut after %zu bytes", got);
    uint16_t major = vqz_get_u16(head + OFF_MAJOR), minor = vqz_get_u16(head + OFF_MINOR);
    VQZ_FAIL_IF(major != VQZ_FORMAT_MAJOR, VQZ_ERR_VERSION, "format version %u.%u is not supported (this reader: %d.%d)",
                major, minor, VQZ_FORMAT_MAJOR, VQZ_FORMAT_MINOR);
    uint64_t header_size = vqz_get_u32(head + OFF_HEADER_SIZE);
    VQZ_FAIL_IF(header_size < VQZ_FIXED_HEADER_SIZE + 4 + 1 + 4, VQZ_ERR_FORMAT, "header size %llu is too small",
                (unsigned long long)header_size);
    VQZ_FAIL_IF(header_size > c->lim.max_header_bytes, VQZ_ERR_LIMIT, "header size %llu exceeds the limit of %llu",
                (unsigned long long)header_size, (unsigned long long)c->lim.max_header_bytes);
    VQZ_FAIL_IF(header_size > c->file_size, VQZ_ERR_TRUNCATED, "header of %llu bytes cut after %llu bytes",
                (unsigned long long)header_size, (unsigned long long)c->file_size);
    uint8_t *hb = (uint8_t *)malloc((size_t)header_size);
    VQZ_FAIL_IF(!hb, VQZ_ERR_NOMEM, "cannot allocate %llu header bytes", (unsigned long long)header_size);
    vqz_status s = read_at(c, 0, hb, (size_t)header_size);
    if (s == VQZ_OK) {
        uint32_t stored = vqz_get_u32(hb + header_size - 4);
        uint32_t computed = vqz_crc32(hb, (size_t)header_size - 4);
        if (stored != computed)
            s = vqz_fail(VQZ_ERR_CHECKSUM, "header CRC-32 mismatch (stored %08x, computed %08x)", stored, computed);
    }
    if (s == VQZ_OK) {
        c->header_size = header_size;
        s = parse_header(c, hb, header_size);
    }
    free(hb);
    VQZ_TRY(s);
    VQZ_FAIL_IF(c->payload_start > c->file_size, VQZ_ERR_TRUNCATED,
                "sections end at byte %llu, the file has %llu", (unsigned long long)c->payload_start,
                (unsigned long long)c->file_size);
    VQZ_FAIL_IF(c->file_size > c->full_size, VQZ_ERR_FORMAT, "%llu bytes of trailing data after the last frame",
                (unsigned long long)(c->file_size - c->full_size));
    c->dctx = ZSTD_createDCtx();
    VQZ_FAIL_IF(!c->dctx, VQZ_ERR_NOMEM, "cannot create a zstd decoder");
    return VQZ_OK;
}

static vqz_container *container_new(const char *name, const vqz_limits *lim)
{
    vqz_container *c = (vqz_container *)calloc(1, sizeof *c);
    if (!c)
        return NULL;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->fd = -1;
    if (lim)
        c->lim = *lim;
    else
        vqz_limits_default(&c->lim);
    return c;
}

vqz_status vqz_container_open_memory(const uint8_t *data, size_t size, const vqz_limits *lim, vqz_container **out)
{
    *out = NULL;
    VQZ_FAIL_IF(!data && size, VQZ_ERR_INVALID_ARG, "container: NULL data");
    vqz_container *c = container_new("<memory>", lim);
    VQZ_FAIL_IF(!c, VQZ_ERR_NOMEM, "container: out of memory");
    c->mem = data ? data : (const uint8_t *)"";
    c->file_size = size;
    vqz_status s = open_common(c);
    if (s != VQZ_OK) {
        vqz_error_prefix("%s: ", c->name);
        vqz_container_free(c);
        return s;
    }
    *out = c;
    return VQZ_OK;
}

vqz_status vqz_container_open_file(const char *path, const vqz_limits *lim, vqz_container **out)
{
    *out = NULL;
    vqz_container *c = container_new(path, lim);
    VQZ_FAIL_IF(!c, VQZ_ERR_NOMEM, "%s: out of memory", path);
    vqz_status s = VQZ_OK;
    struct stat st;
    c->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (c->fd < 0)
        s = vqz_fail(VQZ_ERR_IO, "cannot open: %s", strerror(errno));
    else if (fstat(c->fd, &st) != 0)
        s = vqz_fail(VQZ_ERR_IO, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        s = vqz_fail(VQZ_ERR_IO, "not a regular file");
    if (s == VQZ_OK) {
        c->file_size = (uint64_t)st.st_size;
        s = open_common(c);
    }
    if (s != VQZ_OK) {
        vqz_error_prefix("%s: ", path);
        vqz_container_free(c);
        return s;
    }
    *out = c;
    return VQZ_OK;
}

void vqz_container_free(vqz_container *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    ZSTD_freeDCtx(c->dctx);
    free(c->frames);
    free(c->sections);
    free(c->section_offsets);
    free(c->meta_text);
    free(c->cbuf);
    free(c->rbuf);
    free(c);
}

const vqz_header *vqz_container_header(const vqz_container *c)
{
    return &c->h;
}

uint64_t vqz_container_file_size(const vqz_container *c)
{
    return c->file_size;
}

uint64_t vqz_container_full_size(const vqz_container *c)
{
    return c->full_size;
}

int vqz_container_levels_available(const vqz_container *c)
{
    int n = 0;
    for (int l = 0; l < c->h.levels; l++) {
        const vqz_frame_info *last = &c->frames[(uint64_t)l * c->chunks + c->chunks - 1];
        if (last->offset + last->comp_size > c->file_size)
            break;
        n++;
    }
    return n;
}

static vqz_status check_frame_args(const vqz_container *c, int level, uint32_t chunk)
{
    VQZ_FAIL_IF(level < 0 || level >= c->h.levels, VQZ_ERR_INVALID_ARG, "level %d is not in 0..%d", level,
                c->h.levels - 1);
    VQZ_FAIL_IF(chunk >= c->chunks, VQZ_ERR_INVALID_ARG, "chunk %u is not in 0..%u", chunk, c->chunks - 1);
    return VQZ_OK;
}

vqz_status vqz_container_frame_info(const vqz_container *c, int level, uint32_t chunk, vqz_frame_info *info)
{
    VQZ_TRY(check_frame_args(c, level, chunk));
    *info = c->frames[(uint64_t)level * c->chunks + chunk];
    return VQZ_OK;
}

/* Load frame (level, chunk) into c->cbuf and verify its CRC. */
static vqz_status load_frame(vqz_container *c, int level, uint32_t chunk, const vqz_frame_info **fi)
{
    VQZ_TRY(check_frame_args(c, level, chunk));
    const vqz_frame_info *f = &c->frames[(uint64_t)level * c->chunks + chunk];
    *fi = f;
    VQZ_FAIL_IF(f->offset >= c->file_size, VQZ_ERR_MISSING,
                "level %d, chunk %u: frame absent (file ends at byte %llu, frame starts at %llu)", level, chunk,
                (unsigned long long)c->file_size, (unsigned long long)f->offset);
    VQZ_FAIL_IF(f->offset + f->comp_size > c->file_size, VQZ_ERR_TRUNCATED,
                "level %d, chunk %u: frame cut (bytes %llu..%llu, file ends at %llu)", level, chunk,
                (unsigned long long)f->offset, (unsigned long long)(f->offset + f->comp_size),
                (unsigned long long)c->file_size);
    VQZ_TRY(grow(&c->cbuf, &c->cbuf_cap, f->comp_size));
    VQZ_TRY(read_at(c, f->offset, c->cbuf, f->comp_size));
    uint32_t crc = vqz_crc32(c->cbuf, f->comp_size);
    VQZ_FAIL_IF(crc != f->crc32, VQZ_ERR_CHECKSUM,
                "level %d, chunk %u: frame CRC-32 mismatch (stored %08x, computed %08x)", level, chunk, f->crc32,
                crc);
    return VQZ_OK;
}

static vqz_status read_chunk_impl(vqz_container *c, int level, uint32_t chunk, uint16_t *idx, size_t n)
{
    const vqz_frame_info *f;
    VQZ_TRY(load_frame(c, level, chunk, &f));
    uint64_t want = vqz_header_chunk_indices(&c->h, chunk);
    VQZ_FAIL_IF(n != want, VQZ_ERR_INVALID_ARG, "chunk %u holds %llu indices, the buffer %zu", chunk,
                (unsigned long long)want, n);
    vqz_status s;
    if (vqz_arith_is_frame(c->cbuf, f->comp_size)) {
        if (!c->has_prior_section)
            s = vqz_fail(VQZ_ERR_FORMAT, "modelled frame in a file without the modelled-frames section");
        else
            s = vqz_arith_decode(c->prior[level], c->h.K[level], c->cbuf, f->comp_size, idx, n);
    } else {
        VQZ_TRY(grow(&c->rbuf, &c->rbuf_cap, f->raw_size));
        s = vqz_zstd_decompress(c->dctx, c->cbuf, f->comp_size, c->rbuf, f->raw_size);
        if (s == VQZ_OK)
            s = vqz_unpack_indices(c->rbuf, f->raw_size, c->h.K[level], idx, n);
    }
    if (s != VQZ_OK)
        vqz_error_prefix("level %d, chunk %u: ", level, chunk);
    return s;
}

vqz_status vqz_container_set_prior(vqz_container *c, int level, const vqz_prior *prior)
{
    VQZ_FAIL_IF(level < 0 || level >= c->h.levels, VQZ_ERR_INVALID_ARG, "%s: level %d is not in 0..%d", c->name, level,
                c->h.levels - 1);
    VQZ_FAIL_IF(prior && prior->K != c->h.K[level], VQZ_ERR_INVALID_ARG, "%s: level %d has K=%u, the prior K=%u",
                c->name, level, c->h.K[level], prior->K);
    c->prior[level] = prior;
    return VQZ_OK;
}

int vqz_container_uses_prior(const vqz_container *c)
{
    return c->has_prior_section;
}

vqz_status vqz_container_frame_modelled(vqz_container *c, int level, uint32_t chunk, int *modelled)
{
    vqz_frame_info f;
    VQZ_TRY(vqz_container_frame_info(c, level, chunk, &f));
    VQZ_FAIL_IF(f.offset + f.comp_size > c->file_size, VQZ_ERR_TRUNCATED, "%s: level %d, chunk %u: frame cut",
                c->name, level, chunk);
    uint8_t head[4];
    VQZ_TRY(read_at(c, f.offset, head, sizeof head)); /* comp_size >= 4, checked at open */
    *modelled = vqz_arith_is_frame(head, sizeof head);
    return VQZ_OK;
}

vqz_status vqz_container_read_chunk(vqz_container *c, int level, uint32_t chunk, uint16_t *idx, size_t n)
{
    vqz_status s = read_chunk_impl(c, level, chunk, idx, n);
    if (s != VQZ_OK)
        vqz_error_prefix("%s: ", c->name);
    return s;
}

static vqz_status read_level_impl(vqz_container *c, int level, uint16_t *grid, size_t n)
{
    VQZ_FAIL_IF(level < 0 || level >= c->h.levels, VQZ_ERR_INVALID_ARG, "level %d is not in 0..%d", level,
                c->h.levels - 1);
    uint64_t want = vqz_header_level_indices(&c->h);
    VQZ_FAIL_IF(n != want, VQZ_ERR_INVALID_ARG, "level holds %llu indices, the buffer %zu",
                (unsigned long long)want, n);
    const vqz_header *h = &c->h;
    size_t cap = (size_t)h->grid_planes * h->chunk_height * h->chunk_width;
    uint16_t *tmp = (uint16_t *)malloc(cap * sizeof *tmp);
    VQZ_FAIL_IF(!tmp, VQZ_ERR_NOMEM, "cannot allocate %zu indices", cap);
    vqz_status s = VQZ_OK;
    for (uint32_t ch = 0; ch < c->chunks && s == VQZ_OK; ch++) {
        vqz_chunk_rect r = vqz_header_chunk_rect(h, ch);
        size_t cn = (size_t)h->grid_planes * r.h * r.w;
        s = read_chunk_impl(c, level, ch, tmp, cn);
        for (uint32_t p = 0; p < h->grid_planes && s == VQZ_OK; p++)
            for (uint32_t y = 0; y < r.h; y++)
                memcpy(grid + ((uint64_t)p * h->grid_height + r.y + y) * h->grid_width + r.x,
                       tmp + ((uint64_t)p * r.h + y) * r.w, r.w * sizeof *tmp);
    }
    free(tmp);
    return s;
}

vqz_status vqz_container_read_level(vqz_container *c, int level, uint16_t *grid, size_t n)
{
    vqz_status s = read_level_impl(c, level, grid, n);
    if (s != VQZ_OK)
        vqz_error_prefix("%s: ", c->name);
    return s;
}

vqz_status vqz_container_read_frame(vqz_container *c, int level, uint32_t chunk, uint8_t *buf, size_t cap)
{
    const vqz_frame_info *f;
    vqz_status s = load_frame(c, level, chunk, &f);
    if (s == VQZ_OK && cap < f->comp_size)
        s = vqz_fail(VQZ_ERR_INVALID_ARG, "level %d, chunk %u: frame of %u bytes, buffer of %zu", level, chunk,
                     f->comp_size, cap);
    if (s != VQZ_OK) {
        vqz_error_prefix("%s: ", c->name);
        return s;
    }
    memcpy(buf, c->cbuf, f->comp_size);
    return VQZ_OK;
}

/* Read section s's body into c->cbuf and verify its CRC. */
static vqz_status load_section(vqz_container *c, int s)
{
    const vqz_section_entry *se = &c->sections[s];
    /* Known sections were bounded at open (metadata limit, alpha bound). */
    VQZ_TRY(grow(&c->cbuf, &c->cbuf_cap, (size_t)se->size));
    VQZ_TRY(read_at(c, c->section_offsets[s], c->cbuf, (size_t)se->size));
    uint32_t crc = vqz_crc32(c->cbuf, (size_t)se->size);
    VQZ_FAIL_IF(crc != se->crc32, VQZ_ERR_CHECKSUM, "section %d (type %u): CRC-32 mismatch (stored %08x, computed %08x)",
                s, se->type, se->crc32, crc);
    return VQZ_OK;
}

static vqz_status metadata_impl(vqz_container *c, const char **text, size_t *len)
{
    VQZ_FAIL_IF(c->meta_index < 0, VQZ_ERR_MISSING, "no metadata section");
    size_t n = (size_t)c->sections[c->meta_index].size;
    if (!c->meta_text) {
        VQZ_TRY(load_section(c, c->meta_index));
        size_t bad = 0;
        VQZ_FAIL_IF(!vqz_utf8_valid(c->cbuf, n, &bad), VQZ_ERR_FORMAT,
                    "metadata is not UTF-8 without NUL bytes (byte %zu)", bad);
        c->meta_text = (char *)malloc(n + 1);
        VQZ_FAIL_IF(!c->meta_text, VQZ_ERR_NOMEM, "cannot allocate %zu bytes of metadata", n + 1);
        if (n)
            memcpy(c->meta_text, c->cbuf, n);
        c->meta_text[n] = '\0';
    }
    *text = c->meta_text;
    *len = n;
    return VQZ_OK;
}

vqz_status vqz_container_metadata(vqz_container *c, const char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    vqz_status s = metadata_impl(c, text, len);
    if (s != VQZ_OK)
        vqz_error_prefix("%s: ", c->name);
    return s;
}

int vqz_container_has_alpha(const vqz_container *c)
{
    return c->alpha_index >= 0;
}

uint64_t vqz_container_alpha_size(const vqz_container *c)
{
    return c->alpha_index >= 0 ? c->alpha_raw : 0;
}

static vqz_status alpha_impl(vqz_container *c, uint8_t *out, size_t n)
{
    VQZ_FAIL_IF(c->alpha_index < 0, VQZ_ERR_MISSING, "no alpha plane");
    VQZ_FAIL_IF(n != c->alpha_raw, VQZ_ERR_INVALID_ARG, "alpha plane has %llu bytes, the buffer %zu",
                (unsigned long long)c->alpha_raw, n);
    VQZ_TRY(load_section(c, c->alpha_index));
    uint64_t declared = vqz_get_u64(c->cbuf);
    VQZ_FAIL_IF(declared != c->alpha_raw, VQZ_ERR_FORMAT, "alpha section declares %llu bytes, the geometry needs %llu",
                (unsigned long long)declared, (unsigned long long)c->alpha_raw);
    size_t comp = (size_t)c->sections[c->alpha_index].size - VQZ_ALPHA_PREFIX;
    vqz_status s = vqz_zstd_decompress(c->dctx, c->cbuf + VQZ_ALPHA_PREFIX, comp, out, n);
    if (s != VQZ_OK)
        vqz_error_prefix("alpha plane: ");
    return s;
}

vqz_status vqz_container_read_alpha(vqz_container *c, uint8_t *out, size_t n)
{
    vqz_status s = alpha_impl(c, out, n);
    if (s != VQZ_OK)
        vqz_error_prefix("%s: ", c->name);
    return s;
}

vqz_status vqz_container_check_model(const vqz_container *c, const char *name, const uint8_t sha256[32])
{
    if (strcmp(name, c->h.model_name) == 0 && memcmp(sha256, c->h.model_sha256, 32) == 0)
        return VQZ_OK;
    char want[65], have[65];
    vqz_sha256_hex(c->h.model_sha256, want);
    vqz_sha256_hex(sha256, have);
    return vqz_fail(VQZ_ERR_MODEL_MISMATCH, "%s: made with model \"%s\" (bundle sha256 %.16s...), not with \"%s\" (%.16s...)",
                    c->name, c->h.model_name, want, name, have);
}

vqz_status vqz_container_write_levels(vqz_container *c, int levels, const char *path)
{
    VQZ_FAIL_IF(levels < 1 || levels > vqz_container_levels_available(c), VQZ_ERR_INVALID_ARG,
                "%s: cannot keep %d levels, %d are available", c->name, levels, vqz_container_levels_available(c));
    vqz_header h = c->h;
    h.levels = (uint8_t)levels;
    vqz_container_writer *w = NULL;
    VQZ_TRY(vqz_container_writer_create(&h, &w));
    vqz_status s = VQZ_OK;
    /* Known sections are copied byte for byte; unknown optional ones (newer minor versions) are dropped
     * because the copy is written as version 1.0. */
    for (uint32_t i = 0; i < c->nsections && s == VQZ_OK; i++) {
        const vqz_section_entry *se = &c->sections[i];
        if (se->type != VQZ_SECTION_METADATA && se->type != VQZ_SECTION_ALPHA)
            continue;
        s = load_section(c, (int)i);
        if (s == VQZ_OK)
            s = vqz_container_writer_put_section_raw(w, se, c->cbuf);
    }
    for (int l = 0; l < levels && s == VQZ_OK; l++) {
        for (uint32_t ch = 0; ch < c->chunks && s == VQZ_OK; ch++) {
            const vqz_frame_info *f;
            s = load_frame(c, l, ch, &f);
            if (s == VQZ_OK)
                s = vqz_container_writer_put_frame(w, l, ch, c->cbuf, f->comp_size, f->raw_size);
        }
    }
    if (s == VQZ_OK)
        s = vqz_container_writer_write_file(w, path);
    else
        vqz_error_prefix("%s: ", c->name);
    vqz_container_writer_free(w);
    return s;
}
