// test_net.cpp — network configuration, graph building and planning, inference shapes and the
// end-to-end training check (loss falls, codebooks get used).
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "testutil.h"

extern "C" {
#include "common/status.h"
#include "nn/adamw.h"
#include "nn/net.h"
}

namespace {

vqz_net_config tiny_image()
{
    vqz_net_config c;
    std::memset(&c, 0, sizeof c);
    c.kind = VQZ_NET_IMAGE;
    c.in_channels = 3;
    c.n_stages = 2;
    c.channels[0] = 16;
    c.channels[1] = 24;
    c.channels[2] = 32;
    c.strides[0] = c.strides[1] = 2;
    c.res_blocks = 1;
    c.latent_dim = 8;
    c.levels = 3;
    c.codebook_size = 32;
    c.res_scale = 0.5f;
    c.activation = VQZ_ACT_SILU;
    return c;
}

struct Ctx {
    vqz_nn_ctx *ctx = nullptr;
    Ctx() { REQUIRE(vqz_nn_ctx_create(&ctx, VQZ_DEVICE_CPU, 0) == VQZ_OK); }
    ~Ctx() { vqz_nn_ctx_free(ctx); }
};

struct Model {
    vqz_net *m = nullptr;
    explicit Model(const vqz_net_config &c) { REQUIRE(vqz_net_create(&c, &m) == VQZ_OK); }
    ~Model() { vqz_net_free(m); }
};

// Structured synthetic images in [-1, 1]: smooth colour gradients plus a few sharp-edged discs and
// bars, different for every sample.
void structured_images(vqz_rng *r, float *x, int n, int h, int w)
{
    for (int b = 0; b < n; b++) {
        float base[3], gx[3], gy[3];
        for (int c = 0; c < 3; c++) {
            base[c] = vqz_rng_uniform(r) * 1.2f - 0.6f;
            gx[c] = (vqz_rng_uniform(r) - 0.5f) * 1.0f;
            gy[c] = (vqz_rng_uniform(r) - 0.5f) * 1.0f;
        }
        float cx = vqz_rng_uniform(r) * w, cy = vqz_rng_uniform(r) * h, rad = 3 + vqz_rng_uniform(r) * w / 3;
        float col[3];
        for (int c = 0; c < 3; c++)
            col[c] = vqz_rng_uniform(r) * 1.6f - 0.8f;
        int bar = (int)(vqz_rng_uniform(r) * w);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++) {
                    float v = base[c] + gx[c] * (j / (float)w - 0.5f) + gy[c] * (i / (float)h - 0.5f);
                    float dx = j - cx, dy = i - cy;
                    if (dx * dx + dy * dy < rad * rad)
                        v = col[c];
                    if (j >= bar && j < bar + 3)
                        v = -v;
                    x[(((size_t)b * 3 + c) * h + i) * w + j] = v;
                }
    }
}

} // namespace

TEST_CASE("model config JSON round-trips and rejects malformed configs", "[model]")
{
    vqz_net_config c;
    REQUIRE(vqz_net_config_preset("audio-base", &c) == VQZ_OK);
    char *json = nullptr;
    REQUIRE(vqz_net_config_to_json(&c, &json) == VQZ_OK);
    vqz_net_config d;
    REQUIRE(vqz_net_config_from_json(json, &d) == VQZ_OK);
    std::free(json);
    REQUIRE(std::memcmp(&c, &d, sizeof c) == 0);

    REQUIRE(vqz_net_config_from_json("{", &d) == VQZ_ERR_FORMAT);
    REQUIRE(vqz_net_config_from_json("{\"kind\":\"video\"}", &d) == VQZ_ERR_FORMAT);
    REQUIRE(std::string(vqz_last_error()).find("video") != std::string::npos);
    const char *bad_strides = "{\"kind\":\"image\",\"in_channels\":3,\"channels\":[8,16],\"strides\":[2,2],"
                              "\"res_blocks\":1,\"latent_dim\":4,\"levels\":2,\"codebook_size\":16,"
                              "\"activation\":\"silu\"}";
    REQUIRE(vqz_net_config_from_json(bad_strides, &d) == VQZ_ERR_FORMAT);
    const char *bad_k = "{\"kind\":\"image\",\"in_channels\":3,\"channels\":[8,16],\"strides\":[2],"
                        "\"res_blocks\":1,\"latent_dim\":4,\"levels\":2,\"codebook_size\":1,"
                        "\"activation\":\"silu\"}";
    REQUIRE(vqz_net_config_from_json(bad_k, &d) == VQZ_ERR_INVALID_ARG);
    REQUIRE(std::string(vqz_last_error()).find("codebook_size") != std::string::npos);
    REQUIRE(vqz_net_config_preset("image-huge", &d) == VQZ_ERR_NOT_FOUND);
}

