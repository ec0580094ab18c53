// test_rvq.cpp — the residual vector quantizer against the naive reference in ref_rvq.h: encode,
// decode, commitment loss and gradient, EMA updates and restarts, k-means++ init, dropout, usage.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "ref_rvq.h"
#include "testutil.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

extern "C" {
#include "common/status.h"
#include "nn/ctx.h"
#include "nn/rvq.h"
}

namespace {

struct Ctx {
    vqz_nn_ctx *ctx = nullptr;
    explicit Ctx(int threads = 2) { REQUIRE(vqz_nn_ctx_create(&ctx, VQZ_DEVICE_CPU, threads) == VQZ_OK); }
    ~Ctx() { vqz_nn_ctx_free(ctx); }
};

// A quantizer with its buffers.
struct Quant {
    std::vector<float> cb, count, sum;
    vqz_rvq q;
    Quant(int L, int K, int D, bool ema = false) : cb((size_t)L * K * D)
    {
        if (ema) {
            count.assign((size_t)L * K, 0.0f);
            sum.assign((size_t)L * K * D, 0.0f);
        }
        q.levels = L;
        q.K = K;
        q.D = D;
        q.codebooks = cb.data();
        q.ema_count = ema ? count.data() : nullptr;
        q.ema_sum = ema ? sum.data() : nullptr;
        q.decay = 0.99f;
        q.eps = 1e-5f;
        q.dead_threshold = 1.0f;
    }
    // copies point at their own buffers
    Quant(const Quant &o) : cb(o.cb), count(o.count), sum(o.sum), q(o.q)
    {
        q.codebooks = cb.data();
        q.ema_count = o.q.ema_count ? count.data() : nullptr;
        q.ema_sum = o.q.ema_sum ? sum.data() : nullptr;
    }
    Quant &operator=(const Quant &) = delete;
    // level l ~ N(0, scale^l)
    void randomize(vqz_rng *r, float scale = 0.5f)
    {
        float sd = 1.0f;
        for (int l = 0; l < q.levels; l++, sd *= scale)
            vqz_rng_fill_normal(r, cb.data() + (size_t)l * q.K * q.D, (int64_t)q.K * q.D, 0.0f, sd);
    }
};

// x[N][D][S]: a mixture of `centres` Gaussian clusters (centre spread cs, within-cluster sd).
std::vector<float> clustered(vqz_rng *r, const std::vector<float> &centres, int D, int64_t N, int64_t S, float sd)
{
    int nc = (int)(centres.size() / D);
    std::vector<float> x((size_t)(N * D * S));
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S; s++) {
            int c = (int)vqz_rng_below(r, (uint64_t)nc);
            for (int d = 0; d < D; d++)
                x[(size_t)((n * D + d) * S + s)] = centres[(size_t)c * D + d] + sd * vqz_rng_normal(r);
        }
    return x;
}

double mse(const std::vector<float> &a, const std::vector<float> &b)
{
    double s = 0;
    for (size_t i = 0; i < a.size(); i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s / (double)a.size();
}

double dist_to(const float *a, const float *b, int D)
{
    double s = 0;
    for (int d = 0; d < D; d++)
        s += ((double)a[d] - b[d]) * ((double)a[d] - b[d]);
    return std::sqrt(s);
}

} // namespace

TEST_CASE("rvq encode equals a brute-force double search, ties and all", "[rvq]")
{
    struct Case {
        int64_t N;
        int D;
        int64_t H, W; // W = 0: a 3-D latent [N, D, H]
        int K, L;
    };
    const Case cases[] = {{2, 16, 300, 0, 200, 3}, {1, 8, 7, 9, 37, 2}, {1, 64, 300, 0, 1024, 2}, {3, 5, 1, 0, 1, 2}};
    Ctx one(1), two(2);
    vqz_rng rng;
    vqz_rng_seed(&rng, 11);
    for (const Case &c : cases) {
        const int64_t S = c.W ? c.H * c.W : c.H;
        Quant qu(c.L, c.K, c.D);
        qu.randomize(&rng);
        std::vector<float> x = rand_vec(&rng, (size_t)(c.N * c.D * S), -1.5f, 1.5f);
        vqz_tensor xt = c.W ? vqz_t4(x.data(), c.N, c.D, c.H, c.W) : vqz_t3(x.data(), c.N, c.D, c.H);
        std::vector<float> xq(x.size()), xq_ref(x.size());
        vqz_tensor xqt = xt;
        xqt.data = xq.data();
        std::vector<int32_t> idx((size_t)(c.L * c.N * S)), idx1(idx.size()), idx_ref(idx.size());
        RefEncodeStats st;
        ref_rvq_encode(x.data(), c.N, c.D, S, qu.cb.data(), c.K, c.L, idx_ref.data(), xq_ref.data(), nullptr, &st);
        REQUIRE(vqz_rvq_encode(two.ctx, &qu.q, &xt, c.L, idx.data(), &xqt) == VQZ_OK);
        REQUIRE(vqz_rvq_encode(one.ctx, &qu.q, &xt, c.L, idx1.data(), nullptr) == VQZ_OK);
        int64_t mismatches = 0;
        for (size_t i = 0; i < idx.size(); i++)
            mismatches += idx[i] != idx_ref[i];
        std::printf("rvq encode N=%lld D=%d S=%lld K=%d L=%d: %lld near ties (rel gap < 1e-5, min %.3g), "
                    "%lld mismatches\n",
                    (long long)c.N, c.D, (long long)S, c.K, c.L, (long long)st.near_ties, st.min_rel_gap,
                    (long long)mismatches);
        REQUIRE(mismatches == 0);
        REQUIRE(idx1 == idx); // thread count does not change a choice
        REQUIRE(std::memcmp(xq.data(), xq_ref.data(), sizeof(float) * xq.size()) == 0);
    }
}

