/* ctx.c — engine context creation, thread-count policy and finiteness checks. */
#include "nn/ctx.h"

#include <math.h>
#include <stdlib.h>

#include <cblas.h>
#include <omp.h>

#include "common/status.h"

static int g_threads; /* 0 = default */

static int default_threads(void)
{
    const char *env = getenv("VQZ_THREADS");
    if (env && *env) {
        int n = atoi(env);
        if (n > 0 && n <= 1024)
            return n;
    }
    return omp_get_num_procs();
}

vqz_status vqz_set_threads(int n)
{
    VQZ_FAIL_IF(n < 0 || n > 1024, VQZ_ERR_INVALID_ARG, "threads must be in 0..1024, got %d", n);
    g_threads = n;
    return VQZ_OK;
}

int vqz_get_threads(void)
{
    return g_threads > 0 ? g_threads : default_threads();
}

vqz_status vqz_nn_ctx_create(vqz_nn_ctx **out, vqz_device_kind kind, int threads)
{
    VQZ_FAIL_IF(!out, VQZ_ERR_INVALID_ARG, "vqz_nn_ctx_create: out is NULL");
    *out = NULL;
    vqz_nn_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return vqz_fail(VQZ_ERR_NOMEM, "vqz_nn_ctx_create: out of memory");
    ctx->threads = threads > 0 ? threads : vqz_get_threads();
    ctx->device = VQZ_CPU;
    /* The CUDA twin (kernels/) runs encoding and decoding but has not yet been checked on a GPU, and
     * training runs on the CPU only: until both change, AUTO stays on the CPU so that a machine with a
     * GPU codes and trains as tested; an explicit CUDA request gets the device. */
    int cuda_ops_complete = 0;
    if (kind == VQZ_DEVICE_CUDA || (kind == VQZ_DEVICE_AUTO && cuda_ops_complete)) {
        vqz_status s = vqz_cuda_state_create(&ctx->cuda);
        if (s == VQZ_OK) {
            ctx->device = VQZ_CUDA;
        } else if (kind == VQZ_DEVICE_CUDA) {
            free(ctx);
            return s;
        }
    }
    *out = ctx;
    return VQZ_OK;
}

void vqz_nn_ctx_free(vqz_nn_ctx *ctx)
{
    if (!ctx)
        return;
    if (ctx->dnnl)
        vqz_dnnl_state_free(ctx->dnnl);
    if (ctx->cuda)
        vqz_cuda_state_free(ctx->cuda);
    free(ctx);
}

vqz_status vqz_nn_cuda_ready(const vqz_nn_ctx *ctx, const char *op)
{
#ifdef VQZ_HAVE_CUDA
    if (ctx->device == VQZ_CUDA && ctx->cuda)
        return VQZ_OK;
    return vqz_fail(VQZ_ERR_NO_CUDA, "%s: this context has no CUDA device", op);
#else
    (void)ctx;
    return vqz_fail(VQZ_ERR_NO_CUDA, "%s: this build of libvqz has no CUDA support", op);
#endif
}

void vqz_nn_ctx_enter(const vqz_nn_ctx *ctx)
{
    omp_set_num_threads(ctx->threads);
    openblas_set_num_threads(ctx->threads);
}

vqz_status vqz_tensor_check_finite(const vqz_tensor *t, const char *name)
{
    if (t->device != VQZ_CPU)
        return vqz_fail(VQZ_ERR_INVALID_ARG, "%s: finiteness check needs a CPU tensor", name);
    int64_t n = vqz_tensor_numel(t);
    int64_t bad = n; /* first offending index, n when none */
    #pragma omp parallel for reduction(min : bad)
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(t->data[i]) && i < bad)
            bad = i;
    if (bad < n)
        return vqz_fail(VQZ_ERR_NONFINITE, "%s: non-finite value %g at element %lld", name,
                        (double)t->data[bad], (long long)bad);
    return VQZ_OK;
}
