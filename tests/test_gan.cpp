// test_gan.cpp — the multi-scale STFT discriminator (nn/gan.c): its STFT against a naive DFT in double and
// its adjoint by the inner-product identity, every gradient against finite differences, a short training run
// on the sample recordings, determinism, argument checks, and a hidden timing case ([.bench]).
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <string>

#include "testutil.h"

extern "C" {
#include "codec/audio_io.h"
#include "common/status.h"
#include "nn/gan.h"
}

namespace {

struct Ctx {
    vqz_nn_ctx *c = nullptr;
    explicit Ctx(int threads = 2) { REQUIRE(vqz_nn_ctx_create(&c, VQZ_DEVICE_CPU, threads) == VQZ_OK); }
    ~Ctx() { vqz_nn_ctx_free(c); }
};

struct Disc {
    vqz_disc *d = nullptr;
    Disc(const vqz_disc_config &c, uint64_t seed) { REQUIRE(vqz_disc_create(&c, seed, &d) == VQZ_OK); }
    ~Disc() { vqz_disc_free(d); }
};

vqz_disc_config small_config(const std::vector<int> &sizes, int channels, int layers)
{
    vqz_disc_config c;
    vqz_disc_config_default(&c);
    c.scales = 0;
    for (int n : sizes)
        c.n_fft[c.scales++] = n;
    c.channels = channels;
    c.layers = layers;
    return c;
}

// Sines, a chirp and some noise: broadband enough that every bin carries signal.
std::vector<float> test_signal(vqz_rng *r, int64_t N, int64_t T, double f0)
{
    std::vector<float> x((size_t)(N * T));
    for (int64_t b = 0; b < N; b++)
        for (int64_t t = 0; t < T; t++) {
            double s = 0.4 * std::sin(f0 * t * (1 + 0.2 * b)) + 0.2 * std::sin(0.9 * t + b) +
                       0.15 * std::sin(1e-4 * (double)t * t) + 0.1 * (vqz_rng_uniform(r) - 0.5);
            x[(size_t)(b * T + t)] = (float)s;
        }
    return x;
}

double dot(const std::vector<float> &a, const std::vector<float> &b)
{
    double s = 0;
    for (size_t i = 0; i < a.size(); i++)
        s += (double)a[i] * b[i];
    return s;
}

double disc_loss(vqz_nn_ctx *ctx, vqz_disc *d, vqz_tensor *x, vqz_tensor *y)
{
    double l = 0;
    REQUIRE(vqz_disc_grad(ctx, d, x, y, &l) == VQZ_OK);
    return l;
}

double gen_loss(vqz_nn_ctx *ctx, vqz_disc *d, vqz_tensor *x, vqz_tensor *y, double wa, double wf)
{
    double adv = 0, feat = 0;
    REQUIRE(vqz_disc_generator_terms(ctx, d, x, y, (float)wa, (float)wf, nullptr, &adv, &feat) == VQZ_OK);
    return wa * adv + wf * feat;
}

// Mono mix of a sample recording, n samples from `offset`.
std::vector<float> sample_audio(const char *name, int64_t offset, int64_t n)
{
    std::string path = vqz_test_path(std::string("../samples/audio/") + name);
    vqz_audio *a = nullptr;
    REQUIRE(vqz_audio_read_all(path.c_str(), &a) == VQZ_OK);
    REQUIRE(a->info.frames >= offset + n);
    std::vector<float> out((size_t)n, 0.0f);
    for (int c = 0; c < a->info.channels; c++)
        for (int64_t t = 0; t < n; t++)
            out[(size_t)t] += a->data[c * a->info.frames + offset + t] / (float)a->info.channels;
    vqz_audio_free(a);
    return out;
}

} // namespace

