/* rvq.c — the CPU residual vector quantizer: nearest-codeword search on OpenBLAS SGEMM with an exact
 * re-check of near ties, decode, commitment loss and gradient, EMA updates with dead-codeword
 * restarts, k-means++ initialisation, quantizer dropout and codebook-usage statistics.
 *
 * Search. For a block of columns X[D, B] of one batch item, one SGEMM gives G = -2 C X ([K, B]);
 * adding ||c_k||^2 gives ||x - c_k||^2 - ||x||^2, whose argmin over k is the nearest codeword. The
 * float rounding of that expression grows with ||x|| and ||c||, so where the best and second-best
 * values lie within a proven error bound of each other, the candidates are compared again exactly
 * (sum of squared differences in double): the chosen index is then the exact nearest codeword of
 * the float residual, ties to the lowest index, independent of thread count and BLAS kernel.
 * Each block runs every level itself (levels only chain within a column), in parallel over blocks
 * with single-threaded SGEMM calls; its residual and scratch stay in cache.
 *
 * Residuals: r_{l+1} = r_l - q_l in float, exactly as encode, train_bwd and ema_update compute them.
 * k-means: with fewer batch vectors than K, a level takes every vector once plus noisy repeats (no
 * Lloyd iterations); pass several batches at once (a larger N) for a real k-means.
 * Scratch: each call mallocs its workspace (a few MB at most); at K = 1024 that costs well under 1% of
 * an encode, measured, so no cache is kept between calls. */
#include "nn/rvq.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "common/status.h"
#ifdef VQZ_HAVE_CUDA
#include "kernels/cuda_ops.h"
#endif

/* Columns per search block: the K x BLK distance scratch (512 KB at K = 1024) stays in L2; 64..256
 * measured within a few % of each other, 512 clearly slower. */
#define BLK 128
/* Columns per argmin register tile. */
#define TILE 32

static void *alloc_aligned(size_t bytes)
{
    size_t rounded = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, rounded ? rounded : 64);
}

/* ------------------------------------------------------------------------------------ validation */

/* Encoding and decoding run on either device; the training steps of the quantizer on the CPU only. */
static vqz_status check_ctx(const char *op, const vqz_nn_ctx *ctx)
{
    VQZ_FAIL_IF(!ctx, VQZ_ERR_INVALID_ARG, "%s: ctx is NULL", op);
    VQZ_FAIL_IF(ctx->device == VQZ_CUDA, VQZ_ERR_NO_CUDA, "%s: quantizer training has no CUDA twin yet", op);
    return VQZ_OK;
}

static vqz_status check_ctx_any(const char *op, const vqz_nn_ctx *ctx)
{
    VQZ_FAIL_IF(!ctx, VQZ_ERR_INVALID_ARG, "%s: ctx is NULL", op);
    return VQZ_OK;
}

static vqz_status check_rvq(const char *op, const vqz_rvq *q)
{
    VQZ_FAIL_IF(!q, VQZ_ERR_INVALID_ARG, "%s: quantizer is NULL", op);
    VQZ_FAIL_IF(q->levels < 1 || q->K < 1 || q->D < 1, VQZ_ERR_INVALID_ARG,
                "%s: levels=%d, K=%d, D=%d must all be >= 1", op, q->levels, q->K, q->D);
    VQZ_FAIL_IF(!q->codebooks, VQZ_ERR_INVALID_ARG, "%s: codebooks is NULL", op);
    return VQZ_OK;
}

static vqz_status check_levels(const char *op, const vqz_rvq *q, int n_levels)
{
    VQZ_FAIL_IF(n_levels < 1 || n_levels > q->levels, VQZ_ERR_INVALID_ARG,
                "%s: n_levels=%d outside 1..%d", op, n_levels, q->levels);
    return VQZ_OK;
}

/* A latent [N, D, S...] on device dev: N and S = product of the trailing dims. */
static vqz_status latent_dims(vqz_dev dev, const char *op, const char *name, const vqz_rvq *q, const vqz_tensor *t,
                              int64_t *n, int64_t *s)
{
    VQZ_FAIL_IF(!t || !t->data, VQZ_ERR_INVALID_ARG, "%s: %s is NULL", op, name);
    VQZ_FAIL_IF(t->device != dev, VQZ_ERR_INVALID_ARG, "%s: %s is not a %s tensor", op, name,
                dev == VQZ_CUDA ? "CUDA" : "CPU");
    VQZ_FAIL_IF(t->ndim < 3 || t->ndim > 4, VQZ_ERR_SHAPE, "%s: %s must be [N,D,T] or [N,D,H,W], got %d dims",
                op, name, t->ndim);
    VQZ_FAIL_IF(t->shape[1] != q->D, VQZ_ERR_SHAPE, "%s: %s has %lld channels, codewords have D=%d", op, name,
                (long long)t->shape[1], q->D);
    int64_t len = 1;
    for (int i = 2; i < t->ndim; i++)
        len *= t->shape[i];
    VQZ_FAIL_IF(t->shape[0] < 1 || len < 1, VQZ_ERR_SHAPE, "%s: %s is empty (N=%lld, S=%lld)", op, name,
                (long long)t->shape[0], (long long)len);
    *n = t->shape[0];
    *s = len;
    return VQZ_OK;
}

static vqz_status check_same(const char *op, const char *name, const vqz_tensor *x, const vqz_tensor *t)
{
    VQZ_FAIL_IF(!t || !t->data, VQZ_ERR_INVALID_ARG, "%s: %s is NULL", op, name);
    VQZ_FAIL_IF(t->device != x->device, VQZ_ERR_INVALID_ARG, "%s: %s is not on x's device", op, name);
    if (!vqz_tensor_same_shape(x, t))
        return vqz_fail(VQZ_ERR_SHAPE, "%s: %s is [%lld,%lld,%lld,%lld] (%d dims), x is [%lld,%lld,%lld,%lld] (%d dims)",
                        op, name, (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2],
                        (long long)t->shape[3], t->ndim, (long long)x->shape[0], (long long)x->shape[1],
                        (long long)x->shape[2], (long long)x->shape[3], x->ndim);
    return VQZ_OK;
}

