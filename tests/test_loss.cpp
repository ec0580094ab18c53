// test_loss.cpp — MSE/L1 (nn/loss.c), the multi-resolution STFT loss (nn/stft_loss.c) and MS-SSIM
// (nn/msssim.c): values against naive double-precision references written here, gradients against
// central finite differences in double, and both against golden values written by PyTorch
// (tests/reference/losses_ref.py -> tests/golden/losses.txt).
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "ref_eltwise.h"
#include "testutil.h"

extern "C" {
#include "common/status.h"
#include "nn/msssim.h"
#include "nn/ops.h"
#include "nn/stft_loss.h"
}

namespace {

struct Ctx {
    vqz_nn_ctx *c = nullptr;
    explicit Ctx(int threads = 2) { REQUIRE(vqz_nn_ctx_create(&c, VQZ_DEVICE_CPU, threads) == VQZ_OK); }
    ~Ctx() { vqz_nn_ctx_free(c); }
};

struct Stft {
    vqz_stft_loss *l = nullptr;
    Stft(const std::vector<int> &sizes)
    {
        REQUIRE(vqz_stft_loss_create(&l, sizes.empty() ? nullptr : sizes.data(), (int)sizes.size()) == VQZ_OK);
    }
    ~Stft() { vqz_stft_loss_free(l); }
};

bool msg_has(const char *needle) { return std::strstr(vqz_last_error(), needle) != nullptr; }

// ------------------------------------------------------------------------- naive STFT loss (double)

// The definition of nn/stft_loss.h with a direct DFT. x, y are B rows of T samples.
double stft_ref(const ref::vec &x, const ref::vec &y, int64_t B, int64_t T, const std::vector<int> &sizes)
{
    double total = 0;
    for (int n : sizes) {
        int hop = n / 4, K = n / 2 + 1;
        int64_t F = (T - n) / hop + 1;
        std::vector<double> w(n), cs((size_t)K * n), sn((size_t)K * n);
        for (int t = 0; t < n; t++)
            w[t] = 0.5 - 0.5 * std::cos(2 * M_PI * t / n);
        for (int k = 0; k < K; k++)
            for (int t = 0; t < n; t++) {
                cs[(size_t)k * n + t] = std::cos(2 * M_PI * (double)((int64_t)k * t % n) / n);
                sn[(size_t)k * n + t] = std::sin(2 * M_PI * (double)((int64_t)k * t % n) / n);
            }
        double sd = 0, sy = 0, sl = 0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t f = 0; f < F; f++)
                for (int k = 0; k < K; k++) {
                    double rx = 0, ix = 0, ry = 0, iy = 0;
                    for (int t = 0; t < n; t++) {
                        size_t i = (size_t)(b * T + f * hop + t);
                        double c = cs[(size_t)k * n + t], s = sn[(size_t)k * n + t];
                        rx += w[t] * x[i] * c;
                        ix -= w[t] * x[i] * s;
                        ry += w[t] * y[i] * c;
                        iy -= w[t] * y[i] * s;
                    }
                    double mx = std::sqrt(rx * rx + ix * ix + 1e-7), my = std::sqrt(ry * ry + iy * iy + 1e-7);
                    sd += (my - mx) * (my - mx);
                    sy += my * my;
                    sl += std::fabs(std::log(my) - std::log(mx));
                }
        total += std::sqrt(sd) / std::sqrt(sy) + sl / (double)(B * F * K);
    }
    return total / (double)sizes.size();
}

// A band-limited "speech-like" target and a noisy, detuned prediction of it.
void audio_pair(vqz_rng *r, int64_t B, int64_t T, std::vector<float> &x, std::vector<float> &y)
{
    x.resize((size_t)(B * T));
    y.resize((size_t)(B * T));
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            double s = 0.5 * std::sin(0.05 * t * (1 + 0.1 * b)) + 0.3 * std::sin(0.31 * t + b) +
                       0.1 * std::sin(1.7 * t);
            y[(size_t)(b * T + t)] = (float)s;
            x[(size_t)(b * T + t)] = (float)(0.9 * s + 0.2 * (vqz_rng_uniform(r) - 0.5));
        }
}

// ---------------------------------------------------------------------------- naive MS-SSIM (double)

struct Img {
    int64_t H = 0, W = 0;
    ref::vec p;
    double at(int64_t h, int64_t w) const { return p[(size_t)(h * W + w)]; }
};

