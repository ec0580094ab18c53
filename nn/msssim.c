/* msssim.c — MS-SSIM (nn/msssim.h): per-plane 5-scale pyramids, separable 11-tap Gaussian 'valid'
 * filtering, and the exact gradient through the filters' adjoints and the pooling pyramid. */
#include "nn/msssim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"

#define SCALES 5
#define WIN 11

static const double scale_weight[SCALES] = {0.0448, 0.2856, 0.3001, 0.2363, 0.1333};
static const float C1 = 0.0004f; /* (0.01 * 2)^2 */
static const float C2 = 0.0036f; /* (0.03 * 2)^2 */

static void gauss_window(float g[WIN])
{
    double w[WIN], s = 0.0;
    for (int i = 0; i < WIN; i++) {
        w[i] = exp(-(double)((i - WIN / 2) * (i - WIN / 2)) / (2.0 * 1.5 * 1.5));
        s += w[i];
    }
    for (int i = 0; i < WIN; i++)
        g[i] = (float)(w[i] / s);
}

/* Thread-local buffers for one plane, sized for the largest (first) scale. */
typedef struct {
    int H[SCALES], W[SCALES];
    const float *img_x[SCALES], *img_y[SCALES]; /* scale 0 points into the caller's tensors */
    float *pooled;                              /* pyramid levels 1..4 of x, then of y */
    float *prod;                                /* x^2, y^2, x y: 3 x [H][W] */
    float *tmp;                                 /* horizontal pass of one filtering: [H+10][W] */
    float *maps[SCALES];                        /* per scale mu_x, mu_y, G(x^2), G(y^2), G(x y): 5 x [H-10][W-10] */
    float *maps_mem;
    float *gmaps;                               /* map gradients wrt mu_x, G(x^2), G(x y): 3 x [H-10][W-10] */
    float *pad;                                 /* one map gradient zero-padded by 10: [H+10][W+10] */
    float *adj;                                 /* adjoint of one map gradient: [H][W] */
    float *dimg[SCALES];                        /* gradient per scale, [H][W]; scale 0 writes the caller's */
    float *dimg_mem;
} work;

static void work_free(work *w)
{
    free(w->pooled);
    free(w->prod);
    free(w->tmp);
    free(w->maps_mem);
    free(w->gmaps);
    free(w->pad);
    free(w->adj);
    free(w->dimg_mem);
}

static int work_alloc(work *w, int H, int W, int with_grad)
{
    memset(w, 0, sizeof *w);
    size_t pix = 0, map = 0;
    for (int s = 0; s < SCALES; s++) {
        w->H[s] = s ? (w->H[s - 1] + 1) / 2 : H; /* pool2 turns a side S into ceil(S / 2) */
        w->W[s] = s ? (w->W[s - 1] + 1) / 2 : W;
        if (s)
            pix += (size_t)w->H[s] * w->W[s];
        map += (size_t)(w->H[s] - WIN + 1) * (w->W[s] - WIN + 1);
    }
    size_t pix0 = (size_t)H * W, map0 = (size_t)(H - WIN + 1) * (W - WIN + 1);
    w->pooled = malloc(2 * pix * sizeof(float));
    w->prod = malloc(3 * pix0 * sizeof(float));
    w->tmp = malloc((size_t)(H + WIN - 1) * W * sizeof(float));
    w->maps_mem = malloc(5 * map * sizeof(float));
    int ok = w->pooled && w->prod && w->tmp && w->maps_mem;
    if (with_grad) {
        w->gmaps = malloc(3 * map0 * sizeof(float));
        w->pad = malloc((size_t)(H + WIN - 1) * (W + WIN - 1) * sizeof(float));
        w->adj = malloc(pix0 * sizeof(float));
        w->dimg_mem = malloc(pix * sizeof(float));
        ok = ok && w->gmaps && w->pad && w->adj && w->dimg_mem;
    }
    if (!ok) {
        work_free(w);
        return 0;
    }
    size_t mo = 0, po = 0;
    for (int s = 0; s < SCALES; s++) {
        w->maps[s] = w->maps_mem + 5 * mo;
        mo += (size_t)(w->H[s] - WIN + 1) * (w->W[s] - WIN + 1);
        if (with_grad && s) {
            w->dimg[s] = w->dimg_mem + po;
            po += (size_t)w->H[s] * w->W[s];
        }
    }
    return 1;
}

