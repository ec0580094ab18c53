/* audio_codec.c — the audio pipeline: streamed samples → model-rate signal → chunks with a halo → network
 * → index store → .vqz (with a description of the source), and back to a streamed WAV/FLAC writer. */
#include "codec/audio_codec.h"

#include <assert.h>
#include <errno.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "codec/audio_chunks.h"
#include "codec/audio_io.h"
#include "codec/resample.h"
#include "common/status.h"
#include "format/fileio.h"

#define DEFAULT_CHUNK_FRAMES 750 /* 10 s at 75 latent frames per second */
#define READ_FRAMES 16384        /* input frames per read */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static vqz_status chunk_frames_of(const vqz_options *o, int *cf)
{
    VQZ_FAIL_IF(o->chunk_frames < 0, VQZ_ERR_INVALID_ARG, "chunk_frames must be positive, got %d", o->chunk_frames);
    *cf = o->chunk_frames > 0 ? o->chunk_frames : DEFAULT_CHUNK_FRAMES;
    return VQZ_OK;
}

/* ------------------------------------------------------------------------ source description */

static void sf_name(int format, char *dst, size_t cap)
{
    SF_FORMAT_INFO fi;
    memset(&fi, 0, sizeof fi);
    fi.format = format;
    if (sf_command(NULL, SFC_GET_FORMAT_INFO, &fi, sizeof fi) == 0 && fi.name)
        snprintf(dst, cap, "%s", fi.name);
    else
        snprintf(dst, cap, "0x%x", (unsigned)format);
}

/* JSON kept in the file's metadata so that decoding can write the source's sample encoding back. */
static vqz_status describe_source(const vqz_audio_info *in, char **out)
{
    char major[64], sub[64];
    sf_name(in->major_format, major, sizeof major);
    sf_name(in->subtype, sub, sizeof sub);
    cJSON *root = cJSON_CreateObject(), *src = cJSON_CreateObject();
    int ok = root && src;
    if (ok) {
        cJSON_AddItemToObject(root, "source", src);
        ok &= cJSON_AddStringToObject(src, "format", major) != NULL;
        ok &= cJSON_AddStringToObject(src, "subtype", sub) != NULL;
        ok &= cJSON_AddNumberToObject(src, "bits", in->bits) != NULL;
        ok &= cJSON_AddBoolToObject(src, "float", in->is_float) != NULL;
        ok &= cJSON_AddStringToObject(src, "description", in->description) != NULL;
    } else {
        cJSON_Delete(src);
    }
    *out = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return *out ? VQZ_OK : vqz_fail(VQZ_ERR_NOMEM, "out of memory describing the source audio");
}

/* The source's sample encoding from the metadata, else from the header's bit depth (a file from another
 * writer still decodes). */
static void source_encoding(vqz_container *c, int *bits, int *is_float)
{
    *bits = vqz_container_header(c)->audio.bit_depth;
    *is_float = 0;
    const char *meta = NULL;
    size_t len = 0;
    if (vqz_container_metadata(c, &meta, &len) != VQZ_OK)
        return;
    cJSON *root = cJSON_ParseWithLength(meta, len);
    const cJSON *src = root ? cJSON_GetObjectItemCaseSensitive(root, "source") : NULL;
    const cJSON *b = src ? cJSON_GetObjectItemCaseSensitive(src, "bits") : NULL;
    const cJSON *fl = src ? cJSON_GetObjectItemCaseSensitive(src, "float") : NULL;
    if (cJSON_IsNumber(b) && b->valuedouble >= 0 && b->valuedouble <= 64) {
        *bits = (int)b->valuedouble;
        *is_float = cJSON_IsTrue(fl);
    }
    cJSON_Delete(root);
}

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* The source's encoding when the output container holds it, else 16-bit PCM. */
static void output_encoding(const char *out, int bits, int is_float, int *obits, int *ofloat)
{
    int flac = strcmp(out, "-") != 0 && ends_with_ci(out, ".flac");
    *obits = 16;
    *ofloat = 0;
    if (is_float) {
        if (!flac && (bits == 32 || bits == 64)) {
            *obits = bits;
            *ofloat = 1;
        }
    } else if (bits == 8 || bits == 16 || bits == 24 || (bits == 32 && !flac)) {
        *obits = bits;
    }
}