ref::vec gauss11()
{
    ref::vec g(11);
    double s = 0;
    for (int i = 0; i < 11; i++) {
        g[i] = std::exp(-(double)((i - 5) * (i - 5)) / (2 * 1.5 * 1.5));
        s += g[i];
    }
    for (auto &v : g)
        v /= s;
    return g;
}

// 'valid' 11x11 Gaussian filtering written as the full 2-D sum (the window is the outer product).
Img filt(const Img &a)
{
    static const ref::vec g = gauss11();
    Img o;
    o.H = a.H - 10;
    o.W = a.W - 10;
    o.p.assign((size_t)(o.H * o.W), 0.0);
    for (int64_t h = 0; h < o.H; h++)
        for (int64_t w = 0; w < o.W; w++) {
            double s = 0;
            for (int i = 0; i < 11; i++)
                for (int j = 0; j < 11; j++)
                    s += g[i] * g[j] * a.at(h + i, w + j);
            o.p[(size_t)(h * o.W + w)] = s;
        }
    return o;
}

// pytorch_msssim's avg_pool2d(kernel 2, padding = size % 2, count_include_pad): zero padding on both
// sides of an odd dimension, always divided by 4.
Img pool(const Img &a)
{
    int64_t ph = a.H % 2, pw = a.W % 2;
    Img o;
    o.H = (a.H + 2 * ph - 2) / 2 + 1;
    o.W = (a.W + 2 * pw - 2) / 2 + 1;
    o.p.assign((size_t)(o.H * o.W), 0.0);
    for (int64_t h = 0; h < o.H; h++)
        for (int64_t w = 0; w < o.W; w++) {
            double s = 0;
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    int64_t hh = 2 * h - ph + i, ww = 2 * w - pw + j;
                    if (hh >= 0 && hh < a.H && ww >= 0 && ww < a.W)
                        s += a.at(hh, ww);
                }
            o.p[(size_t)(h * o.W + w)] = s / 4;
        }
    return o;
}

Img mul(const Img &a, const Img &b)
{
    Img o = a;
    for (size_t i = 0; i < o.p.size(); i++)
        o.p[i] = a.p[i] * b.p[i];
    return o;
}

// MS-SSIM of one channel plane.
double msssim_plane(Img x, Img y)
{
    const double w[5] = {0.0448, 0.2856, 0.3001, 0.2363, 0.1333};
    const double C1 = (0.01 * 2) * (0.01 * 2), C2 = (0.03 * 2) * (0.03 * 2);
    double prod = 1;
    for (int s = 0; s < 5; s++) {
        Img mx = filt(x), my = filt(y), xx = filt(mul(x, x)), yy = filt(mul(y, y)), xy = filt(mul(x, y));
        double cs = 0, ss = 0;
        for (size_t i = 0; i < mx.p.size(); i++) {
            double m1 = mx.p[i], m2 = my.p[i];
            double s11 = xx.p[i] - m1 * m1, s22 = yy.p[i] - m2 * m2, s12 = xy.p[i] - m1 * m2;
            double c = (2 * s12 + C2) / (s11 + s22 + C2);
            cs += c;
            ss += (2 * m1 * m2 + C1) / (m1 * m1 + m2 * m2 + C1) * c;
        }
        cs /= (double)mx.p.size();
        ss /= (double)mx.p.size();
        double v = s < 4 ? cs : ss;
        prod *= std::pow(std::fmax(v, 0.0), w[s]);
        x = pool(x);
        y = pool(y);
    }
    return prod;
}

// Mean MS-SSIM of [N, C, H, W] images.
double msssim_ref(const ref::vec &x, const ref::vec &y, int64_t N, int64_t C, int64_t H, int64_t W)
{
    double s = 0;
    for (int64_t p = 0; p < N * C; p++) {
        Img a, b;
        a.H = b.H = H;
        a.W = b.W = W;
        a.p.assign(x.begin() + p * H * W, x.begin() + (p + 1) * H * W);
        b.p.assign(y.begin() + p * H * W, y.begin() + (p + 1) * H * W);
        s += msssim_plane(a, b);
    }
    return s / (double)(N * C);
}

