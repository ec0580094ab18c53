/* eltwise.c — CPU elementwise and layout ops of nn/ops.h: SiLU, ELU, LeakyReLU, Snake, scaled adds,
 * nearest 2x upsampling, pixel shuffle, channel concat/slice and weight normalisation. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "nn/ops.h"
#ifdef VQZ_HAVE_CUDA
#include "kernels/cuda_ops.h"
#endif

#if defined(__GNUC__) && !defined(__clang__)
/* Lets GCC turn the selects below into vector blends; we never read floating-point exception flags,
 * so results are unchanged. */
#pragma GCC optimize("no-trapping-math")
#endif

/* Loops shorter than this stay on one thread: an OpenMP fork costs about as much as this much work. */
#define PAR_MIN 32768

/* ------------------------------------------------------------------------------------ checks */

typedef struct {
    char s[96];
} shape_buf;

static shape_buf shape_of(const vqz_tensor *t)
{
    shape_buf b;
    int off = snprintf(b.s, sizeof b.s, "[");
    for (int i = 0; i < t->ndim && off < (int)sizeof b.s; i++)
        off += snprintf(b.s + off, sizeof b.s - (size_t)off, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    if (off < (int)sizeof b.s)
        snprintf(b.s + off, sizeof b.s - (size_t)off, "]");
    return b;
}

/* The device of the op being checked on this thread: every op starts with op_begin, and its tensors
 * must live where its context runs. */
static _Thread_local vqz_dev op_device;

/* Enters the context and notes its device for the tensor checks. */
static vqz_status op_begin(vqz_nn_ctx *ctx, const char *op)
{
    VQZ_FAIL_IF(!ctx, VQZ_ERR_INVALID_ARG, "%s: ctx is NULL", op);
    vqz_nn_ctx_enter(ctx);
    op_device = ctx->device;
    return VQZ_OK;
}

static vqz_status check_tensor(const vqz_tensor *t, const char *op, const char *name)
{
    VQZ_FAIL_IF(!t, VQZ_ERR_INVALID_ARG, "%s: %s is NULL", op, name);
    VQZ_FAIL_IF(t->ndim < 1 || t->ndim > VQZ_MAX_DIMS, VQZ_ERR_SHAPE, "%s: %s has rank %d (want 1..4)", op,
                name, t->ndim);
    for (int i = 0; i < t->ndim; i++)
        VQZ_FAIL_IF(t->shape[i] < 0, VQZ_ERR_SHAPE, "%s: %s has negative extent %lld in dim %d", op, name,
                    (long long)t->shape[i], i);
    VQZ_FAIL_IF(t->device != op_device, VQZ_ERR_INVALID_ARG, "%s: %s is not a %s tensor", op, name,
                op_device == VQZ_CUDA ? "CUDA" : "CPU");
    VQZ_FAIL_IF(!t->data && vqz_tensor_numel(t) > 0, VQZ_ERR_INVALID_ARG, "%s: %s has no data", op, name);
    return VQZ_OK;
}

static vqz_status check_same(const vqz_tensor *a, const vqz_tensor *b, const char *op, const char *na,
                             const char *nb)
{
    if (!vqz_tensor_same_shape(a, b))
        return vqz_fail(VQZ_ERR_SHAPE, "%s: %s %s and %s %s differ", op, na, shape_of(a).s, nb, shape_of(b).s);
    return VQZ_OK;
}

/* Ops whose output has another layout than their input cannot run in place. */
static vqz_status check_disjoint(const vqz_tensor *a, const vqz_tensor *b, const char *op, const char *na,
                                 const char *nb)
{
    if (vqz_tensor_numel(a) == 0 || vqz_tensor_numel(b) == 0)
        return VQZ_OK;
    const float *a0 = a->data, *a1 = a->data + vqz_tensor_numel(a);
    const float *b0 = b->data, *b1 = b->data + vqz_tensor_numel(b);
    if (a0 < b1 && b0 < a1)
        return vqz_fail(VQZ_ERR_INVALID_ARG, "%s: %s and %s overlap in memory", op, na, nb);
    return VQZ_OK;
}

/* Number of elements per (n, c) row of an [N, C, ...] tensor. */
static int64_t row_len(const vqz_tensor *t)
{
    int64_t l = 1;
    for (int i = 2; i < t->ndim; i++)
        l *= t->shape[i];
    return l;
}

/* ------------------------------------------------------------------- vectorisable exp, sin, cos */
/* glibc's expf/sinf are scalar calls (libmvec needs -ffast-math), so these Cephes-style kernels, built
 * from plain arithmetic the compiler vectorises, keep the activations memory-bound. Both stay within
 * 2 ulp on their domains (tests/test_eltwise.cpp sweeps them against double precision). */

#define EXP_C1 0.693359375f       /* ln 2 split: C1 has 9 bits, so n * C1 is exact */
#define EXP_C2 -2.12194440e-4f
#define ROUND_MAGIC 12582912.0f  /* 1.5 * 2^23: adding and subtracting it rounds to an integer */

/* exp(x) = 2^n (1 + r + r^2 p(r)) with |r| <= ln2/2. Returns 2^n in *s and r + r^2 p(r) in *q, so that
 * exp(x) = s (1 + q) and expm1(x) = s q + (s - 1) without cancellation near 0. x in [-87, 88]. */
static inline void exp_parts(float x, float *s, float *q)
{
    float n = (x * 1.44269504088896341f + ROUND_MAGIC) - ROUND_MAGIC;
    float r = x - n * EXP_C1;
    r = r - n * EXP_C2;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    *q = p * r * r + r;
    int32_t bits = ((int32_t)n + 127) * (1 << 23);
    memcpy(s, &bits, sizeof bits);
}

/* exp(x) for x <= 0; results below FLT_MIN (x < -87) flush to 0. NaN gives 0: callers keep NaN
 * propagating through their own arithmetic on x. */
static inline float exp_nonpos(float x)
{
    float c = x > -87.0f ? x : -87.0f;
    float s, q;
    exp_parts(c, &s, &q);
    float e = s + s * q;
    return x > -87.0f ? e : 0.0f;
}

/* expm1(x) for x <= 0 (-1 below -87). */
static inline float expm1_nonpos(float x)
{
    float c = x > -87.0f ? x : -87.0f;
    float s, q;
    exp_parts(c, &s, &q);
    return s * q + (s - 1.0f);
}

/* |z| below this takes the fast sin/cos path: three-part Cody–Waite reduction by pi/2 is exact there. */
#define SINCOS_MAX 8192.0f

/* sin(z) and cos(z) for |z| <= SINCOS_MAX: k = round(z 2/pi), r = z - k pi/2, then the quadrant k & 3
 * picks +-sin r or +-cos r. */
static inline void sincos_small(float z, float *sn, float *cs)
{
    float k = (z * 0.636619772367581343f + ROUND_MAGIC) - ROUND_MAGIC;
    float r = z - k * 1.5703125f;
    r = r - k * 4.837512969970703125e-4f;
    r = r - k * 7.54978995489188216e-8f;
    float r2 = r * r;
    float ps = -1.9515295891e-4f;
    ps = ps * r2 + 8.3321608736e-3f;
    ps = ps * r2 - 1.6666654611e-1f;
    float sr = ps * r2 * r + r;
    float pc = 2.443315711809948e-5f;
    pc = pc * r2 - 1.388731625493765e-3f;
    pc = pc * r2 + 4.166664568298827e-2f;
    float cr = pc * r2 * r2 - 0.5f * r2 + 1.0f;
    int32_t q = (int32_t)k & 3;
    float s0 = (q & 1) ? cr : sr;
    float c0 = (q & 1) ? sr : cr;
    *sn = (q & 2) ? -s0 : s0;
    *cs = ((q + 1) & 2) ? -c0 : c0;
}

/* ----------------------------------------------------------------------------------- activations */

static vqz_status unary_checks(vqz_nn_ctx *ctx, const char *op, const vqz_tensor *x, const vqz_tensor *y)
{
    VQZ_TRY(op_begin(ctx, op));
    VQZ_TRY(check_tensor(x, op, "x"));
    VQZ_TRY(check_tensor(y, op, "y"));
    return check_same(x, y, op, "x", "y");
}

static vqz_status unary_bwd_checks(vqz_nn_ctx *ctx, const char *op, const vqz_tensor *x,
                                   const vqz_tensor *dy, const vqz_tensor *dx)
{
    VQZ_TRY(op_begin(ctx, op));
    VQZ_TRY(check_tensor(x, op, "x"));
    VQZ_TRY(check_tensor(dy, op, "dy"));
    VQZ_TRY(check_same(x, dy, op, "x", "dy"));
    if (dx) {
        VQZ_TRY(check_tensor(dx, op, "dx"));
        VQZ_TRY(check_same(x, dx, op, "x", "dx"));
    }
    return VQZ_OK;
}

vqz_status vqz_silu_fwd(vqz_nn_ctx *ctx, const vqz_tensor *x, vqz_tensor *y)
{
    VQZ_TRY(unary_checks(ctx, "silu_fwd", x, y));
    VQZ_ON_CUDA(ctx, vqz_cuda_silu_fwd(ctx->cuda, x->data, y->data, vqz_tensor_numel(x)));
    const float *xp = x->data;
    float *yp = y->data;
    int64_t n = vqz_tensor_numel(x);
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = xp[i];
        /* sigmoid from e = exp(-|v|) <= 1, which never overflows */
        float e = exp_nonpos(-fabsf(v));
        float r = 1.0f / (1.0f + e);
        float sig = v >= 0.0f ? r : e * r;
        yp[i] = v * sig;
    }
    return VQZ_OK;
}

