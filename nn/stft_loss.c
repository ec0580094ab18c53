/* stft_loss.c — multi-resolution STFT magnitude loss (nn/stft_loss.h): one FFTW r2c per windowed frame,
 * per-frame partial sums in double reduced in a fixed order, gradient through c2r and overlap-add. */
#include "nn/stft_loss.h"

#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"

#define MAG_EPS 1e-7f

typedef struct {
    int n, hop, K;  /* FFT size, hop n/4, bins n/2+1 */
    float *window;  /* periodic Hann [n] */
    fftwf_plan r2c; /* planned on fftwf_malloc'd arrays; executed on per-thread aligned scratch */
    fftwf_plan c2r;
} stft_res;

struct vqz_stft_loss {
    int n_res;
    int n_max;
    stft_res res[VQZ_STFT_MAX_SIZES];
    /* scratch of one resolution, grown on demand and kept between calls */
    fftwf_complex *spec; /* x spectra [B F K] */
    float *mag_y;        /* target magnitudes [B F K] */
    double *part;        /* per-frame partial sums [B F][3] */
    size_t cap_bins, cap_frames;
};

/* The FFTW planner is not thread-safe; every plan creation and destruction goes through this lock. */
static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

void vqz_stft_loss_free(vqz_stft_loss *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&plan_lock);
    for (int r = 0; r < l->n_res; r++) {
        if (l->res[r].r2c)
            fftwf_destroy_plan(l->res[r].r2c);
        if (l->res[r].c2r)
            fftwf_destroy_plan(l->res[r].c2r);
    }
    pthread_mutex_unlock(&plan_lock);
    for (int r = 0; r < l->n_res; r++)
        fftwf_free(l->res[r].window);
    fftwf_free(l->spec);
    fftwf_free(l->mag_y);
    free(l->part);
    free(l);
}

vqz_status vqz_stft_loss_create(vqz_stft_loss **out, const int *fft_sizes, int n_sizes)
{
    static const int defaults[3] = {512, 1024, 2048};
    VQZ_FAIL_IF(!out, VQZ_ERR_INVALID_ARG, "stft_loss_create: out is NULL");
    *out = NULL;
    if (!fft_sizes && n_sizes == 0) {
        fft_sizes = defaults;
        n_sizes = 3;
    }
    VQZ_FAIL_IF(!fft_sizes || n_sizes < 1 || n_sizes > VQZ_STFT_MAX_SIZES, VQZ_ERR_INVALID_ARG,
                "stft_loss_create: %d FFT sizes (want 1..%d)", n_sizes, VQZ_STFT_MAX_SIZES);
    for (int r = 0; r < n_sizes; r++)
        VQZ_FAIL_IF(fft_sizes[r] < 16 || fft_sizes[r] > 65536 || fft_sizes[r] % 4 != 0, VQZ_ERR_INVALID_ARG,
                    "stft_loss_create: FFT size %d must be a multiple of 4 in 16..65536", fft_sizes[r]);
    vqz_stft_loss *l = calloc(1, sizeof *l);
    VQZ_FAIL_IF(!l, VQZ_ERR_NOMEM, "stft_loss_create: out of memory");
    l->n_res = n_sizes;
    for (int r = 0; r < n_sizes; r++) {
        stft_res *s = &l->res[r];
        s->n = fft_sizes[r];
        s->hop = s->n / 4;
        s->K = s->n / 2 + 1;
        if (s->n > l->n_max)
            l->n_max = s->n;
        s->window = fftwf_malloc((size_t)s->n * sizeof(float));
        float *in = fftwf_malloc((size_t)s->n * sizeof(float));
        fftwf_complex *spec = fftwf_malloc((size_t)s->K * sizeof(fftwf_complex));
        if (s->window && in && spec) {
            for (int t = 0; t < s->n; t++)
                s->window[t] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * t / s->n));
            /* ESTIMATE: plans chosen without timing runs, so every run computes the same bits */
            pthread_mutex_lock(&plan_lock);
            s->r2c = fftwf_plan_dft_r2c_1d(s->n, in, spec, FFTW_ESTIMATE);
            s->c2r = fftwf_plan_dft_c2r_1d(s->n, spec, in, FFTW_ESTIMATE);
            pthread_mutex_unlock(&plan_lock);
        }
        fftwf_free(in);
        fftwf_free(spec);
        if (!s->window || !s->r2c || !s->c2r) {
            l->n_res = r + 1;
            vqz_stft_loss_free(l);
            return vqz_fail(VQZ_ERR_NOMEM, "stft_loss_create: cannot allocate or plan an FFT of size %d", fft_sizes[r]);
        }
    }
    *out = l;
    return VQZ_OK;
}

