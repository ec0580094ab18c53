/* eltwise.cu — the CUDA twins of nn/eltwise.c, nn/linear.c and nn/loss.c: activations, Snake, scaled adds,
 * layout ops, weight norm, the dense layer (cuBLAS), the MSE/L1 losses and the non-finite scan. */
#include <cuda_runtime.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

extern "C" {
#include "common/status.h" /* C linkage before cuda_common.h includes it again */
}
#include "kernels/cuda_common.h"
#include "kernels/cuda_ops.h"

#define THREADS 256   /* every kernel here; block_sum needs a power of two */
#define RED_BLOCKS 1024 /* partial sums of the losses: a fixed count per n keeps the order fixed */
#define SNAKE_SEG 4096  /* elements of one row per dalpha partial */

#define GRID_LOOP(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* Launch on the state's stream over n items, grid-stride; return the launch error naming op. */
#define LAUNCH(kernel, n, op, ...)                                                          \
    do {                                                                                    \
        kernel<<<vqz_cuda_blocks((n), THREADS), THREADS, 0, VQZ_CUDA_STREAM(st)>>>(__VA_ARGS__); \
        VQZ_CUDA_LAUNCHED(op);                                                              \
    } while (0)

/* Sum of v over the block in a fixed tree order (deterministic); every thread must call it. */
__device__ static double block_sum(double v, double *sh)
{
    const int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (t < w)
            sh[t] += sh[t + w];
        __syncthreads();
    }
    double s = sh[0];
    __syncthreads(); /* sh is reused by the caller's next call */
    return s;
}

/* ------------------------------------------------------------------------------- activations */

__global__ static void silu_fwd_k(const float *x, float *y, int64_t n)
{
    GRID_LOOP(i, n) {
        float v = x[i];
        /* sigmoid from e = exp(-|v|) <= 1, which never overflows */
        float e = expf(-fabsf(v));
        float r = 1.0f / (1.0f + e);
        float sig = v >= 0.0f ? r : e * r;
        y[i] = v * sig;
    }
}

__global__ static void silu_bwd_k(const float *x, const float *dy, float *dx, int64_t n)
{
    GRID_LOOP(i, n) {
        float v = x[i];
        float e = expf(-fabsf(v));
        float r = 1.0f / (1.0f + e);
        float sig = v >= 0.0f ? r : e * r;
        float one_minus = v >= 0.0f ? e * r : r; /* 1 - sigmoid without cancellation */
        dx[i] = dy[i] * sig * (1.0f + v * one_minus);
    }
}

__global__ static void elu_fwd_k(float alpha, const float *x, float *y, int64_t n)
{
    GRID_LOOP(i, n) {
        float v = x[i];
        float neg = alpha * expm1f(v < 0.0f ? v : 0.0f);
        y[i] = v <= 0.0f ? neg : v; /* NaN takes the v branch and stays NaN */
    }
}

__global__ static void elu_bwd_k(float alpha, const float *x, const float *dy, float *dx, int64_t n)
{
    GRID_LOOP(i, n) {
        float v = x[i];
        float d = alpha * expf(v < 0.0f ? v : 0.0f);
        dx[i] = dy[i] * (v > 0.0f ? 1.0f : d);
    }
}

__global__ static void leaky_fwd_k(float slope, const float *x, float *y, int64_t n)
{
    GRID_LOOP(i, n) {
        float v = x[i];
        y[i] = v * (v > 0.0f ? 1.0f : slope);
    }
}

__global__ static void leaky_bwd_k(float slope, const float *x, const float *dy, float *dx, int64_t n)
{
    GRID_LOOP(i, n) dx[i] = dy[i] * (x[i] > 0.0f ? 1.0f : slope);
}