vqz_status vqz_silu_bwd(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *dy, vqz_tensor *dx)
{
    VQZ_TRY(unary_bwd_checks(ctx, "silu_bwd", x, dy, dx));
    if (!dx)
        return VQZ_OK;
    VQZ_ON_CUDA(ctx, vqz_cuda_silu_bwd(ctx->cuda, x->data, dy->data, dx->data, vqz_tensor_numel(x)));
    const float *xp = x->data, *g = dy->data;
    float *o = dx->data;
    int64_t n = vqz_tensor_numel(x);
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = xp[i];
        float e = exp_nonpos(-fabsf(v));
        float r = 1.0f / (1.0f + e);
        float sig = v >= 0.0f ? r : e * r;
        float one_minus = v >= 0.0f ? e * r : r; /* 1 - sigmoid without cancellation */
        o[i] = g[i] * sig * (1.0f + v * one_minus);
    }
    return VQZ_OK;
}

vqz_status vqz_elu_fwd(vqz_nn_ctx *ctx, float alpha, const vqz_tensor *x, vqz_tensor *y)
{
    VQZ_TRY(unary_checks(ctx, "elu_fwd", x, y));
    VQZ_ON_CUDA(ctx, vqz_cuda_elu_fwd(ctx->cuda, alpha, x->data, y->data, vqz_tensor_numel(x)));
    const float *xp = x->data;
    float *yp = y->data;
    int64_t n = vqz_tensor_numel(x);
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = xp[i];
        float neg = alpha * expm1_nonpos(v < 0.0f ? v : 0.0f);
        yp[i] = v <= 0.0f ? neg : v; /* NaN takes the v branch and stays NaN */
    }
    return VQZ_OK;
}

