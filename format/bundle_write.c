/* bundle_write.c — the weight-bundle writer: a deterministic safetensors file (metadata first, tensors in
 * the order added, header padded with spaces to a multiple of 8 bytes), written through a rename. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/bundle.h"
#include "format/bytes.h"
#include "format/fileio.h"
#include "format/sha256.h"
#include "format/utf8.h"

typedef struct {
    char *name;
    int ndim;
    int64_t shape[VQZ_BUNDLE_MAX_DIMS];
    uint64_t numel;
    const float *data;
    vqz_dtype dtype;
} wtensor;

struct vqz_bundle_writer {
    wtensor *t;
    int nt, tcap;
    char **mkey, **mval;
    int nm, mcap;
};

/* A growable string for the JSON header. */
typedef struct {
    char *p;
    size_t n, cap;
    int failed;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = (char *)realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            sb_put(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_uint(sbuf *b, uint64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    sb_str(b, num);
}

vqz_status vqz_bundle_writer_create(vqz_bundle_writer **out)
{
    *out = (vqz_bundle_writer *)calloc(1, sizeof **out);
    VQZ_FAIL_IF(!*out, VQZ_ERR_NOMEM, "bundle writer: out of memory");
    return VQZ_OK;
}

void vqz_bundle_writer_free(vqz_bundle_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->nt; i++)
        free(w->t[i].name);
    for (int i = 0; i < w->nm; i++) {
        free(w->mkey[i]);
        free(w->mval[i]);
    }
    free(w->t);
    free(w->mkey);
    free(w->mval);
    free(w);
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = (char *)malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static int text_ok(const char *s)
{
    return vqz_utf8_valid((const uint8_t *)s, strlen(s), NULL);
}

vqz_status vqz_bundle_writer_add(vqz_bundle_writer *w, const char *name, int ndim, const int64_t *shape,
                                 const float *data, vqz_dtype store_as)
{
    VQZ_FAIL_IF(!name || !name[0] || !text_ok(name) || strcmp(name, "__metadata__") == 0, VQZ_ERR_INVALID_ARG,
                "bundle writer: tensor name must be non-empty UTF-8 and not __metadata__");
    VQZ_FAIL_IF(ndim < 0 || ndim > VQZ_BUNDLE_MAX_DIMS, VQZ_ERR_INVALID_ARG,
                "bundle writer: tensor \"%s\": %d dimensions, at most %d", name, ndim, VQZ_BUNDLE_MAX_DIMS);
    VQZ_FAIL_IF(store_as != VQZ_DTYPE_F32 && store_as != VQZ_DTYPE_F16 && store_as != VQZ_DTYPE_BF16,
                VQZ_ERR_INVALID_ARG, "bundle writer: tensor \"%s\": cannot store as %s", name,
                vqz_dtype_name(store_as));
    for (int i = 0; i < w->nt; i++)
        VQZ_FAIL_IF(strcmp(w->t[i].name, name) == 0, VQZ_ERR_INVALID_ARG, "bundle writer: tensor \"%s\" added twice",
                    name);
    uint64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        VQZ_FAIL_IF(shape[d] < 0 || (shape[d] > 0 && numel > ((uint64_t)1 << 40) / (uint64_t)shape[d]),
                    VQZ_ERR_INVALID_ARG, "bundle writer: tensor \"%s\": bad shape (dimension %d = %lld)", name, d,
                    (long long)shape[d]);
        numel *= (uint64_t)shape[d];
    }
    VQZ_FAIL_IF(numel > 0 && !data, VQZ_ERR_INVALID_ARG, "bundle writer: tensor \"%s\": NULL data", name);
    for (uint64_t i = 0; i < numel; i++) {
        VQZ_FAIL_IF(!isfinite(data[i]), VQZ_ERR_NONFINITE, "bundle writer: tensor \"%s\" element %llu is not finite",
                    name, (unsigned long long)i);
        if (store_as == VQZ_DTYPE_F16)
            VQZ_FAIL_IF((vqz_f32_to_f16(data[i]) & 0x7c00) == 0x7c00, VQZ_ERR_NONFINITE,
                        "bundle writer: tensor \"%s\" element %llu = %g is out of F16 range", name,
                        (unsigned long long)i, (double)data[i]);
        if (store_as == VQZ_DTYPE_BF16)
            VQZ_FAIL_IF((vqz_f32_to_bf16(data[i]) & 0x7f80) == 0x7f80, VQZ_ERR_NONFINITE,
                        "bundle writer: tensor \"%s\" element %llu = %g is out of BF16 range", name,
                        (unsigned long long)i, (double)data[i]);
    }
    if (w->nt == w->tcap) {
        int cap = w->tcap ? 2 * w->tcap : 16;
        wtensor *t = (wtensor *)realloc(w->t, (size_t)cap * sizeof *t);
        VQZ_FAIL_IF(!t, VQZ_ERR_NOMEM, "bundle writer: out of memory");
        w->t = t;
        w->tcap = cap;
    }
    wtensor *t = &w->t[w->nt];
    memset(t, 0, sizeof *t);
    t->name = dupstr(name);
    VQZ_FAIL_IF(!t->name, VQZ_ERR_NOMEM, "bundle writer: out of memory");
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    t->numel = numel;
    t->data = data;
    t->dtype = store_as;
    w->nt++;
    return VQZ_OK;
}

vqz_status vqz_bundle_writer_set_meta(vqz_bundle_writer *w, const char *key, const char *value)
{
    VQZ_FAIL_IF(!key || !key[0] || !text_ok(key) || !value || !text_ok(value), VQZ_ERR_INVALID_ARG,
                "bundle writer: metadata key and value must be UTF-8 (key non-empty)");
    for (int i = 0; i < w->nm; i++)
        if (strcmp(w->mkey[i], key) == 0) {
            char *v = dupstr(value);
            VQZ_FAIL_IF(!v, VQZ_ERR_NOMEM, "bundle writer: out of memory");
            free(w->mval[i]);
            w->mval[i] = v;
            return VQZ_OK;
        }
    if (w->nm == w->mcap) {
        int cap = w->mcap ? 2 * w->mcap : 8;
        char **k = (char **)realloc(w->mkey, (size_t)cap * sizeof *k);
        if (k)
            w->mkey = k;
        char **v = (char **)realloc(w->mval, (size_t)cap * sizeof *v);
        if (v)
            w->mval = v;
        VQZ_FAIL_IF(!k || !v, VQZ_ERR_NOMEM, "bundle writer: out of memory");
        w->mcap = cap;
    }
    char *k = dupstr(key), *v = dupstr(value);
    if (!k || !v) {
        free(k);
        free(v);
        return vqz_fail(VQZ_ERR_NOMEM, "bundle writer: out of memory");
    }
    w->mkey[w->nm] = k;
    w->mval[w->nm] = v;
    w->nm++;
    return VQZ_OK;
}

/* The JSON header, padded with spaces to a multiple of 8 bytes; *data_bytes receives the data size. */
static vqz_status build_header(const vqz_bundle_writer *w, sbuf *sb, uint64_t *data_bytes)
{
    memset(sb, 0, sizeof *sb);
    sb_str(sb, "{");
    int first = 1;
    if (w->nm > 0) {
        sb_str(sb, "\"__metadata__\":{");
        for (int i = 0; i < w->nm; i++) {
            if (i)
                sb_str(sb, ",");
            sb_json_string(sb, w->mkey[i]);
            sb_str(sb, ":");
            sb_json_string(sb, w->mval[i]);
        }
        sb_str(sb, "}");
        first = 0;
    }
    uint64_t off = 0;
    for (int i = 0; i < w->nt; i++) {
        const wtensor *t = &w->t[i];
        if (!first)
            sb_str(sb, ",");
        first = 0;
        sb_json_string(sb, t->name);
        sb_str(sb, ":{\"dtype\":\"");
        sb_str(sb, vqz_dtype_name(t->dtype));
        sb_str(sb, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d)
                sb_str(sb, ",");
            sb_uint(sb, (uint64_t)t->shape[d]);
        }
        uint64_t end = off + t->numel * (uint64_t)vqz_dtype_size(t->dtype);
        sb_str(sb, "],\"data_offsets\":[");
        sb_uint(sb, off);
        sb_str(sb, ",");
        sb_uint(sb, end);
        sb_str(sb, "]}");
        off = end;
    }
    sb_str(sb, "}");
    while (!sb->failed && sb->n % 8 != 0)
        sb_str(sb, " ");
    if (sb->failed) {
        free(sb->p);
        return vqz_fail(VQZ_ERR_NOMEM, "bundle writer: out of memory");
    }
    if (sb->n > VQZ_BUNDLE_MAX_HEADER) {
        size_t n = sb->n;
        free(sb->p);
        return vqz_fail(VQZ_ERR_LIMIT, "bundle writer: header of %zu bytes exceeds the limit of %u", n,
                        VQZ_BUNDLE_MAX_HEADER);
    }
    *data_bytes = off;
    return VQZ_OK;
}

