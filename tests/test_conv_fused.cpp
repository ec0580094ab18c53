// test_conv_fused.cpp — the inference path's fused convolutions (channels-last layouts, residual sum and
// activation as oneDNN post-operations) against naive loops, their argument checks, and the graph's
// inference plan (fusion, layouts, arena) against the plain training-plan forward of the same graph.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ref_conv.h"
#include "testutil.h"

extern "C" {
#include "common/status.h"
#include "nn/graph.h"
#include "nn/net.h"
#include "nn/ops.h"
}

namespace {

struct Ctx {
    vqz_nn_ctx *c = nullptr;
    explicit Ctx(int threads = 2) { REQUIRE(vqz_nn_ctx_create(&c, VQZ_DEVICE_CPU, threads) == VQZ_OK); }
    ~Ctx() { vqz_nn_ctx_free(c); }
};

// Where element (b, k, p) of a [n, c, hw] tensor (hw = H*W, or T for 1-D) lies in memory order `l`:
// NCHW, NHWC, or NC8 (channels in blocks of 8, [n][c/8][hw][8]; c a multiple of 8).
size_t at(vqz_layout l, int b, int k, int p, int c, int hw)
{
    if (l == VQZ_LAYOUT_NHWC)
        return ((size_t)b * hw + p) * c + k;
    if (l == VQZ_LAYOUT_NC8)
        return (((size_t)b * (c / 8) + k / 8) * hw + p) * 8 + k % 8;
    return ((size_t)b * c + k) * hw + p;
}

// An NCHW tensor in layout l (to), or back to NCHW (from).
std::vector<float> relayout(const std::vector<float> &v, int n, int c, int hw, vqz_layout l, bool to)
{
    std::vector<float> o(v.size());
    for (int b = 0; b < n; b++)
        for (int k = 0; k < c; k++)
            for (int p = 0; p < hw; p++) {
                size_t nchw = at(VQZ_LAYOUT_NCHW, b, k, p, c, hw), other = at(l, b, k, p, c, hw);
                if (to)
                    o[other] = v[nchw];
                else
                    o[nchw] = v[other];
            }
    return o;
}

std::vector<float> to_nhwc(const std::vector<float> &v, int n, int c, int hw)
{
    return relayout(v, n, c, hw, VQZ_LAYOUT_NHWC, true);
}

std::vector<float> from_nhwc(const std::vector<float> &v, int n, int c, int hw)
{
    return relayout(v, n, c, hw, VQZ_LAYOUT_NHWC, false);
}

std::vector<float> to_nc8(const std::vector<float> &v, int n, int c, int hw)
{
    return relayout(v, n, c, hw, VQZ_LAYOUT_NC8, true);
}

std::vector<float> from_nc8(const std::vector<float> &v, int n, int c, int hw)
{
    return relayout(v, n, c, hw, VQZ_LAYOUT_NC8, false);
}

double ref_act(double v, vqz_fused_act a)
{
    if (a == VQZ_FUSED_SILU)
        return v / (1.0 + std::exp(-v));
    if (a == VQZ_FUSED_ELU)
        return v > 0 ? v : std::expm1(v);
    return v;
}

// The fused convolution's formula in float64: act(res_scale res + out_scale (conv(pre_act(x)) + b)), NCHW.
std::vector<float> fused_ref(const RefConv &g, const vqz_conv_fusion &f, const std::vector<float> &x,
                             const std::vector<float> &w, const std::vector<float> *b, const std::vector<float> &res)
{
    std::vector<double> xa(x.size());
    for (size_t k = 0; k < x.size(); k++)
        xa[k] = ref_act(x[k], f.pre_act);
    auto conv = ref_conv_fwd<double>(g, xa, std::vector<double>(w.begin(), w.end()), nullptr);
    size_t hw_out = (size_t)g.oh() * g.ow();
    std::vector<float> ref(g.y_size());
    for (size_t k = 0; k < ref.size(); k++) {
        double v = f.out_scale * (conv[k] + (b ? (*b)[k / hw_out % g.co] : 0.0));
        if (f.residual)
            v += f.res_scale * res[k];
        ref[k] = (float)ref_act(v, f.act);
    }
    return ref;
}

vqz_status fused(vqz_nn_ctx *ctx, const RefConv &g, bool d1, const vqz_conv_fusion &f, std::vector<float> &x,
                 std::vector<float> &w, std::vector<float> *b, std::vector<float> &y)
{
    vqz_tensor bt = b ? vqz_t1(b->data(), g.co) : vqz_tensor{};
    if (d1) {
        vqz_conv1d_params p = {g.sw, g.pl, g.pr, g.dw, (vqz_pad_mode)g.mode};
        vqz_tensor xt = vqz_t3(x.data(), g.n, g.ci, g.iw), wt = vqz_t3(w.data(), g.co, g.ci, g.kw);
        vqz_tensor yt = vqz_t3(y.data(), g.n, g.co, g.ow());
        return vqz_conv1d_fwd_fused(ctx, &p, &f, &xt, &wt, b ? &bt : nullptr, &yt);
    }
    vqz_conv2d_params p = {g.sw, g.pl, g.dw, (vqz_pad_mode)g.mode};
    vqz_tensor xt = vqz_t4(x.data(), g.n, g.ci, g.ih, g.iw), wt = vqz_t4(w.data(), g.co, g.ci, g.kh, g.kw);
    vqz_tensor yt = vqz_t4(y.data(), g.n, g.co, g.oh(), g.ow());
    return vqz_conv2d_fwd_fused(ctx, &p, &f, &xt, &wt, b ? &bt : nullptr, &yt);
}

RefConv c2(int n, int ci, int h, int w, int co, int k, int s, int p, int d)
{
    return RefConv{n, ci, h, w, co, k, k, s, s, d, d, p, p, p, p, 0};
}

RefConv c1(int n, int ci, int t, int co, int k, int s, int pl, int pr, int d)
{
    return RefConv{n, ci, 1, t, co, 1, k, 1, s, 1, d, 0, 0, pl, pr, 0};
}

vqz_tensor slot_copy(const vqz_graph *g, int s, std::vector<float> &out)
{
    vqz_tensor t = vqz_graph_slot(g, s);
    out.assign(t.data, t.data + vqz_tensor_numel(&t));
    return t;
}

} // namespace