vqz_status vqz_elu_bwd(vqz_nn_ctx *ctx, float alpha, const vqz_tensor *x, const vqz_tensor *dy, vqz_tensor *dx)
{
    VQZ_TRY(unary_bwd_checks(ctx, "elu_bwd", x, dy, dx));
    if (!dx)
        return VQZ_OK;
    VQZ_ON_CUDA(ctx, vqz_cuda_elu_bwd(ctx->cuda, alpha, x->data, dy->data, dx->data, vqz_tensor_numel(x)));
    const float *xp = x->data, *g = dy->data;
    float *o = dx->data;
    int64_t n = vqz_tensor_numel(x);
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = xp[i];
        float d = alpha * exp_nonpos(v < 0.0f ? v : 0.0f);
        o[i] = g[i] * (v > 0.0f ? 1.0f : d);
    }
    return VQZ_OK;
}

vqz_status vqz_leaky_relu_fwd(vqz_nn_ctx *ctx, float slope, const vqz_tensor *x, vqz_tensor *y)
{
    VQZ_TRY(unary_checks(ctx, "leaky_relu_fwd", x, y));
    VQZ_ON_CUDA(ctx, vqz_cuda_leaky_relu_fwd(ctx->cuda, slope, x->data, y->data, vqz_tensor_numel(x)));
    const float *xp = x->data;
    float *yp = y->data;
    int64_t n = vqz_tensor_numel(x);
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = xp[i];
        yp[i] = v * (v > 0.0f ? 1.0f : slope);
    }
    return VQZ_OK;
}

vqz_status vqz_leaky_relu_bwd(vqz_nn_ctx *ctx, float slope, const vqz_tensor *x, const vqz_tensor *dy,
                              vqz_tensor *dx)
{
    VQZ_TRY(unary_bwd_checks(ctx, "leaky_relu_bwd", x, dy, dx));
    if (!dx)
        return VQZ_OK;
    VQZ_ON_CUDA(ctx, vqz_cuda_leaky_relu_bwd(ctx->cuda, slope, x->data, dy->data, dx->data, vqz_tensor_numel(x)));
    const float *xp = x->data, *g = dy->data;
    float *o = dx->data;
    int64_t n = vqz_tensor_numel(x);
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        o[i] = g[i] * (xp[i] > 0.0f ? 1.0f : slope);
    return VQZ_OK;
}

/* ----------------------------------------------------------------------------------------- snake */

static vqz_status snake_checks(const char *op, const vqz_tensor *x, const vqz_tensor *alpha)
{
    VQZ_TRY(check_tensor(x, op, "x"));
    VQZ_TRY(check_tensor(alpha, op, "alpha"));
    VQZ_FAIL_IF(x->ndim < 2, VQZ_ERR_SHAPE, "%s: x %s must be [N,C,...]", op, shape_of(x).s);
    if (vqz_tensor_numel(alpha) != x->shape[1])
        return vqz_fail(VQZ_ERR_SHAPE, "%s: alpha %s must hold one value per channel of x %s", op,
                        shape_of(alpha).s, shape_of(x).s);
    return VQZ_OK;
}

