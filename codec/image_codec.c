/* image_codec.c — the image pipeline: pixels → padded tiles → network → index grid → .vqz container
 * (with the alpha plane and a description of the source file), and back. */
#include "codec/codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "codec/tiles.h"
#include "common/status.h"
#include "format/fileio.h"

#define DEFAULT_TILE 256
#define CHUNK_CELLS 256 /* storage chunk side in latent cells: whole levels for images up to 2048 px */

double vqz_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void vqz_options_init(vqz_options *o)
{
    memset(o, 0, sizeof *o);
    o->device = VQZ_DEVICE_AUTO;
}

void vqz_free(void *p)
{
    free(p);
}

vqz_status vqz_codec_session(const vqz_model *m, const vqz_options *o, vqz_net **net, vqz_nn_ctx **ctx)
{
    *net = NULL;
    *ctx = NULL;
    VQZ_TRY(vqz_net_create_sharing(m->net, net));
    vqz_status s = vqz_nn_ctx_create(ctx, o->device, o->threads);
    if (s != VQZ_OK) {
        vqz_net_free(*net);
        *net = NULL;
    }
    return s;
}

/* ------------------------------------------------------------------------ source description */

/* JSON kept in the file's metadata so that decoding gives back the same kind of PNG. */
static vqz_status describe_source(const vqz_image *img, char **out)
{
    cJSON *root = cJSON_CreateObject(), *src = cJSON_CreateObject();
    char *hex = NULL;
    int ok = root && src;
    if (ok) {
        cJSON_AddItemToObject(root, "source", src);
        ok &= cJSON_AddStringToObject(src, "format", img->source == VQZ_IMAGE_SRC_JPEG ? "jpeg" : "png") != NULL;
        ok &= cJSON_AddNumberToObject(src, "color_type", img->color_type) != NULL;
        ok &= cJSON_AddNumberToObject(src, "bit_depth", img->source_bit_depth) != NULL;
        ok &= cJSON_AddNumberToObject(src, "interlaced", img->interlaced) != NULL;
        ok &= cJSON_AddNumberToObject(src, "srgb_intent", img->srgb_intent) != NULL;
        ok &= cJSON_AddNumberToObject(src, "gamma", img->gamma) != NULL;
        if (img->palette_size > 0) {
            hex = malloc((size_t)img->palette_size * 8 + 1);
            ok &= hex != NULL;
            for (int i = 0; ok && i < img->palette_size; i++)
                snprintf(hex + 8 * i, 9, "%02x%02x%02x%02x", img->palette[i][0], img->palette[i][1],
                         img->palette[i][2], img->palette[i][3]);
            ok &= ok && cJSON_AddStringToObject(src, "palette", hex) != NULL;
            ok &= cJSON_AddNumberToObject(src, "palette_alpha", img->palette_alpha_size) != NULL;
        }
        if (img->has_color_key) {
            int key[3] = {img->color_key[0], img->color_key[1], img->color_key[2]};
            cJSON *k = cJSON_CreateIntArray(key, 3);
            ok &= k != NULL;
            if (k)
                cJSON_AddItemToObject(src, "color_key", k);
        }
        if (img->icc_profile && img->icc_size > 0 && img->icc_size <= 256 * 1024) {
            free(hex);
            hex = malloc(img->icc_size * 2 + 1);
            ok &= hex != NULL;
            for (size_t i = 0; ok && i < img->icc_size; i++)
                snprintf(hex + 2 * i, 3, "%02x", img->icc_profile[i]);
            ok &= ok && cJSON_AddStringToObject(src, "icc_name", img->icc_name) != NULL;
            ok &= ok && cJSON_AddStringToObject(src, "icc", hex) != NULL;
        }
    }
    free(hex);
    *out = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return *out ? VQZ_OK : vqz_fail(VQZ_ERR_NOMEM, "out of memory describing the source image");
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int get_int(const cJSON *o, const char *k, int lo, int hi, int *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x) || x->valuedouble < lo || x->valuedouble > hi)
        return 0;
    *v = (int)x->valuedouble;
    return 1;
}