TEST_CASE("fused conv forward matches conv, residual sum and activation in either layout", "[conv]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 41);
    // 2-D: odd sizes, stride 2, dilation, 1x1, channels not multiples of 16; 1-D: asymmetric pads, and the
    // audio residual unit's dilation 9 with pad 9 (more padding than oneDNN's direct kernels take: the
    // input is padded in a copy)
    const RefConv cases2[] = {c2(2, 5, 9, 11, 7, 3, 1, 1, 1), c2(1, 16, 12, 10, 32, 3, 2, 1, 1),
                              c2(2, 8, 13, 7, 8, 3, 1, 2, 2), c2(1, 24, 6, 9, 12, 1, 1, 0, 1),
                              c2(1, 3, 10, 14, 16, 3, 1, 1, 1)};
    const RefConv cases1[] = {c1(2, 6, 40, 6, 3, 1, 3, 3, 3), c1(1, 8, 37, 16, 4, 2, 1, 1, 1),
                              c1(2, 12, 25, 6, 1, 1, 0, 0, 1), c1(2, 16, 300, 8, 3, 1, 9, 9, 9)};
    double worst = 0;
    int count = 0;
    for (int d1 = 0; d1 < 2; d1++) {
        int ncases = d1 ? 4 : 5;
        for (int i = 0; i < ncases; i++) {
            const RefConv &g = d1 ? cases1[i] : cases2[i];
            int hw_in = g.ih * g.iw, hw_out = g.oh() * g.ow();
            for (int combo = 0; combo < 8; combo++) {
                vqz_conv_fusion f;
                std::memset(&f, 0, sizeof f);
                f.x_layout = (combo & 1) ? VQZ_LAYOUT_NHWC : VQZ_LAYOUT_NCHW;
                f.y_layout = (combo & 2) ? VQZ_LAYOUT_NHWC : VQZ_LAYOUT_NCHW;
                f.residual = (combo + i) % 3 != 0;
                f.res_scale = (combo & 4) ? 0.75f : 1.0f;
                f.out_scale = (combo + i) % 2 ? 0.5f : 1.0f;
                f.act = (vqz_fused_act)((combo + i + d1) % 3);
                f.pre_act = (vqz_fused_act)((combo / 2 + i) % 3);
                bool with_bias = (combo + i) % 4 != 3;
                char what[160];
                std::snprintf(what, sizeof what,
                              "%s case %d x %s y %s residual %d (%.2f) scale %.2f act %d pre %d bias %d",
                              d1 ? "1-D" : "2-D", i, f.x_layout ? "nhwc" : "nchw", f.y_layout ? "nhwc" : "nchw",
                              f.residual, f.res_scale, f.out_scale, (int)f.act, (int)f.pre_act, (int)with_bias);
                INFO(what);
                auto x = rand_vec(&r, g.x_size()), w = rand_vec(&r, g.w_size()), b = rand_vec(&r, g.co);
                auto res = rand_vec(&r, g.y_size());
                auto ref = fused_ref(g, f, x, w, with_bias ? &b : nullptr, res);
                std::vector<float> xin = f.x_layout ? to_nhwc(x, g.n, g.ci, hw_in) : x;
                std::vector<float> y(g.y_size(), NAN);
                if (f.residual)
                    y = f.y_layout ? to_nhwc(res, g.n, g.co, hw_out) : res;
                std::vector<float> xkeep(xin);
                REQUIRE(fused(ctx.c, g, d1, f, xin, w, with_bias ? &b : nullptr, y) == VQZ_OK);
                REQUIRE(xin == xkeep); // the input activation is applied on the way, x stays
                if (f.y_layout)
                    y = from_nhwc(y, g.n, g.co, hw_out);
                double e = rel_err(y, ref);
                worst = std::fmax(worst, e);
                count++;
                CHECK(e <= 1e-5);
            }
        }
    }
    if (std::getenv("VQZ_TEST_VERBOSE"))
        std::printf("  fused conv: %d cases, worst rel err %.3g\n", count, worst);
}