/* ------------------------------------------------------------------------ encode */

/* Indices of every level, chunk after chunk, each chunk laid out [channel][frame] as the container
 * stores it; all levels grow together. */
typedef struct {
    int levels;
    uint16_t *idx[VQZ_MAX_LEVELS];
    size_t n, cap; /* per level */
} index_store;

static void store_free(index_store *st)
{
    for (int l = 0; l < st->levels; l++)
        free(st->idx[l]);
}

static vqz_status store_reserve(index_store *st, size_t more)
{
    if (st->n + more <= st->cap)
        return VQZ_OK;
    size_t cap = st->cap ? st->cap : 4096;
    while (cap < st->n + more)
        cap *= 2;
    for (int l = 0; l < st->levels; l++) {
        uint16_t *p = realloc(st->idx[l], cap * sizeof(uint16_t));
        VQZ_FAIL_IF(!p, VQZ_ERR_NOMEM, "out of memory for %zu indices", cap);
        st->idx[l] = p;
    }
    st->cap = cap;
    return VQZ_OK;
}

typedef struct {
    vqz_span_coder sc;
    int levels, chunk_frames;
    vqz_sample_window win;
    index_store store;
    int64_t next;  /* first latent frame not yet encoded */
    int64_t total_m; /* model-rate frames produced so far */
} audio_encoder;

/* Encodes latent frames [c0, c1) of every channel into the store. */
static vqz_status encode_chunk(audio_encoder *e, int64_t c0, int64_t c1, int64_t padded_len)
{
    int64_t w = c1 - c0;
    VQZ_TRY(store_reserve(&e->store, (size_t)(w * e->win.channels)));
    uint16_t *dst[VQZ_MAX_LEVELS];
    for (int l = 0; l < e->levels; l++)
        dst[l] = e->store.idx[l] + e->store.n;
    VQZ_TRY(vqz_span_encode(&e->sc, &e->win, e->levels, c0, c1, padded_len, dst));
    e->store.n += (size_t)(w * e->win.channels);
    return VQZ_OK;
}

/* Resampled frames into the window, keeping what the next chunk's left halo needs. */
static vqz_status encoder_take(void *user, const float *inter, int64_t n)
{
    audio_encoder *e = user;
    VQZ_TRY(vqz_sample_window_append(&e->win, inter, n, e->next * e->sc.f - e->sc.enc_halo));
    e->total_m += n;
    return VQZ_OK;
}

/* Reads the whole input through the resampler, encoding each chunk as soon as its halo has arrived. On
 * success *frames is the input's length and *latent the number of latent frames. */
static vqz_status encode_stream(audio_encoder *e, vqz_audio_reader *r, const vqz_audio_info *in, int model_rate,
                                int64_t *frames, int64_t *latent)
{
    int C = in->channels, f = e->sc.f, halo = e->sc.enc_halo;
    vqz_resampler *rs = NULL;
    VQZ_TRY(vqz_resampler_create(in->sample_rate, model_rate, C, &rs));
    float *buf = malloc((size_t)READ_FRAMES * (size_t)C * sizeof(float));
    float *res = NULL;
    size_t res_cap = 0;
    int64_t total_in = 0;
    vqz_status s = buf ? VQZ_OK : vqz_fail(VQZ_ERR_NOMEM, "out of memory for the input buffer");
    int done = 0;
    while (s == VQZ_OK && !done) {
        int64_t got = 0;
        s = vqz_audio_reader_read(r, buf, READ_FRAMES, &got);
        if (s != VQZ_OK)
            break;
        total_in += got;
        done = got == 0;
        /* after the input, the resampler's tail: flush until it gives nothing */
        s = vqz_resample_into(rs, C, buf, got, done, &res, &res_cap, encoder_take, e);
        /* every chunk whose right halo is complete */
        while (s == VQZ_OK && e->total_m >= (e->next + e->chunk_frames) * f + halo) {
            s = encode_chunk(e, e->next, e->next + e->chunk_frames, INT64_MAX);
            e->next += e->chunk_frames;
        }
    }
    vqz_resampler_free(rs);
    free(buf);
    free(res);
    VQZ_TRY(s);
    int64_t total_m = e->total_m;
    VQZ_FAIL_IF(total_in == 0 || total_m == 0, VQZ_ERR_FORMAT, "the audio holds no samples");
    /* the end: zeros up to a whole latent frame, then the remaining chunks clipped there */
    int64_t W = (total_m + f - 1) / f, padded = W * f;
    VQZ_TRY(vqz_sample_window_append(&e->win, NULL, padded - total_m, e->next * f - halo));
    while (e->next < W) {
        int64_t c1 = min64(W, e->next + e->chunk_frames);
        VQZ_TRY(encode_chunk(e, e->next, c1, padded));
        e->next = c1;
    }
    *frames = total_in;
    *latent = W;
    return VQZ_OK;
}

