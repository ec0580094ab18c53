/* device.cu — CUDA device detection and per-context state (stream + cuBLAS handle).
 * Any failure of the runtime or driver (the normal case on machines without a GPU) means
 * "no CUDA device": callers fall back to the CPU, nothing aborts. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdlib.h>

extern "C" {
#include "common/status.h"
#include "kernels/cuda_common.h"
void vqz_cuda_state_free(void *state);
vqz_status vqz_cuda_state_create(void **state);
int vqz_cuda_available(void);
}

extern "C" int vqz_cuda_available(void)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky error so later probes start clean */
        return 0;
    }
    return n > 0;
}

extern "C" vqz_status vqz_cuda_state_create(void **out)
{
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        cudaGetLastError();
        return vqz_fail(VQZ_ERR_NO_CUDA, "no CUDA device: %s",
                        e != cudaSuccess ? cudaGetErrorString(e) : "device count is 0");
    }
    vqz_cuda_state *st = (vqz_cuda_state *)calloc(1, sizeof *st);
    if (!st)
        return vqz_fail(VQZ_ERR_NOMEM, "CUDA state: out of memory");
    cudaStream_t stream;
    if ((e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)) != cudaSuccess) {
        free(st);
        cudaGetLastError();
        return vqz_fail(VQZ_ERR_NO_CUDA, "no CUDA device: stream creation failed: %s", cudaGetErrorString(e));
    }
    cublasHandle_t h;
    cublasStatus_t bs = cublasCreate(&h);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        cudaStreamDestroy(stream);
        free(st);
        return vqz_fail(VQZ_ERR_NO_CUDA, "no CUDA device: cublasCreate failed (status %d)", (int)bs);
    }
    cublasSetStream(h, stream);
    /* FP32 GEMMs stay FP32: codeword choices must agree with the CPU */
    cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);
    st->stream = stream;
    st->cublas = h;
    cudaGetDevice(&st->device);
    *out = st;
    return VQZ_OK;
}

extern "C" void vqz_cuda_state_free(void *state)
{
    vqz_cuda_state *st = (vqz_cuda_state *)state;
    if (!st)
        return;
    if (st->cublas)
        cublasDestroy((cublasHandle_t)st->cublas);
    if (st->stream)
        cudaStreamDestroy((cudaStream_t)st->stream);
    free(st);
}