/* Largest |v| of a row, NaN-blind; decides whether the fast sin/cos path is exact enough. */
static float max_abs(const float *v, int64_t n)
{
    float m = 0.0f;
    #pragma omp simd reduction(max : m)
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(v[i]);
        m = a > m ? a : m;
    }
    return m;
}

vqz_status vqz_snake_fwd(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *alpha, vqz_tensor *y)
{
    const char *op = "snake_fwd";
    VQZ_TRY(op_begin(ctx, op));
    VQZ_TRY(snake_checks(op, x, alpha));
    VQZ_TRY(check_tensor(y, op, "y"));
    VQZ_TRY(check_same(x, y, op, "x", "y"));
    int64_t C = x->shape[1], rows = x->shape[0] * C, L = row_len(x);
    VQZ_ON_CUDA(ctx, vqz_cuda_snake_fwd(ctx->cuda, x->data, alpha->data, y->data, x->shape[0], C, L));
    const float *al = alpha->data;
    #pragma omp parallel for schedule(static) if (rows * L > PAR_MIN && rows > 1)
    for (int64_t row = 0; row < rows; row++) {
        float a = al[row % C];
        float inv = 1.0f / (a + 1e-9f);
        const float *xp = x->data + row * L;
        float *yp = y->data + row * L;
        if (fabsf(a) * max_abs(xp, L) <= SINCOS_MAX) {
            #pragma omp simd
            for (int64_t i = 0; i < L; i++) {
                float s, c;
                sincos_small(a * xp[i], &s, &c);
                yp[i] = xp[i] + s * s * inv;
            }
        } else {
            for (int64_t i = 0; i < L; i++) {
                float s = sinf(a * xp[i]);
                yp[i] = xp[i] + s * s * inv;
            }
        }
    }
    return VQZ_OK;
}

vqz_status vqz_snake_bwd(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *alpha, const vqz_tensor *dy,
                         vqz_tensor *dx, vqz_tensor *dalpha)
{
    const char *op = "snake_bwd";
    VQZ_TRY(op_begin(ctx, op));
    VQZ_TRY(snake_checks(op, x, alpha));
    VQZ_TRY(check_tensor(dy, op, "dy"));
    VQZ_TRY(check_same(x, dy, op, "x", "dy"));
    if (dx) {
        VQZ_TRY(check_tensor(dx, op, "dx"));
        VQZ_TRY(check_same(x, dx, op, "x", "dx"));
    }
    if (dalpha) {
        VQZ_TRY(check_tensor(dalpha, op, "dalpha"));
        VQZ_TRY(check_same(alpha, dalpha, op, "alpha", "dalpha"));
    }
    if (!dx && !dalpha)
        return VQZ_OK;
    int64_t C = x->shape[1], rows = x->shape[0] * C, L = row_len(x);
    VQZ_ON_CUDA(ctx, vqz_cuda_snake_bwd(ctx->cuda, x->data, alpha->data, dy->data, dx ? dx->data : NULL,
                                        dalpha ? dalpha->data : NULL, x->shape[0], C, L));
    /* per-row dalpha partials, summed per channel afterwards in a fixed order (deterministic) */
    double *part = NULL;
    if (dalpha && rows > 0) {
        part = malloc((size_t)rows * sizeof *part);
        VQZ_FAIL_IF(!part, VQZ_ERR_NOMEM, "%s: out of memory for %lld partial sums", op, (long long)rows);
    }
    const float *al = alpha->data;
    #pragma omp parallel for schedule(static) if (rows * L > PAR_MIN && rows > 1)
    for (int64_t row = 0; row < rows; row++) {
        float a = al[row % C];
        float inv = 1.0f / (a + 1e-9f);
        const float *xp = x->data + row * L, *g = dy->data + row * L;
        float *o = dx ? dx->data + row * L : NULL;
        int fast = fabsf(a) * max_abs(xp, L) <= SINCOS_MAX;
        /* y = x + s^2 inv with s = sin(a x): dy/dx = 1 + 2 s c a inv, dy/da = 2 s c x inv - s^2 inv^2.
         * dx is written after dy is read, element by element, so dx may alias dy. */
        double dacc = 0.0;
        float scratch[1024]; /* dx sink when only dalpha is wanted, so both loops store unconditionally */
        for (int64_t i0 = 0; i0 < L; i0 += 1024) {
            int64_t m = L - i0 < 1024 ? L - i0 : 1024;
            const float *xb = xp + i0, *gb = g + i0;
            float *ob = o ? o + i0 : scratch;
            float acc = 0.0f;
            if (fast) {
                #pragma omp simd reduction(+ : acc)
                for (int64_t i = 0; i < m; i++) {
                    float v = xb[i], s, c;
                    sincos_small(a * v, &s, &c);
                    float gi = gb[i];
                    acc += gi * (2.0f * s * c * v * inv - s * s * inv * inv);
                    ob[i] = gi * (1.0f + 2.0f * s * c * a * inv);
                }
            } else {
                for (int64_t i = 0; i < m; i++) {
                    float v = xb[i], s = sinf(a * v), c = cosf(a * v);
                    float gi = gb[i];
                    acc += gi * (2.0f * s * c * v * inv - s * s * inv * inv);
                    ob[i] = gi * (1.0f + 2.0f * s * c * a * inv);
                }
            }
            dacc += acc; /* float partials over short blocks, double across blocks */
        }
        if (part)
            part[row] = dacc;
    }
    if (part) {
        int64_t N = x->shape[0];
        for (int64_t c = 0; c < C; c++) {
            double s = 0.0;
            for (int64_t n = 0; n < N; n++)
                s += part[n * C + c];
            dalpha->data[c] += (float)s;
        }
        free(part);
    }
    return VQZ_OK;
}