vqz_status vqz_bundle_writer_size(const vqz_bundle_writer *w, uint64_t *size)
{
    sbuf sb;
    uint64_t data_bytes;
    VQZ_TRY(build_header(w, &sb, &data_bytes));
    *size = 8 + sb.n + data_bytes;
    free(sb.p);
    return VQZ_OK;
}

vqz_status vqz_bundle_writer_write_buffer(const vqz_bundle_writer *w, uint8_t *buf, size_t cap, uint8_t sha256[32])
{
    sbuf sb;
    uint64_t data_bytes;
    VQZ_TRY(build_header(w, &sb, &data_bytes));
    uint64_t total = 8 + sb.n + data_bytes;
    if (cap < total) {
        free(sb.p);
        return vqz_fail(VQZ_ERR_INVALID_ARG, "bundle writer: buffer of %zu bytes, need %llu", cap,
                        (unsigned long long)total);
    }
    vqz_put_u64(buf, sb.n);
    memcpy(buf + 8, sb.p, sb.n);
    uint8_t *p = buf + 8 + sb.n;
    free(sb.p);
    for (int i = 0; i < w->nt; i++) {
        const wtensor *t = &w->t[i];
        for (uint64_t k = 0; k < t->numel; k++) {
            if (t->dtype == VQZ_DTYPE_F32) {
                uint32_t bits;
                memcpy(&bits, &t->data[k], 4);
                vqz_put_u32(p, bits);
                p += 4;
            } else {
                vqz_put_u16(p, t->dtype == VQZ_DTYPE_F16 ? vqz_f32_to_f16(t->data[k]) : vqz_f32_to_bf16(t->data[k]));
                p += 2;
            }
        }
    }
    if (sha256)
        vqz_sha256(buf, (size_t)total, sha256);
    return VQZ_OK;
}

vqz_status vqz_bundle_writer_write_file(const vqz_bundle_writer *w, const char *path, uint8_t sha256[32])
{
    uint64_t total;
    VQZ_TRY(vqz_bundle_writer_size(w, &total));
    VQZ_FAIL_IF(total > VQZ_BUNDLE_MAX_FILE, VQZ_ERR_LIMIT, "%s: bundle of %llu bytes exceeds the limit", path,
                (unsigned long long)total);
    uint8_t *buf = (uint8_t *)malloc((size_t)total);
    VQZ_FAIL_IF(!buf, VQZ_ERR_NOMEM, "%s: cannot allocate %llu bytes", path, (unsigned long long)total);
    vqz_status s = vqz_bundle_writer_write_buffer(w, buf, (size_t)total, sha256);
    if (s == VQZ_OK)
        s = vqz_write_file_atomic(path, buf, (size_t)total);
    free(buf);
    return s;
}