TEST_CASE("fused and transposed convs read and write the 8-channel blocked layout", "[conv]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 43);
    // 1-D with the audio residual unit's dilation 9 and pad 9 (a padded copy of blocked data), 1-D stride 2,
    // 2-D stride 2
    const RefConv cases[] = {c1(2, 16, 300, 8, 3, 1, 9, 9, 9), c1(1, 8, 37, 16, 4, 2, 1, 1, 1),
                             c2(1, 16, 12, 10, 32, 3, 2, 1, 1)};
    for (int i = 0; i < 3; i++) {
        const RefConv &g = cases[i];
        bool d1 = i < 2;
        int hw_in = g.ih * g.iw, hw_out = g.oh() * g.ow();
        for (int combo = 0; combo < 4; combo++) {
            vqz_conv_fusion f;
            std::memset(&f, 0, sizeof f);
            f.x_layout = (combo & 1) ? VQZ_LAYOUT_NC8 : VQZ_LAYOUT_NCHW;
            f.y_layout = (combo & 2) ? VQZ_LAYOUT_NC8 : VQZ_LAYOUT_NCHW;
            f.residual = (combo + i) % 2;
            f.res_scale = 0.75f;
            f.out_scale = 1.0f;
            f.act = (vqz_fused_act)((combo + i) % 3);
            f.pre_act = (vqz_fused_act)((combo + 2 * i + 1) % 3);
            INFO("case " << i << " combo " << combo);
            auto x = rand_vec(&r, g.x_size()), w = rand_vec(&r, g.w_size()), b = rand_vec(&r, g.co);
            auto res = rand_vec(&r, g.y_size());
            auto ref = fused_ref(g, f, x, w, &b, res);
            std::vector<float> xin = f.x_layout ? to_nc8(x, g.n, g.ci, hw_in) : x;
            std::vector<float> y(g.y_size(), NAN);
            if (f.residual)
                y = f.y_layout ? to_nc8(res, g.n, g.co, hw_out) : res;
            REQUIRE(fused(ctx.c, g, d1, f, xin, w, &b, y) == VQZ_OK);
            if (f.y_layout)
                y = from_nc8(y, g.n, g.co, hw_out);
            CHECK(rel_err(y, ref) <= 1e-5);
        }
    }
    // transposed: the audio decoder's upsampling (stride 4, kernel 8, crops 2 and 2), all layout pairs
    const int n = 2, ci = 16, t = 23, co = 8, k = 8, st = 4, to = (t - 1) * st + k - 4;
    auto x = rand_vec(&r, (size_t)n * ci * t), w = rand_vec(&r, (size_t)ci * co * k), b = rand_vec(&r, co);
    std::vector<float> ref((size_t)n * co * to, NAN);
    vqz_convtr1d_params p = {st, 2, 2};
    vqz_tensor xt = vqz_t3(x.data(), n, ci, t), wt = vqz_t3(w.data(), ci, co, k), bt = vqz_t1(b.data(), co);
    vqz_tensor rt = vqz_t3(ref.data(), n, co, to);
    REQUIRE(vqz_convtr1d_fwd(ctx.c, &p, &xt, &wt, &bt, &rt) == VQZ_OK);
    for (int combo = 0; combo < 4; combo++) {
        INFO("transposed, combo " << combo);
        vqz_conv_fusion f;
        std::memset(&f, 0, sizeof f);
        f.x_layout = (combo & 1) ? VQZ_LAYOUT_NC8 : VQZ_LAYOUT_NCHW;
        f.y_layout = (combo & 2) ? VQZ_LAYOUT_NC8 : VQZ_LAYOUT_NCHW;
        f.out_scale = 1.0f;
        std::vector<float> xin = f.x_layout ? to_nc8(x, n, ci, t) : x, y(ref.size(), NAN);
        vqz_tensor xi = vqz_t3(xin.data(), n, ci, t), yt = vqz_t3(y.data(), n, co, to);
        REQUIRE(vqz_convtr1d_fwd_fused(ctx.c, &p, &f, &xi, &wt, &bt, &yt) == VQZ_OK);
        if (f.y_layout)
            y = from_nc8(y, n, co, to);
        CHECK(rel_err(y, ref) <= 1e-5);
    }
    // channels that are not a multiple of 8 cannot be blocked; a transposed conv takes no activation
    vqz_conv_fusion bad;
    std::memset(&bad, 0, sizeof bad);
    bad.x_layout = VQZ_LAYOUT_NC8;
    bad.out_scale = 1.0f;
    std::vector<float> x6(2 * 6 * 10), w6(4 * 6 * 3), y6(2 * 4 * 10);
    vqz_conv1d_params p6 = {1, 1, 1, 1, VQZ_PAD_ZERO};
    vqz_tensor x6t = vqz_t3(x6.data(), 2, 6, 10), w6t = vqz_t3(w6.data(), 4, 6, 3), y6t = vqz_t3(y6.data(), 2, 4, 10);
    CHECK(vqz_conv1d_fwd_fused(ctx.c, &p6, &bad, &x6t, &w6t, nullptr, &y6t) == VQZ_ERR_INVALID_ARG);
    CHECK(std::string(vqz_last_error()).find("multiples of 8") != std::string::npos);
    bad.x_layout = VQZ_LAYOUT_NCHW;
    bad.act = VQZ_FUSED_ELU;
    std::vector<float> yb(ref.size());
    vqz_tensor ybt = vqz_t3(yb.data(), n, co, to);
    CHECK(vqz_convtr1d_fwd_fused(ctx.c, &p, &bad, &xt, &wt, &bt, &ybt) == VQZ_ERR_UNSUPPORTED);
}