/* Applies a source description to a freshly created image; an absent or unusable description leaves
 * the plain PNG description (a file from another writer still decodes). */
static void apply_source(vqz_image *img, const char *json, size_t len)
{
    cJSON *root = json ? cJSON_ParseWithLength(json, len) : NULL;
    const cJSON *src = root ? cJSON_GetObjectItemCaseSensitive(root, "source") : NULL;
    if (!cJSON_IsObject(src)) {
        cJSON_Delete(root);
        return;
    }
    int ct = 0, bd = 0, il = 0, intent = -1, gamma = 0;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(src, "format");
    if (cJSON_IsString(fmt) && strcmp(fmt->valuestring, "jpeg") == 0)
        img->source = VQZ_IMAGE_SRC_JPEG;
    if (get_int(src, "color_type", 0, 6, &ct) && get_int(src, "bit_depth", 1, 16, &bd)) {
        /* only descriptions consistent with the decoded channel layout are taken */
        int chans = ct == 0 ? 1 : ct == 4 ? 2 : ct == 2 ? 3 : ct == 6 ? 4 : -1;
        const cJSON *pal = cJSON_GetObjectItemCaseSensitive(src, "palette");
        if (ct == 3 && cJSON_IsString(pal)) {
            size_t n = strlen(pal->valuestring) / 8;
            int pa = 0;
            get_int(src, "palette_alpha", 0, 256, &pa);
            if (n >= 1 && n <= 256 && img->channels == (pa > 0 ? 4 : 3)) {
                int good = 1;
                for (size_t i = 0; i < n && good; i++)
                    for (int c = 0; c < 4 && good; c++) {
                        int hi = hexval(pal->valuestring[8 * i + 2 * c]), lo = hexval(pal->valuestring[8 * i + 2 * c + 1]);
                        good = hi >= 0 && lo >= 0;
                        img->palette[i][c] = (uint8_t)(hi * 16 + lo);
                    }
                if (good) {
                    img->palette_size = (int)n;
                    img->palette_alpha_size = pa;
                    img->color_type = 3;
                    img->source_bit_depth = bd;
                }
            }
        } else if (chans == img->channels || (chans >= 0 && cJSON_GetObjectItemCaseSensitive(src, "color_key") &&
                                              img->channels == chans + 1)) {
            img->color_type = ct;
            img->source_bit_depth = bd;
            const cJSON *key = cJSON_GetObjectItemCaseSensitive(src, "color_key");
            if (cJSON_IsArray(key) && cJSON_GetArraySize(key) == 3) {
                img->has_color_key = 1;
                for (int i = 0; i < 3; i++)
                    img->color_key[i] = (uint16_t)cJSON_GetArrayItem(key, i)->valueint;
            }
        }
    }
    if (get_int(src, "interlaced", 0, 1, &il))
        img->interlaced = il;
    if (get_int(src, "srgb_intent", -1, 3, &intent))
        img->srgb_intent = intent;
    if (get_int(src, "gamma", 0, 10000000, &gamma))
        img->gamma = gamma;
    const cJSON *icc = cJSON_GetObjectItemCaseSensitive(src, "icc");
    const cJSON *icc_name = cJSON_GetObjectItemCaseSensitive(src, "icc_name");
    if (cJSON_IsString(icc) && cJSON_IsString(icc_name) && strlen(icc->valuestring) % 2 == 0) {
        size_t n = strlen(icc->valuestring) / 2;
        uint8_t *p = n ? malloc(n) : NULL;
        int good = p != NULL;
        for (size_t i = 0; good && i < n; i++) {
            int hi = hexval(icc->valuestring[2 * i]), lo = hexval(icc->valuestring[2 * i + 1]);
            good = hi >= 0 && lo >= 0;
            if (good)
                p[i] = (uint8_t)(hi * 16 + lo);
        }
        if (good) {
            free(img->icc_profile);
            img->icc_profile = p;
            img->icc_size = n;
            snprintf(img->icc_name, sizeof img->icc_name, "%s", icc_name->valuestring);
        } else {
            free(p);
        }
    }
    cJSON_Delete(root);
}

