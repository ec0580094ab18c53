// test_cuda.cpp — the CUDA twin against the CPU: every op forward and backward, the quantizer's choices and
// whole image and audio models, on random inputs, relative error <= 1e-4 in FP32. Without a GPU (or in a
// build without nvcc) each case prints "SKIPPED: no CUDA device" and is counted as skipped.
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "testutil.h"

extern "C" {
#include "common/status.h"
#include "nn/net.h"
#include "nn/ops.h"
#include "nn/rvq.h"
#ifdef VQZ_HAVE_CUDA
#include "kernels/cuda_ops.h"
#endif
}

namespace {

const double TOL = 1e-4;

// A CPU context and, when a device exists, a CUDA one.
struct Devices {
    vqz_nn_ctx *cpu = nullptr, *gpu = nullptr;
    Devices()
    {
        REQUIRE(vqz_nn_ctx_create(&cpu, VQZ_DEVICE_CPU, 2) == VQZ_OK);
        if (vqz_nn_ctx_create(&gpu, VQZ_DEVICE_CUDA, 2) != VQZ_OK)
            gpu = nullptr;
    }
    ~Devices()
    {
        vqz_nn_ctx_free(gpu);
        vqz_nn_ctx_free(cpu);
    }
    bool ready()
    {
        if (!gpu)
            vqz_test_skip("no CUDA device");
        return gpu != nullptr;
    }
};

#ifdef VQZ_HAVE_CUDA
// A device copy of a host vector; get() brings it back.
struct DevBuf {
    void *st;
    float *p = nullptr;
    size_t n;
    DevBuf(vqz_nn_ctx *g, const std::vector<float> &h) : st(g->cuda), n(h.size())
    {
        REQUIRE(vqz_cuda_malloc(st, n * sizeof(float), (void **)&p) == VQZ_OK);
        REQUIRE(vqz_cuda_h2d(st, p, h.data(), n * sizeof(float)) == VQZ_OK);
    }
    DevBuf(const DevBuf &) = delete;
    DevBuf &operator=(const DevBuf &) = delete;
    ~DevBuf() { vqz_cuda_free(st, p); }
    std::vector<float> get() const
    {
        std::vector<float> h(n);
        REQUIRE(vqz_cuda_d2h(st, h.data(), p, n * sizeof(float)) == VQZ_OK);
        return h;
    }
};

// The same tensor shape over device memory.
vqz_tensor on_dev(const vqz_tensor &t, const DevBuf &b)
{
    vqz_tensor d = t;
    d.data = b.p;
    d.device = VQZ_CUDA;
    return d;
}

vqz_tensor shaped(std::vector<float> &v, std::initializer_list<int64_t> dims)
{
    vqz_tensor t;
    std::memset(&t, 0, sizeof t);
    t.data = v.data();
    t.ndim = (int)dims.size();
    int i = 0;
    for (int64_t d : dims)
        t.shape[i++] = d;
    for (; i < VQZ_MAX_DIMS; i++)
        t.shape[i] = 1;
    t.device = VQZ_CPU;
    return t;
}

size_t numel(std::initializer_list<int64_t> dims)
{
    size_t n = 1;
    for (int64_t d : dims)
        n *= (size_t)d;
    return n;
}

#define PARITY(gpu_vec, cpu_vec, what)                                  \
    do {                                                                \
        double e_ = rel_err((gpu_vec), (cpu_vec));                      \
        INFO(what << ": relative error " << e_);                        \
        CHECK(e_ <= TOL);                                               \
    } while (0)

// One convolution problem on both devices: x, w, b, y, dy, dx, dw, db on the host (h*) and the device (g*),
// random where they are read (dw and db too, as the backward pass accumulates into them).
struct ConvBufs {
    std::vector<float> x, w, b, y, dy, dx, dw, db;
    std::unique_ptr<DevBuf> bx, bw, bb, by, bdy, bdx, bdw, bdb;
    vqz_tensor hx, hw, hb, hy, hdy, hdx, hdw, hdb, gx, gw, gb, gy, gdy, gdx, gdw, gdb;
    ConvBufs(vqz_nn_ctx *g, vqz_rng *r, std::initializer_list<int64_t> sx, std::initializer_list<int64_t> sw,
             std::initializer_list<int64_t> sy, int64_t co)
        : x(rand_vec(r, numel(sx))), w(rand_vec(r, numel(sw))), b(rand_vec(r, (size_t)co)), y(numel(sy)),
          dy(rand_vec(r, numel(sy))), dx(numel(sx)), dw(rand_vec(r, numel(sw))), db(rand_vec(r, (size_t)co))
    {
        auto pair = [&](std::vector<float> &v, std::initializer_list<int64_t> dims, std::unique_ptr<DevBuf> &buf,
                        vqz_tensor &h, vqz_tensor &d) {
            buf.reset(new DevBuf(g, v));
            h = shaped(v, dims);
            d = on_dev(h, *buf);
        };
        pair(x, sx, bx, hx, gx);
        pair(w, sw, bw, hw, gw);
        pair(b, {co}, bb, hb, gb);
        pair(y, sy, by, hy, gy);
        pair(dy, sy, bdy, hdy, gdy);
        pair(dx, sx, bdx, hdx, gdx);
        pair(dw, sw, bdw, hdw, gdw);
        pair(db, {co}, bdb, hdb, gdb);
    }
    void check_fwd(const char *what) const { PARITY(by->get(), y, what); }
    void check_bwd(const std::string &what) const
    {
        PARITY(bdx->get(), dx, what + " dx");
        PARITY(bdw->get(), dw, what + " dw (accumulated)");
        PARITY(bdb->get(), db, what + " db (accumulated)");
    }
};
#endif

} // namespace