TEST_CASE("input activation runs band by band on wide channels-last images", "[conv]")
{
    // rows of 64 channels x 256 pixels (64 KB): a 4 MB band holds about 64 input rows, so these
    // images take several bands, the last one short; stride 2 and dilation 2 move the halo
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 44);
    const RefConv cases[] = {c2(1, 64, 150, 256, 4, 3, 1, 1, 1), c2(2, 64, 131, 256, 3, 3, 2, 1, 1),
                             c2(1, 64, 140, 256, 5, 3, 1, 2, 2), c2(1, 64, 97, 256, 6, 1, 1, 0, 1)};
    for (int i = 0; i < 4; i++) {
        const RefConv &g = cases[i];
        INFO("case " << i);
        vqz_conv_fusion f = {VQZ_LAYOUT_NHWC, VQZ_LAYOUT_NHWC, i % 2, 1.0f, 0.5f,
                             i == 1 ? VQZ_FUSED_ELU : VQZ_FUSED_NONE, i == 2 ? VQZ_FUSED_ELU : VQZ_FUSED_SILU};
        int hw_in = g.ih * g.iw, hw_out = g.oh() * g.ow();
        auto x = rand_vec(&r, g.x_size(), -3.0f, 3.0f), w = rand_vec(&r, g.w_size(), -0.1f, 0.1f);
        auto b = rand_vec(&r, g.co), res = rand_vec(&r, g.y_size());
        std::vector<double> xa(x.size());
        for (size_t k = 0; k < x.size(); k++)
            xa[k] = ref_act(x[k], f.pre_act);
        auto conv = ref_conv_fwd<double>(g, xa, std::vector<double>(w.begin(), w.end()), nullptr);
        std::vector<float> ref(g.y_size());
        for (size_t k = 0; k < ref.size(); k++) {
            double v = f.out_scale * (conv[k] + b[k / hw_out % g.co]) + (f.residual ? f.res_scale * res[k] : 0.0);
            ref[k] = (float)ref_act(v, f.act);
        }
        std::vector<float> xin = to_nhwc(x, g.n, g.ci, hw_in);
        std::vector<float> y = f.residual ? to_nhwc(res, g.n, g.co, hw_out) : std::vector<float>(g.y_size(), NAN);
        REQUIRE(fused(ctx.c, g, false, f, xin, w, &b, y) == VQZ_OK);
        double e = rel_err(from_nhwc(y, g.n, g.co, hw_out), ref);
        CHECK(e <= 1e-5);
    }
}

