/* dataset.c — the trainer's data: a recursive folder scan, decoding into a compact cache (8-bit RGB images,
 * int16 mono audio at the model's rate), deterministic random crops and clips, and the loader thread. */
#include "codec/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec/audio_io.h"
#include "codec/image_io.h"
#include "codec/resample.h"
#include "nn/rng.h"

#define DS_DEFAULT_MAX_PIXELS 2000000
/* Files decoded together when a cache budget may stop the walk early, so a small budget does not decode
 * the whole folder. */
#define DS_CHUNK_MIN 64
/* Clip RMS below -60 dBFS counts as silence and is redrawn this many times at most. */
#define DS_QUIET_RMS 1e-3
#define DS_QUIET_REDRAWS 4

/* One cached file: RGB interleaved uint8 [height][width][3] for images, int16 mono [frames] for audio. */
typedef struct {
    char *path;
    int width, height;
    int64_t frames;
    void *data;
} ds_item;

struct vqz_dataset {
    vqz_data_kind kind;
    int sample_rate;
    ds_item *items;
    int64_t count;
    int64_t skipped;
    double amount;
};

/* ---- folder scan ------------------------------------------------------------------------------ */

typedef struct {
    char *path;
    dev_t dev;
    ino_t ino;
    int known; /* stat succeeded, so dev/ino identify the file */
} ds_file;

typedef struct {
    dev_t dev;
    ino_t ino;
} ds_dir_id;

typedef struct {
    vqz_data_kind kind;
    ds_file *files;
    size_t n_files, cap_files;
    ds_dir_id *dirs; /* folders already walked: guards against symlink loops and repeated folders */
    size_t n_dirs, cap_dirs;
} ds_scan;