static vqz_status check_indices(const char *op, const int32_t *idx, int n_levels, int64_t n, int64_t s, int K)
{
    VQZ_FAIL_IF(!idx, VQZ_ERR_INVALID_ARG, "%s: idx is NULL", op);
    int64_t per_level = n * s;
    for (int l = 0; l < n_levels; l++)
        for (int64_t i = 0; i < per_level; i++) {
            int32_t v = idx[(int64_t)l * per_level + i];
            if (v < 0 || v >= K)
                return vqz_fail(VQZ_ERR_INDEX_RANGE,
                                "%s: index %d at level %d (0-based), item %lld, position %lld is outside [0, %d)",
                                op, (int)v, l, (long long)(i / s), (long long)(i % s), K);
        }
    return VQZ_OK;
}

/* ||c_k||^2 of each codeword of `levels` levels into cn[l][k], and the largest norm per level. A
 * non-finite (or overflowing) codeword is an error: the search cannot order it. */
static vqz_status codebook_norms(const char *op, const float *cb, int levels, int K, int D, float *cn,
                                 float *cmax)
{
    const int total = levels * K;
    int bad = total; /* first offending codeword, total when none */
    #pragma omp parallel for reduction(min : bad)
    for (int i = 0; i < total; i++) {
        const float *c = cb + (size_t)i * D;
        double s = 0;
        for (int d = 0; d < D; d++)
            s += (double)c[d] * c[d];
        cn[i] = (float)s;
        if (!isfinite(cn[i]) && i < bad)
            bad = i;
    }
    if (bad < total)
        return vqz_fail(VQZ_ERR_NONFINITE, "%s: codeword %d of level %d is not finite (or its norm overflows)",
                        op, bad % K, bad / K);
    for (int l = 0; l < levels; l++) {
        float m = 0;
        for (int k = 0; k < K; k++)
            m = cn[(int64_t)l * K + k] > m ? cn[(int64_t)l * K + k] : m;
        cmax[l] = sqrtf(m);
    }
    return VQZ_OK;
}

/* dup[k] = 1 when codeword k is a bit-exact copy of a lower-indexed one (found through a sort by hash).
 * Degenerate codebooks (k-means on a batch it memorised, repeated restarts) can hold hundreds of copies,
 * which would otherwise all be re-checked as ties. */
typedef struct {
    uint64_t h;
    int32_t k;
} hashed_codeword;

static int hashed_cmp(const void *a, const void *b)
{
    const hashed_codeword *x = a, *y = b;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return (x->k > y->k) - (x->k < y->k);
}

static vqz_status mark_duplicates(const char *op, const float *cb, int levels, int K, int D, uint8_t *dup)
{
    hashed_codeword *hk = malloc(sizeof(hashed_codeword) * (size_t)K);
    if (!hk)
        return vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory for K=%d", op, K);
    for (int l = 0; l < levels; l++) {
        const float *C = cb + (size_t)l * K * D;
        uint8_t *du = dup + (size_t)l * K;
        for (int k = 0; k < K; k++) {
            const float *c = C + (size_t)k * D;
            uint64_t h = 1469598103934665603ULL; /* FNV-1a over 32-bit words */
            for (int d = 0; d < D; d++) {
                uint32_t w;
                memcpy(&w, c + d, sizeof w);
                h = (h ^ w) * 1099511628211ULL;
            }
            hk[k].h = h;
            hk[k].k = k;
            du[k] = 0;
        }
        qsort(hk, (size_t)K, sizeof *hk, hashed_cmp);
        /* within a run of equal hashes (sorted by k), compare each member with the earlier originals */
        for (int i = 0; i < K;) {
            int e = i + 1;
            while (e < K && hk[e].h == hk[i].h)
                e++;
            for (int a = i + 1; a < e; a++)
                for (int b = i; b < a; b++)
                    if (!du[hk[b].k] &&
                        !memcmp(C + (size_t)hk[a].k * D, C + (size_t)hk[b].k * D, sizeof(float) * D)) {
                        du[hk[a].k] = 1;
                        break;
                    }
            i = e;
        }
    }
    free(hk);
    return VQZ_OK;
}

/* ---------------------------------------------------------------------------------------- search */

typedef struct {
    const float *cb;     /* [levels][K][D] */
    const float *cn;     /* [levels][K] */
    const float *cmax;   /* [levels] */
    const uint8_t *dup;  /* [levels][K] */
    int levels, K, D;
    const float *x;      /* [N][D][S] */
    int64_t N, S;
    int32_t *idx;        /* [levels][N][S] */
    float *xq;           /* [N][D][S] sum of chosen codewords, or NULL */
    float *res;          /* [N][D][S] residual after the last level, or NULL; may alias x */
    float *res_norm2;    /* [N][S] squared residual norm after the last level, or NULL */
    double *sq;          /* [tasks][levels] sum of squared residuals after each level, or NULL */
    int threads;
} search_job;

static int64_t search_tasks(int64_t N, int64_t S)
{
    return N * ((S + BLK - 1) / BLK);
}

/* Argmin over k of dist[k][j] + cn[k] for each column j < bsp (a multiple of TILE), with the
 * second-smallest value; ties keep the lowest k. */
