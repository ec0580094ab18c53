/* cuda_common.h — shared declarations of the CUDA backend: its per-context state, error mapping and the
 * cuBLAS entry points, which are resolved at run time (see vqz_cublas_load). */
#ifndef VQZ_KERNELS_CUDA_COMMON_H
#define VQZ_KERNELS_CUDA_COMMON_H

#include "include/vqz.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per-context CUDA state: one stream, one cuBLAS handle and the ops' grow-only scratch buffer. */
typedef struct {
    int device;
    void *stream;  /* cudaStream_t */
    void *cublas;  /* cublasHandle_t */
    void *ws;      /* device scratch (vqz_cuda_workspace) */
    size_t ws_size;
} vqz_cuda_state;

/* Loads libcublas and resolves the entry points below; thread-safe, the work is done once and later
 * calls return its result. Mapping libcublas (with its libcublasLt) costs about 200 MB of resident
 * memory, so it is not linked: it is loaded when the first CUDA context is created, and CPU users
 * never pay for it. VQZ_ERR_NO_CUDA when the library or one of its functions cannot be found. */
vqz_status vqz_cublas_load(void);

#ifdef __cplusplus
}
#endif

#ifdef __CUDACC__
#include <cublas_v2.h>

/* The cuBLAS functions the backend calls, valid after vqz_cublas_load succeeded. */
typedef struct {
    cublasStatus_t (*create)(cublasHandle_t *handle);
    cublasStatus_t (*destroy)(cublasHandle_t handle);
    cublasStatus_t (*set_stream)(cublasHandle_t handle, cudaStream_t stream);
    cublasStatus_t (*set_math_mode)(cublasHandle_t handle, cublasMath_t mode);
    cublasStatus_t (*sgemm)(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                            int k, const float *alpha, const float *a, int lda, const float *b, int ldb,
                            const float *beta, float *c, int ldc);
    cublasStatus_t (*sgemm_strided_batched)(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb,
                                            int m, int n, int k, const float *alpha, const float *a, int lda,
                                            long long stride_a, const float *b, int ldb, long long stride_b,
                                            const float *beta, float *c, int ldc, long long stride_c,
                                            int batch);
} vqz_cublas_api;

extern vqz_cublas_api vqz_cublas;

/* status.h has no C++ guard of its own: vqz_fail must keep C linkage in the .cu files */
extern "C" {
#include "common/status.h"
}

/* The stream and cuBLAS handle of a state passed as void * (nn/ctx.h's ctx->cuda). */
#define VQZ_CUDA_STREAM(st) ((cudaStream_t)((vqz_cuda_state *)(st))->stream)
#define VQZ_CUDA_BLAS(st) ((cublasHandle_t)((vqz_cuda_state *)(st))->cublas)

/* Return VQZ_ERR_CUDA naming the op and the runtime's reason when a CUDA runtime call fails. */
#define VQZ_CUDA_CHECK(expr, op)                                                                   \
    do {                                                                                           \
        cudaError_t vqz_cu_e_ = (expr);                                                            \
        if (vqz_cu_e_ != cudaSuccess)                                                              \
            return vqz_fail(VQZ_ERR_CUDA, "%s: %s (%s)", (op), cudaGetErrorString(vqz_cu_e_), #expr); \
    } while (0)

/* Return VQZ_ERR_CUDA naming the op when a cuBLAS call fails. */
#define VQZ_CUBLAS_CHECK(expr, op)                                                                 \
    do {                                                                                           \
        cublasStatus_t vqz_cb_s_ = (expr);                                                         \
        if (vqz_cb_s_ != CUBLAS_STATUS_SUCCESS)                                                    \
            return vqz_fail(VQZ_ERR_CUDA, "%s: cuBLAS status %d (%s)", (op), (int)vqz_cb_s_, #expr); \
    } while (0)

/* After a kernel launch: the launch error, if any (asynchronous faults surface at the next sync). */
#define VQZ_CUDA_LAUNCHED(op) VQZ_CUDA_CHECK(cudaGetLastError(), op)

/* Blocks of `threads` covering n items, capped so the grid stays legal (kernels loop grid-stride). */
static inline unsigned vqz_cuda_blocks(int64_t n, int threads)
{
    int64_t b = (n + threads - 1) / threads;
    if (b < 1)
        b = 1;
    return (unsigned)(b > 65535 * 32 ? 65535 * 32 : b);
}
#endif

#endif
