// test_eltwise.cpp — elementwise and layout ops (nn/eltwise.c) against the naive loops of ref_eltwise.h:
// forward on random shapes, backward against central finite differences in double, accumulation of
// parameter gradients, in-place use where ops.h allows it, and shape errors.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "ref_eltwise.h"
#include "testutil.h"

extern "C" {
#include "common/status.h"
#include "nn/ops.h"
}

namespace {

struct Ctx {
    vqz_nn_ctx *c = nullptr;
    explicit Ctx(int threads = 2) { REQUIRE(vqz_nn_ctx_create(&c, VQZ_DEVICE_CPU, threads) == VQZ_OK); }
    ~Ctx() { vqz_nn_ctx_free(c); }
};

vqz_tensor tens(std::vector<float> &v, const std::vector<int64_t> &shape)
{
    vqz_tensor t = {v.data(), (int)shape.size(), {1, 1, 1, 1}, VQZ_CPU};
    for (size_t i = 0; i < shape.size(); i++)
        t.shape[i] = shape[i];
    return t;
}

int64_t numel(const std::vector<int64_t> &s)
{
    int64_t n = 1;
    for (int64_t d : s)
        n *= d;
    return n;
}

// A random [N, C, ...] shape of rank 2..4 with extents in 1..max.
std::vector<int64_t> rand_shape(vqz_rng *r, int64_t max)
{
    int nd = 2 + (int)vqz_rng_below(r, 3);
    std::vector<int64_t> s;
    for (int i = 0; i < nd; i++)
        s.push_back(1 + (int64_t)vqz_rng_below(r, (uint64_t)max));
    return s;
}

// L = sum_i w_i y_i(x): its gradient wrt x is the backward pass with dy = w.
double weighted(const ref::vec &y, const std::vector<float> &w)
{
    double s = 0;
    for (size_t i = 0; i < y.size(); i++)
        s += (double)w[i] * y[i];
    return s;
}

bool msg_has(const char *needle) { return std::strstr(vqz_last_error(), needle) != nullptr; }

} // namespace

TEST_CASE("activations match naive loops on random shapes", "[eltwise]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 11);
    std::vector<std::vector<int64_t>> shapes;
    for (int i = 0; i < 6; i++)
        shapes.push_back(rand_shape(&r, 9));
    shapes.push_back({2, 16, 64, 65}); // large enough to run threaded
    for (auto &s : shapes) {
        int64_t n = numel(s), C = s[1];
        auto x = rand_vec(&r, (size_t)n, -6.0f, 6.0f);
        std::vector<float> y(x.size());
        vqz_tensor tx = tens(x, s), ty = tens(y, s);
        ref::vec xd = ref::to_d(x);

        REQUIRE(vqz_silu_fwd(ctx.c, &tx, &ty) == VQZ_OK);
        CHECK(rel_err(y, ref::to_f(ref::silu(xd))) <= 1e-6);
        float alpha = 0.5f + vqz_rng_uniform(&r);
        REQUIRE(vqz_elu_fwd(ctx.c, alpha, &tx, &ty) == VQZ_OK);
        CHECK(rel_err(y, ref::to_f(ref::elu(xd, alpha))) <= 1e-6);
        float slope = 0.01f + 0.3f * vqz_rng_uniform(&r);
        REQUIRE(vqz_leaky_relu_fwd(ctx.c, slope, &tx, &ty) == VQZ_OK);
        CHECK(rel_err(y, ref::to_f(ref::leaky_relu(xd, slope))) <= 1e-6);

        auto al = rand_vec(&r, (size_t)C, 0.2f, 2.0f);
        vqz_tensor ta = vqz_t1(al.data(), C);
        REQUIRE(vqz_snake_fwd(ctx.c, &tx, &ta, &ty) == VQZ_OK);
        CHECK(rel_err(y, ref::to_f(ref::snake(xd, ref::to_d(al), s[0], C, n / (s[0] * C)))) <= 1e-5);
    }
}

