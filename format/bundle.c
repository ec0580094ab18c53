/* bundle.c — the weight-bundle loader: safetensors validation (header bound, UTF-8 JSON, dtype x shape =
 * byte length, offsets contiguous, in range and without overlap), tensor and metadata lookup, F16/BF16
 * to F32 conversion, and the SHA-256 of the file. */
#include "format/bundle.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/bytes.h"
#include "format/sha256.h"
#include "format/utf8.h"

static const struct {
    const char *name;
    int size;
} dtypes[VQZ_DTYPE_COUNT] = {
    {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
    {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1}, {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
};

const char *vqz_dtype_name(vqz_dtype t)
{
    return (unsigned)t < VQZ_DTYPE_COUNT ? dtypes[t].name : "?";
}

int vqz_dtype_size(vqz_dtype t)
{
    return (unsigned)t < VQZ_DTYPE_COUNT ? dtypes[t].size : 0;
}

float vqz_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        float f = ldexpf((float)man, -24); /* subnormal (or zero): exact in float */
        return sign ? -f : f;
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float vqz_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t vqz_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u)
        return (uint16_t)(sign | (ax > 0x7f800000u ? 0x7e00 : 0x7c00));
    if (ax >= 0x477ff000u) /* rounds to 65536 and beyond: infinity */
        return (uint16_t)(sign | 0x7c00);
    if (ax < 0x38800000u) {
        /* Below 2^-14: a half subnormal, m x 2^-24; scaling by 2^24 is exact, nearbyint rounds to even. */
        float af;
        memcpy(&af, &ax, 4);
        return (uint16_t)(sign | (uint16_t)nearbyintf(af * 16777216.0f));
    }
    uint32_t h = ((((ax >> 23) - 112) << 10) | ((ax >> 13) & 0x3ff));
    uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++; /* a carry into the exponent is the correct rounding */
    return (uint16_t)(sign | h);
}

uint16_t vqz_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ---------------------------------------------------------------------------------------------- */

typedef struct {
    char *name;
    vqz_dtype dtype;
    int ndim;
    int64_t shape[VQZ_BUNDLE_MAX_DIMS];
    uint64_t numel, begin, end;
} tensor;

struct vqz_bundle {
    char name[256];
    uint8_t *owned;
    const uint8_t *data;
    uint64_t size, data_start;
    tensor *t;     /* data order */
    const tensor **by_name; /* sorted by name */
    int nt;
    char **mkey, **mval;
    int nm;
    uint8_t sha[32];
};

static int json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v))
        return 0;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != floor(d))
        return 0;
    *out = (uint64_t)d;
    return 1;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = (char *)malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static vqz_status parse_tensor(vqz_bundle *b, const cJSON *item, tensor *t)
{
    const char *name = item->string;
    VQZ_FAIL_IF(!cJSON_IsObject(item), VQZ_ERR_FORMAT, "tensor \"%s\": entry is not an object", name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    VQZ_FAIL_IF(!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs), VQZ_ERR_FORMAT,
                "tensor \"%s\": needs a \"dtype\" string, a \"shape\" array and a \"data_offsets\" array", name);
    t->dtype = VQZ_DTYPE_COUNT;
    for (int k = 0; k < VQZ_DTYPE_COUNT; k++)
        if (strcmp(dt->valuestring, dtypes[k].name) == 0)
            t->dtype = (vqz_dtype)k;
    VQZ_FAIL_IF(t->dtype == VQZ_DTYPE_COUNT, VQZ_ERR_FORMAT, "tensor \"%s\": unknown dtype \"%.32s\"", name,
                dt->valuestring);
    int nd = cJSON_GetArraySize(shape);
    VQZ_FAIL_IF(nd > VQZ_BUNDLE_MAX_DIMS, VQZ_ERR_LIMIT, "tensor \"%s\": %d dimensions, at most %d", name, nd,
                VQZ_BUNDLE_MAX_DIMS);
    t->ndim = nd;
    /* numel saturates just above what the data section can hold, so numel x element size cannot
     * overflow and an oversized shape still fails the byte-length check below. */
    uint64_t data_size = b->size - b->data_start;
    uint64_t numel = 1;
    int zero = 0, d = 0;
    for (const cJSON *e = shape->child; e; e = e->next, d++) {
        uint64_t v;
        VQZ_FAIL_IF(!json_uint(e, &v), VQZ_ERR_FORMAT, "tensor \"%s\": shape[%d] is not a non-negative integer",
                    name, d);
        t->shape[d] = (int64_t)v;
        if (v == 0)
            zero = 1;
        else if (numel > (data_size + 1) / v)
            numel = data_size + 1;
        else
            numel *= v;
    }
    if (zero)
        numel = 0;
    t->numel = numel;
    VQZ_FAIL_IF(cJSON_GetArraySize(offs) != 2 || !json_uint(offs->child, &t->begin) ||
                    !json_uint(offs->child->next, &t->end),
                VQZ_ERR_FORMAT, "tensor \"%s\": data_offsets is not two non-negative integers", name);
    VQZ_FAIL_IF(t->begin > t->end, VQZ_ERR_FORMAT, "tensor \"%s\": data_offsets [%llu, %llu] run backwards", name,
                (unsigned long long)t->begin, (unsigned long long)t->end);
    VQZ_FAIL_IF(t->end > data_size, VQZ_ERR_FORMAT,
                "tensor \"%s\": data_offsets end %llu is past the %llu data bytes", name,
                (unsigned long long)t->end, (unsigned long long)data_size);
    uint64_t want = numel * (uint64_t)dtypes[t->dtype].size; /* numel <= data_size + 1: no overflow */
    VQZ_FAIL_IF(want != t->end - t->begin, VQZ_ERR_FORMAT,
                "tensor \"%s\": %s x %llu elements is %llu bytes, data_offsets span %llu", name, dtypes[t->dtype].name,
                (unsigned long long)numel, (unsigned long long)want, (unsigned long long)(t->end - t->begin));
    t->name = dupstr(name);
    VQZ_FAIL_IF(!t->name, VQZ_ERR_NOMEM, "out of memory");
    return VQZ_OK;
}

