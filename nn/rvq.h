/* rvq.h — residual vector quantizer: L levels of K codewords of dimension D. Encode (nearest codeword
 * on GEMM), decode (sum of codewords), the training forward/backward (straight-through estimator and
 * commitment loss), EMA codebook updates, k-means++ initialisation, dead-codeword restarts, quantizer
 * dropout and codebook-usage statistics.
 *
 * Latents are channels-first, as the encoder writes them: x[N, D, S] with S = H*W (images) or T
 * (audio). Indices are int32 laid out [level][n][s]. Level l quantizes the residual
 * r_l = x - sum_{j<l} q_j, where q_j is level j's chosen codeword. */
#ifndef VQZ_NN_RVQ_H
#define VQZ_NN_RVQ_H

#include <stdint.h>

#include "nn/ctx.h"
#include "nn/rng.h"

typedef struct {
    int levels;             /* L */
    int K;                  /* codewords per level */
    int D;                  /* codeword dimension */
    float *codebooks;       /* [L][K][D]; not owned */
    /* EMA state, training only (NULL for inference); not owned */
    float *ema_count;       /* [L][K] cluster sizes */
    float *ema_sum;         /* [L][K][D] running sums of assigned residuals */
    float decay;            /* EMA decay, 0.99 */
    float eps;              /* Laplace smoothing of counts, 1e-5 */
    float dead_threshold;   /* a codeword whose ema_count falls below this is restarted (e.g. 0.5..2) */
} vqz_rvq;

/* Nearest-codeword encode of the first n_levels levels (1..L). idx is [n_levels][N][S].
 * xq (optional, [N,D,S]) receives the sum of chosen codewords. Ties go to the lowest index. */
vqz_status vqz_rvq_encode(vqz_nn_ctx *ctx, const vqz_rvq *q, const vqz_tensor *x, int n_levels,
                          int32_t *idx, vqz_tensor *xq);

/* xq[N,D,S] = sum over the first n_levels of codebook[l][idx[l][n][s]]. Indices >= K or < 0 give
 * VQZ_ERR_INDEX_RANGE naming level and position. */
vqz_status vqz_rvq_decode(vqz_nn_ctx *ctx, const vqz_rvq *q, const int32_t *idx, int n_levels,
                          vqz_tensor *xq);

/* Training forward: encode as above, write xq, and return the commitment loss
 *   commit = beta * (1/n_levels) * sum_l mean((r_l - q_l)^2)        (codewords stop-gradient)
 * in *commit. */
vqz_status vqz_rvq_train_fwd(vqz_nn_ctx *ctx, const vqz_rvq *q, const vqz_tensor *x, int n_levels,
                             float beta, int32_t *idx, vqz_tensor *xq, double *commit);

/* Training backward: the decoder's gradient dxq passes straight through to the encoder output, plus
 * the commitment gradient: dx = dxq + beta * (1/n_levels) * sum_l 2 (r_l - q_l) / numel(x).
 * dx is overwritten; dx and dxq may alias. */
vqz_status vqz_rvq_train_bwd(vqz_nn_ctx *ctx, const vqz_rvq *q, const vqz_tensor *x, const int32_t *idx,
                             int n_levels, float beta, const vqz_tensor *dxq, vqz_tensor *dx);

/* EMA codebook update from a batch (x and the idx its encode produced), level by level:
 *   count = decay count + (1-decay) n_k;  sum = decay sum + (1-decay) sum_{assigned} r_l
 *   codeword = sum / ((count + eps) / (total + K eps) * total)
 * where total = sum_k count_k after this step's update, the residuals r_l are those of the encode that
 * produced idx (codebooks before this update), and ema_count keeps the unsmoothed counts;
 * then each codeword whose count < dead_threshold splits the level's busiest codeword among those the
 * batch chose (largest count), when that count is at least 4 * dead_threshold: it moves onto a residual
 * of the batch assigned to that codeword (drawn with rng) and takes half of its count and sum (count and
 * sum of the busiest halve; its codeword stays put). Otherwise it waits. *restarted (optional, [L]) gets the
 * number of restarts per level. Levels >= n_levels are left unchanged. */
vqz_status vqz_rvq_ema_update(vqz_nn_ctx *ctx, vqz_rvq *q, const vqz_tensor *x, const int32_t *idx,
                              int n_levels, vqz_rng *rng, int *restarted);

/* k-means++ seeding then `iters` Lloyd iterations, level by level on the residuals of x; sets the
 * codebooks and, when present, the EMA state to match (count = cluster size, sum = count * centroid). */
vqz_status vqz_rvq_kmeans_init(vqz_nn_ctx *ctx, vqz_rvq *q, const vqz_tensor *x, int iters, vqz_rng *rng);

/* Quantizer dropout: with probability p a uniform level count in [1, L], else L. */
int vqz_rvq_dropout_levels(vqz_rng *rng, int levels, float p);

/* Codebook usage of a batch of indices at one level: perplexity exp(H) of the empirical code
 * distribution and the number of codewords never used. */
typedef struct {
    double perplexity;
    int unused;
} vqz_rvq_usage;
vqz_status vqz_rvq_usage_of(const int32_t *idx_level, int64_t count, int K, vqz_rvq_usage *out);

#endif
