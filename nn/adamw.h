/* adamw.h — AdamW (decoupled weight decay, PyTorch semantics), warm-up + cosine learning-rate schedule
 * and global-norm gradient clipping, over flat parameter/gradient/moment buffers. */
#ifndef VQZ_NN_ADAMW_H
#define VQZ_NN_ADAMW_H

#include <stdint.h>

#include "nn/ctx.h"

typedef struct {
    float beta1, beta2;     /* 0.9, 0.999 */
    float eps;              /* 1e-8 */
} vqz_adamw_cfg;

/* One step over n contiguous parameters, step number t >= 1 (for bias correction):
 *   p -= lr * wd * p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * Call once per parameter group (e.g. weights with wd, then biases/gains with wd = 0). */
vqz_status vqz_adamw_step(vqz_nn_ctx *ctx, const vqz_adamw_cfg *cfg, float lr, float wd, int64_t t,
                          float *p, const float *g, float *m, float *v, int64_t n);

/* Learning rate at `step` (0-based): linear warm-up from 0 to base over `warmup` steps, then cosine
 * decay to base * min_ratio at `total` steps (constant after). */
float vqz_lr_at(float base, int64_t step, int64_t warmup, int64_t total, float min_ratio);

/* Global L2 norm of g[0..n) (accumulated in double); when max_norm > 0 and the norm exceeds it,
 * scales g by max_norm / (norm + 1e-6). Returns the norm before clipping in *norm. */
vqz_status vqz_grad_clip(vqz_nn_ctx *ctx, float *g, int64_t n, float max_norm, double *norm);

#endif