static void argmin_block(const float *dist, const float *cn, int K, int bsp, int32_t *arg, float *b1o,
                         float *b2o)
{
    for (int j0 = 0; j0 < bsp; j0 += TILE) {
        float b1[TILE], b2[TILE];
        int32_t a[TILE];
        for (int j = 0; j < TILE; j++) {
            b1[j] = INFINITY;
            b2[j] = INFINITY;
            a[j] = 0;
        }
        for (int k = 0; k < K; k++) {
            const float *row = dist + (size_t)k * BLK + j0;
            const float ck = cn[k];
            #pragma omp simd
            for (int j = 0; j < TILE; j++) {
                float v = row[j] + ck;
                float m = v > b1[j] ? v : b1[j];
                /* the index update as a bit blend: compilers turn a conditional store into a branch */
                int32_t lt = -(int32_t)(v < b1[j]);
                b2[j] = m < b2[j] ? m : b2[j];
                a[j] = (a[j] & ~lt) | (k & lt);
                b1[j] = v < b1[j] ? v : b1[j];
            }
        }
        for (int j = 0; j < TILE; j++) {
            arg[j0 + j] = a[j];
            b1o[j0 + j] = b1[j];
            b2o[j0 + j] = b2[j];
        }
    }
}

/* Exact nearest codeword of column j of r among the candidates whose float value is within tol of
 * the float minimum b1 (the true minimum's float value is too). Exact copies of an earlier codeword
 * (dup[k]) are skipped: they tie with it and the lower index wins. The distance is summed in double in
 * ascending d, a fixed order a twin implementation can reproduce. */
static int32_t recheck(const float *dist, const float *cn, const uint8_t *dup, const float *C, int K, int D,
                       const float *r, int j, float b1, float tol)
{
    double best = DBL_MAX;
    int32_t arg = 0;
    float lim = b1 + tol;
    for (int k = 0; k < K; k++) {
        if (dup[k] || dist[(size_t)k * BLK + j] + cn[k] > lim)
            continue;
        const float *c = C + (size_t)k * D;
        double s = 0;
        for (int d = 0; d < D; d++) {
            double e = (double)r[(size_t)d * BLK + j] - (double)c[d];
            s += e * e;
        }
        if (s < best) {
            best = s;
            arg = k;
        }
    }
    return arg;
}

static vqz_status search_run(const search_job *job)
{
    const int K = job->K, D = job->D;
    const int64_t S = job->S;
    const int64_t nblk = (S + BLK - 1) / BLK;
    const int64_t tasks = job->N * nblk;
    const int nt = job->threads;
    /* per thread: distances [K][BLK], residual and codeword sum [D][BLK], then 4 [BLK] vectors */
    const size_t per = (size_t)K * BLK + 2 * (size_t)D * BLK + 4 * BLK;
    float *ws = alloc_aligned(sizeof(float) * per * (size_t)nt);
    if (!ws)
        return vqz_fail(VQZ_ERR_NOMEM, "rvq search: cannot allocate %zu bytes of scratch", sizeof(float) * per * nt);
    /* Error bound of a float value v_k = ||c_k||^2 - 2 c_k.r against the exact f_k: one dot product of
     * D terms (gamma_D ||c|| ||r||), the rounded norm and the final addition, with a factor 2 of margin:
     *   |v_k - f_k| <= e(||c_k||) = unit (||c_k||^2 + 2 ||c_k|| ||r||).
     * With a the float argmin and b1 = v_a, f_a <= b1 + e(cmax). A codeword k can only tie or beat it if
     * ||c_k||^2 - 2 ||c_k|| ||r|| <= f_k <= b1 + e(cmax), i.e. ||c_k|| <= rho = ||r|| + sqrt(||r||^2 + b1
     * + e(cmax)). Every such k, a included, has error <= E = e(rho), so when the second-best value b2 >
     * b1 + 2E the float winner is the exact one; otherwise the codewords with v_k <= b1 + 2E are compared
     * again exactly. */
    const float unit = (float)(D + 4) * FLT_EPSILON;

    #pragma omp parallel num_threads(nt)
    {
        float *dist = ws + per * (size_t)omp_get_thread_num();
        float *r = dist + (size_t)K * BLK;
        float *qs = r + (size_t)D * BLK;
        float *rn = qs + (size_t)D * BLK;
        float *b1 = rn + BLK;
        float *b2 = b1 + BLK;
        int32_t *arg = (int32_t *)(b2 + BLK);

        #pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < tasks; t++) {
            const int64_t n = t / nblk, s0 = (t % nblk) * BLK;
            const int bs = (int)(S - s0 < BLK ? S - s0 : BLK);
            const int bsp = (bs + TILE - 1) / TILE * TILE;
            const float *xn = job->x + n * D * S + s0;
            for (int d = 0; d < D; d++) {
                memcpy(r + (size_t)d * BLK, xn + d * S, sizeof(float) * bs);
                for (int j = bs; j < bsp; j++)
                    r[(size_t)d * BLK + j] = 0;
            }
            if (job->xq)
                memset(qs, 0, sizeof(float) * D * BLK);
            for (int j = 0; j < bsp; j++)
                rn[j] = 0;
            for (int d = 0; d < D; d++) {
                #pragma omp simd
                for (int j = 0; j < bsp; j++)
                    rn[j] += r[(size_t)d * BLK + j] * r[(size_t)d * BLK + j];
            }

            for (int l = 0; l < job->levels; l++) {
                const float *C = job->cb + (size_t)l * K * D;
                const float *cn = job->cn + (size_t)l * K;
                const float cm = job->cmax[l];
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, bsp, D, -2.0f, C, D, r, BLK, 0.0f,
                            dist, BLK);
                argmin_block(dist, cn, K, bsp, arg, b1, b2);
                int32_t *out = job->idx + ((int64_t)l * job->N + n) * S + s0;
                for (int j = 0; j < bs; j++) {
                    /* A codeword can only beat the float winner if ||c|| <= rho (see the derivation
                     * above), so the error bound of the values that matter uses rho, not max ||c||. */
                    const float rr = sqrtf(rn[j]);
                    const float eg = unit * (cm * cm + 2.0f * cm * rr);
                    const float bb = b1[j] + rn[j] + eg + unit * rn[j];
                    float rho = rr + sqrtf(bb > 0 ? bb : 0);
                    rho = rho < cm ? rho : cm;
                    const float tol = 2.0f * unit * (rho * rho + 2.0f * rho * rr);
                    if (b2[j] - b1[j] <= tol)
                        arg[j] = recheck(dist, cn, job->dup + (size_t)l * K, C, K, D, r, j, b1[j], tol);
                    out[j] = arg[j];
                }
                /* next residual, its norms and the running sum of chosen codewords, row by row */
                for (int j = 0; j < bs; j++)
                    rn[j] = 0;
                for (int d = 0; d < D; d++) {
                    float *rd = r + (size_t)d * BLK, *qd = qs + (size_t)d * BLK;
                    for (int j = 0; j < bs; j++) {
                        const float c = C[(size_t)arg[j] * D + d];
                        rd[j] -= c;
                        rn[j] += rd[j] * rd[j];
                        if (job->xq)
                            qd[j] += c;
                    }
                }
                if (job->sq) {
                    double sq = 0;
                    for (int j = 0; j < bs; j++)
                        sq += rn[j];
                    job->sq[t * job->levels + l] = sq;
                }
            }

            if (job->xq) {
                float *dst = job->xq + n * D * S + s0;
                for (int d = 0; d < D; d++)
                    memcpy(dst + d * S, qs + (size_t)d * BLK, sizeof(float) * bs);
            }
            if (job->res) {
                float *dst = job->res + n * D * S + s0;
                for (int d = 0; d < D; d++)
                    memcpy(dst + d * S, r + (size_t)d * BLK, sizeof(float) * bs);
            }
            if (job->res_norm2)
                memcpy(job->res_norm2 + n * S + s0, rn, sizeof(float) * bs);
        }
    }
    free(ws);
    return VQZ_OK;
}