/* ------------------------------------------------------------------------ pixels <-> tiles */

typedef struct {
    const vqz_image *img;
    float scale; /* 2 / max sample value */
} tile_src;

/* Tiles of the image padded by edge replication; grey is replicated to RGB, alpha ignored. */
static vqz_status image_tile_source(void *user, int64_t y, int64_t x, int64_t h, int64_t w, float *rgb)
{
    const tile_src *ts = user;
    const vqz_image *img = ts->img;
    int colour = img->channels >= 3 ? 3 : 1;
    for (int c = 0; c < 3; c++)
        for (int64_t i = 0; i < h; i++) {
            int64_t sy = y + i < img->height ? y + i : img->height - 1;
            const uint16_t *row = img->samples + (size_t)sy * img->width * img->channels;
            float *dst = rgb + ((int64_t)c * h + i) * w;
            int ch = colour == 3 ? c : 0;
            for (int64_t j = 0; j < w; j++) {
                int64_t sx = x + j < img->width ? x + j : img->width - 1;
                dst[j] = row[sx * img->channels + ch] * ts->scale - 1.0f;
            }
        }
    return VQZ_OK;
}

/* Decoded tiles into the output image (cropped to its size): clamp, round to the bit depth; grey takes
 * the mean of R, G and B. */
static vqz_status image_tile_sink(void *user, int64_t y, int64_t x, int64_t h, int64_t w, const float *rgb)
{
    vqz_image *img = user;
    float maxv = (float)((1 << img->bit_depth) - 1);
    int colour = img->channels >= 3 ? 3 : 1;
    for (int64_t i = 0; i < h && y + i < img->height; i++)
        for (int64_t j = 0; j < w && x + j < img->width; j++) {
            uint16_t *px = img->samples + ((size_t)(y + i) * img->width + (x + j)) * img->channels;
            float v[3];
            for (int c = 0; c < 3; c++) {
                float f = rgb[((int64_t)c * h + i) * w + j];
                v[c] = f < -1.0f ? -1.0f : f > 1.0f ? 1.0f : f;
            }
            if (colour == 3) {
                for (int c = 0; c < 3; c++)
                    px[c] = (uint16_t)lrintf((v[c] + 1.0f) * 0.5f * maxv);
            } else {
                px[0] = (uint16_t)lrintf(((v[0] + v[1] + v[2]) / 3.0f + 1.0f) * 0.5f * maxv);
            }
        }
    return VQZ_OK;
}

/* ------------------------------------------------------------------------ encode */

/* Picks the level count: o->levels, else the most levels whose file fits o->bpp, else all. frame_bytes
 * are the compressed sizes per level; `fixed` the bytes that do not depend on the level count. */
static int choose_levels(const vqz_options *o, int L, const uint64_t *level_bytes, uint64_t fixed, uint64_t per_level,
                         double pixels)
{
    if (o->levels > 0)
        return o->levels < L ? o->levels : L;
    if (o->bpp <= 0)
        return L;
    uint64_t total = fixed;
    int best = 1;
    for (int n = 1; n <= L; n++) {
        total += level_bytes[n - 1] + per_level;
        if (total * 8.0 / pixels <= o->bpp)
            best = n;
    }
    return best;
}

