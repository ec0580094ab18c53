// test_conv.cpp — conv2d, conv1d, transposed conv1d and the dense layer: forward against naive loops,
// backward against the analytic float64 adjoint and float64 central differences, accumulation and
// NULL-output semantics, shape errors, the primitive cache; plus a hidden 3x3 conv benchmark.
#include <catch2/catch.hpp>

#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "ref_conv.h"
#include "testutil.h"

extern "C" {
#include "common/status.h"
#include "nn/ctx.h"
#include "nn/ops.h"
}

namespace {

// Prints measured errors when VQZ_TEST_VERBOSE is set (figures for reports); silent otherwise.
void note(const std::string &what, double err)
{
    if (std::getenv("VQZ_TEST_VERBOSE"))
        std::printf("  %-60s rel err %.3g\n", what.c_str(), err);
}

struct Ctx {
    vqz_nn_ctx *c = nullptr;
    explicit Ctx(int threads = 2) { REQUIRE(vqz_nn_ctx_create(&c, VQZ_DEVICE_CPU, threads) == VQZ_OK); }
    ~Ctx() { vqz_nn_ctx_free(c); }
};

std::vector<double> to_d(const std::vector<float> &v) { return std::vector<double>(v.begin(), v.end()); }

std::string describe(const RefConv &g, bool d1)
{
    char b[256];
    std::snprintf(b, sizeof b, "%s n%d ci%d %dx%d co%d k%dx%d s%d d%d pad%d,%d,%d,%d mode%d", d1 ? "conv1d" : "conv2d",
                  g.n, g.ci, g.ih, g.iw, g.co, g.kh, g.kw, g.sw, g.dw, g.pt, g.pb, g.pl, g.pr, g.mode);
    return b;
}

std::string describe(const RefConvTr &g)
{
    char b[160];
    std::snprintf(b, sizeof b, "convtr1d n%d ci%d t%d co%d k%d s%d crop%d,%d", g.n, g.ci, g.t, g.co, g.k, g.s,
                  g.cl, g.cr);
    return b;
}

// Builders for 2-D (square stride/pad/dilation) and 1-D problems.
RefConv c2(int n, int ci, int h, int w, int co, int kh, int kw, int s, int p, int d, int mode)
{
    return RefConv{n, ci, h, w, co, kh, kw, s, s, d, d, p, p, p, p, mode};
}
RefConv c1(int n, int ci, int t, int co, int k, int s, int pl, int pr, int d, int mode)
{
    return RefConv{n, ci, 1, t, co, 1, k, 1, s, 1, d, 0, 0, pl, pr, mode};
}

float *ptr(std::vector<float> *v) { return v ? v->data() : nullptr; }

vqz_status conv_fwd(vqz_nn_ctx *ctx, const RefConv &g, bool d1, std::vector<float> &x, std::vector<float> &w,
                    std::vector<float> *b, std::vector<float> &y)
{
    vqz_tensor tb = vqz_t1(ptr(b), g.co);
    if (d1) {
        vqz_conv1d_params p = {g.sw, g.pl, g.pr, g.dw, (vqz_pad_mode)g.mode};
        vqz_tensor tx = vqz_t3(x.data(), g.n, g.ci, g.iw), tw = vqz_t3(w.data(), g.co, g.ci, g.kw),
                   ty = vqz_t3(y.data(), g.n, g.co, g.ow());
        return vqz_conv1d_fwd(ctx, &p, &tx, &tw, b ? &tb : nullptr, &ty);
    }
    vqz_conv2d_params p = {g.sh, g.pt, g.dh, (vqz_pad_mode)g.mode};
    vqz_tensor tx = vqz_t4(x.data(), g.n, g.ci, g.ih, g.iw), tw = vqz_t4(w.data(), g.co, g.ci, g.kh, g.kw),
               ty = vqz_t4(y.data(), g.n, g.co, g.oh(), g.ow());
    return vqz_conv2d_fwd(ctx, &p, &tx, &tw, b ? &tb : nullptr, &ty);
}

vqz_status conv_bwd(vqz_nn_ctx *ctx, const RefConv &g, bool d1, std::vector<float> &x, std::vector<float> &w,
                    std::vector<float> &dy, std::vector<float> *dx, std::vector<float> *dw, std::vector<float> *db)
{
    vqz_tensor tdb = vqz_t1(ptr(db), g.co);
    if (d1) {
        vqz_conv1d_params p = {g.sw, g.pl, g.pr, g.dw, (vqz_pad_mode)g.mode};
        vqz_tensor tx = vqz_t3(x.data(), g.n, g.ci, g.iw), tw = vqz_t3(w.data(), g.co, g.ci, g.kw),
                   tdy = vqz_t3(dy.data(), g.n, g.co, g.ow()), tdx = vqz_t3(ptr(dx), g.n, g.ci, g.iw),
                   tdw = vqz_t3(ptr(dw), g.co, g.ci, g.kw);
        return vqz_conv1d_bwd(ctx, &p, &tx, &tw, &tdy, dx ? &tdx : nullptr, dw ? &tdw : nullptr,
                              db ? &tdb : nullptr);
    }
    vqz_conv2d_params p = {g.sh, g.pt, g.dh, (vqz_pad_mode)g.mode};
    vqz_tensor tx = vqz_t4(x.data(), g.n, g.ci, g.ih, g.iw), tw = vqz_t4(w.data(), g.co, g.ci, g.kh, g.kw),
               tdy = vqz_t4(dy.data(), g.n, g.co, g.oh(), g.ow()), tdx = vqz_t4(ptr(dx), g.n, g.ci, g.ih, g.iw),
               tdw = vqz_t4(ptr(dw), g.co, g.ci, g.kh, g.kw);
    return vqz_conv2d_bwd(ctx, &p, &tx, &tw, &tdy, dx ? &tdx : nullptr, dw ? &tdw : nullptr, db ? &tdb : nullptr);
}

vqz_status convtr_fwd(vqz_nn_ctx *ctx, const RefConvTr &g, std::vector<float> &x, std::vector<float> &w,
                      std::vector<float> *b, std::vector<float> &y)
{
    vqz_convtr1d_params p = {g.s, g.cl, g.cr};
    vqz_tensor tx = vqz_t3(x.data(), g.n, g.ci, g.t), tw = vqz_t3(w.data(), g.ci, g.co, g.k),
               tb = vqz_t1(ptr(b), g.co), ty = vqz_t3(y.data(), g.n, g.co, g.to());
    return vqz_convtr1d_fwd(ctx, &p, &tx, &tw, b ? &tb : nullptr, &ty);
}

vqz_status convtr_bwd(vqz_nn_ctx *ctx, const RefConvTr &g, std::vector<float> &x, std::vector<float> &w,
                      std::vector<float> &dy, std::vector<float> *dx, std::vector<float> *dw,
                      std::vector<float> *db)
{
    vqz_convtr1d_params p = {g.s, g.cl, g.cr};
    vqz_tensor tx = vqz_t3(x.data(), g.n, g.ci, g.t), tw = vqz_t3(w.data(), g.ci, g.co, g.k),
               tdy = vqz_t3(dy.data(), g.n, g.co, g.to()), tdx = vqz_t3(ptr(dx), g.n, g.ci, g.t),
               tdw = vqz_t3(ptr(dw), g.ci, g.co, g.k), tdb = vqz_t1(ptr(db), g.co);
    return vqz_convtr1d_bwd(ctx, &p, &tx, &tw, &tdy, dx ? &tdx : nullptr, dw ? &tdw : nullptr,
                            db ? &tdb : nullptr);
}

const std::vector<RefConv> &conv2d_cases()
{
    static const std::vector<RefConv> v = {
        c2(2, 3, 17, 13, 5, 3, 3, 1, 1, 1, 0),   c2(1, 4, 20, 20, 8, 4, 4, 2, 1, 1, 1),
        c2(3, 2, 33, 29, 3, 7, 7, 4, 3, 1, 2),   c2(2, 5, 31, 31, 6, 3, 3, 1, 3, 3, 0),
        c2(2, 5, 31, 27, 6, 3, 3, 1, 3, 3, 2),   c2(1, 3, 40, 37, 2, 5, 5, 5, 2, 1, 1),
        c2(2, 16, 16, 16, 16, 1, 1, 1, 0, 1, 0), c2(1, 3, 64, 61, 4, 16, 16, 8, 4, 1, 1),
        c2(1, 2, 41, 40, 3, 3, 3, 1, 9, 9, 2),   c2(2, 32, 9, 11, 48, 3, 3, 1, 1, 1, 1),
        c2(2, 3, 15, 19, 4, 3, 5, 2, 2, 1, 0),   c2(1, 17, 12, 12, 33, 3, 3, 2, 1, 1, 2),
    };
    return v;
}

const std::vector<RefConv> &conv1d_cases()
{
    static const std::vector<RefConv> v = {
        c1(2, 3, 101, 5, 7, 1, 3, 3, 1, 0),  c1(3, 4, 250, 6, 4, 2, 1, 2, 1, 2), c1(2, 3, 333, 4, 16, 8, 4, 4, 1, 1),
        c1(2, 5, 64, 5, 3, 1, 9, 9, 9, 2),   c1(1, 4, 80, 3, 3, 1, 6, 0, 3, 0),  c1(2, 6, 37, 7, 1, 1, 0, 0, 1, 0),
        c1(2, 3, 97, 4, 10, 5, 0, 0, 1, 0),  c1(2, 32, 200, 48, 7, 1, 3, 3, 1, 2), c1(1, 3, 150, 2, 8, 4, 5, 2, 1, 1),
        c1(1, 2, 200, 3, 16, 1, 0, 0, 9, 0), c1(2, 1, 120, 8, 7, 1, 6, 0, 1, 1),  c1(3, 8, 31, 5, 3, 1, 30, 30, 1, 2),
        c1(2, 16, 300, 8, 3, 1, 9, 9, 9, 0), // zero pad 9: padded in a copy for oneDNN's direct kernel
    };
    return v;
}

const std::vector<RefConvTr> &convtr_cases()
{
    static const std::vector<RefConvTr> v = {
        {2, 4, 25, 3, 4, 2, 1, 1}, {2, 32, 20, 16, 16, 8, 4, 4}, {1, 5, 30, 4, 10, 5, 3, 2},
        {2, 3, 17, 5, 3, 1, 0, 0}, {1, 6, 19, 7, 1, 1, 0, 0},    {2, 3, 12, 2, 4, 4, 0, 0},
        {1, 4, 21, 3, 7, 2, 0, 5}, {2, 3, 10, 4, 5, 8, 0, 0},    {2, 16, 33, 17, 8, 4, 2, 2},
    };
    return v;
}

} // namespace

