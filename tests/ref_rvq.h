// ref_rvq.h — naive reference of the residual vector quantizer (tests only): brute-force nearest
// codeword in double, decode, commitment loss with fixed indices, and the EMA update formula of
// nn/rvq.h in double. Latents are [N][D][S], indices [level][N][S], codebooks [L][K][D].
#ifndef VQZ_TESTS_REF_RVQ_H
#define VQZ_TESTS_REF_RVQ_H

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

// Squared distance in double, summed in ascending d (the order the library's exact re-check uses).
inline double ref_dist2(const float *r, int64_t stride, const float *c, int D)
{
    double s = 0;
    for (int d = 0; d < D; d++) {
        double e = (double)r[d * stride] - (double)c[d];
        s += e * e;
    }
    return s;
}

struct RefEncodeStats {
    int64_t near_ties = 0;   // columns whose two best distances differ by < 1e-5 relative
    double min_rel_gap = INFINITY;
};

// Brute-force encode: for each level, every codeword's distance in double, argmin with ties to the
// lowest index; the residual is carried in float (r -= c), as the library defines it. xq (optional)
// gets the float sum of chosen codewords in level order. Returns the per-level sums of squared
// residuals after each level (double) in sq (optional, [n_levels]).
inline void ref_rvq_encode(const float *x, int64_t N, int D, int64_t S, const float *cb, int K, int n_levels,
                           int32_t *idx, float *xq, double *sq, RefEncodeStats *stats)
{
    std::vector<float> r(x, x + N * D * S);
    if (xq)
        for (int64_t i = 0; i < N * D * S; i++)
            xq[i] = 0.0f;
    for (int l = 0; l < n_levels; l++) {
        const float *C = cb + (size_t)l * K * D;
        double lev = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < S; s++) {
                float *rc = r.data() + n * D * S + s;
                double best = INFINITY, second = INFINITY;
                int32_t arg = 0;
                for (int k = 0; k < K; k++) {
                    double d2 = ref_dist2(rc, S, C + (size_t)k * D, D);
                    if (d2 < best) {
                        second = best;
                        best = d2;
                        arg = k;
                    } else if (d2 < second) {
                        second = d2;
                    }
                }
                if (stats && K > 1) {
                    // the gap relative to the size of the values a float search compares
                    double norm2 = 0;
                    for (int d = 0; d < D; d++)
                        norm2 += (double)rc[d * S] * rc[d * S];
                    double rel = (second - best) / std::fmax(norm2 + best, 1e-30);
                    if (rel < 1e-5)
                        stats->near_ties++;
                    stats->min_rel_gap = std::fmin(stats->min_rel_gap, rel);
                }
                idx[((int64_t)l * N + n) * S + s] = arg;
                const float *c = C + (size_t)arg * D;
                for (int d = 0; d < D; d++) {
                    rc[d * S] -= c[d];
                    lev += (double)rc[d * S] * rc[d * S];
                    if (xq)
                        xq[n * D * S + d * S + s] += c[d];
                }
            }
        if (sq)
            sq[l] = lev;
    }
}

// xq = sum over levels of the chosen codewords, in float, level order.
inline void ref_rvq_decode(const int32_t *idx, int64_t N, int D, int64_t S, const float *cb, int K, int n_levels,
                           float *xq)
{
    for (int64_t n = 0; n < N; n++)
        for (int d = 0; d < D; d++)
            for (int64_t s = 0; s < S; s++) {
                float acc = 0.0f;
                for (int l = 0; l < n_levels; l++)
                    acc += cb[((size_t)l * K + idx[((int64_t)l * N + n) * S + s]) * D + d];
                xq[(n * D + d) * S + s] = acc;
            }
}

// Commitment loss with the indices held fixed, all in double:
//   beta / n_levels * sum_l mean((r_l - q_l)^2),  r_{l+1} = r_l - q_l.
inline double ref_rvq_commit(const double *x, int64_t N, int D, int64_t S, const float *cb, int K,
                             const int32_t *idx, int n_levels, double beta)
{
    double total = 0;
    for (int64_t n = 0; n < N; n++)
        for (int d = 0; d < D; d++)
            for (int64_t s = 0; s < S; s++) {
                double r = x[(n * D + d) * S + s];
                for (int l = 0; l < n_levels; l++) {
                    r -= cb[((size_t)l * K + idx[((int64_t)l * N + n) * S + s]) * D + d];
                    total += r * r;
                }
            }
    return beta / n_levels * total / (double)(N * D * S);
}

// Residual of level l (0-based) of column (n, s), computed as the library does (float, level order).
inline std::vector<float> ref_rvq_residual(const float *x, int64_t N, int D, int64_t S, const float *cb, int K,
                                           const int32_t *idx, int l, int64_t n, int64_t s)
{
    std::vector<float> r(D);
    for (int d = 0; d < D; d++)
        r[d] = x[(n * D + d) * S + s];
    for (int j = 0; j < l; j++) {
        const float *c = cb + ((size_t)j * K + idx[((int64_t)j * N + n) * S + s]) * D;
        for (int d = 0; d < D; d++)
            r[d] -= c[d];
    }
    return r;
}

// EMA state in double.
struct RefEma {
    int L, K, D;
    std::vector<double> cb, count, sum;
};

// One EMA step of the first n_levels levels, in double, no restarts (nn/rvq.h):
//   count = decay count + (1-decay) n_k;  sum = decay sum + (1-decay) sum_{assigned} r_l
//   codeword = sum / ((count + eps) / (total + K eps) * total)
// Residuals use the codebooks the batch was encoded with (cb_used, float, as the library holds them).
inline void ref_rvq_ema_step(RefEma &e, const float *x, int64_t N, int64_t S, const float *cb_used,
                             const int32_t *idx, int n_levels, double decay, double eps)
{
    const int K = e.K, D = e.D;
    for (int l = 0; l < n_levels; l++) {
        std::vector<double> nk(K, 0.0), sk((size_t)K * D, 0.0);
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < S; s++) {
                int32_t k = idx[((int64_t)l * N + n) * S + s];
                std::vector<float> r = ref_rvq_residual(x, N, D, S, cb_used, K, idx, l, n, s);
                nk[k] += 1;
                for (int d = 0; d < D; d++)
                    sk[(size_t)k * D + d] += r[d];
            }
        double total = 0;
        for (int k = 0; k < K; k++) {
            double &c = e.count[(size_t)l * K + k];
            c = decay * c + (1 - decay) * nk[k];
            total += c;
        }
        for (int k = 0; k < K; k++) {
            double c = e.count[(size_t)l * K + k];
            double denom = (c + eps) / (total + K * eps) * total;
            for (int d = 0; d < D; d++) {
                double &sm = e.sum[((size_t)l * K + k) * D + d];
                sm = decay * sm + (1 - decay) * sk[(size_t)k * D + d];
                e.cb[((size_t)l * K + k) * D + d] = sm / denom;
            }
        }
    }
}

#endif
