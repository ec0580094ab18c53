/* loss.c — elementwise losses of nn/ops.h (MSE, L1) with their gradients. Sums run in double; a
 * non-finite loss (NaN/Inf in x or target) is reported as VQZ_ERR_NONFINITE. */
#include <math.h>
#include <stdio.h>

#include "common/status.h"
#include "nn/ops.h"
#ifdef VQZ_HAVE_CUDA
#include "kernels/cuda_ops.h"
#endif

#if defined(__GNUC__) && !defined(__clang__)
/* Lets GCC vectorise the sign select of the L1 gradient; we never read floating-point exception flags. */
#pragma GCC optimize("no-trapping-math")
#endif

#define PAR_MIN 32768

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

static vqz_status loss_checks(vqz_nn_ctx *ctx, const char *op, const vqz_tensor *x, const vqz_tensor *t,
                              const vqz_tensor *grad, double *loss)
{
    VQZ_FAIL_IF(!ctx, VQZ_ERR_INVALID_ARG, "%s: ctx is NULL", op);
    vqz_nn_ctx_enter(ctx);
    VQZ_FAIL_IF(!x || !t || !loss, VQZ_ERR_INVALID_ARG, "%s: x, target and loss must not be NULL", op);
    const vqz_tensor *ts[3] = {x, t, grad};
    for (int k = 0; k < 3; k++) {
        if (!ts[k])
            continue;
        VQZ_FAIL_IF(ts[k]->ndim < 1 || ts[k]->ndim > VQZ_MAX_DIMS || ts[k]->device != ctx->device,
                    VQZ_ERR_INVALID_ARG, "%s: tensor %d is not a %s tensor of rank 1..4", op, k,
                    ctx->device == VQZ_CUDA ? "CUDA" : "CPU");
        VQZ_FAIL_IF(!ts[k]->data && vqz_tensor_numel(ts[k]) > 0, VQZ_ERR_INVALID_ARG, "%s: tensor %d has no data",
                    op, k);
    }
    if (!vqz_tensor_same_shape(x, t) || (grad && !vqz_tensor_same_shape(x, grad))) {
        const vqz_tensor *o = !vqz_tensor_same_shape(x, t) ? t : grad;
        return vqz_fail(VQZ_ERR_SHAPE, "%s: x %s and %s %s differ", op, shape_of(x).s,
                        o == t ? "target" : "grad", shape_of(o).s);
    }
    VQZ_FAIL_IF(vqz_tensor_numel(x) == 0, VQZ_ERR_SHAPE, "%s: x is empty", op);
    return VQZ_OK;
}

/* The CPU sums. grad may alias x or target: each element is read before it is written. */
static double mse_cpu(const float *a, const float *b, float *g, float gs, int64_t n)
{
    double s = 0.0;
    if (g) {
        #pragma omp parallel for simd schedule(static) reduction(+ : s) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float d = a[i] - b[i];
            s += (double)d * d;
            g[i] = gs * d;
        }
    } else {
        #pragma omp parallel for simd schedule(static) reduction(+ : s) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float d = a[i] - b[i];
            s += (double)d * d;
        }
    }
    return s / (double)n;
}

static double l1_cpu(const float *a, const float *b, float *g, float gs, int64_t n)
{
    double s = 0.0;
    if (g) {
        #pragma omp parallel for simd schedule(static) reduction(+ : s) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float d = a[i] - b[i];
            s += fabsf(d);
            g[i] = d > 0.0f ? gs : (d < 0.0f ? -gs : 0.0f);
        }
    } else {
        #pragma omp parallel for simd schedule(static) reduction(+ : s) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            s += fabsf(a[i] - b[i]);
    }
    return s / (double)n;
}

/* Runs one loss on the context's device (the CUDA twin takes the weight; the CPU sums take the gradient
 * scale gs) and refuses a non-finite result on either. */
static vqz_status run_loss(vqz_nn_ctx *ctx, const char *op, int l1, const vqz_tensor *x, const vqz_tensor *target,
                           float weight, double *loss, vqz_tensor *grad)
{
    VQZ_TRY(loss_checks(ctx, op, x, target, grad, loss));
    int64_t n = vqz_tensor_numel(x);
    float *g = grad ? grad->data : NULL;
    if (ctx->device == VQZ_CUDA) {
        VQZ_TRY(vqz_nn_cuda_ready(ctx, op));
#ifdef VQZ_HAVE_CUDA
        VQZ_TRY(l1 ? vqz_cuda_l1_loss(ctx->cuda, x->data, target->data, weight, loss, g, n)
                   : vqz_cuda_mse_loss(ctx->cuda, x->data, target->data, weight, loss, g, n));
#endif
    } else if (l1) {
        *loss = l1_cpu(x->data, target->data, g, (float)(weight / (double)n), n);
    } else {
        *loss = mse_cpu(x->data, target->data, g, (float)(2.0 * weight / (double)n), n);
    }
    VQZ_FAIL_IF(!isfinite(*loss), VQZ_ERR_NONFINITE, "%s: loss is %g (NaN/Inf in x or target)", op, *loss);
    return VQZ_OK;
}

vqz_status vqz_mse_loss(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *target, float weight,
                        double *loss, vqz_tensor *grad)
{
    return run_loss(ctx, "mse_loss", 0, x, target, weight, loss, grad);
}

vqz_status vqz_l1_loss(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *target, float weight,
                       double *loss, vqz_tensor *grad)
{
    return run_loss(ctx, "l1_loss", 1, x, target, weight, loss, grad);
}