TEST_CASE("rvq encode stays exact where float distances cannot tell codewords apart", "[rvq]")
{
    // Everything sits near 1000 * ones: ||c||^2 - 2 c.x is ~3e7 with a float rounding of ~2, while the
    // distances differ by ~1e-3. A plain float argmin gets most columns wrong; the re-check must not.
    const int D = 32, K = 64, L = 2;
    const int64_t S = 400;
    vqz_rng rng;
    vqz_rng_seed(&rng, 5);
    Quant qu(L, K, D);
    for (size_t i = 0; i < (size_t)K * D; i++)
        qu.cb[i] = 1000.0f + 0.01f * vqz_rng_normal(&rng);
    for (size_t i = (size_t)K * D; i < qu.cb.size(); i++)
        qu.cb[i] = 0.01f * vqz_rng_normal(&rng);
    std::vector<float> x((size_t)(D * S));
    for (auto &v : x)
        v = 1000.0f + 0.01f * vqz_rng_normal(&rng);
    std::vector<int32_t> idx((size_t)(L * S)), ref(idx.size());
    ref_rvq_encode(x.data(), 1, D, S, qu.cb.data(), K, L, ref.data(), nullptr, nullptr, nullptr);
    Ctx c;
    vqz_tensor xt = vqz_t3(x.data(), 1, D, S);
    REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, L, idx.data(), nullptr) == VQZ_OK);
    REQUIRE(idx == ref);

    // the naive float expression really is wrong here (so this test can fail)
    int64_t wrong = 0;
    for (int64_t s = 0; s < S; s++) {
        float best = INFINITY;
        int arg = 0;
        for (int k = 0; k < K; k++) {
            float n2 = 0, dot = 0;
            for (int d = 0; d < D; d++) {
                n2 += qu.cb[(size_t)k * D + d] * qu.cb[(size_t)k * D + d];
                dot += qu.cb[(size_t)k * D + d] * x[(size_t)(d * S + s)];
            }
            float v = n2 - 2.0f * dot;
            if (v < best) {
                best = v;
                arg = k;
            }
        }
        wrong += arg != ref[(size_t)s];
    }
    std::printf("rvq large-offset data: a plain float argmin picks %lld of %lld codewords wrong, encode 0\n",
                (long long)wrong, (long long)S);
    REQUIRE(wrong > S / 4);
}

TEST_CASE("rvq ties go to the lowest index; duplicated codewords never win", "[rvq]")
{
    const int D = 4, K = 8;
    Quant qu(1, K, D);
    const float cw[K][D] = {{1, 0, 0, 0}, {-1, 0, 0, 0}, {0, 3, 0, 0}, {0, 0, 5, 0},
                            {0, 0, 0, 7}, {0, 3, 0, 0}, {0, -3, 0, 0}, {1, 0, 0, 0}};
    std::memcpy(qu.cb.data(), cw, sizeof cw);
    // columns: exactly codeword 5 (a copy of 2), the origin (distance 1 to codewords 0, 1 and 7), exactly
    // codeword 7 (a copy of 0), and a point at squared distance 18.5 from both codewords 3 and 4
    const int64_t S = 4;
    const float cols[S][D] = {{0, 3, 0, 0}, {0, 0, 0, 0}, {1, 0, 0, 0}, {0, 0, 2.5f, 3.5f}};
    std::vector<float> x((size_t)(D * S));
    for (int64_t s = 0; s < S; s++)
        for (int d = 0; d < D; d++)
            x[(size_t)(d * S + s)] = cols[s][d];
    std::vector<int32_t> idx(S), ref(S);
    ref_rvq_encode(x.data(), 1, D, S, qu.cb.data(), K, 1, ref.data(), nullptr, nullptr, nullptr);
    Ctx c;
    vqz_tensor xt = vqz_t3(x.data(), 1, D, S);
    REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, 1, idx.data(), nullptr) == VQZ_OK);
    REQUIRE(idx == ref);
    REQUIRE(idx[0] == 2);
    REQUIRE(idx[1] == 0);
    REQUIRE(idx[2] == 0);
    REQUIRE(idx[3] == 3);
}

TEST_CASE("rvq decode sums codewords; bad indices are named by level, item and position", "[rvq]")
{
    const int D = 6, K = 50, L = 3;
    const int64_t N = 2, S = 333;
    vqz_rng rng;
    vqz_rng_seed(&rng, 3);
    Quant qu(L, K, D);
    qu.randomize(&rng);
    std::vector<int32_t> idx((size_t)(L * N * S));
    for (auto &v : idx)
        v = (int32_t)vqz_rng_below(&rng, K);
    std::vector<float> xq((size_t)(N * D * S), 123.0f), ref(xq.size());
    vqz_tensor t = vqz_t3(xq.data(), N, D, S);
    Ctx c;
    for (int nl = 1; nl <= L; nl++) {
        REQUIRE(vqz_rvq_decode(c.ctx, &qu.q, idx.data(), nl, &t) == VQZ_OK);
        ref_rvq_decode(idx.data(), N, D, S, qu.cb.data(), K, nl, ref.data());
        REQUIRE(std::memcmp(xq.data(), ref.data(), sizeof(float) * xq.size()) == 0);
    }
    // encode then decode reproduces encode's xq bit for bit
    std::vector<float> x = rand_vec(&rng, xq.size());
    vqz_tensor xt = vqz_t3(x.data(), N, D, S);
    std::vector<float> xq_enc(xq.size());
    vqz_tensor et = vqz_t3(xq_enc.data(), N, D, S);
    REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, L, idx.data(), &et) == VQZ_OK);
    REQUIRE(vqz_rvq_decode(c.ctx, &qu.q, idx.data(), L, &t) == VQZ_OK);
    REQUIRE(std::memcmp(xq.data(), xq_enc.data(), sizeof(float) * xq.size()) == 0);

    idx[(size_t)((1 * N + 1) * S + 5)] = K; // level 1, item 1, position 5
    REQUIRE(vqz_rvq_decode(c.ctx, &qu.q, idx.data(), L, &t) == VQZ_ERR_INDEX_RANGE);
    std::string msg = vqz_last_error();
    INFO(msg);
    REQUIRE(msg.find("index 50") != std::string::npos);
    REQUIRE(msg.find("level 1") != std::string::npos);
    REQUIRE(msg.find("item 1") != std::string::npos);
    REQUIRE(msg.find("position 5") != std::string::npos);
    // a prefix of levels that excludes the bad one decodes
    REQUIRE(vqz_rvq_decode(c.ctx, &qu.q, idx.data(), 1, &t) == VQZ_OK);
    idx[(size_t)((1 * N + 1) * S + 5)] = 0;
    idx[(size_t)((2 * N + 0) * S + 17)] = -3;
    REQUIRE(vqz_rvq_decode(c.ctx, &qu.q, idx.data(), L, &t) == VQZ_ERR_INDEX_RANGE);
    msg = vqz_last_error();
    REQUIRE(msg.find("index -3 at level 2") != std::string::npos);
    REQUIRE(msg.find("position 17") != std::string::npos);
}