static vqz_status parse_metadata(vqz_bundle *b, const cJSON *meta)
{
    VQZ_FAIL_IF(b->mkey, VQZ_ERR_FORMAT, "__metadata__ appears twice");
    VQZ_FAIL_IF(!cJSON_IsObject(meta), VQZ_ERR_FORMAT, "__metadata__ is not an object");
    int n = cJSON_GetArraySize(meta);
    b->mkey = (char **)calloc((size_t)n + 1, sizeof *b->mkey);
    b->mval = (char **)calloc((size_t)n + 1, sizeof *b->mval);
    VQZ_FAIL_IF(!b->mkey || !b->mval, VQZ_ERR_NOMEM, "out of memory");
    for (const cJSON *e = meta->child; e; e = e->next) {
        VQZ_FAIL_IF(!cJSON_IsString(e), VQZ_ERR_FORMAT, "__metadata__ value of \"%s\" is not a string", e->string);
        for (int i = 0; i < b->nm; i++)
            VQZ_FAIL_IF(strcmp(b->mkey[i], e->string) == 0, VQZ_ERR_FORMAT, "__metadata__ key \"%s\" appears twice",
                        e->string);
        b->mkey[b->nm] = dupstr(e->string);
        b->mval[b->nm] = dupstr(e->valuestring);
        b->nm++;
        VQZ_FAIL_IF(!b->mkey[b->nm - 1] || !b->mval[b->nm - 1], VQZ_ERR_NOMEM, "out of memory");
    }
    return VQZ_OK;
}

static int cmp_offset(const void *a, const void *b)
{
    const tensor *x = (const tensor *)a, *y = (const tensor *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const tensor *const *)a)->name, (*(const tensor *const *)b)->name);
}