/* A complete file in memory: the header, the metadata and the first `levels` levels of the store. */
static vqz_status build_file(const vqz_model *m, const vqz_header *h, const char *meta, const index_store *st,
                             const vqz_options *o, uint8_t **buf, uint64_t *size)
{
    *buf = NULL;
    vqz_container_writer *w = NULL;
    VQZ_TRY(vqz_container_writer_create(h, &w));
    vqz_status s = vqz_model_prior_to_writer(m, w, h->levels);
    if (s == VQZ_OK && o->zstd_level > 0)
        s = vqz_container_writer_set_zstd_level(w, o->zstd_level);
    if (s == VQZ_OK)
        vqz_container_writer_set_modelled(w, !o->zstd_only);
    if (s == VQZ_OK)
        s = vqz_container_writer_set_metadata(w, meta, strlen(meta));
    uint32_t chunks = vqz_header_chunk_count(h);
    for (int l = 0; s == VQZ_OK && l < h->levels; l++) {
        size_t off = 0;
        for (uint32_t ch = 0; s == VQZ_OK && ch < chunks; ch++) {
            size_t n = (size_t)vqz_header_chunk_indices(h, ch);
            s = vqz_container_writer_put_chunk(w, l, ch, st->idx[l] + off, n);
            off += n;
        }
    }
    if (s == VQZ_OK)
        s = vqz_container_writer_size(w, size);
    if (s == VQZ_OK && !(*buf = malloc((size_t)*size)))
        s = vqz_fail(VQZ_ERR_NOMEM, "out of memory for the output");
    if (s == VQZ_OK)
        s = vqz_container_writer_write_buffer(w, *buf, (size_t)*size);
    vqz_container_writer_free(w);
    if (s != VQZ_OK) {
        free(*buf);
        *buf = NULL;
    }
    return s;
}

/* The most levels whose whole file stays within kbps over `seconds` (at least one); *buf is rebuilt
 * from its own compressed frames when fewer levels are kept. */
