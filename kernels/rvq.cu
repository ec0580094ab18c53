/* rvq.cu — the CUDA residual vector quantizer: encode with the CPU search's exact choices (nn/rvq.c:
 * cuBLAS SGEMM, float argmin, exact double re-check of near ties) and decode. */
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

#define THREADS 256
#define TASK_COLS 128            /* nn/rvq.c's BLK: the commit sum follows the CPU's tasks, so it matches */
#define CHUNK_BYTES (256u << 20) /* distances [K][chunk] plus residual [D][chunk] stay within this */
#define COLS 32                  /* argmin block: COLS columns x SLICES k ranges */
#define SLICES 8

#define GRID_LOOP(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* Results read back once, at the end of an encode. */
typedef struct {
    unsigned long long bad_x; /* first non-finite element of x, ~0 when none */
    int bad_cb;               /* first codeword (l K + k) whose norm is not finite, levels K when none */
    double commit;
} rvq_info;

/* Float arithmetic that must round as the CPU's does: nn/ is compiled as ISO C11, which GCC builds without
 * contracting a * b + c into an FMA, while nvcc contracts by default; the _rn intrinsics are never fused. */
#define FADD(a, b) __fadd_rn((a), (b))
#define FMUL(a, b) __fmul_rn((a), (b))

/* ------------------------------------------------------------------------------ codebook tables */

__global__ static void info_init_k(rvq_info *info, int ncb)
{
    info->bad_x = ~0ull;
    info->bad_cb = ncb;
    info->commit = 0.0;
}

/* cn[i] = ||c_i||^2 summed in double, rounded to float (codebook_norms); a non-finite one is flagged. */
__global__ static void norms_k(const float *cb, int64_t ncb, int D, float *cn, rvq_info *info)
{
    GRID_LOOP(i, ncb) {
        const float *c = cb + i * D;
        double s = 0.0;
        for (int d = 0; d < D; d++)
            s = __dadd_rn(s, __dmul_rn((double)c[d], (double)c[d]));
        const float f = (float)s;
        cn[i] = f;
        if (!isfinite(f))
            atomicMin(&info->bad_cb, (int)i);
    }
}

/* cmax[l] = sqrt of the largest norm of level l; one block per level (a max is exact in any order). */
__global__ static void cmax_k(const float *cn, int K, float *cmax)
{
    __shared__ float sh[THREADS];
    const float *c = cn + (int64_t)blockIdx.x * K;
    float m = 0.0f;
    for (int k = threadIdx.x; k < K; k += blockDim.x)
        m = fmaxf(m, c[k]);
    sh[threadIdx.x] = m;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w)
            sh[threadIdx.x] = fmaxf(sh[threadIdx.x], sh[threadIdx.x + w]);
        __syncthreads();
    }
    if (threadIdx.x == 0)
        cmax[blockIdx.x] = __fsqrt_rn(sh[0]);
}

/* dup[i] = 1 when codeword i equals an earlier codeword of its level bit for bit (mark_duplicates).
 * Equal codewords have equal norm bits, which screens out almost every pair before the word compare. */
__global__ static void dup_k(const float *cb, const float *cn, int64_t ncb, int K, int D, uint8_t *dup)
{
    GRID_LOOP(i, ncb) {
        const unsigned *c = (const unsigned *)(cb + i * D);
        const unsigned h = __float_as_uint(cn[i]);
        int is = 0;
        for (int64_t e = i - i % K; e < i && !is; e++) {
            if (__float_as_uint(cn[e]) != h)
                continue;
            const unsigned *o = (const unsigned *)(cb + e * D);
            int d = 0;
            while (d < D && o[d] == c[d])
                d++;
            is = d == D;
        }
        dup[i] = (uint8_t)is;
    }
}

/* ---------------------------------------------------------------------------------- the search */

/* Columns p0 .. p0 + cols of x (column p = n S + s) into R[d][j] (leading dimension ld), with their
 * squared norms summed in float over ascending d as the CPU sums them; flags a non-finite x. */