// Smooth random images in [-1, 1]: a few blurred blobs, and a degraded copy of them.
void image_pair(vqz_rng *r, int64_t n, int64_t H, int64_t W, std::vector<float> &x, std::vector<float> &y)
{
    x.resize((size_t)(n * H * W));
    y.resize(x.size());
    for (int64_t p = 0; p < n; p++) {
        double fx = 0.05 + 0.1 * vqz_rng_uniform(r), fy = 0.05 + 0.1 * vqz_rng_uniform(r), ph = 6.28 * vqz_rng_uniform(r);
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                double v = 0.6 * std::sin(fx * w + ph) * std::cos(fy * h) + 0.2 * std::sin(0.3 * (h + w));
                size_t i = (size_t)((p * H + h) * W + w);
                y[i] = (float)v;
                x[i] = (float)std::fmax(-1.0, std::fmin(1.0, 0.85 * v + 0.25 * (vqz_rng_uniform(r) - 0.5)));
            }
    }
}

// ----------------------------------------------------------------------------------- golden values

// tests/golden/losses.txt: lines "name count v0 v1 ...".
std::map<std::string, std::vector<double>> read_golden()
{
    std::map<std::string, std::vector<double>> g;
    std::ifstream f(vqz_test_path("golden/losses.txt"));
    std::string line;
    while (std::getline(f, line)) {
        if (line.empty() || line[0] == '#')
            continue;
        std::istringstream is(line);
        std::string name;
        size_t n = 0;
        is >> name >> n;
        std::vector<double> v(n);
        for (auto &e : v)
            is >> e;
        if (is)
            g[name] = v;
    }
    return g;
}

// Deterministic inputs shared with losses_ref.py: integer hashing only, exact in float32.
float hash_unit(uint32_t i, uint32_t seed)
{
    uint32_t h = i * 2654435761u ^ seed * 2246822519u;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    h *= 3266489917u;
    h ^= h >> 16;
    return (float)(h >> 8) / 8388608.0f - 1.0f; // [-1, 1), 24-bit exact
}

double rel_sub(const std::vector<float> &full, size_t stride, const std::vector<double> &want)
{
    std::vector<double> got;
    for (size_t i = 0; i < full.size(); i += stride)
        got.push_back(full[i]);
    return rel_err(got, want);
}

} // namespace

// --------------------------------------------------------------------------------------- MSE and L1

TEST_CASE("MSE and L1 losses match naive loops; gradients are weighted and overwrite", "[loss]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 31);
    for (int64_t n : {1, 257, 100003}) {
        auto x = rand_vec(&r, (size_t)n), y = rand_vec(&r, (size_t)n);
        x[0] = y[0]; // L1's subgradient at 0
        std::vector<float> g((size_t)n, 123.0f);
        vqz_tensor tx = vqz_t1(x.data(), n), ty = vqz_t1(y.data(), n), tg = vqz_t1(g.data(), n);
        double loss = -1;
        REQUIRE(vqz_mse_loss(ctx.c, &tx, &ty, 0.5f, &loss, &tg) == VQZ_OK);
        CHECK(loss == Approx(ref::mse(ref::to_d(x), ref::to_d(y))).epsilon(1e-12));
        auto fd = ref::fd_grad([&](const ref::vec &v) { return 0.5 * ref::mse(v, ref::to_d(y)); }, ref::to_d(x), 1e-4,
                               {0, (size_t)n / 2, (size_t)n - 1});
        for (size_t i : {(size_t)0, (size_t)n / 2, (size_t)n - 1})
            CHECK(g[i] == Approx(fd[i]).epsilon(1e-5).margin(1e-12));
        REQUIRE(vqz_l1_loss(ctx.c, &tx, &ty, 2.0f, &loss, &tg) == VQZ_OK);
        CHECK(loss == Approx(ref::l1(ref::to_d(x), ref::to_d(y))).epsilon(1e-12));
        CHECK(g[0] == 0.0f);
        int64_t wrong = 0;
        for (int64_t i = 1; i < n; i++)
            wrong += g[i] != (x[i] > y[i] ? 2.0f / n : -2.0f / n);
        CHECK(wrong == 0);
        REQUIRE(vqz_mse_loss(ctx.c, &tx, &ty, 1.0f, &loss, nullptr) == VQZ_OK); // value only
        // grad may alias x
        auto xa = x;
        vqz_tensor txa = vqz_t1(xa.data(), n);
        REQUIRE(vqz_mse_loss(ctx.c, &txa, &ty, 1.0f, &loss, &txa) == VQZ_OK);
        REQUIRE(vqz_mse_loss(ctx.c, &tx, &ty, 1.0f, &loss, &tg) == VQZ_OK);
        CHECK(xa == g);
    }
    std::vector<float> a(6), b(6);
    vqz_tensor t23 = vqz_t2(a.data(), 2, 3), t32 = vqz_t2(b.data(), 3, 2);
    double loss;
    REQUIRE(vqz_mse_loss(ctx.c, &t23, &t32, 1.0f, &loss, nullptr) == VQZ_ERR_SHAPE);
    CHECK(msg_has("mse_loss"));
    CHECK(msg_has("[2,3]"));
    REQUIRE(vqz_l1_loss(ctx.c, &t23, &t23, 1.0f, &loss, &t32) == VQZ_ERR_SHAPE);
    CHECK(msg_has("l1_loss"));
    a[2] = NAN;
    REQUIRE(vqz_l1_loss(ctx.c, &t23, &t23, 1.0f, &loss, nullptr) == VQZ_ERR_NONFINITE);
}

