// test_codec_audio.cpp — the audio pipeline through the public file API: round trips of every layout and
// encoding, chunked coding against whole-signal coding, rate selection, stdin/stdout streams, model
// mismatch, damaged files, and the never-clobber guarantees; a hidden 1-hour memory test.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/resource.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <sndfile.h>

#include "testutil.h"

extern "C" {
#include "codec/audio_io.h"
#include "codec/codec.h"
#include "codec/model.h"
#include "common/status.h"
#include "format/container.h"
#include "nn/ctx.h"
}

namespace {

vqz_net_config tiny_audio_config()
{
    vqz_net_config c;
    std::memset(&c, 0, sizeof c);
    c.kind = VQZ_NET_AUDIO;
    c.in_channels = 1;
    c.n_stages = 2;
    c.channels[0] = 4;
    c.channels[1] = 8;
    c.channels[2] = 16;
    c.strides[0] = 2;
    c.strides[1] = 4;
    c.res_blocks = 1;
    c.latent_dim = 4;
    c.levels = 3;
    c.codebook_size = 64;
    c.res_scale = 1.0f;
    c.activation = VQZ_ACT_ELU;
    c.weight_norm = 1;
    c.sample_rate = 24000;
    return c;
}

// Writes a small random-weight model bundle (audio, or the image model of the image tests) and returns its path.
std::string make_model(const TempDir &d, const std::string &name, uint64_t seed, bool image = false)
{
    vqz_net_config c = tiny_audio_config();
    if (image) {
        std::memset(&c, 0, sizeof c);
        c.kind = VQZ_NET_IMAGE;
        c.in_channels = 3;
        c.n_stages = 1;
        c.channels[0] = 4;
        c.channels[1] = 8;
        c.strides[0] = 2;
        c.res_blocks = 1;
        c.latent_dim = 4;
        c.levels = 2;
        c.codebook_size = 16;
        c.res_scale = 0.5f;
        c.activation = VQZ_ACT_SILU;
    }
    vqz_net *net = nullptr;
    REQUIRE(vqz_net_create(&c, &net) == VQZ_OK);
    REQUIRE(vqz_net_init(net, seed) == VQZ_OK);
    std::string path = d.at(name + ".safetensors");
    REQUIRE(vqz_net_save_bundle(net, name.c_str(), nullptr, path.c_str(), nullptr) == VQZ_OK);
    vqz_net_free(net);
    return path;
}

vqz_model *load_model(const std::string &path)
{
    vqz_model *m = nullptr;
    INFO(vqz_last_error());
    REQUIRE(vqz_model_load(path.c_str(), &m) == VQZ_OK);
    return m;
}

// A tone mixture plus a little noise, different per channel, in [-0.8, 0.8].
void fill_signal(vqz_audio *a, uint64_t seed)
{
    vqz_rng r;
    vqz_rng_seed(&r, seed);
    int64_t n = a->info.frames;
    double rate = a->info.sample_rate;
    for (int c = 0; c < a->info.channels; c++)
        for (int64_t i = 0; i < n; i++) {
            double t = (double)i / rate;
            a->data[(size_t)c * (size_t)n + (size_t)i] =
                (float)(0.4 * std::sin(2 * M_PI * (220.0 + 110.0 * c) * t + c) +
                        0.3 * std::sin(2 * M_PI * (1300.0 + 70.0 * c) * t) + 0.1 * (vqz_rng_uniform(&r) * 2 - 1));
        }
}

// Writes a test signal of the given geometry; bits as vqz_audio_write_all takes them.
void write_signal(const std::string &path, int rate, int channels, int64_t frames, int bits, uint64_t seed = 1)
{
    vqz_audio *a = nullptr;
    REQUIRE(vqz_audio_create(channels, frames, rate, &a) == VQZ_OK);
    fill_signal(a, seed);
    vqz_status s = vqz_audio_write_all(path.c_str(), a, bits);
    INFO(vqz_last_error());
    REQUIRE(s == VQZ_OK);
    vqz_audio_free(a);
}

vqz_audio *read_audio(const std::string &path)
{
    vqz_audio *a = nullptr;
    vqz_status s = vqz_audio_read_all(path.c_str(), &a);
    INFO(path << ": " << vqz_last_error());
    REQUIRE(s == VQZ_OK);
    return a;
}

vqz_status encode(const vqz_model *m, const vqz_options *o, const std::string &in, const std::string &out,
                  vqz_report *r = nullptr)
{
    return vqz_encode_file(m, o, in.c_str(), out.c_str(), r);
}

vqz_status decode(const vqz_model *m, const vqz_options *o, const std::string &in, const std::string &out,
                  vqz_report *r = nullptr)
{
    return vqz_decode_file(m, o, in.c_str(), out.c_str(), r);
}

// Runs fn with stdout (fd 1) going into a pipe and returns what came through it.
template <typename F> std::string capture_stdout(F fn)
{
    int p[2];
    REQUIRE(pipe(p) == 0);
    std::string got;
    std::thread drain([&got, fd = p[0]] {
        char buf[8192];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0)
            got.append(buf, (size_t)n);
    });
    std::fflush(stdout);
    int saved = dup(1);
    dup2(p[1], 1);
    close(p[1]);
    fn();
    dup2(saved, 1); // closes the pipe's last write end, so the drain sees end-of-file
    close(saved);
    drain.join();
    close(p[0]);
    return got;
}