TEST_CASE("conv2d and conv1d forward match the naive loop", "[conv]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 11);
    double worst = 0;
    for (int d1 = 0; d1 < 2; d1++) {
        const auto &cases = d1 ? conv1d_cases() : conv2d_cases();
        for (size_t i = 0; i < cases.size(); i++) {
            const RefConv &g = cases[i];
            INFO(describe(g, d1));
            auto x = rand_vec(&r, g.x_size()), w = rand_vec(&r, g.w_size()), b = rand_vec(&r, g.co);
            bool with_bias = i % 3 != 2;
            std::vector<float> y(g.y_size(), NAN);
            REQUIRE(conv_fwd(ctx.c, g, d1, x, w, with_bias ? &b : nullptr, y) == VQZ_OK);
            auto ref = ref_conv_fwd<float>(g, x, w, with_bias ? b.data() : nullptr);
            double e = rel_err(y, ref);
            note(describe(g, d1), e);
            worst = std::fmax(worst, e);
            CHECK(e <= 1e-5);
        }
    }
    note("conv forward, worst case", worst);
}

TEST_CASE("transposed conv1d forward matches the naive loop", "[conv]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 12);
    for (size_t i = 0; i < convtr_cases().size(); i++) {
        const RefConvTr &g = convtr_cases()[i];
        INFO(describe(g));
        auto x = rand_vec(&r, g.x_size()), w = rand_vec(&r, g.w_size()), b = rand_vec(&r, g.co);
        bool with_bias = i % 3 != 1;
        std::vector<float> y(g.y_size(), NAN);
        REQUIRE(convtr_fwd(ctx.c, g, x, w, with_bias ? &b : nullptr, y) == VQZ_OK);
        double e = rel_err(y, ref_convtr_fwd<float>(g, x, w, with_bias ? b.data() : nullptr));
        note(describe(g), e);
        CHECK(e <= 1e-5);
    }
}

