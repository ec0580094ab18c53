// test_codec_image.cpp — the image pipeline through the public API: model bundles and their identity,
// encode/decode of real photos and of every channel layout, level selection, tiling equivalence,
// model mismatch, and the never-clobber guarantees.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

extern "C" {
#include "codec/image_io.h"
#include "codec/model.h"
#include "common/status.h"
}

namespace {

vqz_net_config tiny_image_config()
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
    c.levels = 4;
    c.codebook_size = 300; // > 256: exercises the two-plane packing
    c.res_scale = 0.5f;
    c.activation = VQZ_ACT_SILU;
    return c;
}

// Writes a small random-weight image model bundle and returns its path.
std::string make_model(const TempDir &d, const std::string &name, uint64_t seed)
{
    vqz_net_config c = tiny_image_config();
    vqz_net *net = nullptr;
    REQUIRE(vqz_net_create(&c, &net) == VQZ_OK);
    REQUIRE(vqz_net_init(net, seed) == VQZ_OK);
    std::string path = d.at(name + ".safetensors");
    const char *meta[] = {"notes", "test model", nullptr, nullptr};
    REQUIRE(vqz_net_save_bundle(net, name.c_str(), meta, path.c_str(), nullptr) == VQZ_OK);
    vqz_net_free(net);
    return path;
}

} // namespace

TEST_CASE("models load with their identity and are found on the search path", "[codec]")
{
    TempDir d;
    std::string path = make_model(d, "tiny-image", 1);
    vqz_model *m = nullptr;
    REQUIRE(vqz_model_load(path.c_str(), &m) == VQZ_OK);
    vqz_model_info info;
    REQUIRE(vqz_model_describe(m, &info) == VQZ_OK);
    REQUIRE(std::string(info.name) == "tiny-image");
    REQUIRE(info.kind == VQZ_KIND_IMAGE);
    REQUIRE(info.levels == 4);
    REQUIRE(info.codebook_size == 300);
    REQUIRE(info.stride == 4);

    setenv("VQZ_MODEL_PATH", ("/nonexistent:" + d.path).c_str(), 1);
    char found[4096];
    REQUIRE(vqz_model_locate("tiny-image", info.sha256, found, sizeof found) == VQZ_OK);
    REQUIRE(std::string(found) == path);
    uint8_t wrong[32] = {0};
    REQUIRE(vqz_model_locate("tiny-image", wrong, found, sizeof found) == VQZ_ERR_NOT_FOUND);
    REQUIRE(vqz_model_locate("no-such-model", nullptr, found, sizeof found) == VQZ_ERR_NOT_FOUND);
    REQUIRE(std::string(vqz_last_error()).find("no-such-model") != std::string::npos);
    unsetenv("VQZ_MODEL_PATH");
    vqz_model_free(m);

    // a bundle of another format version is refused, naming it
    REQUIRE(vqz_model_load(vqz_test_path("golden/model_adamw.safetensors").c_str(), &m) == VQZ_ERR_VERSION);
    REQUIRE(std::string(vqz_last_error()).find("vqz-golden-1") != std::string::npos);
    REQUIRE(m == nullptr);

    // a bundle missing a tensor is refused with the tensor named
    {
        vqz_net_config c = tiny_image_config();
        vqz_net *net = nullptr;
        REQUIRE(vqz_net_create(&c, &net) == VQZ_OK);
        REQUIRE(vqz_net_init(net, 1) == VQZ_OK);
        char *config = nullptr;
        REQUIRE(vqz_net_config_to_json(&c, &config) == VQZ_OK);
        vqz_bundle_writer *w = nullptr;
        REQUIRE(vqz_bundle_writer_create(&w) == VQZ_OK);
        REQUIRE(vqz_bundle_writer_set_meta(w, "format", "vqz-bundle-1") == VQZ_OK);
        REQUIRE(vqz_bundle_writer_set_meta(w, "name", "broken") == VQZ_OK);
        REQUIRE(vqz_bundle_writer_set_meta(w, "config", config) == VQZ_OK);
        for (int i = 0; i < net->n_tensors; i++) {
            const vqz_param_info *p = &net->info[i];
            if (std::string(p->name) != "dec.stages.0.up.bias")
                REQUIRE(vqz_bundle_writer_add(w, p->name, p->ndim, p->shape, net->params + p->offset, VQZ_DTYPE_F32) ==
                        VQZ_OK);
        }
        std::string broken = d.at("broken.safetensors");
        REQUIRE(vqz_bundle_writer_write_file(w, broken.c_str(), nullptr) == VQZ_OK);
        vqz_bundle_writer_free(w);
        std::free(config);
        vqz_net_free(net);
        REQUIRE(vqz_model_load(broken.c_str(), &m) == VQZ_ERR_NOT_FOUND);
        REQUIRE(std::string(vqz_last_error()).find("dec.stages.0.up.bias") != std::string::npos);
        REQUIRE(std::string(vqz_last_error()).find("broken.safetensors") != std::string::npos);
    }
}

