/* tensor.h — the engine's tensor view: a float32 buffer, its shape (NCHW or NCT) and its device.
 * A vqz_tensor never owns its data; buffers come from the parameter/gradient blocks or an arena. */
#ifndef VQZ_NN_TENSOR_H
#define VQZ_NN_TENSOR_H

#include <stdint.h>

#include "include/vqz.h"

typedef enum { VQZ_CPU = 0, VQZ_CUDA = 1 } vqz_dev;

#define VQZ_MAX_DIMS 4

typedef struct {
    float *data;
    int ndim;                      /* 1..4 */
    int64_t shape[VQZ_MAX_DIMS];   /* images: N, C, H, W; audio: N, C, T */
    vqz_dev device;
} vqz_tensor;

static inline int64_t vqz_tensor_numel(const vqz_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

static inline vqz_tensor vqz_t1(float *d, int64_t a)
{
    vqz_tensor t = {d, 1, {a, 1, 1, 1}, VQZ_CPU};
    return t;
}
static inline vqz_tensor vqz_t2(float *d, int64_t a, int64_t b)
{
    vqz_tensor t = {d, 2, {a, b, 1, 1}, VQZ_CPU};
    return t;
}
static inline vqz_tensor vqz_t3(float *d, int64_t n, int64_t c, int64_t len)
{
    vqz_tensor t = {d, 3, {n, c, len, 1}, VQZ_CPU};
    return t;
}
static inline vqz_tensor vqz_t4(float *d, int64_t n, int64_t c, int64_t h, int64_t w)
{
    vqz_tensor t = {d, 4, {n, c, h, w}, VQZ_CPU};
    return t;
}

/* Two tensors have identical shapes (and ranks). */
static inline int vqz_tensor_same_shape(const vqz_tensor *a, const vqz_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

/* VQZ_ERR_NONFINITE (with the tensor's name and the first bad index) when any element is NaN/Inf. */
vqz_status vqz_tensor_check_finite(const vqz_tensor *t, const char *name);

#endif