TEST_CASE("conv backward matches the float64 adjoint and accumulates into dw, db", "[conv]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 13);
    for (int d1 = 0; d1 < 2; d1++) {
        const auto &cases = d1 ? conv1d_cases() : conv2d_cases();
        for (const RefConv &g : cases) {
            INFO(describe(g, d1));
            auto x = rand_vec(&r, g.x_size()), w = rand_vec(&r, g.w_size()), dy = rand_vec(&r, g.y_size());
            std::vector<double> rdx, rdw, rdb;
            ref_conv_bwd(g, to_d(x), to_d(w), to_d(dy), rdx, rdw, rdb);
            // dx is overwritten (NaN would survive otherwise); dw, db start at zero.
            std::vector<float> dx(g.x_size(), NAN), dw(g.w_size(), 0.0f), db(g.co, 0.0f);
            REQUIRE(conv_bwd(ctx.c, g, d1, x, w, dy, &dx, &dw, &db) == VQZ_OK);
            double ex = rel_err(to_d(dx), rdx), ew = rel_err(to_d(dw), rdw), eb = rel_err(to_d(db), rdb);
            note(describe(g, d1) + " dx", ex);
            note(describe(g, d1) + " dw", ew);
            note(describe(g, d1) + " db", eb);
            CHECK(ex <= 1e-5);
            CHECK(ew <= 1e-5);
            CHECK(eb <= 1e-5);
            // Accumulation: a second call without dx adds onto non-zero gradients of similar size.
            auto w0 = rand_vec(&r, g.w_size()), b0 = rand_vec(&r, g.co);
            std::vector<double> want_w(g.w_size()), want_b(g.co);
            for (size_t i = 0; i < w0.size(); i++)
                want_w[i] = w0[i] + rdw[i];
            for (int i = 0; i < g.co; i++)
                want_b[i] = b0[i] + rdb[i];
            REQUIRE(conv_bwd(ctx.c, g, d1, x, w, dy, nullptr, &w0, &b0) == VQZ_OK);
            CHECK(rel_err(to_d(w0), want_w) <= 1e-5);
            CHECK(rel_err(to_d(b0), want_b) <= 1e-5);
        }
    }
}

TEST_CASE("transposed conv1d backward matches the float64 adjoint and accumulates", "[conv]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 14);
    for (const RefConvTr &g : convtr_cases()) {
        INFO(describe(g));
        auto x = rand_vec(&r, g.x_size()), w = rand_vec(&r, g.w_size()), dy = rand_vec(&r, g.y_size());
        std::vector<double> rdx, rdw, rdb;
        ref_convtr_bwd(g, to_d(x), to_d(w), to_d(dy), rdx, rdw, rdb);
        std::vector<float> dx(g.x_size(), NAN), dw(g.w_size(), 0.0f), db(g.co, 0.0f);
        REQUIRE(convtr_bwd(ctx.c, g, x, w, dy, &dx, &dw, &db) == VQZ_OK);
        double ex = rel_err(to_d(dx), rdx), ew = rel_err(to_d(dw), rdw), eb = rel_err(to_d(db), rdb);
        note(describe(g) + " dx", ex);
        note(describe(g) + " dw", ew);
        note(describe(g) + " db", eb);
        CHECK(ex <= 1e-5);
        CHECK(ew <= 1e-5);
        CHECK(eb <= 1e-5);
        auto w0 = rand_vec(&r, g.w_size()), b0 = rand_vec(&r, g.co);
        std::vector<double> want_w(g.w_size()), want_b(g.co);
        for (size_t i = 0; i < w0.size(); i++)
            want_w[i] = w0[i] + rdw[i];
        for (int i = 0; i < g.co; i++)
            want_b[i] = b0[i] + rdb[i];
        REQUIRE(convtr_bwd(ctx.c, g, x, w, dy, nullptr, &w0, &b0) == VQZ_OK);
        CHECK(rel_err(to_d(w0), want_w) <= 1e-5);
        CHECK(rel_err(to_d(b0), want_b) <= 1e-5);
    }
}

namespace {

// Central differences of L = sum(y .* g) in float64, one input element at a time. The ops are linear
// in each argument, so the difference quotient is exact up to rounding: it checks the adjoint
// without trusting the analytic reference.
template <class Fwd>
std::vector<double> fd_grad(std::vector<double> &v, const std::vector<double> &gy, Fwd fwd)
{
    const double h = 1e-3;
    std::vector<double> out(v.size());
    for (size_t i = 0; i < v.size(); i++) {
        double keep = v[i];
        v[i] = keep + h;
        std::vector<double> yp = fwd();
        v[i] = keep - h;
        std::vector<double> ym = fwd();
        v[i] = keep;
        double lp = 0, lm = 0;
        for (size_t j = 0; j < gy.size(); j++) {
            lp += yp[j] * gy[j];
            lm += ym[j] * gy[j];
        }
        out[i] = (lp - lm) / (2 * h);
    }
    return out;
}

} // namespace