TEST_CASE("CUDA activations, adds, resampling, layout ops, weight norm, dense layer and losses match the CPU",
          "[cuda]")
{
    Devices d;
    if (!d.ready())
        return;
#ifdef VQZ_HAVE_CUDA
    vqz_rng r;
    vqz_rng_seed(&r, 81);
    const int64_t N = 2, C = 5, H = 6, W = 7;
    auto dims = {N, C, H, W};
    std::vector<float> x = rand_vec(&r, numel(dims), -4, 4), dy = rand_vec(&r, numel(dims));
    std::vector<float> alpha = rand_vec(&r, C, 0.3f, 2.0f);
    DevBuf gx(d.gpu, x), gdy(d.gpu, dy), galpha(d.gpu, alpha);
    vqz_tensor tx = shaped(x, dims), tdy = shaped(dy, dims), ta = shaped(alpha, {C});

    // unary activations, forward and backward
    for (int which = 0; which < 4; which++) {
        std::vector<float> y(x.size()), dx(x.size()), da(alpha.size(), 0.5f);
        DevBuf gy(d.gpu, y), gdx(d.gpu, dx), gda(d.gpu, da);
        vqz_tensor ty = shaped(y, dims), tdx = shaped(dx, dims), tda = shaped(da, {C});
        vqz_tensor uy = on_dev(ty, gy), udx = on_dev(tdx, gdx), uda = on_dev(tda, gda), ux = on_dev(tx, gx),
                   udy = on_dev(tdy, gdy), ua = on_dev(ta, galpha);
        const char *name[] = {"silu", "elu", "leaky_relu", "snake"};
        INFO(name[which]);
        switch (which) {
        case 0:
            REQUIRE(vqz_silu_fwd(d.cpu, &tx, &ty) == VQZ_OK);
            REQUIRE(vqz_silu_fwd(d.gpu, &ux, &uy) == VQZ_OK);
            REQUIRE(vqz_silu_bwd(d.cpu, &tx, &tdy, &tdx) == VQZ_OK);
            REQUIRE(vqz_silu_bwd(d.gpu, &ux, &udy, &udx) == VQZ_OK);
            break;
        case 1:
            REQUIRE(vqz_elu_fwd(d.cpu, 1.0f, &tx, &ty) == VQZ_OK);
            REQUIRE(vqz_elu_fwd(d.gpu, 1.0f, &ux, &uy) == VQZ_OK);
            REQUIRE(vqz_elu_bwd(d.cpu, 1.0f, &tx, &tdy, &tdx) == VQZ_OK);
            REQUIRE(vqz_elu_bwd(d.gpu, 1.0f, &ux, &udy, &udx) == VQZ_OK);
            break;
        case 2:
            REQUIRE(vqz_leaky_relu_fwd(d.cpu, 0.1f, &tx, &ty) == VQZ_OK);
            REQUIRE(vqz_leaky_relu_fwd(d.gpu, 0.1f, &ux, &uy) == VQZ_OK);
            REQUIRE(vqz_leaky_relu_bwd(d.cpu, 0.1f, &tx, &tdy, &tdx) == VQZ_OK);
            REQUIRE(vqz_leaky_relu_bwd(d.gpu, 0.1f, &ux, &udy, &udx) == VQZ_OK);
            break;
        default:
            REQUIRE(vqz_snake_fwd(d.cpu, &tx, &ta, &ty) == VQZ_OK);
            REQUIRE(vqz_snake_fwd(d.gpu, &ux, &ua, &uy) == VQZ_OK);
            REQUIRE(vqz_snake_bwd(d.cpu, &tx, &ta, &tdy, &tdx, &tda) == VQZ_OK);
            REQUIRE(vqz_snake_bwd(d.gpu, &ux, &ua, &udy, &udx, &uda) == VQZ_OK);
            PARITY(gda.get(), da, "dalpha (accumulated)");
            break;
        }
        PARITY(gy.get(), y, "forward");
        PARITY(gdx.get(), dx, "backward");
    }

    // scaled add, axpy, scale
    {
        std::vector<float> y(x.size()), z = dy;
        DevBuf gy(d.gpu, y), gz(d.gpu, z);
        vqz_tensor ty = shaped(y, dims), tz = shaped(z, dims);
        vqz_tensor uy = on_dev(ty, gy), uz = on_dev(tz, gz), ux = on_dev(tx, gx), udy = on_dev(tdy, gdy);
        REQUIRE(vqz_add_scaled(d.cpu, &tx, 0.7f, &tdy, &ty) == VQZ_OK);
        REQUIRE(vqz_add_scaled(d.gpu, &ux, 0.7f, &udy, &uy) == VQZ_OK);
        PARITY(gy.get(), y, "add_scaled");
        REQUIRE(vqz_axpy(d.cpu, -1.5f, &tx, &tz) == VQZ_OK);
        REQUIRE(vqz_axpy(d.gpu, -1.5f, &ux, &uz) == VQZ_OK);
        PARITY(gz.get(), z, "axpy");
        REQUIRE(vqz_scale(d.cpu, 0.25f, &tz, &tz) == VQZ_OK);
        REQUIRE(vqz_scale(d.gpu, 0.25f, &uz, &uz) == VQZ_OK);
        PARITY(gz.get(), z, "scale in place");
    }

    // nearest 2x upsampling and pixel shuffle, both ways
    {
        auto big = {N, C, 2 * H, 2 * W};
        std::vector<float> up(numel(big)), back(x.size()), g2 = rand_vec(&r, numel(big));
        DevBuf gup(d.gpu, up), gback(d.gpu, back), gg2(d.gpu, g2);
        vqz_tensor tup = shaped(up, big), tback = shaped(back, dims), tg2 = shaped(g2, big);
        vqz_tensor uup = on_dev(tup, gup), uback = on_dev(tback, gback), ug2 = on_dev(tg2, gg2), ux = on_dev(tx, gx);
        REQUIRE(vqz_upsample2x_fwd(d.cpu, &tx, &tup) == VQZ_OK);
        REQUIRE(vqz_upsample2x_fwd(d.gpu, &ux, &uup) == VQZ_OK);
        PARITY(gup.get(), up, "upsample2x_fwd");
        REQUIRE(vqz_upsample2x_bwd(d.cpu, &tg2, &tback) == VQZ_OK);
        REQUIRE(vqz_upsample2x_bwd(d.gpu, &ug2, &uback) == VQZ_OK);
        PARITY(gback.get(), back, "upsample2x_bwd");

        auto s_in = {N, (int64_t)8, H, W}, s_out = {N, (int64_t)2, 2 * H, 2 * W};
        std::vector<float> si = rand_vec(&r, numel(s_in)), so(numel(s_out)), sb(numel(s_in));
        DevBuf gsi(d.gpu, si), gso(d.gpu, so), gsb(d.gpu, sb);
        vqz_tensor tsi = shaped(si, s_in), tso = shaped(so, s_out), tsb = shaped(sb, s_in);
        vqz_tensor usi = on_dev(tsi, gsi), uso = on_dev(tso, gso), usb = on_dev(tsb, gsb);
        REQUIRE(vqz_pixel_shuffle_fwd(d.cpu, 2, &tsi, &tso) == VQZ_OK);
        REQUIRE(vqz_pixel_shuffle_fwd(d.gpu, 2, &usi, &uso) == VQZ_OK);
        PARITY(gso.get(), so, "pixel_shuffle_fwd");
        REQUIRE(vqz_pixel_shuffle_bwd(d.cpu, 2, &tso, &tsb) == VQZ_OK);
        REQUIRE(vqz_pixel_shuffle_bwd(d.gpu, 2, &uso, &usb) == VQZ_OK);
        PARITY(gsb.get(), sb, "pixel_shuffle_bwd");
    }

    // channel concatenation and slicing
    {
        auto sa = {N, (int64_t)2, (int64_t)9}, sb_ = {N, (int64_t)3, (int64_t)9}, sy = {N, (int64_t)5, (int64_t)9};
        std::vector<float> a = rand_vec(&r, numel(sa)), b = rand_vec(&r, numel(sb_)), y(numel(sy)), s(numel(sb_));
        DevBuf ga(d.gpu, a), gb(d.gpu, b), gy(d.gpu, y), gs(d.gpu, s);
        vqz_tensor ta_ = shaped(a, sa), tb = shaped(b, sb_), ty = shaped(y, sy), ts = shaped(s, sb_);
        vqz_tensor ua_ = on_dev(ta_, ga), ub = on_dev(tb, gb), uy = on_dev(ty, gy), us = on_dev(ts, gs);
        REQUIRE(vqz_concat_channels(d.cpu, &ta_, &tb, &ty) == VQZ_OK);
        REQUIRE(vqz_concat_channels(d.gpu, &ua_, &ub, &uy) == VQZ_OK);
        PARITY(gy.get(), y, "concat_channels");
        REQUIRE(vqz_slice_channels(d.cpu, &ty, 1, &ts) == VQZ_OK);
        REQUIRE(vqz_slice_channels(d.gpu, &uy, 1, &us) == VQZ_OK);
        PARITY(gs.get(), s, "slice_channels");
    }

    // weight normalisation, forward and backward (dg accumulates)
    {
        auto sv = {(int64_t)6, (int64_t)4, (int64_t)3};
        std::vector<float> v = rand_vec(&r, numel(sv)), g = rand_vec(&r, 6, 0.5f, 2.0f), w(numel(sv)),
                           dw = rand_vec(&r, numel(sv)), dv(numel(sv)), dg(6, 0.25f);
        DevBuf gv(d.gpu, v), gg(d.gpu, g), gw(d.gpu, w), gdw(d.gpu, dw), gdv(d.gpu, dv), gdg(d.gpu, dg);
        vqz_tensor tv = shaped(v, sv), tg = shaped(g, {6}), tw = shaped(w, sv), tdw = shaped(dw, sv),
                   tdv = shaped(dv, sv), tdg = shaped(dg, {6});
        vqz_tensor uv = on_dev(tv, gv), ug = on_dev(tg, gg), uw = on_dev(tw, gw), udw = on_dev(tdw, gdw),
                   udv = on_dev(tdv, gdv), udg = on_dev(tdg, gdg);
        REQUIRE(vqz_weight_norm_fwd(d.cpu, &tv, &tg, &tw) == VQZ_OK);
        REQUIRE(vqz_weight_norm_fwd(d.gpu, &uv, &ug, &uw) == VQZ_OK);
        PARITY(gw.get(), w, "weight_norm_fwd");
        REQUIRE(vqz_weight_norm_bwd(d.cpu, &tv, &tg, &tdw, &tdv, &tdg) == VQZ_OK);
        REQUIRE(vqz_weight_norm_bwd(d.gpu, &uv, &ug, &udw, &udv, &udg) == VQZ_OK);
        PARITY(gdv.get(), dv, "weight_norm_bwd dv");
        PARITY(gdg.get(), dg, "weight_norm_bwd dg");
    }

    // dense layer (dw, db accumulate)
    {
        const int64_t M = 7, K = 5, O = 4;
        std::vector<float> a = rand_vec(&r, M * K), w = rand_vec(&r, O * K), b = rand_vec(&r, O), y(M * O),
                           g = rand_vec(&r, M * O), da(M * K), dw(O * K, 0.1f), db(O, -0.2f);
        DevBuf ga(d.gpu, a), gw(d.gpu, w), gb(d.gpu, b), gy(d.gpu, y), gg(d.gpu, g), gda(d.gpu, da), gdw(d.gpu, dw),
            gdb(d.gpu, db);
        vqz_tensor ta_ = shaped(a, {M, K}), tw = shaped(w, {O, K}), tb = shaped(b, {O}), ty = shaped(y, {M, O}),
                   tg = shaped(g, {M, O}), tda = shaped(da, {M, K}), tdw = shaped(dw, {O, K}), tdb = shaped(db, {O});
        vqz_tensor ua_ = on_dev(ta_, ga), uw = on_dev(tw, gw), ub = on_dev(tb, gb), uy = on_dev(ty, gy),
                   ug = on_dev(tg, gg), uda = on_dev(tda, gda), udw = on_dev(tdw, gdw), udb = on_dev(tdb, gdb);
        REQUIRE(vqz_linear_fwd(d.cpu, &ta_, &tw, &tb, &ty) == VQZ_OK);
        REQUIRE(vqz_linear_fwd(d.gpu, &ua_, &uw, &ub, &uy) == VQZ_OK);
        PARITY(gy.get(), y, "linear_fwd");
        REQUIRE(vqz_linear_bwd(d.cpu, &ta_, &tw, &tg, &tda, &tdw, &tdb) == VQZ_OK);
        REQUIRE(vqz_linear_bwd(d.gpu, &ua_, &uw, &ug, &uda, &udw, &udb) == VQZ_OK);
        PARITY(gda.get(), da, "linear_bwd dx");
        PARITY(gdw.get(), dw, "linear_bwd dw");
        PARITY(gdb.get(), db, "linear_bwd db");
    }

    // losses: value and gradient
    for (int l1 = 0; l1 < 2; l1++) {
        std::vector<float> g(x.size()), gc(x.size());
        DevBuf gg(d.gpu, g);
        vqz_tensor tgc = shaped(gc, dims), tg = shaped(g, dims);
        vqz_tensor ug = on_dev(tg, gg), ux = on_dev(tx, gx), udy = on_dev(tdy, gdy);
        double lc = 0, lg = 0;
        if (l1) {
            REQUIRE(vqz_l1_loss(d.cpu, &tx, &tdy, 0.5f, &lc, &tgc) == VQZ_OK);
            REQUIRE(vqz_l1_loss(d.gpu, &ux, &udy, 0.5f, &lg, &ug) == VQZ_OK);
        } else {
            REQUIRE(vqz_mse_loss(d.cpu, &tx, &tdy, 0.5f, &lc, &tgc) == VQZ_OK);
            REQUIRE(vqz_mse_loss(d.gpu, &ux, &udy, 0.5f, &lg, &ug) == VQZ_OK);
        }
        INFO((l1 ? "l1" : "mse") << " loss " << lg << " vs " << lc);
        CHECK(std::fabs(lg - lc) <= TOL * std::fabs(lc));
        PARITY(gg.get(), gc, "loss gradient");
    }
#endif
}