TEST_CASE("presets build with the tensor names of spec/models.md", "[model]")
{
    const char *names[] = {"image-small", "image-base", "audio-small", "audio-base"};
    for (const char *name : names) {
        vqz_net_config c;
        REQUIRE(vqz_net_config_preset(name, &c) == VQZ_OK);
        Model m(c);
        REQUIRE(m.m->n_total > m.m->n_train);
        REQUIRE(m.m->n_train > m.m->n_decay);
        REQUIRE(vqz_net_find(m.m, "rvq.codebooks") == m.m->cb);
        REQUIRE(vqz_net_find(m.m, "enc.stem.bias") >= 0);
        REQUIRE(vqz_net_find(m.m, "dec.out.bias") >= 0);
        double er = 0, dr = 0;
        vqz_net_halo(m.m, &er, &dr);
        double em = 0, dm = 0;
        int64_t h = c.kind == VQZ_NET_IMAGE ? 512 : 24000, w = c.kind == VQZ_NET_IMAGE ? 768 : 1;
        vqz_net_macs(m.m, h, w, &em, &dm);
        std::printf("%-12s %8.2f M params  halo enc %.0f dec %.1f  GMAC enc %.2f dec %.2f (%lldx%lld)\n", name,
                    m.m->n_total / 1e6, er, dr, em / 1e9, dm / 1e9, (long long)h, (long long)w);
        REQUIRE(er > 0);
        REQUIRE(dr > 0);
        if (c.kind == VQZ_NET_AUDIO) {
            REQUIRE(vqz_net_stride(m.m) == 320);
            REQUIRE(vqz_net_find(m.m, "enc.stages.0.res.2.conv1.weight_v") >= 0);
            REQUIRE(vqz_net_find(m.m, "dec.stages.3.up.weight_g") >= 0);
            int v = vqz_net_find(m.m, "dec.stages.3.up.weight_v");
            REQUIRE(m.m->info[v].shape[0] == c.channels[4]); // transposed: [in, out, k]
            REQUIRE(m.m->info[v].shape[2] == 16);
        } else {
            REQUIRE(vqz_net_stride(m.m) == 8);
            REQUIRE(vqz_net_find(m.m, "enc.stages.2.down.weight") >= 0);
            REQUIRE(vqz_net_find(m.m, "dec.stages.0.res.1.conv2.weight") >= 0);
        }
    }
}

TEST_CASE("inference plans reuse memory; training plans keep activations", "[model]")
{
    vqz_net_config c = tiny_image();
    Model m(c);
    REQUIRE(vqz_graph_plan(&m.m->enc, 2, 64, 64, 0) == VQZ_OK);
    int64_t infer = m.m->enc.arena_floats;
    REQUIRE(vqz_graph_plan(&m.m->enc, 2, 64, 64, 1) == VQZ_OK);
    int64_t train = m.m->enc.arena_floats;
    // the stem output alone is 2*16*64*64 floats; inference needs a few slots, training all of them
    REQUIRE(infer < train / 3);
    REQUIRE(infer >= 2 * 2 * 16 * 64 * 64);
    REQUIRE(vqz_graph_plan(&m.m->enc, 2, 0, 64, 0) == VQZ_ERR_SHAPE);
}