TEST_CASE("exp, expm1 and sin kernels are accurate over the whole float range", "[eltwise]")
{
    Ctx ctx;
    // SiLU and ELU on a dense sweep of [-100, 100]: per-element error within a few ulp, plus the flush
    // to zero of exp(x) below FLT_MIN (|silu| < 2e-36 there).
    const int n = 400001;
    std::vector<float> x(n), y(n);
    for (int i = 0; i < n; i++)
        x[i] = -100.0f + 200.0f * (float)i / (float)(n - 1);
    x[n / 2] = 0.0f;
    x[1] = -1e-30f;
    x[2] = 1e-7f;
    x[3] = -3e-5f;
    vqz_tensor tx = vqz_t1(x.data(), n), ty = vqz_t1(y.data(), n);
    REQUIRE(vqz_silu_fwd(ctx.c, &tx, &ty) == VQZ_OK);
    double worst = 0;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        double v = x[i], ref = v / (1.0 + std::exp(-v));
        double err = std::fabs(y[i] - ref);
        bad += !(err <= 3e-7 * std::fabs(ref) + 2e-36);
        if (std::fabs(ref) > 1e-30)
            worst = std::fmax(worst, err / std::fabs(ref));
    }
    INFO("silu worst relative error " << worst);
    CHECK(bad == 0);
    CHECK(worst < 3e-7);
    REQUIRE(vqz_elu_fwd(ctx.c, 1.0f, &tx, &ty) == VQZ_OK);
    worst = 0;
    bad = 0;
    for (int i = 0; i < n; i++) {
        double v = x[i], ref = v > 0 ? v : std::expm1(v);
        double err = std::fabs(y[i] - ref);
        bad += !(err <= 3e-7 * std::fabs(ref) + 1e-40);
        if (ref != 0)
            worst = std::fmax(worst, err / std::fabs(ref));
    }
    INFO("elu worst relative error " << worst);
    CHECK(bad == 0);
    CHECK(worst < 3e-7);

    // Snake's dx = dy (1 + sin(2z) a/(a+eps)) exposes sin/cos of z = a x to absolute error; a = 1000 puts
    // z on [-1e4, 1e4] (fast path up to 8192); the second row takes the libm path (|z| up to 1e5).
    const int L = 100000;
    std::vector<float> xs(2 * L), dy(2 * L, 1.0f), dx(2 * L), al = {1000.0f};
    for (int i = 0; i < L; i++) {
        xs[i] = -8.0f + 16.0f * (float)i / (float)(L - 1);
        xs[L + i] = -100.0f + 200.0f * (float)i / (float)(L - 1);
    }
    vqz_tensor txs = vqz_t3(xs.data(), 2, 1, L), tdy = vqz_t3(dy.data(), 2, 1, L), tdx = vqz_t3(dx.data(), 2, 1, L);
    vqz_tensor ta = vqz_t1(al.data(), 1);
    REQUIRE(vqz_snake_bwd(ctx.c, &txs, &ta, &tdy, &tdx, nullptr) == VQZ_OK);
    double worst_fast = 0, worst_slow = 0;
    for (int i = 0; i < 2 * L; i++) {
        double z = (double)(al[0] * xs[i]);
        double ref = 1.0 + std::sin(2 * z) * 1000.0 / (1000.0 + 1e-9);
        double err = std::fabs(dx[i] - ref);
        if (i < L && std::fabs(z) <= 8192)
            worst_fast = std::fmax(worst_fast, err);
        else
            worst_slow = std::fmax(worst_slow, err);
    }
    INFO("snake dx worst absolute error: fast path " << worst_fast << ", libm path " << worst_slow);
    CHECK(worst_fast < 1e-6);
    CHECK(worst_slow < 1e-6);
    REQUIRE(vqz_snake_fwd(ctx.c, &txs, &ta, &tdx) == VQZ_OK);
    ref::vec ys = ref::snake(ref::to_d(xs), {1000.0}, 2, 1, L, true);
    CHECK(rel_err(dx, ref::to_f(ys)) <= 1e-6);

    // NaN propagates through every activation
    std::vector<float> nanv = {NAN, 1.0f}, out(2);
    vqz_tensor tn = vqz_t1(nanv.data(), 2), to = vqz_t1(out.data(), 2);
    REQUIRE(vqz_silu_fwd(ctx.c, &tn, &to) == VQZ_OK);
    CHECK(std::isnan(out[0]));
    REQUIRE(vqz_elu_fwd(ctx.c, 1.0f, &tn, &to) == VQZ_OK);
    CHECK(std::isnan(out[0]));
    REQUIRE(vqz_leaky_relu_fwd(ctx.c, 0.1f, &tn, &to) == VQZ_OK);
    CHECK(std::isnan(out[0]));
}

