/* ctx.h — the engine context: device, thread count and the per-backend state (oneDNN engine and
 * primitive cache on the CPU, cuBLAS handle and memory pool on CUDA). Every op takes one. */
#ifndef VQZ_NN_CTX_H
#define VQZ_NN_CTX_H

#include "nn/tensor.h"

typedef struct vqz_nn_ctx {
    vqz_dev device;
    int threads;          /* OpenMP / oneDNN / OpenBLAS threads for this context's ops */
    void *dnnl;           /* CPU conv backend state (nn/conv_dnnl.c), created lazily */
    void *cuda;           /* CUDA backend state (kernels/), NULL on the CPU */
} vqz_nn_ctx;

/* Create a context for a device. VQZ_DEVICE_AUTO picks CUDA when usable, else the CPU.
 * threads <= 0 means the library default (vqz_get_threads()). */
vqz_status vqz_nn_ctx_create(vqz_nn_ctx **out, vqz_device_kind kind, int threads);
void vqz_nn_ctx_free(vqz_nn_ctx *ctx);

/* Make the context's thread count current for OpenMP and OpenBLAS on the calling thread. */
void vqz_nn_ctx_enter(const vqz_nn_ctx *ctx);

/* VQZ_OK when ctx runs on CUDA with a usable device state; VQZ_ERR_NO_CUDA naming op otherwise (always in a
 * build without nvcc). */
vqz_status vqz_nn_cuda_ready(const vqz_nn_ctx *ctx, const char *op);

/* In an op, after its checks: hand the op to its CUDA twin (kernels/cuda_ops.h) when the context runs on
 * CUDA. A build without nvcc has no twin: a CUDA context there gets VQZ_ERR_NO_CUDA. */
#ifdef VQZ_HAVE_CUDA
#define VQZ_ON_CUDA(ctx, call)                                          \
    do {                                                                \
        if ((ctx)->device == VQZ_CUDA) {                                \
            vqz_status vqz_oc_s_ = vqz_nn_cuda_ready((ctx), __func__);  \
            return vqz_oc_s_ != VQZ_OK ? vqz_oc_s_ : (call);            \
        }                                                               \
    } while (0)
#else
#define VQZ_ON_CUDA(ctx, call)                          \
    do {                                                \
        if ((ctx)->device == VQZ_CUDA)                  \
            return vqz_nn_cuda_ready((ctx), __func__);  \
    } while (0)
#endif

/* Backend hooks implemented by the conv module and by kernels/. */
void vqz_dnnl_state_free(void *state);
vqz_status vqz_cuda_state_create(void **state);
void vqz_cuda_state_free(void *state);

#endif