/* Validates a quantizer and latent for encode / train_fwd, computes codeword norms and runs the search. */
static vqz_status encode_common(const char *op, vqz_nn_ctx *ctx, const vqz_rvq *q, const vqz_tensor *x,
                                int n_levels, int32_t *idx, vqz_tensor *xq, double *commit_sum)
{
    int64_t N, S;
    VQZ_TRY(commit_sum ? check_ctx(op, ctx) : check_ctx_any(op, ctx));
    VQZ_TRY(check_rvq(op, q));
    VQZ_TRY(check_levels(op, q, n_levels));
    VQZ_TRY(latent_dims(ctx->device, op, "x", q, x, &N, &S));
    VQZ_FAIL_IF(!idx, VQZ_ERR_INVALID_ARG, "%s: idx is NULL", op);
    if (xq)
        VQZ_TRY(check_same(op, "xq", x, xq));
    if (ctx->device == VQZ_CUDA) {
        VQZ_TRY(vqz_nn_cuda_ready(ctx, op));
#ifdef VQZ_HAVE_CUDA
        /* the search itself reports a non-finite latent (VQZ_ERR_NONFINITE), as the CPU check below does */
        return vqz_cuda_rvq_encode(ctx->cuda, q->codebooks, n_levels, q->K, q->D, x->data, N, S, idx,
                                   xq ? xq->data : NULL, commit_sum);
#endif
    }
    vqz_nn_ctx_enter(ctx);
    VQZ_TRY(vqz_tensor_check_finite(x, op));

    const int K = q->K;
    float *cn = malloc(sizeof(float) * ((size_t)n_levels * K + n_levels));
    uint8_t *dup = malloc((size_t)n_levels * K);
    int64_t tasks = search_tasks(N, S);
    double *sq = commit_sum ? malloc(sizeof(double) * (size_t)tasks * n_levels) : NULL;
    if (!cn || !dup || (commit_sum && !sq)) {
        free(cn), free(dup), free(sq);
        return vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory", op);
    }
    float *cmax = cn + (size_t)n_levels * K;
    vqz_status st = codebook_norms(op, q->codebooks, n_levels, K, q->D, cn, cmax);
    if (st == VQZ_OK)
        st = mark_duplicates(op, q->codebooks, n_levels, K, q->D, dup);
    if (st == VQZ_OK) {
        search_job job = {q->codebooks, cn, cmax, dup, n_levels, K, q->D, x->data, N, S, idx,
                          xq ? xq->data : NULL, NULL, NULL, sq, ctx->threads};
        st = search_run(&job);
    }
    if (st == VQZ_OK && commit_sum) {
        /* summed in task order, so the loss does not depend on the thread count */
        double total = 0;
        for (int l = 0; l < n_levels; l++) {
            double lev = 0;
            for (int64_t t = 0; t < tasks; t++)
                lev += sq[t * n_levels + l];
            total += lev;
        }
        *commit_sum = total;
    }
    free(sq), free(dup), free(cn);
    return st;
}

vqz_status vqz_rvq_encode(vqz_nn_ctx *ctx, const vqz_rvq *q, const vqz_tensor *x, int n_levels, int32_t *idx,
                          vqz_tensor *xq)
{
    return encode_common("vqz_rvq_encode", ctx, q, x, n_levels, idx, xq, NULL);
}