TEST_CASE("conv backward agrees with float64 central differences", "[conv]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 15);
    const RefConv cases2[] = {c2(2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 0), c2(1, 2, 9, 8, 3, 3, 3, 2, 2, 1, 1),
                              c2(2, 2, 8, 9, 3, 3, 3, 1, 2, 2, 2), c2(1, 2, 11, 10, 2, 4, 4, 4, 1, 1, 2)};
    const RefConv cases1[] = {c1(2, 3, 20, 4, 7, 1, 3, 3, 1, 2), c1(1, 2, 30, 3, 3, 1, 4, 4, 3, 1),
                              c1(2, 2, 27, 3, 10, 5, 2, 3, 1, 0), c1(1, 3, 24, 2, 4, 2, 1, 2, 1, 2)};
    for (int d1 = 0; d1 < 2; d1++) {
        for (const RefConv &g : d1 ? cases1 : cases2) {
            INFO(describe(g, d1));
            auto x = rand_vec(&r, g.x_size()), w = rand_vec(&r, g.w_size()), b = rand_vec(&r, g.co),
                 dy = rand_vec(&r, g.y_size());
            std::vector<float> dx(g.x_size(), NAN), dw(g.w_size(), 0.0f), db(g.co, 0.0f);
            REQUIRE(conv_bwd(ctx.c, g, d1, x, w, dy, &dx, &dw, &db) == VQZ_OK);
            std::vector<double> xd = to_d(x), wd = to_d(w), bd = to_d(b), gy = to_d(dy);
            auto fwd = [&]() { return ref_conv_fwd<double>(g, xd, wd, bd.data()); };
            double ex = rel_err(to_d(dx), fd_grad(xd, gy, fwd));
            double ew = rel_err(to_d(dw), fd_grad(wd, gy, fwd));
            double eb = rel_err(to_d(db), fd_grad(bd, gy, fwd));
            note(describe(g, d1) + " FD dx/dw/db max", std::fmax(ex, std::fmax(ew, eb)));
            CHECK(ex <= 1e-4);
            CHECK(ew <= 1e-4);
            CHECK(eb <= 1e-4);
        }
    }
    const RefConvTr trs[] = {{2, 3, 9, 2, 4, 2, 1, 1}, {1, 2, 7, 3, 16, 8, 4, 4}, {2, 2, 6, 3, 3, 1, 0, 2}};
    for (const RefConvTr &g : trs) {
        INFO(describe(g));
        auto x = rand_vec(&r, g.x_size()), w = rand_vec(&r, g.w_size()), b = rand_vec(&r, g.co),
             dy = rand_vec(&r, g.y_size());
        std::vector<float> dx(g.x_size(), NAN), dw(g.w_size(), 0.0f), db(g.co, 0.0f);
        REQUIRE(convtr_bwd(ctx.c, g, x, w, dy, &dx, &dw, &db) == VQZ_OK);
        std::vector<double> xd = to_d(x), wd = to_d(w), bd = to_d(b), gy = to_d(dy);
        auto fwd = [&]() { return ref_convtr_fwd<double>(g, xd, wd, bd.data()); };
        double ex = rel_err(to_d(dx), fd_grad(xd, gy, fwd));
        double ew = rel_err(to_d(dw), fd_grad(wd, gy, fwd));
        double eb = rel_err(to_d(db), fd_grad(bd, gy, fwd));
        note(describe(g) + " FD dx/dw/db max", std::fmax(ex, std::fmax(ew, eb)));
        CHECK(ex <= 1e-4);
        CHECK(ew <= 1e-4);
        CHECK(eb <= 1e-4);
    }
}

TEST_CASE("conv backward computes only the gradients asked for", "[conv]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 16);
    const RefConv cases[] = {c2(2, 3, 10, 9, 4, 3, 3, 1, 1, 1, 1), c1(2, 3, 40, 5, 7, 2, 3, 3, 1, 2)};
    for (int d1 = 0; d1 < 2; d1++) {
        const RefConv &g = cases[d1];
        INFO(describe(g, d1));
        auto x = rand_vec(&r, g.x_size()), w = rand_vec(&r, g.w_size()), dy = rand_vec(&r, g.y_size());
        std::vector<double> rdx, rdw, rdb;
        ref_conv_bwd(g, to_d(x), to_d(w), to_d(dy), rdx, rdw, rdb);
        std::vector<float> dx(g.x_size(), NAN), dw(g.w_size(), 0.0f), db(g.co, 0.0f);
        REQUIRE(conv_bwd(ctx.c, g, d1, x, w, dy, &dx, nullptr, nullptr) == VQZ_OK);
        CHECK(rel_err(to_d(dx), rdx) <= 1e-5);
        REQUIRE(conv_bwd(ctx.c, g, d1, x, w, dy, nullptr, &dw, nullptr) == VQZ_OK);
        CHECK(rel_err(to_d(dw), rdw) <= 1e-5);
        REQUIRE(conv_bwd(ctx.c, g, d1, x, w, dy, nullptr, nullptr, &db) == VQZ_OK);
        CHECK(rel_err(to_d(db), rdb) <= 1e-5);
        // Nothing asked: succeeds and touches nothing.
        auto dw_before = dw;
        REQUIRE(conv_bwd(ctx.c, g, d1, x, w, dy, nullptr, nullptr, nullptr) == VQZ_OK);
        CHECK(dw == dw_before);
    }
    RefConvTr t = {2, 4, 15, 3, 4, 2, 1, 1};
    auto x = rand_vec(&r, t.x_size()), w = rand_vec(&r, t.w_size()), dy = rand_vec(&r, t.y_size());
    std::vector<double> rdx, rdw, rdb;
    ref_convtr_bwd(t, to_d(x), to_d(w), to_d(dy), rdx, rdw, rdb);
    std::vector<float> dx(t.x_size(), NAN), dw(t.w_size(), 0.0f), db(t.co, 0.0f);
    REQUIRE(convtr_bwd(ctx.c, t, x, w, dy, &dx, nullptr, nullptr) == VQZ_OK);
    CHECK(rel_err(to_d(dx), rdx) <= 1e-5);
    REQUIRE(convtr_bwd(ctx.c, t, x, w, dy, nullptr, nullptr, &db) == VQZ_OK);
    CHECK(rel_err(to_d(db), rdb) <= 1e-5);
    REQUIRE(convtr_bwd(ctx.c, t, x, w, dy, nullptr, &dw, nullptr) == VQZ_OK);
    CHECK(rel_err(to_d(dw), rdw) <= 1e-5);
}