/* torch avg_pool2d(kernel 2, stride 2, padding = side % 2, count_include_pad=True). Both paths add the
 * taps in the same order, so they give the same bits. */
static void pool2(const float *restrict in, int H, int W, float *restrict out)
{
    int ph = H % 2, pw = W % 2, Ho = (H + 1) / 2, Wo = (W + 1) / 2;
    if (!ph && !pw) {
        for (int h = 0; h < Ho; h++) {
            const float *r0 = in + (size_t)(2 * h) * W, *r1 = r0 + W;
            float *o = out + (size_t)h * Wo;
            for (int w = 0; w < Wo; w++)
                o[w] = 0.25f * (((r0[2 * w] + r0[2 * w + 1]) + r1[2 * w]) + r1[2 * w + 1]);
        }
        return;
    }
    for (int h = 0; h < Ho; h++)
        for (int w = 0; w < Wo; w++) {
            float s = 0.0f;
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    int hh = 2 * h - ph + i, ww = 2 * w - pw + j;
                    if (hh >= 0 && hh < H && ww >= 0 && ww < W)
                        s += in[hh * W + ww];
                }
            out[h * Wo + w] = 0.25f * s;
        }
}

/* Adjoint of pool2: adds each pooled gradient / 4 to its in-range sources. */
static void pool2_adjoint(const float *restrict dout, int H, int W, float *restrict din)
{
    int ph = H % 2, pw = W % 2, Ho = (H + 1) / 2, Wo = (W + 1) / 2;
    if (!ph && !pw) {
        for (int h = 0; h < Ho; h++) {
            float *r0 = din + (size_t)(2 * h) * W, *r1 = r0 + W;
            const float *d = dout + (size_t)h * Wo;
            for (int w = 0; w < Wo; w++) {
                float q = 0.25f * d[w];
                r0[2 * w] += q;
                r0[2 * w + 1] += q;
                r1[2 * w] += q;
                r1[2 * w + 1] += q;
            }
        }
        return;
    }
    for (int h = 0; h < Ho; h++)
        for (int w = 0; w < Wo; w++) {
            float d = 0.25f * dout[h * Wo + w];
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    int hh = 2 * h - ph + i, ww = 2 * w - pw + j;
                    if (hh >= 0 && hh < H && ww >= 0 && ww < W)
                        din[hh * W + ww] += d;
                }
        }
}

/* 'valid' separable filtering of an H x W image with the window g g^T into (H-10) x (W-10); tmp holds
 * the horizontal pass [H][W-10]. Taps are summed in order 0..10. */
static void sep_filter(const float *restrict g, const float *restrict in, int H, int W, float *restrict tmp,
                       float *restrict out)
{
    int Hv = H - WIN + 1, Wv = W - WIN + 1;
    for (int h = 0; h < H; h++) {
        const float *r = in + (size_t)h * W;
        float *t = tmp + (size_t)h * Wv;
        #pragma omp simd
        for (int w = 0; w < Wv; w++) {
            float s = 0.0f;
            for (int j = 0; j < WIN; j++)
                s += g[j] * r[w + j];
            t[w] = s;
        }
    }
    for (int h = 0; h < Hv; h++) {
        float *o = out + (size_t)h * Wv;
        const float *t0 = tmp + (size_t)h * Wv;
        #pragma omp simd
        for (int w = 0; w < Wv; w++)
            o[w] = g[0] * t0[w];
        for (int i = 1; i < WIN; i++) {
            const float gi = g[i], *ti = t0 + (size_t)i * Wv;
            #pragma omp simd
            for (int w = 0; w < Wv; w++)
                o[w] += gi * ti[w];
        }
    }
}

/* The five filtered maps of x, y at one scale: mu_x, mu_y, G(x^2), G(y^2), G(x y). */
static void filter5(const float *g, const float *restrict x, const float *restrict y, int H, int W,
                    float *restrict prod, float *tmp, float *maps)
{
    size_t n = (size_t)H * W, ms = (size_t)(H - WIN + 1) * (W - WIN + 1);
    float *pxx = prod, *pyy = prod + n, *pxy = prod + 2 * n;
    #pragma omp simd
    for (size_t p = 0; p < n; p++) {
        pxx[p] = x[p] * x[p];
        pyy[p] = y[p] * y[p];
        pxy[p] = x[p] * y[p];
    }
    const float *src[5] = {x, y, pxx, pyy, pxy};
    for (int k = 0; k < 5; k++)
        sep_filter(g, src[k], H, W, tmp, maps + k * ms);
}