vqz_status vqz_rvq_train_fwd(vqz_nn_ctx *ctx, const vqz_rvq *q, const vqz_tensor *x, int n_levels, float beta,
                             int32_t *idx, vqz_tensor *xq, double *commit)
{
    const char *op = "vqz_rvq_train_fwd";
    VQZ_FAIL_IF(!xq, VQZ_ERR_INVALID_ARG, "%s: xq is NULL", op);
    VQZ_FAIL_IF(!commit, VQZ_ERR_INVALID_ARG, "%s: commit is NULL", op);
    VQZ_FAIL_IF(!isfinite(beta), VQZ_ERR_INVALID_ARG, "%s: beta=%g is not finite", op, (double)beta);
    double sum = 0;
    VQZ_TRY(encode_common(op, ctx, q, x, n_levels, idx, xq, &sum));
    *commit = (double)beta / n_levels * sum / (double)vqz_tensor_numel(x);
    return VQZ_OK;
}

/* ---------------------------------------------------------------------------------------- decode */

vqz_status vqz_rvq_decode(vqz_nn_ctx *ctx, const vqz_rvq *q, const int32_t *idx, int n_levels, vqz_tensor *xq)
{
    const char *op = "vqz_rvq_decode";
    int64_t N, S;
    VQZ_TRY(check_ctx_any(op, ctx));
    VQZ_TRY(check_rvq(op, q));
    VQZ_TRY(check_levels(op, q, n_levels));
    VQZ_TRY(latent_dims(ctx->device, op, "xq", q, xq, &N, &S));
    if (ctx->device == VQZ_CUDA) {
        VQZ_TRY(vqz_nn_cuda_ready(ctx, op));
#ifdef VQZ_HAVE_CUDA
        /* the indices are checked on the host: an index >= K must not reach a kernel */
        VQZ_FAIL_IF(!idx, VQZ_ERR_INVALID_ARG, "%s: idx is NULL", op);
        size_t bytes = sizeof(int32_t) * (size_t)n_levels * (size_t)(N * S);
        int32_t *h = malloc(bytes ? bytes : 1);
        VQZ_FAIL_IF(!h, VQZ_ERR_NOMEM, "%s: out of memory", op);
        vqz_status st = vqz_cuda_d2h(ctx->cuda, h, idx, bytes);
        if (st == VQZ_OK)
            st = check_indices(op, h, n_levels, N, S, q->K);
        free(h);
        VQZ_TRY(st);
        return vqz_cuda_rvq_decode(ctx->cuda, q->codebooks, n_levels, q->K, q->D, idx, N, S, xq->data);
#endif
    }
    VQZ_TRY(check_indices(op, idx, n_levels, N, S, q->K));
    vqz_nn_ctx_enter(ctx);

    const int K = q->K, D = q->D;
    const int64_t nblk = (S + BLK - 1) / BLK;
    float *out = xq->data;
    /* levels summed in ascending order in float, as encode forms its xq: the two agree bit for bit */
    #pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < N * nblk; t++) {
        const int64_t n = t / nblk, s0 = (t % nblk) * BLK;
        const int bs = (int)(S - s0 < BLK ? S - s0 : BLK);
        float *o = out + n * D * S + s0;
        for (int d = 0; d < D; d++)
            memset(o + d * S, 0, sizeof(float) * bs);
        for (int l = 0; l < n_levels; l++) {
            const float *C = q->codebooks + (size_t)l * K * D;
            const int32_t *il = idx + ((int64_t)l * N + n) * S + s0;
            for (int d = 0; d < D; d++) {
                float *od = o + d * S;
                for (int j = 0; j < bs; j++)
                    od[j] += C[(size_t)il[j] * D + d];
            }
        }
    }
    return VQZ_OK;
}

/* ----------------------------------------------------------------------------------- train_bwd */

vqz_status vqz_rvq_train_bwd(vqz_nn_ctx *ctx, const vqz_rvq *q, const vqz_tensor *x, const int32_t *idx,
                             int n_levels, float beta, const vqz_tensor *dxq, vqz_tensor *dx)
{
    const char *op = "vqz_rvq_train_bwd";
    int64_t N, S;
    VQZ_TRY(check_ctx(op, ctx));
    VQZ_TRY(check_rvq(op, q));
    VQZ_TRY(check_levels(op, q, n_levels));
    VQZ_TRY(latent_dims(ctx->device, op, "x", q, x, &N, &S));
    VQZ_TRY(check_same(op, "dxq", x, dxq));
    VQZ_TRY(check_same(op, "dx", x, dx));
    VQZ_FAIL_IF(!isfinite(beta), VQZ_ERR_INVALID_ARG, "%s: beta=%g is not finite", op, (double)beta);
    VQZ_TRY(check_indices(op, idx, n_levels, N, S, q->K));
    vqz_nn_ctx_enter(ctx);

    const int K = q->K, D = q->D;
    const float scale = (float)(2.0 * beta / ((double)n_levels * (double)vqz_tensor_numel(x)));
    const float *xd = x->data, *g = dxq->data;
    float *o = dx->data;
    /* one row (n, d) per iteration: the residual chain r_{l+1} = r_l - q_l is rebuilt as encode built it */
    #pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < N * D; row++) {
        const int64_t n = row / D;
        const int d = (int)(row % D);
        const float *xr = xd + row * S;
        for (int64_t s = 0; s < S; s++) {
            float r = xr[s], acc = 0;
            for (int l = 0; l < n_levels; l++) {
                r -= q->codebooks[((size_t)l * K + idx[((int64_t)l * N + n) * S + s]) * D + d];
                acc += r;
            }
            o[row * S + s] = g[row * S + s] + scale * acc;
        }
    }
    return VQZ_OK;
}

/* ---------------------------------------------------------------------------------- EMA update */

/* Per-codeword sums of the batch columns assigned to each codeword, as sums[d][k] in double (d-major, so
 * the threads, split over d, never write the same cache line), and the counts. */