TEST_CASE("rvq residual levels: the error falls with every level; fewer levels are a prefix", "[rvq]")
{
    // three scales of clusters: each level has structure left to capture
    const int D = 8, K = 32, L = 4;
    const int64_t N = 2, S = 1500;
    vqz_rng rng;
    vqz_rng_seed(&rng, 21);
    std::vector<float> c1((size_t)16 * D), c2((size_t)16 * D);
    vqz_rng_fill_normal(&rng, c1.data(), (int64_t)c1.size(), 0.0f, 4.0f);
    vqz_rng_fill_normal(&rng, c2.data(), (int64_t)c2.size(), 0.0f, 1.0f);
    auto make = [&](int64_t n) {
        std::vector<float> a = clustered(&rng, c1, D, n, S, 0.0f), b = clustered(&rng, c2, D, n, S, 0.3f);
        for (size_t i = 0; i < a.size(); i++)
            a[i] += b[i];
        return a;
    };
    std::vector<float> train = make(N), x = make(N);
    Quant qu(L, K, D);
    Ctx c;
    vqz_tensor tt = vqz_t3(train.data(), N, D, S);
    REQUIRE(vqz_rvq_kmeans_init(c.ctx, &qu.q, &tt, 5, &rng) == VQZ_OK);

    vqz_tensor xt = vqz_t3(x.data(), N, D, S);
    std::vector<float> xq(x.size());
    vqz_tensor qt = vqz_t3(xq.data(), N, D, S);
    std::vector<int32_t> all((size_t)(L * N * S)), idx(all.size());
    REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, L, all.data(), nullptr) == VQZ_OK);
    std::vector<float> zero(x.size(), 0.0f);
    double prev = mse(x, zero);
    std::printf("rvq levels: data variance %.4f, mse after levels:", prev);
    for (int nl = 1; nl <= L; nl++) {
        REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, nl, idx.data(), &qt) == VQZ_OK);
        REQUIRE(std::equal(idx.begin(), idx.begin() + nl * N * S, all.begin()));
        double e = mse(x, xq);
        std::printf(" %.4f", e);
        REQUIRE(e < 0.8 * prev);
        prev = e;
    }
    std::printf("\n");
}

TEST_CASE("rvq train_fwd returns the commitment loss of the naive reference", "[rvq]")
{
    const int D = 12, K = 40, L = 3;
    const int64_t N = 2, S = 210;
    vqz_rng rng;
    vqz_rng_seed(&rng, 8);
    Quant qu(L, K, D);
    qu.randomize(&rng);
    std::vector<float> x = rand_vec(&rng, (size_t)(N * D * S));
    vqz_tensor xt = vqz_t3(x.data(), N, D, S);
    std::vector<float> xq(x.size()), xq_enc(x.size());
    vqz_tensor qt = vqz_t3(xq.data(), N, D, S), et = vqz_t3(xq_enc.data(), N, D, S);
    std::vector<int32_t> idx((size_t)(L * N * S)), idx_enc(idx.size()), ref(idx.size());
    std::vector<double> xd(x.begin(), x.end());
    Ctx c;
    for (int nl = 1; nl <= L; nl++) {
        double commit = -1, sq[L];
        REQUIRE(vqz_rvq_train_fwd(c.ctx, &qu.q, &xt, nl, 0.25f, idx.data(), &qt, &commit) == VQZ_OK);
        REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, nl, idx_enc.data(), &et) == VQZ_OK);
        REQUIRE(std::equal(idx.begin(), idx.begin() + nl * N * S, idx_enc.begin()));
        REQUIRE(xq == xq_enc);
        ref_rvq_encode(x.data(), N, D, S, qu.cb.data(), K, nl, ref.data(), nullptr, sq, nullptr);
        double want = 0;
        for (int l = 0; l < nl; l++)
            want += sq[l];
        want *= 0.25 / nl / (double)(N * D * S);
        double fixed = ref_rvq_commit(xd.data(), N, D, S, qu.cb.data(), K, idx.data(), nl, 0.25);
        std::printf("rvq commit (%d levels): %.9g, reference %.9g, rel err %.2g\n", nl, commit, want,
                    std::fabs(commit - want) / want);
        REQUIRE(std::fabs(commit - want) <= 1e-6 * want);
        REQUIRE(std::fabs(commit - fixed) <= 1e-5 * fixed);
    }
}