static vqz_status reserve(vqz_stft_loss *l, size_t bins, size_t frames)
{
    if (bins > l->cap_bins) {
        fftwf_free(l->spec);
        fftwf_free(l->mag_y);
        l->spec = fftwf_malloc(bins * sizeof(fftwf_complex));
        l->mag_y = fftwf_malloc(bins * sizeof(float));
        l->cap_bins = (l->spec && l->mag_y) ? bins : 0;
        VQZ_FAIL_IF(!l->cap_bins, VQZ_ERR_NOMEM, "stft_loss: out of memory for %zu spectrum bins", bins);
    }
    if (frames > l->cap_frames) {
        free(l->part);
        l->part = malloc(frames * 3 * sizeof(double));
        l->cap_frames = l->part ? frames : 0;
        VQZ_FAIL_IF(!l->part, VQZ_ERR_NOMEM, "stft_loss: out of memory for %zu frames", frames);
    }
    return VQZ_OK;
}

static void shape_str(const vqz_tensor *t, char *buf, size_t cap)
{
    int off = snprintf(buf, cap, "[");
    for (int i = 0; i < t->ndim && off < (int)cap; i++)
        off += snprintf(buf + off, cap - (size_t)off, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    if (off < (int)cap)
        snprintf(buf + off, cap - (size_t)off, "]");
}

static vqz_status eval_checks(vqz_nn_ctx *ctx, const vqz_stft_loss *l, const vqz_tensor *x, const vqz_tensor *y,
                              const vqz_tensor *grad, const double *loss)
{
    const char *op = "stft_loss";
    VQZ_FAIL_IF(!ctx, VQZ_ERR_INVALID_ARG, "%s: ctx is NULL", op);
    vqz_nn_ctx_enter(ctx);
    VQZ_FAIL_IF(ctx->device == VQZ_CUDA, VQZ_ERR_NO_CUDA, "%s: no CUDA implementation in this build", op);
    VQZ_FAIL_IF(!l || !x || !y || !loss, VQZ_ERR_INVALID_ARG, "%s: loss object, x, target and loss must not be NULL", op);
    const vqz_tensor *ts[3] = {x, y, grad};
    for (int k = 0; k < 3; k++)
        if (ts[k])
            VQZ_FAIL_IF(ts[k]->device != VQZ_CPU || !ts[k]->data, VQZ_ERR_INVALID_ARG,
                        "%s: tensor %d is not a CPU tensor with data", op, k);
    char a[96], b[96];
    shape_str(x, a, sizeof a);
    if (x->ndim != 3 || x->shape[0] < 1 || x->shape[1] < 1)
        return vqz_fail(VQZ_ERR_SHAPE, "%s: x %s must be [N, C, T]", op, a);
    if (!vqz_tensor_same_shape(x, y) || (grad && !vqz_tensor_same_shape(x, grad))) {
        shape_str(!vqz_tensor_same_shape(x, y) ? y : grad, b, sizeof b);
        return vqz_fail(VQZ_ERR_SHAPE, "%s: x %s and %s %s differ", op, a,
                        !vqz_tensor_same_shape(x, y) ? "target" : "grad", b);
    }
    if (x->shape[2] < l->n_max)
        return vqz_fail(VQZ_ERR_SHAPE, "%s: x %s has %lld samples, fewer than the largest FFT size %d", op, a,
                        (long long)x->shape[2], l->n_max);
    return VQZ_OK;
}

/* Per-thread aligned FFT scratch: one real frame and two spectra. */
typedef struct {
    float *in;
    fftwf_complex *sx, *sy;
} scratch;

static int scratch_alloc(scratch *s, int n)
{
    s->in = fftwf_malloc((size_t)n * sizeof(float));
    s->sx = fftwf_malloc((size_t)(n / 2 + 1) * sizeof(fftwf_complex));
    s->sy = fftwf_malloc((size_t)(n / 2 + 1) * sizeof(fftwf_complex));
    return s->in && s->sx && s->sy;
}

static void scratch_free(scratch *s)
{
    fftwf_free(s->in);
    fftwf_free(s->sx);
    fftwf_free(s->sy);
}

/* One resolution: adds L_n / n_res to *loss and, when g is non-NULL, scale * dL_n/dx to g. */
static vqz_status eval_res(vqz_stft_loss *l, const stft_res *s, const float *x, const float *y, int64_t B,
                          int64_t T, double *loss, float *g, float scale)
{
    const int n = s->n, hop = s->hop, K = s->K;
    const int64_t F = (T - n) / hop + 1, frames = B * F;
    VQZ_TRY(reserve(l, (size_t)(frames * K), (size_t)frames));
    fftwf_complex *spec = l->spec;
    float *mag_y = l->mag_y;
    double *part = l->part;
    int failed = 0;

    #pragma omp parallel if (frames * n > 65536)
    {
        scratch sc;
        int ok = scratch_alloc(&sc, n);
        if (!ok) {
            #pragma omp atomic write
            failed = 1;
        }
        /* dynamic: frames are independent, and a busy core should not hold up the other */
        #pragma omp for schedule(dynamic, 8)
        for (int64_t fr = 0; fr < frames; fr++) {
            if (!ok)
                continue;
            int64_t b = fr / F, f = fr % F;
            const float *xf = x + b * T + f * hop, *yf = y + b * T + f * hop;
            for (int t = 0; t < n; t++)
                sc.in[t] = s->window[t] * xf[t];
            fftwf_execute_dft_r2c(s->r2c, sc.in, sc.sx);
            for (int t = 0; t < n; t++)
                sc.in[t] = s->window[t] * yf[t];
            fftwf_execute_dft_r2c(s->r2c, sc.in, sc.sy);
            memcpy(spec + fr * K, sc.sx, (size_t)K * sizeof(fftwf_complex));
            float *my_out = mag_y + fr * K;
            double sd = 0.0, sy = 0.0, sl = 0.0;
            for (int k = 0; k < K; k++) {
                float mx = sqrtf(sc.sx[k][0] * sc.sx[k][0] + sc.sx[k][1] * sc.sx[k][1] + MAG_EPS);
                float my = sqrtf(sc.sy[k][0] * sc.sy[k][0] + sc.sy[k][1] * sc.sy[k][1] + MAG_EPS);
                my_out[k] = my;
                float d = my - mx;
                sd += (double)d * d;
                sy += (double)my * my;
                sl += fabsf(logf(my / mx)); /* = |log m_y - log m_x| */
            }
            part[3 * fr] = sd;
            part[3 * fr + 1] = sy;
            part[3 * fr + 2] = sl;
        }
        scratch_free(&sc);
    }
    VQZ_FAIL_IF(failed, VQZ_ERR_NOMEM, "stft_loss: out of memory for FFT scratch (n=%d)", n);

    double sd = 0.0, sy = 0.0, sl = 0.0; /* fixed order: the same bits for any thread count */
    for (int64_t fr = 0; fr < frames; fr++) {
        sd += part[3 * fr];
        sy += part[3 * fr + 1];
        sl += part[3 * fr + 2];
    }
    double D = sqrt(sd), Y = sqrt(sy), M = (double)frames * K;
    *loss += (D / Y + sl / M) / l->n_res;
    if (!g)
        return VQZ_OK;

    /* dL/dm_x = (m_x - m_y) / (D Y) + sign(m_x - m_y) / (M m_x); dm/d(re, im) = (re, im) / m. The
     * gradient of the frame is sum_k Re(G_k e^{+2 pi i k t/n}), which c2r gives when the interior bins are
     * halved (c2r counts each of them twice through Hermitian symmetry). */
    const float c_sc = D > 0.0 ? (float)(scale / (D * Y)) : 0.0f;
    const float c_lm = (float)(scale / M);
    const int64_t per_phase = (F + 3) / 4;
    for (int phase = 0; phase < 4; phase++) {
        /* frames 4 apart do not overlap (4 hop = n), so one phase scatters without races */
        #pragma omp parallel if (B * per_phase * n > 65536)
        {
            scratch sc;
            int ok = scratch_alloc(&sc, n);
            if (!ok) {
                #pragma omp atomic write
                failed = 1;
            }
            #pragma omp for schedule(dynamic, 4)
            for (int64_t task = 0; task < B * per_phase; task++) {
                int64_t b = task / per_phase, f = 4 * (task % per_phase) + phase;
                if (!ok || f >= F)
                    continue;
                int64_t fr = b * F + f;
                const fftwf_complex *sx = spec + fr * K;
                const float *my = mag_y + fr * K;
                for (int k = 0; k < K; k++) {
                    float re = sx[k][0], im = sx[k][1];
                    float mx = sqrtf(re * re + im * im + MAG_EPS);
                    float d = mx - my[k];
                    float sgn = d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : 0.0f);
                    float gm = c_sc * d + c_lm * sgn / mx;
                    float h = (k == 0 || k == K - 1) ? 1.0f : 0.5f;
                    float c = h * gm / mx;
                    sc.sx[k][0] = c * re;
                    sc.sx[k][1] = c * im;
                }
                fftwf_execute_dft_c2r(s->c2r, sc.sx, sc.in);
                float *gf = g + b * T + f * hop;
                for (int t = 0; t < n; t++)
                    gf[t] += s->window[t] * sc.in[t];
            }
            scratch_free(&sc);
        }
        VQZ_FAIL_IF(failed, VQZ_ERR_NOMEM, "stft_loss: out of memory for FFT scratch (n=%d)", n);
    }
    return VQZ_OK;
}

vqz_status vqz_stft_loss_eval(vqz_nn_ctx *ctx, vqz_stft_loss *l, const vqz_tensor *x, const vqz_tensor *target,
                              float weight, double *loss, vqz_tensor *grad)
{
    VQZ_TRY(eval_checks(ctx, l, x, target, grad, loss));
    int64_t B = x->shape[0] * x->shape[1], T = x->shape[2];
    float *g = grad ? grad->data : NULL;
    if (g)
        memset(g, 0, (size_t)(B * T) * sizeof *g);
    double total = 0.0;
    for (int r = 0; r < l->n_res; r++)
        VQZ_TRY(eval_res(l, &l->res[r], x->data, target->data, B, T, &total, g, weight / (float)l->n_res));
    *loss = total;
    VQZ_FAIL_IF(!isfinite(total), VQZ_ERR_NONFINITE, "stft_loss: loss is %g (NaN/Inf in x or target)", total);
    return VQZ_OK;
}