TEST_CASE("disc STFT matches a naive DFT and its adjoint is exact", "[gan]")
{
    Ctx ctx;
    Disc D(small_config({64, 256}, 4, 1), 1);
    vqz_rng r;
    vqz_rng_seed(&r, 11);
    const int64_t N = 2, T = 1000; // not a multiple of the hop: the last frames hang over the end
    std::vector<float> x = rand_vec(&r, (size_t)(N * T));
    vqz_tensor xt = vqz_t3(x.data(), N, 1, T);
    for (int s = 0; s < 2; s++) {
        const int n = D.d->cfg.n_fft[s], hop = n / 4, K = n / 2 + 1;
        const int64_t F = vqz_disc_frames(D.d, s, T);
        REQUIRE(F == T / hop + 1);
        std::vector<float> z((size_t)(N * 2 * F * K));
        vqz_tensor zt = vqz_t4(z.data(), N, 2, F, K);
        REQUIRE(vqz_disc_stft(ctx.c, D.d, s, &xt, &zt) == VQZ_OK);

        std::vector<double> w(n);
        double sw = 0;
        for (int j = 0; j < n; j++) {
            w[j] = 0.5 - 0.5 * std::cos(2 * M_PI * j / n);
            sw += w[j] * w[j];
        }
        double c = 1 / std::sqrt(sw), num = 0, den = 0;
        for (int64_t b = 0; b < N; b++)
            for (int64_t f = 0; f < F; f++)
                for (int k = 0; k < K; k++) {
                    double re = 0, im = 0;
                    for (int j = 0; j < n; j++) {
                        int64_t t = f * hop - n / 2 + j;
                        if (t < 0 || t >= T)
                            continue;
                        double v = w[j] * x[(size_t)(b * T + t)], a = 2 * M_PI * (double)k * j / n;
                        re += v * std::cos(a);
                        im -= v * std::sin(a);
                    }
                    re *= c;
                    im *= c;
                    float zr = z[(size_t)(((b * 2) * F + f) * K + k)], zi = z[(size_t)(((b * 2 + 1) * F + f) * K + k)];
                    num = std::max(num, std::max(std::fabs(zr - re), std::fabs(zi - im)));
                    den = std::max(den, std::max(std::fabs(re), std::fabs(im)));
                }
        double err = num / den;
        INFO("n_fft " << n << ": STFT max error relative to max |X| " << err);
        CHECK(err < 1e-5);
        std::printf("gan: STFT n_fft %d vs naive DFT: rel err %.2e\n", n, err);

        // <STFT x, G> = <x, STFT^T G> for random x and G; the adjoint accumulates into dx
        std::vector<float> g = rand_vec(&r, z.size()), dx(x.size(), 0.5f);
        vqz_tensor gt = vqz_t4(g.data(), N, 2, F, K), dxt = vqz_t3(dx.data(), N, 1, T);
        REQUIRE(vqz_disc_stft_adjoint(ctx.c, D.d, s, &gt, &dxt) == VQZ_OK);
        for (auto &v : dx)
            v -= 0.5f;
        double lhs = dot(z, g), rhs = dot(x, dx);
        double aerr = std::fabs(lhs - rhs) / std::fabs(lhs);
        INFO("<STFT x, G> = " << lhs << ", <x, STFT^T G> = " << rhs);
        CHECK(aerr < 1e-5);
        std::printf("gan: STFT n_fft %d adjoint identity: rel err %.2e\n", n, aerr);
    }
    // long enough for the parallel paths: 2 threads give the bits of 1
    {
        Ctx one(1);
        const int64_t TL = 40000, F = vqz_disc_frames(D.d, 0, TL), K = 33;
        std::vector<float> xl = rand_vec(&r, (size_t)(N * TL)), gl = rand_vec(&r, (size_t)(N * 2 * F * K));
        std::vector<float> z1(gl.size()), z2(gl.size()), d1(xl.size(), 0.0f), d2(xl.size(), 0.0f);
        vqz_tensor xlt = vqz_t3(xl.data(), N, 1, TL), glt = vqz_t4(gl.data(), N, 2, F, K);
        vqz_tensor z1t = vqz_t4(z1.data(), N, 2, F, K), z2t = vqz_t4(z2.data(), N, 2, F, K);
        vqz_tensor d1t = vqz_t3(d1.data(), N, 1, TL), d2t = vqz_t3(d2.data(), N, 1, TL);
        REQUIRE(vqz_disc_stft(one.c, D.d, 0, &xlt, &z1t) == VQZ_OK);
        REQUIRE(vqz_disc_stft(ctx.c, D.d, 0, &xlt, &z2t) == VQZ_OK);
        REQUIRE(vqz_disc_stft_adjoint(one.c, D.d, 0, &glt, &d1t) == VQZ_OK);
        REQUIRE(vqz_disc_stft_adjoint(ctx.c, D.d, 0, &glt, &d2t) == VQZ_OK);
        CHECK(std::memcmp(z1.data(), z2.data(), z1.size() * sizeof(float)) == 0);
        CHECK(std::memcmp(d1.data(), d2.data(), d1.size() * sizeof(float)) == 0);
    }
    // shape checks
    std::vector<float> z(10);
    vqz_tensor bad = vqz_t4(z.data(), N, 2, 3, 4);
    CHECK(vqz_disc_stft(ctx.c, D.d, 0, &xt, &bad) == VQZ_ERR_SHAPE);
    CHECK(vqz_disc_stft(ctx.c, D.d, 2, &xt, &bad) == VQZ_ERR_INVALID_ARG);
}