TEST_CASE("rvq train_bwd: straight-through plus the commitment gradient (finite differences)", "[rvq]")
{
    const int D = 4, K = 8, L = 3;
    const int64_t N = 2, S = 10;
    const float beta = 0.25f;
    vqz_rng rng;
    vqz_rng_seed(&rng, 13);
    Quant qu(L, K, D);
    qu.randomize(&rng);
    std::vector<float> x = rand_vec(&rng, (size_t)(N * D * S));
    vqz_tensor xt = vqz_t3(x.data(), N, D, S);
    std::vector<float> xq(x.size());
    vqz_tensor qt = vqz_t3(xq.data(), N, D, S);
    std::vector<int32_t> idx((size_t)(L * N * S));
    Ctx c;
    for (int nl = 1; nl <= L; nl++) {
        double commit;
        REQUIRE(vqz_rvq_train_fwd(c.ctx, &qu.q, &xt, nl, beta, idx.data(), &qt, &commit) == VQZ_OK);

        // commit gradient alone (dxq = 0) against central differences in double, indices held fixed
        std::vector<float> zero(x.size(), 0.0f), dx(x.size());
        vqz_tensor zt = vqz_t3(zero.data(), N, D, S), dt = vqz_t3(dx.data(), N, D, S);
        REQUIRE(vqz_rvq_train_bwd(c.ctx, &qu.q, &xt, idx.data(), nl, beta, &zt, &dt) == VQZ_OK);
        std::vector<double> xd(x.begin(), x.end()), fd(x.size());
        const double h = 1e-3;
        for (size_t i = 0; i < x.size(); i++) {
            double keep = xd[i];
            xd[i] = keep + h;
            double up = ref_rvq_commit(xd.data(), N, D, S, qu.cb.data(), K, idx.data(), nl, beta);
            xd[i] = keep - h;
            double dn = ref_rvq_commit(xd.data(), N, D, S, qu.cb.data(), K, idx.data(), nl, beta);
            xd[i] = keep;
            fd[i] = (up - dn) / (2 * h);
        }
        std::vector<double> got(dx.begin(), dx.end());
        double e = rel_err(got, fd);
        std::printf("rvq train_bwd (%d levels): rel err vs finite differences %.3g\n", nl, e);
        REQUIRE(e < 1e-5);

        // through the op itself: nudging one element moves train_fwd's commit by dx * h
        for (size_t i : {(size_t)0, (size_t)17, x.size() - 1}) {
            std::vector<float> xp = x, xm = x;
            const float hh = 1e-2f;
            xp[i] += hh;
            xm[i] -= hh;
            vqz_tensor pt = vqz_t3(xp.data(), N, D, S), mt = vqz_t3(xm.data(), N, D, S);
            std::vector<int32_t> ip(idx.size()), im(idx.size());
            double cp, cm;
            REQUIRE(vqz_rvq_train_fwd(c.ctx, &qu.q, &pt, nl, beta, ip.data(), &qt, &cp) == VQZ_OK);
            REQUIRE(vqz_rvq_train_fwd(c.ctx, &qu.q, &mt, nl, beta, im.data(), &qt, &cm) == VQZ_OK);
            if (!std::equal(ip.begin(), ip.begin() + nl * N * S, idx.begin()) ||
                !std::equal(im.begin(), im.begin() + nl * N * S, idx.begin()))
                continue; // the nudge changed a codeword choice: the loss is not smooth there
            double g = (cp - cm) / (2.0 * ((double)xp[i] - x[i]));
            REQUIRE(std::fabs(g - dx[i]) <= 1e-3 * std::fabs(dx[i]) + 1e-9);
        }

        // with a decoder gradient: dx = dxq + the same; dx may alias dxq
        std::vector<float> g = rand_vec(&rng, x.size()), out(x.size());
        vqz_tensor gt = vqz_t3(g.data(), N, D, S), ot = vqz_t3(out.data(), N, D, S);
        REQUIRE(vqz_rvq_train_bwd(c.ctx, &qu.q, &xt, idx.data(), nl, beta, &gt, &ot) == VQZ_OK);
        for (size_t i = 0; i < x.size(); i++)
            REQUIRE(out[i] == g[i] + dx[i]);
        REQUIRE(vqz_rvq_train_bwd(c.ctx, &qu.q, &xt, idx.data(), nl, beta, &gt, &gt) == VQZ_OK);
        REQUIRE(g == out);
    }
    idx[5] = K;
    std::vector<float> g(x.size()), dx(x.size());
    vqz_tensor gt = vqz_t3(g.data(), N, D, S), dt = vqz_t3(dx.data(), N, D, S);
    REQUIRE(vqz_rvq_train_bwd(c.ctx, &qu.q, &xt, idx.data(), L, beta, &gt, &dt) == VQZ_ERR_INDEX_RANGE);
}

TEST_CASE("rvq EMA update follows the formula in double, for one and several steps", "[rvq]")
{
    const int D = 8, K = 16, L = 3, NL = 2;
    const int64_t N = 2, S = 100;
    vqz_rng rng;
    vqz_rng_seed(&rng, 31);
    Quant qu(L, K, D, true);
    qu.randomize(&rng, 0.3f);
    qu.q.decay = 0.9f;
    qu.q.dead_threshold = -1.0f; // no restarts here
    for (int l = 0; l < L; l++)
        for (int k = 0; k < K; k++) {
            size_t i = (size_t)l * K + k;
            qu.count[i] = 1.0f + 4.0f * vqz_rng_uniform(&rng);
            for (int d = 0; d < D; d++)
                qu.sum[i * D + d] = qu.count[i] * qu.cb[i * D + d] + 0.1f * vqz_rng_normal(&rng);
        }
    // a codeword far from every vector: it gets no assignment and lives on the smoothing alone
    for (int d = 0; d < D; d++)
        qu.cb[(size_t)3 * D + d] = 100.0f;
    RefEma ref{L, K, D, {}, {}, {}};
    ref.cb.assign(qu.cb.begin(), qu.cb.end());
    ref.count.assign(qu.count.begin(), qu.count.end());
    ref.sum.assign(qu.sum.begin(), qu.sum.end());
    const std::vector<float> level2(qu.cb.begin() + 2 * K * D, qu.cb.end());

    Ctx c;
    std::vector<int32_t> idx((size_t)(NL * N * S));
    for (int step = 1; step <= 5; step++) {
        std::vector<float> x = rand_vec(&rng, (size_t)(N * D * S), -1.0f, 1.0f);
        vqz_tensor xt = vqz_t3(x.data(), N, D, S);
        REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, NL, idx.data(), nullptr) == VQZ_OK);
        if (step == 1)
            REQUIRE(std::count(idx.begin(), idx.begin() + N * S, 3) == 0);
        std::vector<float> used = qu.cb;
        ref_rvq_ema_step(ref, x.data(), N, S, used.data(), idx.data(), NL, qu.q.decay, qu.q.eps);
        int restarted[L] = {-1, -1, -1};
        REQUIRE(vqz_rvq_ema_update(c.ctx, &qu.q, &xt, idx.data(), NL, &rng, restarted) == VQZ_OK);
        REQUIRE(restarted[0] == 0);
        REQUIRE(restarted[1] == 0);
        REQUIRE(restarted[2] == 0);
        const size_t nlk = (size_t)NL * K;
        std::vector<double> cb(qu.cb.begin(), qu.cb.begin() + nlk * D), rcb(ref.cb.begin(), ref.cb.begin() + nlk * D);
        std::vector<double> cnt(qu.count.begin(), qu.count.begin() + nlk), rcnt(ref.count.begin(), ref.count.begin() + nlk);
        std::vector<double> sm(qu.sum.begin(), qu.sum.begin() + nlk * D), rsm(ref.sum.begin(), ref.sum.begin() + nlk * D);
        double e_cb = rel_err(cb, rcb), e_cnt = rel_err(cnt, rcnt), e_sum = rel_err(sm, rsm);
        // the starved codeword, on its own scale
        double e_far = std::fabs(qu.cb[(size_t)3 * D] - ref.cb[(size_t)3 * D]) / std::fabs(ref.cb[(size_t)3 * D]);
        std::printf("rvq EMA step %d: rel err codebooks %.2g, counts %.2g, sums %.2g, starved codeword %.2g\n",
                    step, e_cb, e_cnt, e_sum, e_far);
        REQUIRE(e_cb < 1e-5);
        REQUIRE(e_cnt < 1e-5);
        REQUIRE(e_sum < 1e-5);
        REQUIRE(e_far < 1e-5);
        REQUIRE(std::memcmp(qu.cb.data() + 2 * K * D, level2.data(), sizeof(float) * level2.size()) == 0);
    }
}