vqz_status vqz_image_codec_encode(const vqz_model *m, const vqz_options *o, const vqz_image *img, uint8_t **data,
                                  size_t *size, vqz_report *rep)
{
    double t0 = vqz_now();
    *data = NULL;
    *size = 0;
    VQZ_FAIL_IF(m->cfg.kind != VQZ_NET_IMAGE, VQZ_ERR_MODEL_MISMATCH, "model '%s' codes audio, not images", m->name);
    VQZ_FAIL_IF(o->levels < 0 || o->levels > m->cfg.levels, VQZ_ERR_INVALID_ARG, "levels must be 1..%d, got %d",
                m->cfg.levels, o->levels);
    VQZ_FAIL_IF(m->cfg.codebook_size > 65536, VQZ_ERR_UNSUPPORTED, "codebooks over 65536 entries cannot be stored");
    int f = vqz_net_stride(m->net);
    int64_t ph = ((int64_t)img->height + f - 1) / f * f, pw = ((int64_t)img->width + f - 1) / f * f;
    int64_t gh = ph / f, gw = pw / f;
    int L = m->cfg.levels;
    int tile = o->tile > 0 ? (o->tile + f - 1) / f * f : DEFAULT_TILE;

    uint16_t *grid = malloc((size_t)(L * gh * gw) * sizeof(uint16_t));
    if (!grid)
        return vqz_fail(VQZ_ERR_NOMEM, "out of memory for a %lldx%lld index grid", (long long)gw, (long long)gh);
    vqz_net *net = NULL;
    vqz_nn_ctx *ctx = NULL;
    vqz_status s = vqz_codec_session(m, o, &net, &ctx);
    if (s == VQZ_OK) {
        tile_src ts = {img, 2.0f / (float)((1 << img->bit_depth) - 1)};
        vqz_tiling t = {ph, pw, tile, L, o->cancel};
        s = vqz_tiles_encode(ctx, net, &t, image_tile_source, &ts, grid);
    }
    vqz_net_free(net);
    vqz_nn_ctx_free(ctx);

    vqz_header h;
    memset(&h, 0, sizeof h);
    h.media_kind = VQZ_MEDIA_IMAGE;
    h.levels = (uint8_t)L;
    for (int l = 0; l < L; l++)
        h.K[l] = (uint32_t)m->cfg.codebook_size;
    h.grid_planes = 1;
    h.grid_height = (uint32_t)gh;
    h.grid_width = (uint32_t)gw;
    h.chunk_height = (uint32_t)(gh < CHUNK_CELLS ? gh : CHUNK_CELLS);
    h.chunk_width = (uint32_t)(gw < CHUNK_CELLS ? gw : CHUNK_CELLS);
    h.stride = (uint32_t)f;
    snprintf(h.model_name, sizeof h.model_name, "%s", m->name);
    memcpy(h.model_sha256, m->sha256, 32);
    h.image.width = (uint32_t)img->width;
    h.image.height = (uint32_t)img->height;
    h.image.channels = (uint8_t)img->channels;
    h.image.bit_depth = (uint8_t)img->bit_depth;
    h.image.colour_space = img->srgb_intent >= 0 ? VQZ_COLOUR_SRGB : VQZ_COLOUR_UNSPECIFIED;

    char *meta = NULL;
    uint8_t *alpha = NULL;
    size_t alpha_n = 0;
    if (s == VQZ_OK)
        s = describe_source(img, &meta);
    if (s == VQZ_OK && vqz_image_has_alpha(img)) {
        size_t px = (size_t)img->width * img->height, bps = img->bit_depth / 8;
        uint16_t *plane = malloc(px * sizeof(uint16_t));
        alpha = malloc(px * bps);
        alpha_n = px * bps;
        s = (plane && alpha) ? vqz_image_get_alpha(img, plane) : vqz_fail(VQZ_ERR_NOMEM, "out of memory for alpha");
        for (size_t i = 0; s == VQZ_OK && i < px; i++) {
            if (bps == 1) {
                alpha[i] = (uint8_t)plane[i];
            } else {
                alpha[2 * i] = (uint8_t)(plane[i] & 0xff);
                alpha[2 * i + 1] = (uint8_t)(plane[i] >> 8);
            }
        }
        free(plane);
    }

    /* compress every level once; the level count is chosen from the real frame sizes */
    vqz_container_writer *w = NULL;
    uint64_t level_bytes[VQZ_MAX_LEVELS] = {0}, full_size = 0;
    size_t level_n = (size_t)(gh * gw);
    if (s == VQZ_OK)
        s = vqz_container_writer_create(&h, &w);
    if (s == VQZ_OK)
        s = vqz_model_prior_to_writer(m, w, L);
    if (s == VQZ_OK)
        vqz_container_writer_set_modelled(w, !o->zstd_only);
    if (s == VQZ_OK && o->zstd_level > 0)
        s = vqz_container_writer_set_zstd_level(w, o->zstd_level);
    if (s == VQZ_OK)
        s = vqz_container_writer_set_metadata(w, meta, strlen(meta));
    if (s == VQZ_OK && alpha)
        s = vqz_container_writer_set_alpha(w, alpha, alpha_n);
    for (int l = 0; s == VQZ_OK && l < L; l++)
        s = vqz_container_writer_put_level(w, l, grid + (size_t)l * level_n, level_n);
    if (s == VQZ_OK)
        s = vqz_container_writer_size(w, &full_size);
    uint8_t *buf = NULL;
    if (s == VQZ_OK) {
        buf = malloc((size_t)full_size);
        s = buf ? vqz_container_writer_write_buffer(w, buf, (size_t)full_size)
                : vqz_fail(VQZ_ERR_NOMEM, "out of memory for the output");
    }
    int levels = L;
    if (s == VQZ_OK && (o->levels > 0 || o->bpp > 0)) {
        /* sizes per level from the written file, then a prefix copy with fewer levels */
        vqz_container *c = NULL;
        s = vqz_container_open_memory(buf, (size_t)full_size, NULL, &c);
        uint32_t chunks = vqz_header_chunk_count(&h);
        uint64_t payload = 0;
        for (int l = 0; s == VQZ_OK && l < L; l++)
            for (uint32_t ch = 0; s == VQZ_OK && ch < chunks; ch++) {
                vqz_frame_info fi;
                s = vqz_container_frame_info(c, l, ch, &fi);
                level_bytes[l] += fi.comp_size;
                payload += fi.comp_size;
            }
        uint64_t per_level = (uint64_t)chunks * VQZ_FRAME_ENTRY_SIZE + 4;
        uint64_t fixed = full_size - payload - per_level * L;
        if (s == VQZ_OK)
            levels = choose_levels(o, L, level_bytes, fixed, per_level, (double)img->width * img->height);
        if (s == VQZ_OK && levels < L) {
            /* rebuild with the chosen levels from the already compressed frames */
            vqz_header h2 = h;
            h2.levels = (uint8_t)levels;
            vqz_container_writer *w2 = NULL;
            s = vqz_container_writer_create(&h2, &w2);
            if (s == VQZ_OK)
                s = vqz_container_writer_set_metadata(w2, meta, strlen(meta));
            if (s == VQZ_OK && alpha)
                s = vqz_container_writer_set_alpha(w2, alpha, alpha_n);
            for (int l = 0; s == VQZ_OK && l < levels; l++)
                for (uint32_t ch = 0; s == VQZ_OK && ch < chunks; ch++) {
                    vqz_frame_info fi;
                    s = vqz_container_frame_info(c, l, ch, &fi);
                    if (s == VQZ_OK)
                        s = vqz_container_writer_put_frame(w2, l, ch, buf + fi.offset, fi.comp_size, fi.raw_size);
                }
            uint64_t n2 = 0;
            uint8_t *buf2 = NULL;
            if (s == VQZ_OK)
                s = vqz_container_writer_size(w2, &n2);
            if (s == VQZ_OK && !(buf2 = malloc((size_t)n2)))
                s = vqz_fail(VQZ_ERR_NOMEM, "out of memory for the output");
            if (s == VQZ_OK)
                s = vqz_container_writer_write_buffer(w2, buf2, (size_t)n2);
            vqz_container_writer_free(w2);
            if (s == VQZ_OK) {
                free(buf);
                buf = buf2;
                full_size = n2;
            } else {
                free(buf2);
            }
        }
        vqz_container_free(c);
    }
    vqz_container_writer_free(w);
    free(meta);
    free(alpha);
    free(grid);
    if (s != VQZ_OK) {
        free(buf);
        return s;
    }
    *data = buf;
    *size = (size_t)full_size;
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->kind = VQZ_KIND_IMAGE;
        rep->out_bytes = full_size;
        rep->levels = levels;
        rep->bpp = full_size * 8.0 / ((double)img->width * img->height);
        rep->width = (uint32_t)img->width;
        rep->height = (uint32_t)img->height;
        rep->channels = img->channels;
        rep->seconds = vqz_now() - t0;
    }
    return VQZ_OK;
}

