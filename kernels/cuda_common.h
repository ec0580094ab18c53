/* cuda_common.h — shared declarations of the CUDA backend: its per-context state and error mapping. */
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

#ifdef __cplusplus
}
#endif
#endif
