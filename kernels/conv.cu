/* conv.cu — CUDA convolutions (conv2d, conv1d, transposed conv1d; forward with the fused epilogue, and
 * backward) as im2col / col2im gathers around cuBLAS SGEMMs, with the semantics of nn/conv_dnnl.c. */
#include <cuda_runtime.h>
#include <limits.h>
#include <stdint.h>

extern "C" {
#include "common/status.h"
}
#include "kernels/cuda_common.h"
#include "kernels/cuda_ops.h"

#define THREADS 256
/* im2col columns of one chunk: 256 MiB, so a large image or a long signal never needs a column
 * buffer of its full size (it is then cut into column ranges; at least one column). */
#define COL_FLOATS ((int64_t)64 << 20)
/* Batches per cuBLAS call, kept within the grid limits some cuBLAS versions impose on the batch. */
#define MAX_BATCH 65535
#define MAX_GRID_Y 65535

enum { PAD_ZERO = 0, PAD_REPLICATE = 1, PAD_REFLECT = 2 };
enum { ACT_NONE = 0, ACT_SILU = 1, ACT_ELU = 2 };

/* A convolution as im2col sees it. x is read as [n][ci][ih][iw], a nearest 2x upsampling of the
 * stored [n][ci][xh][xw] when up is 1; the output is [n][co][oh][ow]. Pads are in input units. */
typedef struct {
    int64_t n, ci, co;
    int64_t xh, xw, ih, iw;
    int64_t kh, kw, sh, sw, dh, dw;
    int64_t pt, pb, pl, pr;
    int64_t oh, ow;
    int mode, up;
} conv_geom;

/* ------------------------------------------------------------------------------ device code */

__device__ static inline float act_apply(float v, int act)
{
    if (act == ACT_SILU)
        return v / (1.0f + expf(-v));
    if (act == ACT_ELU)
        return v > 0.0f ? v : expm1f(v);
    return v;
}

/* The stored index that padded coordinate i (input frame) reads on an axis of length n, or -1 for a
 * zero; reflect repeats no edge (the callers guarantee pad < n). */
__device__ static inline int64_t pad_index(int64_t i, int64_t n, int mode)
{
    if (i >= 0 && i < n)
        return i;
    if (mode == PAD_ZERO)
        return -1;
    if (mode == PAD_REPLICATE)
        return i < 0 ? 0 : n - 1;
    return i < 0 ? -i : 2 * (n - 1) - i;
}

/* The inverse of pad_index: the padded coordinates p (-lo <= p < n + hi) that read x[i], as up to
 * three inclusive ranges r[j][0] .. r[j][1]. The gradient of a padded position flows to its source. */
__device__ static int pad_sources(int64_t i, int64_t n, int64_t lo, int64_t hi, int mode, int64_t r[3][2])
{
    if (mode == PAD_REPLICATE) {
        r[0][0] = i == 0 ? -lo : i;
        r[0][1] = i == n - 1 ? n - 1 + hi : i;
        return 1;
    }
    int k = 0;
    r[k][0] = r[k][1] = i;
    k++;
    if (mode == PAD_REFLECT) {
        if (i >= 1 && i <= lo) {
            r[k][0] = r[k][1] = -i;
            k++;
        }
        int64_t q = 2 * (n - 1) - i;
        if (q >= n && q <= n - 1 + hi) {
            r[k][0] = r[k][1] = q;
            k++;
        }
    }
    return k;
}

/* col[b][r][j] = pre_act(x_b read through the padding) for tap r = (c kh + ky) kw + kx (the order of
 * OIHW weights) and output position c0 + j (flattened oy ow + ox), images b < nb of x. Rows go over
 * the grid's y dimension so the tap is decoded once per row. */