TEST_CASE("conv primitive cache stays correct as shapes change", "[conv]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 17);
    // Revisit shapes in a changing order, mixing forward and backward, padding modes and bias.
    const RefConv seq[] = {c2(2, 4, 12, 12, 8, 3, 3, 1, 1, 1, 0), c2(1, 4, 12, 12, 8, 3, 3, 1, 1, 1, 0),
                           c2(2, 4, 14, 12, 8, 3, 3, 1, 1, 1, 0), c2(2, 4, 12, 12, 8, 3, 3, 2, 1, 1, 0),
                           c2(2, 4, 12, 12, 8, 3, 3, 1, 1, 1, 1), c2(2, 4, 12, 12, 8, 3, 3, 1, 1, 1, 0),
                           c2(1, 4, 12, 12, 8, 3, 3, 1, 1, 1, 0), c2(2, 4, 12, 12, 8, 3, 3, 1, 1, 1, 2)};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
            const RefConv &g = seq[i];
            INFO(describe(g, false) << " round " << round);
            auto x = rand_vec(&r, g.x_size()), w = rand_vec(&r, g.w_size()), b = rand_vec(&r, g.co),
                 dy = rand_vec(&r, g.y_size());
            bool with_bias = (i + round) % 2 == 0;
            std::vector<float> y(g.y_size(), NAN);
            REQUIRE(conv_fwd(ctx.c, g, false, x, w, with_bias ? &b : nullptr, y) == VQZ_OK);
            CHECK(rel_err(y, ref_conv_fwd<float>(g, x, w, with_bias ? b.data() : nullptr)) <= 1e-5);
            std::vector<double> rdx, rdw, rdb;
            ref_conv_bwd(g, to_d(x), to_d(w), to_d(dy), rdx, rdw, rdb);
            std::vector<float> dx(g.x_size(), NAN), dw(g.w_size(), 0.0f), db(g.co, 0.0f);
            REQUIRE(conv_bwd(ctx.c, g, false, x, w, dy, &dx, &dw, with_bias ? &db : nullptr) == VQZ_OK);
            CHECK(rel_err(to_d(dx), rdx) <= 1e-5);
            CHECK(rel_err(to_d(dw), rdw) <= 1e-5);
            if (with_bias)
                CHECK(rel_err(to_d(db), rdb) <= 1e-5);
        }
    }
    // More distinct problems than the cache holds: old entries are evicted and rebuilt correctly.
    for (int pass = 0; pass < 2; pass++) {
        for (int n = 1; n <= 140; n += pass ? 23 : 1) {
            RefConv g = c1(n, 2, 9, 3, 3, 1, 1, 1, 1, 0);
            auto x = rand_vec(&r, g.x_size()), w = rand_vec(&r, g.w_size());
            std::vector<float> y(g.y_size(), NAN);
            REQUIRE(conv_fwd(ctx.c, g, true, x, w, nullptr, y) == VQZ_OK);
            INFO("n = " << n << " pass " << pass);
            REQUIRE(rel_err(y, ref_conv_fwd<float>(g, x, w, nullptr)) <= 1e-5);
        }
    }
}