TEST_CASE("rvq dead codewords are restarted from batch residuals with half a busy codeword's statistics", "[rvq]")
{
    const int D = 4, K = 16, L = 3, NL = 2, DEAD = 5;
    const int64_t N = 2, S = 64;
    vqz_rng rng;
    vqz_rng_seed(&rng, 41);
    Quant qu(L, K, D, true);
    qu.randomize(&rng, 0.3f);
    qu.q.decay = 0.99f;
    qu.q.dead_threshold = 1.0f;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < K; k++) {
            size_t i = (size_t)l * K + k;
            bool dead = k >= K - DEAD;
            if (dead)
                for (int d = 0; d < D; d++)
                    qu.cb[i * D + d] = 50.0f + k; // never chosen
            qu.count[i] = dead ? 0.2f : 20.0f;
            for (int d = 0; d < D; d++)
                qu.sum[i * D + d] = qu.count[i] * qu.cb[i * D + d];
        }
    std::vector<float> x = rand_vec(&rng, (size_t)(N * D * S));
    vqz_tensor xt = vqz_t3(x.data(), N, D, S);
    std::vector<int32_t> idx((size_t)(NL * N * S));
    Ctx c;
    REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, NL, idx.data(), nullptr) == VQZ_OK);
    const Quant before = qu;
    vqz_rng r1;
    vqz_rng_seed(&r1, 99);
    int restarted[L] = {-1, -1, -1};
    REQUIRE(vqz_rvq_ema_update(c.ctx, &qu.q, &xt, idx.data(), NL, &r1, restarted) == VQZ_OK);
    REQUIRE(restarted[0] == DEAD);
    REQUIRE(restarted[1] == DEAD);
    REQUIRE(restarted[2] == 0);
    for (int l = 0; l < NL; l++) {
        for (int k = K - DEAD; k < K; k++) {
            size_t i = (size_t)l * K + k;
            const float *cw = qu.cb.data() + i * D;
            // half of a live codeword's count (about 10 here), and a sum that matches the codeword
            REQUIRE(qu.count[i] > 5.0f);
            for (int d = 0; d < D; d++)
                REQUIRE(qu.sum[i * D + d] == qu.count[i] * cw[d]);
            // the new codeword is one of this level's residuals (formed with the pre-update codebooks)
            bool found = false;
            for (int64_t n = 0; n < N && !found; n++)
                for (int64_t s = 0; s < S && !found; s++) {
                    std::vector<float> r =
                        ref_rvq_residual(x.data(), N, D, S, before.cb.data(), K, idx.data(), l, n, s);
                    found = std::memcmp(r.data(), cw, sizeof(float) * D) == 0;
                }
            REQUIRE(found);
        }
        for (int k = 0; k < K - DEAD; k++)
            REQUIRE(qu.count[(size_t)l * K + k] > 1.0f); // the live ones keep their EMA statistics
    }
    // level 2 is beyond n_levels: untouched
    REQUIRE(std::equal(qu.cb.begin() + 2 * K * D, qu.cb.end(), before.cb.begin() + 2 * K * D));
    REQUIRE(std::equal(qu.count.begin() + 2 * K, qu.count.end(), before.count.begin() + 2 * K));

    // the same generator state restarts the same way
    Quant again = before;
    vqz_rng_seed(&r1, 99);
    REQUIRE(vqz_rvq_ema_update(c.ctx, &again.q, &xt, idx.data(), NL, &r1, nullptr) == VQZ_OK);
    REQUIRE(again.cb == qu.cb);
    REQUIRE(again.count == qu.count);
    REQUIRE(again.sum == qu.sum);
}