__global__ static void im2col_kernel(const float *x, float *col, conv_geom g, int64_t nb, int64_t c0, int64_t nc,
                                     int pre_act)
{
    int64_t K = g.ci * g.kh * g.kw;
    for (int64_t row = blockIdx.y; row < nb * K; row += gridDim.y) {
        int64_t b = row / K, r = row % K;
        int64_t kx = r % g.kw, ky = (r / g.kw) % g.kh, c = r / (g.kw * g.kh);
        const float *xp = x + (b * g.ci + c) * g.xh * g.xw;
        float *cp = col + row * nc;
        for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < nc;
             j += (int64_t)gridDim.x * blockDim.x) {
            int64_t q = c0 + j, oy = q / g.ow, ox = q - oy * g.ow;
            int64_t iy = pad_index(oy * g.sh + ky * g.dh - g.pt, g.ih, g.mode);
            int64_t ix = pad_index(ox * g.sw + kx * g.dw - g.pl, g.iw, g.mode);
            float v = 0.0f;
            if (iy >= 0 && ix >= 0)
                v = act_apply(xp[(iy >> g.up) * g.xw + (ix >> g.up)], pre_act);
            cp[j] = v;
        }
    }
}

/* The adjoint of im2col (without up or pre_act) as a gather, so no atomics and a fixed summation
 * order: x_b[c][iy][ix] (=|+=) sum of col[b][tap][q] over every tap and output position q in
 * [c0, c0 + nc) that read it. overwrite also adds bias[c] (when non-NULL); otherwise the chunk's
 * contributions are added to what earlier chunks wrote. */
__global__ static void col2im_kernel(const float *col, float *x, conv_geom g, int64_t nb, int64_t c0, int64_t nc,
                                     const float *bias, int overwrite)
{
    int64_t K = g.ci * g.kh * g.kw;
    for (int64_t row = blockIdx.y; row < nb * g.ci * g.ih; row += gridDim.y) {
        int64_t iy = row % g.ih, bc = row / g.ih, c = bc % g.ci, b = bc / g.ci;
        int64_t ys[3][2];
        int ny = pad_sources(iy, g.ih, g.pt, g.pb, g.mode, ys);
        const float *cb = col + (b * K + c * g.kh * g.kw) * nc;
        float *xr = x + row * g.iw;
        float add = overwrite && bias ? bias[c] : 0.0f;
        for (int64_t ix = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; ix < g.iw;
             ix += (int64_t)gridDim.x * blockDim.x) {
            int64_t xs[3][2];
            int nx = pad_sources(ix, g.iw, g.pl, g.pr, g.mode, xs);
            float acc = 0.0f;
            for (int a = 0; a < ny; a++)
                for (int64_t py = ys[a][0]; py <= ys[a][1]; py++)
                    for (int64_t ky = 0; ky < g.kh; ky++) {
                        int64_t t = py + g.pt - ky * g.dh;
                        if (t < 0 || t % g.sh != 0 || t / g.sh >= g.oh)
                            continue;
                        int64_t oy = t / g.sh;
                        for (int e = 0; e < nx; e++)
                            for (int64_t px = xs[e][0]; px <= xs[e][1]; px++)
                                for (int64_t kx = 0; kx < g.kw; kx++) {
                                    int64_t u = px + g.pl - kx * g.dw;
                                    if (u < 0 || u % g.sw != 0 || u / g.sw >= g.ow)
                                        continue;
                                    int64_t q = oy * g.ow + u / g.sw - c0;
                                    if (q >= 0 && q < nc)
                                        acc += cb[(ky * g.kw + kx) * nc + q];
                                }
                    }
            if (overwrite)
                xr[ix] = acc + add;
            else
                xr[ix] += acc;
        }
    }
}

/* y[row][l] = act(y[row][l] + scale b[row % co]) over rows = n co; the GEMM already applied scale to
 * the convolution and added the scaled residual. */
__global__ static void epilogue_kernel(float *y, const float *b, float scale, int act, int64_t rows, int64_t co,
                                       int64_t L)
{
    for (int64_t row = blockIdx.y; row < rows; row += gridDim.y) {
        float add = b ? scale * b[row % co] : 0.0f;
        float *yr = y + row * L;
        for (int64_t l = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; l < L; l += (int64_t)gridDim.x * blockDim.x)
            yr[l] = act_apply(yr[l] + add, act);
    }
}