TEST_CASE("sub-pixel upsampling conv matches nearest 2x upsampling then the 3x3 conv", "[conv]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 43);
    struct Case {
        int n, ci, h, w, co;
    } cases[] = {{1, 4, 5, 7, 6}, {2, 16, 8, 6, 32}, {1, 3, 1, 9, 5}, {2, 24, 6, 1, 16}, {1, 64, 12, 10, 48}};
    double worst = 0;
    for (int i = 0; i < 5; i++) {
        const Case &c = cases[i];
        for (int combo = 0; combo < 4; combo++) {
            vqz_conv_fusion f = {combo & 1 ? VQZ_LAYOUT_NHWC : VQZ_LAYOUT_NCHW,
                                 combo & 2 ? VQZ_LAYOUT_NHWC : VQZ_LAYOUT_NCHW, 0, 0.0f, (i + combo) % 2 ? 0.5f : 1.0f,
                                 (vqz_fused_act)((i + combo) % 3), VQZ_FUSED_NONE};
            char what[128];
            std::snprintf(what, sizeof what, "case %d x %s y %s scale %.1f act %d", i, f.x_layout ? "nhwc" : "nchw",
                          f.y_layout ? "nhwc" : "nchw", f.out_scale, (int)f.act);
            INFO(what);
            auto x = rand_vec(&r, (size_t)c.n * c.ci * c.h * c.w), w = rand_vec(&r, (size_t)c.co * c.ci * 9);
            auto b = rand_vec(&r, c.co);
            // reference: upsample in double, then the naive 3x3 conv with zero pad 1
            int H = 2 * c.h, W = 2 * c.w;
            std::vector<double> up((size_t)c.n * c.ci * H * W);
            for (int bn = 0; bn < c.n; bn++)
                for (int k = 0; k < c.ci; k++)
                    for (int y = 0; y < H; y++)
                        for (int xx = 0; xx < W; xx++)
                            up[(((size_t)bn * c.ci + k) * H + y) * W + xx] =
                                x[(((size_t)bn * c.ci + k) * c.h + y / 2) * c.w + xx / 2];
            RefConv g = c2(c.n, c.ci, H, W, c.co, 3, 1, 1, 1);
            auto conv = ref_conv_fwd<double>(g, up, std::vector<double>(w.begin(), w.end()), nullptr);
            std::vector<float> ref(conv.size());
            for (size_t k = 0; k < ref.size(); k++)
                ref[k] = (float)ref_act(f.out_scale * (conv[k] + b[k / ((size_t)H * W) % c.co]), f.act);

            std::vector<float> xin = f.x_layout ? to_nhwc(x, c.n, c.ci, c.h * c.w) : x;
            std::vector<float> y(ref.size(), NAN);
            vqz_tensor xt = vqz_t4(xin.data(), c.n, c.ci, c.h, c.w), wt = vqz_t4(w.data(), c.co, c.ci, 3, 3);
            vqz_tensor bt = vqz_t1(b.data(), c.co), yt = vqz_t4(y.data(), c.n, c.co, H, W);
            REQUIRE(vqz_conv2d_up2x_fwd_fused(ctx.c, &f, &xt, &wt, &bt, &yt) == VQZ_OK);
            if (f.y_layout)
                y = from_nhwc(y, c.n, c.co, H * W);
            double e = rel_err(y, ref);
            worst = std::fmax(worst, e);
            CHECK(e <= 1e-5);
        }
    }
    if (std::getenv("VQZ_TEST_VERBOSE"))
        std::printf("  sub-pixel upsampling conv: worst rel err %.3g\n", worst);

    // a residual cannot be fused into it; the kernel must be 3x3; y must be twice x
    std::vector<float> x(2 * 4 * 3 * 3, 0.1f), w(4 * 4 * 9, 0.1f), y(2 * 4 * 6 * 6);
    vqz_tensor xt = vqz_t4(x.data(), 2, 4, 3, 3), wt = vqz_t4(w.data(), 4, 4, 3, 3), yt = vqz_t4(y.data(), 2, 4, 6, 6);
    vqz_conv_fusion f = {VQZ_LAYOUT_NHWC, VQZ_LAYOUT_NHWC, 1, 1.0f, 1.0f, VQZ_FUSED_NONE, VQZ_FUSED_NONE};
    REQUIRE(vqz_conv2d_up2x_fwd_fused(ctx.c, &f, &xt, &wt, nullptr, &yt) == VQZ_ERR_UNSUPPORTED);
    f.residual = 0;
    f.pre_act = VQZ_FUSED_SILU;
    REQUIRE(vqz_conv2d_up2x_fwd_fused(ctx.c, &f, &xt, &wt, nullptr, &yt) == VQZ_ERR_UNSUPPORTED);
    f.pre_act = VQZ_FUSED_NONE;
    REQUIRE(vqz_conv2d_up2x_fwd_fused(ctx.c, &f, &xt, &wt, nullptr, &yt) == VQZ_OK);
    vqz_tensor w1 = vqz_t4(w.data(), 4, 4, 1, 1);
    REQUIRE(vqz_conv2d_up2x_fwd_fused(ctx.c, &f, &xt, &w1, nullptr, &yt) == VQZ_ERR_SHAPE);
    vqz_tensor ybad = vqz_t4(y.data(), 2, 4, 6, 5);
    REQUIRE(vqz_conv2d_up2x_fwd_fused(ctx.c, &f, &xt, &wt, nullptr, &ybad) == VQZ_ERR_SHAPE);
}