extern "C" vqz_status vqz_cuda_silu_fwd(void *st, const float *x, float *y, int64_t n)
{
    if (n > 0)
        LAUNCH(silu_fwd_k, n, "silu_fwd", x, y, n);
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_silu_bwd(void *st, const float *x, const float *dy, float *dx, int64_t n)
{
    if (n > 0 && dx)
        LAUNCH(silu_bwd_k, n, "silu_bwd", x, dy, dx, n);
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_elu_fwd(void *st, float alpha, const float *x, float *y, int64_t n)
{
    if (n > 0)
        LAUNCH(elu_fwd_k, n, "elu_fwd", alpha, x, y, n);
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_elu_bwd(void *st, float alpha, const float *x, const float *dy, float *dx, int64_t n)
{
    if (n > 0 && dx)
        LAUNCH(elu_bwd_k, n, "elu_bwd", alpha, x, dy, dx, n);
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_leaky_relu_fwd(void *st, float slope, const float *x, float *y, int64_t n)
{
    if (n > 0)
        LAUNCH(leaky_fwd_k, n, "leaky_relu_fwd", slope, x, y, n);
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_leaky_relu_bwd(void *st, float slope, const float *x, const float *dy, float *dx,
                                              int64_t n)
{
    if (n > 0 && dx)
        LAUNCH(leaky_bwd_k, n, "leaky_relu_bwd", slope, x, dy, dx, n);
    return VQZ_OK;
}

/* ------------------------------------------------------------------------------------- snake */

__global__ static void snake_fwd_k(const float *x, const float *alpha, float *y, int64_t C, int64_t L, int64_t n)
{
    GRID_LOOP(i, n) {
        float a = alpha[(i / L) % C];
        float inv = 1.0f / (a + 1e-9f);
        float v = x[i];
        float s = sinf(a * v);
        y[i] = v + s * s * inv;
    }
}

/* y = x + s^2 inv with s = sin(a x): dy/dx = 1 + 2 s c a inv, dy/da = 2 s c x inv - s^2 inv^2. dx is
 * written after dy is read, element by element, so dx may alias dy. */
__device__ static float snake_grad(float a, float v, float g, float *dx_out)
{
    float inv = 1.0f / (a + 1e-9f);
    float s, c;
    sincosf(a * v, &s, &c);
    *dx_out = g * (1.0f + 2.0f * s * c * a * inv);
    return g * (2.0f * s * c * v * inv - s * s * inv * inv);
}

__global__ static void snake_dx_k(const float *x, const float *alpha, const float *dy, float *dx, int64_t C,
                                  int64_t L, int64_t n)
{
    GRID_LOOP(i, n) {
        float o;
        snake_grad(alpha[(i / L) % C], x[i], dy[i], &o);
        dx[i] = o;
    }
}

/* One block per (row, segment) of SNAKE_SEG elements: dx (when wanted) and the segment's dalpha
 * partial in double, part[row * nseg + seg]. */
__global__ static void snake_rows_k(const float *x, const float *alpha, const float *dy, float *dx, double *part,
                                    int64_t C, int64_t L, int64_t rows, int64_t nseg)
{
    __shared__ double sh[THREADS];
    for (int64_t u = blockIdx.x; u < rows * nseg; u += gridDim.x) {
        const int64_t row = u / nseg, i0 = (u % nseg) * SNAKE_SEG;
        const int64_t i1 = L - i0 < SNAKE_SEG ? L : i0 + SNAKE_SEG;
        const float a = alpha[row % C];
        double acc = 0.0;
        for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
            const int64_t e = row * L + i;
            float o;
            acc += (double)snake_grad(a, x[e], dy[e], &o);
            if (dx)
                dx[e] = o;
        }
        double s = block_sum(acc, sh);
        if (threadIdx.x == 0)
            part[u] = s;
    }
}

/* dalpha[c] += sum over n, then segments, of the partials (a fixed order). */
__global__ static void snake_dalpha_k(const double *part, float *dalpha, int64_t N, int64_t C, int64_t nseg)
{
    GRID_LOOP(c, C) {
        double s = 0.0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t g = 0; g < nseg; g++)
                s += part[(n * C + c) * nseg + g];
        dalpha[c] += (float)s;
    }
}

extern "C" vqz_status vqz_cuda_snake_fwd(void *st, const float *x, const float *alpha, float *y, int64_t N,
                                         int64_t C, int64_t L)
{
    const int64_t n = N * C * L;
    if (n > 0)
        LAUNCH(snake_fwd_k, n, "snake_fwd", x, alpha, y, C, L, n);
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_snake_bwd(void *st, const float *x, const float *alpha, const float *dy, float *dx,
                                         float *dalpha, int64_t N, int64_t C, int64_t L)
{
    const char *op = "snake_bwd";
    const int64_t n = N * C * L;
    if (n <= 0 || (!dx && !dalpha))
        return VQZ_OK;
    if (!dalpha) {
        LAUNCH(snake_dx_k, n, op, x, alpha, dy, dx, C, L, n);
        return VQZ_OK;
    }
    const int64_t rows = N * C, nseg = (L + SNAKE_SEG - 1) / SNAKE_SEG;
    void *ws;
    VQZ_TRY(vqz_cuda_workspace(st, (size_t)(rows * nseg) * sizeof(double), &ws));
    double *part = (double *)ws;
    unsigned grid = vqz_cuda_blocks(rows * nseg, 1);
    snake_rows_k<<<grid, THREADS, 0, VQZ_CUDA_STREAM(st)>>>(x, alpha, dy, dx, part, C, L, rows, nseg);
    VQZ_CUDA_LAUNCHED(op);
    LAUNCH(snake_dalpha_k, C, op, part, dalpha, N, C, nseg);
    return VQZ_OK;
}

/* ------------------------------------------------------------------------------- scaled adds */

__global__ static void add_scaled_k(const float *a, float scale, const float *b, float *y, int64_t n)
{
    GRID_LOOP(i, n) y[i] = a[i] + scale * b[i];
}

__global__ static void axpy_k(float alpha, const float *x, float *y, int64_t n)
{
    GRID_LOOP(i, n) y[i] += alpha * x[i];
}

__global__ static void scale_k(float alpha, const float *x, float *y, int64_t n)
{
    GRID_LOOP(i, n) y[i] = alpha * x[i];
}

extern "C" vqz_status vqz_cuda_add_scaled(void *st, const float *a, float scale, const float *b, float *y, int64_t n)
{
    if (n > 0)
        LAUNCH(add_scaled_k, n, "add_scaled", a, scale, b, y, n);
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_axpy(void *st, float alpha, const float *x, float *y, int64_t n)
{
    if (n > 0)
        LAUNCH(axpy_k, n, "axpy", alpha, x, y, n);
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_scale(void *st, float alpha, const float *x, float *y, int64_t n)
{
    if (n > 0)
        LAUNCH(scale_k, n, "scale", alpha, x, y, n);
    return VQZ_OK;
}

/* ---------------------------------------------------------------------- upsampling, shuffling */

/* Output row q = p 2H + oh reads input row p H + oh / 2 = q / 2. */
__global__ static void upsample_fwd_k(const float *x, float *y, int64_t W, int64_t n)
{
    GRID_LOOP(e, n) {
        const int64_t ow = e % (2 * W), q = e / (2 * W);
        y[e] = x[(q >> 1) * W + (ow >> 1)];
    }
}

/* Input row q = p H + h gathers output rows 2q and 2q + 1, summed as the CPU does. */
__global__ static void upsample_bwd_k(const float *dy, float *dx, int64_t W, int64_t n)
{
    GRID_LOOP(e, n) {
        const int64_t w = e % W, q = e / W;
        const float *g0 = dy + q * 4 * W, *g1 = g0 + 2 * W;
        dx[e] = (g0[2 * w] + g0[2 * w + 1]) + (g1[2 * w] + g1[2 * w + 1]);
    }
}

/* y[n, c, h r + i, w r + j] = x[n, c r^2 + i r + j, h, w]; one thread per element of y. */
__global__ static void shuffle_fwd_k(int r, const float *x, float *y, int64_t H, int64_t W, int64_t n)
{
    GRID_LOOP(e, n) {
        const int64_t Wo = W * r, Ho = H * r;
        const int64_t ow = e % Wo, t = e / Wo, oh = t % Ho, nc = t / Ho;
        const int64_t ci = nc * r * r + (oh % r) * r + ow % r;
        y[e] = x[(ci * H + oh / r) * W + ow / r];
    }
}

/* The inverse, one thread per element of dx [N, C r^2, H, W]. */
__global__ static void shuffle_bwd_k(int r, const float *dy, float *dx, int64_t H, int64_t W, int64_t n)
{
    GRID_LOOP(e, n) {
        const int64_t w = e % W, t = e / W, h = t % H, ci = t / H;
        const int64_t nc = ci / ((int64_t)r * r), ij = ci % ((int64_t)r * r), i = ij / r, j = ij % r;
        dx[e] = dy[(nc * H * r + h * r + i) * W * r + w * r + j];
    }
}

extern "C" vqz_status vqz_cuda_upsample2x_fwd(void *st, const float *x, float *y, int64_t NC, int64_t H, int64_t W)
{
    const int64_t n = NC * 4 * H * W;
    if (n > 0)
        LAUNCH(upsample_fwd_k, n, "upsample2x_fwd", x, y, W, n);
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_upsample2x_bwd(void *st, const float *dy, float *dx, int64_t NC, int64_t H, int64_t W)
{
    const int64_t n = NC * H * W;
    if (n > 0)
        LAUNCH(upsample_bwd_k, n, "upsample2x_bwd", dy, dx, W, n);
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_pixel_shuffle_fwd(void *st, int r, const float *x, float *y, int64_t N, int64_t C,
                                                 int64_t H, int64_t W)
{
    const int64_t n = N * C * r * r * H * W;
    if (n > 0)
        LAUNCH(shuffle_fwd_k, n, "pixel_shuffle_fwd", r, x, y, H, W, n);
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_pixel_shuffle_bwd(void *st, int r, const float *dy, float *dx, int64_t N, int64_t C,
                                                 int64_t H, int64_t W)
{
    const int64_t n = N * C * r * r * H * W;
    if (n > 0)
        LAUNCH(shuffle_bwd_k, n, "pixel_shuffle_bwd", r, dy, dx, H, W, n);
    return VQZ_OK;
}

/* ------------------------------------------------------------------------------ channel layout */

__global__ static void concat_k(const float *a, const float *b, float *y, int64_t na, int64_t nb, int64_t n)
{
    GRID_LOOP(e, n) {
        const int64_t i = e / (na + nb), k = e % (na + nb);
        y[e] = k < na ? a[i * na + k] : b[i * nb + (k - na)];
    }
}

__global__ static void slice_k(const float *x, float *y, int64_t nx, int64_t off, int64_t ny, int64_t n)
{
    GRID_LOOP(e, n) y[e] = x[(e / ny) * nx + off + e % ny];
}

extern "C" vqz_status vqz_cuda_concat_channels(void *st, const float *a, const float *b, float *y, int64_t N,
                                               int64_t Ca, int64_t Cb, int64_t L)
{
    const int64_t n = N * (Ca + Cb) * L;
    if (n > 0)
        LAUNCH(concat_k, n, "concat_channels", a, b, y, Ca * L, Cb * L, n);
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_slice_channels(void *st, const float *x, float *y, int64_t N, int64_t Cx, int64_t c0,
                                              int64_t Cy, int64_t L)
{
    const int64_t n = N * Cy * L;
    if (n > 0)
        LAUNCH(slice_k, n, "slice_channels", x, y, Cx * L, c0 * L, Cy * L, n);
    return VQZ_OK;
}

/* ------------------------------------------------------------------------------- weight norm */
/* One block per row, norms in double. A row with ||v|| = 0 (or NaN) comes out NaN (g / 0 times 0) rather
 * than as the CPU's VQZ_ERR_NONFINITE, which would cost a synchronisation per call; the NaN surfaces at
 * the next loss. */

__global__ static void weight_norm_fwd_k(const float *v, const float *g, float *w, int64_t O, int64_t R)
{
    __shared__ double sh[THREADS];
    for (int64_t o = blockIdx.x; o < O; o += gridDim.x) {
        const float *vr = v + o * R;
        double acc = 0.0;
        for (int64_t k = threadIdx.x; k < R; k += blockDim.x)
            acc += (double)vr[k] * vr[k];
        const double nrm = sqrt(block_sum(acc, sh));
        const float f = (float)(g[o] / nrm);
        float *wr = w + o * R;
        for (int64_t k = threadIdx.x; k < R; k += blockDim.x)
            wr[k] = f * vr[k];
    }
}

/* w = g v / |v|: dg = <dw, v> / |v|, dv = (g / |v|) dw - (g dg / |v|^2) v. The row of dw is read whole
 * (the block sums end in a barrier) before dv is written, so dv may alias dw. */
__global__ static void weight_norm_bwd_k(const float *v, const float *g, const float *dw, float *dv, float *dg,
                                         int64_t O, int64_t R)
{
    __shared__ double sh[THREADS];
    for (int64_t o = blockIdx.x; o < O; o += gridDim.x) {
        const float *vr = v + o * R, *gr = dw + o * R;
        double vv = 0.0, gv = 0.0;
        for (int64_t k = threadIdx.x; k < R; k += blockDim.x) {
            vv += (double)vr[k] * vr[k];
            gv += (double)gr[k] * vr[k];
        }
        const double nrm = sqrt(block_sum(vv, sh));
        const double dgo = block_sum(gv, sh) / nrm;
        if (dg && threadIdx.x == 0)
            dg[o] += (float)dgo;
        if (dv) {
            const float a = (float)(g[o] / nrm);
            const float b = (float)(g[o] * dgo / (nrm * nrm));
            float *out = dv + o * R;
            for (int64_t k = threadIdx.x; k < R; k += blockDim.x)
                out[k] = a * gr[k] - b * vr[k];
        }
    }
}

extern "C" vqz_status vqz_cuda_weight_norm_fwd(void *st, const float *v, const float *g, float *w, int64_t O,
                                               int64_t R)
{
    if (O <= 0 || R <= 0)
        return VQZ_OK;
    weight_norm_fwd_k<<<vqz_cuda_blocks(O, 1), THREADS, 0, VQZ_CUDA_STREAM(st)>>>(v, g, w, O, R);
    VQZ_CUDA_LAUNCHED("weight_norm_fwd");
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_weight_norm_bwd(void *st, const float *v, const float *g, const float *dw, float *dv,
                                               float *dg, int64_t O, int64_t R)
{
    if (O <= 0 || R <= 0 || (!dv && !dg))
        return VQZ_OK;
    weight_norm_bwd_k<<<vqz_cuda_blocks(O, 1), THREADS, 0, VQZ_CUDA_STREAM(st)>>>(v, g, dw, dv, dg, O, R);
    VQZ_CUDA_LAUNCHED("weight_norm_bwd");
    return VQZ_OK;
}

/* ------------------------------------------------------------------------------------ linear */
/* cuBLAS is column-major: a row-major [r][c] matrix is the column-major c x r matrix (its transpose)
 * with the same leading dimension c. So y[M,N] = x[M,K] w[N,K]^T becomes y^T (N x M) = w^T^T x^T, i.e.
 * op(A) = T on w (a K x N column-major matrix, lda K) and op(B) = N on x (K x M, ldb K). */

__global__ static void bias_rows_k(const float *b, float *y, int64_t N, int64_t n)
{
    GRID_LOOP(e, n) y[e] = b[e % N];
}

/* db[j] += sum over rows of dy[:, j] in double: threadIdx.x picks the column, threadIdx.y one of 8
 * contiguous row ranges, merged in range order (deterministic). */
__global__ static void bias_grad_k(const float *dy, float *db, int64_t M, int64_t N)
{
    __shared__ double part[8][32];
    const int64_t per = (M + 7) / 8, i0 = threadIdx.y * per, i1 = i0 + per < M ? i0 + per : M;
    for (int64_t j0 = (int64_t)blockIdx.x * 32; j0 < N; j0 += (int64_t)gridDim.x * 32) {
        const int64_t j = j0 + threadIdx.x;
        double acc = 0.0;
        if (j < N)
            for (int64_t i = i0; i < i1; i++)
                acc += dy[i * N + j];
        part[threadIdx.y][threadIdx.x] = acc;
        __syncthreads();
        if (threadIdx.y == 0 && j < N) {
            double s = 0.0;
            for (int k = 0; k < 8; k++)
                s += part[k][threadIdx.x];
            db[j] += (float)s;
        }
        __syncthreads();
    }
}

static vqz_status gemm_dims(const char *op, int64_t M, int64_t K, int64_t N)
{
    if (M > INT_MAX || K > INT_MAX || N > INT_MAX)
        return vqz_fail(VQZ_ERR_LIMIT, "%s: M=%lld, K=%lld, N=%lld exceed cuBLAS's int sizes", op, (long long)M,
                        (long long)K, (long long)N);
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_linear_fwd(void *st, const float *x, const float *w, const float *b, float *y,
                                          int64_t M, int64_t K, int64_t N)
{
    const char *op = "linear_fwd";
    VQZ_TRY(gemm_dims(op, M, K, N));
    if (M <= 0 || N <= 0)
        return VQZ_OK;
    float one = 1.0f, beta = 0.0f;
    if (b) { /* seed every row with the bias and let the GEMM add onto it, as the CPU does */
        LAUNCH(bias_rows_k, M * N, op, b, y, N, M * N);
        beta = 1.0f;
    }
    VQZ_CUBLAS_CHECK(vqz_cublas.sgemm(VQZ_CUDA_BLAS(st), CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one, w,
                                      (int)K, x, (int)K, &beta, y, (int)N),
                     op);
    return VQZ_OK;
}

extern "C" vqz_status vqz_cuda_linear_bwd(void *st, const float *x, const float *w, const float *dy, float *dx,
                                          float *dw, float *db, int64_t M, int64_t K, int64_t N)
{
    const char *op = "linear_bwd";
    VQZ_TRY(gemm_dims(op, M, K, N));
    if (M <= 0 || N <= 0 || K <= 0)
        return VQZ_OK;
    const float one = 1.0f, zero = 0.0f;
    /* dx[M,K] = dy[M,N] w[N,K]: dx^T (K x M) = w^T (K x N, ld K) dy^T (N x M, ld N) */
    if (dx)
        VQZ_CUBLAS_CHECK(vqz_cublas.sgemm(VQZ_CUDA_BLAS(st), CUBLAS_OP_N, CUBLAS_OP_N, (int)K, (int)M, (int)N, &one,
                                          w, (int)K, dy, (int)N, &zero, dx, (int)K),
                         op);
    /* dw[N,K] += dy^T x: dw^T (K x N) = x^T (K x M, ld K) (dy^T)^T, dy^T being N x M with ld N */
    if (dw)
        VQZ_CUBLAS_CHECK(vqz_cublas.sgemm(VQZ_CUDA_BLAS(st), CUBLAS_OP_N, CUBLAS_OP_T, (int)K, (int)N, (int)M, &one,
                                          x, (int)K, dy, (int)N, &one, dw, (int)K),
                         op);
    if (db) {
        bias_grad_k<<<vqz_cuda_blocks(N, 32), dim3(32, 8), 0, VQZ_CUDA_STREAM(st)>>>(dy, db, M, N);
        VQZ_CUDA_LAUNCHED(op);
    }
    return VQZ_OK;
}

/* ------------------------------------------------------------------------------------ losses */
/* Per-block partial sums in double over a fixed grid (RED_BLOCKS at most, a function of n only), then one
 * block sums the partials: the same order on every run. */

__global__ static void loss_part_k(const float *x, const float *t, float gs, float *grad, int l1, double *part,
                                   int64_t n)
{
    __shared__ double sh[THREADS];
    double acc = 0.0;
    GRID_LOOP(i, n) {
        float d = x[i] - t[i]; /* both read before grad (which may alias either) is written */
        if (l1) {
            acc += fabsf(d);
            if (grad)
                grad[i] = d > 0.0f ? gs : (d < 0.0f ? -gs : 0.0f);
        } else {
            acc += (double)d * d;
            if (grad)
                grad[i] = gs * d;
        }
    }
    double s = block_sum(acc, sh);
    if (threadIdx.x == 0)
        part[blockIdx.x] = s;
}

__global__ static void loss_final_k(const double *part, int nparts, int64_t n, double *out)
{
    __shared__ double sh[THREADS];
    double acc = 0.0;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x)
        acc += part[i];
    double s = block_sum(acc, sh);
    if (threadIdx.x == 0)
        out[0] = s / (double)n;
}

static vqz_status loss_run(void *st, const char *op, const float *x, const float *t, float gs, int l1, double *loss,
                           float *grad, int64_t n)
{
    if (n <= 0)
        return vqz_fail(VQZ_ERR_SHAPE, "%s: x is empty", op);
    unsigned blocks = vqz_cuda_blocks(n, THREADS);
    if (blocks > RED_BLOCKS)
        blocks = RED_BLOCKS;
    void *ws;
    VQZ_TRY(vqz_cuda_workspace(st, (blocks + 1) * sizeof(double), &ws));
    double *part = (double *)ws, *out = part + blocks;
    loss_part_k<<<blocks, THREADS, 0, VQZ_CUDA_STREAM(st)>>>(x, t, gs, grad, l1, part, n);
    VQZ_CUDA_LAUNCHED(op);
    loss_final_k<<<1, THREADS, 0, VQZ_CUDA_STREAM(st)>>>(part, (int)blocks, n, out);
    VQZ_CUDA_LAUNCHED(op);
    return vqz_cuda_d2h(st, loss, out, sizeof(double));
}

extern "C" vqz_status vqz_cuda_mse_loss(void *st, const float *x, const float *t, float weight, double *loss,
                                        float *grad, int64_t n)
{
    return loss_run(st, "mse_loss", x, t, (float)(2.0 * weight / (double)n), 0, loss, grad, n);
}

extern "C" vqz_status vqz_cuda_l1_loss(void *st, const float *x, const float *t, float weight, double *loss,
                                       float *grad, int64_t n)
{
    return loss_run(st, "l1_loss", x, t, (float)(weight / (double)n), 1, loss, grad, n);
}