TEST_CASE("activation backward passes equal central finite differences", "[eltwise]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 12);
    const std::vector<int64_t> s = {2, 3, 7};
    const int64_t n = numel(s), N = 2, C = 3, L = 7;
    auto x = rand_vec(&r, (size_t)n, -3.0f, 3.0f);
    auto w = rand_vec(&r, (size_t)n);
    std::vector<float> dx(x.size());
    vqz_tensor tx = tens(x, s), tw = tens(w, s), tdx = tens(dx, s);
    const double h = 1e-6;

    REQUIRE(vqz_silu_bwd(ctx.c, &tx, &tw, &tdx) == VQZ_OK);
    auto g = ref::fd_grad([&](const ref::vec &v) { return weighted(ref::silu(v), w); }, ref::to_d(x), h);
    CHECK(rel_err(dx, ref::to_f(g)) <= 1e-5);

    REQUIRE(vqz_elu_bwd(ctx.c, 0.7f, &tx, &tw, &tdx) == VQZ_OK);
    g = ref::fd_grad([&](const ref::vec &v) { return weighted(ref::elu(v, 0.7f), w); }, ref::to_d(x), h);
    CHECK(rel_err(dx, ref::to_f(g)) <= 1e-5);

    REQUIRE(vqz_leaky_relu_bwd(ctx.c, 0.2f, &tx, &tw, &tdx) == VQZ_OK);
    g = ref::fd_grad([&](const ref::vec &v) { return weighted(ref::leaky_relu(v, 0.2f), w); }, ref::to_d(x), h);
    CHECK(rel_err(dx, ref::to_f(g)) <= 1e-5);

    auto al = rand_vec(&r, (size_t)C, 0.3f, 1.5f);
    std::vector<float> dal(C, 0.0f);
    vqz_tensor ta = vqz_t1(al.data(), C), tda = vqz_t1(dal.data(), C);
    REQUIRE(vqz_snake_bwd(ctx.c, &tx, &ta, &tw, &tdx, &tda) == VQZ_OK);
    ref::vec ad = ref::to_d(al);
    g = ref::fd_grad([&](const ref::vec &v) { return weighted(ref::snake(v, ad, N, C, L), w); }, ref::to_d(x), h);
    CHECK(rel_err(dx, ref::to_f(g)) <= 1e-5);
    g = ref::fd_grad([&](const ref::vec &a) { return weighted(ref::snake(ref::to_d(x), a, N, C, L), w); }, ad, h);
    CHECK(rel_err(dal, ref::to_f(g)) <= 1e-5);

    // dx == NULL computes only dalpha; both NULL is a no-op
    std::vector<float> dal2(C, 0.0f);
    vqz_tensor tda2 = vqz_t1(dal2.data(), C);
    REQUIRE(vqz_snake_bwd(ctx.c, &tx, &ta, &tw, nullptr, &tda2) == VQZ_OK);
    CHECK(rel_err(dal2, dal) <= 1e-7);
    REQUIRE(vqz_snake_bwd(ctx.c, &tx, &ta, &tw, nullptr, nullptr) == VQZ_OK);
    REQUIRE(vqz_silu_bwd(ctx.c, &tx, &tw, nullptr) == VQZ_OK);
}

TEST_CASE("snake dalpha accumulates over batch and calls; threaded rows agree with one thread", "[eltwise]")
{
    Ctx ctx2(2), ctx1(1);
    vqz_rng r;
    vqz_rng_seed(&r, 13);
    const int64_t N = 3, C = 5, L = 4000; // 60000 elements: threaded
    auto x = rand_vec(&r, (size_t)(N * C * L), -2.0f, 2.0f);
    auto dy = rand_vec(&r, x.size());
    auto al = rand_vec(&r, (size_t)C, 0.5f, 1.5f);
    std::vector<float> dx1(x.size()), dx2(x.size()), da1(C, 0.25f), da2(C, 0.25f);
    vqz_tensor tx = vqz_t3(x.data(), N, C, L), tdy = vqz_t3(dy.data(), N, C, L);
    vqz_tensor t1 = vqz_t3(dx1.data(), N, C, L), t2 = vqz_t3(dx2.data(), N, C, L);
    vqz_tensor ta = vqz_t3(al.data(), 1, C, 1), tda1 = vqz_t3(da1.data(), 1, C, 1), tda2 = vqz_t3(da2.data(), 1, C, 1);
    REQUIRE(vqz_snake_bwd(ctx1.c, &tx, &ta, &tdy, &t1, &tda1) == VQZ_OK);
    REQUIRE(vqz_snake_bwd(ctx2.c, &tx, &ta, &tdy, &t2, &tda2) == VQZ_OK);
    CHECK(rel_err(dx1, dx2) == 0.0);
    CHECK(rel_err(da1, da2) == 0.0); // the per-channel sum runs in a fixed order
    // the accumulated value is 0.25 + the exact gradient
    for (int64_t c = 0; c < C; c++) {
        double s = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t l = 0; l < L; l++) {
                size_t i = (size_t)((n * C + c) * L + l);
                double a = al[c], z = a * x[i], sn = std::sin(z), cs = std::cos(z);
                s += dy[i] * (2 * sn * cs * x[i] / (a + 1e-9) - sn * sn / ((a + 1e-9) * (a + 1e-9)));
            }
        CHECK(std::fabs(da1[c] - (0.25 + s)) <= 1e-5 * std::fmax(1.0, std::fabs(s)));
    }
    // a second call adds again
    REQUIRE(vqz_snake_bwd(ctx2.c, &tx, &ta, &tdy, nullptr, &tda2) == VQZ_OK);
    for (int64_t c = 0; c < C; c++)
        CHECK(std::fabs((da2[c] - 0.25f) - 2 * (da1[c] - 0.25f)) <= 1e-5 * std::fabs(da1[c] - 0.25f) + 1e-6);
}