/* Mean of the cs map (last = 0) or of the ssim map (last = 1). The expressions are ordered so that
 * x == y gives exactly 1 at every pixel (no FMA contraction in ISO C mode). */
static double scale_value(const float *maps, size_t ms, int last)
{
    const float *m1 = maps, *m2 = maps + ms, *e11 = maps + 2 * ms, *e22 = maps + 3 * ms, *e12 = maps + 4 * ms;
    double sum = 0.0;
    if (!last) {
        #pragma omp simd reduction(+ : sum)
        for (size_t p = 0; p < ms; p++) {
            float s11 = e11[p] - m1[p] * m1[p], s22 = e22[p] - m2[p] * m2[p], s12 = e12[p] - m1[p] * m2[p];
            sum += (2.0f * s12 + C2) / (s11 + s22 + C2);
        }
    } else {
        #pragma omp simd reduction(+ : sum)
        for (size_t p = 0; p < ms; p++) {
            float s11 = e11[p] - m1[p] * m1[p], s22 = e22[p] - m2[p] * m2[p], s12 = e12[p] - m1[p] * m2[p];
            float cs = (2.0f * s12 + C2) / (s11 + s22 + C2);
            sum += cs * ((2.0f * m1[p] * m2[p] + C1) / (m1[p] * m1[p] + m2[p] * m2[p] + C1));
        }
    }
    return sum / (double)ms;
}

/* u times the derivative of the map value (cs, or ssim when last) wrt mu_x, G(x^2) and G(x y), per pixel,
 * into gm, g11, g12. */
static void scale_map_grads(const float *maps, size_t ms, int last, float u, float *restrict gm,
                            float *restrict g11, float *restrict g12)
{
    const float *m1 = maps, *m2 = maps + ms, *e11 = maps + 2 * ms, *e22 = maps + 3 * ms, *e12 = maps + 4 * ms;
    const float lm = last ? 1.0f : 0.0f;
    #pragma omp simd
    for (size_t p = 0; p < ms; p++) {
        float a = m1[p], b = m2[p];
        float s11 = e11[p] - a * a, s22 = e22[p] - b * b, s12 = e12[p] - a * b;
        float B = s11 + s22 + C2;
        float cs = (2.0f * s12 + C2) / B;
        /* ssim = l cs: l multiplies the cs partials and adds a direct mu_x term; for cs alone l = 1 and
         * the direct term is 0 (lm = 0) */
        float L2 = a * a + b * b + C1;
        float l = lm * ((2.0f * a * b + C1) / L2) + (1.0f - lm); /* exactly 1 when lm = 0 */
        float dm = lm * 2.0f * cs * (b - l * a) / L2;
        float d11 = -l * cs / B, d12 = 2.0f * l / B; /* partials wrt s_xx and s_xy */
        /* s_xx = G(x^2) - mu_x^2 and s_xy = G(x y) - mu_x mu_y also depend on mu_x */
        gm[p] = u * (dm - 2.0f * a * d11 - b * d12);
        g11[p] = u * d11;
        g12[p] = u * d12;
    }
}

/* dimg = G^T gm + 2 x G^T g11 + y G^T g12, with G^T the adjoint of the 'valid' filter: since the window
 * is symmetric, that is the same 'valid' filter run over the map zero-padded by 10 on every side. */
static void filter_adjoint(const float *g, const float *gmaps, const float *restrict x, const float *restrict y,
                           int H, int W, work *wk, float *restrict dimg)
{
    int Hv = H - WIN + 1, Wv = W - WIN + 1, Hp = H + WIN - 1, Wp = W + WIN - 1;
    size_t ms = (size_t)Hv * Wv, n = (size_t)H * W;
    float *restrict adj = wk->adj;
    memset(wk->pad, 0, (size_t)Hp * Wp * sizeof(float));
    for (int k = 0; k < 3; k++) {
        for (int h = 0; h < Hv; h++)
            memcpy(wk->pad + (size_t)(h + WIN - 1) * Wp + WIN - 1, gmaps + k * ms + (size_t)h * Wv,
                   (size_t)Wv * sizeof(float));
        sep_filter(g, wk->pad, Hp, Wp, wk->tmp, adj);
        if (k == 0) {
            memcpy(dimg, adj, n * sizeof(float));
        } else if (k == 1) {
            #pragma omp simd
            for (size_t p = 0; p < n; p++)
                dimg[p] += 2.0f * x[p] * adj[p];
        } else {
            #pragma omp simd
            for (size_t p = 0; p < n; p++)
                dimg[p] += y[p] * adj[p];
        }
    }
}

