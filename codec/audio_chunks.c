/* audio_chunks.c — chunked audio coding shared by the file and stream pipelines: the sample window, the
 * resampler pump, and span encode / decode with halos (see audio_chunks.h). */
#include "codec/audio_chunks.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "codec/tiles.h"
#include "common/status.h"

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}
static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

vqz_status vqz_sample_window_append(vqz_sample_window *w, const float *inter, int64_t n, int64_t keep_from)
{
    int C = w->channels;
    if (n == 0)
        return VQZ_OK;
    if (w->len + n > w->cap) {
        int64_t drop = min64(max64(keep_from - w->start, 0), w->len);
        if (drop > 0) {
            for (int c = 0; c < C; c++)
                memmove(w->data + (size_t)c * w->cap, w->data + (size_t)c * w->cap + drop,
                        (size_t)(w->len - drop) * sizeof(float));
            w->start += drop;
            w->len -= drop;
        }
    }
    if (w->len + n > w->cap) {
        int64_t cap = max64(2 * w->cap, w->len + n);
        float *d = malloc((size_t)cap * (size_t)C * sizeof(float));
        VQZ_FAIL_IF(!d, VQZ_ERR_NOMEM, "out of memory for %lld samples x %d channels", (long long)cap, C);
        for (int c = 0; c < C && w->len > 0; c++)
            memcpy(d + (size_t)c * cap, w->data + (size_t)c * w->cap, (size_t)w->len * sizeof(float));
        free(w->data);
        w->data = d;
        w->cap = cap;
    }
    for (int c = 0; c < C; c++) {
        float *dst = w->data + (size_t)c * w->cap + w->len;
        for (int64_t i = 0; i < n; i++)
            dst[i] = inter ? inter[i * C + c] : 0.0f;
    }
    w->len += n;
    return VQZ_OK;
}

void vqz_sample_window_free(vqz_sample_window *w)
{
    free(w->data);
    w->data = NULL;
    w->start = w->len = w->cap = 0;
}

vqz_status vqz_resample_into(vqz_resampler *rs, int channels, const float *in, int64_t n, int flush, float **buf,
                             size_t *cap, vqz_frames_sink sink, void *user)
{
    for (int more = 1; more;) {
        size_t bound = vqz_resampler_out_bound(rs, flush ? 0 : (size_t)n), got = 0;
        if (bound > *cap) {
            free(*buf);
            *cap = bound;
            *buf = malloc(bound * (size_t)channels * sizeof(float));
            if (!*buf) {
                *cap = 0;
                return vqz_fail(VQZ_ERR_NOMEM, "out of memory for the resampled signal");
            }
        }
        if (flush) {
            VQZ_TRY(vqz_resampler_flush(rs, *buf, *cap, &got));
            more = got > 0;
        } else {
            VQZ_TRY(vqz_resampler_process(rs, in, (size_t)n, *buf, *cap, &got));
            more = 0;
        }
        if (got > 0)
            VQZ_TRY(sink(user, *buf, (int64_t)got));
    }
    return VQZ_OK;
}

vqz_status vqz_audio_check_length(uint64_t samples, uint32_t rate, uint32_t model_rate, uint64_t frames, int f)
{
    uint64_t n_m = vqz_resample_length((size_t)samples, rate, model_rate);
    uint64_t padded = frames * (uint64_t)f;
    VQZ_FAIL_IF(padded < n_m || padded - n_m >= (uint64_t)f, VQZ_ERR_FORMAT,
                "%llu samples at %u Hz do not fit %llu latent frames of %d samples at %u Hz",
                (unsigned long long)samples, rate, (unsigned long long)frames, f, model_rate);
    return VQZ_OK;
}

vqz_status vqz_span_coder_open(vqz_span_coder *sc, const vqz_model *m, const vqz_options *o)
{
    memset(sc, 0, sizeof *sc);
    VQZ_TRY(vqz_codec_session(m, o, &sc->net, &sc->ctx));
    sc->f = vqz_net_stride(sc->net);
    vqz_tiling_halos(sc->net, &sc->enc_halo, &sc->dec_halo);
    sc->cancel = o->cancel;
    return VQZ_OK;
}