/* ------------------------------------------------------------------------ decode */

vqz_status vqz_image_codec_decode(const vqz_model *m, const vqz_options *o, vqz_container *c, vqz_image **out,
                                  vqz_report *rep)
{
    double t0 = vqz_now();
    *out = NULL;
    const vqz_header *h = vqz_container_header(c);
    VQZ_FAIL_IF(h->media_kind != VQZ_MEDIA_IMAGE, VQZ_ERR_INVALID_ARG, "not an image file");
    VQZ_TRY(vqz_container_check_model(c, m->name, m->sha256));
    VQZ_FAIL_IF(m->cfg.kind != VQZ_NET_IMAGE, VQZ_ERR_MODEL_MISMATCH, "model '%s' codes audio, not images", m->name);
    int f = vqz_net_stride(m->net);
    VQZ_FAIL_IF(h->stride != (uint32_t)f || h->grid_planes != 1, VQZ_ERR_MODEL_MISMATCH,
                "file stride %u does not match model '%s' (stride %d)", h->stride, m->name, f);
    int64_t ph = (int64_t)h->grid_height * f, pw = (int64_t)h->grid_width * f;
    VQZ_FAIL_IF(h->image.width == 0 || h->image.height == 0 || h->image.width > pw || h->image.height > ph ||
                    pw - h->image.width >= f || ph - h->image.height >= f,
                VQZ_ERR_FORMAT, "image size %ux%u does not fit the %ux%u latent grid", h->image.width,
                h->image.height, h->grid_width, h->grid_height);
    for (int l = 0; l < h->levels; l++)
        VQZ_FAIL_IF(h->K[l] != (uint32_t)m->cfg.codebook_size, VQZ_ERR_MODEL_MISMATCH,
                    "level %d has K = %u, model '%s' has %d", l + 1, h->K[l], m->name, m->cfg.codebook_size);
    VQZ_TRY(vqz_model_prior_to_reader(m, c));
    int avail = vqz_container_levels_available(c);
    VQZ_FAIL_IF(avail < 1, VQZ_ERR_TRUNCATED, "the file ends before its first level is complete");
    int levels = o->levels > 0 ? (o->levels < avail ? o->levels : avail) : avail;

    size_t level_n = (size_t)h->grid_height * h->grid_width;
    uint16_t *grid = malloc(level_n * (size_t)levels * sizeof(uint16_t));
    vqz_image *img = NULL;
    vqz_status s = grid ? VQZ_OK : vqz_fail(VQZ_ERR_NOMEM, "out of memory for the index grid");
    for (int l = 0; s == VQZ_OK && l < levels; l++)
        s = vqz_container_read_level(c, l, grid + (size_t)l * level_n, level_n);
    if (s == VQZ_OK)
        s = vqz_image_create((int)h->image.width, (int)h->image.height, h->image.channels, h->image.bit_depth, &img);
    if (s == VQZ_OK) {
        const char *meta = NULL;
        size_t meta_len = 0;
        if (vqz_container_metadata(c, &meta, &meta_len) == VQZ_OK)
            apply_source(img, meta, meta_len);
        if (h->image.colour_space == VQZ_COLOUR_SRGB && img->srgb_intent < 0)
            img->srgb_intent = 0;
        vqz_net *net = NULL;
        vqz_nn_ctx *ctx = NULL;
        s = vqz_codec_session(m, o, &net, &ctx);
        if (s == VQZ_OK) {
            int tile = o->tile > 0 ? (o->tile + f - 1) / f * f : DEFAULT_TILE;
            vqz_tiling t = {ph, pw, tile, levels, o->cancel};
            s = vqz_tiles_decode(ctx, net, &t, grid, image_tile_sink, img);
        }
        vqz_net_free(net);
        vqz_nn_ctx_free(ctx);
    }
    if (s == VQZ_OK && vqz_image_has_alpha(img)) {
        size_t px = (size_t)img->width * img->height, bps = img->bit_depth / 8;
        uint8_t *raw = malloc(px * bps);
        uint16_t *plane = malloc(px * sizeof(uint16_t));
        if (!raw || !plane)
            s = vqz_fail(VQZ_ERR_NOMEM, "out of memory for alpha");
        else if (!vqz_container_has_alpha(c))
            s = vqz_fail(VQZ_ERR_FORMAT, "the header declares an alpha channel but the file has no alpha plane");
        else
            s = vqz_container_read_alpha(c, raw, px * bps);
        for (size_t i = 0; s == VQZ_OK && i < px; i++)
            plane[i] = bps == 1 ? raw[i] : (uint16_t)(raw[2 * i] | raw[2 * i + 1] << 8);
        if (s == VQZ_OK)
            s = vqz_image_set_alpha(img, plane);
        free(raw);
        free(plane);
    }
    free(grid);
    if (s != VQZ_OK) {
        vqz_image_free(img);
        return s;
    }
    *out = img;
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->kind = VQZ_KIND_IMAGE;
        rep->in_bytes = vqz_container_file_size(c);
        rep->levels = levels;
        rep->bpp = rep->in_bytes * 8.0 / ((double)img->width * img->height);
        rep->width = (uint32_t)img->width;
        rep->height = (uint32_t)img->height;
        rep->channels = img->channels;
        rep->seconds = vqz_now() - t0;
    }
    return VQZ_OK;
}