TEST_CASE("activations run in place where ops.h allows it", "[eltwise]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 14);
    const std::vector<int64_t> s = {2, 4, 9, 11};
    const int64_t n = numel(s);
    auto x = rand_vec(&r, (size_t)n, -4.0f, 4.0f);
    auto dy = rand_vec(&r, (size_t)n);
    std::vector<float> al = {0.5f, 1.0f, 1.5f, 2.0f}, da(4, 0.0f), da_ip(4, 0.0f);
    vqz_tensor tx = tens(x, s), tdy = tens(dy, s), ta = vqz_t1(al.data(), 4);
    using Fwd = std::function<vqz_status(const vqz_tensor *, vqz_tensor *)>;
    using Bwd = std::function<vqz_status(const vqz_tensor *, vqz_tensor *)>; // (dy, dx)
    std::vector<std::pair<Fwd, Bwd>> ops = {
        {[&](const vqz_tensor *a, vqz_tensor *b) { return vqz_silu_fwd(ctx.c, a, b); },
         [&](const vqz_tensor *g, vqz_tensor *d) { return vqz_silu_bwd(ctx.c, &tx, g, d); }},
        {[&](const vqz_tensor *a, vqz_tensor *b) { return vqz_elu_fwd(ctx.c, 1.0f, a, b); },
         [&](const vqz_tensor *g, vqz_tensor *d) { return vqz_elu_bwd(ctx.c, 1.0f, &tx, g, d); }},
        {[&](const vqz_tensor *a, vqz_tensor *b) { return vqz_leaky_relu_fwd(ctx.c, 0.1f, a, b); },
         [&](const vqz_tensor *g, vqz_tensor *d) { return vqz_leaky_relu_bwd(ctx.c, 0.1f, &tx, g, d); }},
        {[&](const vqz_tensor *a, vqz_tensor *b) { return vqz_snake_fwd(ctx.c, a, &ta, b); },
         [&](const vqz_tensor *g, vqz_tensor *d) { return vqz_snake_bwd(ctx.c, &tx, &ta, g, d, nullptr); }},
    };
    for (auto &op : ops) {
        std::vector<float> y(x.size()), ip = x, dx(x.size()), dip = dy;
        vqz_tensor ty = tens(y, s), tip = tens(ip, s), tdx = tens(dx, s), tdip = tens(dip, s);
        REQUIRE(op.first(&tx, &ty) == VQZ_OK);
        REQUIRE(op.first(&tip, &tip) == VQZ_OK);
        CHECK(rel_err(ip, y) == 0.0);
        REQUIRE(op.second(&tdy, &tdx) == VQZ_OK);
        REQUIRE(op.second(&tdip, &tdip) == VQZ_OK);
        CHECK(rel_err(dip, dx) == 0.0);
    }
}