namespace {

// Gradient checks against finite differences of the float32 losses (accumulated in double). Along any
// line through one layer's parameters or through the signal, every loss here is piecewise linear in the
// step (such parameters enter their layer linearly; the STFT is linear; LeakyReLU, the hinge and |.| are
// piecewise linear), but a stack of LeakyReLUs over thousands of positions has kinks everywhere: a step of
// 1e-3 on a bias moves the plain central quotient of one coordinate by 10-30 %, and smaller steps drown in
// float32 rounding. Hence three checks, each with a bound of 1e-2:
//   - coordinates (one per tensor): f at p + h {-1, -1/2, 0, 1/2, 1} gives four slopes; where they agree
//     within 0.5 % no kink lies in reach and the coordinate is "clean" (h = 1e-3, else 3e-4). Clean
//     coordinates must match, relative to max(|fd|, 1 % of the largest gradient checked); at least half of
//     them must be clean so that the check cannot pass empty.
//   - whole weight tensors: the secant along the tensor's own gradient, where the derivative is large
//     against kinks and rounding.
//   - the signal: secants along gradient-weighted directions against the mean of the gradient over the
//     step (see fd_check).
// Cases: the real slope 0.2 on small discriminators, and slope 1 (a linear stack, where only the hinge and
// |.| have kinks) on three scales with C = 8, L = 3. The last layer is scaled by 4 so that part of the
// logits leave (-1, 1) and the hinge masks are exercised.
struct FdCase {
    std::vector<int> sizes;
    int channels, layers;
    float slope;
    int64_t N, T;
};

struct FdPoint {
    double an, central, spread; // spread: largest difference of the four sub-interval slopes
    float h;
    int64_t at;
    bool clean;
};

// Difference quotients of f along the float *v (restored afterwards), f0 = f at the unperturbed point:
// f at v0 + h {-1, -1/2, 1/2, 1} gives four slopes, which agree when no kink lies in [v0 - h, v0 + h].
// Steps are tried in turn until they do (within 0.5 % of max(|fd|, floor)).
template <class F>
FdPoint fd_point(int64_t at, double an, float *v, double f0, const std::vector<float> &steps, double floor, F f)
{
    FdPoint pt{an, 0, 0, 0, at, false};
    const float v0 = *v;
    for (float h : steps) {
        const double k[5] = {-1, -0.5, 0, 0.5, 1};
        double val[5], pos[5];
        for (int i = 0; i < 5; i++) {
            if (i == 2) {
                val[i] = f0;
                pos[i] = v0;
                continue;
            }
            *v = v0 + (float)(k[i] * h);
            pos[i] = *v;
            val[i] = f();
        }
        *v = v0;
        double lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < 4; i++) {
            double sl = (val[i + 1] - val[i]) / (pos[i + 1] - pos[i]);
            lo = std::min(lo, sl);
            hi = std::max(hi, sl);
        }
        pt.central = (val[4] - val[0]) / (pos[4] - pos[0]);
        pt.spread = hi - lo;
        pt.h = h;
        pt.clean = pt.spread <= 5e-3 * std::max(std::fabs(pt.central), floor);
        if (pt.clean)
            break;
    }
    return pt;
}

// Clean coordinates must match within 1e-2 of max(|fd|, floor); at least `need` of them must be clean.
void judge(const std::vector<FdPoint> &pts, double floor, double need, const std::string &what)
{
    int clean = 0;
    double worst = 0;
    for (size_t i = 0; i < pts.size(); i++) {
        const FdPoint &p = pts[i];
        if (!p.clean)
            continue;
        clean++;
        double e = std::fabs(p.an - p.central) / std::max(std::fabs(p.central), floor);
        worst = std::max(worst, e);
        INFO(what << " " << i << " (at " << p.at << ", h " << p.h << "): analytic " << p.an << ", finite difference "
                  << p.central << ", slope spread " << p.spread);
        CHECK(e <= 1e-2);
    }
    std::printf("gan: %s gradient vs finite differences: %d/%zu coordinates clean, worst error %.2e\n", what.c_str(),
                clean, pts.size(), worst);
    CHECK(clean >= (int)(need * (double)pts.size()));
}

