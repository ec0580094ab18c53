// test_adamw.cpp — AdamW steps against a double-precision loop of PyTorch's update, the warm-up + cosine
// schedule at its key steps, and global-norm clipping.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "testutil.h"

extern "C" {
#include "nn/adamw.h"
}

namespace {
struct Ctx {
    vqz_nn_ctx *c = nullptr;
    explicit Ctx(int threads = 2) { REQUIRE(vqz_nn_ctx_create(&c, VQZ_DEVICE_CPU, threads) == VQZ_OK); }
    ~Ctx() { vqz_nn_ctx_free(c); }
};
} // namespace

TEST_CASE("AdamW steps follow PyTorch's update computed in double", "[adamw]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 21);
    const int64_t n = 70001; // threaded, with a ragged tail
    const vqz_adamw_cfg cfg = {0.9f, 0.999f, 1e-8f};
    // small weights, so float rounding of p is far below the ~lr displacement that is being checked
    auto p = rand_vec(&r, (size_t)n, -1e-2f, 1e-2f);
    const auto p_init = p;
    std::vector<float> m((size_t)n, 0.0f), v((size_t)n, 0.0f);
    std::vector<double> pd(p.begin(), p.end()), md((size_t)n, 0.0), vd((size_t)n, 0.0);
    const float lrs[5] = {1e-3f, 2e-3f, 5e-4f, 1e-3f, 3e-3f};
    const float wd = 0.05f;
    for (int64_t t = 1; t <= 5; t++) {
        auto g = rand_vec(&r, (size_t)n, -2.0f, 2.0f);
        if (t == 3)
            for (int64_t i = 0; i < n; i += 7)
                g[(size_t)i] = 0.0f; // moments keep decaying where a gradient vanishes
        float lr = lrs[t - 1];
        REQUIRE(vqz_adamw_step(ctx.c, &cfg, lr, wd, t, p.data(), g.data(), m.data(), v.data(), n) == VQZ_OK);
        // the float betas of cfg, widened (PyTorch's Python-float betas differ from them by ~1e-8)
        double b1 = cfg.beta1, b2 = cfg.beta2, bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
        for (int64_t i = 0; i < n; i++) {
            pd[i] *= 1.0 - (double)lr * wd;
            md[i] = b1 * md[i] + (1 - b1) * g[i];
            vd[i] = b2 * vd[i] + (1 - b2) * (double)g[i] * g[i];
            pd[i] -= (double)lr / bc1 * md[i] / (std::sqrt(vd[i] / bc2) + (double)cfg.eps);
        }
    }
    std::vector<double> moved(p.size()), moved_ref(p.size());
    for (size_t i = 0; i < p.size(); i++) {
        moved[i] = (double)p[i] - p_init[i];
        moved_ref[i] = pd[i] - p_init[i];
    }
    CHECK(rel_err(moved, moved_ref) <= 1e-5);
    CHECK(rel_err(m, std::vector<float>(md.begin(), md.end())) <= 1e-5);
    CHECK(rel_err(v, std::vector<float>(vd.begin(), vd.end())) <= 1e-5);
}

TEST_CASE("AdamW's first step moves each weight by about lr against its gradient's sign", "[adamw]")
{
    Ctx ctx;
    const vqz_adamw_cfg cfg = {0.9f, 0.999f, 1e-8f};
    std::vector<float> p = {1.0f, -2.0f, 0.5f, 3.0f}, g = {0.3f, -7.0f, 1e-3f, 0.0f}, m(4, 0.0f), v(4, 0.0f);
    REQUIRE(vqz_adamw_step(ctx.c, &cfg, 0.01f, 0.0f, 1, p.data(), g.data(), m.data(), v.data(), 4) == VQZ_OK);
    CHECK(p[0] == Approx(0.99f).epsilon(1e-6));
    CHECK(p[1] == Approx(-1.99f).epsilon(1e-6));
    CHECK(p[2] == Approx(0.49f).epsilon(1e-5));
    CHECK(p[3] == 3.0f); // zero gradient, no decay: untouched
    // decoupled weight decay alone shrinks by lr * wd
    std::vector<float> q = {2.0f}, z = {0.0f}, mq = {0.0f}, vq = {0.0f};
    REQUIRE(vqz_adamw_step(ctx.c, &cfg, 0.1f, 0.5f, 1, q.data(), z.data(), mq.data(), vq.data(), 1) == VQZ_OK);
    CHECK(q[0] == Approx(2.0f * 0.95f).epsilon(1e-7));
}

TEST_CASE("AdamW rejects bad arguments", "[adamw]")
{
    Ctx ctx;
    const vqz_adamw_cfg cfg = {0.9f, 0.999f, 1e-8f}, bad = {1.0f, 0.999f, 1e-8f};
    std::vector<float> a(3);
    CHECK(vqz_adamw_step(ctx.c, &cfg, 1e-3f, 0, 0, a.data(), a.data(), a.data(), a.data(), 3) == VQZ_ERR_INVALID_ARG);
    CHECK(std::strstr(vqz_last_error(), "t=0") != nullptr);
    CHECK(vqz_adamw_step(ctx.c, &cfg, 1e-3f, 0, 1, a.data(), nullptr, a.data(), a.data(), 3) == VQZ_ERR_INVALID_ARG);
    CHECK(vqz_adamw_step(ctx.c, &bad, 1e-3f, 0, 1, a.data(), a.data(), a.data(), a.data(), 3) == VQZ_ERR_INVALID_ARG);
    CHECK(vqz_adamw_step(ctx.c, &cfg, NAN, 0, 1, a.data(), a.data(), a.data(), a.data(), 3) == VQZ_ERR_INVALID_ARG);
    CHECK(vqz_adamw_step(ctx.c, &cfg, 1e-3f, 0, 1, nullptr, nullptr, nullptr, nullptr, 0) == VQZ_OK);
    vqz_nn_ctx cuda = *ctx.c;
    cuda.device = VQZ_CUDA;
    CHECK(vqz_adamw_step(&cuda, &cfg, 1e-3f, 0, 1, a.data(), a.data(), a.data(), a.data(), 3) == VQZ_ERR_NO_CUDA);
}