static vqz_status fit_rate(const vqz_header *h, const char *meta, double kbps, double seconds, uint8_t **buf,
                           uint64_t *size, int *levels)
{
    int L = h->levels;
    *levels = L;
    vqz_container *c = NULL;
    VQZ_TRY(vqz_container_open_memory(*buf, (size_t)*size, NULL, &c));
    uint32_t chunks = vqz_header_chunk_count(h);
    uint64_t level_bytes[VQZ_MAX_LEVELS] = {0}, payload = 0;
    vqz_status s = VQZ_OK;
    for (int l = 0; s == VQZ_OK && l < L; l++)
        for (uint32_t ch = 0; s == VQZ_OK && ch < chunks; ch++) {
            vqz_frame_info fi;
            s = vqz_container_frame_info(c, l, ch, &fi);
            level_bytes[l] += fi.comp_size;
            payload += fi.comp_size;
        }
    uint64_t per_level = (uint64_t)chunks * VQZ_FRAME_ENTRY_SIZE + 4; /* frame table entries, K */
    uint64_t total = *size - payload - per_level * L;
    int best = 1;
    for (int n = 1; n <= L; n++) {
        total += level_bytes[n - 1] + per_level;
        if (total * 8.0 / seconds / 1000.0 <= kbps)
            best = n;
    }
    if (s == VQZ_OK && best < L) {
        vqz_header h2 = *h;
        h2.levels = (uint8_t)best;
        vqz_container_writer *w = NULL;
        s = vqz_container_writer_create(&h2, &w);
        if (s == VQZ_OK)
            s = vqz_container_writer_set_metadata(w, meta, strlen(meta));
        for (int l = 0; s == VQZ_OK && l < best; l++)
            for (uint32_t ch = 0; s == VQZ_OK && ch < chunks; ch++) {
                vqz_frame_info fi;
                s = vqz_container_frame_info(c, l, ch, &fi);
                if (s == VQZ_OK)
                    s = vqz_container_writer_put_frame(w, l, ch, *buf + fi.offset, fi.comp_size, fi.raw_size);
            }
        uint64_t n2 = 0;
        uint8_t *buf2 = NULL;
        if (s == VQZ_OK)
            s = vqz_container_writer_size(w, &n2);
        if (s == VQZ_OK && !(buf2 = malloc((size_t)n2)))
            s = vqz_fail(VQZ_ERR_NOMEM, "out of memory for the output");
        if (s == VQZ_OK)
            s = vqz_container_writer_write_buffer(w, buf2, (size_t)n2);
        vqz_container_writer_free(w);
        if (s == VQZ_OK) {
            free(*buf);
            *buf = buf2;
            *size = n2;
            *levels = best;
        } else {
            free(buf2);
        }
    }
    vqz_container_free(c);
    return s;
}

static vqz_status write_stdout(const uint8_t *data, size_t n)
{
    fflush(stdout);
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(STDOUT_FILENO, data + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return vqz_fail(VQZ_ERR_IO, "standard output: %s", w < 0 ? strerror(errno) : "no progress");
        off += (size_t)w;
    }
    return VQZ_OK;
}

/* Names the input in a message that does not name it yet. */
static void name_in_error(const char *name)
{
    if (strncmp(vqz_last_error(), name, strlen(name)) != 0)
        vqz_error_prefix("%s: ", name);
}

