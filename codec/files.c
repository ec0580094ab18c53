/* files.c — the file-level entry points of vqz.h: encode and decode by file kind, probing a .vqz file
 * for its model, and the JSON description vqz-info prints. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "codec/audio_codec.h"
#include "codec/codec.h"
#include "common/status.h"
#include "format/fileio.h"

/* Reads up to n leading bytes of a file; returns how many. */
static size_t peek(const char *path, uint8_t *buf, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    return got;
}

static int is_image_file(const char *path)
{
    uint8_t b[8];
    size_t n = peek(path, b, sizeof b);
    static const uint8_t png[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    return (n == 8 && memcmp(b, png, 8) == 0) || (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff);
}

static vqz_status write_stdout(const uint8_t *data, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(STDOUT_FILENO, data + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return vqz_fail(VQZ_ERR_IO, "standard output: %s", strerror(errno));
        off += (size_t)w;
    }
    return VQZ_OK;
}

vqz_status vqz_encode_file(const vqz_model *m, const vqz_options *o, const char *in, const char *out,
                           vqz_report *rep)
{
    VQZ_FAIL_IF(!m || !in || !out, VQZ_ERR_INVALID_ARG, "vqz_encode_file: NULL argument");
    vqz_error_clear();
    vqz_options def;
    vqz_options_init(&def);
    if (!o)
        o = &def;
    double t0 = vqz_now();
    if (strcmp(in, "-") != 0 && is_image_file(in)) {
        vqz_image *img = NULL;
        VQZ_TRY(vqz_image_read_file(in, &img));
        uint8_t *data = NULL;
        size_t size = 0;
        vqz_report r;
        vqz_status s = vqz_image_codec_encode(m, o, img, &data, &size, &r);
        vqz_image_free(img);
        if (s == VQZ_OK)
            s = strcmp(out, "-") == 0 ? write_stdout(data, size) : vqz_write_file_atomic(out, data, size);
        free(data);
        if (s != VQZ_OK) {
            vqz_error_prefix("%s: ", in);
            return s;
        }
        if (rep) {
            *rep = r;
            rep->seconds = vqz_now() - t0;
            FILE *f = fopen(in, "rb");
            if (f) {
                fseek(f, 0, SEEK_END);
                rep->in_bytes = (uint64_t)ftell(f);
                fclose(f);
            }
        }
        return VQZ_OK;
    }
    return vqz_audio_codec_encode_file(m, o, in, out, rep);
}

vqz_status vqz_decode_file(const vqz_model *m, const vqz_options *o, const char *in, const char *out,
                           vqz_report *rep)
{
    VQZ_FAIL_IF(!m || !in || !out, VQZ_ERR_INVALID_ARG, "vqz_decode_file: NULL argument");
    vqz_error_clear();
    vqz_options def;
    vqz_options_init(&def);
    if (!o)
        o = &def;
    double t0 = vqz_now();
    vqz_container *c = NULL;
    VQZ_TRY(vqz_container_open_file(in, NULL, &c));
    vqz_status s;
    const vqz_header *h = vqz_container_header(c);
    if (h->media_kind == VQZ_MEDIA_IMAGE) {
        vqz_image *img = NULL;
        s = vqz_image_codec_decode(m, o, c, &img, rep);
        if (s == VQZ_OK) {
            if (strcmp(out, "-") == 0) {
                uint8_t *buf = NULL;
                size_t len = 0;
                s = vqz_image_write_png_memory(img, &buf, &len);
                if (s == VQZ_OK)
                    s = write_stdout(buf, len);
                free(buf);
            } else {
                s = vqz_image_write_png(img, out);
            }
        }
        if (s == VQZ_OK && rep)
            rep->seconds = vqz_now() - t0;
        vqz_image_free(img);
    } else {
        s = vqz_audio_codec_decode(m, o, c, out, rep);
        if (s == VQZ_OK && rep)
            rep->seconds = vqz_now() - t0;
    }
    vqz_container_free(c);
    if (s != VQZ_OK && strncmp(vqz_last_error(), in, strlen(in)) != 0)
        vqz_error_prefix("%s: ", in);
    return s;
}

vqz_status vqz_file_probe(const char *path, vqz_file_info *info)
{
    VQZ_FAIL_IF(!path || !info, VQZ_ERR_INVALID_ARG, "vqz_file_probe: NULL argument");
    vqz_error_clear();
    memset(info, 0, sizeof *info);
    vqz_container *c = NULL;
    VQZ_TRY(vqz_container_open_file(path, NULL, &c));
    const vqz_header *h = vqz_container_header(c);
    info->kind = h->media_kind == VQZ_MEDIA_AUDIO ? VQZ_KIND_AUDIO : VQZ_KIND_IMAGE;
    snprintf(info->model_name, sizeof info->model_name, "%s", h->model_name);
    memcpy(info->model_sha256, h->model_sha256, 32);
    info->levels = h->levels;
    info->levels_available = vqz_container_levels_available(c);
    vqz_container_free(c);
    return VQZ_OK;
}

static void hex32(const uint8_t *b, char *out)
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

vqz_status vqz_file_describe_json(const char *path, char **json)
{
    VQZ_FAIL_IF(!path || !json, VQZ_ERR_INVALID_ARG, "vqz_file_describe_json: NULL argument");
    vqz_error_clear();
    *json = NULL;
    vqz_container *c = NULL;
    VQZ_TRY(vqz_container_open_file(path, NULL, &c));
    const vqz_header *h = vqz_container_header(c);
    cJSON *o = cJSON_CreateObject();
    char sha[65];
    hex32(h->model_sha256, sha);
    vqz_status s = VQZ_OK;
    if (!o) {
        vqz_container_free(c);
        return vqz_fail(VQZ_ERR_NOMEM, "out of memory");
    }
    cJSON_AddStringToObject(o, "file", path);
    cJSON_AddNumberToObject(o, "file_bytes", (double)vqz_container_file_size(c));
    cJSON_AddNumberToObject(o, "complete_bytes", (double)vqz_container_full_size(c));
    char ver[32];
    snprintf(ver, sizeof ver, "%u.%u", h->version_major, h->version_minor);
    cJSON_AddStringToObject(o, "format_version", ver);
    cJSON_AddStringToObject(o, "kind", vqz_media_kind_name(h->media_kind));
    cJSON_AddStringToObject(o, "model", h->model_name);
    cJSON_AddStringToObject(o, "model_sha256", sha);
    cJSON_AddNumberToObject(o, "levels", h->levels);
    cJSON_AddNumberToObject(o, "levels_available", vqz_container_levels_available(c));
    cJSON *grid = cJSON_AddObjectToObject(o, "grid");
    if (grid) {
        cJSON_AddNumberToObject(grid, "planes", h->grid_planes);
        cJSON_AddNumberToObject(grid, "height", h->grid_height);
        cJSON_AddNumberToObject(grid, "width", h->grid_width);
        cJSON_AddNumberToObject(grid, "chunk_height", h->chunk_height);
        cJSON_AddNumberToObject(grid, "chunk_width", h->chunk_width);
        cJSON_AddNumberToObject(grid, "chunks", vqz_header_chunk_count(h));
        cJSON_AddNumberToObject(grid, "stride", h->stride);
    }
    double seconds = 0, pixels = 0;
    if (h->media_kind == VQZ_MEDIA_IMAGE) {
        cJSON *im = cJSON_AddObjectToObject(o, "image");
        if (im) {
            cJSON_AddNumberToObject(im, "width", h->image.width);
            cJSON_AddNumberToObject(im, "height", h->image.height);
            cJSON_AddNumberToObject(im, "channels", h->image.channels);
            cJSON_AddNumberToObject(im, "bit_depth", h->image.bit_depth);
            cJSON_AddStringToObject(im, "colour_space", vqz_colour_space_name(h->image.colour_space));
        }
        pixels = (double)h->image.width * h->image.height;
        cJSON_AddNumberToObject(o, "bpp", vqz_container_file_size(c) * 8.0 / pixels);
    } else {
        cJSON *au = cJSON_AddObjectToObject(o, "audio");
        if (au) {
            cJSON_AddNumberToObject(au, "sample_rate", h->audio.sample_rate);
            cJSON_AddNumberToObject(au, "model_rate", h->audio.model_rate);
            cJSON_AddNumberToObject(au, "channels", h->audio.channels);
            cJSON_AddNumberToObject(au, "frames", (double)h->audio.sample_count);
            cJSON_AddNumberToObject(au, "bit_depth", h->audio.bit_depth);
        }
        seconds = h->audio.sample_rate ? (double)h->audio.sample_count / h->audio.sample_rate : 0;
        cJSON_AddNumberToObject(o, "seconds", seconds);
        if (seconds > 0)
            cJSON_AddNumberToObject(o, "kbps", vqz_container_file_size(c) * 8.0 / seconds / 1000.0);
    }
    const char *meta = NULL;
    size_t meta_len = 0;
    if (vqz_container_metadata(c, &meta, &meta_len) == VQZ_OK)
        cJSON_AddStringToObject(o, "metadata", meta);
    cJSON_AddBoolToObject(o, "alpha", vqz_container_has_alpha(c));
    if (vqz_container_has_alpha(c))
        cJSON_AddNumberToObject(o, "alpha_bytes", (double)vqz_container_alpha_size(c));
    cJSON *levels = cJSON_AddArrayToObject(o, "level_stats");
    int avail = vqz_container_levels_available(c);
    /* modelled frames may start from the model's prior: find the model the file names */
    vqz_model *pm = NULL;
    cJSON_AddBoolToObject(o, "modelled_frames", vqz_container_uses_prior(c));
    if (vqz_container_uses_prior(c)) {
        char mp[4096];
        if (vqz_model_locate(h->model_name, h->model_sha256, mp, sizeof mp) != VQZ_OK ||
            vqz_model_load(mp, &pm) != VQZ_OK || vqz_model_prior_to_reader(pm, c) != VQZ_OK)
            vqz_error_clear(); /* frames that need the prior then fail below, and are reported */
    }
    for (int l = 0; levels && l < avail; l++) {
        vqz_level_stats st;
        s = vqz_container_level_stats(c, l, &st);
        if (s == VQZ_ERR_UNSUPPORTED) {
            cJSON_AddStringToObject(o, "level_stats_missing", "frames start from the model's prior and the model "
                                                              "was not found on the model search path");
            vqz_error_clear();
            s = VQZ_OK;
            break;
        }
        if (s != VQZ_OK)
            break;
        cJSON *e = cJSON_CreateObject();
        if (!e)
            break;
        cJSON_AddNumberToObject(e, "level", l + 1);
        cJSON_AddNumberToObject(e, "K", h->K[l]);
        cJSON_AddNumberToObject(e, "indices", (double)st.indices);
        cJSON_AddNumberToObject(e, "bytes", (double)st.comp_bytes);
        cJSON_AddNumberToObject(e, "packed_bytes", (double)st.raw_bytes);
        cJSON_AddNumberToObject(e, "table_bytes", (double)st.table_bytes);
        cJSON_AddNumberToObject(e, "bits_per_index", st.indices ? st.comp_bytes * 8.0 / st.indices : 0);
        cJSON_AddNumberToObject(e, "entropy_bits_per_index", st.entropy_bits);
        cJSON_AddNumberToObject(e, "entropy_bytes", st.entropy_bits * st.indices / 8.0);
        cJSON_AddNumberToObject(e, "distinct", st.distinct);
        cJSON_AddNumberToObject(e, "chunks", vqz_header_chunk_count(h));
        cJSON_AddNumberToObject(e, "modelled_chunks", st.modelled);
        cJSON_AddItemToArray(levels, e);
    }
    vqz_container_free(c);
    vqz_model_free(pm);
    char *txt = s == VQZ_OK ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    VQZ_TRY(s);
    if (!txt)
        return vqz_fail(VQZ_ERR_NOMEM, "out of memory");
    *json = txt;
    return VQZ_OK;
}