/* One plane: its MS-SSIM, and when dx is non-NULL, dx = scale * d(MS-SSIM)/dx. */
static double plane(work *wk, const float *g, const float *x, const float *y, float *dx, double scale)
{
    wk->img_x[0] = x;
    wk->img_y[0] = y;
    size_t off = 0, half = 0;
    for (int s = 1; s < SCALES; s++)
        half += (size_t)wk->H[s] * wk->W[s];
    for (int s = 1; s < SCALES; s++) {
        float *px = wk->pooled + off, *py = wk->pooled + half + off;
        pool2(wk->img_x[s - 1], wk->H[s - 1], wk->W[s - 1], px);
        pool2(wk->img_y[s - 1], wk->H[s - 1], wk->W[s - 1], py);
        wk->img_x[s] = px;
        wk->img_y[s] = py;
        off += (size_t)wk->H[s] * wk->W[s];
    }
    double v[SCALES], prod = 1.0;
    for (int s = 0; s < SCALES; s++) {
        size_t ms = (size_t)(wk->H[s] - WIN + 1) * (wk->W[s] - WIN + 1);
        filter5(g, wk->img_x[s], wk->img_y[s], wk->H[s], wk->W[s], wk->prod, wk->tmp, wk->maps[s]);
        v[s] = scale_value(wk->maps[s], ms, s == SCALES - 1);
        /* relu as pytorch_msssim; NaN stays NaN so the caller can report it */
        prod *= isnan(v[s]) ? v[s] : v[s] > 0.0 ? pow(v[s], scale_weight[s]) : 0.0;
    }
    if (!dx)
        return prod;
    size_t n0 = (size_t)wk->H[0] * wk->W[0];
    if (!(prod > 0.0)) { /* a clamped factor zeroes the product and its gradient */
        memset(dx, 0, n0 * sizeof *dx);
        return prod;
    }
    /* d prod / d v_s = prod w_s / v_s; each map pixel carries 1/|map| of its scale's mean */
    for (int s = SCALES - 1; s >= 0; s--) {
        int H = wk->H[s], W = wk->W[s];
        size_t ms = (size_t)(H - WIN + 1) * (W - WIN + 1);
        float u = (float)(scale * prod * scale_weight[s] / v[s] / (double)ms);
        scale_map_grads(wk->maps[s], ms, s == SCALES - 1, u, wk->gmaps, wk->gmaps + ms, wk->gmaps + 2 * ms);
        float *d = s ? wk->dimg[s] : dx;
        filter_adjoint(g, wk->gmaps, wk->img_x[s], wk->img_y[s], H, W, wk, d);
        if (s < SCALES - 1)
            pool2_adjoint(wk->dimg[s + 1], H, W, d);
    }
    return prod;
}