double floor_of(const std::vector<double> &an)
{
    double m = 0;
    for (double v : an)
        m = std::max(m, std::fabs(v));
    return 1e-2 * m;
}

void fd_check(const FdCase &fc)
{
    Ctx ctx(1);
    vqz_disc_config c = small_config(fc.sizes, fc.channels, fc.layers);
    c.slope = fc.slope;
    Disc D(c, 5);
    vqz_disc *d = D.d;
    const int L = fc.layers;
    for (int s = 0; s < d->cfg.scales; s++) {
        std::string name = "d." + std::to_string(s) + "." + std::to_string(L + 1) + ".weight";
        const vqz_param_info *w = &d->info[vqz_disc_find(d, name.c_str())];
        for (int64_t i = 0; i < w->shape[0] * w->shape[1] * 9; i++)
            d->params[w->offset + i] *= 4.0f;
    }
    vqz_rng r;
    vqz_rng_seed(&r, 3);
    const int64_t N = fc.N, T = fc.T;
    std::vector<float> x = test_signal(&r, N, T, 0.05), y = test_signal(&r, N, T, 0.11);
    vqz_tensor xt = vqz_t3(x.data(), N, 1, T), yt = vqz_t3(y.data(), N, 1, T);
    const std::string tag = "slope " + std::to_string(fc.slope).substr(0, 3) + ": ";

    // parameters through L_D: one coordinate of every tensor
    double l0 = disc_loss(ctx.c, d, &xt, &yt);
    std::vector<float> g(d->grads, d->grads + d->n_params);
    std::vector<int64_t> coords;
    for (int i = 0; i < d->n_tensors; i++) {
        const vqz_param_info *q = &d->info[i];
        int64_t n = q->ndim == 4 ? q->shape[0] * q->shape[1] * 9 : q->shape[0];
        coords.push_back(q->offset + (int64_t)vqz_rng_below(&r, (uint64_t)n));
    }
    std::vector<double> an;
    for (int64_t at : coords)
        an.push_back(g[(size_t)at]);
    double floor = floor_of(an);
    std::vector<FdPoint> pts;
    for (int64_t at : coords)
        pts.push_back(fd_point(at, g[(size_t)at], &d->params[at], l0, {1e-3f, 3e-4f}, floor,
                               [&] { return disc_loss(ctx.c, d, &xt, &yt); }));
    std::printf("gan: %sL_D = %.4f\n", tag.c_str(), l0);
    judge(pts, floor, 0.5, tag + "parameter");

    // every weight tensor as a whole: the secant of L_D along its own gradient v (scaled to max |v| = 1)
    // against <g, v>; along the gradient the derivative is large against kinks and rounding. (A bias moves a
    // whole channel across its kinks at once, 2-3 % off the secant even along the gradient: biases are
    // covered by the coordinate check above.)
    double worst_t = 0;
    for (int i = 0; i < d->n_tensors; i += 2) {
        const vqz_param_info *q = &d->info[i];
        int64_t n = q->shape[0] * q->shape[1] * 9;
        std::vector<float> p0(d->params + q->offset, d->params + q->offset + n), v(g.begin() + q->offset,
                                                                                 g.begin() + q->offset + n);
        double vmax = 0, gv = 0;
        for (float e : v)
            vmax = std::max(vmax, (double)std::fabs(e));
        REQUIRE(vmax > 0);
        for (int64_t k = 0; k < n; k++) {
            v[(size_t)k] = (float)(v[(size_t)k] / vmax);
            gv += (double)g[(size_t)(q->offset + k)] * v[(size_t)k];
        }
        const float h = 1e-4f;
        double f[2];
        for (int side = 0; side < 2; side++) {
            for (int64_t k = 0; k < n; k++)
                d->params[q->offset + k] = p0[(size_t)k] + (side ? h : -h) * v[(size_t)k];
            f[side] = disc_loss(ctx.c, d, &xt, &yt);
        }
        std::copy(p0.begin(), p0.end(), d->params + q->offset);
        double sec = (f[1] - f[0]) / (2.0 * h), e = std::fabs(sec - gv) / std::fabs(sec);
        worst_t = std::max(worst_t, e);
        INFO(tag << q->name << ": secant along the gradient " << sec << ", <g, v> " << gv);
        CHECK(e <= 1e-2);
    }
    std::printf("gan: %sparameter gradient along each weight tensor's gradient: worst error %.2e\n", tag.c_str(),
                worst_t);

    // the signal through the generator terms; dy accumulates and the discriminator's grads stay
    const double wa = 0.7, wf = 1.3;
    std::vector<float> dy(y.size(), 0.25f);
    vqz_tensor dyt = vqz_t3(dy.data(), N, 1, T);
    double adv = 0, feat = 0;
    std::vector<float> g_before(d->grads, d->grads + d->n_params);
    REQUIRE(vqz_disc_generator_terms(ctx.c, d, &xt, &yt, (float)wa, (float)wf, &dyt, &adv, &feat) == VQZ_OK);
    CHECK(adv > 0);
    CHECK(feat > 0);
    CHECK(std::memcmp(g_before.data(), d->grads, g_before.size() * sizeof(float)) == 0);
    for (auto &v : dy)
        v -= 0.25f;
    std::printf("gan: %sadv = %.4f, feat = %.4f\n", tag.c_str(), adv, feat);

    // The signal, along dense directions v: f(y + t v) is piecewise linear in t, with derivative
    // <dy(y + t v), v> wherever it exists, so the secant (f(y + h v) - f(y - h v)) / 2h equals the mean of
    // that derivative over [-h, h] exactly, kinks or not. The mean is taken by the midpoint rule on M points,
    // whose error is at most TV / M, TV the total variation of the derivative over the interval (estimated
    // from the M values). Every sample moves thousands of LeakyReLU and |.| inputs: along a random direction
    // the derivative is small and swings by tens of per cent within 1e-4 at slope 0.2; along the
    // gradient-weighted directions used here it is large and steady (TV / M about 1e-4 of it), and the
    // comparison with dy at t = 0 alone is printed for reference. Required:
    // |mean - secant| <= 1e-2 max(|secant|, floor) + TV / M, with h = 5e-5 and M = 16.
    const int M = 16;
    const double h = 5e-5;
    std::vector<float> y0 = y, gbuf(y.size()), v(y.size());
    auto along = [&](double t, bool grad) {
        for (size_t i = 0; i < y.size(); i++)
            y[i] = y0[i] + (float)t * v[i];
        double out;
        if (grad) {
            std::fill(gbuf.begin(), gbuf.end(), 0.0f);
            vqz_tensor gt = vqz_t3(gbuf.data(), N, 1, T);
            REQUIRE(vqz_disc_generator_terms(ctx.c, d, &xt, &yt, (float)wa, (float)wf, &gt, nullptr, nullptr) ==
                    VQZ_OK);
            out = dot(gbuf, v);
        } else {
            out = gen_loss(ctx.c, d, &xt, &yt, wa, wf);
        }
        y = y0;
        return out;
    };
    std::vector<double> secant, mean, tv, at0;
    for (int k = 0; k < 3; k++) {
        // v = dy weighted by random factors in [0, 1] (k = 0: dy itself): the secant is then large against
        // rounding and kinks, and any error in dy, of scale or of direction, shows up in it
        std::vector<float> u = rand_vec(&r, v.size(), 0.0f, 1.0f);
        for (size_t i = 0; i < v.size(); i++)
            v[i] = dy[i] * (k == 0 ? 1.0f : u[i]);
        double vmax = 0;
        for (float e : v)
            vmax = std::max(vmax, (double)std::fabs(e));
        for (auto &e : v)
            e = (float)(e / vmax);
        secant.push_back((along(h, false) - along(-h, false)) / (2 * h));
        double sum = 0, var = 0, prev = 0;
        for (int i = 0; i < M; i++) {
            double gi = along(-h + (2 * i + 1) * h / M, true);
            sum += gi;
            var += i ? std::fabs(gi - prev) : 0.0;
            prev = gi;
        }
        mean.push_back(sum / M);
        tv.push_back(var);
        at0.push_back(dot(dy, v));
    }
    floor = floor_of(mean);
    double worst = 0, worst0 = 0, slack = 0;
    for (size_t k = 0; k < secant.size(); k++) {
        double scale = std::max(std::fabs(secant[k]), floor);
        worst = std::max(worst, std::fabs(mean[k] - secant[k]) / scale);
        worst0 = std::max(worst0, std::fabs(at0[k] - secant[k]) / scale);
        slack = std::max(slack, tv[k] / M / scale);
        INFO(tag << "direction " << k << ": secant " << secant[k] << ", mean gradient " << mean[k]
                 << ", its variation " << tv[k] << ", gradient at 0 " << at0[k]);
        CHECK(std::fabs(mean[k] - secant[k]) <= 1e-2 * scale + tv[k] / M);
    }
    std::printf("gan: %ssignal gradient along 3 directions: worst error %.2e, largest TV/M %.2e (gradient at "
                "0 alone: %.2e)\n",
                tag.c_str(), worst, slack, worst0);
}

} // namespace