TEST_CASE("conv ops reject bad shapes and arguments with precise messages", "[conv]")
{
    Ctx ctx;
    std::vector<float> buf(4096, 0.0f);
    float *d = buf.data();
    vqz_conv2d_params p2 = {1, 1, 1, VQZ_PAD_ZERO};
    vqz_tensor x = vqz_t4(d, 2, 3, 8, 8), w = vqz_t4(d, 5, 4, 3, 3), y = vqz_t4(d, 2, 5, 8, 8);
    auto msg = []() { return std::string(vqz_last_error()); };

    REQUIRE(vqz_conv2d_fwd(ctx.c, &p2, &x, &w, nullptr, &y) == VQZ_ERR_SHAPE);
    CHECK(msg().find("conv2d_fwd") != std::string::npos);
    CHECK(msg().find("[2,3,8,8]") != std::string::npos);
    CHECK(msg().find("[5,4,3,3]") != std::string::npos);

    w = vqz_t4(d, 5, 3, 3, 3);
    vqz_tensor ybad = vqz_t4(d, 2, 5, 7, 8);
    REQUIRE(vqz_conv2d_fwd(ctx.c, &p2, &x, &w, nullptr, &ybad) == VQZ_ERR_SHAPE);
    CHECK(msg().find("[2,5,7,8]") != std::string::npos);
    CHECK(msg().find("[2,5,8,8]") != std::string::npos);

    vqz_tensor bbad = vqz_t1(d, 4);
    REQUIRE(vqz_conv2d_fwd(ctx.c, &p2, &x, &w, &bbad, &y) == VQZ_ERR_SHAPE);
    CHECK(msg().find("b is [4]") != std::string::npos);

    vqz_tensor x3 = vqz_t3(d, 2, 3, 8);
    REQUIRE(vqz_conv2d_fwd(ctx.c, &p2, &x3, &w, nullptr, &y) == VQZ_ERR_SHAPE);

    vqz_tensor wbig = vqz_t4(d, 5, 3, 11, 11);
    REQUIRE(vqz_conv2d_fwd(ctx.c, &p2, &x, &wbig, nullptr, &y) == VQZ_ERR_SHAPE);
    CHECK(msg().find("smaller") != std::string::npos);

    vqz_conv2d_params refl = {1, 8, 1, VQZ_PAD_REFLECT};
    vqz_tensor y24 = vqz_t4(d, 2, 5, 22, 22);
    REQUIRE(vqz_conv2d_fwd(ctx.c, &refl, &x, &w, nullptr, &y24) == VQZ_ERR_SHAPE);
    CHECK(msg().find("reflect") != std::string::npos);
    refl.pad = 7; // pad < 8 is fine
    vqz_tensor y22 = vqz_t4(d, 2, 5, 20, 20);
    std::vector<float> big(2 * 5 * 20 * 20);
    y22.data = big.data();
    REQUIRE(vqz_conv2d_fwd(ctx.c, &refl, &x, &w, nullptr, &y22) == VQZ_OK);

    vqz_conv2d_params bad = {0, 1, 1, VQZ_PAD_ZERO};
    REQUIRE(vqz_conv2d_fwd(ctx.c, &bad, &x, &w, nullptr, &y) == VQZ_ERR_INVALID_ARG);
    bad = {1, 1, 1, (vqz_pad_mode)7};
    REQUIRE(vqz_conv2d_fwd(ctx.c, &bad, &x, &w, nullptr, &y) == VQZ_ERR_INVALID_ARG);

    // Backward: dy and gradient shapes.
    vqz_tensor dy = vqz_t4(d, 2, 5, 8, 8), dxbad = vqz_t4(d, 2, 3, 8, 7), dwbad = vqz_t4(d, 5, 3, 3, 1);
    REQUIRE(vqz_conv2d_bwd(ctx.c, &p2, &x, &w, &ybad, nullptr, nullptr, nullptr) == VQZ_ERR_SHAPE);
    CHECK(msg().find("conv2d_bwd: dy") != std::string::npos);
    REQUIRE(vqz_conv2d_bwd(ctx.c, &p2, &x, &w, &dy, &dxbad, nullptr, nullptr) == VQZ_ERR_SHAPE);
    CHECK(msg().find("dx is [2,3,8,7]") != std::string::npos);
    REQUIRE(vqz_conv2d_bwd(ctx.c, &p2, &x, &w, &dy, nullptr, &dwbad, nullptr) == VQZ_ERR_SHAPE);
    CHECK(msg().find("dw is [5,3,3,1]") != std::string::npos);

    // Devices: a CUDA tensor on a CPU context; CPU tensors on a CUDA context; a CUDA context without a
    // device behind it (CUDA tensors are only labelled here: the op must refuse before touching them).
    vqz_tensor xg = x;
    xg.device = VQZ_CUDA;
    REQUIRE(vqz_conv2d_fwd(ctx.c, &p2, &xg, &w, nullptr, &y) == VQZ_ERR_INVALID_ARG);
    CHECK(msg().find("x is not a CPU tensor") != std::string::npos);
    vqz_nn_ctx fake = *ctx.c;
    fake.device = VQZ_CUDA;
    fake.dnnl = nullptr;
    fake.cuda = nullptr;
    REQUIRE(vqz_conv2d_fwd(&fake, &p2, &x, &w, nullptr, &y) == VQZ_ERR_INVALID_ARG);
    CHECK(msg().find("x is not a CUDA tensor") != std::string::npos);
    vqz_tensor wg = w, yg = y;
    wg.device = yg.device = VQZ_CUDA;
    REQUIRE(vqz_conv2d_fwd(&fake, &p2, &xg, &wg, nullptr, &yg) == VQZ_ERR_NO_CUDA);
    REQUIRE(vqz_conv2d_fwd(nullptr, &p2, &x, &w, nullptr, &y) == VQZ_ERR_INVALID_ARG);

    // conv1d: channels, length, reflect limit on either side.
    vqz_conv1d_params p1 = {2, 3, 2, 1, VQZ_PAD_REFLECT};
    vqz_tensor x1 = vqz_t3(d, 2, 3, 10), w1 = vqz_t3(d, 4, 2, 5), y1 = vqz_t3(d, 2, 4, 6);
    REQUIRE(vqz_conv1d_fwd(ctx.c, &p1, &x1, &w1, nullptr, &y1) == VQZ_ERR_SHAPE);
    CHECK(msg().find("conv1d_fwd") != std::string::npos);
    CHECK(msg().find("[2,3,10]") != std::string::npos);
    CHECK(msg().find("[4,2,5]") != std::string::npos);
    w1 = vqz_t3(d, 4, 3, 5);
    REQUIRE(vqz_conv1d_fwd(ctx.c, &p1, &x1, &w1, nullptr, &y1) == VQZ_OK); // (10+5-5)/2+1 = 6
    p1.pad_left = 10;
    vqz_tensor y1b = vqz_t3(d, 2, 4, 9); // (10+12-5)/2+1
    REQUIRE(vqz_conv1d_fwd(ctx.c, &p1, &x1, &w1, nullptr, &y1b) == VQZ_ERR_SHAPE);
    CHECK(msg().find("reflect") != std::string::npos);
    p1.pad_mode = VQZ_PAD_REPLICATE; // replicate has no such limit
    REQUIRE(vqz_conv1d_fwd(ctx.c, &p1, &x1, &w1, nullptr, &y1b) == VQZ_OK);
    vqz_conv1d_params pd = {1, 0, 0, 3, VQZ_PAD_ZERO}; // dilated extent 13 > 10
    vqz_tensor y1c = vqz_t3(d, 2, 4, 1);
    REQUIRE(vqz_conv1d_fwd(ctx.c, &pd, &x1, &w1, nullptr, &y1c) == VQZ_ERR_SHAPE);
    CHECK(msg().find("shorter") != std::string::npos);

    // Transposed conv1d: w is [in, out, k]; crops must leave an output.
    vqz_convtr1d_params pt = {2, 1, 1};
    vqz_tensor xt = vqz_t3(d, 2, 3, 10), wt = vqz_t3(d, 4, 5, 4), yt = vqz_t3(d, 2, 5, 20);
    REQUIRE(vqz_convtr1d_fwd(ctx.c, &pt, &xt, &wt, nullptr, &yt) == VQZ_ERR_SHAPE);
    CHECK(msg().find("convtr1d_fwd") != std::string::npos);
    CHECK(msg().find("[4,5,4]") != std::string::npos);
    wt = vqz_t3(d, 3, 5, 4);
    REQUIRE(vqz_convtr1d_fwd(ctx.c, &pt, &xt, &wt, nullptr, &yt) == VQZ_OK); // 9*2+4-2 = 20
    vqz_tensor yt2 = vqz_t3(d, 2, 5, 21);
    REQUIRE(vqz_convtr1d_fwd(ctx.c, &pt, &xt, &wt, nullptr, &yt2) == VQZ_ERR_SHAPE);
    CHECK(msg().find("[2,5,21]") != std::string::npos);
    pt = {1, 20, 20};
    REQUIRE(vqz_convtr1d_fwd(ctx.c, &pt, &xt, &wt, nullptr, &yt) == VQZ_ERR_SHAPE);
    pt = {1, -1, 0};
    REQUIRE(vqz_convtr1d_fwd(ctx.c, &pt, &xt, &wt, nullptr, &yt) == VQZ_ERR_INVALID_ARG);
}

