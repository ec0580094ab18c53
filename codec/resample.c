/* resample.c — streaming sample-rate conversion over libsoxr (SOXR_HQ, float32, interleaved), with exact
 * whole-stream output lengths, and a plain copy when the rates are equal. */
#include "codec/resample.h"

#include <math.h>
#include <soxr.h>
#include <stdlib.h>
#include <string.h>

#include "codec/audio_io.h"

struct vqz_resampler {
    soxr_t soxr; /* NULL for a plain copy */
    int channels;
    double in_rate, out_rate;
    size_t total_in, total_out; /* frames accepted and delivered so far */
    int flushing;
    /* Copy mode: frames accepted but not yet delivered (the caller's cap was smaller than its input). */
    float *pending;
    size_t pending_n, pending_cap;
};

/* soxr reads a NULL input as "flush" and writes nothing to a NULL output; these stand in for empty buffers. */
static const float g_no_input[1] = {0.0f};
static float g_no_output[1];

size_t vqz_resample_length(size_t n_in, double in_rate, double out_rate)
{
    if (in_rate == out_rate)
        return n_in;
    return (size_t)floor((double)n_in * out_rate / in_rate + 0.5);
}

static vqz_status check_rate(const char *which, double rate)
{
    VQZ_FAIL_IF(!isfinite(rate) || rate < VQZ_AUDIO_MIN_RATE || rate > VQZ_AUDIO_MAX_RATE, VQZ_ERR_LIMIT,
                "resampler: %s rate %g Hz outside [%d, %d]", which, rate, VQZ_AUDIO_MIN_RATE, VQZ_AUDIO_MAX_RATE);
    return VQZ_OK;
}

vqz_status vqz_resampler_create(double in_rate, double out_rate, int channels, vqz_resampler **out)
{
    VQZ_FAIL_IF(!out, VQZ_ERR_INVALID_ARG, "resampler: NULL output");
    *out = NULL;
    VQZ_TRY(check_rate("input", in_rate));
    VQZ_TRY(check_rate("output", out_rate));
    VQZ_FAIL_IF(channels < 1, VQZ_ERR_INVALID_ARG, "resampler: %d channels", channels);
    VQZ_FAIL_IF(channels > VQZ_AUDIO_MAX_CHANNELS, VQZ_ERR_LIMIT, "resampler: %d channels (at most %d)", channels,
                VQZ_AUDIO_MAX_CHANNELS);
    vqz_resampler *r = (vqz_resampler *)calloc(1, sizeof *r);
    VQZ_FAIL_IF(!r, VQZ_ERR_NOMEM, "resampler: out of memory");
    r->channels = channels;
    r->in_rate = in_rate;
    r->out_rate = out_rate;
    if (in_rate != out_rate) {
        soxr_error_t err = NULL;
        soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
        soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
        /* One thread: results do not depend on OMP_NUM_THREADS, and the caller parallelises over channels. */
        soxr_runtime_spec_t rt = soxr_runtime_spec(1);
        r->soxr = soxr_create(in_rate, out_rate, (unsigned)channels, &err, &io, &q, &rt);
        if (!r->soxr || err) {
            soxr_delete(r->soxr);
            free(r);
            return vqz_fail(VQZ_ERR_INTERNAL, "resampler: libsoxr refused %g -> %g Hz, %d channels: %s", in_rate, out_rate,
                            channels, err ? err : "no reason given");
        }
    }
    *out = r;
    return VQZ_OK;
}

void vqz_resampler_free(vqz_resampler *r)
{
    if (!r)
        return;
    soxr_delete(r->soxr);
    free(r->pending);
    free(r);
}

size_t vqz_resampler_out_bound(const vqz_resampler *r, size_t n_in)
{
    if (!r)
        return 0;
    if (!r->soxr)
        return r->pending_n + n_in;
    size_t target = vqz_resample_length(r->total_in + n_in, r->in_rate, r->out_rate);
    if (r->flushing)
        return target > r->total_out ? target - r->total_out : 0;
    /* Before the flush soxr's output trails the input by its filter delay, so it never passes the
     * whole-stream length of what has been given; the margin covers rounding. */
    return target + 2 > r->total_out ? target + 2 - r->total_out : 0;
}