TEST_CASE("disc gradients match finite differences", "[gan]")
{
    fd_check({{128}, 4, 1, 0.2f, 1, 1024});
    fd_check({{128, 256, 512}, 8, 3, 1.0f, 2, 2048});
    fd_check({{128, 256}, 4, 2, 0.2f, 2, 2048});
}

TEST_CASE("disc learns to tell real audio from noisy audio, and dy lowers adv and feat", "[gan]")
{
    Ctx ctx(1);
    Disc D(small_config({512, 1024, 2048}, 8, 3), 21);
    vqz_disc *d = D.d;
    const int64_t N = 2, T = 32000; // 2 s of the 16 kHz speech, 0.73 s of the 44.1 kHz guitar
    std::vector<float> x = sample_audio("speech-demo-thanks.wav", 16000, T);
    std::vector<float> m = sample_audio("music-electric-guitar.ogg", 44100, T);
    x.insert(x.end(), m.begin(), m.end());
    // y: x plus white noise 10.5 dB below its RMS
    vqz_rng r;
    vqz_rng_seed(&r, 2);
    std::vector<float> y(x.size());
    for (int64_t b = 0; b < N; b++) {
        double e = 0;
        for (int64_t t = 0; t < T; t++)
            e += (double)x[(size_t)(b * T + t)] * x[(size_t)(b * T + t)];
        float sd = (float)(0.3 * std::sqrt(e / (double)T));
        REQUIRE(sd > 0.01f);
        for (int64_t t = 0; t < T; t++)
            y[(size_t)(b * T + t)] = x[(size_t)(b * T + t)] + sd * vqz_rng_normal(&r);
    }
    vqz_tensor xt = vqz_t3(x.data(), N, 1, T), yt = vqz_t3(y.data(), N, 1, T);
    double first = 0, last = 0, gnorm = 0;
    for (int step = 0; step < 30; step++) {
        double l = 0;
        REQUIRE(vqz_disc_grad(ctx.c, d, &xt, &yt, &l) == VQZ_OK);
        REQUIRE(vqz_disc_apply(ctx.c, d, 3e-3f, 10.0f, &gnorm) == VQZ_OK);
        if (step == 0)
            first = l;
        last = l;
    }
    REQUIRE(d->step == 30);
    double after = disc_loss(ctx.c, d, &xt, &yt);
    std::printf("gan: L_D %.3f at the first step, %.3f at step 30, %.3f after (grad norm %.3f)\n", first, last,
                after, gnorm);
    // about 2 per scale for a blind discriminator, below 1 per scale once it tells them apart
    CHECK(first > 1.8 * d->cfg.scales);
    CHECK(after < 1.0 * d->cfg.scales);

    for (int term = 0; term < 2; term++) { // adversarial alone, then feature matching alone
        float wa = term == 0 ? 1.0f : 0.0f, wf = 1.0f - wa;
        std::vector<float> dy(y.size(), 0.0f);
        vqz_tensor dyt = vqz_t3(dy.data(), N, 1, T);
        double adv0 = 0, feat0 = 0, adv1 = 0, feat1 = 0;
        REQUIRE(vqz_disc_generator_terms(ctx.c, d, &xt, &yt, wa, wf, &dyt, &adv0, &feat0) == VQZ_OK);
        double ny = std::sqrt(dot(y, y)), ng = std::sqrt(dot(dy, dy));
        REQUIRE(ng > 0);
        std::vector<float> y2(y);
        float eta = (float)(1e-3 * ny / ng);
        for (size_t i = 0; i < y.size(); i++)
            y2[i] -= eta * dy[i];
        vqz_tensor y2t = vqz_t3(y2.data(), N, 1, T);
        REQUIRE(vqz_disc_generator_terms(ctx.c, d, &xt, &y2t, wa, wf, nullptr, &adv1, &feat1) == VQZ_OK);
        std::printf("gan: step along -dy: %s %.5f -> %.5f\n", term == 0 ? "adv" : "feat", term == 0 ? adv0 : feat0,
                    term == 0 ? adv1 : feat1);
        if (term == 0)
            CHECK(adv1 < adv0);
        else
            CHECK(feat1 < feat0);
    }
}