TEST_CASE("rvq dead codewords split the busiest codeword's cluster", "[rvq]")
{
    // one level, two tight groups at (-1, 0) and (+1, 0) that all go to codeword 0 at the origin;
    // codewords 1-3 sit far away, unused, with counts under the threshold
    const int D = 2, K = 4;
    const int64_t N = 1, S = 200;
    Quant qu(1, K, D, true);
    qu.q.dead_threshold = 1.0f;
    for (int k = 1; k < K; k++) {
        qu.cb[(size_t)k * D] = 50.0f * k;
        qu.count[k] = 0.1f;
        qu.sum[(size_t)k * D] = 0.1f * 50.0f * k;
    }
    qu.count[0] = 200.0f; // its sum is 200 * (0, 0)
    vqz_rng rng;
    vqz_rng_seed(&rng, 7);
    std::vector<float> x((size_t)(D * S));
    for (int64_t s = 0; s < S; s++) {
        x[(size_t)s] = (s % 2 ? 1.0f : -1.0f) + 0.01f * (float)vqz_rng_normal(&rng);
        x[(size_t)(S + s)] = 0.01f * (float)vqz_rng_normal(&rng);
    }
    vqz_tensor xt = vqz_t3(x.data(), N, D, S);
    std::vector<int32_t> idx((size_t)S);
    Ctx c;
    REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, 1, idx.data(), nullptr) == VQZ_OK);
    REQUIRE(std::count(idx.begin(), idx.end(), 0) == S);
    int restarted = -1;
    REQUIRE(vqz_rvq_ema_update(c.ctx, &qu.q, &xt, idx.data(), 1, &rng, &restarted) == VQZ_OK);
    REQUIRE(restarted == K - 1);
    // each split halves the busiest codeword that has vectors in the batch (here codeword 0 every time,
    // without moving it), so the four counts add up to codeword 0's count before the splits
    float total = 0;
    for (int k = 0; k < K; k++)
        total += qu.count[k];
    REQUIRE(total == Approx(0.99 * 200.0 + 0.01 * S).epsilon(1e-5));
    REQUIRE(std::fabs(qu.cb[0]) < 0.05f); // codeword 0 stays at the origin
    REQUIRE(std::fabs(qu.cb[1]) < 0.05f);
    for (int k = 1; k < K; k++) {
        // each restarted codeword is one of the batch vectors, inside a group, not far away
        const float *cw = qu.cb.data() + (size_t)k * D;
        REQUIRE(std::fabs(std::fabs(cw[0]) - 1.0f) < 0.05f);
        REQUIRE(std::fabs(cw[1]) < 0.05f);
        REQUIRE(qu.count[k] > 20.0f);
    }
    // on the next encode, a group with a split codeword in it goes to that codeword: codeword 0 keeps
    // at most the other group
    REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, 1, idx.data(), nullptr) == VQZ_OK);
    REQUIRE(std::count(idx.begin(), idx.end(), 0) <= S / 2);

    // a codeword under four times the threshold is not split (its halves would die again at once):
    // the dead codewords wait
    Quant even(1, K, D, true);
    even.q.dead_threshold = 1.0f;
    for (int k = 0; k < K; k++) {
        even.cb[(size_t)k * D] = k == 0 ? 0.0f : 50.0f * k;
        even.count[k] = k == 0 ? 3.0f : 0.1f;
        even.sum[(size_t)k * D] = even.count[k] * even.cb[(size_t)k * D];
    }
    REQUIRE(vqz_rvq_encode(c.ctx, &even.q, &xt, 1, idx.data(), nullptr) == VQZ_OK);
    const Quant waiting = even;
    even.q.decay = 1.0f - 1.0f / S; // codeword 0's count becomes decay * 3 + (1 - decay) * S = 3.985
    REQUIRE(vqz_rvq_ema_update(c.ctx, &even.q, &xt, idx.data(), 1, &rng, &restarted) == VQZ_OK);
    REQUIRE(restarted == 0);
    REQUIRE(even.count[0] < 4.0f);
    for (int k = 1; k < K; k++) {
        // still far away, still dead (only the EMA's smoothing moves it, by a hair)
        REQUIRE(even.cb[(size_t)k * D] == Approx(waiting.cb[(size_t)k * D]).epsilon(1e-3));
        REQUIRE(even.count[k] < 0.1f);
    }
}

TEST_CASE("rvq k-means++ init recovers separated clusters and is fixed by the seed", "[rvq]")
{
    const int D = 8, K = 12;
    const int64_t N = 3, S = 400;
    vqz_rng rng;
    vqz_rng_seed(&rng, 51);
    std::vector<float> centres((size_t)K * D);
    vqz_rng_fill_uniform(&rng, centres.data(), (int64_t)centres.size(), -10.0f, 10.0f);
    std::vector<float> x = clustered(&rng, centres, D, N, S, 0.05f);
    vqz_tensor xt = vqz_t3(x.data(), N, D, S);
    Ctx c;

    Quant a(2, K, D, true), b(2, K, D, true);
    vqz_rng ra, rb;
    vqz_rng_seed(&ra, 7);
    vqz_rng_seed(&rb, 7);
    REQUIRE(vqz_rvq_kmeans_init(c.ctx, &a.q, &xt, 10, &ra) == VQZ_OK);
    REQUIRE(vqz_rvq_kmeans_init(c.ctx, &b.q, &xt, 10, &rb) == VQZ_OK);
    REQUIRE(a.cb == b.cb);
    REQUIRE(a.count == b.count);

    double worst = 0;
    for (int t = 0; t < K; t++) {
        double best = INFINITY;
        for (int k = 0; k < K; k++)
            best = std::fmin(best, dist_to(centres.data() + (size_t)t * D, a.cb.data() + (size_t)k * D, D));
        worst = std::fmax(worst, best);
    }
    std::printf("rvq k-means: farthest true centre is %.4f from a codeword (cluster sd 0.05)\n", worst);
    REQUIRE(worst < 0.1);

    // EMA state matches: counts are cluster sizes, sums count * centroid
    for (int l = 0; l < 2; l++) {
        double total = 0;
        for (int k = 0; k < K; k++) {
            size_t i = (size_t)l * K + k;
            total += a.count[i];
            for (int d = 0; d < D; d++)
                REQUIRE(a.sum[i * D + d] == Approx((double)a.count[i] * a.cb[i * D + d]).margin(1e-6));
        }
        REQUIRE(total == (double)(N * S));
    }
    // level 2 models the within-cluster noise
    std::vector<float> xq(x.size());
    vqz_tensor qt = vqz_t3(xq.data(), N, D, S);
    std::vector<int32_t> idx((size_t)(2 * N * S));
    REQUIRE(vqz_rvq_encode(c.ctx, &a.q, &xt, 1, idx.data(), &qt) == VQZ_OK);
    double e1 = mse(x, xq);
    REQUIRE(vqz_rvq_encode(c.ctx, &a.q, &xt, 2, idx.data(), &qt) == VQZ_OK);
    double e2 = mse(x, xq);
    REQUIRE(e1 < 0.05 * 0.05 * 1.2);
    REQUIRE(e2 < 0.9 * e1);

    // another seed: another codebook order, the same centres
    Quant o(1, K, D);
    vqz_rng_seed(&ra, 8);
    REQUIRE(vqz_rvq_kmeans_init(c.ctx, &o.q, &xt, 10, &ra) == VQZ_OK);
    REQUIRE(o.cb != std::vector<float>(a.cb.begin(), a.cb.begin() + K * D));
    for (int t = 0; t < K; t++) {
        double best = INFINITY;
        for (int k = 0; k < K; k++)
            best = std::fmin(best, dist_to(centres.data() + (size_t)t * D, o.cb.data() + (size_t)k * D, D));
        REQUIRE(best < 0.1);
    }
}