// Runs fn with stdin (fd 0) reading bytes from a pipe fed by another thread.
template <typename F> void feed_stdin(const std::string &bytes, F fn)
{
    int p[2];
    REQUIRE(pipe(p) == 0);
    void (*old_pipe)(int) = std::signal(SIGPIPE, SIG_IGN);
    std::thread feeder([&bytes, fd = p[1]] {
        size_t done = 0;
        while (done < bytes.size()) {
            ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
            if (n <= 0)
                break;
            done += (size_t)n;
        }
        close(fd);
    });
    int saved = dup(0);
    dup2(p[0], 0);
    close(p[0]);
    fn();
    dup2(saved, 0);
    close(saved);
    feeder.join();
    std::signal(SIGPIPE, old_pipe);
}

double max_abs_diff(const vqz_audio *a, const vqz_audio *b)
{
    REQUIRE(a->info.frames == b->info.frames);
    REQUIRE(a->info.channels == b->info.channels);
    double d = 0;
    size_t n = (size_t)a->info.frames * (size_t)a->info.channels;
    for (size_t i = 0; i < n; i++)
        d = std::max(d, std::fabs((double)a->data[i] - b->data[i]));
    return d;
}

} // namespace

TEST_CASE("audio round-trips keep the rate, channels, length and bit depth", "[codec-audio]")
{
    TempDir d;
    vqz_model *m = load_model(make_model(d, "tiny-audio", 1));
    struct Case {
        const char *in, *out;
        int rate, channels;
        int64_t frames;
        int bits;            // as written (vqz_audio_write_all's code)
        int out_bits, out_float, out_major;
    };
    const Case cases[] = {
        {"mono24k.wav", "mono24k.out.wav", 24000, 1, 7777, 16, 16, 0, SF_FORMAT_WAV},
        {"st44k.wav", "st44k.out.wav", 44100, 2, 9001, 24, 24, 0, SF_FORMAT_WAV},
        {"low8k.wav", "low8k.out.wav", 8000, 1, 2345, 16, 16, 0, SF_FORMAT_WAV},
        {"float48k.wav", "float48k.out.wav", 48000, 2, 6000, VQZ_AUDIO_BITS_F32, 32, 1, SF_FORMAT_WAV},
        {"float48k.wav", "float48k.out.flac", 48000, 2, 6000, VQZ_AUDIO_BITS_F32, 16, 0, SF_FORMAT_FLAC},
        {"in.flac", "in.out.flac", 44100, 2, 5000, 16, 16, 0, SF_FORMAT_FLAC},
        {"in24.flac", "in24.out.wav", 32000, 1, 4000, 24, 24, 0, SF_FORMAT_WAV},
        {"s32.wav", "s32.out.flac", 16000, 1, 3000, 32, 16, 0, SF_FORMAT_FLAC},
        {"u8.wav", "u8.out.wav", 11025, 1, 3000, 8, 8, 0, SF_FORMAT_WAV},
        {"six.wav", "six.out.wav", 22050, 6, 3333, 16, 16, 0, SF_FORMAT_WAVEX},
    };
    vqz_options o;
    vqz_options_init(&o);
    o.threads = 1; // tiny tensors: on a busy machine a second OpenMP thread costs far more than it gives
    for (const Case &k : cases) {
        INFO(k.in << " -> " << k.out);
        std::string in = d.at(k.in), enc = d.at(std::string(k.out) + ".vqz"), out = d.at(k.out);
        if (!file_exists(in))
            write_signal(in, k.rate, k.channels, k.frames, k.bits);
        vqz_report r;
        vqz_status s = encode(m, &o, in, enc, &r);
        INFO(vqz_last_error());
        REQUIRE(s == VQZ_OK);
        REQUIRE(r.kind == VQZ_KIND_AUDIO);
        REQUIRE(r.levels == 3);
        REQUIRE(r.frames == (uint64_t)k.frames);
        REQUIRE(r.channels == k.channels);
        REQUIRE(r.sample_rate == k.rate);
        size_t bytes = slurp_existing(enc).size();
        REQUIRE(r.out_bytes == bytes);
        REQUIRE(r.in_bytes == slurp_existing(in).size());
        REQUIRE(r.kbps == Approx(bytes * 8.0 / ((double)k.frames / k.rate) / 1000.0));

        vqz_file_info fi;
        REQUIRE(vqz_file_probe(enc.c_str(), &fi) == VQZ_OK);
        REQUIRE(fi.kind == VQZ_KIND_AUDIO);
        REQUIRE(fi.levels == 3);
        REQUIRE(std::string(fi.model_name) == "tiny-audio");

        s = decode(m, &o, enc, out, &r);
        INFO(vqz_last_error());
        REQUIRE(s == VQZ_OK);
        REQUIRE(r.levels == 3);
        REQUIRE(r.frames == (uint64_t)k.frames);
        REQUIRE(r.sample_rate == k.rate);
        REQUIRE(r.channels == k.channels);
        vqz_audio *a = read_audio(out);
        REQUIRE(a->info.sample_rate == k.rate);
        REQUIRE(a->info.channels == k.channels);
        REQUIRE(a->info.frames == k.frames);
        REQUIRE(a->info.bits == k.out_bits);
        REQUIRE(a->info.is_float == k.out_float);
        REQUIRE(a->info.major_format == k.out_major);
        // the random decoder makes noise, but not silence and never NaN
        double energy = 0;
        for (size_t i = 0; i < (size_t)k.frames * (size_t)k.channels; i++) {
            REQUIRE(std::isfinite(a->data[i]));
            energy += (double)a->data[i] * a->data[i];
        }
        REQUIRE(energy > 0);
        vqz_audio_free(a);
    }

    // the source description travels in the metadata
    char *json = nullptr;
    REQUIRE(vqz_file_describe_json(d.at("st44k.out.wav.vqz").c_str(), &json) == VQZ_OK);
    std::string js(json);
    vqz_free(json);
    INFO(js);
    REQUIRE(js.find("\"sample_rate\":\t44100") != std::string::npos);
    REQUIRE(js.find("\"model_rate\":\t24000") != std::string::npos);
    REQUIRE(js.find("\"bit_depth\":\t24") != std::string::npos);
    REQUIRE(js.find("Signed 24 bit PCM") != std::string::npos);

    // another output rate: the length scales with it
    vqz_options rate16 = o;
    rate16.output_rate = 16000;
    vqz_report r;
    REQUIRE(decode(m, &rate16, d.at("st44k.out.wav.vqz"), d.at("st16k.wav"), &r) == VQZ_OK);
    vqz_audio *a = read_audio(d.at("st16k.wav"));
    REQUIRE(a->info.sample_rate == 16000);
    REQUIRE(a->info.frames == (int64_t)std::lround(9001 * 16000.0 / 44100.0));
    REQUIRE(r.frames == (uint64_t)a->info.frames);
    vqz_audio_free(a);
    vqz_model_free(m);
}