TEST_CASE("CUDA convolutions match the CPU forward, fused and backward", "[cuda]")
{
    Devices d;
    if (!d.ready())
        return;
#ifdef VQZ_HAVE_CUDA
    vqz_rng r;
    vqz_rng_seed(&r, 82);
    struct C2 {
        int64_t n, ci, h, w, co;
        int k, stride, pad, dil;
        vqz_pad_mode mode;
    } c2[] = {{2, 3, 9, 11, 5, 3, 1, 1, 1, VQZ_PAD_ZERO},      {1, 4, 8, 8, 6, 3, 2, 1, 1, VQZ_PAD_REPLICATE},
              {2, 2, 10, 7, 3, 3, 1, 2, 2, VQZ_PAD_ZERO},      {1, 8, 16, 16, 8, 1, 1, 0, 1, VQZ_PAD_ZERO},
              {1, 3, 12, 13, 16, 5, 2, 2, 1, VQZ_PAD_REPLICATE}};
    for (const C2 &c : c2) {
        INFO("conv2d n" << c.n << " ci" << c.ci << " " << c.h << "x" << c.w << " co" << c.co << " k" << c.k << " s"
                        << c.stride << " p" << c.pad << " d" << c.dil << " mode" << (int)c.mode);
        int64_t oh = (c.h + 2 * c.pad - c.dil * (c.k - 1) - 1) / c.stride + 1;
        int64_t ow = (c.w + 2 * c.pad - c.dil * (c.k - 1) - 1) / c.stride + 1;
        auto sy = {c.n, c.co, oh, ow};
        ConvBufs t(d.gpu, &r, {c.n, c.ci, c.h, c.w}, {c.co, c.ci, (int64_t)c.k, (int64_t)c.k}, sy, c.co);
        vqz_conv2d_params p = {c.stride, c.pad, c.dil, c.mode};
        REQUIRE(vqz_conv2d_fwd(d.cpu, &p, &t.hx, &t.hw, &t.hb, &t.hy) == VQZ_OK);
        REQUIRE(vqz_conv2d_fwd(d.gpu, &p, &t.gx, &t.gw, &t.gb, &t.gy) == VQZ_OK);
        t.check_fwd("conv2d_fwd");
        REQUIRE(vqz_conv2d_bwd(d.cpu, &p, &t.hx, &t.hw, &t.hdy, &t.hdx, &t.hdw, &t.hdb) == VQZ_OK);
        REQUIRE(vqz_conv2d_bwd(d.gpu, &p, &t.gx, &t.gw, &t.gdy, &t.gdx, &t.gdw, &t.gdb) == VQZ_OK);
        t.check_bwd("conv2d_bwd");

        if (c.mode == VQZ_PAD_ZERO) { // fused: residual sum, output scale, activations after and before
            std::vector<float> res = rand_vec(&r, numel(sy)), rc = res;
            DevBuf gres(d.gpu, res);
            vqz_tensor trc = shaped(rc, sy), ures = on_dev(trc, gres);
            vqz_conv_fusion f = {VQZ_LAYOUT_NCHW, VQZ_LAYOUT_NCHW, 1, 0.5f, 0.75f, VQZ_FUSED_SILU, VQZ_FUSED_ELU};
            REQUIRE(vqz_conv2d_fwd_fused(d.cpu, &p, &f, &t.hx, &t.hw, &t.hb, &trc) == VQZ_OK);
            REQUIRE(vqz_conv2d_fwd_fused(d.gpu, &p, &f, &t.gx, &t.gw, &t.gb, &ures) == VQZ_OK);
            PARITY(gres.get(), rc, "conv2d_fwd_fused");
        }
    }

    { // nearest 2x upsampling + 3x3 conv, with an output scale and ELU
        auto sx = {(int64_t)2, (int64_t)4, (int64_t)5, (int64_t)6}, sw = {(int64_t)3, (int64_t)4, (int64_t)3, (int64_t)3},
             sy = {(int64_t)2, (int64_t)3, (int64_t)10, (int64_t)12};
        std::vector<float> x = rand_vec(&r, numel(sx)), w = rand_vec(&r, numel(sw)), b = rand_vec(&r, 3), y(numel(sy));
        DevBuf gx(d.gpu, x), gw(d.gpu, w), gb(d.gpu, b), gy(d.gpu, y);
        vqz_tensor tx = shaped(x, sx), tw = shaped(w, sw), tb = shaped(b, {3}), ty = shaped(y, sy);
        vqz_tensor ux = on_dev(tx, gx), uw = on_dev(tw, gw), ub = on_dev(tb, gb), uy = on_dev(ty, gy);
        vqz_conv_fusion f = {VQZ_LAYOUT_NCHW, VQZ_LAYOUT_NCHW, 0, 0.0f, 1.25f, VQZ_FUSED_ELU, VQZ_FUSED_NONE};
        REQUIRE(vqz_conv2d_up2x_fwd_fused(d.cpu, &f, &tx, &tw, &tb, &ty) == VQZ_OK);
        REQUIRE(vqz_conv2d_up2x_fwd_fused(d.gpu, &f, &ux, &uw, &ub, &uy) == VQZ_OK);
        PARITY(gy.get(), y, "conv2d_up2x_fwd_fused");
    }

    struct C1 {
        int64_t n, ci, t, co;
        int k, stride, pl, pr, dil;
        vqz_pad_mode mode;
    } c1[] = {{2, 3, 50, 4, 7, 1, 3, 3, 1, VQZ_PAD_REFLECT},
              {1, 4, 33, 6, 4, 2, 1, 2, 1, VQZ_PAD_ZERO},
              {2, 5, 40, 5, 3, 1, 3, 3, 3, VQZ_PAD_REPLICATE},
              {1, 8, 64, 16, 16, 8, 4, 4, 1, VQZ_PAD_REFLECT}};
    for (const C1 &c : c1) {
        INFO("conv1d n" << c.n << " ci" << c.ci << " t" << c.t << " co" << c.co << " k" << c.k << " s" << c.stride
                        << " p" << c.pl << "+" << c.pr << " d" << c.dil << " mode" << (int)c.mode);
        int64_t to = (c.t + c.pl + c.pr - c.dil * (c.k - 1) - 1) / c.stride + 1;
        auto sy = {c.n, c.co, to};
        ConvBufs t(d.gpu, &r, {c.n, c.ci, c.t}, {c.co, c.ci, (int64_t)c.k}, sy, c.co);
        vqz_conv1d_params p = {c.stride, c.pl, c.pr, c.dil, c.mode};
        REQUIRE(vqz_conv1d_fwd(d.cpu, &p, &t.hx, &t.hw, &t.hb, &t.hy) == VQZ_OK);
        REQUIRE(vqz_conv1d_fwd(d.gpu, &p, &t.gx, &t.gw, &t.gb, &t.gy) == VQZ_OK);
        t.check_fwd("conv1d_fwd");
        REQUIRE(vqz_conv1d_bwd(d.cpu, &p, &t.hx, &t.hw, &t.hdy, &t.hdx, &t.hdw, &t.hdb) == VQZ_OK);
        REQUIRE(vqz_conv1d_bwd(d.gpu, &p, &t.gx, &t.gw, &t.gdy, &t.gdx, &t.gdw, &t.gdb) == VQZ_OK);
        t.check_bwd("conv1d_bwd");
        if (c.mode == VQZ_PAD_ZERO) {
            std::vector<float> res = rand_vec(&r, numel(sy)), rc = res;
            DevBuf gres(d.gpu, res);
            vqz_tensor trc = shaped(rc, sy), ures = on_dev(trc, gres);
            vqz_conv_fusion f = {VQZ_LAYOUT_NCHW, VQZ_LAYOUT_NCHW, 1, 1.0f, 1.0f, VQZ_FUSED_ELU, VQZ_FUSED_SILU};
            REQUIRE(vqz_conv1d_fwd_fused(d.cpu, &p, &f, &t.hx, &t.hw, &t.hb, &trc) == VQZ_OK);
            REQUIRE(vqz_conv1d_fwd_fused(d.gpu, &p, &f, &t.gx, &t.gw, &t.gb, &ures) == VQZ_OK);
            PARITY(gres.get(), rc, "conv1d_fwd_fused");
        }
    }

    struct CT {
        int64_t n, ci, t, co;
        int k, stride, cl, cr;
    } ct[] = {{2, 6, 20, 3, 8, 4, 2, 2}, {1, 4, 15, 5, 4, 2, 1, 1}, {1, 16, 12, 8, 16, 8, 4, 4}};
    for (const CT &c : ct) {
        INFO("convtr1d n" << c.n << " ci" << c.ci << " t" << c.t << " co" << c.co << " k" << c.k << " s" << c.stride
                          << " crop" << c.cl << "+" << c.cr);
        int64_t to = (c.t - 1) * c.stride + c.k - c.cl - c.cr;
        ConvBufs t(d.gpu, &r, {c.n, c.ci, c.t}, {c.ci, c.co, (int64_t)c.k}, {c.n, c.co, to}, c.co);
        vqz_convtr1d_params p = {c.stride, c.cl, c.cr};
        REQUIRE(vqz_convtr1d_fwd(d.cpu, &p, &t.hx, &t.hw, &t.hb, &t.hy) == VQZ_OK);
        REQUIRE(vqz_convtr1d_fwd(d.gpu, &p, &t.gx, &t.gw, &t.gb, &t.gy) == VQZ_OK);
        t.check_fwd("convtr1d_fwd");
        REQUIRE(vqz_convtr1d_bwd(d.cpu, &p, &t.hx, &t.hw, &t.hdy, &t.hdx, &t.hdw, &t.hdb) == VQZ_OK);
        REQUIRE(vqz_convtr1d_bwd(d.gpu, &p, &t.gx, &t.gw, &t.gdy, &t.gdx, &t.gdw, &t.gdb) == VQZ_OK);
        t.check_bwd("convtr1d_bwd");
    }
#endif
}

