// test_golden.cpp — the C engine against the PyTorch twin (tests/reference/): whole-model forward,
// RVQ indices, losses, every parameter gradient, one clipped AdamW step and one EMA codebook update,
// from the committed golden files (tests/golden/model_*.safetensors). Bound: rel. error <= 1e-4.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "testutil.h"

extern "C" {
#include "common/status.h"
#include "format/bundle.h"
#include "nn/adamw.h"
#include "nn/net.h"
}

namespace {

const double TOL = 1e-4;

struct Golden {
    vqz_bundle *b = nullptr;
    std::vector<uint8_t> raw;
    explicit Golden(const std::string &name)
    {
        std::string path = vqz_test_path("golden/" + name);
        std::ifstream f(path, std::ios::binary);
        REQUIRE(f.good());
        raw.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
        REQUIRE(vqz_bundle_open_memory(raw.data(), raw.size(), &b) == VQZ_OK);
    }
    ~Golden() { vqz_bundle_free(b); }

    std::vector<float> f32(const std::string &name, int64_t *numel_out = nullptr)
    {
        vqz_tensor_info ti;
        INFO(name);
        REQUIRE(vqz_bundle_find(b, name.c_str(), &ti) == VQZ_OK);
        std::vector<float> v(ti.numel);
        REQUIRE(vqz_bundle_get_f32(b, name.c_str(), ti.ndim, ti.shape, v.data()) == VQZ_OK);
        if (numel_out)
            *numel_out = (int64_t)ti.numel;
        return v;
    }
    std::vector<int32_t> i32(const std::string &name)
    {
        vqz_tensor_info ti;
        REQUIRE(vqz_bundle_find(b, name.c_str(), &ti) == VQZ_OK);
        REQUIRE(ti.dtype == VQZ_DTYPE_I32);
        std::vector<int32_t> v(ti.numel);
        for (uint64_t i = 0; i < ti.numel; i++) {
            const uint8_t *p = raw.data() + ti.offset + 4 * i;
            v[i] = (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        }
        return v;
    }
    std::vector<int64_t> shape(const std::string &name)
    {
        vqz_tensor_info ti;
        REQUIRE(vqz_bundle_find(b, name.c_str(), &ti) == VQZ_OK);
        return std::vector<int64_t>(ti.shape, ti.shape + ti.ndim);
    }
    double meta_num(const std::string &key)
    {
        const char *v = nullptr;
        REQUIRE(vqz_bundle_meta_get(b, key.c_str(), &v) == VQZ_OK);
        return std::strtod(v, nullptr);
    }
    std::string meta(const std::string &key)
    {
        const char *v = nullptr;
        REQUIRE(vqz_bundle_meta_get(b, key.c_str(), &v) == VQZ_OK);
        return v;
    }
};

double rel_scalar(double a, double b)
{
    return std::fabs(a - b) / std::fmax(std::fabs(b), 1e-30);
}

void check_case(const std::string &file)
{
    Golden g(file);
    vqz_net_config cfg;
    REQUIRE(vqz_net_config_from_json(g.meta("config").c_str(), &cfg) == VQZ_OK);
    vqz_net *m = nullptr;
    REQUIRE(vqz_net_create(&cfg, &m) == VQZ_OK);
    vqz_nn_ctx *ctx = nullptr;
    REQUIRE(vqz_nn_ctx_create(&ctx, VQZ_DEVICE_CPU, 0) == VQZ_OK);

    // every model tensor from the bundle, shapes checked by the loader
    for (int i = 0; i < m->n_tensors; i++) {
        const vqz_param_info *p = &m->info[i];
        INFO(p->name);
        REQUIRE(vqz_bundle_get_f32(g.b, p->name, p->ndim, p->shape, m->params + p->offset) == VQZ_OK);
    }
    REQUIRE(vqz_net_enable_training(m) == VQZ_OK);
    m->rvq.dead_threshold = 0.0f; // the golden EMA step has no restarts

    std::vector<int64_t> xs = g.shape("input");
    std::vector<float> x = g.f32("input");
    vqz_tensor xt = xs.size() == 4 ? vqz_t4(x.data(), xs[0], xs[1], xs[2], xs[3]) : vqz_t3(x.data(), xs[0], xs[1], xs[2]);

    // inference: latent, indices, decode from indices
    std::vector<int64_t> zs = g.shape("z");
    std::vector<float> zref = g.f32("z"), z(zref.size());
    vqz_tensor zt = zs.size() == 4 ? vqz_t4(z.data(), zs[0], zs[1], zs[2], zs[3]) : vqz_t3(z.data(), zs[0], zs[1], zs[2]);
    REQUIRE(vqz_net_encode_latent(ctx, m, &xt, &zt) == VQZ_OK);
    double ez = rel_err(z, zref);
    std::vector<int32_t> iref = g.i32("indices"), idx(iref.size());
    REQUIRE(vqz_net_encode(ctx, m, &xt, cfg.levels, idx.data()) == VQZ_OK);
    REQUIRE(idx == iref);
    std::vector<float> yref = g.f32("y"), y(yref.size());
    vqz_tensor yt = xt;
    yt.data = y.data();
    REQUIRE(vqz_net_decode(ctx, m, idx.data(), cfg.levels, &yt) == VQZ_OK);
    double ey = rel_err(y, yref);

    // training step: losses and every gradient
    vqz_train_opts o;
    std::memset(&o, 0, sizeof o);
    o.lr = 1e-3f;
    o.weight_decay = 0.01f;
    o.beta = 0.25f;
    o.grad_clip = 1.0f;
    o.n_levels = cfg.levels;
    o.ema = 1;
    if (cfg.kind == VQZ_NET_IMAGE) {
        o.mse_weight = 1.0f;
    } else {
        o.l1_weight = 1.0f;
        o.stft_weight = 1.0f;
        const int sizes[2] = {32, 64};
        REQUIRE(vqz_net_set_stft_sizes(m, sizes, 2) == VQZ_OK);
    }
    vqz_train_stats st;
    REQUIRE(vqz_net_train_grad(ctx, m, &xt, &o, &st) == VQZ_OK);
    double el = rel_scalar(st.loss, g.meta_num("loss.total"));
    double ec = rel_scalar(st.commit, g.meta_num("loss.commit"));
    double egrad = 0;
    std::string worst;
    for (int i = 0; i < m->n_tensors; i++) {
        const vqz_param_info *p = &m->info[i];
        if (!p->trainable)
            continue;
        std::vector<float> gref = g.f32(std::string("grad.") + p->name);
        double e = rel_err(m->grads + p->offset, gref.data(), gref.size());
        if (e > egrad) {
            egrad = e;
            worst = p->name;
        }
    }
    std::printf("golden %-28s z %.1e  y %.1e  loss %.1e  commit %.1e  grad %.1e (%s)\n", file.c_str(), ez, ey, el,
                ec, egrad, worst.c_str());
    CHECK(ez <= TOL);
    CHECK(ey <= TOL);
    CHECK(el <= TOL);
    CHECK(ec <= TOL);
    CHECK(egrad <= TOL);

    // optimiser and EMA isolated: apply clip + AdamW + EMA to the reference gradients
    for (int i = 0; i < m->n_tensors; i++) {
        const vqz_param_info *p = &m->info[i];
        if (!p->trainable)
            continue;
        std::vector<float> gref = g.f32(std::string("grad.") + p->name);
        std::memcpy(m->grads + p->offset, gref.data(), gref.size() * sizeof(float));
    }
    vqz_rng rng;
    vqz_rng_seed(&rng, 1);
    REQUIRE(vqz_net_train_apply(ctx, m, &o, &rng, &st) == VQZ_OK);
    CHECK(rel_scalar(st.grad_norm, g.meta_num("grad_norm")) <= TOL);
    double estep = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const vqz_param_info *p = &m->info[i];
        if (!p->trainable)
            continue;
        std::vector<float> sref = g.f32(std::string("step1.") + p->name);
        estep = std::fmax(estep, rel_err(m->params + p->offset, sref.data(), sref.size()));
    }
    std::vector<float> cb = g.f32("ema.codebooks"), cnt = g.f32("ema.count"), sum = g.f32("ema.sum");
    double ecb = rel_err(m->views[m->cb].data, cb.data(), cb.size());
    double ecnt = rel_err(m->ema_count, cnt.data(), cnt.size());
    double esum = rel_err(m->ema_sum, sum.data(), sum.size());
    std::printf("golden %-28s step1 %.1e  ema codebooks %.1e count %.1e sum %.1e\n", file.c_str(), estep, ecb, ecnt,
                esum);
    CHECK(estep <= TOL);
    CHECK(ecb <= TOL);
    CHECK(ecnt <= TOL);
    CHECK(esum <= TOL);

