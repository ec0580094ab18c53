/* nocuda.c — the CUDA backend entry points of a build without nvcc: every one reports VQZ_ERR_NO_CUDA. */
#include "common/status.h"
#include "kernels/cuda_common.h"
#include "nn/ctx.h"

int vqz_cuda_available(void)
{
    return 0;
}

vqz_status vqz_cuda_state_create(void **state)
{
    *state = NULL;
    return vqz_fail(VQZ_ERR_NO_CUDA, "this build of libvqz has no CUDA support");
}

void vqz_cuda_state_free(void *state)
{
    (void)state;
}

vqz_status vqz_cublas_load(void)
{
    return vqz_fail(VQZ_ERR_NO_CUDA, "this build of libvqz has no CUDA support");
}