void vqz_span_coder_close(vqz_span_coder *sc)
{
    vqz_net_free(sc->net);
    vqz_nn_ctx_free(sc->ctx);
    free(sc->x);
    free(sc->idx);
    memset(sc, 0, sizeof *sc);
}

static vqz_status reserve(vqz_span_coder *sc, int64_t samples, int64_t indices)
{
    if ((size_t)samples > sc->x_cap) {
        free(sc->x);
        sc->x = malloc((size_t)samples * sizeof(float));
        sc->x_cap = sc->x ? (size_t)samples : 0;
        VQZ_FAIL_IF(!sc->x, VQZ_ERR_NOMEM, "out of memory for a span of %lld samples", (long long)samples);
    }
    if ((size_t)indices > sc->idx_cap) {
        free(sc->idx);
        sc->idx = malloc((size_t)indices * sizeof(int32_t));
        sc->idx_cap = sc->idx ? (size_t)indices : 0;
        VQZ_FAIL_IF(!sc->idx, VQZ_ERR_NOMEM, "out of memory for a span of %lld indices", (long long)indices);
    }
    return VQZ_OK;
}

vqz_status vqz_span_encode(vqz_span_coder *sc, const vqz_sample_window *w, int levels, int64_t c0, int64_t c1,
                           int64_t padded_len, uint16_t *const *dst)
{
    if (sc->cancel && *sc->cancel)
        return vqz_fail(VQZ_ERR_CANCELLED, "encode cancelled");
    int f = sc->f, C = w->channels;
    int64_t r0 = max64(0, c0 * f - sc->enc_halo), r1 = min64(padded_len, c1 * f + sc->enc_halo), n = r1 - r0;
    assert(r0 >= w->start && r1 <= w->start + w->len && r0 % f == 0 && n % f == 0);
    int64_t span = c1 - c0, lt = n / f;
    VQZ_TRY(reserve(sc, n, lt * levels));
    for (int c = 0; c < C; c++) {
        memcpy(sc->x, w->data + (size_t)c * w->cap + (r0 - w->start), (size_t)n * sizeof(float));
        vqz_tensor xt = vqz_t3(sc->x, 1, 1, n);
        VQZ_TRY(vqz_net_encode(sc->ctx, sc->net, &xt, levels, sc->idx));
        for (int l = 0; l < levels; l++) {
            uint16_t *d = dst[l] + (size_t)c * (size_t)span;
            const int32_t *s = sc->idx + (int64_t)l * lt + (c0 - r0 / f);
            for (int64_t j = 0; j < span; j++)
                d[j] = (uint16_t)s[j];
        }
    }
    return VQZ_OK;
}

vqz_status vqz_span_decode(vqz_span_coder *sc, const uint16_t *grid, int64_t row, int64_t first, int channels,
                           int levels, int64_t c0, int64_t c1, int64_t known, float *inter)
{
    if (sc->cancel && *sc->cancel)
        return vqz_fail(VQZ_ERR_CANCELLED, "decode cancelled");
    int f = sc->f;
    int64_t r0 = max64(0, c0 - sc->dec_halo), r1 = min64(known, c1 + sc->dec_halo), lt = r1 - r0;
    assert(r0 >= first && c1 <= r1);
    int64_t core = (c1 - c0) * f, off = (c0 - r0) * f;
    VQZ_TRY(reserve(sc, lt * f, lt * levels));
    for (int c = 0; c < channels; c++) {
        for (int l = 0; l < levels; l++) {
            const uint16_t *src = grid + ((int64_t)l * channels + c) * row + (r0 - first);
            for (int64_t j = 0; j < lt; j++)
                sc->idx[(int64_t)l * lt + j] = src[j];
        }
        vqz_tensor yt = vqz_t3(sc->x, 1, 1, lt * f);
        VQZ_TRY(vqz_net_decode(sc->ctx, sc->net, sc->idx, levels, &yt));
        for (int64_t t = 0; t < core; t++)
            inter[t * channels + c] = sc->x[off + t];
    }
    return VQZ_OK;
}