// ---------------------------------------------------------------------------------------- STFT loss

TEST_CASE("STFT loss equals a naive DFT computation in double", "[loss]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 32);
    const std::vector<int> sizes = {64, 128};
    const int64_t N = 2, T = 512;
    std::vector<float> x, y;
    audio_pair(&r, N, T, x, y);
    Stft l(sizes);
    vqz_tensor tx = vqz_t3(x.data(), N, 1, T), ty = vqz_t3(y.data(), N, 1, T);
    double loss = 0;
    REQUIRE(vqz_stft_loss_eval(ctx.c, l.l, &tx, &ty, 1.0f, &loss, nullptr) == VQZ_OK);
    double want = stft_ref(ref::to_d(x), ref::to_d(y), N, T, sizes);
    INFO("loss " << loss << " reference " << want << ", rel. error " << std::fabs(loss - want) / want);
    CHECK(std::fabs(loss - want) <= 1e-5 * want);
    // identical signals: exactly 0, gradient 0
    std::vector<float> g(x.size(), 7.0f);
    vqz_tensor tg = vqz_t3(g.data(), N, 1, T);
    REQUIRE(vqz_stft_loss_eval(ctx.c, l.l, &ty, &ty, 1.0f, &loss, &tg) == VQZ_OK);
    CHECK(loss == 0.0);
    for (float v : g)
        REQUIRE(v == 0.0f);
}

TEST_CASE("STFT loss gradient equals central finite differences in double", "[loss]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 33);
    const std::vector<int> sizes = {64, 128};
    const int64_t N = 2, T = 515; // the last 3 samples lie past the last frame of either size
    std::vector<float> x, y;
    audio_pair(&r, N, T, x, y);
    Stft l(sizes);
    std::vector<float> g(x.size(), 99.0f);
    vqz_tensor tx = vqz_t3(x.data(), N, 1, T), ty = vqz_t3(y.data(), N, 1, T), tg = vqz_t3(g.data(), N, 1, T);
    double loss = 0;
    const float weight = 2.5f;
    REQUIRE(vqz_stft_loss_eval(ctx.c, l.l, &tx, &ty, weight, &loss, &tg) == VQZ_OK);
    std::vector<size_t> idx;
    for (size_t i = 0; i < x.size(); i += 7)
        idx.push_back(i);
    for (size_t i = x.size() - 3; i < x.size(); i++)
        idx.push_back(i);
    ref::vec yd = ref::to_d(y);
    auto fd = ref::fd_grad([&](const ref::vec &v) { return weight * stft_ref(v, yd, N, T, sizes); }, ref::to_d(x),
                           1e-5, idx);
    std::vector<double> got, want;
    for (size_t i : idx) {
        got.push_back(g[i]);
        want.push_back(fd[i]);
    }
    double e = rel_err(got, want);
    INFO("max gradient error relative to the largest gradient: " << e);
    CHECK(e <= 1e-4);
    for (size_t i = x.size() - 3; i < x.size(); i++)
        CHECK(g[i] == 0.0f);
    CHECK(g[(size_t)T - 1] == 0.0f); // row 0's tail too
}