static vqz_status encode_file(const vqz_model *m, const vqz_options *o, const char *in, const char *out,
                              vqz_report *rep)
{
    double t0 = vqz_now();
    VQZ_FAIL_IF(m->cfg.kind != VQZ_NET_AUDIO, VQZ_ERR_MODEL_MISMATCH, "model '%s' codes images, not audio", m->name);
    VQZ_FAIL_IF(o->levels < 0 || o->levels > m->cfg.levels, VQZ_ERR_INVALID_ARG, "levels must be 1..%d, got %d",
                m->cfg.levels, o->levels);
    VQZ_FAIL_IF(m->cfg.codebook_size > 65536, VQZ_ERR_UNSUPPORTED, "codebooks over 65536 entries cannot be stored");
    int cf = 0;
    VQZ_TRY(chunk_frames_of(o, &cf));
    vqz_audio_reader *r = NULL;
    VQZ_TRY(vqz_audio_reader_open(in, &r));
    vqz_audio_info info;
    vqz_audio_reader_info(r, &info);
    /* storage chunks are the coding chunks; the format bounds the indices in one */
    if ((int64_t)cf * info.channels > ((int64_t)1 << 24))
        cf = (int)(((int64_t)1 << 24) / info.channels);

    int L = m->cfg.levels, coded = o->levels > 0 ? o->levels : L;
    audio_encoder e;
    memset(&e, 0, sizeof e);
    e.levels = coded;
    e.chunk_frames = cf;
    e.win.channels = info.channels;
    e.store.levels = coded;
    int f = vqz_net_stride(m->net);
    int64_t frames = 0, W = 0;
    vqz_status s = vqz_span_coder_open(&e.sc, m, o);
    if (s == VQZ_OK)
        s = encode_stream(&e, r, &info, m->cfg.sample_rate, &frames, &W);
    if (s == VQZ_OK && W > UINT32_MAX)
        s = vqz_fail(VQZ_ERR_LIMIT, "%lld latent frames exceed the format's grid", (long long)W);
    vqz_audio_reader_close(r);
    vqz_span_coder_close(&e.sc);
    vqz_sample_window_free(&e.win);

    vqz_header h;
    memset(&h, 0, sizeof h);
    h.media_kind = VQZ_MEDIA_AUDIO;
    h.levels = (uint8_t)coded;
    for (int l = 0; l < coded; l++)
        h.K[l] = (uint32_t)m->cfg.codebook_size;
    h.grid_planes = (uint32_t)info.channels;
    h.grid_height = 1;
    h.grid_width = (uint32_t)W;
    h.chunk_height = 1;
    h.chunk_width = (uint32_t)min64(W, cf);
    h.stride = (uint32_t)f;
    snprintf(h.model_name, sizeof h.model_name, "%s", m->name);
    memcpy(h.model_sha256, m->sha256, 32);
    h.audio.sample_rate = (uint32_t)info.sample_rate;
    h.audio.model_rate = (uint32_t)m->cfg.sample_rate;
    h.audio.sample_count = (uint64_t)frames;
    h.audio.channels = (uint16_t)info.channels;
    h.audio.bit_depth = (uint8_t)(info.bits == 8 || info.bits == 16 || info.bits == 24 || info.bits == 32 ? info.bits : 0);

    char *meta = NULL;
    uint8_t *buf = NULL;
    uint64_t size = 0;
    int levels = coded;
    double seconds = (double)frames / info.sample_rate;
    if (s == VQZ_OK)
        s = describe_source(&info, &meta);
    if (s == VQZ_OK)
        s = build_file(m, &h, meta, &e.store, o, &buf, &size);
    store_free(&e.store);
    if (s == VQZ_OK && o->levels == 0 && o->kbps > 0)
        s = fit_rate(&h, meta, o->kbps, seconds, &buf, &size, &levels);
    free(meta);
    if (s == VQZ_OK)
        s = strcmp(out, "-") == 0 ? write_stdout(buf, (size_t)size) : vqz_write_file_atomic(out, buf, (size_t)size);
    free(buf);
    VQZ_TRY(s);
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->kind = VQZ_KIND_AUDIO;
        FILE *fp = strcmp(in, "-") != 0 ? fopen(in, "rb") : NULL;
        if (fp) {
            if (fseek(fp, 0, SEEK_END) == 0 && ftell(fp) > 0)
                rep->in_bytes = (uint64_t)ftell(fp);
            fclose(fp);
        }
        rep->out_bytes = size;
        rep->levels = levels;
        rep->kbps = size * 8.0 / seconds / 1000.0;
        rep->frames = (uint64_t)frames;
        rep->channels = info.channels;
        rep->sample_rate = info.sample_rate;
        rep->seconds = vqz_now() - t0;
    }
    return VQZ_OK;
}

vqz_status vqz_audio_codec_encode_file(const vqz_model *m, const vqz_options *o, const char *in, const char *out,
                                       vqz_report *rep)
{
    vqz_status s = encode_file(m, o, in, out, rep);
    if (s != VQZ_OK)
        name_in_error(strcmp(in, "-") == 0 ? "stdin" : in);
    return s;
}

/* ------------------------------------------------------------------------ decode */