/* ---------------------------------------------------------------------------------- scaled adds */

vqz_status vqz_add_scaled(vqz_nn_ctx *ctx, const vqz_tensor *a, float scale, const vqz_tensor *b, vqz_tensor *y)
{
    const char *op = "add_scaled";
    VQZ_TRY(op_begin(ctx, op));
    VQZ_TRY(check_tensor(a, op, "a"));
    VQZ_TRY(check_tensor(b, op, "b"));
    VQZ_TRY(check_tensor(y, op, "y"));
    VQZ_TRY(check_same(a, b, op, "a", "b"));
    VQZ_TRY(check_same(a, y, op, "a", "y"));
    VQZ_ON_CUDA(ctx, vqz_cuda_add_scaled(ctx->cuda, a->data, scale, b->data, y->data, vqz_tensor_numel(a)));
    const float *ap = a->data, *bp = b->data;
    float *yp = y->data;
    int64_t n = vqz_tensor_numel(a);
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        yp[i] = ap[i] + scale * bp[i];
    return VQZ_OK;
}

vqz_status vqz_axpy(vqz_nn_ctx *ctx, float alpha, const vqz_tensor *x, vqz_tensor *y)
{
    const char *op = "axpy";
    VQZ_TRY(op_begin(ctx, op));
    VQZ_TRY(check_tensor(x, op, "x"));
    VQZ_TRY(check_tensor(y, op, "y"));
    VQZ_TRY(check_same(x, y, op, "x", "y"));
    VQZ_ON_CUDA(ctx, vqz_cuda_axpy(ctx->cuda, alpha, x->data, y->data, vqz_tensor_numel(x)));
    const float *xp = x->data;
    float *yp = y->data;
    int64_t n = vqz_tensor_numel(x);
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        yp[i] += alpha * xp[i];
    return VQZ_OK;
}

vqz_status vqz_scale(vqz_nn_ctx *ctx, float alpha, const vqz_tensor *x, vqz_tensor *y)
{
    const char *op = "scale";
    VQZ_TRY(op_begin(ctx, op));
    VQZ_TRY(check_tensor(x, op, "x"));
    VQZ_TRY(check_tensor(y, op, "y"));
    VQZ_TRY(check_same(x, y, op, "x", "y"));
    VQZ_ON_CUDA(ctx, vqz_cuda_scale(ctx->cuda, alpha, x->data, y->data, vqz_tensor_numel(x)));
    const float *xp = x->data;
    float *yp = y->data;
    int64_t n = vqz_tensor_numel(x);
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        yp[i] = alpha * xp[i];
    return VQZ_OK;
}

/* ---------------------------------------------------------------------------------- upsampling */

static vqz_status resample_checks(const char *op, const vqz_tensor *small, const char *ns,
                                  const vqz_tensor *big, const char *nb, int64_t c_div, int64_t factor)
{
    VQZ_TRY(check_tensor(small, op, ns));
    VQZ_TRY(check_tensor(big, op, nb));
    if (small->ndim != 4 || big->ndim != 4 || small->shape[0] != big->shape[0] ||
        small->shape[1] != big->shape[1] * c_div || big->shape[2] != small->shape[2] * factor ||
        big->shape[3] != small->shape[3] * factor)
        return vqz_fail(VQZ_ERR_SHAPE, "%s: %s %s and %s %s do not fit (factor %lld)", op, ns,
                        shape_of(small).s, nb, shape_of(big).s, (long long)factor);
    return check_disjoint(small, big, op, ns, nb);
}