TEST_CASE("chunked audio coding equals whole-signal coding", "[codec-audio]")
{
    TempDir d;
    std::string mpath = make_model(d, "tiny-audio", 2);
    vqz_model *m = load_model(mpath);
    const int f = 8;
    const int64_t n = 5003; // neither a multiple of the stride nor of any chunk
    std::string in = d.at("in.wav");
    write_signal(in, 24000, 1, n, VQZ_AUDIO_BITS_F32, 5);

    vqz_options o;
    vqz_options_init(&o);
    o.threads = 1; // tiny tensors: on a busy machine a second OpenMP thread costs far more than it gives
    o.device = VQZ_DEVICE_CPU; // compared below with the CPU network itself
    o.chunk_frames = 1000000;
    REQUIRE(encode(m, &o, in, d.at("whole.vqz")) == VQZ_OK);
    REQUIRE(decode(m, &o, d.at("whole.vqz"), d.at("whole.wav")) == VQZ_OK);
    std::string whole = slurp_existing(d.at("whole.vqz"));
    vqz_audio *ref = read_audio(d.at("whole.wav"));
    for (int cf : {1, 7, 64, 625, 626}) {
        INFO("chunk_frames " << cf);
        o.chunk_frames = cf;
        std::string e = d.at("c" + std::to_string(cf) + ".vqz"), w = d.at("c" + std::to_string(cf) + ".wav");
        REQUIRE(encode(m, &o, in, e) == VQZ_OK);
        std::string bytes = slurp_existing(e);
        // the chunk table differs with the chunk size; the indices may not
        vqz_container *a = nullptr, *b = nullptr;
        REQUIRE(vqz_container_open_file(e.c_str(), nullptr, &a) == VQZ_OK);
        REQUIRE(vqz_container_open_memory((const uint8_t *)whole.data(), whole.size(), nullptr, &b) == VQZ_OK);
        REQUIRE(vqz_container_header(a)->chunk_width == (uint32_t)std::min<int64_t>(cf, (n + f - 1) / f));
        size_t W = vqz_header_level_indices(vqz_container_header(b));
        REQUIRE(W == (size_t)(n + f - 1) / f);
        for (int l = 0; l < 3; l++) {
            std::vector<uint16_t> ia(W), ib(W);
            REQUIRE(vqz_container_read_level(a, l, ia.data(), W) == VQZ_OK);
            REQUIRE(vqz_container_read_level(b, l, ib.data(), W) == VQZ_OK);
            REQUIRE(ia == ib);
        }
        vqz_container_free(a);
        vqz_container_free(b);
        if (cf >= 626)
            REQUIRE(bytes == whole); // one chunk either way: the same file
        REQUIRE(decode(m, &o, d.at("whole.vqz"), w) == VQZ_OK);
        vqz_audio *got = read_audio(w);
        double diff = max_abs_diff(got, ref);
        INFO("max |chunked - whole| = " << diff);
        REQUIRE(diff <= 1e-5);
        vqz_audio_free(got);
    }

    // the whole-signal reference, straight from the network: indices equal, decoded samples within 1e-4
    {
        vqz_model *mm = load_model(mpath);
        vqz_nn_ctx *ctx = nullptr;
        REQUIRE(vqz_nn_ctx_create(&ctx, VQZ_DEVICE_CPU, 0) == VQZ_OK);
        vqz_audio *src = read_audio(in);
        int64_t W = (n + f - 1) / f;
        std::vector<float> x((size_t)(W * f), 0.0f);
        std::copy(src->data, src->data + n, x.begin());
        vqz_tensor xt = vqz_t3(x.data(), 1, 1, W * f);
        std::vector<int32_t> idx((size_t)(3 * W));
        REQUIRE(vqz_net_encode(ctx, mm->net, &xt, 3, idx.data()) == VQZ_OK);
        vqz_container *c = nullptr;
        REQUIRE(vqz_container_open_memory((const uint8_t *)whole.data(), whole.size(), nullptr, &c) == VQZ_OK);
        std::vector<uint16_t> file_idx((size_t)W);
        size_t mismatches = 0;
        for (int l = 0; l < 3; l++) {
            REQUIRE(vqz_container_read_level(c, l, file_idx.data(), (size_t)W) == VQZ_OK);
            for (int64_t j = 0; j < W; j++)
                mismatches += file_idx[(size_t)j] != (uint16_t)idx[(size_t)(l * W + j)];
        }
        REQUIRE(mismatches == 0);
        vqz_container_free(c);
        std::vector<float> y((size_t)(W * f));
        vqz_tensor yt = vqz_t3(y.data(), 1, 1, W * f);
        REQUIRE(vqz_net_decode(ctx, mm->net, idx.data(), 3, &yt) == VQZ_OK);
        y.resize((size_t)n);
        std::vector<float> got(ref->data, ref->data + n);
        double err = rel_err(got, y);
        INFO("decoded vs whole-signal network: rel err " << err);
        REQUIRE(err <= 1e-4);
        vqz_audio_free(src);
        vqz_nn_ctx_free(ctx);
        vqz_model_free(mm);
    }
    vqz_audio_free(ref);

    // with resampling and two channels: small chunks give the same file's indices and output
    std::string st = d.at("st.wav");
    write_signal(st, 44100, 2, 9187, 16, 6);
    o.chunk_frames = 1000000;
    REQUIRE(encode(m, &o, st, d.at("st-whole.vqz")) == VQZ_OK);
    REQUIRE(decode(m, &o, d.at("st-whole.vqz"), d.at("st-whole.wav")) == VQZ_OK);
    o.chunk_frames = 50;
    REQUIRE(encode(m, &o, st, d.at("st-50.vqz")) == VQZ_OK);
    REQUIRE(decode(m, &o, d.at("st-50.vqz"), d.at("st-50.wav")) == VQZ_OK);
    {
        vqz_container *a = nullptr, *b = nullptr;
        REQUIRE(vqz_container_open_file(d.at("st-whole.vqz").c_str(), nullptr, &a) == VQZ_OK);
        REQUIRE(vqz_container_open_file(d.at("st-50.vqz").c_str(), nullptr, &b) == VQZ_OK);
        size_t N = vqz_header_level_indices(vqz_container_header(a));
        for (int l = 0; l < 3; l++) {
            std::vector<uint16_t> ia(N), ib(N);
            REQUIRE(vqz_container_read_level(a, l, ia.data(), N) == VQZ_OK);
            REQUIRE(vqz_container_read_level(b, l, ib.data(), N) == VQZ_OK);
            REQUIRE(ia == ib);
        }
        vqz_container_free(a);
        vqz_container_free(b);
    }
    vqz_audio *wa = read_audio(d.at("st-whole.wav")), *wb = read_audio(d.at("st-50.wav"));
    REQUIRE(max_abs_diff(wa, wb) <= 1.0 / 32768);
    vqz_audio_free(wa);
    vqz_audio_free(wb);
    vqz_model_free(m);
}