TEST_CASE("disc is deterministic for a seed", "[gan]")
{
    Ctx ctx(1);
    vqz_disc_config c = small_config({128, 256}, 4, 2);
    Disc a(c, 9), b(c, 9), other(c, 10);
    REQUIRE(a.d->n_params == b.d->n_params);
    REQUIRE(std::memcmp(a.d->params, b.d->params, (size_t)a.d->n_params * sizeof(float)) == 0);
    CHECK(std::memcmp(a.d->params, other.d->params, (size_t)a.d->n_params * sizeof(float)) != 0);
    // table: names, contiguous offsets, shapes
    REQUIRE(a.d->n_tensors == 2 * 2 * 4);
    int64_t off = 0;
    for (int i = 0; i < a.d->n_tensors; i++) {
        const vqz_param_info *q = &a.d->info[i];
        REQUIRE(q->offset == off);
        off += q->ndim == 4 ? q->shape[0] * q->shape[1] * 9 : q->shape[0];
        REQUIRE(vqz_disc_find(a.d, q->name) == i);
    }
    REQUIRE(off == a.d->n_params);
    REQUIRE(vqz_disc_find(a.d, "d.1.3.bias") == a.d->n_tensors - 1);
    REQUIRE(a.d->info[vqz_disc_find(a.d, "d.0.0.weight")].shape[1] == 2);
    REQUIRE(vqz_disc_find(a.d, "d.2.0.weight") == -1);

    vqz_rng r;
    vqz_rng_seed(&r, 4);
    const int64_t N = 2, T = 2000;
    std::vector<float> x = test_signal(&r, N, T, 0.03), y = test_signal(&r, N, T, 0.07);
    vqz_tensor xt = vqz_t3(x.data(), N, 1, T), yt = vqz_t3(y.data(), N, 1, T);
    double la[3], lb[3];
    std::vector<float> dya(x.size(), 0.0f), dyb(x.size(), 0.0f);
    for (int k = 0; k < 2; k++) {
        vqz_disc *d = k == 0 ? a.d : b.d;
        double *l = k == 0 ? la : lb;
        std::vector<float> &dy = k == 0 ? dya : dyb;
        vqz_tensor dyt = vqz_t3(dy.data(), N, 1, T);
        for (int step = 0; step < 3; step++) {
            REQUIRE(vqz_disc_grad(ctx.c, d, &xt, &yt, &l[step]) == VQZ_OK);
            REQUIRE(vqz_disc_apply(ctx.c, d, 1e-3f, 1.0f, nullptr) == VQZ_OK);
        }
        double adv, feat;
        REQUIRE(vqz_disc_generator_terms(ctx.c, d, &xt, &yt, 1.0f, 2.0f, &dyt, &adv, &feat) == VQZ_OK);
    }
    for (int s = 0; s < 3; s++)
        CHECK(la[s] == lb[s]);
    CHECK(la[2] != la[0]);
    CHECK(std::memcmp(a.d->params, b.d->params, (size_t)a.d->n_params * sizeof(float)) == 0);
    CHECK(std::memcmp(a.d->adam_v, b.d->adam_v, (size_t)a.d->n_params * sizeof(float)) == 0);
    CHECK(std::memcmp(dya.data(), dyb.data(), dya.size() * sizeof(float)) == 0);
}