TEST_CASE("rvq k-means with fewer vectors than codewords samples them all, then noisy repeats", "[rvq]")
{
    const int D = 5, K = 32;
    const int64_t N = 2, S = 5; // 10 vectors
    vqz_rng rng;
    vqz_rng_seed(&rng, 61);
    std::vector<float> x = rand_vec(&rng, (size_t)(N * D * S));
    vqz_tensor xt = vqz_t3(x.data(), N, D, S);
    Quant a(2, K, D, true), b(2, K, D, true);
    Ctx c;
    vqz_rng ra, rb;
    vqz_rng_seed(&ra, 3);
    vqz_rng_seed(&rb, 3);
    REQUIRE(vqz_rvq_kmeans_init(c.ctx, &a.q, &xt, 5, &ra) == VQZ_OK);
    REQUIRE(vqz_rvq_kmeans_init(c.ctx, &b.q, &xt, 5, &rb) == VQZ_OK);
    REQUIRE(a.cb == b.cb);
    // every vector is a codeword of level 0, and no two codewords coincide
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S; s++) {
            std::vector<float> v = ref_rvq_residual(x.data(), N, D, S, a.cb.data(), K, nullptr, 0, n, s);
            bool found = false;
            for (int k = 0; k < K && !found; k++)
                found = std::memcmp(v.data(), a.cb.data() + (size_t)k * D, sizeof(float) * D) == 0;
            REQUIRE(found);
        }
    for (int k = 0; k < K; k++)
        for (int j = 0; j < k; j++)
            REQUIRE(std::memcmp(a.cb.data() + (size_t)k * D, a.cb.data() + (size_t)j * D, sizeof(float) * D) != 0);
    std::vector<float> xq(x.size());
    vqz_tensor qt = vqz_t3(xq.data(), N, D, S);
    std::vector<int32_t> idx((size_t)(N * S));
    REQUIRE(vqz_rvq_encode(c.ctx, &a.q, &xt, 1, idx.data(), &qt) == VQZ_OK);
    REQUIRE(xq == x);
}

TEST_CASE("rvq quantizer dropout draws the level count", "[rvq]")
{
    vqz_rng rng;
    vqz_rng_seed(&rng, 71);
    const int L = 8, n = 80000;
    for (int i = 0; i < 1000; i++)
        REQUIRE(vqz_rvq_dropout_levels(&rng, L, 0.0f) == L);
    REQUIRE(vqz_rvq_dropout_levels(&rng, 1, 1.0f) == 1);
    std::vector<int> hist(L + 1, 0);
    for (int i = 0; i < n; i++) {
        int l = vqz_rvq_dropout_levels(&rng, L, 1.0f);
        REQUIRE(l >= 1);
        REQUIRE(l <= L);
        hist[(size_t)l]++;
    }
    for (int l = 1; l <= L; l++)
        REQUIRE(std::abs(hist[(size_t)l] - n / L) < n / L / 20);
    int full = 0;
    for (int i = 0; i < n; i++)
        full += vqz_rvq_dropout_levels(&rng, L, 0.5f) == L;
    // P(L) = (1 - p) + p / L
    REQUIRE(std::fabs((double)full / n - (0.5 + 0.5 / L)) < 0.01);
}

TEST_CASE("rvq usage statistics: perplexity and unused codewords", "[rvq]")
{
    const int K = 64;
    vqz_rvq_usage u;
    std::vector<int32_t> idx;
    for (int i = 0; i < 10 * K; i++)
        idx.push_back(i % K);
    REQUIRE(vqz_rvq_usage_of(idx.data(), (int64_t)idx.size(), K, &u) == VQZ_OK);
    REQUIRE(u.perplexity == Approx(K).epsilon(1e-12));
    REQUIRE(u.unused == 0);
    // half the codes, uniformly
    for (auto &v : idx)
        v = v / 2 * 2;
    REQUIRE(vqz_rvq_usage_of(idx.data(), (int64_t)idx.size(), K, &u) == VQZ_OK);
    REQUIRE(u.perplexity == Approx(K / 2).epsilon(1e-12));
    REQUIRE(u.unused == K / 2);
    // one code
    std::fill(idx.begin(), idx.end(), 9);
    REQUIRE(vqz_rvq_usage_of(idx.data(), (int64_t)idx.size(), K, &u) == VQZ_OK);
    REQUIRE(u.perplexity == Approx(1.0).epsilon(1e-12));
    REQUIRE(u.unused == K - 1);
    // skewed: p = (3/4, 1/4): exp(H)
    for (size_t i = 0; i < idx.size(); i++)
        idx[i] = i % 4 == 0 ? 1 : 0;
    REQUIRE(vqz_rvq_usage_of(idx.data(), (int64_t)idx.size(), K, &u) == VQZ_OK);
    REQUIRE(u.perplexity == Approx(std::exp(-(0.75 * std::log(0.75) + 0.25 * std::log(0.25)))).epsilon(1e-12));
    idx[7] = K;
    REQUIRE(vqz_rvq_usage_of(idx.data(), (int64_t)idx.size(), K, &u) == VQZ_ERR_INDEX_RANGE);
    REQUIRE(std::string(vqz_last_error()).find("position 7") != std::string::npos);
    REQUIRE(vqz_rvq_usage_of(idx.data(), 0, K, &u) == VQZ_OK);
    REQUIRE(u.unused == K);
}