__global__ static void gather_k(const float *x, int64_t S, int D, int64_t p0, int64_t cols, int64_t ld, float *R,
                                float *rn, rvq_info *info)
{
    GRID_LOOP(j, cols) {
        const int64_t p = p0 + j, n = p / S, s = p % S;
        const int64_t base = n * D * S + s;
        float acc = 0.0f;
        for (int d = 0; d < D; d++) {
            const float v = x[base + (int64_t)d * S];
            R[d * ld + j] = v;
            acc = FADD(acc, FMUL(v, v));
            if (!isfinite(v))
                atomicMin(&info->bad_x, (unsigned long long)(base + (int64_t)d * S));
        }
        rn[j] = acc;
    }
}

/* The CPU's error bound (search_run in nn/rvq.c), operation for operation: near-tie columns (b2 - b1 <= tol)
 * are re-checked against lim = b1 + tol. */
__device__ static int near_tie(float b1, float b2, float r2, float cm, float unit, float *lim)
{
    const float rr = __fsqrt_rn(r2);
    const float eg = FMUL(unit, FADD(FMUL(cm, cm), FMUL(FMUL(2.0f, cm), rr)));
    const float bb = FADD(FADD(FADD(b1, r2), eg), FMUL(unit, r2));
    float rho = FADD(rr, __fsqrt_rn(bb > 0.0f ? bb : 0.0f));
    rho = rho < cm ? rho : cm;
    const float tol = FMUL(FMUL(2.0f, unit), FADD(FMUL(rho, rho), FMUL(FMUL(2.0f, rho), rr)));
    *lim = FADD(b1, tol);
    return __fsub_rn(b2, b1) <= tol;
}

/* Per column j of the chunk: argmin over k of v_k = dist[k][j] + cn[k] with the second-smallest value,
 * then, for a near tie, the exact re-check (recheck in nn/rvq.c). Thread (x, y) scans column x over the
 * y-th contiguous k range; the ranges are merged in k order, which gives exactly the single scan's
 * result: the lowest index of the minimum, the second-smallest value of the multiset, and in the
 * re-check the lowest index of the smallest exact distance. Writes the chosen index to out[j]. */
__global__ static void argmin_k(const float *dist, const float *cn, const uint8_t *dup, const float *C,
                                const float *R, const float *rn, const float *cmax, float unit, int K, int D,
                                int64_t ld, int64_t cols, int32_t *out)
{
    __shared__ float sb1[SLICES][COLS], sb2[SLICES][COLS];
    __shared__ int sa[SLICES][COLS];
    __shared__ double sbest[SLICES][COLS];
    __shared__ float slim[COLS];
    __shared__ int sneed[COLS];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int per = (K + SLICES - 1) / SLICES, k0 = ty * per, k1 = K - k0 < per ? K : k0 + per;
    const float cm = *cmax;
    for (int64_t j0 = (int64_t)blockIdx.x * COLS; j0 < cols; j0 += (int64_t)gridDim.x * COLS) {
        const int64_t j = j0 + tx;
        const int live = j < cols;
        float b1 = INFINITY, b2 = INFINITY;
        int a = 0;
        if (live)
            for (int k = k0; k < k1; k++) { /* argmin_block's update, verbatim */
                const float v = dist[k * ld + j] + cn[k];
                const float m = v > b1 ? v : b1;
                b2 = m < b2 ? m : b2;
                a = v < b1 ? k : a;
                b1 = v < b1 ? v : b1;
            }
        sb1[ty][tx] = b1;
        sb2[ty][tx] = b2;
        sa[ty][tx] = a;
        __syncthreads();
        if (ty == 0) {
            int need = 0;
            float lim = 0.0f;
            if (live) {
                for (int g = 1; g < SLICES; g++) {
                    const float gb1 = sb1[g][tx], hi = gb1 > b1 ? gb1 : b1;
                    b2 = fminf(hi, fminf(b2, sb2[g][tx]));
                    a = gb1 < b1 ? sa[g][tx] : a;
                    b1 = gb1 < b1 ? gb1 : b1;
                }
                need = near_tie(b1, b2, rn[j], cm, unit, &lim);
                if (!need)
                    out[j] = a;
            }
            sneed[tx] = need;
            slim[tx] = lim;
        }
        __syncthreads();
        double best = DBL_MAX;
        int arg = 0;
        if (live && sneed[tx]) {
            const float lim = slim[tx];
            for (int k = k0; k < k1; k++) {
                if (dup[k] || dist[k * ld + j] + cn[k] > lim)
                    continue;
                const float *c = C + (int64_t)k * D;
                double s = 0.0;
                for (int d = 0; d < D; d++) {
                    const double e = __dsub_rn((double)R[d * ld + j], (double)c[d]);
                    s = __dadd_rn(s, __dmul_rn(e, e));
                }
                if (s < best) {
                    best = s;
                    arg = k;
                }
            }
        }
        sbest[ty][tx] = best;
        sa[ty][tx] = arg;
        __syncthreads();
        if (ty == 0 && live && sneed[tx]) {
            best = DBL_MAX;
            arg = 0;
            for (int g = 0; g < SLICES; g++)
                if (sbest[g][tx] < best) {
                    best = sbest[g][tx];
                    arg = sa[g][tx];
                }
            out[j] = arg;
        }
        __syncthreads(); /* the shared arrays are reused by the next column group */
    }
}