TEST_CASE("STFT loss: channels are rows, threads do not change a bit, bad shapes are refused", "[loss]")
{
    Ctx ctx1(1), ctx2(2);
    vqz_rng r;
    vqz_rng_seed(&r, 34);
    const int64_t T = 4096;
    std::vector<float> x, y;
    audio_pair(&r, 4, T, x, y);
    Stft l({});
    std::vector<float> g1(x.size()), g2(x.size()), g3(x.size());
    vqz_tensor tx = vqz_t3(x.data(), 4, 1, T), ty = vqz_t3(y.data(), 4, 1, T);
    vqz_tensor t1 = vqz_t3(g1.data(), 4, 1, T), t2 = vqz_t3(g2.data(), 4, 1, T);
    double l1 = 0, l2 = 0, l3 = 0;
    REQUIRE(vqz_stft_loss_eval(ctx1.c, l.l, &tx, &ty, 1.0f, &l1, &t1) == VQZ_OK);
    REQUIRE(vqz_stft_loss_eval(ctx2.c, l.l, &tx, &ty, 1.0f, &l2, &t2) == VQZ_OK);
    CHECK(l1 == l2);
    CHECK(g1 == g2);
    vqz_tensor sx = vqz_t3(x.data(), 2, 2, T), sy = vqz_t3(y.data(), 2, 2, T), s3 = vqz_t3(g3.data(), 2, 2, T);
    REQUIRE(vqz_stft_loss_eval(ctx2.c, l.l, &sx, &sy, 1.0f, &l3, &s3) == VQZ_OK);
    CHECK(l3 == l1);
    CHECK(g3 == g1);

    vqz_tensor short_x = vqz_t3(x.data(), 1, 1, 2047);
    REQUIRE(vqz_stft_loss_eval(ctx2.c, l.l, &short_x, &short_x, 1.0f, &l1, nullptr) == VQZ_ERR_SHAPE);
    CHECK(msg_has("2048"));
    vqz_tensor other = vqz_t3(y.data(), 2, 1, T);
    REQUIRE(vqz_stft_loss_eval(ctx2.c, l.l, &tx, &other, 1.0f, &l1, nullptr) == VQZ_ERR_SHAPE);
    CHECK(msg_has("stft_loss"));
    vqz_tensor flat = vqz_t1(x.data(), T);
    REQUIRE(vqz_stft_loss_eval(ctx2.c, l.l, &flat, &flat, 1.0f, &l1, nullptr) == VQZ_ERR_SHAPE);
    x[100] = INFINITY;
    REQUIRE(vqz_stft_loss_eval(ctx2.c, l.l, &tx, &ty, 1.0f, &l1, nullptr) == VQZ_ERR_NONFINITE);

    vqz_stft_loss *bad = nullptr;
    const int odd[1] = {510}, many[9] = {64, 64, 64, 64, 64, 64, 64, 64, 64};
    CHECK(vqz_stft_loss_create(&bad, odd, 1) == VQZ_ERR_INVALID_ARG);
    CHECK(vqz_stft_loss_create(&bad, many, 9) == VQZ_ERR_INVALID_ARG);
    CHECK(vqz_stft_loss_create(&bad, odd, 0) == VQZ_ERR_INVALID_ARG);
    CHECK(bad == nullptr);
    vqz_stft_loss_free(nullptr);
}

TEST_CASE("STFT loss matches PyTorch (golden values from losses_ref.py)", "[loss]")
{
    auto gold = read_golden();
    REQUIRE(gold.count("stft.loss"));
    REQUIRE(gold.count("stft.grad_stride7"));
    Ctx ctx;
    // the inputs losses_ref.py builds, with float32 operations that are exact or singly rounded (the
    // multipliers are powers of two, so FMA contraction cannot change a bit): y is noise through a
    // one-pole low-pass (pole 15/16), x = y + noise.
    const int64_t N = 2, T = 4096;
    std::vector<float> x((size_t)(N * T)), y((size_t)(N * T));
    for (uint32_t i = 0; i < (uint32_t)(N * T); i++) {
        x[i] = 0.125f * hash_unit(i, 1);
        y[i] = hash_unit(i, 2);
    }
    for (int64_t b = 0; b < N; b++)
        for (int64_t t = 1; t < T; t++) {
            float prev = y[(size_t)(b * T + t - 1)];
            y[(size_t)(b * T + t)] = (prev - prev * 0.0625f) + y[(size_t)(b * T + t)] * 0.0625f;
        }
    for (size_t i = 0; i < x.size(); i++)
        x[i] = y[i] + x[i];
    Stft l({});
    std::vector<float> g(x.size());
    vqz_tensor tx = vqz_t3(x.data(), N, 1, T), ty = vqz_t3(y.data(), N, 1, T), tg = vqz_t3(g.data(), N, 1, T);
    double loss = 0;
    REQUIRE(vqz_stft_loss_eval(ctx.c, l.l, &tx, &ty, 1.0f, &loss, &tg) == VQZ_OK);
    double want = gold["stft.loss"][0];
    INFO("C " << loss << ", PyTorch " << want << ", rel. error " << std::fabs(loss - want) / want);
    CHECK(std::fabs(loss - want) <= 1e-5 * std::fabs(want));
    double e = rel_sub(g, 7, gold["stft.grad_stride7"]);
    INFO("gradient rel. error " << e);
    CHECK(e <= 1e-4);
}