TEST_CASE("CUDA quantizer picks exactly the CPU's codewords, duplicates and near-ties included", "[cuda]")
{
    Devices d;
    if (!d.ready())
        return;
#ifdef VQZ_HAVE_CUDA
    vqz_rng r;
    vqz_rng_seed(&r, 83);
    const int L = 4, K = 64, D = 8;
    const int64_t N = 2, S = 300;
    std::vector<float> cb = rand_vec(&r, (size_t)L * K * D, -0.5f, 0.5f);
    // an exact copy of an earlier codeword (the lower index must win) ...
    std::copy(cb.begin() + 3 * D, cb.begin() + 4 * D, cb.begin() + 40 * D);
    std::vector<float> x = rand_vec(&r, (size_t)(N * D * S));
    // ... and inputs sitting exactly on a codeword or midway between two (ties broken by the exact check)
    for (int dd = 0; dd < D; dd++) {
        x[(size_t)dd * S + 0] = cb[(size_t)3 * D + dd];
        x[(size_t)dd * S + 1] = 0.5f * (cb[(size_t)5 * D + dd] + cb[(size_t)6 * D + dd]);
    }
    DevBuf gcb(d.gpu, cb), gx(d.gpu, x);
    vqz_rvq qc;
    std::memset(&qc, 0, sizeof qc);
    qc.levels = L;
    qc.K = K;
    qc.D = D;
    qc.codebooks = cb.data();
    vqz_rvq qg = qc;
    qg.codebooks = gcb.p;
    vqz_tensor tx = shaped(x, {N, D, S}), ux = on_dev(tx, gx);

    std::vector<int32_t> ic((size_t)(L * N * S)), ig(ic.size());
    std::vector<float> xq(x.size());
    DevBuf gxq(d.gpu, xq);
    vqz_tensor txq = shaped(xq, {N, D, S}), uxq = on_dev(txq, gxq);
    int32_t *gidx = nullptr;
    REQUIRE(vqz_cuda_malloc(d.gpu->cuda, ig.size() * sizeof(int32_t), (void **)&gidx) == VQZ_OK);
    REQUIRE(vqz_rvq_encode(d.cpu, &qc, &tx, L, ic.data(), &txq) == VQZ_OK);
    REQUIRE(vqz_rvq_encode(d.gpu, &qg, &ux, L, gidx, &uxq) == VQZ_OK);
    REQUIRE(vqz_cuda_d2h(d.gpu->cuda, ig.data(), gidx, ig.size() * sizeof(int32_t)) == VQZ_OK);
    size_t differ = 0;
    for (size_t i = 0; i < ic.size(); i++)
        differ += ic[i] != ig[i];
    INFO(differ << " of " << ic.size() << " indices differ");
    CHECK(differ == 0);
    CHECK(ig[0] == 3); // the copy at 40 never wins
    PARITY(gxq.get(), xq, "quantized latent");

    // decode: the sum of the chosen codewords
    std::vector<float> yc(x.size());
    DevBuf gy(d.gpu, yc);
    vqz_tensor tyc = shaped(yc, {N, D, S}), uy = on_dev(tyc, gy);
    REQUIRE(vqz_rvq_decode(d.cpu, &qc, ic.data(), L, &tyc) == VQZ_OK);
    REQUIRE(vqz_rvq_decode(d.gpu, &qg, gidx, L, &uy) == VQZ_OK);
    PARITY(gy.get(), yc, "rvq_decode");
    // an index >= K is refused before it reaches a kernel
    int32_t bad = K;
    REQUIRE(vqz_cuda_h2d(d.gpu->cuda, gidx + 7, &bad, sizeof bad) == VQZ_OK);
    REQUIRE(vqz_rvq_decode(d.gpu, &qg, gidx, L, &uy) == VQZ_ERR_INDEX_RANGE);
    vqz_cuda_free(d.gpu->cuda, gidx);
#endif
}