static void cluster_sums(const float *r, const int32_t *idx, int64_t N, int64_t S, int K, int D, double *sums,
                         int64_t *counts)
{
    memset(counts, 0, sizeof(int64_t) * K);
    for (int64_t i = 0; i < N * S; i++)
        counts[idx[i]]++;
    #pragma omp parallel for schedule(static)
    for (int d = 0; d < D; d++) {
        double *sd = sums + (size_t)d * K;
        memset(sd, 0, sizeof(double) * K);
        for (int64_t n = 0; n < N; n++) {
            const float *rr = r + (n * D + d) * S;
            const int32_t *in = idx + n * S;
            for (int64_t s = 0; s < S; s++)
                sd[in[s]] += rr[s];
        }
    }
}

/* r -= C[idx] column by column: the next level's residual. */
static void subtract_codewords(float *r, const float *C, const int32_t *idx, int64_t N, int64_t S, int D)
{
    #pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < N * D; row++) {
        const int64_t n = row / D;
        const int d = (int)(row % D);
        const int32_t *in = idx + n * S;
        float *rr = r + row * S;
        for (int64_t s = 0; s < S; s++)
            rr[s] -= C[(size_t)in[s] * D + d];
    }
}

static void copy_column(float *dst, const float *r, int64_t p, int64_t S, int D)
{
    const int64_t n = p / S, s = p % S;
    for (int d = 0; d < D; d++)
        dst[d] = r[(n * D + d) * S + s];
}

vqz_status vqz_rvq_ema_update(vqz_nn_ctx *ctx, vqz_rvq *q, const vqz_tensor *x, const int32_t *idx, int n_levels,
                              vqz_rng *rng, int *restarted)
{
    const char *op = "vqz_rvq_ema_update";
    int64_t N, S;
    VQZ_TRY(check_ctx(op, ctx));
    VQZ_TRY(check_rvq(op, q));
    VQZ_TRY(check_levels(op, q, n_levels));
    VQZ_FAIL_IF(!q->ema_count || !q->ema_sum, VQZ_ERR_INVALID_ARG, "%s: the quantizer has no EMA state", op);
    VQZ_FAIL_IF(!(q->decay >= 0 && q->decay <= 1), VQZ_ERR_INVALID_ARG, "%s: decay=%g outside [0, 1]", op,
                (double)q->decay);
    VQZ_FAIL_IF(!(q->eps >= 0) || !isfinite(q->eps), VQZ_ERR_INVALID_ARG, "%s: eps=%g must be >= 0", op,
                (double)q->eps);
    VQZ_FAIL_IF(!rng, VQZ_ERR_INVALID_ARG, "%s: rng is NULL", op);
    VQZ_TRY(latent_dims(ctx->device, op, "x", q, x, &N, &S));
    VQZ_TRY(check_indices(op, idx, n_levels, N, S, q->K));
    vqz_nn_ctx_enter(ctx);
    VQZ_TRY(vqz_tensor_check_finite(x, op));

    const int K = q->K, D = q->D;
    const int64_t M = N * S;
    float *r = malloc(sizeof(float) * (size_t)(M * D));
    float *old = malloc(sizeof(float) * (size_t)K * D);
    double *sums = malloc(sizeof(double) * (size_t)K * D);
    double *cnt = malloc(sizeof(double) * (size_t)K);
    int64_t *counts = malloc(sizeof(int64_t) * (size_t)K);
    if (!r || !old || !sums || !cnt || !counts) {
        free(r), free(old), free(sums), free(cnt), free(counts);
        return vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory for a batch of %lld vectors", op, (long long)M);
    }
    memcpy(r, x->data, sizeof(float) * (size_t)(M * D));
    const double decay = q->decay, eps = q->eps;

    for (int l = 0; l < q->levels; l++)
        if (restarted)
            restarted[l] = 0;
    /* Every level's residual is formed with the codebooks the batch was encoded with, so each level
     * learns from the residuals its search actually saw. */
    for (int l = 0; l < n_levels; l++) {
        float *C = q->codebooks + (size_t)l * K * D;
        float *ec = q->ema_count + (size_t)l * K;
        float *es = q->ema_sum + (size_t)l * K * D;
        const int32_t *il = idx + (int64_t)l * M;
        memcpy(old, C, sizeof(float) * (size_t)K * D);
        cluster_sums(r, il, N, S, K, D, sums, counts);

        double total = 0;
        for (int k = 0; k < K; k++) {
            cnt[k] = decay * ec[k] + (1 - decay) * (double)counts[k];
            total += cnt[k];
        }
        for (int k = 0; k < K; k++) {
            /* Laplace smoothing keeps a codeword that lost all its vectors finite */
            double denom = (cnt[k] + eps) / (total + K * eps) * total;
            ec[k] = (float)cnt[k];
            for (int d = 0; d < D; d++) {
                double s = decay * es[(size_t)k * D + d] + (1 - decay) * sums[(size_t)d * K + k];
                es[(size_t)k * D + d] = (float)s;
                if (denom > 0)
                    C[(size_t)k * D + d] = (float)(s / denom);
            }
        }
        int nr = 0;
        for (int k = 0; k < K; k++) {
            if (!(ec[k] < q->dead_threshold))
                continue;
            /* A dead codeword splits the busiest one of those in the batch (as in LBG): it moves onto a
             * random batch vector of that codeword's cluster and takes half of its statistics. New
             * codewords thus go where usage is most uneven. Only a codeword holding at least four times
             * the threshold is split, so that both halves start with twice the threshold: smaller splits
             * would die again within a few steps and be split again, over and over (a restart churn
             * seen at hundreds of restarts per step). Without such a codeword the dead one waits. */
            int busy = -1;
            for (int j = 0; j < K; j++)
                if (j != k && counts[j] > 0 && (busy < 0 || ec[j] > ec[busy]))
                    busy = j;
            if (busy < 0 || !(ec[busy] >= 4.0f * q->dead_threshold))
                continue;
            int64_t p = 0, pick = (int64_t)vqz_rng_below(rng, (uint64_t)counts[busy]);
            for (int64_t i = 0; i < M; i++)
                if (il[i] == busy && pick-- == 0) {
                    p = i;
                    break;
                }
            const float share = 0.5f * ec[busy];
            ec[busy] -= share;
            for (int d = 0; d < D; d++)
                es[(size_t)busy * D + d] *= 0.5f;
            copy_column(C + (size_t)k * D, r, p, S, D);
            ec[k] = share;
            for (int d = 0; d < D; d++)
                es[(size_t)k * D + d] = share * C[(size_t)k * D + d];
            nr++;
        }
        if (restarted)
            restarted[l] = nr;
        if (l + 1 < n_levels)
            subtract_codewords(r, old, il, N, S, D);
    }
    free(r), free(old), free(sums), free(cnt), free(counts);
    return VQZ_OK;
}