// ------------------------------------------------------------------------------------------ MS-SSIM

TEST_CASE("MS-SSIM: identical images give exactly 1; values equal a naive double computation", "[loss]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 41);
    struct Case {
        int64_t N, C, H, W;
    };
    for (Case c : {Case{1, 2, 176, 180}, Case{1, 1, 177, 163}}) { // the second has odd sides at every scale
        std::vector<float> x, y;
        image_pair(&r, c.N * c.C, c.H, c.W, x, y);
        vqz_tensor tx = vqz_t4(x.data(), c.N, c.C, c.H, c.W), ty = vqz_t4(y.data(), c.N, c.C, c.H, c.W);
        double v = 0;
        REQUIRE(vqz_msssim(ctx.c, &ty, &ty, &v) == VQZ_OK);
        CHECK(v == 1.0);
        double loss = -1;
        std::vector<float> g(x.size(), 5.0f);
        vqz_tensor tg = vqz_t4(g.data(), c.N, c.C, c.H, c.W);
        REQUIRE(vqz_msssim_loss(ctx.c, &ty, &ty, 1.0f, &loss, &tg) == VQZ_OK);
        CHECK(loss == 0.0);
        REQUIRE(vqz_msssim(ctx.c, &tx, &ty, &v) == VQZ_OK);
        double want = msssim_ref(ref::to_d(x), ref::to_d(y), c.N, c.C, c.H, c.W);
        INFO("MS-SSIM " << v << ", reference " << want << ", rel. error of 1 - MS-SSIM "
                        << std::fabs(v - want) / (1 - want));
        CHECK(want < 0.99);
        CHECK(std::fabs(v - want) <= 1e-5 * (1 - want)); // relative to the loss 1 - MS-SSIM
        REQUIRE(vqz_msssim_loss(ctx.c, &tx, &ty, 1.0f, &loss, nullptr) == VQZ_OK);
        CHECK(loss == 1.0 - v);
    }
}

TEST_CASE("MS-SSIM loss gradient equals central finite differences in double", "[loss]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 42);
    const int64_t H = 176, W = 176;
    std::vector<float> x, y;
    image_pair(&r, 1, H, W, x, y);
    std::vector<float> g(x.size(), 3.0f);
    vqz_tensor tx = vqz_t4(x.data(), 1, 1, H, W), ty = vqz_t4(y.data(), 1, 1, H, W), tg = vqz_t4(g.data(), 1, 1, H, W);
    double loss = 0;
    const float weight = 1000.0f;
    REQUIRE(vqz_msssim_loss(ctx.c, &tx, &ty, weight, &loss, &tg) == VQZ_OK);
    // corners, edges, the centre, a pixel that only the first scales see fully, and random ones
    std::vector<size_t> idx = {0, (size_t)(W - 1), (size_t)(H * W - 1), (size_t)(5 * W + 5), (size_t)(88 * W + 88),
                               (size_t)(100 * W + 3), (size_t)(170 * W + 120)};
    for (int k = 0; k < 4; k++)
        idx.push_back((size_t)vqz_rng_below(&r, (uint64_t)(H * W)));
    ref::vec yd = ref::to_d(y);
    auto fd = ref::fd_grad([&](const ref::vec &v) { return weight * (1 - msssim_ref(v, yd, 1, 1, H, W)); },
                           ref::to_d(x), 1e-4, idx);
    std::vector<double> got, want;
    for (size_t i : idx) {
        got.push_back(g[i]);
        want.push_back(fd[i]);
    }
    double e = rel_err(got, want);
    INFO("max gradient error relative to the largest sampled gradient: " << e);
    CHECK(e <= 1e-4);
    // the gradient of 1 - MS-SSIM points towards the target: a small step along -grad lowers the loss
    std::vector<float> x2(x.size());
    for (size_t i = 0; i < x.size(); i++)
        x2[i] = x[i] - 1e-3f * g[i];
    vqz_tensor tx2 = vqz_t4(x2.data(), 1, 1, H, W);
    double loss2 = 0;
    REQUIRE(vqz_msssim_loss(ctx.c, &tx2, &ty, 1.0f, &loss2, nullptr) == VQZ_OK);
    CHECK(loss2 < loss);
}