TEST_CASE("learning-rate schedule: linear warm-up, cosine decay, constant floor", "[adamw]")
{
    const float base = 1e-3f;
    CHECK(vqz_lr_at(base, 0, 100, 1000, 0.1f) == 0.0f);
    CHECK(vqz_lr_at(base, 25, 100, 1000, 0.1f) == Approx(2.5e-4).epsilon(1e-6));
    CHECK(vqz_lr_at(base, 99, 100, 1000, 0.1f) == Approx(9.9e-4).epsilon(1e-6));
    CHECK(vqz_lr_at(base, 100, 100, 1000, 0.1f) == Approx(1e-3).epsilon(1e-6));
    CHECK(vqz_lr_at(base, 550, 100, 1000, 0.1f) == Approx(1e-3 * (0.1 + 0.9 * 0.5)).epsilon(1e-6));
    CHECK(vqz_lr_at(base, 325, 100, 1000, 0.1f) ==
          Approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25)))).epsilon(1e-6));
    CHECK(vqz_lr_at(base, 999, 100, 1000, 0.1f) == Approx(1e-4).epsilon(1e-4));
    CHECK(vqz_lr_at(base, 1000, 100, 1000, 0.1f) == Approx(1e-4).epsilon(1e-6));
    CHECK(vqz_lr_at(base, 100000, 100, 1000, 0.1f) == Approx(1e-4).epsilon(1e-6));
    CHECK(vqz_lr_at(base, 0, 0, 1000, 0.0f) == Approx(1e-3).epsilon(1e-6)); // no warm-up
    CHECK(vqz_lr_at(base, 500, 0, 1000, 0.0f) == Approx(5e-4).epsilon(1e-6));
    CHECK(vqz_lr_at(base, 1000, 0, 1000, 0.0f) == 0.0f);
    // monotone: up during warm-up, down after
    float prev = -1;
    for (int64_t s = 0; s <= 100; s++) {
        float l = vqz_lr_at(base, s, 100, 1000, 0.1f);
        CHECK(l > prev);
        prev = l;
    }
    for (int64_t s = 101; s <= 1000; s++) {
        float l = vqz_lr_at(base, s, 100, 1000, 0.1f);
        CHECK(l <= prev);
        prev = l;
    }
}

TEST_CASE("global-norm clipping: norm in double, scale only above max_norm, NaN reported", "[adamw]")
{
    Ctx ctx;
    std::vector<float> g = {3.0f, 4.0f};
    double norm = 0;
    REQUIRE(vqz_grad_clip(ctx.c, g.data(), 2, 10.0f, &norm) == VQZ_OK);
    CHECK(norm == 5.0);
    CHECK(g == std::vector<float>({3.0f, 4.0f}));
    REQUIRE(vqz_grad_clip(ctx.c, g.data(), 2, 0.0f, &norm) == VQZ_OK); // 0 = report only
    CHECK(g == std::vector<float>({3.0f, 4.0f}));
    REQUIRE(vqz_grad_clip(ctx.c, g.data(), 2, 1.0f, &norm) == VQZ_OK);
    CHECK(norm == 5.0);
    CHECK(g[0] == Approx(0.6f).epsilon(1e-6));
    CHECK(g[1] == Approx(0.8f).epsilon(1e-6));

    // many small values: a float accumulator would drift, the double one does not
    vqz_rng r;
    vqz_rng_seed(&r, 22);
    const int64_t n = 3000001;
    auto big = rand_vec(&r, (size_t)n, -1e-3f, 1e-3f);
    double want = 0;
    for (float x : big)
        want += (double)x * x;
    want = std::sqrt(want);
    auto before = big;
    REQUIRE(vqz_grad_clip(ctx.c, big.data(), n, (float)(want / 2), &norm) == VQZ_OK);
    CHECK(std::fabs(norm - want) <= 1e-12 * want);
    double f = (double)(float)(want / 2) / (want + 1e-6);
    double worst = 0;
    for (int64_t i = 0; i < n; i++)
        worst = std::fmax(worst, std::fabs(big[i] - before[i] * f));
    CHECK(worst <= 1e-9);
    double after = 0;
    for (float x : big)
        after += (double)x * x;
    CHECK(std::sqrt(after) == Approx(want / 2).epsilon(1e-5));

    std::vector<float> bad = {1.0f, NAN, 2.0f};
    REQUIRE(vqz_grad_clip(ctx.c, bad.data(), 3, 1.0f, &norm) == VQZ_ERR_NONFINITE);
    CHECK(bad[0] == 1.0f);
    CHECK(std::strstr(vqz_last_error(), "grad_clip") != nullptr);
    CHECK(vqz_grad_clip(ctx.c, nullptr, 5, 1.0f, &norm) == VQZ_ERR_INVALID_ARG);
}