/* db[c] += sum of dy[n][c][l]: one block per channel, a fixed-shape tree in double, so the result is
 * deterministic and needs no atomics. Needs blockDim.x == THREADS (a power of two). */
__global__ static void bias_grad_kernel(const float *dy, float *db, int64_t n, int64_t co, int64_t L)
{
    __shared__ double part[THREADS];
    for (int64_t c = blockIdx.x; c < co; c += gridDim.x) {
        double s = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const float *p = dy + (i * co + c) * L;
            for (int64_t l = threadIdx.x; l < L; l += blockDim.x)
                s += p[l];
        }
        part[threadIdx.x] = s;
        __syncthreads();
        for (unsigned h = blockDim.x / 2; h > 0; h >>= 1) {
            if (threadIdx.x < h)
                part[threadIdx.x] += part[threadIdx.x + h];
            __syncthreads();
        }
        if (threadIdx.x == 0)
            db[c] += (float)part[0];
        __syncthreads(); /* part is reused by the next channel */
    }
}

/* -------------------------------------------------------------------------------- host helpers */

static dim3 grid_rows(int64_t rows, int64_t cols)
{
    unsigned gy = (unsigned)(rows < 1 ? 1 : rows > MAX_GRID_Y ? MAX_GRID_Y : rows);
    return dim3(vqz_cuda_blocks(cols, THREADS), gy, 1);
}

static int fits_int(int64_t v)
{
    return v >= 0 && v <= INT_MAX;
}

/* Column-major C = alpha op(A) op(B) + beta C, batch times with element strides sa, sb, sc (0 shares
 * the operand). cuBLAS takes int sizes: anything larger is refused. */
static vqz_status gemm(void *st, const char *op, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n,
                       int64_t k, float alpha, const float *a, int64_t lda, int64_t sa, const float *b, int64_t ldb,
                       int64_t sb, float beta, float *c, int64_t ldc, int64_t sc, int64_t batch)
{
    if (!fits_int(m) || !fits_int(n) || !fits_int(k) || !fits_int(lda) || !fits_int(ldb) || !fits_int(ldc))
        return vqz_fail(VQZ_ERR_LIMIT, "%s: GEMM %lld x %lld x %lld (leading dimensions %lld, %lld, %lld) exceeds cuBLAS's int sizes",
                        op, (long long)m, (long long)n, (long long)k, (long long)lda, (long long)ldb, (long long)ldc);
    if (m == 0 || n == 0 || batch <= 0)
        return VQZ_OK;
    cublasHandle_t h = VQZ_CUDA_BLAS(st);
    for (int64_t i = 0; i < batch; i += MAX_BATCH) {
        int64_t cnt = batch - i < MAX_BATCH ? batch - i : MAX_BATCH;
        const float *ai = a + i * sa, *bi = b + i * sb;
        float *ci = c + i * sc;
        if (cnt == 1)
            VQZ_CUBLAS_CHECK(vqz_cublas.sgemm(h, ta, tb, (int)m, (int)n, (int)k, &alpha, ai, (int)lda, bi, (int)ldb,
                                              &beta, ci, (int)ldc),
                             op);
        else
            VQZ_CUBLAS_CHECK(vqz_cublas.sgemm_strided_batched(h, ta, tb, (int)m, (int)n, (int)k, &alpha, ai, (int)lda,
                                                              (long long)sa, bi, (int)ldb, (long long)sb, &beta, ci,
                                                              (int)ldc, (long long)sc, (int)cnt),
                             op);
    }
    return VQZ_OK;
}

static vqz_status im2col(void *st, const conv_geom *g, const float *x, float *col, int64_t nb, int64_t c0, int64_t nc,
                         int pre_act, const char *op)
{
    int64_t rows = nb * g->ci * g->kh * g->kw;
    im2col_kernel<<<grid_rows(rows, nc), THREADS, 0, VQZ_CUDA_STREAM(st)>>>(x, col, *g, nb, c0, nc, pre_act);
    VQZ_CUDA_LAUNCHED(op);
    return VQZ_OK;
}