TEST_CASE("audio levels: explicit, by kbit/s target, and decoded fewer", "[codec-audio]")
{
    TempDir d;
    vqz_model *m = load_model(make_model(d, "tiny-audio", 3));
    std::string in = d.at("in.wav");
    const int64_t n = 12000;
    write_signal(in, 24000, 2, n, 16, 9);
    double seconds = n / 24000.0;
    vqz_options o;
    vqz_options_init(&o);
    o.threads = 1; // tiny tensors: on a busy machine a second OpenMP thread costs far more than it gives
    o.chunk_frames = 200;
    vqz_report r;
    REQUIRE(encode(m, &o, in, d.at("all.vqz"), &r) == VQZ_OK);
    REQUIRE(r.levels == 3);
    size_t all = slurp_existing(d.at("all.vqz")).size();

    vqz_options two = o;
    two.levels = 2;
    REQUIRE(encode(m, &two, in, d.at("two.vqz"), &r) == VQZ_OK);
    REQUIRE(r.levels == 2);
    size_t two_size = slurp_existing(d.at("two.vqz")).size();
    REQUIRE(two_size < all);
    vqz_file_info fi;
    REQUIRE(vqz_file_probe(d.at("two.vqz").c_str(), &fi) == VQZ_OK);
    REQUIRE(fi.levels == 2);
    two.levels = 4;
    REQUIRE(encode(m, &two, in, d.at("four.vqz")) == VQZ_ERR_INVALID_ARG);
    REQUIRE_FALSE(file_exists(d.at("four.vqz")));

    // kbps: the exact size of the two-level file fits two levels and not three; a tiny target gives one
    vqz_options rate = o;
    rate.kbps = two_size * 8.0 / seconds / 1000.0 + 1e-9;
    REQUIRE(encode(m, &rate, in, d.at("rate.vqz"), &r) == VQZ_OK);
    REQUIRE(r.levels == 2);
    REQUIRE(r.kbps <= rate.kbps);
    REQUIRE(slurp_existing(d.at("rate.vqz")) == slurp_existing(d.at("two.vqz")));
    rate.kbps = two_size * 8.0 / seconds / 1000.0 - 1e-6;
    REQUIRE(encode(m, &rate, in, d.at("rate1.vqz"), &r) == VQZ_OK);
    REQUIRE(r.levels == 1);
    rate.kbps = 0.001;
    REQUIRE(encode(m, &rate, in, d.at("tiny.vqz"), &r) == VQZ_OK);
    REQUIRE(r.levels == 1);
    rate.kbps = 1e9;
    REQUIRE(encode(m, &rate, in, d.at("huge.vqz"), &r) == VQZ_OK);
    REQUIRE(r.levels == 3);
    REQUIRE(slurp_existing(d.at("huge.vqz")) == slurp_existing(d.at("all.vqz")));

    // decoding two levels of the full file equals decoding the two-level file; all three differ
    vqz_options dec2 = o;
    dec2.levels = 2;
    REQUIRE(decode(m, &dec2, d.at("all.vqz"), d.at("a2.wav"), &r) == VQZ_OK);
    REQUIRE(r.levels == 2);
    REQUIRE(decode(m, &o, d.at("two.vqz"), d.at("b2.wav"), &r) == VQZ_OK);
    REQUIRE(r.levels == 2);
    REQUIRE(decode(m, &o, d.at("all.vqz"), d.at("a3.wav"), &r) == VQZ_OK);
    REQUIRE(r.levels == 3);
    REQUIRE(slurp_existing(d.at("a2.wav")) == slurp_existing(d.at("b2.wav")));
    REQUIRE(slurp_existing(d.at("a2.wav")) != slurp_existing(d.at("a3.wav")));

    // a file cut right after level 2 still decodes those two levels
    {
        vqz_container *c = nullptr;
        REQUIRE(vqz_container_open_file(d.at("all.vqz").c_str(), nullptr, &c) == VQZ_OK);
        uint32_t chunks = vqz_header_chunk_count(vqz_container_header(c));
        vqz_frame_info fi2;
        REQUIRE(vqz_container_frame_info(c, 1, chunks - 1, &fi2) == VQZ_OK);
        vqz_container_free(c);
        spit(d.at("cut2.vqz"), slurp_existing(d.at("all.vqz")).substr(0, fi2.offset + fi2.comp_size));
        REQUIRE(decode(m, &o, d.at("cut2.vqz"), d.at("cut2.wav"), &r) == VQZ_OK);
        REQUIRE(r.levels == 2);
        REQUIRE(slurp_existing(d.at("cut2.wav")) == slurp_existing(d.at("a2.wav")));
    }
    vqz_model_free(m);
}

