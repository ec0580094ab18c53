/* device.cu — CUDA device detection, per-context state (stream + cuBLAS handle) and the run-time
 * loading of cuBLAS. Any failure of the runtime or driver (the normal case on machines without a GPU)
 * means "no CUDA device": callers fall back to the CPU, nothing aborts. */
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "common/status.h"
void vqz_cuda_state_free(void *state);
vqz_status vqz_cuda_state_create(void **state);
int vqz_cuda_available(void);
}
#include "kernels/cuda_common.h"
#include "kernels/cuda_ops.h"

#define VQZ_STR2(x) #x
#define VQZ_STR(x) VQZ_STR2(x)
/* the soname of the toolkit we compiled against: its ABI is the one cublas_v2.h describes */
#define CUBLAS_SONAME "libcublas.so." VQZ_STR(CUBLAS_VER_MAJOR)

vqz_cublas_api vqz_cublas;

static pthread_once_t cublas_once = PTHREAD_ONCE_INIT;
static char cublas_error[512]; /* empty when loading succeeded */

/* The loader's search (LD_LIBRARY_PATH, the caller's run path, the system) first; then the folder
 * libcudart came from, where a toolkit keeps libcublas too. */
static void *open_cublas(void)
{
    void *h = dlopen(CUBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h)
        return h;
    snprintf(cublas_error, sizeof cublas_error, "%s", dlerror());
    Dl_info info;
    if (!dladdr((void *)&cudaGetDeviceCount, &info) || !info.dli_fname)
        return NULL;
    const char *slash = strrchr(info.dli_fname, '/');
    if (!slash)
        return NULL;
    char path[1024];
    snprintf(path, sizeof path, "%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname, CUBLAS_SONAME);
    return dlopen(path, RTLD_NOW | RTLD_LOCAL);
}

static void load_cublas_once(void)
{
    void *h = open_cublas();
    if (!h)
        return; /* cublas_error holds the first dlopen's reason */
    struct {
        const char *name;
        void **slot;
    } fns[] = {
        {"cublasCreate_v2", (void **)&vqz_cublas.create},
        {"cublasDestroy_v2", (void **)&vqz_cublas.destroy},
        {"cublasSetStream_v2", (void **)&vqz_cublas.set_stream},
        {"cublasSetMathMode", (void **)&vqz_cublas.set_math_mode},
        {"cublasSgemm_v2", (void **)&vqz_cublas.sgemm},
        {"cublasSgemmStridedBatched", (void **)&vqz_cublas.sgemm_strided_batched},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        *fns[i].slot = dlsym(h, fns[i].name);
        if (!*fns[i].slot) {
            snprintf(cublas_error, sizeof cublas_error, "%s has no %s", CUBLAS_SONAME, fns[i].name);
            memset(&vqz_cublas, 0, sizeof vqz_cublas);
            return; /* the handle stays open: a failed load is not retried */
        }
    }
    cublas_error[0] = 0;
}

extern "C" vqz_status vqz_cublas_load(void)
{
    pthread_once(&cublas_once, load_cublas_once);
    if (vqz_cublas.create)
        return VQZ_OK;
    return vqz_fail(VQZ_ERR_NO_CUDA, "no CUDA device: cannot load cuBLAS (%s)", cublas_error);
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
    VQZ_TRY(vqz_cublas_load());
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
    cublasStatus_t bs = vqz_cublas.create(&h);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        cudaStreamDestroy(stream);
        free(st);
        return vqz_fail(VQZ_ERR_NO_CUDA, "no CUDA device: cublasCreate failed (status %d)", (int)bs);
    }
    vqz_cublas.set_stream(h, stream);
    /* FP32 GEMMs stay FP32: codeword choices must agree with the CPU */
    vqz_cublas.set_math_mode(h, CUBLAS_DEFAULT_MATH);
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
    if (st->ws)
        cudaFree(st->ws);
    if (st->cublas)
        vqz_cublas.destroy((cublasHandle_t)st->cublas);
    if (st->stream)
        cudaStreamDestroy((cudaStream_t)st->stream);
    free(st);
}

/* ---------------------------------------------------------------------------------------- memory */

extern "C" vqz_status vqz_cuda_malloc(void *st, size_t bytes, void **p)
{
    (void)st;
    *p = NULL;
    if (bytes == 0)
        bytes = 1;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        return vqz_fail(e == cudaErrorMemoryAllocation ? VQZ_ERR_NOMEM : VQZ_ERR_CUDA,
                        "CUDA: cannot allocate %.1f MiB of device memory (%s)", (double)bytes / 1048576.0,
                        cudaGetErrorString(e));
    }
    return VQZ_OK;
}

extern "C" void vqz_cuda_free(void *st, void *p)
{
    (void)st;
    if (p)
        cudaFree(p);
}

static vqz_status copy(void *st, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, const char *op)
{
    if (bytes == 0)
        return VQZ_OK;
    VQZ_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, VQZ_CUDA_STREAM(st)), op);
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_h2d(void *st, void *dst, const void *src, size_t bytes)
{
    VQZ_TRY(copy(st, dst, src, bytes, cudaMemcpyHostToDevice, "CUDA copy to the device"));
    /* pageable host memory: the source may be reused by the caller as soon as this returns */
    VQZ_CUDA_CHECK(cudaStreamSynchronize(VQZ_CUDA_STREAM(st)), "CUDA copy to the device");
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_d2h(void *st, void *dst, const void *src, size_t bytes)
{
    VQZ_TRY(copy(st, dst, src, bytes, cudaMemcpyDeviceToHost, "CUDA copy to the host"));
    VQZ_CUDA_CHECK(cudaStreamSynchronize(VQZ_CUDA_STREAM(st)), "CUDA copy to the host");
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_d2d(void *st, void *dst, const void *src, size_t bytes)
{
    return copy(st, dst, src, bytes, cudaMemcpyDeviceToDevice, "CUDA copy on the device");
}

extern "C" vqz_status vqz_cuda_memset0(void *st, void *dst, size_t bytes)
{
    if (bytes == 0)
        return VQZ_OK;
    VQZ_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, VQZ_CUDA_STREAM(st)), "CUDA memset");
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_sync(void *st)
{
    VQZ_CUDA_CHECK(cudaStreamSynchronize(VQZ_CUDA_STREAM(st)), "CUDA stream");
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_workspace(void *state, size_t bytes, void **p)
{
    vqz_cuda_state *st = (vqz_cuda_state *)state;
    if (bytes > st->ws_size) {
        /* the previous op may still read the old buffer: freeing waits for it (cudaFree synchronises) */
        if (st->ws)
            cudaFree(st->ws);
        st->ws = NULL;
        st->ws_size = 0;
        size_t want = bytes + bytes / 4; /* headroom, so slowly growing requests do not reallocate each time */
        VQZ_TRY(vqz_cuda_malloc(st, want, &st->ws));
        st->ws_size = want;
    }
    *p = st->ws;
    return VQZ_OK;
}