vqz_status vqz_upsample2x_fwd(vqz_nn_ctx *ctx, const vqz_tensor *x, vqz_tensor *y)
{
    const char *op = "upsample2x_fwd";
    VQZ_TRY(op_begin(ctx, op));
    VQZ_TRY(resample_checks(op, x, "x", y, "y", 1, 2));
    int64_t H = x->shape[2], W = x->shape[3], rows = x->shape[0] * x->shape[1] * H;
    VQZ_ON_CUDA(ctx, vqz_cuda_upsample2x_fwd(ctx->cuda, x->data, y->data, x->shape[0] * x->shape[1], H, W));
    #pragma omp parallel for schedule(static) if (rows * W > PAR_MIN / 4)
    for (int64_t row = 0; row < rows; row++) {
        const float *xr = x->data + row * W;
        float *y0 = y->data + row * 4 * W, *y1 = y0 + 2 * W;
        #pragma omp simd
        for (int64_t w = 0; w < W; w++) {
            y0[2 * w] = xr[w];
            y0[2 * w + 1] = xr[w];
        }
        memcpy(y1, y0, (size_t)(2 * W) * sizeof *y1);
    }
    return VQZ_OK;
}

vqz_status vqz_upsample2x_bwd(vqz_nn_ctx *ctx, const vqz_tensor *dy, vqz_tensor *dx)
{
    const char *op = "upsample2x_bwd";
    VQZ_TRY(op_begin(ctx, op));
    VQZ_TRY(resample_checks(op, dx, "dx", dy, "dy", 1, 2));
    int64_t H = dx->shape[2], W = dx->shape[3], rows = dx->shape[0] * dx->shape[1] * H;
    VQZ_ON_CUDA(ctx, vqz_cuda_upsample2x_bwd(ctx->cuda, dy->data, dx->data, dx->shape[0] * dx->shape[1], H, W));
    #pragma omp parallel for schedule(static) if (rows * W > PAR_MIN / 4)
    for (int64_t row = 0; row < rows; row++) {
        const float *g0 = dy->data + row * 4 * W, *g1 = g0 + 2 * W;
        float *o = dx->data + row * W;
        #pragma omp simd
        for (int64_t w = 0; w < W; w++)
            o[w] = (g0[2 * w] + g0[2 * w + 1]) + (g1[2 * w] + g1[2 * w + 1]);
    }
    return VQZ_OK;
}

static vqz_status shuffle_checks(const char *op, int r, const vqz_tensor *small, const char *ns,
                                 const vqz_tensor *big, const char *nb)
{
    VQZ_FAIL_IF(r < 1 || r > 64, VQZ_ERR_INVALID_ARG, "%s: factor r=%d out of 1..64", op, r);
    return resample_checks(op, small, ns, big, nb, (int64_t)r * r, r);
}

/* y[n, c, h r + i, w r + j] = x[n, c r^2 + i r + j, h, w]; one task per output row. */
vqz_status vqz_pixel_shuffle_fwd(vqz_nn_ctx *ctx, int r, const vqz_tensor *x, vqz_tensor *y)
{
    const char *op = "pixel_shuffle_fwd";
    VQZ_TRY(op_begin(ctx, op));
    VQZ_TRY(shuffle_checks(op, r, x, "x", y, "y"));
    int64_t H = x->shape[2], W = x->shape[3], Wo = W * r, Ho = H * r;
    VQZ_ON_CUDA(ctx, vqz_cuda_pixel_shuffle_fwd(ctx->cuda, r, x->data, y->data, y->shape[0], y->shape[1], H, W));
    int64_t rows = y->shape[0] * y->shape[1] * Ho;
    #pragma omp parallel for schedule(static) if (rows * Wo > PAR_MIN / 4)
    for (int64_t orow = 0; orow < rows; orow++) {
        int64_t nc = orow / Ho, oh = orow % Ho, h = oh / r, i = oh % r;
        float *yr = y->data + orow * Wo;
        for (int j = 0; j < r; j++) {
            const float *xr = x->data + ((nc * r * r + i * r + j) * H + h) * W;
            for (int64_t w = 0; w < W; w++)
                yr[w * r + j] = xr[w];
        }
    }
    return VQZ_OK;
}

