/* cuda_common.h — shared declarations of the CUDA backend: its per-context state, error mapping and the
 * cuBLAS entry points, which are resolved at run time (see vqz_cublas_load). */
#ifndef VQZ_KERNELS_CUDA_COMMON_H
#define VQZ_KERNELS_CUDA_COMMON_H

#include "include/vqz.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per-context CUDA state: one stream and one cuBLAS handle. */
typedef struct {
    int device;
    void *stream;  /* cudaStream_t */
    void *cublas;  /* cublasHandle_t */
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
} vqz_cublas_api;

extern vqz_cublas_api vqz_cublas;
#endif

#endif