TEST_CASE("scaled adds match naive loops, in place and out of place", "[eltwise]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 15);
    for (int64_t n : {1, 37, 100000}) {
        auto a = rand_vec(&r, (size_t)n), b = rand_vec(&r, (size_t)n);
        std::vector<float> y(n), want(n);
        vqz_tensor ta = vqz_t1(a.data(), n), tb = vqz_t1(b.data(), n), ty = vqz_t1(y.data(), n);
        for (int64_t i = 0; i < n; i++)
            want[i] = (float)((double)a[i] + 0.3 * (double)b[i]);
        REQUIRE(vqz_add_scaled(ctx.c, &ta, 0.3f, &tb, &ty) == VQZ_OK);
        CHECK(rel_err(y, want) <= 1e-6);
        auto a2 = a, b2 = b;
        vqz_tensor ta2 = vqz_t1(a2.data(), n), tb2 = vqz_t1(b2.data(), n);
        REQUIRE(vqz_add_scaled(ctx.c, &ta2, 0.3f, &tb, &ta2) == VQZ_OK); // y aliases a
        CHECK(rel_err(a2, y) == 0.0);
        REQUIRE(vqz_add_scaled(ctx.c, &ta, 0.3f, &tb2, &tb2) == VQZ_OK); // y aliases b
        CHECK(rel_err(b2, y) == 0.0);

        auto yy = b;
        vqz_tensor tyy = vqz_t1(yy.data(), n);
        REQUIRE(vqz_axpy(ctx.c, -1.5f, &ta, &tyy) == VQZ_OK);
        for (int64_t i = 0; i < n; i++)
            want[i] = (float)((double)b[i] - 1.5 * (double)a[i]);
        CHECK(rel_err(yy, want) <= 1e-6);

        REQUIRE(vqz_scale(ctx.c, 2.5f, &ta, &ty) == VQZ_OK);
        for (int64_t i = 0; i < n; i++)
            want[i] = 2.5f * a[i];
        CHECK(rel_err(y, want) == 0.0);
        REQUIRE(vqz_scale(ctx.c, 2.5f, &ta, &ta) == VQZ_OK);
        CHECK(rel_err(a, want) == 0.0);
    }
}

TEST_CASE("upsample2x and pixel shuffle match naive loops; backward equals finite differences", "[eltwise]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 16);
    struct Case {
        int64_t N, C, H, W;
    };
    for (Case c : {Case{1, 1, 1, 1}, Case{2, 3, 5, 7}, Case{2, 8, 33, 40}}) {
        int64_t n = c.N * c.C * c.H * c.W;
        auto x = rand_vec(&r, (size_t)n);
        std::vector<float> y((size_t)(4 * n)), dx((size_t)n);
        vqz_tensor tx = vqz_t4(x.data(), c.N, c.C, c.H, c.W), ty = vqz_t4(y.data(), c.N, c.C, 2 * c.H, 2 * c.W);
        REQUIRE(vqz_upsample2x_fwd(ctx.c, &tx, &ty) == VQZ_OK);
        CHECK(rel_err(y, ref::to_f(ref::upsample2x(ref::to_d(x), c.N * c.C, c.H, c.W))) == 0.0);
        auto w = rand_vec(&r, y.size());
        vqz_tensor tw = vqz_t4(w.data(), c.N, c.C, 2 * c.H, 2 * c.W), tdx = vqz_t4(dx.data(), c.N, c.C, c.H, c.W);
        REQUIRE(vqz_upsample2x_bwd(ctx.c, &tw, &tdx) == VQZ_OK);
        if (n < 1000) {
            auto g = ref::fd_grad(
                [&](const ref::vec &v) { return weighted(ref::upsample2x(v, c.N * c.C, c.H, c.W), w); },
                ref::to_d(x), 1e-3);
            CHECK(rel_err(dx, ref::to_f(g)) <= 1e-6);
        } else { // the adjoint identity <w, U x> = <U^T w, x> on the large case
            double lhs = ref::dot(ref::to_d(w), ref::upsample2x(ref::to_d(x), c.N * c.C, c.H, c.W));
            double rhs = ref::dot(ref::to_d(dx), ref::to_d(x));
            CHECK(std::fabs(lhs - rhs) <= 1e-5 * std::fabs(lhs) + 1e-4);
        }
    }
    for (int rf : {1, 2, 3}) {
        const int64_t N = 2, C = 3, H = 4, W = 5;
        int64_t n = N * C * rf * rf * H * W;
        auto x = rand_vec(&r, (size_t)n), w = rand_vec(&r, (size_t)n);
        std::vector<float> y((size_t)n), dx((size_t)n);
        vqz_tensor tx = vqz_t4(x.data(), N, C * rf * rf, H, W), ty = vqz_t4(y.data(), N, C, H * rf, W * rf);
        vqz_tensor tw = vqz_t4(w.data(), N, C, H * rf, W * rf), tdx = vqz_t4(dx.data(), N, C * rf * rf, H, W);
        REQUIRE(vqz_pixel_shuffle_fwd(ctx.c, rf, &tx, &ty) == VQZ_OK);
        CHECK(rel_err(y, ref::to_f(ref::pixel_shuffle(ref::to_d(x), N, C, H, W, rf))) == 0.0);
        REQUIRE(vqz_pixel_shuffle_bwd(ctx.c, rf, &tw, &tdx) == VQZ_OK);
        auto g = ref::fd_grad([&](const ref::vec &v) { return weighted(ref::pixel_shuffle(v, N, C, H, W, rf), w); },
                              ref::to_d(x), 1e-3);
        CHECK(rel_err(dx, ref::to_f(g)) <= 1e-6);
    }
    // a known case pins PyTorch's channel order: channel c r^2 + i r + j lands at (h r + i, w r + j)
    std::vector<float> x = {0, 1, 2, 3}, y(4);
    vqz_tensor tx = vqz_t4(x.data(), 1, 4, 1, 1), ty = vqz_t4(y.data(), 1, 1, 2, 2);
    REQUIRE(vqz_pixel_shuffle_fwd(ctx.c, 2, &tx, &ty) == VQZ_OK);
    CHECK(y == std::vector<float>({0, 1, 2, 3}));
    std::vector<float> x2 = {0, 1, 2, 3, 4, 5, 6, 7}, y2(8); // [1,4,1,2] -> [1,1,2,4]
    vqz_tensor tx2 = vqz_t4(x2.data(), 1, 4, 1, 2), ty2 = vqz_t4(y2.data(), 1, 1, 2, 4);
    REQUIRE(vqz_pixel_shuffle_fwd(ctx.c, 2, &tx2, &ty2) == VQZ_OK);
    CHECK(y2 == std::vector<float>({0, 2, 1, 3, 4, 6, 5, 7}));
}