static int has_known_ext(const char *name, vqz_data_kind kind)
{
    static const char *const image_ext[] = {"png", "jpg", "jpeg", NULL};
    static const char *const audio_ext[] = {"wav", "flac", "ogg", "oga", "opus", "aif", "aiff", NULL};
    const char *dot = strrchr(name, '.');
    if (!dot || dot[1] == '\0')
        return 0;
    char ext[8];
    size_t n = strlen(dot + 1);
    if (n >= sizeof ext)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        char c = dot[1 + i];
        ext[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    const char *const *list = kind == VQZ_DATA_IMAGE ? image_ext : audio_ext;
    for (int i = 0; list[i]; i++)
        if (strcmp(ext, list[i]) == 0)
            return 1;
    return 0;
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = malloc(a + (size_t)slash + b + 1);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    if (slash)
        p[a] = '/';
    memcpy(p + a + slash, name, b + 1);
    return p;
}

static char *str_dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* Takes ownership of path (freed on failure). */
static vqz_status scan_add_file(ds_scan *s, char *path, const struct stat *st)
{
    if (s->n_files == s->cap_files) {
        size_t cap = s->cap_files ? 2 * s->cap_files : 256;
        ds_file *v = realloc(s->files, cap * sizeof *v);
        if (!v) {
            free(path);
            return vqz_fail(VQZ_ERR_NOMEM, "dataset: out of memory listing files");
        }
        s->files = v;
        s->cap_files = cap;
    }
    ds_file *f = &s->files[s->n_files++];
    f->path = path;
    f->known = st != NULL;
    f->dev = st ? st->st_dev : 0;
    f->ino = st ? st->st_ino : 0;
    return VQZ_OK;
}

/* 1 when the folder was walked already; otherwise records it and returns 0 (-1 when out of memory). */
static int scan_mark_dir(ds_scan *s, const struct stat *st)
{
    for (size_t i = 0; i < s->n_dirs; i++)
        if (s->dirs[i].dev == st->st_dev && s->dirs[i].ino == st->st_ino)
            return 1;
    if (s->n_dirs == s->cap_dirs) {
        size_t cap = s->cap_dirs ? 2 * s->cap_dirs : 64;
        ds_dir_id *v = realloc(s->dirs, cap * sizeof *v);
        if (!v)
            return -1;
        s->dirs = v;
        s->cap_dirs = cap;
    }
    s->dirs[s->n_dirs].dev = st->st_dev;
    s->dirs[s->n_dirs].ino = st->st_ino;
    s->n_dirs++;
    return 0;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Walks one folder, entries in bytewise name order so the walk (and which path reaches a folder first)
 * does not depend on the order the file system lists them. */
static vqz_status scan_dir(ds_scan *s, const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return vqz_fail(VQZ_ERR_IO, "dataset: cannot open folder %s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    vqz_status st = VQZ_OK;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            size_t c2 = cap ? 2 * cap : 64;
            char **v = realloc(names, c2 * sizeof *v);
            if (!v) {
                st = vqz_fail(VQZ_ERR_NOMEM, "dataset: out of memory listing %s", dir);
                break;
            }
            names = v;
            cap = c2;
        }
        names[n] = str_dup(e->d_name);
        if (!names[n]) {
            st = vqz_fail(VQZ_ERR_NOMEM, "dataset: out of memory listing %s", dir);
            break;
        }
        n++;
    }
    closedir(dp);
    if (st == VQZ_OK && n > 1)
        qsort(names, n, sizeof *names, cmp_str_ptr);
    for (size_t i = 0; i < n && st == VQZ_OK; i++) {
        char *path = path_join(dir, names[i]);
        if (!path) {
            st = vqz_fail(VQZ_ERR_NOMEM, "dataset: out of memory listing %s", dir);
            break;
        }
        struct stat sb;
        if (stat(path, &sb) != 0) {
            /* a dangling link with a media name is reported as a file that cannot be read */
            if (has_known_ext(names[i], s->kind))
                st = scan_add_file(s, path, NULL);
            else
                free(path);
            continue;
        }
        if (S_ISDIR(sb.st_mode)) {
            int seen = scan_mark_dir(s, &sb);
            if (seen < 0)
                st = vqz_fail(VQZ_ERR_NOMEM, "dataset: out of memory listing %s", dir);
            else if (seen == 0)
                st = scan_dir(s, path);
            free(path);
        } else if (S_ISREG(sb.st_mode) && has_known_ext(names[i], s->kind)) {
            st = scan_add_file(s, path, &sb);
        } else {
            free(path);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return st;
}

static int cmp_file_path(const void *a, const void *b)
{
    return strcmp(((const ds_file *)a)->path, ((const ds_file *)b)->path);
}

/* Same file (by device and inode) together, the bytewise-first path of each first. */
static int cmp_file_id(const void *a, const void *b)
{
    const ds_file *x = a, *y = b;
    if (x->known != y->known)
        return x->known < y->known ? -1 : 1;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return strcmp(x->path, y->path);
}

/* Sorts by path and drops later paths of a file already listed (links), keeping its bytewise-first path. */
static void scan_dedupe(ds_scan *s)
{
    if (s->n_files < 2)
        return;
    qsort(s->files, s->n_files, sizeof *s->files, cmp_file_id);
    size_t w = 0;
    for (size_t i = 0; i < s->n_files; i++) {
        ds_file *f = &s->files[i];
        if (w > 0 && f->known && s->files[w - 1].known && s->files[w - 1].dev == f->dev &&
            s->files[w - 1].ino == f->ino) {
            free(f->path);
            continue;
        }
        s->files[w++] = *f;
    }
    s->n_files = w;
    qsort(s->files, s->n_files, sizeof *s->files, cmp_file_path);
}

static void scan_free(ds_scan *s)
{
    for (size_t i = 0; i < s->n_files; i++)
        free(s->files[i].path);
    free(s->files);
    free(s->dirs);
}

/* ---- decoding --------------------------------------------------------------------------------- */

typedef struct {
    vqz_status st;
    char reason[512]; /* why the file is skipped, when st != VQZ_OK */
    int width, height;
    int64_t frames;
    int truncated; /* audio: the file ends before its header says; the frames present are used */
    void *data;
} ds_decoded;

static void decoded_fail(ds_decoded *r, vqz_status st, const char *fmt, ...) VQZ_PRINTF(3, 4);
static void decoded_fail(ds_decoded *r, vqz_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    r->st = st;
    free(r->data);
    r->data = NULL;
}

/* Halves an RGB image with a 2x2 box filter (rounded mean); an odd last row or column is dropped. */
static uint8_t *halve_rgb(const uint8_t *src, int w, int h)
{
    int w2 = w / 2, h2 = h / 2;
    uint8_t *dst = malloc((size_t)w2 * (size_t)h2 * 3);
    if (!dst)
        return NULL;
    for (int y = 0; y < h2; y++) {
        const uint8_t *r0 = src + (size_t)(2 * y) * (size_t)w * 3;
        const uint8_t *r1 = r0 + (size_t)w * 3;
        uint8_t *o = dst + (size_t)y * (size_t)w2 * 3;
        for (int x = 0; x < w2; x++)
            for (int c = 0; c < 3; c++) {
                int s = r0[6 * x + c] + r0[6 * x + 3 + c] + r1[6 * x + c] + r1[6 * x + 3 + c];
                o[3 * x + c] = (uint8_t)((s + 2) >> 2);
            }
    }
    return dst;
}

static void decode_image(const char *path, int64_t max_pixels, int min_side, ds_decoded *r)
{
    vqz_image *img = NULL;
    vqz_status st = vqz_image_read_file(path, &img);
    if (st != VQZ_OK) {
        decoded_fail(r, st, "%s", vqz_last_error());
        return;
    }
    int w = img->width, h = img->height, ch = img->channels;
    size_t np = (size_t)w * (size_t)h;
    uint8_t *rgb = malloc(np * 3);
    if (!rgb) {
        vqz_image_free(img);
        decoded_fail(r, VQZ_ERR_NOMEM, "out of memory for %dx%d pixels", w, h);
        return;
    }
    const uint16_t *s = img->samples;
    for (size_t i = 0; i < np; i++) {
        const uint16_t *p = s + i * (size_t)ch;
        for (int c = 0; c < 3; c++) {
            /* grey (with or without alpha) is replicated; alpha is dropped */
            uint32_t v = ch >= 3 ? p[c] : p[0];
            if (img->bit_depth == 16)
                v = (v * 255u + 32767u) / 65535u;
            rgb[3 * i + (size_t)c] = (uint8_t)v;
        }
    }
    vqz_image_free(img);
    while ((int64_t)w * h > max_pixels && w >= 2 && h >= 2) {
        uint8_t *half = halve_rgb(rgb, w, h);
        free(rgb);
        if (!half) {
            r->data = NULL;
            decoded_fail(r, VQZ_ERR_NOMEM, "out of memory downscaling %dx%d pixels", w, h);
            return;
        }
        rgb = half;
        w /= 2;
        h /= 2;
    }
    r->data = rgb;
    if ((w < h ? w : h) < min_side) {
        decoded_fail(r, VQZ_ERR_SHAPE, "%dx%d after downscaling, below the minimum side %d", w, h, min_side);
        return;
    }
    r->st = VQZ_OK;
    r->width = w;
    r->height = h;
}

static void decode_audio(const char *path, int rate, ds_decoded *r)
{
    vqz_audio *a = NULL;
    vqz_status st = vqz_audio_read_all(path, &a);
    if (st != VQZ_OK) {
        decoded_fail(r, st, "%s", vqz_last_error());
        return;
    }
    int64_t n = a->info.frames;
    int ch = a->info.channels;
    if (n <= 0) {
        vqz_audio_free(a);
        decoded_fail(r, VQZ_ERR_FORMAT, "no samples");
        return;
    }
    float *mono = malloc((size_t)n * sizeof *mono);
    if (!mono) {
        vqz_audio_free(a);
        decoded_fail(r, VQZ_ERR_NOMEM, "out of memory for %lld frames", (long long)n);
        return;
    }
    int finite = 1;
    for (int64_t i = 0; i < n; i++) {
        float sum = 0.0f;
        for (int c = 0; c < ch; c++)
            sum += a->data[(int64_t)c * n + i];
        mono[i] = sum / (float)ch;
        if (!isfinite(mono[i]))
            finite = 0;
    }
    int in_rate = a->info.sample_rate;
    r->truncated = a->info.truncated;
    vqz_audio_free(a);
    if (!finite) {
        free(mono);
        decoded_fail(r, VQZ_ERR_NONFINITE, "NaN or infinite samples");
        return;
    }
    int64_t m = n;
    if (in_rate != rate) {
        m = (int64_t)vqz_resample_length((size_t)n, in_rate, rate);
        float *out = m > 0 ? malloc((size_t)m * sizeof *out) : NULL;
        if (!out) {
            free(mono);
            if (m <= 0)
                decoded_fail(r, VQZ_ERR_FORMAT, "%lld frames at %d Hz are no sample at %d Hz", (long long)n, in_rate,
                             rate);
            else
                decoded_fail(r, VQZ_ERR_NOMEM, "out of memory resampling %lld frames", (long long)n);
            return;
        }
        st = vqz_resample_all(in_rate, rate, 1, mono, (size_t)n, out, (size_t)m);
        free(mono);
        if (st != VQZ_OK) {
            free(out);
            decoded_fail(r, st, "%s", vqz_last_error());
            return;
        }
        mono = out;
    }
    int16_t *pcm = malloc((size_t)m * sizeof *pcm);
    if (!pcm) {
        free(mono);
        decoded_fail(r, VQZ_ERR_NOMEM, "out of memory for %lld frames", (long long)m);
        return;
    }
    for (int64_t i = 0; i < m; i++) {
        float v = mono[i] * 32768.0f;
        pcm[i] = v >= 32767.0f ? 32767 : v <= -32768.0f ? -32768 : (int16_t)lrintf(v);
    }
    free(mono);
    r->st = VQZ_OK;
    r->data = pcm;
    r->frames = m;
}

/* ---- loading ---------------------------------------------------------------------------------- */

static void ds_log(const vqz_dataset_opts *o, const char *fmt, ...) VQZ_PRINTF(2, 3);
static void ds_log(const vqz_dataset_opts *o, const char *fmt, ...)
{
    if (!o->log)
        return;
    char line[4608];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->log(o->log_user, line);
}

static int cmp_item_path(const void *a, const void *b)
{
    return strcmp(((const ds_item *)a)->path, ((const ds_item *)b)->path);
}

static void dirs_list(const char *const *dirs, int n_dirs, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n_dirs && used + 1 < cap; i++) {
        int k = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", dirs[i]);
        if (k < 0)
            break;
        used += (size_t)k;
    }
}

vqz_status vqz_dataset_load(const char *const *dirs, int n_dirs, const vqz_dataset_opts *o, vqz_dataset **out)
{
    vqz_error_clear();
    VQZ_FAIL_IF(!out, VQZ_ERR_INVALID_ARG, "dataset_load: out is NULL");
    *out = NULL;
    VQZ_FAIL_IF(!dirs || n_dirs < 1 || !o, VQZ_ERR_INVALID_ARG, "dataset_load: need at least one folder and options");
    for (int i = 0; i < n_dirs; i++)
        VQZ_FAIL_IF(!dirs[i], VQZ_ERR_INVALID_ARG, "dataset_load: folder %d is NULL", i);
    VQZ_FAIL_IF(o->kind != VQZ_DATA_IMAGE && o->kind != VQZ_DATA_AUDIO, VQZ_ERR_INVALID_ARG,
                "dataset_load: kind %d is neither image (1) nor audio (2)", (int)o->kind);
    VQZ_FAIL_IF(o->kind == VQZ_DATA_AUDIO && (o->sample_rate < VQZ_AUDIO_MIN_RATE || o->sample_rate > VQZ_AUDIO_MAX_RATE),
                VQZ_ERR_INVALID_ARG, "dataset_load: sample rate %d Hz outside [%d, %d]", o->sample_rate,
                VQZ_AUDIO_MIN_RATE, VQZ_AUDIO_MAX_RATE);
    VQZ_FAIL_IF(o->max_pixels < 0 || o->min_side < 0 || o->cache_bytes < 0 || o->threads < 0, VQZ_ERR_INVALID_ARG,
                "dataset_load: max_pixels %lld, min_side %d, cache_bytes %lld, threads %d must not be negative",
                (long long)o->max_pixels, o->min_side, (long long)o->cache_bytes, o->threads);

    int64_t max_pixels = o->max_pixels ? o->max_pixels : DS_DEFAULT_MAX_PIXELS;
    int threads = o->threads ? o->threads : omp_get_max_threads();
    if (threads < 1)
        threads = 1;
    const char *kind_name = o->kind == VQZ_DATA_IMAGE ? "image" : "audio";

    ds_scan scan;
    memset(&scan, 0, sizeof scan);
    scan.kind = o->kind;
    vqz_status st = VQZ_OK;
    for (int i = 0; i < n_dirs && st == VQZ_OK; i++) {
        struct stat sb;
        if (stat(dirs[i], &sb) != 0) {
            st = vqz_fail(VQZ_ERR_IO, "dataset: cannot open folder %s: %s", dirs[i], strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            int seen = scan_mark_dir(&scan, &sb);
            if (seen < 0)
                st = vqz_fail(VQZ_ERR_NOMEM, "dataset: out of memory listing %s", dirs[i]);
            else if (seen == 0)
                st = scan_dir(&scan, dirs[i]);
        } else if (S_ISREG(sb.st_mode) && has_known_ext(dirs[i], o->kind)) {
            char *p = str_dup(dirs[i]);
            st = p ? scan_add_file(&scan, p, &sb) : vqz_fail(VQZ_ERR_NOMEM, "dataset: out of memory");
        } else {
            st = vqz_fail(VQZ_ERR_IO, "dataset: %s is not a folder", dirs[i]);
        }
    }
    if (st != VQZ_OK) {
        scan_free(&scan);
        return st;
    }
    scan_dedupe(&scan);

    /* The order in which files are considered comes from the seed alone, so a cache budget keeps the same
     * files whatever the thread count. */
    vqz_rng rng;
    vqz_rng_seed(&rng, o->seed);
    for (size_t i = scan.n_files; i > 1; i--) {
        size_t j = (size_t)vqz_rng_below(&rng, i);
        ds_file t = scan.files[i - 1];
        scan.files[i - 1] = scan.files[j];
        scan.files[j] = t;
    }

    int64_t n_files = (int64_t)scan.n_files;
    int64_t chunk = o->cache_bytes ? (int64_t)DS_CHUNK_MIN : n_files;
    if (o->cache_bytes && chunk < 8 * (int64_t)threads)
        chunk = 8 * (int64_t)threads;
    if (chunk < 1)
        chunk = 1;
    ds_decoded *dec = calloc((size_t)(chunk < n_files ? chunk : (n_files > 0 ? n_files : 1)), sizeof *dec);
    ds_item *items = n_files > 0 ? calloc((size_t)n_files, sizeof *items) : NULL;
    if (!dec || (n_files > 0 && !items)) {
        free(dec);
        free(items);
        scan_free(&scan);
        return vqz_fail(VQZ_ERR_NOMEM, "dataset: out of memory for %lld files", (long long)n_files);
    }

    int64_t kept = 0, skipped = 0, considered = 0, bytes = 0, units = 0;
    int full = 0;
    for (int64_t pos = 0; pos < n_files && !full && st == VQZ_OK; pos += chunk) {
        int64_t len = n_files - pos < chunk ? n_files - pos : chunk;
        memset(dec, 0, (size_t)len * sizeof *dec);
        #pragma omp parallel for schedule(dynamic) num_threads(threads)
        for (int64_t i = 0; i < len; i++) {
            const char *path = scan.files[pos + i].path;
            if (o->kind == VQZ_DATA_IMAGE)
                decode_image(path, max_pixels, o->min_side, &dec[i]);
            else
                decode_audio(path, o->sample_rate, &dec[i]);
        }
        /* sequential walk in the shuffled order: what is kept, skipped and logged is the same for any
         * thread count */
        for (int64_t i = 0; i < len; i++) {
            ds_decoded *r = &dec[i];
            ds_file *f = &scan.files[pos + i];
            if (full || st != VQZ_OK) {
                free(r->data);
                r->data = NULL;
                continue;
            }
            if (r->st == VQZ_ERR_NOMEM) {
                st = vqz_fail(VQZ_ERR_NOMEM, "dataset: %s: %s", f->path, r->reason);
                continue;
            }
            if (r->st != VQZ_OK) {
                considered++;
                skipped++;
                /* reader messages usually start with the path already */
                if (strncmp(r->reason, f->path, strlen(f->path)) == 0)
                    ds_log(o, "skipping %s", r->reason);
                else
                    ds_log(o, "skipping %s: %s", f->path, r->reason);
                continue;
            }
            int64_t size = o->kind == VQZ_DATA_IMAGE ? (int64_t)r->width * r->height * 3 : r->frames * 2;
            /* the budget stops the walk at the first file that does not fit; a lone file larger than the
             * budget is still kept so a small budget gives a usable set */
            if (o->cache_bytes && kept > 0 && bytes + size > o->cache_bytes) {
                full = 1;
                free(r->data);
                r->data = NULL;
                continue;
            }
            considered++;
            ds_item *it = &items[kept++];
            it->path = f->path;
            f->path = NULL;
            it->width = r->width;
            it->height = r->height;
            it->frames = r->frames;
            it->data = r->data;
            r->data = NULL;
            if (r->truncated)
                ds_log(o, "%s: the file is truncated; using the %.2f s present", it->path,
                       (double)r->frames / o->sample_rate);
            bytes += size;
            units += o->kind == VQZ_DATA_IMAGE ? (int64_t)r->width * r->height : r->frames;
        }
    }
    free(dec);
    scan_free(&scan);

    vqz_dataset *d = NULL;
    if (st == VQZ_OK && kept == 0) {
        char where[1024];
        dirs_list(dirs, n_dirs, where, sizeof where);
        st = vqz_fail(VQZ_ERR_NOT_FOUND, "dataset: no usable %s file in %s (%lld found, %lld skipped)", kind_name,
                      where, (long long)n_files, (long long)skipped);
    }
    if (st == VQZ_OK) {
        d = calloc(1, sizeof *d);
        if (!d)
            st = vqz_fail(VQZ_ERR_NOMEM, "dataset: out of memory");
    }
    if (st != VQZ_OK) {
        for (int64_t i = 0; i < kept; i++) {
            free(items[i].path);
            free(items[i].data);
        }
        free(items);
        return st;
    }
    qsort(items, (size_t)kept, sizeof *items, cmp_item_path);
    d->kind = o->kind;
    d->sample_rate = o->sample_rate;
    d->items = items;
    d->count = kept;
    d->skipped = skipped;
    d->amount = o->kind == VQZ_DATA_IMAGE ? (double)units / 1e6 : (double)units / o->sample_rate;
    if (full)
        ds_log(o, "loaded %lld files (%.2f %s), skipped %lld; cache limit %lld bytes reached after %lld of %lld files",
               (long long)kept, d->amount, o->kind == VQZ_DATA_IMAGE ? "MP" : "s", (long long)skipped,
               (long long)o->cache_bytes, (long long)considered, (long long)n_files);
    else
        ds_log(o, "loaded %lld files (%.2f %s), skipped %lld", (long long)kept, d->amount,
               o->kind == VQZ_DATA_IMAGE ? "MP" : "s", (long long)skipped);
    /* decoders that failed on this thread left their messages behind */
    vqz_error_clear();
    *out = d;
    return VQZ_OK;
}

void vqz_dataset_free(vqz_dataset *d)
{
    if (!d)
        return;
    for (int64_t i = 0; i < d->count; i++) {
        free(d->items[i].path);
        free(d->items[i].data);
    }
    free(d->items);
    free(d);
}

int64_t vqz_dataset_count(const vqz_dataset *d)
{
    return d ? d->count : 0;
}

int64_t vqz_dataset_skipped(const vqz_dataset *d)
{
    return d ? d->skipped : 0;
}

double vqz_dataset_amount(const vqz_dataset *d)
{
    return d ? d->amount : 0.0;
}

const char *vqz_dataset_path(const vqz_dataset *d, int64_t i)
{
    if (!d || i < 0 || i >= d->count)
        return NULL;
    return d->items[i].path;
}

/* ---- crops and clips -------------------------------------------------------------------------- */

/* Index k of the first cumulative weight above r (cum strictly increasing, r < cum[n-1]). */
static int64_t cum_search(const int64_t *cum, int64_t n, int64_t r)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (cum[mid] > r)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static void copy_crop(const ds_item *it, int x0, int y0, int crop, int mirror, float *x)
{
    size_t plane = (size_t)crop * (size_t)crop;
    const uint8_t *rgb = it->data;
    for (int y = 0; y < crop; y++) {
        const uint8_t *row = rgb + ((size_t)(y0 + y) * (size_t)it->width + (size_t)x0) * 3;
        for (int xx = 0; xx < crop; xx++) {
            const uint8_t *p = row + (size_t)(mirror ? crop - 1 - xx : xx) * 3;
            size_t o = (size_t)y * (size_t)crop + (size_t)xx;
            x[o] = (float)p[0] / 127.5f - 1.0f;
            x[plane + o] = (float)p[1] / 127.5f - 1.0f;
            x[2 * plane + o] = (float)p[2] / 127.5f - 1.0f;
        }
    }
}

static vqz_status batch_images(const vqz_dataset *d, vqz_rng *rng, int n, int crop, float *x)
{
    int64_t *cum = malloc((size_t)d->count * sizeof *cum);
    int64_t *idx = malloc((size_t)d->count * sizeof *idx);
    if (!cum || !idx) {
        free(cum);
        free(idx);
        return vqz_fail(VQZ_ERR_NOMEM, "dataset_batch: out of memory");
    }
    int64_t m = 0, total = 0;
    for (int64_t i = 0; i < d->count; i++) {
        const ds_item *it = &d->items[i];
        if (it->width < crop || it->height < crop)
            continue;
        total += (int64_t)it->width * it->height;
        cum[m] = total;
        idx[m++] = i;
    }
    if (m == 0) {
        free(cum);
        free(idx);
        return vqz_fail(VQZ_ERR_SHAPE, "dataset_batch: no image is at least %dx%d pixels (%lld images)", crop, crop,
                        (long long)d->count);
    }
    size_t per = 3 * (size_t)crop * (size_t)crop;
    for (int k = 0; k < n; k++) {
        const ds_item *it = &d->items[idx[cum_search(cum, m, (int64_t)vqz_rng_below(rng, (uint64_t)total))]];
        int x0 = (int)vqz_rng_below(rng, (uint64_t)(it->width - crop + 1));
        int y0 = (int)vqz_rng_below(rng, (uint64_t)(it->height - crop + 1));
        int mirror = (int)(vqz_rng_u64(rng) >> 63);
        copy_crop(it, x0, y0, crop, mirror, x + (size_t)k * per);
    }
    free(cum);
    free(idx);
    return VQZ_OK;
}

/* crop samples of the item starting at sample start (negative or past the end reads silence). */
static void copy_clip(const ds_item *it, int64_t start, int crop, float *x)
{
    const int16_t *s = it->data;
    for (int j = 0; j < crop; j++) {
        int64_t t = start + j;
        x[j] = (t >= 0 && t < it->frames) ? (float)s[t] / 32768.0f : 0.0f;
    }
}

static vqz_status batch_audio(const vqz_dataset *d, vqz_rng *rng, int n, int crop, float *x)
{
    int64_t *cum = malloc((size_t)d->count * sizeof *cum);
    if (!cum)
        return vqz_fail(VQZ_ERR_NOMEM, "dataset_batch: out of memory");
    int64_t total = 0;
    for (int64_t i = 0; i < d->count; i++) {
        total += d->items[i].frames;
        cum[i] = total;
    }
    for (int k = 0; k < n; k++) {
        float *clip = x + (size_t)k * (size_t)crop;
        for (int attempt = 0;; attempt++) {
            const ds_item *it = &d->items[cum_search(cum, d->count, (int64_t)vqz_rng_below(rng, (uint64_t)total))];
            int64_t start;
            if (it->frames >= crop)
                start = (int64_t)vqz_rng_below(rng, (uint64_t)(it->frames - crop + 1));
            else
                start = -(int64_t)vqz_rng_below(rng, (uint64_t)(crop - it->frames + 1));
            copy_clip(it, start, crop, clip);
            double energy = 0.0;
            for (int j = 0; j < crop; j++)
                energy += (double)clip[j] * clip[j];
            if (energy >= DS_QUIET_RMS * DS_QUIET_RMS * crop || attempt == DS_QUIET_REDRAWS)
                break;
        }
        double gain_db = -10.0 + 14.0 * (double)vqz_rng_uniform(rng);
        float peak = 0.0f;
        for (int j = 0; j < crop; j++)
            peak = fmaxf(peak, fabsf(clip[j]));
        float g = (float)pow(10.0, gain_db / 20.0);
        if (peak > 0.0f && (double)peak * g > 0.99) {
            g = (float)(0.99 / peak);
            /* rounding must not push the loudest sample past the limit */
            while (peak * g > 0.99f)
                g = nextafterf(g, 0.0f);
        }
        for (int j = 0; j < crop; j++)
            clip[j] *= g;
    }
    free(cum);
    return VQZ_OK;
}

vqz_status vqz_dataset_batch(const vqz_dataset *d, uint64_t seed, int64_t b, int n, int crop, float *x)
{
    vqz_error_clear();
    VQZ_FAIL_IF(!d || !x, VQZ_ERR_INVALID_ARG, "dataset_batch: NULL dataset or output");
    VQZ_FAIL_IF(n < 1 || crop < 1, VQZ_ERR_INVALID_ARG, "dataset_batch: n %d and crop %d must be positive", n, crop);
    /* the batch's generator depends on both seed and batch number, so batches can be made in any order */
    vqz_rng rng;
    vqz_rng_seed(&rng, seed);
    uint64_t key = vqz_rng_u64(&rng) ^ ((uint64_t)b * UINT64_C(0x9E3779B97F4A7C15));
    vqz_rng_seed(&rng, key);
    if (d->kind == VQZ_DATA_IMAGE)
        return batch_images(d, &rng, n, crop, x);
    return batch_audio(d, &rng, n, crop, x);
}

vqz_status vqz_dataset_fixed(const vqz_dataset *d, int64_t i, int crop, float *x)
{
    vqz_error_clear();
    VQZ_FAIL_IF(!d || !x, VQZ_ERR_INVALID_ARG, "dataset_fixed: NULL dataset or output");
    VQZ_FAIL_IF(i < 0 || i >= d->count, VQZ_ERR_INVALID_ARG, "dataset_fixed: file %lld outside [0, %lld)",
                (long long)i, (long long)d->count);
    VQZ_FAIL_IF(crop < 1, VQZ_ERR_INVALID_ARG, "dataset_fixed: crop %d must be positive", crop);
    const ds_item *it = &d->items[i];
    if (d->kind == VQZ_DATA_IMAGE) {
        VQZ_FAIL_IF(it->width < crop || it->height < crop, VQZ_ERR_SHAPE,
                    "dataset_fixed: %s is %dx%d, smaller than the %dx%d crop", it->path, it->width, it->height, crop,
                    crop);
        copy_crop(it, (it->width - crop) / 2, (it->height - crop) / 2, crop, 0, x);
        return VQZ_OK;
    }
    /* a short file starts the clip and silence follows */
    copy_clip(it, it->frames > crop ? (it->frames - crop) / 2 : 0, crop, x);
    return VQZ_OK;
}

/* ---- loader thread ---------------------------------------------------------------------------- */

struct vqz_loader {
    const vqz_dataset *d;
    uint64_t seed;
    int64_t first;
    int n, crop;
    float *buf[2];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready[2];   /* the slot holds a finished batch not yet taken */
    int held;       /* slot the consumer holds, -1 none */
    int next_slot;  /* slot the consumer takes next */
    int stop;
    vqz_status err; /* the batch function's failure, met at slot err_slot; the worker ends there */
    int err_slot;
    char err_msg[512];
};

static void *loader_main(void *arg)
{
    vqz_loader *l = arg;
    int64_t b = l->first;
    int slot = 0;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        /* a slot is refilled only once the consumer has taken it and handed it back */
        while (!l->stop && (l->ready[slot] || l->held == slot))
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->stop)
            break;
        pthread_mutex_unlock(&l->mu);
        vqz_status st = vqz_dataset_batch(l->d, l->seed, b, l->n, l->crop, l->buf[slot]);
        pthread_mutex_lock(&l->mu);
        if (st != VQZ_OK) {
            l->err = st;
            l->err_slot = slot;
            /* the detail message is per thread: carry it to the consumer */
            snprintf(l->err_msg, sizeof l->err_msg, "%s", vqz_last_error());
            pthread_cond_broadcast(&l->cv);
            break;
        }
        l->ready[slot] = 1;
        pthread_cond_broadcast(&l->cv);
        slot ^= 1;
        b++;
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

vqz_status vqz_loader_start(const vqz_dataset *d, uint64_t seed, int64_t first, int n, int crop, vqz_loader **out)
{
    vqz_error_clear();
    VQZ_FAIL_IF(!out, VQZ_ERR_INVALID_ARG, "loader_start: out is NULL");
    *out = NULL;
    VQZ_FAIL_IF(!d, VQZ_ERR_INVALID_ARG, "loader_start: dataset is NULL");
    VQZ_FAIL_IF(n < 1 || crop < 1, VQZ_ERR_INVALID_ARG, "loader_start: n %d and crop %d must be positive", n, crop);
    size_t per = d->kind == VQZ_DATA_IMAGE ? 3 * (size_t)crop * (size_t)crop : (size_t)crop;
    size_t floats = (size_t)n * per;
    vqz_loader *l = calloc(1, sizeof *l);
    if (!l)
        return vqz_fail(VQZ_ERR_NOMEM, "loader_start: out of memory");
    l->buf[0] = malloc(floats * sizeof(float));
    l->buf[1] = malloc(floats * sizeof(float));
    if (!l->buf[0] || !l->buf[1]) {
        free(l->buf[0]);
        free(l->buf[1]);
        free(l);
        return vqz_fail(VQZ_ERR_NOMEM, "loader_start: out of memory for two batches of %zu floats", floats);
    }
    l->d = d;
    l->seed = seed;
    l->first = first;
    l->n = n;
    l->crop = crop;
    l->held = -1;
    l->err = VQZ_OK;
    l->err_slot = -1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    int rc = pthread_create(&l->thread, NULL, loader_main, l);
    if (rc != 0) {
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        free(l->buf[0]);
        free(l->buf[1]);
        free(l);
        return vqz_fail(VQZ_ERR_INTERNAL, "loader_start: cannot start a thread: %s", strerror(rc));
    }
    *out = l;
    return VQZ_OK;
}

vqz_status vqz_loader_next(vqz_loader *l, const float **x)
{
    vqz_error_clear();
    VQZ_FAIL_IF(!l || !x, VQZ_ERR_INVALID_ARG, "loader_next: NULL loader or output");
    *x = NULL;
    pthread_mutex_lock(&l->mu);
    /* the batch handed out last time goes back to the worker */
    if (l->held >= 0) {
        l->held = -1;
        pthread_cond_broadcast(&l->cv);
    }
    int slot = l->next_slot;
    while (!l->ready[slot] && l->err_slot != slot)
        pthread_cond_wait(&l->cv, &l->mu);
    if (!l->ready[slot]) {
        /* the worker failed on this batch and has ended; every later call reports the same failure */
        vqz_status st = l->err;
        pthread_mutex_unlock(&l->mu);
        return vqz_fail(st, "%s", l->err_msg);
    }
    l->ready[slot] = 0;
    l->held = slot;
    l->next_slot = slot ^ 1;
    pthread_mutex_unlock(&l->mu);
    *x = l->buf[slot];
    return VQZ_OK;
}

void vqz_loader_stop(vqz_loader *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->buf[0]);
    free(l->buf[1]);
    free(l);
}