vqz_status vqz_pixel_shuffle_bwd(vqz_nn_ctx *ctx, int r, const vqz_tensor *dy, vqz_tensor *dx)
{
    const char *op = "pixel_shuffle_bwd";
    VQZ_TRY(op_begin(ctx, op));
    VQZ_TRY(shuffle_checks(op, r, dx, "dx", dy, "dy"));
    int64_t H = dx->shape[2], W = dx->shape[3], Wo = W * r, Ho = H * r;
    VQZ_ON_CUDA(ctx, vqz_cuda_pixel_shuffle_bwd(ctx->cuda, r, dy->data, dx->data, dy->shape[0], dy->shape[1], H, W));
    int64_t rows = dy->shape[0] * dy->shape[1] * Ho;
    #pragma omp parallel for schedule(static) if (rows * Wo > PAR_MIN / 4)
    for (int64_t orow = 0; orow < rows; orow++) {
        int64_t nc = orow / Ho, oh = orow % Ho, h = oh / r, i = oh % r;
        const float *gr = dy->data + orow * Wo;
        for (int j = 0; j < r; j++) {
            float *o = dx->data + ((nc * r * r + i * r + j) * H + h) * W;
            for (int64_t w = 0; w < W; w++)
                o[w] = gr[w * r + j];
        }
    }
    return VQZ_OK;
}

/* ------------------------------------------------------------------------------ channel layout */