TEST_CASE("fused conv rejects overlapping buffers, unknown layouts, bad scales and non-zero padding", "[conv]")
{
    Ctx ctx;
    std::vector<float> x(2 * 4 * 6 * 6, 0.5f), w(4 * 4 * 9, 0.1f), y(2 * 4 * 6 * 6);
    vqz_tensor xt = vqz_t4(x.data(), 2, 4, 6, 6), wt = vqz_t4(w.data(), 4, 4, 3, 3), yt = vqz_t4(y.data(), 2, 4, 6, 6);
    vqz_conv2d_params p = {1, 1, 1, VQZ_PAD_ZERO};
    vqz_conv_fusion f = {VQZ_LAYOUT_NHWC, VQZ_LAYOUT_NHWC, 1, 1.0f, 0.5f, VQZ_FUSED_SILU, VQZ_FUSED_NONE};
    REQUIRE(vqz_conv2d_fwd_fused(ctx.c, &p, &f, &xt, &wt, nullptr, &yt) == VQZ_OK);

    REQUIRE(vqz_conv2d_fwd_fused(ctx.c, &p, &f, &xt, &wt, nullptr, &xt) == VQZ_ERR_INVALID_ARG);
    REQUIRE(std::string(vqz_last_error()).find("overlap") != std::string::npos);
    REQUIRE(vqz_conv2d_fwd_fused(ctx.c, &p, nullptr, &xt, &wt, nullptr, &yt) == VQZ_ERR_INVALID_ARG);
    vqz_conv_fusion bad = f;
    bad.y_layout = (vqz_layout)7;
    REQUIRE(vqz_conv2d_fwd_fused(ctx.c, &p, &bad, &xt, &wt, nullptr, &yt) == VQZ_ERR_INVALID_ARG);
    REQUIRE(std::string(vqz_last_error()).find("layouts") != std::string::npos);
    bad = f;
    bad.act = (vqz_fused_act)9;
    REQUIRE(vqz_conv2d_fwd_fused(ctx.c, &p, &bad, &xt, &wt, nullptr, &yt) == VQZ_ERR_INVALID_ARG);
    bad = f;
    bad.pre_act = (vqz_fused_act)-1;
    REQUIRE(vqz_conv2d_fwd_fused(ctx.c, &p, &bad, &xt, &wt, nullptr, &yt) == VQZ_ERR_INVALID_ARG);
    REQUIRE(std::string(vqz_last_error()).find("input activation") != std::string::npos);
    bad = f;
    bad.res_scale = NAN;
    REQUIRE(vqz_conv2d_fwd_fused(ctx.c, &p, &bad, &xt, &wt, nullptr, &yt) == VQZ_ERR_INVALID_ARG);
    REQUIRE(std::string(vqz_last_error()).find("finite") != std::string::npos);
    vqz_conv2d_params refl = {1, 1, 1, VQZ_PAD_REFLECT};
    REQUIRE(vqz_conv2d_fwd_fused(ctx.c, &refl, &f, &xt, &wt, nullptr, &yt) == VQZ_ERR_UNSUPPORTED);
    REQUIRE(std::string(vqz_last_error()).find("zeros") != std::string::npos);
    // shapes are checked as in the plain forward
    vqz_tensor ysmall = vqz_t4(y.data(), 2, 4, 5, 6);
    REQUIRE(vqz_conv2d_fwd_fused(ctx.c, &p, &f, &xt, &wt, nullptr, &ysmall) == VQZ_ERR_SHAPE);
}