TEST_CASE("MS-SSIM: threads do not change a bit; small or mismatched images are refused", "[loss]")
{
    Ctx ctx1(1), ctx2(2);
    vqz_rng r;
    vqz_rng_seed(&r, 43);
    std::vector<float> x, y;
    image_pair(&r, 3, 161, 170, x, y);
    std::vector<float> g1(x.size()), g2(x.size());
    vqz_tensor tx = vqz_t4(x.data(), 3, 1, 161, 170), ty = vqz_t4(y.data(), 3, 1, 161, 170);
    vqz_tensor t1 = vqz_t4(g1.data(), 3, 1, 161, 170), t2 = vqz_t4(g2.data(), 3, 1, 161, 170);
    double l1 = 0, l2 = 0;
    REQUIRE(vqz_msssim_loss(ctx1.c, &tx, &ty, 1.0f, &l1, &t1) == VQZ_OK);
    REQUIRE(vqz_msssim_loss(ctx2.c, &tx, &ty, 1.0f, &l2, &t2) == VQZ_OK);
    CHECK(l1 == l2);
    CHECK(g1 == g2);

    double v;
    vqz_tensor small = vqz_t4(x.data(), 1, 1, 160, 170);
    REQUIRE(vqz_msssim(ctx2.c, &small, &small, &v) == VQZ_ERR_SHAPE);
    CHECK(msg_has("161"));
    vqz_tensor other = vqz_t4(y.data(), 1, 3, 161, 170);
    REQUIRE(vqz_msssim(ctx2.c, &tx, &other, &v) == VQZ_ERR_SHAPE);
    CHECK(msg_has("msssim"));
    vqz_tensor rank3 = vqz_t3(x.data(), 3, 161, 170);
    REQUIRE(vqz_msssim_loss(ctx2.c, &rank3, &rank3, 1.0f, &v, nullptr) == VQZ_ERR_SHAPE);
    REQUIRE(vqz_msssim_loss(ctx2.c, &tx, &ty, 1.0f, &v, &small) == VQZ_ERR_SHAPE);
    x[7] = NAN;
    REQUIRE(vqz_msssim(ctx2.c, &tx, &ty, &v) == VQZ_ERR_NONFINITE);
    vqz_nn_ctx cuda = *ctx2.c;
    cuda.device = VQZ_CUDA;
    REQUIRE(vqz_msssim(&cuda, &tx, &ty, &v) == VQZ_ERR_NO_CUDA);
}