static vqz_status check_args(vqz_nn_ctx *ctx, const char *op, const vqz_tensor *x, const vqz_tensor *y,
                             const vqz_tensor *grad, const void *out)
{
    VQZ_FAIL_IF(!ctx, VQZ_ERR_INVALID_ARG, "%s: ctx is NULL", op);
    vqz_nn_ctx_enter(ctx);
    VQZ_FAIL_IF(ctx->device == VQZ_CUDA, VQZ_ERR_NO_CUDA, "%s: no CUDA implementation in this build", op);
    VQZ_FAIL_IF(!x || !y || !out, VQZ_ERR_INVALID_ARG, "%s: x, target and the result must not be NULL", op);
    const vqz_tensor *ts[3] = {x, y, grad};
    for (int k = 0; k < 3; k++)
        if (ts[k])
            VQZ_FAIL_IF(ts[k]->device != VQZ_CPU || !ts[k]->data, VQZ_ERR_INVALID_ARG,
                        "%s: tensor %d is not a CPU tensor with data", op, k);
    if (x->ndim != 4 || !vqz_tensor_same_shape(x, y) || (grad && !vqz_tensor_same_shape(x, grad))) {
        const vqz_tensor *o = (x->ndim == 4 && !vqz_tensor_same_shape(x, y)) ? y : grad ? grad : y;
        return vqz_fail(VQZ_ERR_SHAPE, "%s: x [%lld,%lld,%lld,%lld] (rank %d) must be [N,C,H,W] and match %s "
                        "[%lld,%lld,%lld,%lld] (rank %d)", op, (long long)x->shape[0], (long long)x->shape[1],
                        (long long)x->shape[2], (long long)x->shape[3], x->ndim, o == y ? "target" : "grad",
                        (long long)o->shape[0], (long long)o->shape[1], (long long)o->shape[2],
                        (long long)o->shape[3], o->ndim);
    }
    VQZ_FAIL_IF(x->shape[0] < 1 || x->shape[1] < 1, VQZ_ERR_SHAPE, "%s: x has no planes", op);
    VQZ_FAIL_IF(x->shape[2] < VQZ_MSSSIM_MIN_SIDE || x->shape[3] < VQZ_MSSSIM_MIN_SIDE, VQZ_ERR_SHAPE,
                "%s: images %lldx%lld are smaller than %d px on a side, too small for 5 scales of an 11-px "
                "window", op, (long long)x->shape[2], (long long)x->shape[3], VQZ_MSSSIM_MIN_SIDE);
    VQZ_FAIL_IF(x->shape[2] > 65536 || x->shape[3] > 65536, VQZ_ERR_LIMIT, "%s: images %lldx%lld exceed 65536 px "
                "on a side", op, (long long)x->shape[2], (long long)x->shape[3]);
    return VQZ_OK;
}

/* Mean MS-SSIM over planes; with grad, grad = gscale * d(mean)/dx. */
static vqz_status run(const char *op, const vqz_tensor *x, const vqz_tensor *y, vqz_tensor *grad, double gscale,
                      double *value)
{
    int64_t P = x->shape[0] * x->shape[1];
    int H = (int)x->shape[2], W = (int)x->shape[3];
    size_t n0 = (size_t)H * W;
    float g[WIN];
    gauss_window(g);
    double *vals = malloc((size_t)P * sizeof *vals);
    VQZ_FAIL_IF(!vals, VQZ_ERR_NOMEM, "%s: out of memory", op);
    int failed = 0;
    #pragma omp parallel if (P > 1)
    {
        work wk;
        int ok = work_alloc(&wk, H, W, grad != NULL);
        if (!ok) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(dynamic, 1)
        for (int64_t p = 0; p < P; p++) {
            if (!ok)
                continue;
            vals[p] = plane(&wk, g, x->data + (size_t)p * n0, y->data + (size_t)p * n0,
                            grad ? grad->data + (size_t)p * n0 : NULL, gscale / (double)P);
        }
        if (ok)
            work_free(&wk);
    }
    double sum = 0.0;
    for (int64_t p = 0; p < P && !failed; p++)
        sum += vals[p];
    free(vals);
    VQZ_FAIL_IF(failed, VQZ_ERR_NOMEM, "%s: out of memory for %dx%d work buffers", op, H, W);
    *value = sum / (double)P;
    VQZ_FAIL_IF(!isfinite(*value), VQZ_ERR_NONFINITE, "%s: MS-SSIM is %g (NaN/Inf in x or target)", op, *value);
    return VQZ_OK;
}

vqz_status vqz_msssim(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *y, double *value)
{
    VQZ_TRY(check_args(ctx, "msssim", x, y, NULL, value));
    return run("msssim", x, y, NULL, 0.0, value);
}

vqz_status vqz_msssim_loss(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *target, float weight,
                           double *loss, vqz_tensor *grad)
{
    VQZ_TRY(check_args(ctx, "msssim_loss", x, target, grad, loss));
    double v = 0.0;
    VQZ_TRY(run("msssim_loss", x, target, grad, -(double)weight, &v)); /* d(1 - m)/dx = -dm/dx */
    *loss = 1.0 - v;
    return VQZ_OK;
}