/* ----------------------------------------------------------------------------------- k-means */

/* Uniform double in [0, 1) with 53 random bits. */
static double uniform53(vqz_rng *rng)
{
    return (double)(vqz_rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* mind[i] = min(mind[i], ||r_i - c||^2) for every column i of r [N][D][S] (first = 1: plain assign). */
static void update_min_dist(const float *r, int64_t N, int64_t S, int D, const float *c, float *mind, int first)
{
    const int64_t nblk = (S + BLK - 1) / BLK;
    /* Serial on purpose: this runs once per centre (K times a level), and a parallel region per call
     * made k-means++ 4-7x slower on a loaded machine (1.4 s serial vs 5-10 s for [1,64,6144], L = 8). */
    for (int64_t t = 0; t < N * nblk; t++) {
        const int64_t n = t / nblk, s0 = (t % nblk) * BLK;
        const int bs = (int)(S - s0 < BLK ? S - s0 : BLK);
        float acc[BLK];
        for (int j = 0; j < bs; j++)
            acc[j] = 0;
        for (int d = 0; d < D; d++) {
            const float *rr = r + (n * D + d) * S + s0;
            const float cd = c[d];
            #pragma omp simd
            for (int j = 0; j < bs; j++) {
                float e = rr[j] - cd;
                acc[j] += e * e;
            }
        }
        float *m = mind + n * S + s0;
        #pragma omp simd
        for (int j = 0; j < bs; j++)
            m[j] = (first || acc[j] < m[j]) ? acc[j] : m[j];
    }
}

/* k-means++ seeding (Arthur & Vassilvitskii): the first centre uniformly, each next one with
 * probability proportional to the squared distance to its nearest chosen centre. */
static void kmeanspp_seed(const float *r, int64_t N, int64_t S, int K, int D, float *C, float *mind, vqz_rng *rng)
{
    const int64_t M = N * S;
    copy_column(C, r, (int64_t)vqz_rng_below(rng, (uint64_t)M), S, D);
    update_min_dist(r, N, S, D, C, mind, 1);
    for (int k = 1; k < K; k++) {
        double total = 0;
        for (int64_t i = 0; i < M; i++)
            total += mind[i];
        int64_t pick = -1;
        if (total > 0) {
            double u = uniform53(rng) * total, cum = 0;
            int64_t last = -1;
            for (int64_t i = 0; i < M; i++) {
                if (mind[i] <= 0)
                    continue;
                last = i;
                cum += mind[i];
                if (cum > u) {
                    pick = i;
                    break;
                }
            }
            if (pick < 0)
                pick = last; /* u landed past the rounded cumulative sum */
        } else {
            /* every vector already coincides with a centre */
            pick = (int64_t)vqz_rng_below(rng, (uint64_t)M);
        }
        float *c = C + (size_t)k * D;
        copy_column(c, r, pick, S, D);
        update_min_dist(r, N, S, D, c, mind, 0);
    }
}

/* Fewer vectors than codewords: every vector once (in random order), the remaining codewords are
 * random vectors again plus Gaussian noise of 1e-3 times the data's RMS, so no two codewords coincide. */
static void sample_with_repetition(const float *r, int64_t N, int64_t S, int K, int D, float *C, int64_t *perm,
                                   vqz_rng *rng)
{
    const int64_t M = N * S;
    double ss = 0;
    for (int64_t i = 0; i < M * D; i++)
        ss += (double)r[i] * r[i];
    double rms = sqrt(ss / (double)(M * D));
    float sigma = (float)(rms > 0 ? 1e-3 * rms : 1e-6);
    for (int64_t i = 0; i < M; i++)
        perm[i] = i;
    for (int k = 0; k < K; k++) {
        float *c = C + (size_t)k * D;
        if (k < M) {
            int64_t j = k + (int64_t)vqz_rng_below(rng, (uint64_t)(M - k));
            int64_t tmp = perm[k];
            perm[k] = perm[j];
            perm[j] = tmp;
            copy_column(c, r, perm[k], S, D);
        } else {
            copy_column(c, r, (int64_t)vqz_rng_below(rng, (uint64_t)M), S, D);
            for (int d = 0; d < D; d++)
                c[d] += sigma * vqz_rng_normal(rng);
        }
    }
}

vqz_status vqz_rvq_kmeans_init(vqz_nn_ctx *ctx, vqz_rvq *q, const vqz_tensor *x, int iters, vqz_rng *rng)
{
    const char *op = "vqz_rvq_kmeans_init";
    int64_t N, S;
    VQZ_TRY(check_ctx(op, ctx));
    VQZ_TRY(check_rvq(op, q));
    VQZ_FAIL_IF(iters < 0, VQZ_ERR_INVALID_ARG, "%s: iters=%d must be >= 0", op, iters);
    VQZ_FAIL_IF(!rng, VQZ_ERR_INVALID_ARG, "%s: rng is NULL", op);
    VQZ_TRY(latent_dims(ctx->device, op, "x", q, x, &N, &S));
    vqz_nn_ctx_enter(ctx);
    VQZ_TRY(vqz_tensor_check_finite(x, op));

    const int K = q->K, D = q->D;
    const int64_t M = N * S;
    float *r = malloc(sizeof(float) * (size_t)(M * D));
    float *mind = malloc(sizeof(float) * (size_t)M);
    int32_t *assign = malloc(sizeof(int32_t) * (size_t)M);
    double *sums = malloc(sizeof(double) * (size_t)K * D);
    int64_t *counts = malloc(sizeof(int64_t) * (size_t)K);
    float *cn = malloc(sizeof(float) * ((size_t)K + 1));
    uint8_t *dup = malloc((size_t)K);
    if (!r || !mind || !assign || !sums || !counts || !cn || !dup) {
        free(r), free(mind), free(assign), free(sums), free(counts), free(cn), free(dup);
        return vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory for a batch of %lld vectors", op, (long long)M);
    }
    memcpy(r, x->data, sizeof(float) * (size_t)(M * D));
    vqz_status st = VQZ_OK;

    for (int l = 0; l < q->levels && st == VQZ_OK; l++) {
        float *C = q->codebooks + (size_t)l * K * D;
        search_job job = {C, cn, cn + K, dup, 1, K, D, r, N, S, assign, NULL, NULL, mind, NULL, ctx->threads};
        if (M >= K) {
            kmeanspp_seed(r, N, S, K, D, C, mind, rng);
            /* Lloyd iterations; with fewer vectors than codewords they would only move duplicates */
            for (int it = 0; it < iters && st == VQZ_OK; it++) {
                st = codebook_norms(op, C, 1, K, D, cn, cn + K);
                if (st == VQZ_OK)
                    st = mark_duplicates(op, C, 1, K, D, dup);
                if (st == VQZ_OK)
                    st = search_run(&job);
                if (st != VQZ_OK)
                    break;
                cluster_sums(r, assign, N, S, K, D, sums, counts);
                for (int k = 0; k < K; k++) {
                    float *c = C + (size_t)k * D;
                    if (counts[k] > 0) {
                        for (int d = 0; d < D; d++)
                            c[d] = (float)(sums[(size_t)d * K + k] / (double)counts[k]);
                        continue;
                    }
                    /* an empty cluster takes over the vector farthest from its centre */
                    int64_t far = 0;
                    for (int64_t i = 1; i < M; i++)
                        if (mind[i] > mind[far])
                            far = i;
                    copy_column(c, r, far, S, D);
                    mind[far] = -1;
                }
            }
        } else {
            sample_with_repetition(r, N, S, K, D, C, counts, rng); /* M < K: counts[] holds a permutation */
        }
        if (st == VQZ_OK)
            st = codebook_norms(op, C, 1, K, D, cn, cn + K);
        if (st == VQZ_OK)
            st = mark_duplicates(op, C, 1, K, D, dup);
        if (st != VQZ_OK)
            break;
        /* final assignment: cluster sizes for the EMA state, and the residual for the next level */
        job.res = r;
        st = search_run(&job);
        if (st != VQZ_OK)
            break;
        if (q->ema_count && q->ema_sum) {
            memset(counts, 0, sizeof(int64_t) * K);
            for (int64_t i = 0; i < M; i++)
                counts[assign[i]]++;
            for (int k = 0; k < K; k++) {
                q->ema_count[(size_t)l * K + k] = (float)counts[k];
                for (int d = 0; d < D; d++)
                    q->ema_sum[((size_t)l * K + k) * D + d] = (float)((double)counts[k] * C[(size_t)k * D + d]);
            }
        }
    }
    free(r), free(mind), free(assign), free(sums), free(counts), free(cn), free(dup);
    return st;
}

/* ------------------------------------------------------------------------ dropout, usage stats */

int vqz_rvq_dropout_levels(vqz_rng *rng, int levels, float p)
{
    if (levels <= 1 || !rng)
        return levels;
    if (vqz_rng_uniform(rng) < p)
        return 1 + (int)vqz_rng_below(rng, (uint64_t)levels);
    return levels;
}

/* An empty batch (count 0) has perplexity 0 and all K codewords unused. */
vqz_status vqz_rvq_usage_of(const int32_t *idx_level, int64_t count, int K, vqz_rvq_usage *out)
{
    const char *op = "vqz_rvq_usage_of";
    VQZ_FAIL_IF(!out, VQZ_ERR_INVALID_ARG, "%s: out is NULL", op);
    VQZ_FAIL_IF(K < 1, VQZ_ERR_INVALID_ARG, "%s: K=%d must be >= 1", op, K);
    VQZ_FAIL_IF(count < 0, VQZ_ERR_INVALID_ARG, "%s: count=%lld must be >= 0", op, (long long)count);
    VQZ_FAIL_IF(count > 0 && !idx_level, VQZ_ERR_INVALID_ARG, "%s: idx is NULL", op);
    int64_t *hist = calloc((size_t)K, sizeof(int64_t));
    if (!hist)
        return vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory for K=%d", op, K);
    for (int64_t i = 0; i < count; i++) {
        int32_t v = idx_level[i];
        if (v < 0 || v >= K) {
            free(hist);
            return vqz_fail(VQZ_ERR_INDEX_RANGE, "%s: index %d at position %lld is outside [0, %d)", op, (int)v,
                            (long long)i, K);
        }
        hist[v]++;
    }
    double h = 0;
    int unused = 0;
    for (int k = 0; k < K; k++) {
        if (hist[k] == 0) {
            unused++;
            continue;
        }
        double p = (double)hist[k] / (double)count;
        h -= p * log(p);
    }
    free(hist);
    out->perplexity = count > 0 ? exp(h) : 0.0;
    out->unused = unused;
    return VQZ_OK;
}