/* Checks an audio header against the model and its own geometry. */
static vqz_status check_header(const vqz_model *m, vqz_container *c)
{
    const vqz_header *h = vqz_container_header(c);
    VQZ_FAIL_IF(h->media_kind != VQZ_MEDIA_AUDIO, VQZ_ERR_INVALID_ARG, "not an audio file");
    VQZ_TRY(vqz_container_check_model(c, m->name, m->sha256));
    VQZ_FAIL_IF(m->cfg.kind != VQZ_NET_AUDIO, VQZ_ERR_MODEL_MISMATCH, "model '%s' codes images, not audio", m->name);
    int f = vqz_net_stride(m->net);
    VQZ_FAIL_IF(h->stride != (uint32_t)f || h->audio.model_rate != (uint32_t)m->cfg.sample_rate,
                VQZ_ERR_MODEL_MISMATCH, "file stride %u at %u Hz does not match model '%s' (stride %d at %d Hz)",
                h->stride, h->audio.model_rate, m->name, f, m->cfg.sample_rate);
    for (int l = 0; l < h->levels; l++)
        VQZ_FAIL_IF(h->K[l] != (uint32_t)m->cfg.codebook_size, VQZ_ERR_MODEL_MISMATCH,
                    "level %d has K = %u, model '%s' has %d", l + 1, h->K[l], m->name, m->cfg.codebook_size);
    VQZ_TRY(vqz_model_prior_to_reader(m, c));
    VQZ_FAIL_IF(h->audio.channels > VQZ_AUDIO_MAX_CHANNELS, VQZ_ERR_LIMIT, "%u channels (at most %d are accepted)",
                h->audio.channels, VQZ_AUDIO_MAX_CHANNELS);
    VQZ_FAIL_IF(h->audio.sample_rate < VQZ_AUDIO_MIN_RATE || h->audio.sample_rate > VQZ_AUDIO_MAX_RATE, VQZ_ERR_LIMIT,
                "sample rate %u Hz outside [%d, %d]", h->audio.sample_rate, VQZ_AUDIO_MIN_RATE, VQZ_AUDIO_MAX_RATE);
    VQZ_FAIL_IF(h->grid_planes != h->audio.channels || h->grid_height != 1, VQZ_ERR_FORMAT,
                "latent grid %u x %u x %u does not fit %u channels of audio", h->grid_planes, h->grid_height,
                h->grid_width, h->audio.channels);
    return vqz_audio_check_length(h->audio.sample_count, h->audio.sample_rate, h->audio.model_rate, h->grid_width, f);
}

typedef struct {
    vqz_resampler *rs;
    vqz_audio_writer *w;
    int channels;
    int64_t target, written; /* frames the output must hold, and written so far */
    float *buf;
    size_t buf_cap;
} pcm_sink;

/* Writes what falls within the target length. */
static vqz_status sink_take(void *user, const float *inter, int64_t n)
{
    pcm_sink *k = user;
    int64_t take = min64(n, k->target - k->written);
    if (take > 0) {
        VQZ_TRY(vqz_audio_writer_write(k->w, inter, take));
        k->written += take;
    }
    return VQZ_OK;
}

/* Resamples n interleaved model-rate frames (n = 0 and flush: the resampler's tail) into the output. */
static vqz_status sink_put(pcm_sink *k, const float *inter, int64_t n, int flush)
{
    return vqz_resample_into(k->rs, k->channels, inter, n, flush, &k->buf, &k->buf_cap, sink_take, k);
}

/* Decodes grid[levels][channels][W] chunk by chunk with a halo of latent frames into the sink. */
static vqz_status decode_chunks(vqz_span_coder *sc, const uint16_t *grid, int levels, int channels, int64_t W,
                                int cf, pcm_sink *k)
{
    int64_t core_max = min64(W, cf) * sc->f;
    float *inter = malloc((size_t)core_max * (size_t)channels * sizeof(float));
    vqz_status s = inter ? VQZ_OK : vqz_fail(VQZ_ERR_NOMEM, "out of memory for a decoding chunk");
    for (int64_t c0 = 0; s == VQZ_OK && c0 < W; c0 += cf) {
        int64_t c1 = min64(W, c0 + cf);
        s = vqz_span_decode(sc, grid, W, 0, channels, levels, c0, c1, W, inter);
        if (s == VQZ_OK)
            s = sink_put(k, inter, (c1 - c0) * sc->f, 0);
    }
    free(inter);
    return s;
}