static vqz_status col2im(void *st, const conv_geom *g, const float *col, float *x, int64_t nb, int64_t c0,
                         int64_t nc, const float *bias, int overwrite, const char *op)
{
    int64_t rows = nb * g->ci * g->ih;
    col2im_kernel<<<grid_rows(rows, g->iw), THREADS, 0, VQZ_CUDA_STREAM(st)>>>(col, x, *g, nb, c0, nc, bias,
                                                                                overwrite);
    VQZ_CUDA_LAUNCHED(op);
    return VQZ_OK;
}

static vqz_status bias_grad(void *st, const float *dy, float *db, int64_t n, int64_t co, int64_t L, const char *op)
{
    unsigned blocks = (unsigned)(co > MAX_GRID_Y ? MAX_GRID_Y : co < 1 ? 1 : co);
    bias_grad_kernel<<<blocks, THREADS, 0, VQZ_CUDA_STREAM(st)>>>(dy, db, n, co, L);
    VQZ_CUDA_LAUNCHED(op);
    return VQZ_OK;
}

/* Chunks of nb whole images, or (when one image's columns exceed COL_FLOATS) of nc output columns of
 * one image; K is the column height (taps). Without a column buffer (direct) everything is one chunk. */
static void plan_chunks(int64_t n, int64_t K, int64_t L, int direct, int64_t *nb, int64_t *nc)
{
    if (direct || K * L <= COL_FLOATS) {
        *nb = direct ? n : (COL_FLOATS / (K * L) < n ? COL_FLOATS / (K * L) : n);
        *nc = L;
    } else {
        *nb = 1;
        *nc = COL_FLOATS / K > 1 ? COL_FLOATS / K : 1;
    }
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* A 1x1 convolution with stride 1 and no padding reads x as its own column matrix. */
static int pointwise(const conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pb == 0 && g->pl == 0 &&
           g->pr == 0 && g->up == 0;
}

static vqz_status check_geom(const conv_geom *g, const char *op)
{
    if (g->n < 1 || g->ci < 1 || g->co < 1 || g->xh < 1 || g->xw < 1 || g->kh < 1 || g->kw < 1 || g->sh < 1 ||
        g->sw < 1 || g->dh < 1 || g->dw < 1 || g->oh < 1 || g->ow < 1)
        return vqz_fail(VQZ_ERR_SHAPE, "%s: empty or invalid convolution shape (output %lld x %lld)", op,
                        (long long)g->oh, (long long)g->ow);
    return VQZ_OK;
}

/* ------------------------------------------------------------------------------ convolution */

/* Per image b, row-major Y_b[co][L] = W[co][K] col_b[K][L]. In cuBLAS's column-major terms that is
 * Y_b^T (L x co, ldc L) = col_b^T (L x K, ld = the column chunk's width) W^T (K x co, ld K): sgemm(N, N,
 * m = columns, n = co, k = K, A = col_b, B = W). The fusion's out_scale is the GEMM's alpha and its
 * residual the beta on y, so only the bias and the activation are left for the epilogue. */
static vqz_status conv_forward(void *st, const conv_geom *g, const float *x, const float *w, const float *b, float *y,
                               const vqz_cuda_fusion *f, const char *op)
{
    VQZ_TRY(check_geom(g, op));
    int64_t K = g->ci * g->kh * g->kw, L = g->oh * g->ow, xs = g->ci * g->xh * g->xw, ys = g->co * L;
    float out_scale = f ? f->out_scale : 1.0f, beta = f && f->residual ? f->res_scale : 0.0f;
    int act = f ? f->act : ACT_NONE, pre_act = f ? f->pre_act : ACT_NONE;
    int direct = pointwise(g) && pre_act == ACT_NONE;
    int64_t nb, nc;
    plan_chunks(g->n, K, L, direct, &nb, &nc);
    float *col = NULL;
    if (!direct)
        VQZ_TRY(vqz_cuda_workspace(st, (size_t)(nb * K * nc) * sizeof(float), (void **)&col));
    for (int64_t n0 = 0; n0 < g->n; n0 += nb) {
        int64_t bn = min64(nb, g->n - n0);
        for (int64_t c0 = 0; c0 < L; c0 += nc) {
            int64_t cn = min64(nc, L - c0);
            /* direct: A is x_b's columns c0.. with x's row stride L as leading dimension */
            const float *a = x + n0 * xs + c0;
            int64_t lda = L, sa = xs;
            if (!direct) {
                VQZ_TRY(im2col(st, g, x + n0 * xs, col, bn, c0, cn, pre_act, op));
                a = col;
                lda = cn;
                sa = K * cn;
            }
            VQZ_TRY(gemm(st, op, CUBLAS_OP_N, CUBLAS_OP_N, cn, g->co, K, out_scale, a, lda, sa, w, K, 0, beta,
                         y + n0 * ys + c0, L, ys, bn));
        }
    }
    if (b || act != ACT_NONE) {
        epilogue_kernel<<<grid_rows(g->n * g->co, L), THREADS, 0, VQZ_CUDA_STREAM(st)>>>(y, b, out_scale, act,
                                                                                          g->n * g->co, g->co, L);
        VQZ_CUDA_LAUNCHED(op);
    }
    return VQZ_OK;
}

/* Per image b and column chunk:
 *   dW[co][K] += dY_b[co][L] col_b[K][L]^T: column-major dW^T (K x co, ld K) += col_b (K x L, stored as
 *     L x K with ld = chunk width, so transposed) dY_b^T (L x co, ld L): sgemm(T, N, m = K, n = co,
 *     k = columns, A = col_b, B = dY_b, beta 1). Summed over images, so one GEMM per image.
 *   dcol_b[K][L] = W^T dY_b: column-major dcol_b^T (L x K) = dY_b^T (L x co, ld L) W (co x K, stored as
 *     K x co with ld K, so transposed): sgemm(N, T, m = columns, n = K, k = co, A = dY_b, B = W),
 *   then dx_b is gathered from dcol_b (col2im; the first column chunk overwrites, later ones add).
 * dW's column buffer is consumed before dcol overwrites it: both are queued on the one stream. */
static vqz_status conv_backward(void *st, const conv_geom *g, const float *x, const float *w, const float *dy,
                                float *dx, float *dw, float *db, const char *op)
{
    VQZ_TRY(check_geom(g, op));
    int64_t K = g->ci * g->kh * g->kw, L = g->oh * g->ow, xs = g->ci * g->xh * g->xw, ys = g->co * L;
    if (db)
        VQZ_TRY(bias_grad(st, dy, db, g->n, g->co, L, op));
    if (!dx && !dw)
        return VQZ_OK;
    int direct = pointwise(g);
    int64_t nb, nc;
    plan_chunks(g->n, K, L, direct, &nb, &nc);
    float *col = NULL;
    if (!direct)
        VQZ_TRY(vqz_cuda_workspace(st, (size_t)(nb * K * nc) * sizeof(float), (void **)&col));
    for (int64_t n0 = 0; n0 < g->n; n0 += nb) {
        int64_t bn = min64(nb, g->n - n0);
        for (int64_t c0 = 0; c0 < L; c0 += nc) {
            int64_t cn = min64(nc, L - c0);
            const float *dyc = dy + n0 * ys + c0;
            if (dw) {
                const float *a = x + n0 * xs + c0;
                int64_t lda = L, sa = xs;
                if (!direct) {
                    VQZ_TRY(im2col(st, g, x + n0 * xs, col, bn, c0, cn, ACT_NONE, op));
                    a = col;
                    lda = cn;
                    sa = K * cn;
                }
                for (int64_t i = 0; i < bn; i++)
                    VQZ_TRY(gemm(st, op, CUBLAS_OP_T, CUBLAS_OP_N, K, g->co, cn, 1.0f, a + i * sa, lda, 0,
                                 dyc + i * ys, L, 0, 1.0f, dw, K, 0, 1));
            }
            if (dx && direct) {
                VQZ_TRY(gemm(st, op, CUBLAS_OP_N, CUBLAS_OP_T, cn, K, g->co, 1.0f, dyc, L, ys, w, K, 0, 0.0f,
                             dx + n0 * xs + c0, L, xs, bn));
            } else if (dx) {
                VQZ_TRY(gemm(st, op, CUBLAS_OP_N, CUBLAS_OP_T, cn, K, g->co, 1.0f, dyc, L, ys, w, K, 0, 0.0f, col,
                             cn, K * cn, bn));
                VQZ_TRY(col2im(st, g, col, dx + n0 * xs, bn, c0, cn, NULL, c0 == 0, op));
            }
        }
    }
    return VQZ_OK;
}

static conv_geom geom_2d(int64_t N, int64_t Ci, int64_t H, int64_t W, int64_t Co, int k, int stride, int pad,
                         int dilation, int pad_mode)
{
    conv_geom g;
    g.n = N;
    g.ci = Ci;
    g.co = Co;
    g.xh = g.ih = H;
    g.xw = g.iw = W;
    g.kh = g.kw = k;
    g.sh = g.sw = stride;
    g.dh = g.dw = dilation;
    g.pt = g.pb = g.pl = g.pr = pad;
    g.oh = (H + 2 * (int64_t)pad - (int64_t)dilation * (k - 1) - 1) / stride + 1;
    g.ow = (W + 2 * (int64_t)pad - (int64_t)dilation * (k - 1) - 1) / stride + 1;
    g.mode = pad ? pad_mode : PAD_ZERO;
    g.up = 0;
    return g;
}

static conv_geom geom_1d(int64_t N, int64_t Ci, int64_t T, int64_t Co, int k, int stride, int pad_l, int pad_r,
                         int dilation, int pad_mode)
{
    conv_geom g;
    g.n = N;
    g.ci = Ci;
    g.co = Co;
    g.xh = g.ih = 1;
    g.xw = g.iw = T;
    g.kh = 1;
    g.kw = k;
    g.sh = 1;
    g.sw = stride;
    g.dh = 1;
    g.dw = dilation;
    g.pt = g.pb = 0;
    g.pl = pad_l;
    g.pr = pad_r;
    g.oh = 1;
    g.ow = (T + pad_l + pad_r - (int64_t)dilation * (k - 1) - 1) / stride + 1;
    g.mode = (pad_l | pad_r) ? pad_mode : PAD_ZERO;
    g.up = 0;
    return g;
}

extern "C" vqz_status vqz_cuda_conv2d_fwd(void *st, const float *x, const float *w, const float *b, float *y,
                                          int64_t N, int64_t Ci, int64_t H, int64_t W, int64_t Co, int k, int stride,
                                          int pad, int dilation, int pad_mode, const vqz_cuda_fusion *f)
{
    conv_geom g = geom_2d(N, Ci, H, W, Co, k, stride, pad, dilation, pad_mode);
    return conv_forward(st, &g, x, w, b, y, f, "CUDA conv2d_fwd");
}

extern "C" vqz_status vqz_cuda_conv2d_bwd(void *st, const float *x, const float *w, const float *dy, float *dx,
                                          float *dw, float *db, int64_t N, int64_t Ci, int64_t H, int64_t W,
                                          int64_t Co, int k, int stride, int pad, int dilation, int pad_mode)
{
    conv_geom g = geom_2d(N, Ci, H, W, Co, k, stride, pad, dilation, pad_mode);
    return conv_backward(st, &g, x, w, dy, dx, dw, db, "CUDA conv2d_bwd");
}

/* The upsampling is virtual: im2col reads the stored pixel (iy / 2, ix / 2) of the 2H x 2W image. */
extern "C" vqz_status vqz_cuda_conv2d_up2x_fwd(void *st, const float *x, const float *w, const float *b, float *y,
                                               int64_t N, int64_t Ci, int64_t H, int64_t W, int64_t Co,
                                               const vqz_cuda_fusion *f)
{
    conv_geom g = geom_2d(N, Ci, 2 * H, 2 * W, Co, 3, 1, 1, 1, PAD_ZERO);
    g.xh = H;
    g.xw = W;
    g.up = 1;
    vqz_cuda_fusion uf = {0, 0.0f, f ? f->out_scale : 1.0f, f ? f->act : ACT_NONE, ACT_NONE};
    return conv_forward(st, &g, x, w, b, y, &uf, "CUDA conv2d_up2x_fwd");
}

extern "C" vqz_status vqz_cuda_conv1d_fwd(void *st, const float *x, const float *w, const float *b, float *y,
                                          int64_t N, int64_t Ci, int64_t T, int64_t Co, int k, int stride, int pad_l,
                                          int pad_r, int dilation, int pad_mode, const vqz_cuda_fusion *f)
{
    conv_geom g = geom_1d(N, Ci, T, Co, k, stride, pad_l, pad_r, dilation, pad_mode);
    return conv_forward(st, &g, x, w, b, y, f, "CUDA conv1d_fwd");
}

extern "C" vqz_status vqz_cuda_conv1d_bwd(void *st, const float *x, const float *w, const float *dy, float *dx,
                                          float *dw, float *db, int64_t N, int64_t Ci, int64_t T, int64_t Co, int k,
                                          int stride, int pad_l, int pad_r, int dilation, int pad_mode)
{
    conv_geom g = geom_1d(N, Ci, T, Co, k, stride, pad_l, pad_r, dilation, pad_mode);
    return conv_backward(st, &g, x, w, dy, dx, dw, db, "CUDA conv1d_bwd");
}

/* ------------------------------------------------------------------- transposed convolution */

/* A transposed convolution is the adjoint of the convolution that maps y[N,Co,To] to x[N,Ci,T]
 * (tap kk of input position i reads y at i stride + kk - crop_l). That convolution, seen with y as its
 * input, is this geometry: its columns are dcol[co k + kk][i], which matches IOK weights read as
 * W[Ci][Co k]. */
static conv_geom geom_tr(int64_t N, int64_t Ci, int64_t T, int64_t Co, int k, int stride, int crop_l, int crop_r)
{
    conv_geom g;
    g.n = N;
    g.ci = Co;
    g.co = Ci;
    g.xh = g.ih = 1;
    g.xw = g.iw = (T - 1) * stride + k - crop_l - crop_r;
    g.kh = 1;
    g.kw = k;
    g.sh = 1;
    g.sw = stride;
    g.dh = g.dw = 1;
    g.pt = g.pb = 0;
    g.pl = crop_l;
    g.pr = crop_r;
    g.oh = 1;
    g.ow = T;
    g.mode = PAD_ZERO;
    g.up = 0;
    return g;
}

/* Per image b and chunk of input positions, row-major col_b[Co k][T] = W^T X_b with W[Ci][Co k]:
 * column-major col_b^T (T x Co k, ld = chunk width) = X_b^T (T x Ci, ld T) W (Ci x Co k, stored as
 * Co k x Ci with ld Co k, so transposed): sgemm(N, T, m = columns, n = Co k, k = Ci, A = x_b, B = W).
 * y is then gathered from the columns with the bias (col2im; later chunks add). */
extern "C" vqz_status vqz_cuda_convtr1d_fwd(void *st, const float *x, const float *w, const float *b, float *y,
                                            int64_t N, int64_t Ci, int64_t T, int64_t Co, int k, int stride,
                                            int crop_l, int crop_r)
{
    const char *op = "CUDA convtr1d_fwd";
    conv_geom g = geom_tr(N, Ci, T, Co, k, stride, crop_l, crop_r);
    VQZ_TRY(check_geom(&g, op));
    int64_t K = Co * k, xs = Ci * T, ys = Co * g.iw;
    int64_t nb, nc;
    plan_chunks(N, K, T, 0, &nb, &nc);
    float *col;
    VQZ_TRY(vqz_cuda_workspace(st, (size_t)(nb * K * nc) * sizeof(float), (void **)&col));
    for (int64_t n0 = 0; n0 < N; n0 += nb) {
        int64_t bn = min64(nb, N - n0);
        for (int64_t c0 = 0; c0 < T; c0 += nc) {
            int64_t cn = min64(nc, T - c0);
            VQZ_TRY(gemm(st, op, CUBLAS_OP_N, CUBLAS_OP_T, cn, K, Ci, 1.0f, x + n0 * xs + c0, T, xs, w, K, 0, 0.0f,
                         col, cn, K * cn, bn));
            VQZ_TRY(col2im(st, &g, col, y + n0 * ys, bn, c0, cn, b, c0 == 0, op));
        }
    }
    return VQZ_OK;
}

/* dcol_b = im2col of dy_b in geom_tr's terms (dcol[co k + kk][i] = dy_b[co][i stride + kk - crop_l]),
 * per image b and chunk of input positions:
 *   dX_b[Ci][T] = W[Ci][Co k] dcol_b: column-major dX_b^T (T x Ci, ld T) = dcol_b^T (T x Co k, ld = chunk
 *     width) W^T (Co k x Ci, ld Co k): sgemm(N, N, m = columns, n = Ci, k = Co k, A = dcol_b, B = W).
 *   dW[Ci][Co k] += X_b dcol_b^T: column-major dW^T (Co k x Ci, ld Co k) += dcol_b (Co k x T, stored as
 *     T x Co k, so transposed) X_b^T (T x Ci, ld T): sgemm(T, N, m = Co k, n = Ci, k = columns, beta 1).
 * Chunks write disjoint columns of dx, so it is overwritten chunk by chunk. */
extern "C" vqz_status vqz_cuda_convtr1d_bwd(void *st, const float *x, const float *w, const float *dy, float *dx,
                                            float *dw, float *db, int64_t N, int64_t Ci, int64_t T, int64_t Co, int k,
                                            int stride, int crop_l, int crop_r)
{
    const char *op = "CUDA convtr1d_bwd";
    conv_geom g = geom_tr(N, Ci, T, Co, k, stride, crop_l, crop_r);
    VQZ_TRY(check_geom(&g, op));
    int64_t K = Co * k, xs = Ci * T, ys = Co * g.iw;
    if (db)
        VQZ_TRY(bias_grad(st, dy, db, N, Co, g.iw, op));
    if (!dx && !dw)
        return VQZ_OK;
    int64_t nb, nc;
    plan_chunks(N, K, T, 0, &nb, &nc);
    float *col;
    VQZ_TRY(vqz_cuda_workspace(st, (size_t)(nb * K * nc) * sizeof(float), (void **)&col));
    for (int64_t n0 = 0; n0 < N; n0 += nb) {
        int64_t bn = min64(nb, N - n0);
        for (int64_t c0 = 0; c0 < T; c0 += nc) {
            int64_t cn = min64(nc, T - c0);
            VQZ_TRY(im2col(st, &g, dy + n0 * ys, col, bn, c0, cn, ACT_NONE, op));
            if (dx)
                VQZ_TRY(gemm(st, op, CUBLAS_OP_N, CUBLAS_OP_N, cn, Ci, K, 1.0f, col, cn, K * cn, w, K, 0, 0.0f,
                             dx + n0 * xs + c0, T, xs, bn));
            if (dw)
                for (int64_t i = 0; i < bn; i++)
                    VQZ_TRY(gemm(st, op, CUBLAS_OP_T, CUBLAS_OP_N, K, Ci, cn, 1.0f, col + i * K * cn, cn, 0,
                                 x + (n0 + i) * xs + c0, T, 0, 1.0f, dw, K, 0, 1));
        }
    }
    return VQZ_OK;
}