static vqz_status parse(vqz_bundle *b)
{
    VQZ_FAIL_IF(b->size > VQZ_BUNDLE_MAX_FILE, VQZ_ERR_LIMIT, "%llu bytes exceeds the bundle limit of %llu",
                (unsigned long long)b->size, (unsigned long long)VQZ_BUNDLE_MAX_FILE);
    VQZ_FAIL_IF(b->size < 8, VQZ_ERR_TRUNCATED, "file of %llu bytes is shorter than the 8-byte header length",
                (unsigned long long)b->size);
    uint64_t n = vqz_get_u64(b->data);
    VQZ_FAIL_IF(n > VQZ_BUNDLE_MAX_HEADER, VQZ_ERR_LIMIT, "header length %llu exceeds the limit of %u bytes",
                (unsigned long long)n, VQZ_BUNDLE_MAX_HEADER);
    VQZ_FAIL_IF(n > b->size - 8, VQZ_ERR_TRUNCATED, "header of %llu bytes, but the file has %llu after the length",
                (unsigned long long)n, (unsigned long long)(b->size - 8));
    const char *hdr = (const char *)b->data + 8;
    VQZ_FAIL_IF(n < 2 || hdr[0] != '{', VQZ_ERR_FORMAT, "header does not start with '{'");
    size_t bad = 0;
    VQZ_FAIL_IF(!vqz_utf8_valid((const uint8_t *)hdr, (size_t)n, &bad), VQZ_ERR_FORMAT,
                "header is not UTF-8 without NUL bytes (byte %zu)", bad);
    b->data_start = 8 + n;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr ? (size_t)(end - hdr) : 0;
        return vqz_fail(VQZ_ERR_FORMAT, "header is not valid JSON (near byte %zu)", at);
    }
    for (const char *p = end; p < hdr + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return vqz_fail(VQZ_ERR_FORMAT, "header has data after the JSON object (byte %zu)", (size_t)(p - hdr));
        }
    vqz_status s = VQZ_OK;
    if (!cJSON_IsObject(root))
        s = vqz_fail(VQZ_ERR_FORMAT, "header is not a JSON object");
    int count = s == VQZ_OK ? cJSON_GetArraySize(root) : 0;
    if (s == VQZ_OK && count > 0) {
        b->t = (tensor *)calloc((size_t)count, sizeof *b->t);
        if (!b->t)
            s = vqz_fail(VQZ_ERR_NOMEM, "out of memory");
    }
    for (const cJSON *e = s == VQZ_OK ? root->child : NULL; e && s == VQZ_OK; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0)
            s = parse_metadata(b, e);
        else if (e->string[0] == '\0')
            s = vqz_fail(VQZ_ERR_FORMAT, "tensor with an empty name");
        else if ((s = parse_tensor(b, e, &b->t[b->nt])) == VQZ_OK)
            b->nt++;
    }
    cJSON_Delete(root);
    VQZ_TRY(s);

    if (b->nt > 0) {
        b->by_name = (const tensor **)malloc((size_t)b->nt * sizeof *b->by_name);
        VQZ_FAIL_IF(!b->by_name, VQZ_ERR_NOMEM, "out of memory");
    }
    /* Data order: the tensors must tile the data section from 0 to its end without holes or overlap. */
    if (b->nt > 0)
        qsort(b->t, (size_t)b->nt, sizeof *b->t, cmp_offset);
    uint64_t pos = 0;
    for (int i = 0; i < b->nt; i++) {
        const tensor *t = &b->t[i];
        VQZ_FAIL_IF(t->begin < pos, VQZ_ERR_FORMAT, "tensor \"%s\": bytes %llu..%llu overlap the previous tensor",
                    t->name, (unsigned long long)t->begin, (unsigned long long)t->end);
        VQZ_FAIL_IF(t->begin > pos, VQZ_ERR_FORMAT, "tensor \"%s\": hole of %llu bytes before it", t->name,
                    (unsigned long long)(t->begin - pos));
        pos = t->end;
    }
    VQZ_FAIL_IF(pos != b->size - b->data_start, VQZ_ERR_FORMAT,
                "%llu bytes after the last tensor are not described by the header",
                (unsigned long long)(b->size - b->data_start - pos));
    for (int i = 0; i < b->nt; i++)
        b->by_name[i] = &b->t[i];
    if (b->nt > 0)
        qsort(b->by_name, (size_t)b->nt, sizeof *b->by_name, cmp_name);
    for (int i = 1; i < b->nt; i++)
        VQZ_FAIL_IF(strcmp(b->by_name[i - 1]->name, b->by_name[i]->name) == 0, VQZ_ERR_FORMAT,
                    "tensor \"%s\" appears twice", b->by_name[i]->name);
    vqz_sha256(b->data, (size_t)b->size, b->sha);
    return VQZ_OK;
}

static vqz_bundle *bundle_new(const char *name)
{
    vqz_bundle *b = (vqz_bundle *)calloc(1, sizeof *b);
    if (b)
        snprintf(b->name, sizeof b->name, "%s", name);
    return b;
}

static vqz_status finish_open(vqz_bundle *b, vqz_bundle **out)
{
    vqz_status s = parse(b);
    if (s != VQZ_OK) {
        vqz_error_prefix("%s: ", b->name);
        vqz_bundle_free(b);
        return s;
    }
    *out = b;
    return VQZ_OK;
}