TEST_CASE("audio streams: stdin in, .vqz and WAV on stdout", "[codec-audio]")
{
    TempDir d;
    vqz_model *m = load_model(make_model(d, "tiny-audio", 4));
    std::string in = d.at("in.wav");
    const int64_t n = 30011; // more than a pipe buffer
    write_signal(in, 44100, 2, n, 16, 11);
    vqz_options o;
    vqz_options_init(&o);
    o.threads = 1; // tiny tensors: on a busy machine a second OpenMP thread costs far more than it gives
    o.chunk_frames = 300;
    REQUIRE(encode(m, &o, in, d.at("file.vqz")) == VQZ_OK);
    std::string ref = slurp_existing(d.at("file.vqz"));

    // from a pipe the length is unknown until the end; the file is the same
    std::string wav = slurp_existing(in);
    vqz_status s = VQZ_ERR_INTERNAL;
    vqz_report r;
    feed_stdin(wav, [&] { s = vqz_encode_file(m, &o, "-", d.at("pipe.vqz").c_str(), &r); });
    INFO(vqz_last_error());
    REQUIRE(s == VQZ_OK);
    REQUIRE(r.frames == (uint64_t)n);
    REQUIRE(r.in_bytes == 0);
    REQUIRE(slurp_existing(d.at("pipe.vqz")) == ref);

    // .vqz to stdout
    std::string out = capture_stdout([&] { s = vqz_encode_file(m, &o, in.c_str(), "-", nullptr); });
    REQUIRE(s == VQZ_OK);
    REQUIRE(out == ref);

    // WAV on stdout: exact sizes in its header, the same samples as the file
    REQUIRE(decode(m, &o, d.at("file.vqz"), d.at("file.wav")) == VQZ_OK);
    out = capture_stdout([&] { s = vqz_decode_file(m, &o, d.at("file.vqz").c_str(), "-", &r); });
    INFO(vqz_last_error());
    REQUIRE(s == VQZ_OK);
    REQUIRE(r.frames == (uint64_t)n);
    REQUIRE(out.size() == 44 + (size_t)n * 4);
    uint32_t data_size = 0;
    std::memcpy(&data_size, out.data() + 40, 4);
    REQUIRE(data_size == (uint32_t)n * 4);
    spit(d.at("stream.wav"), out);
    vqz_audio *a = read_audio(d.at("stream.wav")), *b = read_audio(d.at("file.wav"));
    REQUIRE(a->info.sample_rate == 44100);
    REQUIRE(a->info.bits == 16);
    REQUIRE(max_abs_diff(a, b) == 0.0);
    vqz_audio_free(a);
    vqz_audio_free(b);

    // and round again: the decoded stream piped back into the encoder
    feed_stdin(out, [&] { s = vqz_encode_file(m, &o, "-", d.at("again.vqz").c_str(), &r); });
    REQUIRE(s == VQZ_OK);
    REQUIRE(r.frames == (uint64_t)n);
    vqz_model_free(m);
}