TEST_CASE("MS-SSIM matches PyTorch (golden values from losses_ref.py)", "[loss]")
{
    auto gold = read_golden();
    REQUIRE(gold.count("msssim.value"));
    REQUIRE(gold.count("msssim.grad_stride31"));
    Ctx ctx;
    // losses_ref.py's images [1, 2, 176, 176]: hashed noise smoothed by exact halving averages (two
    // horizontal + vertical rounds, wrapping at the borders), x = clamp(y + noise / 4, -1, 1)
    const int64_t P = 2, H = 176, W = 176;
    std::vector<float> x((size_t)(P * H * W)), y(x.size()), t(x.size());
    for (uint32_t i = 0; i < (uint32_t)x.size(); i++)
        y[i] = hash_unit(i, 3);
    for (int round = 0; round < 2; round++)
        for (int64_t p = 0; p < P; p++) {
            float *yp = y.data() + p * H * W, *tp = t.data() + p * H * W;
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++)
                    tp[h * W + w] = (yp[h * W + w] + yp[h * W + (w + 1) % W]) * 0.5f;
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++)
                    yp[h * W + w] = (tp[h * W + w] + tp[((h + 1) % H) * W + w]) * 0.5f;
        }
    for (uint32_t i = 0; i < (uint32_t)x.size(); i++)
        x[i] = std::fmin(1.0f, std::fmax(-1.0f, y[i] + 0.25f * hash_unit(i, 4)));
    std::vector<float> g(x.size());
    vqz_tensor tx = vqz_t4(x.data(), 1, P, H, W), ty = vqz_t4(y.data(), 1, P, H, W), tg = vqz_t4(g.data(), 1, P, H, W);
    double loss = 0;
    REQUIRE(vqz_msssim_loss(ctx.c, &tx, &ty, 1.0f, &loss, &tg) == VQZ_OK);
    double want = gold["msssim.value"][0];
    INFO("C MS-SSIM " << 1 - loss << ", PyTorch " << want << ", rel. error of 1 - MS-SSIM "
                      << std::fabs(loss - (1 - want)) / (1 - want));
    CHECK(std::fabs((1 - loss) - want) <= 1e-5 * std::fabs(want));
    CHECK(std::fabs(loss - (1 - want)) <= 1e-4 * (1 - want)); // the loss itself, relative
    double e = rel_sub(g, 31, gold["msssim.grad_stride31"]);
    INFO("gradient rel. error " << e);
    CHECK(e <= 1e-4);
}

// ---------------------------------------------------------------------------- timings (not in CI)

TEST_CASE("loss timings: STFT 8 x 24000, MS-SSIM 16x3x192x192 (value + grad)", "[.][bench-loss]")
{
    Ctx ctx(0); // VQZ_THREADS, else all cores
    vqz_rng r;
    vqz_rng_seed(&r, 51);
    using clock = std::chrono::steady_clock;
    auto ms = [](clock::time_point a, clock::time_point b) {
        return std::chrono::duration<double, std::milli>(b - a).count();
    };
    {
        std::vector<float> x, y;
        audio_pair(&r, 8, 24000, x, y);
        std::vector<float> g(x.size());
        vqz_tensor tx = vqz_t3(x.data(), 8, 1, 24000), ty = vqz_t3(y.data(), 8, 1, 24000), tg = vqz_t3(g.data(), 8, 1, 24000);
        Stft l({});
        double loss, best = 1e9, best_v = 1e9;
        for (int i = 0; i < 10; i++) {
            auto t0 = clock::now();
            REQUIRE(vqz_stft_loss_eval(ctx.c, l.l, &tx, &ty, 1.0f, &loss, &tg) == VQZ_OK);
            auto t1 = clock::now();
            REQUIRE(vqz_stft_loss_eval(ctx.c, l.l, &tx, &ty, 1.0f, &loss, nullptr) == VQZ_OK);
            auto t2 = clock::now();
            best = std::fmin(best, ms(t0, t1));
            best_v = std::fmin(best_v, ms(t1, t2));
        }
        std::printf("stft loss 8 x 24000, sizes 512/1024/2048, %d threads: value+grad %.2f ms, value %.2f ms\n",
                    ctx.c->threads, best, best_v);
    }
    for (int64_t S : {192, 176}) {
        std::vector<float> x, y;
        image_pair(&r, 48, S, S, x, y);
        std::vector<float> g(x.size());
        vqz_tensor tx = vqz_t4(x.data(), 16, 3, S, S), ty = vqz_t4(y.data(), 16, 3, S, S), tg = vqz_t4(g.data(), 16, 3, S, S);
        double loss, best = 1e9, best_v = 1e9;
        for (int i = 0; i < 5; i++) {
            auto t0 = clock::now();
            REQUIRE(vqz_msssim_loss(ctx.c, &tx, &ty, 1.0f, &loss, &tg) == VQZ_OK);
            auto t1 = clock::now();
            REQUIRE(vqz_msssim(ctx.c, &tx, &ty, &loss) == VQZ_OK);
            auto t2 = clock::now();
            best = std::fmin(best, ms(t0, t1));
            best_v = std::fmin(best_v, ms(t1, t2));
        }
        std::printf("ms-ssim 16x3x%lldx%lld, %d threads: value+grad %.2f ms, value %.2f ms\n", (long long)S,
                    (long long)S, ctx.c->threads, best, best_v);
    }
}