/* r -= c_arg, the residual's new squared norm (float, ascending d) and xq += c_arg (xq = 0 + c at the first
 * level, as the CPU's zeroed sum starts). */
__global__ static void update_k(const float *C, const int32_t *arg, int D, int64_t S, int64_t p0, int64_t cols,
                                int64_t ld, float *R, float *rn, float *xq, int first)
{
    GRID_LOOP(j, cols) {
        const float *c = C + (int64_t)arg[j] * D;
        const int64_t p = p0 + j, n = p / S, s = p % S;
        float *q = xq ? xq + n * D * S + s : NULL;
        float acc = 0.0f;
        for (int d = 0; d < D; d++) {
            const float cd = c[d];
            const float r = __fsub_rn(R[d * ld + j], cd);
            R[d * ld + j] = r;
            acc = FADD(acc, FMUL(r, r));
            if (q)
                q[(int64_t)d * S] = FADD(first ? 0.0f : q[(int64_t)d * S], cd);
        }
        rn[j] = acc;
    }
}

/* part[t] for the tasks t0 .. t0 + nt (each one batch item's TASK_COLS positions): the sum of their
 * columns' squared residual norms in double, in column order, as the CPU forms its per-task sq. */
__global__ static void task_sums_k(const float *rn, int64_t S, int64_t nblk, int64_t p0, int64_t t0, int64_t nt,
                                   double *part)
{
    GRID_LOOP(i, nt) {
        const int64_t t = t0 + i, s0 = (t % nblk) * TASK_COLS;
        const int64_t len = S - s0 < TASK_COLS ? S - s0 : TASK_COLS;
        const float *r = rn + ((t / nblk) * S + s0 - p0);
        double acc = 0.0;
        for (int64_t s = 0; s < len; s++)
            acc += r[s];
        part[t] = acc;
    }
}

/* commit = sum over levels of (sum over tasks of part), in the CPU's order; one thread. */
__global__ static void commit_k(const double *part, int levels, int64_t T, rvq_info *info)
{
    double total = 0.0;
    for (int l = 0; l < levels; l++) {
        double lev = 0.0;
        for (int64_t t = 0; t < T; t++)
            lev += part[(int64_t)l * T + t];
        total += lev;
    }
    info->commit = total;
}

/* ----------------------------------------------------------------------------------------- host */

static size_t align256(size_t b)
{
    return (b + 255) & ~(size_t)255;
}

/* First column of task t (t = T gives M). */
static int64_t task_start(int64_t t, int64_t nblk, int64_t S)
{
    return (t / nblk) * S + (t % nblk) * TASK_COLS;
}

