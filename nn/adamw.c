/* adamw.c — AdamW step (PyTorch's torch.optim.AdamW arithmetic), warm-up + cosine learning-rate
 * schedule and global-norm gradient clipping over flat buffers (nn/adamw.h). */
#include "nn/adamw.h"

#include <math.h>

#include "common/status.h"

#define PAR_MIN 32768

vqz_status vqz_adamw_step(vqz_nn_ctx *ctx, const vqz_adamw_cfg *cfg, float lr, float wd, int64_t t, float *p,
                          const float *g, float *m, float *v, int64_t n)
{
    VQZ_FAIL_IF(!ctx || !cfg, VQZ_ERR_INVALID_ARG, "adamw_step: ctx and cfg must not be NULL");
    vqz_nn_ctx_enter(ctx);
    VQZ_FAIL_IF(ctx->device == VQZ_CUDA, VQZ_ERR_NO_CUDA, "adamw_step: no CUDA implementation in this build");
    VQZ_FAIL_IF(n < 0, VQZ_ERR_INVALID_ARG, "adamw_step: n=%lld is negative", (long long)n);
    VQZ_FAIL_IF(n > 0 && (!p || !g || !m || !v), VQZ_ERR_INVALID_ARG, "adamw_step: NULL buffer for %lld parameters",
                (long long)n);
    VQZ_FAIL_IF(t < 1, VQZ_ERR_INVALID_ARG, "adamw_step: step t=%lld must be >= 1", (long long)t);
    float b1 = cfg->beta1, b2 = cfg->beta2, eps = cfg->eps;
    VQZ_FAIL_IF(!(b1 >= 0.0f && b1 < 1.0f && b2 >= 0.0f && b2 < 1.0f && eps >= 0.0f), VQZ_ERR_INVALID_ARG,
                "adamw_step: beta1=%g, beta2=%g must be in [0, 1) and eps=%g >= 0", b1, b2, eps);
    VQZ_FAIL_IF(!isfinite(lr) || !isfinite(wd), VQZ_ERR_INVALID_ARG, "adamw_step: lr=%g, wd=%g", lr, wd);

    /* As PyTorch: decay first, moments, then p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps), with the
     * bias corrections formed in double and rounded once. */
    float decay = 1.0f - lr * wd;
    double bc1 = 1.0 - pow((double)b1, (double)t), bc2 = 1.0 - pow((double)b2, (double)t);
    float step = (float)(lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float c1 = 1.0f - b1, c2 = 1.0f - b2;
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = m[i] + c1 * (gi - m[i]); /* torch's lerp_ */
        float vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
    return VQZ_OK;
}

/* Before warm-up ends: base * step / warmup (0 at step 0). Then
 * base * (r + (1 - r) (1 + cos(pi (step - warmup) / (total - warmup))) / 2), and base * r from `total` on. */
float vqz_lr_at(float base, int64_t step, int64_t warmup, int64_t total, float min_ratio)
{
    if (step < 0)
        step = 0;
    if (warmup > 0 && step < warmup)
        return (float)((double)base * (double)step / (double)warmup);
    if (step >= total)
        return (float)((double)base * min_ratio);
    double prog = (double)(step - warmup) / (double)(total - warmup);
    double cosf_ = 0.5 * (1.0 + cos(M_PI * prog));
    return (float)((double)base * (min_ratio + (1.0 - min_ratio) * cosf_));
}

/* A non-finite norm (NaN/Inf gradient) is reported as VQZ_ERR_NONFINITE and leaves g untouched. */
vqz_status vqz_grad_clip(vqz_nn_ctx *ctx, float *g, int64_t n, float max_norm, double *norm)
{
    VQZ_FAIL_IF(!ctx || !norm, VQZ_ERR_INVALID_ARG, "grad_clip: ctx and norm must not be NULL");
    vqz_nn_ctx_enter(ctx);
    VQZ_FAIL_IF(ctx->device == VQZ_CUDA, VQZ_ERR_NO_CUDA, "grad_clip: no CUDA implementation in this build");
    VQZ_FAIL_IF(n < 0 || (n > 0 && !g), VQZ_ERR_INVALID_ARG, "grad_clip: bad buffer (n=%lld)", (long long)n);
    double s = 0.0;
    #pragma omp parallel for simd schedule(static) reduction(+ : s) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        s += (double)g[i] * g[i];
    *norm = sqrt(s);
    VQZ_FAIL_IF(!isfinite(*norm), VQZ_ERR_NONFINITE, "grad_clip: gradient norm is %g over %lld values", *norm,
                (long long)n);
    if (max_norm > 0.0f && *norm > max_norm) {
        float f = (float)(max_norm / (*norm + 1e-6));
        #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            g[i] *= f;
    }
    return VQZ_OK;
}