TEST_CASE("concat and slice channels match naive loops and invert each other", "[eltwise]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 17);
    for (auto tail : std::vector<std::vector<int64_t>>{{}, {9}, {4, 6}}) {
        const int64_t N = 3, Ca = 2, Cb = 5;
        int64_t L = numel(tail);
        auto sh = [&](int64_t c) {
            std::vector<int64_t> s = {N, c};
            s.insert(s.end(), tail.begin(), tail.end());
            return s;
        };
        auto a = rand_vec(&r, (size_t)(N * Ca * L)), b = rand_vec(&r, (size_t)(N * Cb * L));
        std::vector<float> y((size_t)(N * (Ca + Cb) * L));
        vqz_tensor ta = tens(a, sh(Ca)), tb = tens(b, sh(Cb)), ty = tens(y, sh(Ca + Cb));
        REQUIRE(vqz_concat_channels(ctx.c, &ta, &tb, &ty) == VQZ_OK);
        CHECK(rel_err(y, ref::to_f(ref::concat(ref::to_d(a), ref::to_d(b), N, Ca, Cb, L))) == 0.0);
        std::vector<float> sa(a.size()), sb(b.size()), s3((size_t)(N * 3 * L));
        vqz_tensor tsa = tens(sa, sh(Ca)), tsb = tens(sb, sh(Cb)), ts3 = tens(s3, sh(3));
        REQUIRE(vqz_slice_channels(ctx.c, &ty, 0, &tsa) == VQZ_OK);
        REQUIRE(vqz_slice_channels(ctx.c, &ty, Ca, &tsb) == VQZ_OK);
        CHECK(sa == a);
        CHECK(sb == b);
        REQUIRE(vqz_slice_channels(ctx.c, &ty, 1, &ts3) == VQZ_OK);
        CHECK(rel_err(s3, ref::to_f(ref::slice(ref::to_d(y), N, Ca + Cb, L, 1, 3))) == 0.0);
        // channels [5, 8) do not exist in a 7-channel tensor
        REQUIRE(vqz_slice_channels(ctx.c, &ty, 5, &ts3) == VQZ_ERR_SHAPE);
        CHECK(msg_has("slice_channels"));
        REQUIRE(vqz_slice_channels(ctx.c, &ty, -1, &ts3) == VQZ_ERR_SHAPE);
    }
}