TEST_CASE("photos round-trip through the file API with the original geometry", "[codec]")
{
    TempDir d;
    vqz_model *m = nullptr;
    REQUIRE(vqz_model_load(make_model(d, "tiny-image", 2).c_str(), &m) == VQZ_OK);
    vqz_options o;
    vqz_options_init(&o);
    std::string src = vqz_test_path("../samples/images/chelsea.png"); // 451 x 300: not a multiple of 4
    std::string enc = d.at("chelsea.vqz"), dec = d.at("chelsea.png");
    vqz_report r;
    REQUIRE(vqz_encode_file(m, &o, src.c_str(), enc.c_str(), &r) == VQZ_OK);
    REQUIRE(r.levels == 4);
    REQUIRE(r.width == 451);
    REQUIRE(r.height == 300);
    REQUIRE(r.out_bytes == slurp_existing(enc).size());
    REQUIRE(vqz_decode_file(m, &o, enc.c_str(), dec.c_str(), &r) == VQZ_OK);
    vqz_image *a = nullptr, *b = nullptr;
    REQUIRE(vqz_image_read_file(src.c_str(), &a) == VQZ_OK);
    REQUIRE(vqz_image_read_file(dec.c_str(), &b) == VQZ_OK);
    REQUIRE(b->width == a->width);
    REQUIRE(b->height == a->height);
    REQUIRE(b->channels == a->channels);
    REQUIRE(b->bit_depth == a->bit_depth);
    vqz_image_free(a);
    vqz_image_free(b);

    // decoding is deterministic, and tile size does not change the file or the pixels
    std::string enc2 = d.at("chelsea-t64.vqz"), dec2 = d.at("chelsea-t64.png");
    vqz_options small = o;
    small.tile = 64;
    REQUIRE(vqz_encode_file(m, &small, src.c_str(), enc2.c_str(), nullptr) == VQZ_OK);
    REQUIRE(slurp_existing(enc2) == slurp_existing(enc));
    REQUIRE(vqz_decode_file(m, &small, enc.c_str(), dec2.c_str(), nullptr) == VQZ_OK);
    REQUIRE(slurp_existing(dec2) == slurp_existing(dec));

    // fewer levels: explicit, by bpp target, and by decoding fewer
    vqz_options two = o;
    two.levels = 2;
    std::string enc3 = d.at("two.vqz");
    REQUIRE(vqz_encode_file(m, &two, src.c_str(), enc3.c_str(), &r) == VQZ_OK);
    REQUIRE(r.levels == 2);
    REQUIRE(slurp_existing(enc3).size() < slurp_existing(enc).size());
    vqz_file_info fi;
    REQUIRE(vqz_file_probe(enc3.c_str(), &fi) == VQZ_OK);
    REQUIRE(fi.levels == 2);
    REQUIRE(std::string(fi.model_name) == "tiny-image");
    vqz_options target = o;
    target.bpp = (slurp_existing(enc3).size() * 8.0 + 7) / (451.0 * 300.0);
    REQUIRE(vqz_encode_file(m, &target, src.c_str(), d.at("bpp.vqz").c_str(), &r) == VQZ_OK);
    REQUIRE(r.levels == 2);
    REQUIRE(r.bpp <= target.bpp);
    vqz_options dec_two = o;
    dec_two.levels = 2;
    REQUIRE(vqz_decode_file(m, &dec_two, enc.c_str(), d.at("l2a.png").c_str(), &r) == VQZ_OK);
    REQUIRE(r.levels == 2);
    REQUIRE(vqz_decode_file(m, &o, enc3.c_str(), d.at("l2b.png").c_str(), nullptr) == VQZ_OK);
    REQUIRE(slurp_existing(d.at("l2a.png")) == slurp_existing(d.at("l2b.png")));

    char *json = nullptr;
    REQUIRE(vqz_file_describe_json(enc.c_str(), &json) == VQZ_OK);
    std::string js(json);
    vqz_free(json);
    REQUIRE(js.find("\"model\":\t\"tiny-image\"") != std::string::npos);
    REQUIRE(js.find("entropy_bits_per_index") != std::string::npos);
    vqz_model_free(m);
}