TEST_CASE("CUDA image and audio models encode and decode like the CPU", "[cuda]")
{
    Devices d;
    if (!d.ready())
        return;
#ifdef VQZ_HAVE_CUDA
    const char *presets[] = {"image-small", "audio-small", "audio-small-snake"};
    for (const char *name : presets) {
        INFO(name);
        vqz_net_config cfg;
        bool snake = std::strcmp(name, "audio-small-snake") == 0;
        REQUIRE(vqz_net_config_preset(snake ? "audio-small" : name, &cfg) == VQZ_OK);
        if (snake) {
            cfg.activation = VQZ_ACT_SNAKE;
            cfg.weight_norm = 0;
        }
        vqz_net *mc = nullptr, *mg = nullptr;
        REQUIRE(vqz_net_create(&cfg, &mc) == VQZ_OK);
        REQUIRE(vqz_net_create(&cfg, &mg) == VQZ_OK);
        REQUIRE(vqz_net_init(mc, 5) == VQZ_OK);
        REQUIRE(vqz_net_init(mg, 5) == VQZ_OK);
        bool image = cfg.kind == VQZ_NET_IMAGE;
        int64_t h = image ? 48 : 9600, w = image ? 64 : 1, lh = 0, lw = 0;
        REQUIRE(vqz_net_latent_size(mc, h, w, &lh, &lw) == VQZ_OK);
        vqz_rng r;
        vqz_rng_seed(&r, 84);
        size_t n = (size_t)(cfg.in_channels * h * w);
        std::vector<float> x = rand_vec(&r, n, -0.9f, 0.9f);
        vqz_tensor tx = image ? vqz_t4(x.data(), 1, 3, h, w) : vqz_t3(x.data(), 1, 1, h);
        const int L = cfg.levels;
        std::vector<int32_t> ic((size_t)(L * lh * lw)), ig(ic.size());
        REQUIRE(vqz_net_encode(d.cpu, mc, &tx, L, ic.data()) == VQZ_OK);
        REQUIRE(vqz_net_encode(d.gpu, mg, &tx, L, ig.data()) == VQZ_OK);
        // The latents differ by rounding only; a codeword choice may flip where two are within it.
        size_t differ = 0;
        for (size_t i = 0; i < ic.size(); i++)
            differ += ic[i] != ig[i];
        INFO(differ << " of " << ic.size() << " indices differ");
        CHECK(differ <= ic.size() / 200);
        // Decoding the same indices: the decoder networks agree within rounding.
        std::vector<float> yc(n), yg(n);
        vqz_tensor tyc = image ? vqz_t4(yc.data(), 1, 3, h, w) : vqz_t3(yc.data(), 1, 1, h);
        vqz_tensor tyg = tyc;
        tyg.data = yg.data();
        for (int levels : {1, L}) {
            INFO(levels << " levels");
            REQUIRE(vqz_net_decode(d.cpu, mc, ic.data(), levels, &tyc) == VQZ_OK);
            REQUIRE(vqz_net_decode(d.gpu, mg, ic.data(), levels, &tyg) == VQZ_OK);
            PARITY(yg, yc, "decoded output");
        }
        // The net now lives on the GPU: a CPU context is refused with a message, not misread.
        REQUIRE(vqz_net_decode(d.cpu, mg, ic.data(), L, &tyg) == VQZ_ERR_INVALID_ARG);
        CHECK(std::string(vqz_last_error()).find("GPU") != std::string::npos);
        vqz_net_free(mc);
        vqz_net_free(mg);
    }
#endif
}