    vqz_nn_ctx_free(ctx);
    vqz_net_free(m);
}

} // namespace

TEST_CASE("image model agrees with the PyTorch twin", "[golden]")
{
    check_case("model_image.safetensors");
}

TEST_CASE("audio model (ELU, weight norm) agrees with the PyTorch twin", "[golden]")
{
    check_case("model_audio_elu.safetensors");
}

TEST_CASE("audio model (Snake) agrees with the PyTorch twin", "[golden]")
{
    check_case("model_audio_snake.safetensors");
}

TEST_CASE("AdamW with clipping agrees with PyTorch over three steps", "[golden]")
{
    Golden g("model_adamw.safetensors");
    std::vector<float> w = g.f32("p0.w"), b = g.f32("p0.b");
    std::vector<float> mw(w.size()), vw(w.size()), mb(b.size()), vb(b.size());
    vqz_nn_ctx *ctx = nullptr;
    REQUIRE(vqz_nn_ctx_create(&ctx, VQZ_DEVICE_CPU, 0) == VQZ_OK);
    vqz_adamw_cfg cfg = {0.9f, 0.999f, 1e-8f};
    for (int t = 1; t <= 3; t++) {
        std::string s = std::to_string(t);
        std::vector<float> gw = g.f32("g" + s + ".w"), gb = g.f32("g" + s + ".b");
        // clipping is over both tensors together: one flat buffer
        std::vector<float> flat(gw);
        flat.insert(flat.end(), gb.begin(), gb.end());
        double norm = 0;
        REQUIRE(vqz_grad_clip(ctx, flat.data(), (int64_t)flat.size(), 1.0f, &norm) == VQZ_OK);
        CHECK(rel_scalar(norm, g.meta_num("grad_norm." + s)) <= 1e-6);
        REQUIRE(vqz_adamw_step(ctx, &cfg, 1e-2f, 0.01f, t, w.data(), flat.data(), mw.data(), vw.data(),
                               (int64_t)w.size()) == VQZ_OK);
        REQUIRE(vqz_adamw_step(ctx, &cfg, 1e-2f, 0.0f, t, b.data(), flat.data() + w.size(), mb.data(), vb.data(),
                               (int64_t)b.size()) == VQZ_OK);
        CHECK(rel_err(w, g.f32("p" + s + ".w")) <= 1e-6);
        CHECK(rel_err(b, g.f32("p" + s + ".b")) <= 1e-6);
    }
    vqz_nn_ctx_free(ctx);
}