/* a and b agree on every dim except the channel dim 1. */
static int same_but_channels(const vqz_tensor *a, const vqz_tensor *b)
{
    if (a->ndim != b->ndim || a->ndim < 2)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (i != 1 && a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

vqz_status vqz_concat_channels(vqz_nn_ctx *ctx, const vqz_tensor *a, const vqz_tensor *b, vqz_tensor *y)
{
    const char *op = "concat_channels";
    VQZ_TRY(op_begin(ctx, op));
    VQZ_TRY(check_tensor(a, op, "a"));
    VQZ_TRY(check_tensor(b, op, "b"));
    VQZ_TRY(check_tensor(y, op, "y"));
    if (!same_but_channels(a, y) || !same_but_channels(b, y) || y->shape[1] != a->shape[1] + b->shape[1])
        return vqz_fail(VQZ_ERR_SHAPE, "%s: a %s and b %s do not concatenate to y %s", op, shape_of(a).s,
                        shape_of(b).s, shape_of(y).s);
    VQZ_TRY(check_disjoint(a, y, op, "a", "y"));
    VQZ_TRY(check_disjoint(b, y, op, "b", "y"));
    int64_t N = y->shape[0], L = row_len(y);
    VQZ_ON_CUDA(ctx, vqz_cuda_concat_channels(ctx->cuda, a->data, b->data, y->data, N, a->shape[1], b->shape[1], L));
    int64_t na = a->shape[1] * L, nb = b->shape[1] * L;
    #pragma omp parallel for schedule(static) if (N > 1 && N * (na + nb) > PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        float *yp = y->data + n * (na + nb);
        if (na)
            memcpy(yp, a->data + n * na, (size_t)na * sizeof *yp);
        if (nb)
            memcpy(yp + na, b->data + n * nb, (size_t)nb * sizeof *yp);
    }
    return VQZ_OK;
}

vqz_status vqz_slice_channels(vqz_nn_ctx *ctx, const vqz_tensor *x, int64_t c0, vqz_tensor *y)
{
    const char *op = "slice_channels";
    VQZ_TRY(op_begin(ctx, op));
    VQZ_TRY(check_tensor(x, op, "x"));
    VQZ_TRY(check_tensor(y, op, "y"));
    if (!same_but_channels(x, y) || c0 < 0 || c0 + y->shape[1] > x->shape[1])
        return vqz_fail(VQZ_ERR_SHAPE, "%s: channels [%lld, %lld) of x %s do not fit y %s", op, (long long)c0,
                        (long long)(c0 + (y->ndim >= 2 ? y->shape[1] : 0)), shape_of(x).s, shape_of(y).s);
    VQZ_TRY(check_disjoint(x, y, op, "x", "y"));
    int64_t N = y->shape[0], L = row_len(y), ny = y->shape[1] * L, nx = x->shape[1] * L;
    VQZ_ON_CUDA(ctx, vqz_cuda_slice_channels(ctx->cuda, x->data, y->data, N, x->shape[1], c0, y->shape[1], L));
    #pragma omp parallel for schedule(static) if (N > 1 && N * ny > PAR_MIN)
    for (int64_t n = 0; n < N; n++)
        if (ny)
            memcpy(y->data + n * ny, x->data + n * nx + c0 * L, (size_t)ny * sizeof(float));
    return VQZ_OK;
}

/* ------------------------------------------------------------------------------- weight norm */

static vqz_status weight_norm_checks(const char *op, const vqz_tensor *v, const vqz_tensor *g)
{
    VQZ_TRY(check_tensor(v, op, "v"));
    VQZ_TRY(check_tensor(g, op, "g"));
    /* g may be [O] or PyTorch's [O,1,...,1] */
    if (g->shape[0] != v->shape[0] || vqz_tensor_numel(g) != v->shape[0])
        return vqz_fail(VQZ_ERR_SHAPE, "%s: g %s must hold one value per row of v %s", op, shape_of(g).s,
                        shape_of(v).s);
    return VQZ_OK;
}

/* ||v[o,...]|| accumulated in double. */
static double row_norm(const float *v, int64_t K)
{
    double s = 0.0;
    #pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < K; k++)
        s += (double)v[k] * v[k];
    return sqrt(s);
}

vqz_status vqz_weight_norm_fwd(vqz_nn_ctx *ctx, const vqz_tensor *v, const vqz_tensor *g, vqz_tensor *w)
{
    const char *op = "weight_norm_fwd";
    VQZ_TRY(op_begin(ctx, op));
    VQZ_TRY(weight_norm_checks(op, v, g));
    VQZ_TRY(check_tensor(w, op, "w"));
    VQZ_TRY(check_same(v, w, op, "v", "w"));
    int64_t O = v->shape[0], K = O ? vqz_tensor_numel(v) / O : 0;
    VQZ_ON_CUDA(ctx, vqz_cuda_weight_norm_fwd(ctx->cuda, v->data, g->data, w->data, O, K));
    int64_t zero_row = O; /* first row with ||v|| = 0, O when none */
    #pragma omp parallel for schedule(static) reduction(min : zero_row) if (O > 1 && O * K > PAR_MIN)
    for (int64_t o = 0; o < O; o++) {
        const float *vr = v->data + o * K;
        double nrm = row_norm(vr, K);
        if (!(nrm > 0.0)) {
            zero_row = o < zero_row ? o : zero_row;
            continue;
        }
        float f = (float)(g->data[o] / nrm);
        float *wr = w->data + o * K;
        #pragma omp simd
        for (int64_t k = 0; k < K; k++)
            wr[k] = f * vr[k];
    }
    if (zero_row < O)
        return vqz_fail(VQZ_ERR_NONFINITE, "%s: row %lld of v %s has norm 0 (or NaN); w would be NaN", op,
                        (long long)zero_row, shape_of(v).s);
    return VQZ_OK;
}

vqz_status vqz_weight_norm_bwd(vqz_nn_ctx *ctx, const vqz_tensor *v, const vqz_tensor *g, const vqz_tensor *dw,
                               vqz_tensor *dv, vqz_tensor *dg)
{
    const char *op = "weight_norm_bwd";
    VQZ_TRY(op_begin(ctx, op));
    VQZ_TRY(weight_norm_checks(op, v, g));
    VQZ_TRY(check_tensor(dw, op, "dw"));
    VQZ_TRY(check_same(v, dw, op, "v", "dw"));
    if (dv) {
        VQZ_TRY(check_tensor(dv, op, "dv"));
        VQZ_TRY(check_same(v, dv, op, "v", "dv"));
    }
    if (dg) {
        VQZ_TRY(check_tensor(dg, op, "dg"));
        VQZ_TRY(check_same(g, dg, op, "g", "dg"));
    }
    int64_t O = v->shape[0], K = O ? vqz_tensor_numel(v) / O : 0;
    VQZ_ON_CUDA(ctx, vqz_cuda_weight_norm_bwd(ctx->cuda, v->data, g->data, dw->data, dv ? dv->data : NULL,
                                              dg ? dg->data : NULL, O, K));
    int64_t zero_row = O;
    /* w = g v / |v|: dg = <dw, v> / |v|, dv = (g / |v|) (dw - (dg / |v|) v). Each row reads dw fully before
     * writing dv, so dv may alias dw. */
    #pragma omp parallel for schedule(static) reduction(min : zero_row) if (O > 1 && O * K > PAR_MIN)
    for (int64_t o = 0; o < O; o++) {
        const float *vr = v->data + o * K, *gr = dw->data + o * K;
        double nrm = row_norm(vr, K);
        if (!(nrm > 0.0)) {
            zero_row = o < zero_row ? o : zero_row;
            continue;
        }
        double dot = 0.0;
        #pragma omp simd reduction(+ : dot)
        for (int64_t k = 0; k < K; k++)
            dot += (double)gr[k] * vr[k];
        double dgo = dot / nrm;
        if (dg)
            dg->data[o] += (float)dgo;
        if (dv) {
            float a = (float)(g->data[o] / nrm);
            float b = (float)(g->data[o] * dgo / (nrm * nrm));
            float *o_ = dv->data + o * K;
            #pragma omp simd
            for (int64_t k = 0; k < K; k++)
                o_[k] = a * gr[k] - b * vr[k];
        }
    }
    if (zero_row < O)
        return vqz_fail(VQZ_ERR_NONFINITE, "%s: row %lld of v %s has norm 0 (or NaN)", op, (long long)zero_row,
                        shape_of(v).s);
    return VQZ_OK;
}