/* The chunk after task t0: the most whole tasks whose columns fit in cap (one task always does). */
static int64_t chunk_end(int64_t t0, int64_t T, int64_t nblk, int64_t S, int64_t cap)
{
    const int64_t p0 = task_start(t0, nblk, S);
    int64_t lo = t0 + 1, hi = T;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo + 1) / 2;
        if (task_start(mid, nblk, S) - p0 <= cap)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

#define LAUNCHED VQZ_CUDA_LAUNCHED(op)

extern "C" vqz_status vqz_cuda_rvq_encode(void *st, const float *cb, int levels, int K, int D, const float *x,
                                          int64_t N, int64_t S, int32_t *idx, float *xq, double *commit)
{
    const char *op = "rvq_encode";
    cudaStream_t s = VQZ_CUDA_STREAM(st);
    if (commit)
        *commit = 0.0;
    const int64_t M = N * S, ncb = (int64_t)levels * K;
    if (M <= 0 || levels <= 0 || K <= 0 || D <= 0)
        return VQZ_OK;
    if (ncb >= INT_MAX)
        return vqz_fail(VQZ_ERR_LIMIT, "%s: %d levels of %d codewords exceed the search's limits", op, levels, K);
    const int64_t nblk = (S + TASK_COLS - 1) / TASK_COLS, T = N * nblk;
    /* Chunk capacity: dist [K][ld] and R [D][ld] within CHUNK_BYTES, whole tasks, so at least TASK_COLS. */
    int64_t cap = (int64_t)(CHUNK_BYTES / sizeof(float)) / ((int64_t)K + D + 1) / TASK_COLS * TASK_COLS;
    if (cap < TASK_COLS)
        cap = TASK_COLS;
    const int64_t ld = M < cap ? (M + 31) / 32 * 32 : cap;
    if (ld > INT_MAX)
        return vqz_fail(VQZ_ERR_LIMIT, "%s: a chunk of %lld columns exceeds cuBLAS's int sizes", op, (long long)ld);

    /* one workspace: cn | cmax | dup | info | part (commit only) | rn | R | dist, 256-byte aligned */
    const size_t o_cmax = align256((size_t)ncb * sizeof(float));
    const size_t o_dup = o_cmax + align256((size_t)levels * sizeof(float));
    const size_t o_info = o_dup + align256((size_t)ncb);
    const size_t o_part = o_info + align256(sizeof(rvq_info));
    const size_t o_rn = o_part + (commit ? align256((size_t)(levels * T) * sizeof(double)) : 0);
    const size_t o_R = o_rn + align256((size_t)ld * sizeof(float));
    const size_t o_dist = o_R + align256((size_t)(D * ld) * sizeof(float));
    const size_t bytes = o_dist + align256((size_t)(K * ld) * sizeof(float));
    void *ws;
    VQZ_TRY(vqz_cuda_workspace(st, bytes, &ws));
    char *b = (char *)ws;
    float *cn = (float *)b, *cmax = (float *)(b + o_cmax);
    uint8_t *dup = (uint8_t *)(b + o_dup);
    rvq_info *info = (rvq_info *)(b + o_info);
    double *part = (double *)(b + o_part);
    float *rn = (float *)(b + o_rn), *R = (float *)(b + o_R), *dist = (float *)(b + o_dist);

    info_init_k<<<1, 1, 0, s>>>(info, (int)ncb);
    LAUNCHED;
    norms_k<<<vqz_cuda_blocks(ncb, THREADS), THREADS, 0, s>>>(cb, ncb, D, cn, info);
    LAUNCHED;
    cmax_k<<<levels, THREADS, 0, s>>>(cn, K, cmax);
    LAUNCHED;
    dup_k<<<vqz_cuda_blocks(ncb, THREADS), THREADS, 0, s>>>(cb, cn, ncb, K, D, dup);
    LAUNCHED;

    const float unit = (float)(D + 4) * FLT_EPSILON; /* the CPU's bound, same float arithmetic */
    const float minus2 = -2.0f, zero = 0.0f;
    for (int64_t t0 = 0; t0 < T;) {
        const int64_t t1 = chunk_end(t0, T, nblk, S, ld);
        const int64_t p0 = task_start(t0, nblk, S), cols = task_start(t1, nblk, S) - p0;
        gather_k<<<vqz_cuda_blocks(cols, THREADS), THREADS, 0, s>>>(x, S, D, p0, cols, ld, R, rn, info);
        LAUNCHED;
        for (int l = 0; l < levels; l++) {
            const float *C = cb + (int64_t)l * K * D;
            int32_t *out = idx + (int64_t)l * M + p0;
            /* dist[K][ld] (row-major) = -2 C[K][D] R[D][ld]. Column-major, a row-major [r][c] matrix is its
             * c x r transpose with leading dimension c, so this is dist^T (cols x K, ldc ld) = R^T (cols x D,
             * lda ld) C^T (D x K, ldb D): no transposes. */
            VQZ_CUBLAS_CHECK(vqz_cublas.sgemm(VQZ_CUDA_BLAS(st), CUBLAS_OP_N, CUBLAS_OP_N, (int)cols, K, D, &minus2,
                                              R, (int)ld, C, D, &zero, dist, (int)ld),
                             op);
            argmin_k<<<vqz_cuda_blocks(cols, COLS), dim3(COLS, SLICES), 0, s>>>(
                dist, cn + (int64_t)l * K, dup + (int64_t)l * K, C, R, rn, cmax + l, unit, K, D, ld, cols, out);
            LAUNCHED;
            update_k<<<vqz_cuda_blocks(cols, THREADS), THREADS, 0, s>>>(C, out, D, S, p0, cols, ld, R, rn, xq,
                                                                        l == 0);
            LAUNCHED;
            if (commit) {
                task_sums_k<<<vqz_cuda_blocks(t1 - t0, THREADS), THREADS, 0, s>>>(rn, S, nblk, p0, t0, t1 - t0,
                                                                                 part + (int64_t)l * T);
                LAUNCHED;
            }
        }
        t0 = t1;
    }
    if (commit) {
        commit_k<<<1, 1, 0, s>>>(part, levels, T, info);
        LAUNCHED;
    }

    rvq_info h;
    VQZ_TRY(vqz_cuda_d2h(st, &h, info, sizeof h));
    if (h.bad_x != ~0ull)
        return vqz_fail(VQZ_ERR_NONFINITE, "%s: non-finite value at element %llu of x", op, h.bad_x);
    if (h.bad_cb < ncb)
        return vqz_fail(VQZ_ERR_NONFINITE, "%s: codeword %d of level %d is not finite (or its norm overflows)", op,
                        h.bad_cb % K, h.bad_cb / K);
    if (commit)
        *commit = h.commit;
    return VQZ_OK;
}