TEST_CASE("disc rejects bad configurations and shapes", "[gan]")
{
    Ctx ctx;
    vqz_disc *d = nullptr;
    vqz_disc_config c = small_config({128, 256}, 4, 2);
    c.n_fft[1] = 130;
    CHECK(vqz_disc_create(&c, 1, &d) == VQZ_ERR_INVALID_ARG);
    CHECK(std::string(vqz_last_error()).find("130") != std::string::npos);
    c = small_config({128}, 4, 9);
    CHECK(vqz_disc_create(&c, 1, &d) == VQZ_ERR_INVALID_ARG);
    REQUIRE(d == nullptr);
    REQUIRE(vqz_disc_create(nullptr, 1, &d) == VQZ_OK); // defaults
    CHECK(d->cfg.scales == 3);
    CHECK(d->cfg.n_fft[2] == 2048);
    CHECK(d->n_params == 3 * (32 * 2 * 9 + 32 + 3 * (32 * 32 * 9 + 32) + 32 * 9 + 1));
    std::vector<float> x(2 * 3000), y(2 * 2999), dy(2 * 3000);
    vqz_tensor xt = vqz_t3(x.data(), 2, 1, 3000), yt = vqz_t3(y.data(), 2, 1, 2999), st = vqz_t3(x.data(), 1, 2, 3000);
    double l;
    CHECK(vqz_disc_grad(ctx.c, d, &xt, &yt, &l) == VQZ_ERR_SHAPE);
    CHECK(vqz_disc_grad(ctx.c, d, &st, &st, &l) == VQZ_ERR_SHAPE);
    vqz_tensor dyt = vqz_t3(dy.data(), 2, 1, 2999);
    CHECK(vqz_disc_generator_terms(ctx.c, d, &xt, &xt, 1, 1, &dyt, &l, &l) == VQZ_ERR_SHAPE);
    CHECK(vqz_disc_apply(ctx.c, d, NAN, 1.0f, nullptr) == VQZ_ERR_INVALID_ARG);
    d->grads[3] = INFINITY;
    CHECK(vqz_disc_apply(ctx.c, d, 1e-3f, 1.0f, nullptr) == VQZ_ERR_NONFINITE);
    CHECK(d->step == 0);
    vqz_disc_free(d);
    vqz_disc_free(nullptr);
}