TEST_CASE("weight norm matches PyTorch's dim=0 definition; backward equals finite differences", "[eltwise]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 18);
    for (auto s : std::vector<std::vector<int64_t>>{{4, 3, 5}, {6, 2, 3, 3}, {5}, {64, 64, 7}}) {
        int64_t n = numel(s), O = s[0], K = n / O;
        auto v = rand_vec(&r, (size_t)n);
        auto g = rand_vec(&r, (size_t)O, 0.5f, 2.0f);
        std::vector<float> w((size_t)n);
        std::vector<int64_t> gs(s.size(), 1);
        gs[0] = O; // PyTorch's g shape [O,1,...]
        vqz_tensor tv = tens(v, s), tg = tens(g, gs), tw = tens(w, s);
        REQUIRE(vqz_weight_norm_fwd(ctx.c, &tv, &tg, &tw) == VQZ_OK);
        CHECK(rel_err(w, ref::to_f(ref::weight_norm(ref::to_d(v), ref::to_d(g), O, K))) <= 1e-6);

        auto dw = rand_vec(&r, (size_t)n);
        std::vector<float> dv((size_t)n), dg((size_t)O, 0.5f);
        vqz_tensor tdw = tens(dw, s), tdv = tens(dv, s), tdg = tens(dg, gs);
        REQUIRE(vqz_weight_norm_bwd(ctx.c, &tv, &tg, &tdw, &tdv, &tdg) == VQZ_OK);
        std::vector<size_t> idx; // FD on a subset of the large case
        for (size_t i = 0; i < (size_t)n; i += (size_t)(n > 200 ? 97 : 1))
            idx.push_back(i);
        ref::vec vd = ref::to_d(v), gd = ref::to_d(g);
        auto gv = ref::fd_grad([&](const ref::vec &x) { return weighted(ref::weight_norm(x, gd, O, K), dw); }, vd,
                               1e-6, idx);
        std::vector<float> dv_sub, gv_sub;
        for (size_t i : idx) {
            dv_sub.push_back(dv[i]);
            gv_sub.push_back((float)gv[i]);
        }
        CHECK(rel_err(dv_sub, gv_sub) <= 1e-5);
        auto gg = ref::fd_grad([&](const ref::vec &x) { return weighted(ref::weight_norm(vd, x, O, K), dw); }, gd, 1e-6);
        for (int64_t o = 0; o < O; o++)
            CHECK(std::fabs((dg[o] - 0.5f) - gg[o]) <= 1e-5 * std::fmax(1.0, std::fabs(gg[o]))); // accumulated

        // dv may alias dw; dg alone is allowed
        auto dw2 = dw;
        std::vector<float> dg2((size_t)O, 0.0f);
        vqz_tensor tdw2 = tens(dw2, s), tdg2 = tens(dg2, gs);
        REQUIRE(vqz_weight_norm_bwd(ctx.c, &tv, &tg, &tdw2, &tdw2, nullptr) == VQZ_OK);
        CHECK(rel_err(dw2, dv) == 0.0);
        REQUIRE(vqz_weight_norm_bwd(ctx.c, &tv, &tg, &tdw, nullptr, &tdg2) == VQZ_OK);
        for (int64_t o = 0; o < O; o++)
            CHECK(dg2[o] == Approx(dg[o] - 0.5f).margin(1e-6));
    }
    // a zero row cannot be normalised
    std::vector<float> v = {1, 2, 0, 0}, g = {1, 1}, w(4);
    vqz_tensor tv = vqz_t2(v.data(), 2, 2), tg = vqz_t1(g.data(), 2), tw = vqz_t2(w.data(), 2, 2);
    REQUIRE(vqz_weight_norm_fwd(ctx.c, &tv, &tg, &tw) == VQZ_ERR_NONFINITE);
    CHECK(msg_has("row 1"));
}

