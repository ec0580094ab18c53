/* linear.c — the dense layer y = x w^T + b on rows, forward and backward, through OpenBLAS sgemm. */
#include <limits.h>
#include <stdio.h>

#include <cblas.h>

#include "common/status.h"
#include "nn/ops.h"
#ifdef VQZ_HAVE_CUDA
#include "kernels/cuda_ops.h"
#endif

static const char *dims_str(const vqz_tensor *t, char *buf, size_t size)
{
    size_t off = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < t->ndim && i < VQZ_MAX_DIMS && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (off < size)
        snprintf(buf + off, size - off, "]");
    return buf;
}

static vqz_status check_2d(const vqz_tensor *t, int64_t r, int64_t c, const char *op, const char *name,
                           const char *ref_name, const vqz_tensor *ref)
{
    char b1[96], b2[96];
    VQZ_FAIL_IF(!t, VQZ_ERR_INVALID_ARG, "%s: %s is NULL", op, name);
    if (t->ndim != 2 || t->shape[0] != r || t->shape[1] != c)
        return vqz_fail(VQZ_ERR_SHAPE, "%s: %s is %s but must be [%lld,%lld] to fit %s %s", op, name,
                        dims_str(t, b1, sizeof b1), (long long)r, (long long)c, ref_name,
                        dims_str(ref, b2, sizeof b2));
    return VQZ_OK;
}

/* Shapes of x [M,K] and w [N,K], checked; sizes must fit cblas's int. */
static vqz_status linear_dims(const vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *w, const char *op,
                              int *m, int *n, int *k)
{
    char b1[96], b2[96];
    VQZ_FAIL_IF(!ctx, VQZ_ERR_INVALID_ARG, "%s: ctx is NULL", op);
    VQZ_FAIL_IF(!x || !w, VQZ_ERR_INVALID_ARG, "%s: x or w is NULL", op);
    if (x->ndim != 2 || w->ndim != 2 || x->shape[1] != w->shape[1] || x->shape[0] < 1 || x->shape[1] < 1 ||
        w->shape[0] < 1)
        return vqz_fail(VQZ_ERR_SHAPE, "%s: x %s and w %s must be [M,K] and [N,K] with K the same, all >= 1",
                        op, dims_str(x, b1, sizeof b1), dims_str(w, b2, sizeof b2));
    if (x->shape[0] > INT_MAX || x->shape[1] > INT_MAX || w->shape[0] > INT_MAX)
        return vqz_fail(VQZ_ERR_LIMIT, "%s: x %s or w %s exceeds the GEMM size limit", op,
                        dims_str(x, b1, sizeof b1), dims_str(w, b2, sizeof b2));
    *m = (int)x->shape[0];
    *k = (int)x->shape[1];
    *n = (int)w->shape[0];
    return VQZ_OK;
}

/* Every tensor lives where the context runs. */
static vqz_status check_device(const vqz_nn_ctx *ctx, const vqz_tensor *const *t, const char *const *names,
                               int count, const char *op)
{
    for (int i = 0; i < count; i++) {
        if (!t[i])
            continue;
        VQZ_FAIL_IF(t[i]->device != ctx->device, VQZ_ERR_INVALID_ARG, "%s: %s is not a %s tensor", op, names[i],
                    ctx->device == VQZ_CUDA ? "CUDA" : "CPU");
        VQZ_FAIL_IF(!t[i]->data, VQZ_ERR_INVALID_ARG, "%s: %s has no data", op, names[i]);
    }
    return VQZ_OK;
}

vqz_status vqz_linear_fwd(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *w, const vqz_tensor *b,
                          vqz_tensor *y)
{
    const char *op = "linear_fwd";
    char b1[96], b2[96];
    int m, n, k;
    VQZ_TRY(linear_dims(ctx, x, w, op, &m, &n, &k));
    if (b && (b->ndim != 1 || b->shape[0] != n))
        return vqz_fail(VQZ_ERR_SHAPE, "%s: b is %s but must be [%d] to fit w %s", op, dims_str(b, b1, sizeof b1),
                        n, dims_str(w, b2, sizeof b2));
    VQZ_TRY(check_2d(y, m, n, op, "y", "x", x));
    const vqz_tensor *t[] = {x, w, b, y};
    const char *names[] = {"x", "w", "b", "y"};
    VQZ_TRY(check_device(ctx, t, names, 4, op));
    VQZ_ON_CUDA(ctx, vqz_cuda_linear_fwd(ctx->cuda, x->data, w->data, b ? b->data : NULL, y->data, m, k, n));
    vqz_nn_ctx_enter(ctx);
    float beta = 0.0f;
    if (b) {
        /* Seed every row with the bias and let the GEMM add onto it. */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                y->data[(int64_t)i * n + j] = b->data[j];
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x->data, k, w->data, k, beta, y->data, n);
    return VQZ_OK;
}

vqz_status vqz_linear_bwd(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *w, const vqz_tensor *dy,
                          vqz_tensor *dx, vqz_tensor *dw, vqz_tensor *db)
{
    const char *op = "linear_bwd";
    char b1[96], b2[96];
    int m, n, k;
    VQZ_TRY(linear_dims(ctx, x, w, op, &m, &n, &k));
    VQZ_TRY(check_2d(dy, m, n, op, "dy", "x", x));
    if (dx)
        VQZ_TRY(check_2d(dx, m, k, op, "dx", "x", x));
    if (dw)
        VQZ_TRY(check_2d(dw, n, k, op, "dw", "w", w));
    if (db && (db->ndim != 1 || db->shape[0] != n))
        return vqz_fail(VQZ_ERR_SHAPE, "%s: db is %s but must be [%d] to fit w %s", op,
                        dims_str(db, b1, sizeof b1), n, dims_str(w, b2, sizeof b2));
    const vqz_tensor *t[] = {x, w, dy, dx, dw, db};
    const char *names[] = {"x", "w", "dy", "dx", "dw", "db"};
    VQZ_TRY(check_device(ctx, t, names, 6, op));
    VQZ_ON_CUDA(ctx, vqz_cuda_linear_bwd(ctx->cuda, x->data, w->data, dy->data, dx ? dx->data : NULL,
                                         dw ? dw->data : NULL, db ? db->data : NULL, m, k, n));
    vqz_nn_ctx_enter(ctx);
    if (dx) /* dx[M,K] = dy[M,N] w[N,K] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, n, 1.0f, dy->data, n, w->data, k, 0.0f,
                    dx->data, k);
    if (dw) /* dw[N,K] += dy^T x */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1.0f, dy->data, n, x->data, k, 1.0f,
                    dw->data, k);
    if (db) {
        /* Column blocks of 16 keep the row-major reads contiguous. */
        #pragma omp parallel for schedule(static)
        for (int j0 = 0; j0 < n; j0 += 16) {
            int jn = n - j0 < 16 ? n - j0 : 16;
            double acc[16] = {0};
            for (int i = 0; i < m; i++) {
                const float *row = dy->data + (int64_t)i * n + j0;
                for (int j = 0; j < jn; j++)
                    acc[j] += row[j];
            }
            for (int j = 0; j < jn; j++)
                db->data[j0 + j] += (float)acc[j];
        }
    }
    return VQZ_OK;
}