// Time of one discriminator step plus the generator terms at the training size, on one thread.
TEST_CASE("disc step timing at N=16 T=24000 C=32", "[.bench]")
{
    Ctx ctx(1);
    vqz_disc *d = nullptr;
    REQUIRE(vqz_disc_create(nullptr, 1, &d) == VQZ_OK);
    vqz_rng r;
    vqz_rng_seed(&r, 1);
    const int64_t N = 16, T = 24000;
    std::vector<float> x = test_signal(&r, N, T, 0.05), y = test_signal(&r, N, T, 0.08), dy(x.size(), 0.0f);
    vqz_tensor xt = vqz_t3(x.data(), N, 1, T), yt = vqz_t3(y.data(), N, 1, T), dyt = vqz_t3(dy.data(), N, 1, T);
    // wall and process CPU time (the CPU time is the one to trust on a shared machine)
    for (int it = 0; it < 3; it++) {
        auto t0 = std::chrono::steady_clock::now();
        std::clock_t c0 = std::clock();
        double l, adv, feat;
        REQUIRE(vqz_disc_grad(ctx.c, d, &xt, &yt, &l) == VQZ_OK);
        REQUIRE(vqz_disc_apply(ctx.c, d, 1e-4f, 1.0f, nullptr) == VQZ_OK);
        auto t1 = std::chrono::steady_clock::now();
        std::clock_t c1 = std::clock();
        REQUIRE(vqz_disc_generator_terms(ctx.c, d, &xt, &yt, 1.0f, 1.0f, &dyt, &adv, &feat) == VQZ_OK);
        auto t2 = std::chrono::steady_clock::now();
        std::clock_t c2 = std::clock();
        double a = std::chrono::duration<double>(t1 - t0).count(), b = std::chrono::duration<double>(t2 - t1).count();
        double ca = (double)(c1 - c0) / CLOCKS_PER_SEC, cb = (double)(c2 - c1) / CLOCKS_PER_SEC;
        std::printf("gan bench step %d: disc grad+apply %.2f s (cpu %.2f s), generator terms %.2f s (cpu %.2f s), "
                    "total %.2f s (cpu %.2f s)\n",
                    it, a, ca, b, cb, a + b, ca + cb);
    }
    vqz_disc_free(d);
}