// ------------------------------------------------------------------------------------ linear

namespace {

vqz_status lin_fwd(vqz_nn_ctx *ctx, int m, int n, int k, std::vector<float> &x, std::vector<float> &w,
                   std::vector<float> *b, std::vector<float> &y)
{
    vqz_tensor tx = vqz_t2(x.data(), m, k), tw = vqz_t2(w.data(), n, k), tb = vqz_t1(ptr(b), n),
               ty = vqz_t2(y.data(), m, n);
    return vqz_linear_fwd(ctx, &tx, &tw, b ? &tb : nullptr, &ty);
}

vqz_status lin_bwd(vqz_nn_ctx *ctx, int m, int n, int k, std::vector<float> &x, std::vector<float> &w,
                   std::vector<float> &dy, std::vector<float> *dx, std::vector<float> *dw, std::vector<float> *db)
{
    vqz_tensor tx = vqz_t2(x.data(), m, k), tw = vqz_t2(w.data(), n, k), tdy = vqz_t2(dy.data(), m, n),
               tdx = vqz_t2(ptr(dx), m, k), tdw = vqz_t2(ptr(dw), n, k), tdb = vqz_t1(ptr(db), n);
    return vqz_linear_bwd(ctx, &tx, &tw, &tdy, dx ? &tdx : nullptr, dw ? &tdw : nullptr, db ? &tdb : nullptr);
}

} // namespace

TEST_CASE("linear forward and backward match naive loops and central differences", "[conv]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 18);
    const int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {64, 48, 33}, {300, 17, 129}, {5, 256, 64}};
    for (auto &s : shapes) {
        int m = s[0], n = s[1], k = s[2];
        INFO("linear m" << m << " n" << n << " k" << k);
        auto x = rand_vec(&r, (size_t)m * k), w = rand_vec(&r, (size_t)n * k), b = rand_vec(&r, n),
             dy = rand_vec(&r, (size_t)m * n);
        std::vector<float> y((size_t)m * n, NAN);
        REQUIRE(lin_fwd(ctx.c, m, n, k, x, w, &b, y) == VQZ_OK);
        CHECK(rel_err(y, ref_linear_fwd<float>(m, n, k, x, w, b.data())) <= 1e-5);
        std::fill(y.begin(), y.end(), NAN);
        REQUIRE(lin_fwd(ctx.c, m, n, k, x, w, nullptr, y) == VQZ_OK);
        CHECK(rel_err(y, ref_linear_fwd<float>(m, n, k, x, w, nullptr)) <= 1e-5);

        // Analytic float64 adjoint.
        std::vector<double> rdx((size_t)m * k, 0.0), rdw((size_t)n * k, 0.0), rdb(n, 0.0);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double g = dy[(size_t)i * n + j];
                rdb[j] += g;
                for (int l = 0; l < k; l++) {
                    rdx[(size_t)i * k + l] += g * w[(size_t)j * k + l];
                    rdw[(size_t)j * k + l] += g * x[(size_t)i * k + l];
                }
            }
        std::vector<float> dx((size_t)m * k, NAN), dw = rand_vec(&r, (size_t)n * k), db = rand_vec(&r, n);
        std::vector<double> want_w(dw.begin(), dw.end()), want_b(db.begin(), db.end());
        for (size_t i = 0; i < want_w.size(); i++)
            want_w[i] += rdw[i];
        for (int i = 0; i < n; i++)
            want_b[i] += rdb[i];
        REQUIRE(lin_bwd(ctx.c, m, n, k, x, w, dy, &dx, &dw, &db) == VQZ_OK);
        CHECK(rel_err(to_d(dx), rdx) <= 1e-5);
        CHECK(rel_err(to_d(dw), want_w) <= 1e-5); // accumulated onto random values
        CHECK(rel_err(to_d(db), want_b) <= 1e-5);

        if ((size_t)m * n * k <= 20000) {
            std::vector<double> xd = to_d(x), wd = to_d(w), bd = to_d(b), gy = to_d(dy);
            auto fwd = [&]() { return ref_linear_fwd<double>(m, n, k, xd, wd, bd.data()); };
            std::vector<float> dx0((size_t)m * k), dw0((size_t)n * k, 0.0f), db0(n, 0.0f);
            REQUIRE(lin_bwd(ctx.c, m, n, k, x, w, dy, &dx0, &dw0, &db0) == VQZ_OK);
            CHECK(rel_err(to_d(dx0), fd_grad(xd, gy, fwd)) <= 1e-4);
            CHECK(rel_err(to_d(dw0), fd_grad(wd, gy, fwd)) <= 1e-4);
            CHECK(rel_err(to_d(db0), fd_grad(bd, gy, fwd)) <= 1e-4);
        }
        // NULL outputs are skipped.
        std::vector<float> only_db(n, 0.0f);
        REQUIRE(lin_bwd(ctx.c, m, n, k, x, w, dy, nullptr, nullptr, &only_db) == VQZ_OK);
        CHECK(rel_err(to_d(only_db), rdb) <= 1e-5);
    }

    std::vector<float> buf(256);
    vqz_tensor x = vqz_t2(buf.data(), 4, 6), w = vqz_t2(buf.data(), 5, 7), y = vqz_t2(buf.data(), 4, 5);
    REQUIRE(vqz_linear_fwd(ctx.c, &x, &w, nullptr, &y) == VQZ_ERR_SHAPE);
    CHECK(std::string(vqz_last_error()).find("linear_fwd") != std::string::npos);
    CHECK(std::string(vqz_last_error()).find("[4,6]") != std::string::npos);
    CHECK(std::string(vqz_last_error()).find("[5,7]") != std::string::npos);
    w = vqz_t2(buf.data(), 5, 6);
    vqz_tensor ybad = vqz_t2(buf.data(), 5, 4);
    REQUIRE(vqz_linear_fwd(ctx.c, &x, &w, nullptr, &ybad) == VQZ_ERR_SHAPE);
    CHECK(std::string(vqz_last_error()).find("y is [5,4] but must be [4,5]") != std::string::npos);
    vqz_tensor dwbad = vqz_t2(buf.data(), 6, 5);
    REQUIRE(vqz_linear_bwd(ctx.c, &x, &w, &y, nullptr, &dwbad, nullptr) == VQZ_ERR_SHAPE);
    CHECK(std::string(vqz_last_error()).find("linear_bwd: dw") != std::string::npos);
    vqz_tensor xg = x;
    xg.device = VQZ_CUDA;
    REQUIRE(vqz_linear_fwd(ctx.c, &xg, &w, nullptr, &y) == VQZ_ERR_INVALID_ARG);
}