vqz_status vqz_bundle_open_memory(const uint8_t *data, size_t size, vqz_bundle **out)
{
    *out = NULL;
    VQZ_FAIL_IF(!data && size, VQZ_ERR_INVALID_ARG, "bundle: NULL data");
    vqz_bundle *b = bundle_new("<memory>");
    VQZ_FAIL_IF(!b, VQZ_ERR_NOMEM, "bundle: out of memory");
    b->data = data ? data : (const uint8_t *)"";
    b->size = size;
    return finish_open(b, out);
}

static vqz_status read_whole(const char *path, uint8_t **buf, uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    VQZ_FAIL_IF(fd < 0, VQZ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    vqz_status s = VQZ_OK;
    if (fstat(fd, &st) != 0)
        s = vqz_fail(VQZ_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        s = vqz_fail(VQZ_ERR_IO, "%s: not a regular file", path);
    else if ((uint64_t)st.st_size > VQZ_BUNDLE_MAX_FILE)
        s = vqz_fail(VQZ_ERR_LIMIT, "%s: %llu bytes exceeds the bundle limit of %llu", path,
                     (unsigned long long)st.st_size, (unsigned long long)VQZ_BUNDLE_MAX_FILE);
    uint8_t *p = NULL;
    size_t n = s == VQZ_OK ? (size_t)st.st_size : 0;
    if (s == VQZ_OK && !(p = (uint8_t *)malloc(n ? n : 1)))
        s = vqz_fail(VQZ_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n);
    size_t done = 0;
    while (s == VQZ_OK && done < n) {
        ssize_t r = read(fd, p + done, n - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            s = vqz_fail(VQZ_ERR_IO, "%s: read failed: %s", path, r < 0 ? strerror(errno) : "file shrank");
        else
            done += (size_t)r;
    }
    close(fd);
    if (s != VQZ_OK) {
        free(p);
        return s;
    }
    *buf = p;
    *size = n;
    return VQZ_OK;
}

vqz_status vqz_bundle_open_file(const char *path, vqz_bundle **out)
{
    *out = NULL;
    vqz_bundle *b = bundle_new(path);
    VQZ_FAIL_IF(!b, VQZ_ERR_NOMEM, "%s: out of memory", path);
    vqz_status s = read_whole(path, &b->owned, &b->size);
    if (s != VQZ_OK) {
        vqz_bundle_free(b);
        return s;
    }
    b->data = b->owned;
    return finish_open(b, out);
}

void vqz_bundle_free(vqz_bundle *b)
{
    if (!b)
        return;
    for (int i = 0; i < b->nt; i++)
        free(b->t[i].name);
    for (int i = 0; i < b->nm; i++) {
        free(b->mkey[i]);
        free(b->mval[i]);
    }
    free(b->t);
    free(b->by_name);
    free(b->mkey);
    free(b->mval);
    free(b->owned);
    free(b);
}

int vqz_bundle_tensor_count(const vqz_bundle *b)
{
    return b->nt;
}

static void fill_info(const vqz_bundle *b, const tensor *t, vqz_tensor_info *info)
{
    info->name = t->name;
    info->dtype = t->dtype;
    info->ndim = t->ndim;
    memset(info->shape, 0, sizeof info->shape);
    memcpy(info->shape, t->shape, (size_t)t->ndim * sizeof t->shape[0]);
    info->numel = t->numel;
    info->offset = b->data_start + t->begin;
    info->nbytes = t->end - t->begin;
}

vqz_status vqz_bundle_tensor_at(const vqz_bundle *b, int i, vqz_tensor_info *info)
{
    VQZ_FAIL_IF(i < 0 || i >= b->nt, VQZ_ERR_INVALID_ARG, "%s: tensor %d is not in 0..%d", b->name, i, b->nt - 1);
    fill_info(b, &b->t[i], info);
    return VQZ_OK;
}

static const tensor *find(const vqz_bundle *b, const char *name)
{
    int lo = 0, hi = b->nt - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, b->by_name[mid]->name);
        if (c == 0)
            return b->by_name[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

vqz_status vqz_bundle_find(const vqz_bundle *b, const char *name, vqz_tensor_info *info)
{
    const tensor *t = find(b, name);
    VQZ_FAIL_IF(!t, VQZ_ERR_NOT_FOUND, "%s: no tensor named \"%s\"", b->name, name);
    fill_info(b, t, info);
    return VQZ_OK;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
}

vqz_status vqz_bundle_get_f32(const vqz_bundle *b, const char *name, int ndim, const int64_t *shape, float *out)
{
    const tensor *t = find(b, name);
    VQZ_FAIL_IF(!t, VQZ_ERR_NOT_FOUND, "%s: no tensor named \"%s\"", b->name, name);
    int same = ndim == t->ndim;
    for (int d = 0; d < ndim && same; d++)
        same = shape[d] == t->shape[d];
    if (!same) {
        char have[160], want[160];
        shape_str(have, sizeof have, t->ndim, t->shape);
        shape_str(want, sizeof want, ndim < 0 ? 0 : ndim > VQZ_BUNDLE_MAX_DIMS ? VQZ_BUNDLE_MAX_DIMS : ndim, shape);
        return vqz_fail(VQZ_ERR_SHAPE, "%s: tensor \"%s\" has shape %s, expected %s", b->name, name, have, want);
    }
    const uint8_t *p = b->data + b->data_start + t->begin;
    for (uint64_t i = 0; i < t->numel; i++) {
        float v;
        if (t->dtype == VQZ_DTYPE_F32) {
            uint32_t bits = vqz_get_u32(p + 4 * i);
            memcpy(&v, &bits, 4);
        } else if (t->dtype == VQZ_DTYPE_F16) {
            v = vqz_f16_to_f32(vqz_get_u16(p + 2 * i));
        } else if (t->dtype == VQZ_DTYPE_BF16) {
            v = vqz_bf16_to_f32(vqz_get_u16(p + 2 * i));
        } else {
            return vqz_fail(VQZ_ERR_UNSUPPORTED, "%s: tensor \"%s\" has dtype %s; weights must be F32, F16 or BF16",
                            b->name, name, dtypes[t->dtype].name);
        }
        VQZ_FAIL_IF(!isfinite(v), VQZ_ERR_NONFINITE, "%s: tensor \"%s\" element %llu is %s", b->name, name,
                    (unsigned long long)i, isnan(v) ? "NaN" : "infinite");
        out[i] = v;
    }
    return VQZ_OK;
}

int vqz_bundle_meta_count(const vqz_bundle *b)
{
    return b->nm;
}

vqz_status vqz_bundle_meta_at(const vqz_bundle *b, int i, const char **key, const char **value)
{
    VQZ_FAIL_IF(i < 0 || i >= b->nm, VQZ_ERR_INVALID_ARG, "%s: metadata entry %d is not in 0..%d", b->name, i,
                b->nm - 1);
    *key = b->mkey[i];
    *value = b->mval[i];
    return VQZ_OK;
}

vqz_status vqz_bundle_meta_get(const vqz_bundle *b, const char *key, const char **value)
{
    for (int i = 0; i < b->nm; i++)
        if (strcmp(b->mkey[i], key) == 0) {
            *value = b->mval[i];
            return VQZ_OK;
        }
    *value = NULL;
    return vqz_fail(VQZ_ERR_NOT_FOUND, "%s: no metadata key \"%s\"", b->name, key);
}

vqz_status vqz_bundle_check_vqz(const vqz_bundle *b)
{
    const char *v;
    VQZ_TRY(vqz_bundle_meta_get(b, "format", &v));
    VQZ_FAIL_IF(strcmp(v, VQZ_BUNDLE_FORMAT) != 0, VQZ_ERR_VERSION,
                "%s: bundle format \"%.32s\" is not supported (this reader: %s)", b->name, v, VQZ_BUNDLE_FORMAT);
    VQZ_TRY(vqz_bundle_meta_get(b, "name", &v));
    VQZ_FAIL_IF(v[0] == '\0' || strlen(v) > 255, VQZ_ERR_FORMAT, "%s: name must be 1..255 bytes", b->name);
    VQZ_TRY(vqz_bundle_meta_get(b, "config", &v));
    cJSON *cfg = cJSON_Parse(v);
    const cJSON *kind = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "kind") : NULL;
    int ok = cJSON_IsObject(cfg) && cJSON_IsString(kind);
    cJSON_Delete(cfg);
    VQZ_FAIL_IF(!ok, VQZ_ERR_FORMAT, "%s: config is not a JSON object with a \"kind\" string", b->name);
    return VQZ_OK;
}

void vqz_bundle_sha256(const vqz_bundle *b, uint8_t out[32])
{
    memcpy(out, b->sha, 32);
}
