// test_tiles.cpp — tiled image coding equals whole-image coding: indices identical (but for float
// near-ties, counted and bounded) and decoded pixels within 1e-4, on sizes that are not multiples of
// the tile.
#include <catch2/catch.hpp>

#include <cstring>

#include "testutil.h"

extern "C" {
#include "codec/tiles.h"
#include "common/status.h"
}

namespace {

struct Planar {
    int64_t h, w;
    std::vector<float> v; // [3][h][w]
};

vqz_status src_cb(void *user, int64_t y, int64_t x, int64_t h, int64_t w, float *rgb)
{
    const Planar *p = (const Planar *)user;
    for (int c = 0; c < 3; c++)
        for (int64_t i = 0; i < h; i++)
            std::memcpy(rgb + (c * h + i) * w, p->v.data() + (c * p->h + y + i) * p->w + x, (size_t)w * sizeof(float));
    return VQZ_OK;
}

vqz_status sink_cb(void *user, int64_t y, int64_t x, int64_t h, int64_t w, const float *rgb)
{
    Planar *p = (Planar *)user;
    for (int c = 0; c < 3; c++)
        for (int64_t i = 0; i < h; i++)
            std::memcpy(p->v.data() + (c * p->h + y + i) * p->w + x, rgb + (c * h + i) * w, (size_t)w * sizeof(float));
    return VQZ_OK;
}

} // namespace

TEST_CASE("tiled image coding equals whole-image coding", "[tiles]")
{
    vqz_net_config c;
    std::memset(&c, 0, sizeof c);
    c.kind = VQZ_NET_IMAGE;
    c.in_channels = 3;
    c.n_stages = 2;
    c.channels[0] = 8;
    c.channels[1] = 12;
    c.channels[2] = 16;
    c.strides[0] = c.strides[1] = 2;
    c.res_blocks = 1;
    c.latent_dim = 8;
    c.levels = 3;
    c.codebook_size = 64;
    c.res_scale = 0.5f;
    c.activation = VQZ_ACT_SILU;
    vqz_net *net = nullptr;
    REQUIRE(vqz_net_create(&c, &net) == VQZ_OK);
    REQUIRE(vqz_net_init(net, 9) == VQZ_OK);
    vqz_nn_ctx *ctx = nullptr;
    REQUIRE(vqz_nn_ctx_create(&ctx, VQZ_DEVICE_CPU, 0) == VQZ_OK);
    int enc_halo = 0, dec_halo = 0;
    vqz_tiling_halos(net, &enc_halo, &dec_halo);
    REQUIRE(enc_halo % 4 == 0);
    REQUIRE(enc_halo >= 18); // measured radius of this architecture (tests/reference/README.md)
    REQUIRE(dec_halo >= 6);

    // a smooth pattern with edges, 76 x 116 (not multiples of the 32-pixel tile)
    Planar img{76, 116, {}};
    img.v.resize(3 * img.h * img.w);
    vqz_rng r;
    vqz_rng_seed(&r, 4);
    for (int c2 = 0; c2 < 3; c2++)
        for (int64_t y = 0; y < img.h; y++)
            for (int64_t x = 0; x < img.w; x++)
                img.v[(c2 * img.h + y) * img.w + x] =
                    0.6f * std::sin(0.11f * x * (c2 + 1) + 0.07f * y) + (x > 50 && y < 30 ? 0.3f : -0.1f) +
                    0.05f * (vqz_rng_uniform(&r) - 0.5f);

    vqz_tiling whole = {img.h, img.w, 128, c.levels, nullptr};
    vqz_tiling tiled = {img.h, img.w, 32, c.levels, nullptr};
    size_t cells = (size_t)c.levels * (img.h / 4) * (img.w / 4);
    std::vector<uint16_t> g_whole(cells), g_tiled(cells);
    REQUIRE(vqz_tiles_encode(ctx, net, &whole, src_cb, &img, g_whole.data()) == VQZ_OK);
    REQUIRE(vqz_tiles_encode(ctx, net, &tiled, src_cb, &img, g_tiled.data()) == VQZ_OK);
    size_t diff = 0;
    for (size_t i = 0; i < cells; i++)
        diff += g_whole[i] != g_tiled[i];
    std::printf("tiles: %zu of %zu indices differ between tiled and whole encoding\n", diff, cells);
    // a differing index can only come from a float near-tie; none expected on this data
    REQUIRE(diff <= cells / 200);

    Planar d_whole{img.h, img.w, std::vector<float>(img.v.size())}, d_tiled{img.h, img.w, std::vector<float>(img.v.size())};
    REQUIRE(vqz_tiles_decode(ctx, net, &whole, g_whole.data(), sink_cb, &d_whole) == VQZ_OK);
    REQUIRE(vqz_tiles_decode(ctx, net, &tiled, g_whole.data(), sink_cb, &d_tiled) == VQZ_OK);
    double e = rel_err(d_tiled.v, d_whole.v);
    std::printf("tiles: decoded rel. error tiled vs whole %.2e\n", e);
    REQUIRE(e <= 1e-4);

    vqz_tiling bad = {img.h + 1, img.w, 32, c.levels, nullptr};
    REQUIRE(vqz_tiles_encode(ctx, net, &bad, src_cb, &img, g_tiled.data()) == VQZ_ERR_SHAPE);
    volatile int cancel = 1;
    vqz_tiling cancelled = {img.h, img.w, 32, c.levels, &cancel};
    REQUIRE(vqz_tiles_encode(ctx, net, &cancelled, src_cb, &img, g_tiled.data()) == VQZ_ERR_CANCELLED);
    vqz_nn_ctx_free(ctx);
    vqz_net_free(net);
}