namespace {

vqz_net_config tiny(vqz_net_kind kind, vqz_act act)
{
    vqz_net_config c;
    std::memset(&c, 0, sizeof c);
    c.kind = kind;
    c.in_channels = kind == VQZ_NET_IMAGE ? 3 : 1;
    c.n_stages = 2;
    c.channels[0] = 16;
    c.channels[1] = 24;
    c.channels[2] = 32;
    c.strides[0] = 2;
    c.strides[1] = kind == VQZ_NET_IMAGE ? 2 : 4;
    c.res_blocks = 2;
    c.latent_dim = 8;
    c.levels = 3;
    c.codebook_size = 32;
    c.res_scale = kind == VQZ_NET_IMAGE ? 0.5f : 1.0f;
    c.activation = act;
    c.weight_norm = kind == VQZ_NET_AUDIO;
    c.sample_rate = 16000;
    return c;
}

// Runs graph g on x with the training plan (every node as built, NCHW) and with the inference plan
// (fused, channels-last for images); returns the relative difference of the outputs.
double plans_agree(vqz_nn_ctx *ctx, vqz_net *m, vqz_graph *g, const std::vector<float> &x, int64_t n, int64_t h,
                   int64_t w)
{
    std::vector<float> a, b;
    REQUIRE(vqz_graph_plan(g, n, h, w, 1) == VQZ_OK);
    vqz_tensor in = vqz_graph_slot(g, g->input_slot);
    REQUIRE((size_t)vqz_tensor_numel(&in) == x.size());
    std::vector<float> xin(x);
    in.data = xin.data();
    REQUIRE(vqz_graph_forward(ctx, g, &m->pv, &in) == VQZ_OK);
    slot_copy(g, g->output_slot, a);
    REQUIRE(vqz_graph_plan(g, n, h, w, 0) == VQZ_OK);
    REQUIRE(vqz_graph_forward(ctx, g, &m->pv, &in) == VQZ_OK);
    slot_copy(g, g->output_slot, b);
    return rel_err(b, a);
}

} // namespace