/* ------------------------------------------------------------------------ public, in memory */

vqz_status vqz_image_encode(const vqz_model *m, const vqz_options *o, const vqz_pixels *in, uint8_t **data,
                            size_t *size)
{
    VQZ_FAIL_IF(!m || !in || !data || !size || !in->pixels, VQZ_ERR_INVALID_ARG, "vqz_image_encode: NULL argument");
    vqz_error_clear();
    VQZ_FAIL_IF(in->bit_depth != 8 && in->bit_depth != 16, VQZ_ERR_INVALID_ARG, "bit depth must be 8 or 16, got %d",
                in->bit_depth);
    vqz_options def;
    vqz_options_init(&def);
    if (!o)
        o = &def;
    vqz_image *img = NULL;
    VQZ_TRY(vqz_image_create((int)in->width, (int)in->height, in->channels, in->bit_depth, &img));
    size_t n = (size_t)in->width * in->height * in->channels;
    for (size_t i = 0; i < n; i++)
        img->samples[i] = in->bit_depth == 8 ? ((const uint8_t *)in->pixels)[i] : ((const uint16_t *)in->pixels)[i];
    vqz_status s = vqz_image_codec_encode(m, o, img, data, size, NULL);
    vqz_image_free(img);
    return s;
}

vqz_status vqz_image_decode(const vqz_model *m, const vqz_options *o, const uint8_t *data, size_t size, vqz_pixels *out)
{
    VQZ_FAIL_IF(!m || !data || !out, VQZ_ERR_INVALID_ARG, "vqz_image_decode: NULL argument");
    vqz_error_clear();
    memset(out, 0, sizeof *out);
    vqz_options def;
    vqz_options_init(&def);
    if (!o)
        o = &def;
    vqz_container *c = NULL;
    VQZ_TRY(vqz_container_open_memory(data, size, NULL, &c));
    vqz_image *img = NULL;
    vqz_status s = vqz_image_codec_decode(m, o, c, &img, NULL);
    vqz_container_free(c);
    VQZ_TRY(s);
    size_t n = (size_t)img->width * img->height * img->channels;
    void *px = malloc(n * (img->bit_depth == 8 ? 1 : 2));
    if (!px) {
        vqz_image_free(img);
        return vqz_fail(VQZ_ERR_NOMEM, "out of memory for the decoded pixels");
    }
    for (size_t i = 0; i < n; i++) {
        if (img->bit_depth == 8)
            ((uint8_t *)px)[i] = (uint8_t)img->samples[i];
        else
            ((uint16_t *)px)[i] = img->samples[i];
    }
    out->width = (uint32_t)img->width;
    out->height = (uint32_t)img->height;
    out->channels = img->channels;
    out->bit_depth = img->bit_depth;
    out->pixels = px;
    vqz_image_free(img);
    return VQZ_OK;
}