/* Copy mode: deliver pending frames first, then input, and keep what does not fit. */
static vqz_status copy_process(vqz_resampler *r, const float *in, size_t n_in, float *out, size_t cap, size_t *n_out)
{
    size_t ch = (size_t)r->channels;
    size_t k = r->pending_n < cap ? r->pending_n : cap;
    if (k > 0) {
        memcpy(out, r->pending, k * ch * sizeof(float));
        memmove(r->pending, r->pending + k * ch, (r->pending_n - k) * ch * sizeof(float));
        r->pending_n -= k;
    }
    size_t direct = 0;
    if (r->pending_n == 0) {
        direct = n_in < cap - k ? n_in : cap - k;
        if (direct > 0)
            memcpy(out + k * ch, in, direct * ch * sizeof(float));
    }
    size_t rest = n_in - direct;
    if (rest > 0) {
        if (r->pending_n + rest > r->pending_cap) {
            size_t new_cap = (r->pending_n + rest) * 2;
            float *p = (float *)realloc(r->pending, new_cap * ch * sizeof(float));
            VQZ_FAIL_IF(!p, VQZ_ERR_NOMEM, "resampler: out of memory buffering %zu frames", r->pending_n + rest);
            r->pending = p;
            r->pending_cap = new_cap;
        }
        memcpy(r->pending + r->pending_n * ch, in + direct * ch, rest * ch * sizeof(float));
        r->pending_n += rest;
    }
    *n_out = k + direct;
    return VQZ_OK;
}

vqz_status vqz_resampler_process(vqz_resampler *r, const float *in, size_t n_in, float *out, size_t cap,
                                 size_t *n_out)
{
    if (n_out)
        *n_out = 0;
    VQZ_FAIL_IF(!r || !n_out, VQZ_ERR_INVALID_ARG, "resampler: NULL argument");
    VQZ_FAIL_IF((n_in > 0 && !in) || (cap > 0 && !out), VQZ_ERR_INVALID_ARG, "resampler: NULL buffer");
    VQZ_FAIL_IF(r->flushing, VQZ_ERR_INVALID_ARG, "resampler: input after flush");
    size_t got = 0;
    if (!r->soxr) {
        VQZ_TRY(copy_process(r, in, n_in, out, cap, &got));
    } else {
        /* No idone pointer: soxr then takes all the input, whatever the output room. */
        soxr_error_t err = soxr_process(r->soxr, n_in > 0 ? in : g_no_input, n_in, NULL, cap > 0 ? out : g_no_output,
                                        cap, &got);
        VQZ_FAIL_IF(err, VQZ_ERR_INTERNAL, "resampler: libsoxr: %s", err);
    }
    r->total_in += n_in;
    r->total_out += got;
    *n_out = got;
    return VQZ_OK;
}

vqz_status vqz_resampler_flush(vqz_resampler *r, float *out, size_t cap, size_t *n_out)
{
    if (n_out)
        *n_out = 0;
    VQZ_FAIL_IF(!r || !n_out, VQZ_ERR_INVALID_ARG, "resampler: NULL argument");
    VQZ_FAIL_IF(cap > 0 && !out, VQZ_ERR_INVALID_ARG, "resampler: NULL buffer");
    r->flushing = 1;
    size_t target = vqz_resample_length(r->total_in, r->in_rate, r->out_rate);
    size_t remaining = target > r->total_out ? target - r->total_out : 0;
    size_t want = remaining < cap ? remaining : cap;
    size_t got = 0;
    if (!r->soxr) {
        VQZ_TRY(copy_process(r, NULL, 0, out, want, &got));
    } else {
        while (got < want) {
            size_t n = 0;
            soxr_error_t err = soxr_process(r->soxr, NULL, 0, NULL, out + got * (size_t)r->channels, want - got, &n);
            VQZ_FAIL_IF(err, VQZ_ERR_INTERNAL, "resampler: libsoxr: %s", err);
            if (n == 0)
                break;
            got += n;
        }
        /* soxr exhausted before the exact length: the missing end is past the signal, i.e. silence. */
        if (got < want) {
            memset(out + got * (size_t)r->channels, 0, (want - got) * (size_t)r->channels * sizeof(float));
            got = want;
        }
    }
    r->total_out += got;
    *n_out = got;
    return VQZ_OK;
}

vqz_status vqz_resample_all(double in_rate, double out_rate, int channels, const float *in, size_t n_in, float *out,
                            size_t n_out)
{
    size_t expect = vqz_resample_length(n_in, in_rate, out_rate);
    VQZ_FAIL_IF(n_out != expect, VQZ_ERR_INVALID_ARG,
                "resample_all: output holds %zu frames, %zu frames at %g Hz give %zu at %g Hz", n_out, n_in, in_rate,
                expect, out_rate);
    vqz_resampler *r;
    VQZ_TRY(vqz_resampler_create(in_rate, out_rate, channels, &r));
    size_t got = 0, n = 0;
    vqz_status s = vqz_resampler_process(r, in, n_in, out, n_out, &got);
    while (s == VQZ_OK && got < n_out) {
        s = vqz_resampler_flush(r, out + got * (size_t)channels, n_out - got, &n);
        if (s == VQZ_OK && n == 0)
            s = vqz_fail(VQZ_ERR_INTERNAL, "resample_all: %zu of %zu frames produced", got, n_out);
        got += n;
    }
    vqz_resampler_free(r);
    return s;
}