TEST_CASE("CUDA codes a sample photograph with the shipped model like the CPU", "[cuda]")
{
    Devices d;
    if (!d.ready())
        return;
    vqz_model *m = nullptr;
    REQUIRE(vqz_model_load(vqz_test_path("../samples/models/vqz-image-v1.safetensors").c_str(), &m) == VQZ_OK);
    // A 160x96 RGB gradient with texture: several 64-pixel tiles, so halos and tile edges are crossed.
    const uint32_t W = 160, H = 96;
    std::vector<uint8_t> px((size_t)W * H * 3);
    for (uint32_t y = 0; y < H; y++)
        for (uint32_t x = 0; x < W; x++)
            for (int c = 0; c < 3; c++)
                px[((size_t)y * W + x) * 3 + c] = (uint8_t)((x * (c + 1) + y * (3 - c) + ((x * y) % 17) * 5) & 255);
    vqz_pixels in = {W, H, 3, 8, px.data()};
    vqz_options oc, og;
    vqz_options_init(&oc);
    oc.device = VQZ_DEVICE_CPU;
    oc.tile = 64;
    og = oc;
    og.device = VQZ_DEVICE_CUDA;
    uint8_t *fc = nullptr, *fg = nullptr;
    size_t nc = 0, ng = 0;
    REQUIRE(vqz_image_encode(m, &oc, &in, &fc, &nc) == VQZ_OK);
    REQUIRE(vqz_image_encode(m, &og, &in, &fg, &ng) == VQZ_OK);
    INFO("file sizes: CPU " << nc << " bytes, CUDA " << ng << " bytes");
    CHECK(std::abs((long)nc - (long)ng) <= (long)nc / 50);
    // Decoding the CPU's file on both devices: 8-bit outputs within one step of each other.
    vqz_pixels oc_px, og_px;
    REQUIRE(vqz_image_decode(m, &oc, fc, nc, &oc_px) == VQZ_OK);
    REQUIRE(vqz_image_decode(m, &og, fc, nc, &og_px) == VQZ_OK);
    REQUIRE(oc_px.width == W);
    REQUIRE(og_px.height == H);
    int worst = 0;
    const uint8_t *a = (const uint8_t *)oc_px.pixels, *b = (const uint8_t *)og_px.pixels;
    for (size_t i = 0; i < px.size(); i++)
        worst = std::max(worst, std::abs((int)a[i] - (int)b[i]));
    INFO("largest pixel difference between the CPU and CUDA decodes: " << worst);
    CHECK(worst <= 1);
    vqz_free(oc_px.pixels);
    vqz_free(og_px.pixels);
    vqz_free(fc);
    vqz_free(fg);
    vqz_model_free(m);
}