vqz_status vqz_audio_codec_decode(const vqz_model *m, const vqz_options *o, vqz_container *c, const char *out,
                                  vqz_report *rep)
{
    double t0 = vqz_now();
    VQZ_TRY(check_header(m, c));
    const vqz_header *h = vqz_container_header(c);
    VQZ_FAIL_IF(o->levels < 0, VQZ_ERR_INVALID_ARG, "levels must be positive, got %d", o->levels);
    VQZ_FAIL_IF(o->output_rate != 0 && (o->output_rate < VQZ_AUDIO_MIN_RATE || o->output_rate > VQZ_AUDIO_MAX_RATE),
                VQZ_ERR_INVALID_ARG, "output rate %d Hz outside [%d, %d]", o->output_rate, VQZ_AUDIO_MIN_RATE,
                VQZ_AUDIO_MAX_RATE);
    int cf = 0;
    VQZ_TRY(chunk_frames_of(o, &cf));
    int avail = vqz_container_levels_available(c);
    VQZ_FAIL_IF(avail < 1, VQZ_ERR_TRUNCATED, "the file ends before its first level is complete");
    int levels = o->levels > 0 ? (o->levels < avail ? o->levels : avail) : avail;
    int C = h->audio.channels;
    int64_t W = h->grid_width;

    /* every index is read and verified before any output exists */
    size_t level_n = (size_t)vqz_header_level_indices(h);
    uint16_t *grid = malloc(level_n * (size_t)levels * sizeof(uint16_t));
    vqz_status s = grid ? VQZ_OK : vqz_fail(VQZ_ERR_NOMEM, "out of memory for the index grid");
    for (int l = 0; s == VQZ_OK && l < levels; l++)
        s = vqz_container_read_level(c, l, grid + (size_t)l * level_n, level_n);

    int out_rate = o->output_rate > 0 ? o->output_rate : (int)h->audio.sample_rate;
    pcm_sink k;
    memset(&k, 0, sizeof k);
    k.channels = C;
    k.target = (int64_t)vqz_resample_length((size_t)h->audio.sample_count, h->audio.sample_rate, out_rate);
    vqz_span_coder sc;
    memset(&sc, 0, sizeof sc);
    if (s == VQZ_OK)
        s = vqz_span_coder_open(&sc, m, o);
    if (s == VQZ_OK)
        s = vqz_resampler_create(h->audio.model_rate, out_rate, C, &k.rs);
    if (s == VQZ_OK) {
        vqz_audio_info want;
        memset(&want, 0, sizeof want);
        want.sample_rate = out_rate;
        want.channels = C;
        want.frames = k.target;
        int bits = 0, is_float = 0;
        source_encoding(c, &bits, &is_float);
        output_encoding(out, bits, is_float, &want.bits, &want.is_float);
        s = vqz_audio_writer_open(out, &want, &k.w);
    }
    if (s == VQZ_OK)
        s = decode_chunks(&sc, grid, levels, C, W, cf, &k);
    if (s == VQZ_OK)
        s = sink_put(&k, NULL, 0, 1);
    /* the resampler gave fewer frames than the original held: the rest lies past the signal */
    while (s == VQZ_OK && k.written < k.target) {
        int64_t n = min64(k.target - k.written, 4096);
        float *zeros = calloc((size_t)n * (size_t)C, sizeof(float));
        s = zeros ? vqz_audio_writer_write(k.w, zeros, n) : vqz_fail(VQZ_ERR_NOMEM, "out of memory");
        free(zeros);
        k.written += n;
    }
    if (k.w) {
        vqz_status cs = vqz_audio_writer_close(k.w, s == VQZ_OK);
        if (s == VQZ_OK)
            s = cs;
    }
    vqz_resampler_free(k.rs);
    free(k.buf);
    vqz_span_coder_close(&sc);
    free(grid);
    VQZ_TRY(s);
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->kind = VQZ_KIND_AUDIO;
        rep->in_bytes = vqz_container_file_size(c);
        rep->levels = levels;
        rep->kbps = rep->in_bytes * 8.0 / ((double)h->audio.sample_count / h->audio.sample_rate) / 1000.0;
        rep->frames = (uint64_t)k.target;
        rep->channels = C;
        rep->sample_rate = out_rate;
        rep->seconds = vqz_now() - t0;
    }
    return VQZ_OK;
}