TEST_CASE("inference plans fuse adds and activations into convolutions and agree with the plain forward", "[model]")
{
    Ctx ctx;
    vqz_rng r;
    vqz_rng_seed(&r, 42);

    SECTION("image, SiLU")
    {
        vqz_net_config c = tiny(VQZ_NET_IMAGE, VQZ_ACT_SILU);
        vqz_net *m = nullptr;
        REQUIRE(vqz_net_create(&c, &m) == VQZ_OK);
        REQUIRE(vqz_net_init(m, 5) == VQZ_OK);
        // random biases, so a dropped or doubled bias shows
        for (int i = 0; i < m->n_tensors; i++)
            if (std::strstr(m->info[i].name, ".bias"))
                vqz_rng_fill_uniform(&r, m->params + m->info[i].offset, vqz_tensor_numel(&m->views[i]), -0.2f, 0.2f);
        const int n = 2, h = 20, w = 28;
        auto x = rand_vec(&r, (size_t)n * 3 * h * w);
        double e_enc = plans_agree(ctx.c, m, &m->enc, x, n, h, w);
        auto z = rand_vec(&r, (size_t)n * c.latent_dim * (h / 4) * (w / 4));
        double e_dec = plans_agree(ctx.c, m, &m->dec, z, n, h / 4, w / 4);
        CHECK(e_enc <= 1e-5);
        CHECK(e_dec <= 1e-5);

        // the decoder's plan: every resblock's add and both activations are done by its convolutions
        // (act2 and the output activation after the last add as post-ops; act1, whose input the add
        // still needs, band by band as conv1 reads), every upsampling by the convolution after it,
        // interior activations are channels-last, the ends NCHW
        vqz_graph *g = &m->dec;
        int adds = 0, fused_adds = 0, post_acts = 0, pre_acts = 0, ups = 0, fused_ups = 0;
        for (int i = 0; i < g->n_nodes; i++) {
            const vqz_node *nd = &g->nodes[i];
            adds += nd->op == VQZ_NODE_ADD;
            fused_adds += nd->op == VQZ_NODE_ADD && nd->fused == VQZ_FUSED_INTO_PREV;
            post_acts += nd->op == VQZ_NODE_ACT && nd->fused == VQZ_FUSED_INTO_PREV;
            pre_acts += nd->op == VQZ_NODE_ACT && nd->fused == VQZ_FUSED_INTO_NEXT;
            ups += nd->op == VQZ_NODE_UPSAMPLE2X;
            fused_ups += nd->op == VQZ_NODE_UPSAMPLE2X && nd->fused == VQZ_FUSED_INTO_NEXT;
        }
        CHECK(adds == 2 * (1 + c.n_stages));
        CHECK(fused_adds == adds);
        CHECK(post_acts == adds + 1);
        CHECK(pre_acts == adds);
        CHECK(ups == c.n_stages);
        CHECK(fused_ups == ups);
        CHECK(g->slots[g->input_slot].layout == VQZ_LAYOUT_NCHW);
        CHECK(g->slots[g->output_slot].layout == VQZ_LAYOUT_NCHW);
        for (int s = 0; s < g->n_slots; s++)
            if (s != g->input_slot && s != g->output_slot)
                CHECK(g->slots[s].layout == VQZ_LAYOUT_NHWC);
        vqz_net_free(m);
    }
    SECTION("audio, ELU with weight norm")
    {
        vqz_net_config c = tiny(VQZ_NET_AUDIO, VQZ_ACT_ELU);
        vqz_net *m = nullptr;
        REQUIRE(vqz_net_create(&c, &m) == VQZ_OK);
        REQUIRE(vqz_net_init(m, 6) == VQZ_OK);
        const int n = 2, t = 8 * 37;
        auto x = rand_vec(&r, (size_t)n * t);
        double e_enc = plans_agree(ctx.c, m, &m->enc, x, n, t, 1);
        auto z = rand_vec(&r, (size_t)n * c.latent_dim * (t / 8));
        double e_dec = plans_agree(ctx.c, m, &m->dec, z, n, t / 8, 1);
        CHECK(e_enc <= 1e-5);
        CHECK(e_dec <= 1e-5);
        int fused_adds = 0;
        for (int i = 0; i < m->dec.n_nodes; i++)
            fused_adds += m->dec.nodes[i].op == VQZ_NODE_ADD && m->dec.nodes[i].fused;
        CHECK(fused_adds == c.n_stages * c.res_blocks);
        // 12-channel residual units cannot be blocked: every slot stays channels-first
        for (int s = 0; s < m->dec.n_slots; s++)
            CHECK(m->dec.slots[s].layout == VQZ_LAYOUT_NCHW);
        vqz_net_free(m);
    }
    SECTION("audio, ELU, channels in multiples of 8")
    {
        vqz_net_config c = tiny(VQZ_NET_AUDIO, VQZ_ACT_ELU);
        c.channels[1] = 32;
        c.channels[2] = 64;
        vqz_net *m = nullptr;
        REQUIRE(vqz_net_create(&c, &m) == VQZ_OK);
        REQUIRE(vqz_net_init(m, 7) == VQZ_OK);
        for (int i = 0; i < m->n_tensors; i++)
            if (std::strstr(m->info[i].name, ".bias"))
                vqz_rng_fill_uniform(&r, m->params + m->info[i].offset, vqz_tensor_numel(&m->views[i]), -0.2f, 0.2f);
        const int n = 2, t = 8 * 41;
        auto x = rand_vec(&r, (size_t)n * t);
        double e_enc = plans_agree(ctx.c, m, &m->enc, x, n, t, 1);
        auto z = rand_vec(&r, (size_t)n * c.latent_dim * (t / 8));
        double e_dec = plans_agree(ctx.c, m, &m->dec, z, n, t / 8, 1);
        CHECK(e_enc <= 1e-5);
        CHECK(e_dec <= 1e-5);
        // interior activations in oneDNN's 8-channel blocks where those are its kernels' layout (AVX2)
        vqz_layout inner = vqz_conv_cpu_block() == 8 ? VQZ_LAYOUT_NC8 : VQZ_LAYOUT_NCHW;
        for (const vqz_graph *g : {&m->enc, &m->dec})
            for (int s = 0; s < g->n_slots; s++)
                CHECK(g->slots[s].layout == (s == g->input_slot || s == g->output_slot ? VQZ_LAYOUT_NCHW : inner));
        vqz_net_free(m);
    }
    SECTION("audio, Snake (not fusable)")
    {
        vqz_net_config c = tiny(VQZ_NET_AUDIO, VQZ_ACT_SNAKE);
        vqz_net *m = nullptr;
        REQUIRE(vqz_net_create(&c, &m) == VQZ_OK);
        REQUIRE(vqz_net_init(m, 7) == VQZ_OK);
        const int n = 1, t = 8 * 29;
        auto z = rand_vec(&r, (size_t)n * c.latent_dim * (t / 8));
        CHECK(plans_agree(ctx.c, m, &m->dec, z, n, t / 8, 1) <= 1e-5);
        for (int i = 0; i < m->dec.n_nodes; i++)
            CHECK((m->dec.nodes[i].op != VQZ_NODE_ACT || !m->dec.nodes[i].fused));
        vqz_net_free(m);
    }
}