TEST_CASE("audio failures: wrong model, damaged files, bad requests leave outputs untouched", "[codec-audio]")
{
    TempDir d;
    vqz_model *m = load_model(make_model(d, "tiny-audio", 5));
    vqz_model *other = load_model(make_model(d, "other-audio", 6));
    vqz_model *img = load_model(make_model(d, "tiny-image", 7, true));
    std::string in = d.at("in.wav");
    write_signal(in, 24000, 1, 9000, 16, 13);
    vqz_options o;
    vqz_options_init(&o);
    o.threads = 1; // tiny tensors: on a busy machine a second OpenMP thread costs far more than it gives
    o.chunk_frames = 100;
    std::string enc = d.at("in.vqz");
    REQUIRE(encode(m, &o, in, enc) == VQZ_OK);

    std::string out = d.at("existing.wav");
    spit(out, "keep me");
    auto untouched = [&] {
        REQUIRE(slurp_existing(out) == "keep me");
        for (const std::string &e : dir_names(d.path))
            REQUIRE(e[0] != '.'); // no temporary file left behind
    };

    REQUIRE(decode(other, &o, enc, out) == VQZ_ERR_MODEL_MISMATCH);
    std::string msg = vqz_last_error();
    INFO(msg);
    REQUIRE(msg.find("tiny-audio") != std::string::npos);
    REQUIRE(msg.find("other-audio") != std::string::npos);
    REQUIRE(msg.find("in.vqz") != std::string::npos);
    untouched();

    // an image model on the file API: refused both ways, naming the model and the file
    REQUIRE(encode(img, &o, in, d.at("img.vqz")) == VQZ_ERR_MODEL_MISMATCH);
    msg = vqz_last_error();
    REQUIRE(msg.find("tiny-image") != std::string::npos);
    REQUIRE(msg.find("in.wav") != std::string::npos);
    REQUIRE(msg.find("audio") != std::string::npos);
    REQUIRE_FALSE(file_exists(d.at("img.vqz")));
    REQUIRE(decode(img, &o, enc, out) == VQZ_ERR_MODEL_MISMATCH);
    untouched();

    // cut inside level 1: refused before any output exists
    std::string bytes = slurp_existing(enc);
    vqz_container *c = nullptr;
    REQUIRE(vqz_container_open_file(enc.c_str(), nullptr, &c) == VQZ_OK);
    vqz_frame_info fi;
    REQUIRE(vqz_container_frame_info(c, 0, 1, &fi) == VQZ_OK);
    vqz_container_free(c);
    spit(d.at("cut.vqz"), bytes.substr(0, fi.offset + fi.comp_size / 2));
    vqz_status s = decode(m, &o, d.at("cut.vqz"), out);
    REQUIRE((s == VQZ_ERR_TRUNCATED || s == VQZ_ERR_MISSING));
    REQUIRE(std::string(vqz_last_error()).find("cut.vqz") != std::string::npos);
    untouched();
    spit(d.at("head.vqz"), bytes.substr(0, 40));
    REQUIRE(decode(m, &o, d.at("head.vqz"), out) == VQZ_ERR_TRUNCATED);
    untouched();

    // a flipped payload byte is a checksum error, also when the output is stdout (nothing is written)
    std::string bad = bytes;
    bad[bad.size() - 5] ^= 0x21;
    spit(d.at("bad.vqz"), bad);
    REQUIRE(decode(m, &o, d.at("bad.vqz"), out) == VQZ_ERR_CHECKSUM);
    untouched();
    std::string piped = capture_stdout([&] { s = decode(m, &o, d.at("bad.vqz"), "-"); });
    REQUIRE(s == VQZ_ERR_CHECKSUM);
    REQUIRE(piped.empty());

    // an output name that is not .wav or .flac, a missing folder, a cancelled call
    REQUIRE(decode(m, &o, enc, d.at("x.mp3")) == VQZ_ERR_INVALID_ARG);
    REQUIRE(decode(m, &o, enc, d.at("no/such/x.wav")) != VQZ_OK);
    REQUIRE_FALSE(file_exists(d.at("no")));
    volatile int stop = 1;
    vqz_options cancel = o;
    cancel.cancel = &stop;
    REQUIRE(decode(m, &cancel, enc, out) == VQZ_ERR_CANCELLED);
    untouched();
    std::string enc_existing = d.at("existing.vqz");
    spit(enc_existing, "keep me too");
    REQUIRE(encode(m, &cancel, in, enc_existing) == VQZ_ERR_CANCELLED);
    REQUIRE(slurp_existing(enc_existing) == "keep me too");

    // inputs that are not audio, or hold no samples; options out of range
    spit(d.at("junk.wav"), "RIFF....WAVEjunkjunkjunk");
    REQUIRE(encode(m, &o, d.at("junk.wav"), enc_existing) == VQZ_ERR_FORMAT);
    REQUIRE(std::string(vqz_last_error()).find("junk.wav") != std::string::npos);
    write_signal(d.at("empty.wav"), 24000, 1, 0, 16);
    REQUIRE(encode(m, &o, d.at("empty.wav"), enc_existing) == VQZ_ERR_FORMAT);
    REQUIRE(std::string(vqz_last_error()).find("no samples") != std::string::npos);
    REQUIRE(encode(m, &o, d.at("missing.wav"), enc_existing) == VQZ_ERR_IO);
    REQUIRE(slurp_existing(enc_existing) == "keep me too");
    vqz_options neg = o;
    neg.chunk_frames = -1;
    REQUIRE(encode(m, &neg, in, d.at("neg.vqz")) == VQZ_ERR_INVALID_ARG);
    neg = o;
    neg.output_rate = 10;
    REQUIRE(decode(m, &neg, enc, out) == VQZ_ERR_INVALID_ARG);
    untouched();
    vqz_model_free(m);
    vqz_model_free(other);
    vqz_model_free(img);
}