TEST_CASE("rvq rejects bad arguments, shapes, non-finite data and CUDA contexts", "[rvq]")
{
    const int D = 4, K = 8, L = 2;
    const int64_t S = 16;
    vqz_rng rng;
    vqz_rng_seed(&rng, 81);
    Quant qu(L, K, D);
    qu.randomize(&rng);
    std::vector<float> x = rand_vec(&rng, (size_t)(D * S));
    vqz_tensor xt = vqz_t3(x.data(), 1, D, S);
    std::vector<int32_t> idx((size_t)(L * S));
    Ctx c;
    REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, 0, idx.data(), nullptr) == VQZ_ERR_INVALID_ARG);
    REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, L + 1, idx.data(), nullptr) == VQZ_ERR_INVALID_ARG);
    REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, L, nullptr, nullptr) == VQZ_ERR_INVALID_ARG);
    vqz_tensor bad = vqz_t3(x.data(), 1, D - 1, S);
    REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &bad, L, idx.data(), nullptr) == VQZ_ERR_SHAPE);
    REQUIRE(std::string(vqz_last_error()).find("D=4") != std::string::npos);
    std::vector<float> xq(x.size() * 2);
    vqz_tensor qbad = vqz_t3(xq.data(), 2, D, S);
    REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, L, idx.data(), &qbad) == VQZ_ERR_SHAPE);
    vqz_tensor flat = vqz_t2(x.data(), D, S);
    REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &flat, L, idx.data(), nullptr) == VQZ_ERR_SHAPE);

    x[9] = NAN;
    REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, L, idx.data(), nullptr) == VQZ_ERR_NONFINITE);
    x[9] = 0.0f;
    qu.cb[(size_t)(K * D + 3 * D + 1)] = INFINITY; // level 1, codeword 3
    REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, L, idx.data(), nullptr) == VQZ_ERR_NONFINITE);
    REQUIRE(std::string(vqz_last_error()).find("codeword 3 of level 1") != std::string::npos);
    REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, 1, idx.data(), nullptr) == VQZ_OK); // level 1 unused
    qu.cb[(size_t)(K * D + 3 * D + 1)] = 0.0f;

    vqz_rng_seed(&rng, 1);
    REQUIRE(vqz_rvq_ema_update(c.ctx, &qu.q, &xt, idx.data(), L, &rng, nullptr) == VQZ_ERR_INVALID_ARG); // no EMA
    REQUIRE(vqz_rvq_kmeans_init(c.ctx, &qu.q, &xt, -1, &rng) == VQZ_ERR_INVALID_ARG);
    vqz_rvq_usage u;
    REQUIRE(vqz_rvq_usage_of(idx.data(), 4, 0, &u) == VQZ_ERR_INVALID_ARG);

    // A CUDA context without a device behind it: CPU latents are refused, CUDA-labelled ones reach the
    // dispatch, which refuses before touching them; quantizer training has no CUDA twin.
    vqz_nn_ctx cuda = *c.ctx;
    cuda.device = VQZ_CUDA;
    cuda.cuda = nullptr;
    REQUIRE(vqz_rvq_encode(&cuda, &qu.q, &xt, L, idx.data(), nullptr) == VQZ_ERR_INVALID_ARG);
    vqz_tensor xg = xt;
    xg.device = VQZ_CUDA;
    REQUIRE(vqz_rvq_encode(&cuda, &qu.q, &xg, L, idx.data(), nullptr) == VQZ_ERR_NO_CUDA);
    REQUIRE(vqz_rvq_decode(&cuda, &qu.q, idx.data(), L, &xg) == VQZ_ERR_NO_CUDA);
    REQUIRE(vqz_rvq_kmeans_init(&cuda, &qu.q, &xt, 1, &rng) == VQZ_ERR_NO_CUDA);
}

TEST_CASE("rvq encode speed at codec sizes (K = 1024, L = 8)", "[rvq]")
{
    struct Shape {
        const char *what;
        int D;
        int64_t S;
    };
    const Shape shapes[] = {{"768x512 image at f=8, [1,64,96*64]", 64, 96 * 64}, {"60 s audio at 75 Hz, [1,128,4500]", 128, 4500}};
    const int K = 1024, L = 8;
    if (RUNNING_ON_VALGRIND) {
        vqz_test_skip("timings mean nothing under valgrind (and take minutes)");
        return;
    }
    Ctx c(0);
    vqz_rng rng;
    vqz_rng_seed(&rng, 91);
    for (const Shape &sh : shapes) {
        Quant qu(L, K, sh.D);
        qu.randomize(&rng, 0.6f);
        std::vector<float> x = rand_vec(&rng, (size_t)(sh.D * sh.S), -1.0f, 1.0f);
        vqz_tensor xt = vqz_t3(x.data(), 1, sh.D, sh.S);
        std::vector<float> xq(x.size());
        vqz_tensor qt = vqz_t3(xq.data(), 1, sh.D, sh.S);
        std::vector<int32_t> idx((size_t)(L * sh.S));
        double best_enc = INFINITY, best_dec = INFINITY;
        for (int rep = 0; rep < 3; rep++) {
            auto t0 = std::chrono::steady_clock::now();
            REQUIRE(vqz_rvq_encode(c.ctx, &qu.q, &xt, L, idx.data(), &qt) == VQZ_OK);
            auto t1 = std::chrono::steady_clock::now();
            REQUIRE(vqz_rvq_decode(c.ctx, &qu.q, idx.data(), L, &qt) == VQZ_OK);
            auto t2 = std::chrono::steady_clock::now();
            best_enc = std::fmin(best_enc, std::chrono::duration<double>(t1 - t0).count());
            best_dec = std::fmin(best_dec, std::chrono::duration<double>(t2 - t1).count());
        }
        double flops = 2.0 * K * sh.D * (double)sh.S * L;
        std::printf("rvq encode %s, L=%d K=%d, %d threads: %.1f ms (%.0f GFLOP/s in the search GEMMs); decode %.2f ms\n",
                    sh.what, L, K, c.ctx->threads, best_enc * 1e3, flops / best_enc * 1e-9, best_dec * 1e3);
        // spot-check some columns against the brute force
        const int64_t cols = 40;
        std::vector<float> sub((size_t)(sh.D * cols));
        for (int d = 0; d < sh.D; d++)
            for (int64_t j = 0; j < cols; j++)
                sub[(size_t)(d * cols + j)] = x[(size_t)(d * sh.S + j * (sh.S / cols))];
        std::vector<int32_t> ref((size_t)(L * cols));
        ref_rvq_encode(sub.data(), 1, sh.D, cols, qu.cb.data(), K, L, ref.data(), nullptr, nullptr, nullptr);
        for (int l = 0; l < L; l++)
            for (int64_t j = 0; j < cols; j++)
                REQUIRE(idx[(size_t)(l * sh.S + j * (sh.S / cols))] == ref[(size_t)(l * cols + j)]);
    }
}