TEST_CASE("every channel layout keeps its geometry; alpha is bit-exact", "[codec]")
{
    TempDir d;
    vqz_model *m = nullptr;
    REQUIRE(vqz_model_load(make_model(d, "tiny-image", 3).c_str(), &m) == VQZ_OK);
    vqz_rng r;
    vqz_rng_seed(&r, 12);
    for (int channels = 1; channels <= 4; channels++)
        for (int depth : {8, 16}) {
            const uint32_t w = 13, h = 7;
            size_t n = (size_t)w * h * channels;
            std::vector<uint8_t> p8(n);
            std::vector<uint16_t> p16(n);
            for (size_t i = 0; i < n; i++) {
                p8[i] = (uint8_t)vqz_rng_below(&r, 256);
                p16[i] = (uint16_t)vqz_rng_below(&r, 65536);
            }
            vqz_pixels in = {w, h, channels, depth, depth == 8 ? (void *)p8.data() : (void *)p16.data()};
            uint8_t *data = nullptr;
            size_t size = 0;
            INFO("channels " << channels << " depth " << depth);
            REQUIRE(vqz_image_encode(m, nullptr, &in, &data, &size) == VQZ_OK);
            vqz_pixels out;
            REQUIRE(vqz_image_decode(m, nullptr, data, size, &out) == VQZ_OK);
            REQUIRE(out.width == w);
            REQUIRE(out.height == h);
            REQUIRE(out.channels == channels);
            REQUIRE(out.bit_depth == depth);
            if (channels == 2 || channels == 4)
                for (size_t i = channels - 1; i < n; i += channels) {
                    if (depth == 8)
                        REQUIRE(((uint8_t *)out.pixels)[i] == p8[i]);
                    else
                        REQUIRE(((uint16_t *)out.pixels)[i] == p16[i]);
                }
            vqz_free(out.pixels);
            vqz_free(data);
        }
    vqz_model_free(m);
}

TEST_CASE("wrong model, damaged files and failures leave outputs untouched", "[codec]")
{
    TempDir d;
    vqz_model *m = nullptr, *other = nullptr;
    REQUIRE(vqz_model_load(make_model(d, "tiny-image", 4).c_str(), &m) == VQZ_OK);
    REQUIRE(vqz_model_load(make_model(d, "other-image", 5).c_str(), &other) == VQZ_OK);
    std::string src = vqz_test_path("../samples/images/coffee.png");
    std::string enc = d.at("coffee.vqz");
    REQUIRE(vqz_encode_file(m, nullptr, src.c_str(), enc.c_str(), nullptr) == VQZ_OK);

    std::string out = d.at("existing.png");
    {
        FILE *f = std::fopen(out.c_str(), "wb");
        std::fputs("keep me", f);
        std::fclose(f);
    }
    REQUIRE(vqz_decode_file(other, nullptr, enc.c_str(), out.c_str(), nullptr) == VQZ_ERR_MODEL_MISMATCH);
    std::string msg = vqz_last_error();
    REQUIRE(msg.find("tiny-image") != std::string::npos);
    REQUIRE(msg.find("other-image") != std::string::npos);
    REQUIRE(slurp_existing(out) == "keep me");

    // truncated inside level 1: refused; a cut after level 2 decodes 2 levels
    std::string bytes = slurp_existing(enc);
    std::string cut = d.at("cut.vqz");
    {
        FILE *f = std::fopen(cut.c_str(), "wb");
        std::fwrite(bytes.data(), 1, 300, f);
        std::fclose(f);
    }
    vqz_status s = vqz_decode_file(m, nullptr, cut.c_str(), out.c_str(), nullptr);
    REQUIRE((s == VQZ_ERR_TRUNCATED || s == VQZ_ERR_MISSING));
    REQUIRE(std::string(vqz_last_error()).find("cut.vqz") != std::string::npos);
    REQUIRE(slurp_existing(out) == "keep me");

    // a flipped byte in the payload names the frame's checksum
    std::string bad = bytes;
    bad[bad.size() - 10] ^= 0x40;
    std::string badp = d.at("bad.vqz");
    {
        FILE *f = std::fopen(badp.c_str(), "wb");
        std::fwrite(bad.data(), 1, bad.size(), f);
        std::fclose(f);
    }
    REQUIRE(vqz_decode_file(m, nullptr, badp.c_str(), out.c_str(), nullptr) == VQZ_ERR_CHECKSUM);
    REQUIRE(slurp_existing(out) == "keep me");

    // an unreadable output folder leaves nothing behind
    REQUIRE(vqz_decode_file(m, nullptr, enc.c_str(), d.at("no/such/dir/x.png").c_str(), nullptr) != VQZ_OK);
    REQUIRE_FALSE(file_exists(d.at("no")));
    // garbage in
    REQUIRE(vqz_decode_file(m, nullptr, src.c_str(), out.c_str(), nullptr) == VQZ_ERR_SIGNATURE);
    REQUIRE(slurp_existing(out) == "keep me");
    vqz_model_free(m);
    vqz_model_free(other);
}