// Peak memory of coding one hour of stereo 48 kHz audio (run by hand: `vqz-tests "[.audio-rss]"`;
// VQZ_RSS_SECONDS sets another duration, VQZ_RSS_THREADS the thread count).
TEST_CASE("one hour of stereo audio encodes and decodes in bounded memory", "[.audio-rss]")
{
    TempDir d;
    vqz_model *m = load_model(make_model(d, "tiny-audio", 8));
    const int rate = 48000, ch = 2;
    const char *secs = std::getenv("VQZ_RSS_SECONDS"), *threads = std::getenv("VQZ_RSS_THREADS");
    const int64_t frames = (int64_t)rate * (secs ? std::atoi(secs) : 3600);
    vqz_options o;
    vqz_options_init(&o);
    o.threads = threads ? std::atoi(threads) : 0;
    std::string in = d.at("hour.wav"), enc = d.at("hour.vqz"), out = d.at("hour.out.wav");
    {
        vqz_audio_info want;
        std::memset(&want, 0, sizeof want);
        want.sample_rate = rate;
        want.channels = ch;
        want.bits = 16;
        want.frames = -1;
        vqz_audio_writer *w = nullptr;
        REQUIRE(vqz_audio_writer_open(in.c_str(), &want, &w) == VQZ_OK);
        const int64_t block = 48000;
        std::vector<float> buf((size_t)(block * ch));
        vqz_rng r;
        vqz_rng_seed(&r, 3);
        for (int64_t f0 = 0; f0 < frames; f0 += block) { // frames is a multiple of block
            for (int64_t i = 0; i < block; i++)
                for (int c = 0; c < ch; c++) {
                    double t = (double)(f0 + i) / rate;
                    buf[(size_t)(i * ch + c)] = (float)(0.3 * std::sin(2 * M_PI * (330.0 + 50 * c) * t) +
                                                        0.05 * (vqz_rng_uniform(&r) * 2 - 1));
                }
            REQUIRE(vqz_audio_writer_write(w, buf.data(), block) == VQZ_OK);
        }
        REQUIRE(vqz_audio_writer_close(w, 1) == VQZ_OK);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long before = ru.ru_maxrss;
    vqz_report r;
    double t0 = vqz_now();
    vqz_status s = encode(m, &o, in, enc, &r);
    INFO(vqz_last_error());
    REQUIRE(s == VQZ_OK);
    double t_enc = vqz_now() - t0;
    getrusage(RUSAGE_SELF, &ru);
    long after_enc = ru.ru_maxrss;
    t0 = vqz_now();
    s = decode(m, &o, enc, out, &r);
    REQUIRE(s == VQZ_OK);
    double t_dec = vqz_now() - t0;
    getrusage(RUSAGE_SELF, &ru);
    REQUIRE(r.frames == (uint64_t)frames);
    std::printf("audio-rss: %lld s stereo 48 kHz, %.1f kbit/s, encode %.0f s, decode %.0f s; peak RSS before %ld MiB, "
                "after encode %ld MiB, after decode %ld MiB\n",
                (long long)(frames / rate), r.kbps, t_enc, t_dec, before / 1024, after_enc / 1024, ru.ru_maxrss / 1024);
    REQUIRE(ru.ru_maxrss < 1536L * 1024);
    vqz_model_free(m);
}