/* xq[n][d][s] = sum over levels, in level order from 0.0f, of cb[l][idx[l][n][s]][d]: bit for bit the
 * encode's xq and the CPU decode. */
__global__ static void decode_k(const float *cb, int levels, int K, int D, const int32_t *idx, int64_t S, int64_t M,
                                float *xq, int64_t n)
{
    GRID_LOOP(e, n) {
        const int64_t s = e % S, nd = e / S, d = nd % D, p = (nd / D) * S + s;
        float acc = 0.0f;
        for (int l = 0; l < levels; l++)
            acc = FADD(acc, cb[((int64_t)l * K + idx[(int64_t)l * M + p]) * D + d]);
        xq[e] = acc;
    }
}

extern "C" vqz_status vqz_cuda_rvq_decode(void *st, const float *cb, int levels, int K, int D, const int32_t *idx,
                                          int64_t N, int64_t S, float *xq)
{
    const char *op = "rvq_decode";
    const int64_t n = N * D * S;
    if (n <= 0)
        return VQZ_OK;
    decode_k<<<vqz_cuda_blocks(n, THREADS), THREADS, 0, VQZ_CUDA_STREAM(st)>>>(cb, levels, K, D, idx, S, N * S, xq, n);
    LAUNCHED;
    return VQZ_OK;
}