TEST_CASE("image encode/decode shapes, index ranges, determinism, latent decoding and size errors", "[model]")
{
    Ctx ctx;
    vqz_net_config c = tiny_image();
    Model m(c);
    REQUIRE(vqz_net_init(m.m, 1) == VQZ_OK);
    vqz_rng r;
    vqz_rng_seed(&r, 3);
    const int n = 2, h = 24, w = 40;
    std::vector<float> x(n * 3 * h * w);
    structured_images(&r, x.data(), n, h, w);
    vqz_tensor xt = vqz_t4(x.data(), n, 3, h, w);
    const int S = (h / 4) * (w / 4);
    std::vector<int32_t> idx(c.levels * n * S, -1), idx2(idx.size(), -1);
    REQUIRE(vqz_net_encode(ctx.ctx, m.m, &xt, c.levels, idx.data()) == VQZ_OK);
    REQUIRE(vqz_net_encode(ctx.ctx, m.m, &xt, c.levels, idx2.data()) == VQZ_OK);
    REQUIRE(idx == idx2);
    for (int32_t i : idx) {
        REQUIRE(i >= 0);
        REQUIRE(i < c.codebook_size);
    }
    std::vector<float> y(x.size());
    vqz_tensor yt = vqz_t4(y.data(), n, 3, h, w);
    REQUIRE(vqz_net_decode(ctx.ctx, m.m, idx.data(), c.levels, &yt) == VQZ_OK);
    REQUIRE(vqz_tensor_check_finite(&yt, "decoded") == VQZ_OK);

    // the decoder fed the codewords' sum as a latent gives the same output as decoding the indices; fed
    // the encoder's own latent, an output of its own
    {
        const int D = c.latent_dim;
        std::vector<float> zq((size_t)n * D * S), z(zq.size()), y2(y.size());
        vqz_tensor zqt = vqz_t3(zq.data(), n, D, S), y2t = vqz_t4(y2.data(), n, 3, h, w);
        vqz_rvq q = m.m->rvq;
        REQUIRE(vqz_rvq_decode(ctx.ctx, &q, idx.data(), c.levels, &zqt) == VQZ_OK);
        vqz_tensor zq4 = vqz_t4(zq.data(), n, D, h / 4, w / 4);
        REQUIRE(vqz_net_decode_latent(ctx.ctx, m.m, &zq4, &y2t) == VQZ_OK);
        REQUIRE(y2 == y);
        vqz_tensor zt = vqz_t4(z.data(), n, D, h / 4, w / 4);
        REQUIRE(vqz_net_encode_latent(ctx.ctx, m.m, &xt, &zt) == VQZ_OK);
        REQUIRE(vqz_net_decode_latent(ctx.ctx, m.m, &zt, &y2t) == VQZ_OK);
        REQUIRE(y2 != y);
        vqz_tensor wrong = vqz_t4(z.data(), n, D, h / 4, w / 4 - 1);
        REQUIRE(vqz_net_decode_latent(ctx.ctx, m.m, &wrong, &y2t) == VQZ_ERR_SHAPE);
    }

    vqz_tensor odd = vqz_t4(x.data(), 1, 3, 10, 40);
    REQUIRE(vqz_net_encode(ctx.ctx, m.m, &odd, 1, idx.data()) == VQZ_ERR_SHAPE);
    REQUIRE(std::string(vqz_last_error()).find("multiple") != std::string::npos);
    REQUIRE(vqz_net_encode(ctx.ctx, m.m, &xt, c.levels + 1, idx.data()) == VQZ_ERR_INVALID_ARG);
    idx[5] = c.codebook_size;
    REQUIRE(vqz_net_decode(ctx.ctx, m.m, idx.data(), c.levels, &yt) == VQZ_ERR_INDEX_RANGE);

    // non-finite input and weights are refused with the place named
    x[77] = NAN;
    REQUIRE(vqz_net_encode(ctx.ctx, m.m, &xt, c.levels, idx.data()) == VQZ_ERR_NONFINITE);
    REQUIRE(std::string(vqz_last_error()).find("model input") != std::string::npos);
    REQUIRE(vqz_net_check_weights(m.m) == VQZ_OK);
    int t = vqz_net_find(m.m, "dec.stages.1.up.weight");
    REQUIRE(t >= 0);
    m.m->params[m.m->info[t].offset + 3] = INFINITY;
    REQUIRE(vqz_net_check_weights(m.m) == VQZ_ERR_NONFINITE);
    REQUIRE(std::string(vqz_last_error()).find("dec.stages.1.up.weight") != std::string::npos);
}

TEST_CASE("a short training run lowers the loss and uses the codebooks", "[model][train]")
{
    // Tiny image model on structured synthetic 32x32 images. Stated targets: the reconstruction MSE of
    // the last 20 steps is at most 1/4 of the first 5 steps', and every level's codebook perplexity on
    // the final batches is at least K/4.
    Ctx ctx;
    vqz_net_config c = tiny_image();
    Model m(c);
    REQUIRE(vqz_net_init(m.m, 11) == VQZ_OK);
    REQUIRE(vqz_net_enable_training(m.m) == VQZ_OK);
    vqz_rng data_rng, rng;
    vqz_rng_seed(&data_rng, 5);
    vqz_rng_seed(&rng, 6);
    const int n = 8, h = 32, w = 32, steps = 200;
    std::vector<float> x(n * 3 * h * w);
    vqz_tensor xt = vqz_t4(x.data(), n, 3, h, w);
    structured_images(&data_rng, x.data(), n, h, w);
    REQUIRE(vqz_net_kmeans_init(ctx.ctx, m.m, &xt, 5, &rng) == VQZ_OK);

    vqz_train_opts o;
    std::memset(&o, 0, sizeof o);
    o.weight_decay = 1e-4f;
    o.beta = 0.25f;
    o.grad_clip = 1.0f;
    o.mse_weight = 1.0f;
    o.ema = 1;
    double first = 0, last = 0, perp[VQZ_MAX_LEVELS] = {0};
    int perp_n = 0;
    for (int step = 0; step < steps; step++) {
        structured_images(&data_rng, x.data(), n, h, w);
        o.lr = vqz_lr_at(3e-3f, step, 10, steps, 0.1f);
        o.n_levels = c.levels;
        vqz_train_stats st;
        REQUIRE(vqz_net_train_grad(ctx.ctx, m.m, &xt, &o, &st) == VQZ_OK);
        REQUIRE(std::isfinite(st.loss));
        REQUIRE(vqz_net_train_apply(ctx.ctx, m.m, &o, &rng, &st) == VQZ_OK);
        if (step < 5)
            first += st.recon / 5;
        if (step >= steps - 20) {
            last += st.recon / 20;
            for (int l = 0; l < c.levels; l++)
                perp[l] += st.usage[l].perplexity;
            perp_n++;
        }
    }
    std::printf("training: mse %.4f -> %.4f (x%.1f); perplexity", first, last, first / last);
    for (int l = 0; l < c.levels; l++)
        std::printf(" L%d %.1f", l, perp[l] / perp_n);
    std::printf(" (K=%d)\n", c.codebook_size);
    REQUIRE(last < first / 4);
    for (int l = 0; l < c.levels; l++)
        REQUIRE(perp[l] / perp_n >= c.codebook_size / 4.0);
}