// ------------------------------------------------------------------------------------ benchmark

TEST_CASE("3x3 conv speed on 16x64x128x128 (benchmark)", "[.bench]")
{
    Ctx ctx(0); // VQZ_THREADS, else all cores
    vqz_rng r;
    vqz_rng_seed(&r, 19);
    const int N = 16, C = 64, H = 128, W = 128;
    auto x = rand_vec(&r, (size_t)N * C * H * W), w = rand_vec(&r, (size_t)C * C * 9, -0.05f, 0.05f),
         b = rand_vec(&r, C), dy = rand_vec(&r, (size_t)N * C * H * W);
    std::vector<float> y(x.size()), dx(x.size()), dw(w.size(), 0.0f), db(C, 0.0f);
    vqz_conv2d_params p = {1, 1, 1, VQZ_PAD_ZERO};
    vqz_tensor tx = vqz_t4(x.data(), N, C, H, W), tw = vqz_t4(w.data(), C, C, 3, 3), tb = vqz_t1(b.data(), C),
               ty = vqz_t4(y.data(), N, C, H, W), tdy = vqz_t4(dy.data(), N, C, H, W),
               tdx = vqz_t4(dx.data(), N, C, H, W), tdw = vqz_t4(dw.data(), C, C, 3, 3), tdb = vqz_t1(db.data(), C);
    const double flop = 2.0 * N * C * C * 9 * H * W;
    // Wall time is what counts; CPU time (all threads) shows how much of it a busy machine stole.
    struct Timing {
        double wall = 1e30, cpu = 1e30;
    };
    auto best_of = [](int reps, auto f) {
        f(); // warm: primitive creation and scratch growth
        Timing t;
        for (int i = 0; i < reps; i++) {
            auto w0 = std::chrono::steady_clock::now();
            std::clock_t c0 = std::clock();
            f();
            t.cpu = std::fmin(t.cpu, (double)(std::clock() - c0) / CLOCKS_PER_SEC);
            t.wall = std::fmin(t.wall, std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count());
        }
        return t;
    };
    Timing tf = best_of(5, [&]() { REQUIRE(vqz_conv2d_fwd(ctx.c, &p, &tx, &tw, &tb, &ty) == VQZ_OK); });
    Timing tbd = best_of(5, [&]() { REQUIRE(vqz_conv2d_bwd(ctx.c, &p, &tx, &tw, &tdy, &tdx, nullptr, nullptr) == VQZ_OK); });
    Timing tbw = best_of(5, [&]() { REQUIRE(vqz_conv2d_bwd(ctx.c, &p, &tx, &tw, &tdy, nullptr, &tdw, &tdb) == VQZ_OK); });
    Timing tba = best_of(5, [&]() { REQUIRE(vqz_conv2d_bwd(ctx.c, &p, &tx, &tw, &tdy, &tdx, &tdw, &tdb) == VQZ_OK); });
    std::printf("conv2d 3x3 %dx%dx%dx%d -> %d, %d threads (best of 5):\n", N, C, H, W, C, ctx.c->threads);
    auto row = [&](const char *name, Timing t, double f) {
        std::printf("  %-14s %7.1f ms  %6.1f GFLOP/s   (cpu %7.1f ms)\n", name, t.wall * 1e3, f / t.wall / 1e9,
                    t.cpu * 1e3);
    };
    row("fwd", tf, flop);
    row("bwd data", tbd, flop);
    row("bwd weights+b", tbw, flop);
    row("bwd all", tba, 2 * flop);
}