TEST_CASE("elementwise ops reject mismatched shapes and CUDA contexts with a message", "[eltwise]")
{
    Ctx ctx;
    std::vector<float> a(24), b(24), c(96), al(3);
    vqz_tensor t234 = vqz_t3(a.data(), 2, 3, 4), t243 = vqz_t3(b.data(), 2, 4, 3);
    vqz_tensor t4 = vqz_t4(a.data(), 1, 4, 2, 3), tal = vqz_t1(al.data(), 3), t1 = vqz_t1(b.data(), 24);

    REQUIRE(vqz_silu_fwd(ctx.c, &t234, &t243) == VQZ_ERR_SHAPE);
    CHECK(msg_has("silu_fwd"));
    CHECK(msg_has("[2,3,4]"));
    CHECK(msg_has("[2,4,3]"));
    REQUIRE(vqz_elu_bwd(ctx.c, 1.0f, &t234, &t243, nullptr) == VQZ_ERR_SHAPE);
    CHECK(msg_has("elu_bwd"));
    REQUIRE(vqz_leaky_relu_fwd(ctx.c, 0.1f, &t234, &t1) == VQZ_ERR_SHAPE);
    REQUIRE(vqz_snake_fwd(ctx.c, &t243, &tal, &t243) == VQZ_ERR_SHAPE); // 4 channels, 3 alphas
    CHECK(msg_has("snake_fwd"));
    REQUIRE(vqz_snake_fwd(ctx.c, &t1, &tal, &t1) == VQZ_ERR_SHAPE); // rank 1 has no channels
    REQUIRE(vqz_add_scaled(ctx.c, &t234, 1.0f, &t243, &t234) == VQZ_ERR_SHAPE);
    CHECK(msg_has("add_scaled"));
    REQUIRE(vqz_axpy(ctx.c, 1.0f, &t234, &t1) == VQZ_ERR_SHAPE);
    REQUIRE(vqz_scale(ctx.c, 1.0f, &t234, &t1) == VQZ_ERR_SHAPE);

    vqz_tensor up_bad = vqz_t4(c.data(), 1, 4, 4, 5);
    REQUIRE(vqz_upsample2x_fwd(ctx.c, &t4, &up_bad) == VQZ_ERR_SHAPE);
    CHECK(msg_has("upsample2x_fwd"));
    REQUIRE(vqz_upsample2x_bwd(ctx.c, &up_bad, &t4) == VQZ_ERR_SHAPE);
    vqz_tensor up_ok = vqz_t4(c.data(), 1, 4, 4, 6);
    vqz_tensor overlap = vqz_t4(c.data() + 10, 1, 4, 2, 3);
    REQUIRE(vqz_upsample2x_fwd(ctx.c, &overlap, &up_ok) == VQZ_ERR_INVALID_ARG); // in place is impossible
    vqz_tensor ps_out = vqz_t4(c.data(), 1, 1, 4, 6);
    REQUIRE(vqz_pixel_shuffle_fwd(ctx.c, 2, &t4, &ps_out) == VQZ_OK);
    REQUIRE(vqz_pixel_shuffle_fwd(ctx.c, 3, &t4, &ps_out) == VQZ_ERR_SHAPE);
    CHECK(msg_has("pixel_shuffle_fwd"));
    REQUIRE(vqz_pixel_shuffle_bwd(ctx.c, 0, &ps_out, &t4) == VQZ_ERR_INVALID_ARG);

    vqz_tensor cat_bad = vqz_t3(c.data(), 2, 6, 5);
    REQUIRE(vqz_concat_channels(ctx.c, &t234, &t234, &cat_bad) == VQZ_ERR_SHAPE);
    CHECK(msg_has("concat_channels"));
    vqz_tensor wn_g = vqz_t1(al.data(), 3);
    REQUIRE(vqz_weight_norm_fwd(ctx.c, &t243, &wn_g, &t243) == VQZ_ERR_SHAPE);
    CHECK(msg_has("weight_norm_fwd"));
    REQUIRE(vqz_silu_fwd(nullptr, &t234, &t234) == VQZ_ERR_INVALID_ARG);
    REQUIRE(vqz_silu_fwd(ctx.c, nullptr, &t234) == VQZ_ERR_INVALID_ARG);

    // A CUDA context without a device behind it: CPU tensors are refused by name; tensors labelled CUDA
    // reach the dispatch, which refuses before touching them.
    vqz_nn_ctx cuda = *ctx.c;
    cuda.device = VQZ_CUDA;
    cuda.cuda = nullptr;
    REQUIRE(vqz_silu_fwd(&cuda, &t234, &t234) == VQZ_ERR_INVALID_ARG);
    CHECK(msg_has("not a CUDA tensor"));
    vqz_tensor g234 = t234, g243 = t243, gwn = wn_g, g4 = t4, gps = ps_out;
    g234.device = g243.device = gwn.device = g4.device = gps.device = VQZ_CUDA;
    REQUIRE(vqz_silu_fwd(&cuda, &g234, &g234) == VQZ_ERR_NO_CUDA);
    CHECK(msg_has("silu_fwd"));
    gwn.shape[0] = g243.shape[0]; // one gain per row: the op's own checks come before the device's
    REQUIRE(vqz_weight_norm_bwd(&cuda, &g243, &gwn, &g243, nullptr, nullptr) == VQZ_ERR_NO_CUDA);
    REQUIRE(vqz_pixel_shuffle_fwd(&cuda, 2, &g4, &gps) == VQZ_ERR_NO_CUDA);
}
