// test_metrics.cpp — the evaluation metrics (codec/metrics.h, vqz_eval_*) against the values that
// tests/reference/metrics_ref.py computed with scikit-image, a NumPy re-implementation of pytorch_msssim and
// librosa's mel filterbank (tests/golden/metrics_*); their edge cases; and the vqz-eval tool as a program.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <cjson/cJSON.h>
#include <sndfile.h>

#include "testutil.h"

extern "C" {
#include "codec/image_io.h"
#include "codec/metrics.h"
#include "common/status.h"
}

namespace {

// One line of metrics_expected.txt: its kind ("image", "audio", "melfb"), name and key=value fields.
struct Expected {
    std::string kind, name;
    std::map<std::string, std::string> f;
    double num(const std::string &k) const
    {
        auto it = f.find(k);
        REQUIRE(it != f.end());
        return std::strtod(it->second.c_str(), nullptr);
    }
};

std::vector<Expected> read_expected(const std::string &kind)
{
    std::ifstream in(vqz_test_path("golden/metrics_expected.txt"));
    REQUIRE(in.good());
    std::vector<Expected> out;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#')
            continue;
        std::istringstream ss(line);
        Expected e;
        ss >> e.kind;
        if (e.kind != kind)
            continue;
        if (kind != "melfb")
            ss >> e.name;
        std::string tok;
        while (ss >> tok) {
            size_t eq = tok.find('=');
            REQUIRE(eq != std::string::npos);
            e.f[tok.substr(0, eq)] = tok.substr(eq + 1);
        }
        out.push_back(e);
    }
    REQUIRE(!out.empty());
    return out;
}

std::vector<double> split_numbers(const std::string &s)
{
    std::vector<double> v;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        v.push_back(std::strtod(item.c_str(), nullptr));
    return v;
}

// A reference named "coffee.png@X,Y,WxH" is that crop of the sample photograph, written to a PNG in dir;
// any other name is a golden file.
std::string reference_file(const std::string &spec, const TempDir &dir)
{
    size_t at = spec.find('@');
    if (at == std::string::npos)
        return vqz_test_path("golden/" + spec);
    int x, y, w, h;
    REQUIRE(std::sscanf(spec.c_str() + at + 1, "%d,%d,%dx%d", &x, &y, &w, &h) == 4);
    vqz_image *src = nullptr, *crop = nullptr;
    REQUIRE(vqz_image_read_file(vqz_test_path("../samples/images/" + spec.substr(0, at)).c_str(), &src) == VQZ_OK);
    REQUIRE(src->channels == 3);
    REQUIRE(x + w <= src->width);
    REQUIRE(y + h <= src->height);
    REQUIRE(vqz_image_create(w, h, 3, src->bit_depth, &crop) == VQZ_OK);
    for (int r = 0; r < h; r++)
        std::memcpy(crop->samples + (size_t)r * w * 3, src->samples + ((size_t)(y + r) * src->width + x) * 3,
                    (size_t)w * 3 * sizeof(uint16_t));
    std::string out = dir.at(spec.substr(0, at) + "-" + std::to_string(x) + "-" + std::to_string(y) + ".png");
    REQUIRE(vqz_image_write_png(crop, out.c_str()) == VQZ_OK);
    vqz_image_free(src);
    vqz_image_free(crop);
    return out;
}

// An image file as public vqz_pixels (8-bit samples narrowed to uint8_t); free with release().
struct Pixels {
    vqz_pixels p;
    std::vector<uint8_t> b8;
    std::vector<uint16_t> b16;
    explicit Pixels(const std::string &path)
    {
        vqz_image *img = nullptr;
        REQUIRE(vqz_image_read_file(path.c_str(), &img) == VQZ_OK);
        size_t n = (size_t)img->width * img->height * img->channels;
        p.width = (uint32_t)img->width;
        p.height = (uint32_t)img->height;
        p.channels = img->channels;
        p.bit_depth = img->bit_depth;
        if (img->bit_depth == 8) {
            b8.assign(img->samples, img->samples + n);
            p.pixels = b8.data();
        } else {
            b16.assign(img->samples, img->samples + n);
            p.pixels = b16.data();
        }
        vqz_image_free(img);
    }
};

// Planar float test signals: a few band-limited tones (all below 3 kHz) at any rate.
std::vector<float> tones(int rate, int64_t frames, int channels)
{
    std::vector<float> x((size_t)(frames * channels));
    for (int c = 0; c < channels; c++)
        for (int64_t i = 0; i < frames; i++) {
            double t = (double)i / rate;
            x[(size_t)(c * frames + i)] = (float)(0.3 * std::sin(2 * M_PI * (220 + 110 * c) * t) +
                                                  0.2 * std::sin(2 * M_PI * 1234.5 * t + c) +
                                                  0.1 * std::sin(2 * M_PI * 2900 * t));
        }
    return x;
}

void write_wav(const std::string &path, const std::vector<float> &planar, int channels, int rate)
{
    SF_INFO info;
    std::memset(&info, 0, sizeof info);
    info.samplerate = rate;
    info.channels = channels;
    info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    SNDFILE *f = sf_open(path.c_str(), SFM_WRITE, &info);
    REQUIRE(f != nullptr);
    int64_t frames = (int64_t)planar.size() / channels;
    std::vector<float> il(planar.size());
    for (int64_t i = 0; i < frames; i++)
        for (int c = 0; c < channels; c++)
            il[(size_t)(i * channels + c)] = planar[(size_t)(c * frames + i)];
    REQUIRE(sf_writef_float(f, il.data(), frames) == frames);
    REQUIRE(sf_close(f) == 0);
}

} // namespace

TEST_CASE("image metrics agree with scikit-image's PSNR and the published MS-SSIM on the golden pairs", "[metrics]")
{
    TempDir dir;
    double max_psnr = 0, max_ssim = 0;
    for (const Expected &e : read_expected("image")) {
        INFO("pair " << e.name);
        std::string ref = reference_file(e.f.at("ref"), dir), test = vqz_test_path("golden/" + e.f.at("test"));
        vqz_image_metrics m;
        REQUIRE(vqz_eval_images(ref.c_str(), test.c_str(), &m) == VQZ_OK);
        REQUIRE(m.msssim_scales == (int)e.num("scales"));
        double dp = std::max(std::fabs(m.psnr - e.num("psnr")), std::fabs(m.psnr_y - e.num("psnr_y")));
        double ds = std::max(std::fabs(m.msssim - e.num("msssim")), std::fabs(m.msssim_y - e.num("msssim_y")));
        INFO("psnr " << m.psnr << " psnr_y " << m.psnr_y << " msssim " << m.msssim << " msssim_y " << m.msssim_y);
        // the acceptance bound is 1e-4; both sides compute in double, so hold them far tighter: this also
        // tells pytorch_msssim's odd-side pooling from TensorFlow's (2e-5 apart on the odd pairs)
        CHECK(dp < 1e-8);
        CHECK(ds < 1e-8);
        if (e.f.count("msssim_tf"))
            CHECK(std::fabs(m.msssim - e.num("msssim_tf")) > 1e-6);
        max_psnr = std::max(max_psnr, dp);
        max_ssim = std::max(max_ssim, ds);

        // the in-memory entry point gives the same numbers
        Pixels a(ref), b(test);
        vqz_image_metrics mp;
        REQUIRE(vqz_eval_pixels(&a.p, &b.p, &mp) == VQZ_OK);
        CHECK(mp.psnr == m.psnr);
        CHECK(mp.msssim == m.msssim);
        CHECK(mp.msssim_y == m.msssim_y);
        CHECK(mp.channels == (e.name == "grey16_noise" ? 1 : 3));
        CHECK(mp.bit_depth_ref == (e.name == "grey16_noise" ? 16 : 8));
    }
    INFO("max |error|: PSNR " << max_psnr << " dB, (MS-)SSIM " << max_ssim);
    CHECK(max_psnr < 1e-8);
}

TEST_CASE("image metrics: sizes must agree; identical images, grey against RGB, alpha, tiny images", "[metrics]")
{
    std::string coffee = vqz_test_path("../samples/images/coffee.png");
    std::string chelsea = vqz_test_path("../samples/images/chelsea.png");
    vqz_image_metrics m;
    REQUIRE(vqz_eval_images(coffee.c_str(), chelsea.c_str(), &m) == VQZ_ERR_SHAPE);
    std::string msg = vqz_last_error();
    CHECK(msg.find("451x300") != std::string::npos);
    CHECK(msg.find("600x400") != std::string::npos);
    CHECK(msg.find(chelsea) != std::string::npos);
    CHECK(msg.find(coffee) != std::string::npos);
    REQUIRE(vqz_eval_images(coffee.c_str(), "/nonexistent/x.png", &m) == VQZ_ERR_IO);
    CHECK(std::string(vqz_last_error()).find("/nonexistent/x.png") != std::string::npos);

    REQUIRE(vqz_eval_images(chelsea.c_str(), chelsea.c_str(), &m) == VQZ_OK);
    CHECK(std::isinf(m.psnr));
    CHECK(std::isinf(m.psnr_y));
    CHECK(m.msssim == 1.0);
    CHECK(m.msssim_y == 1.0);
    CHECK(m.mse == 0.0);

    // a grey image against its replication into RGB is identical; alpha is never compared
    const uint32_t W = 40, H = 30;
    std::vector<uint8_t> grey(W * H), rgba(W * H * 4), rgb(W * H * 3);
    vqz_rng r;
    vqz_rng_seed(&r, 5);
    for (uint32_t i = 0; i < W * H; i++) {
        grey[i] = (uint8_t)vqz_rng_below(&r, 256);
        for (int c = 0; c < 3; c++)
            rgba[i * 4 + c] = rgb[i * 3 + c] = grey[i];
        rgba[i * 4 + 3] = (uint8_t)vqz_rng_below(&r, 256);
    }
    vqz_pixels pg = {W, H, 1, 8, grey.data()}, pa = {W, H, 4, 8, rgba.data()}, pc = {W, H, 3, 8, rgb.data()};
    REQUIRE(vqz_eval_pixels(&pg, &pa, &m) == VQZ_OK);
    CHECK(m.channels == 3);
    CHECK(std::isinf(m.psnr));
    CHECK(m.msssim_scales == 1); // 30 px: single-scale SSIM
    CHECK(m.msssim == 1.0);

    // one changed sample: MSE and PSNR by hand; symmetric
    rgb[7] = (uint8_t)(rgb[7] ^ 0x10);
    REQUIRE(vqz_eval_pixels(&pc, &pa, &m) == VQZ_OK);
    double mse = (16.0 / 255) * (16.0 / 255) / (W * H * 3);
    CHECK(std::fabs(m.mse - mse) < 1e-15);
    CHECK(std::fabs(m.psnr - 10 * std::log10(1 / mse)) < 1e-9);
    vqz_image_metrics back;
    REQUIRE(vqz_eval_pixels(&pa, &pc, &back) == VQZ_OK);
    CHECK(std::fabs(back.msssim - m.msssim) < 1e-14);
    CHECK(m.msssim < 1.0);

    // too small for any SSIM window
    vqz_pixels t1 = {10, 30, 1, 8, grey.data()}, t2 = {10, 30, 1, 8, grey.data() + 1};
    REQUIRE(vqz_eval_pixels(&t1, &t2, &m) == VQZ_OK);
    CHECK(m.msssim_scales == 0);
    CHECK(std::isnan(m.msssim));
    CHECK(std::isfinite(m.psnr));

    vqz_pixels bad = {W, H, 5, 8, grey.data()};
    CHECK(vqz_eval_pixels(&bad, &pg, &m) == VQZ_ERR_INVALID_ARG);
    vqz_pixels other = {W, H + 1, 1, 8, grey.data()};
    CHECK(vqz_eval_pixels(&pg, &other, &m) == VQZ_ERR_SHAPE);
    double v;
    CHECK(vqz_metric_ssim_plane(nullptr, nullptr, 0, 0, 1.0, 3, &v) == VQZ_ERR_INVALID_ARG);
}

TEST_CASE("8-bit PSNR of model-range signals rounds both to pixel levels and clamps the output", "[metrics]")
{
    // x at levels 0, 128, 255; y one level off everywhere, except a value far outside [-1, 1] that clamps
    // to 255 and so matches exactly
    const float lv = 2.0f / 255.0f;
    std::vector<float> x = {-1.0f, -1.0f + 128 * lv, 1.0f, 1.0f};
    std::vector<float> y = {-1.0f + lv, -1.0f + 127 * lv, 1.0f - lv, 7.0f};
    CHECK(vqz_metric_psnr_8bit(x.data(), y.data(), 4) == Approx(10.0 * std::log10(255.0 * 255.0 / 0.75)));
    // a shift under half a level rounds away: identical
    for (float &v : y)
        v = 0.0f;
    std::vector<float> z = {0.3f * lv, 0.3f * lv, 0.3f * lv, 0.3f * lv};
    CHECK(std::isinf(vqz_metric_psnr_8bit(y.data(), z.data(), 4)));
}

TEST_CASE("audio metrics agree with the NumPy reference (SI-SDR, SNR, mel, DAC mel, STFT distance)", "[metrics]")
{
    double max_db = 0, max_mel = 0, max_stft = 0;
    for (const Expected &e : read_expected("audio")) {
        INFO("pair " << e.name);
        std::string ref = vqz_test_path("golden/" + e.f.at("ref")), test = vqz_test_path("golden/" + e.f.at("test"));
        vqz_audio_metrics m;
        REQUIRE(vqz_eval_audio(ref.c_str(), test.c_str(), &m) == VQZ_OK);
        INFO("si_sdr " << m.si_sdr << " snr " << m.snr << " mel " << m.mel_distance << " dac " << m.mel_distance_dac
                       << " stft " << m.stft_distance);
        CHECK(m.frames == (int64_t)e.num("frames"));
        CHECK(m.length_mismatch == (int)e.num("mismatch"));
        CHECK(m.test_sample_rate == m.sample_rate);
        double db = std::max(std::fabs(m.si_sdr - e.num("si_sdr")), std::fabs(m.snr - e.num("snr")));
        double mel = std::max(std::fabs(m.mel_distance - e.num("mel")),
                              std::fabs(m.mel_distance_dac - e.num("mel_dac")));
        double stft = std::fabs(m.stft_distance - e.num("stft")) / e.num("stft");
        CHECK(db < 1e-6);     // acceptance: 1e-3
        CHECK(mel < 1e-6);    // acceptance: 1e-3
        CHECK(stft < 1e-6);   // single-precision FFTs in nn/stft_loss.c
        max_db = std::max(max_db, db);
        max_mel = std::max(max_mel, mel);
        max_stft = std::max(max_stft, stft);
    }
    INFO("max |error|: SI-SDR/SNR " << max_db << " dB, mel " << max_mel << ", STFT (relative) " << max_stft);
    CHECK(max_db < 1e-6);
}

TEST_CASE("the mel filterbank is librosa's (Slaney scale and area normalisation)", "[metrics]")
{
    for (const Expected &e : read_expected("melfb")) {
        int sr = (int)e.num("sr"), n_fft = (int)e.num("n_fft"), n_mels = (int)e.num("n_mels");
        INFO("sr " << sr << " n_fft " << n_fft << " n_mels " << n_mels);
        int K = n_fft / 2 + 1;
        std::vector<double> fb((size_t)n_mels * K);
        REQUIRE(vqz_metric_mel_filterbank(sr, n_fft, n_mels, 0.0, sr / 2.0, fb.data()) == VQZ_OK);
        if (e.f.count("all")) {
            std::vector<double> want = split_numbers(e.f.at("all"));
            REQUIRE(want.size() == fb.size());
            CHECK(rel_err(fb, want) < 1e-12);
        } else {
            std::vector<double> sums(n_mels, 0.0), want = split_numbers(e.f.at("rowsums"));
            for (int m = 0; m < n_mels; m++)
                for (int k = 0; k < K; k++)
                    sums[m] += fb[(size_t)m * K + k];
            CHECK(rel_err(sums, want) < 1e-12);
            std::stringstream ss(e.f.at("entries"));
            std::string item;
            while (std::getline(ss, item, ',')) {
                int i, k;
                double v;
                REQUIRE(std::sscanf(item.c_str(), "%d:%d:%lf", &i, &k, &v) == 3);
                CHECK(std::fabs(fb[(size_t)i * K + k] - v) <= 1e-12 * std::fabs(v) + 1e-300);
            }
        }
    }
}

TEST_CASE("audio alignment: the test is resampled to the reference's rate and cut to the shorter", "[metrics]")
{
    const int64_t n = 24000; // 1 s at 24 kHz
    std::vector<float> ref = tones(24000, n, 2), test16 = tones(16000, 16000, 2);
    vqz_audio_metrics m;
    REQUIRE(vqz_eval_signals(ref.data(), n, 24000, test16.data(), 16000, 16000, 2, &m) == VQZ_OK);
    CHECK(m.sample_rate == 24000);
    CHECK(m.test_sample_rate == 16000);
    CHECK(m.frames_test == n);
    CHECK(m.frames == n);
    CHECK(m.length_mismatch == 0);
    INFO("si_sdr " << m.si_sdr << " mel " << m.mel_distance << " stft " << m.stft_distance);
    CHECK(m.si_sdr > 40.0); // the tones lie well inside SoX HQ's passband
    CHECK(m.mel_distance < 0.05);

    // the same signal at the same rate: exact
    REQUIRE(vqz_eval_signals(ref.data(), n, 24000, ref.data(), n, 24000, 2, &m) == VQZ_OK);
    CHECK(std::isinf(m.si_sdr));
    CHECK(m.mel_distance == 0.0);
    CHECK(m.mel_distance_dac == 0.0);

    // 1% longer is tolerated, 2% is reported; both are cut to the reference
    std::vector<float> longer = tones(24000, n + 240, 2), much = tones(24000, n + 480, 2);
    REQUIRE(vqz_eval_signals(ref.data(), n, 24000, longer.data(), n + 240, 24000, 2, &m) == VQZ_OK);
    CHECK(m.length_mismatch == 0);
    CHECK(m.frames == n);
    CHECK(m.si_sdr > 100.0); // the same tones: only float rounding differs
    REQUIRE(vqz_eval_signals(ref.data(), n, 24000, much.data(), n + 480, 24000, 2, &m) == VQZ_OK);
    CHECK(m.length_mismatch == 1);
    CHECK(m.frames_test == n + 480);

    // too short for the spectral distances: NaN, while SI-SDR and SNR are still defined
    std::vector<float> noisy(ref.begin(), ref.begin() + 1000);
    for (size_t i = 0; i < noisy.size(); i++)
        noisy[i] += 0.01f * (float)((i * 7919) % 13) - 0.06f;
    REQUIRE(vqz_eval_signals(ref.data(), 1000, 24000, noisy.data(), 1000, 24000, 1, &m) == VQZ_OK);
    CHECK(std::isnan(m.mel_distance));
    CHECK(std::isnan(m.mel_distance_dac));
    CHECK(std::isnan(m.stft_distance));
    CHECK(std::isfinite(m.si_sdr));
    CHECK(std::isfinite(m.snr));

    // SI-SDR ignores gain and offset; SNR does not
    std::vector<float> scaled(ref.begin(), ref.begin() + n);
    for (float &v : scaled)
        v = 0.5f * v + 0.1f;
    REQUIRE(vqz_eval_signals(ref.data(), n, 24000, scaled.data(), n, 24000, 1, &m) == VQZ_OK);
    CHECK(m.si_sdr > 100.0);
    CHECK(m.snr < 10.0);

    std::vector<float> nan_sig(ref.begin(), ref.begin() + n);
    nan_sig[123] = NAN;
    CHECK(vqz_eval_signals(ref.data(), n, 24000, nan_sig.data(), n, 24000, 1, &m) == VQZ_ERR_NONFINITE);
    CHECK(vqz_eval_signals(ref.data(), 0, 24000, ref.data(), 0, 24000, 1, &m) == VQZ_ERR_SHAPE);
}

TEST_CASE("audio files: channel counts must agree, and errors name the file", "[metrics]")
{
    TempDir dir;
    std::string mono = dir.at("mono.wav"), stereo = dir.at("stereo.wav");
    write_wav(mono, tones(24000, 4000, 1), 1, 24000);
    write_wav(stereo, tones(24000, 4000, 2), 2, 24000);
    vqz_audio_metrics m;
    REQUIRE(vqz_eval_audio(stereo.c_str(), mono.c_str(), &m) == VQZ_ERR_SHAPE);
    std::string msg = vqz_last_error();
    CHECK(msg.find(mono) != std::string::npos);
    CHECK(msg.find("1 channel") != std::string::npos);
    CHECK(msg.find("has 2") != std::string::npos);
    REQUIRE(vqz_eval_audio(mono.c_str(), dir.at("missing.wav").c_str(), &m) == VQZ_ERR_IO);
    CHECK(std::string(vqz_last_error()).find("missing.wav") != std::string::npos);
    REQUIRE(vqz_eval_audio(mono.c_str(), mono.c_str(), &m) == VQZ_OK);
    CHECK(std::isinf(m.si_sdr));
    CHECK(m.stft_distance < 1e-6);
}

// ------------------------------------------------------------------------------------------ the tool

namespace {

std::string eval_tool()
{
    return vqz_test_bin_dir() + "/vqz-eval";
}

struct Run {
    int rc;
    std::string out, err;
};

Run run(const TempDir &dir, const std::string &args)
{
    std::string o = dir.at("stdout"), e = dir.at("stderr");
    int st = std::system((eval_tool() + " " + args + " >'" + o + "' 2>'" + e + "'").c_str());
    Run r;
    r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.out = slurp(o);
    r.err = slurp(e);
    return r;
}

double json_num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    REQUIRE(cJSON_IsNumber(v));
    return v->valuedouble;
}

} // namespace

TEST_CASE("vqz-eval: image and audio pairs as text and JSON, mismatches and bad files as exit codes", "[metrics]")
{
    if (access(eval_tool().c_str(), X_OK) != 0) {
        vqz_test_skip("vqz-eval is not built (" + eval_tool() + "); run make first");
        return;
    }
    TempDir dir;
    std::string a = vqz_test_path("golden/metrics_grey16_ref.png"), b = vqz_test_path("golden/metrics_grey16_test.png");
    vqz_image_metrics im;
    REQUIRE(vqz_eval_images(a.c_str(), b.c_str(), &im) == VQZ_OK);

    Run r = run(dir, "'" + a + "' '" + b + "'");
    INFO("stdout: " << r.out << "stderr: " << r.err);
    REQUIRE(r.rc == 0);
    CHECK(r.err.empty());
    char want[64];
    std::snprintf(want, sizeof want, "%.4f dB", im.psnr);
    CHECK(r.out.find(want) != std::string::npos);
    std::snprintf(want, sizeof want, "ms_ssim           %.6f\n", im.msssim);
    CHECK(r.out.find(want) != std::string::npos);

    r = run(dir, "--json '" + a + "' '" + b + "'");
    REQUIRE(r.rc == 0);
    cJSON *o = cJSON_Parse(r.out.c_str());
    REQUIRE(o != nullptr);
    CHECK(std::string(cJSON_GetObjectItemCaseSensitive(o, "kind")->valuestring) == "image");
    CHECK(json_num(o, "psnr") == im.psnr);
    CHECK(json_num(o, "psnr_y") == im.psnr_y);
    CHECK(json_num(o, "ms_ssim") == im.msssim);
    CHECK(json_num(o, "ms_ssim_y") == im.msssim_y);
    CHECK(json_num(o, "ssim_scales") == 5);
    CHECK(json_num(o, "bit_depth_test") == 16);
    cJSON_Delete(o);

    // a small image reports single-scale SSIM under its own name
    std::string s1 = vqz_test_path("golden/metrics_small_rgba_ref.png");
    std::string s2 = vqz_test_path("golden/metrics_small_rgba_test.png");
    r = run(dir, "-j '" + s1 + "' '" + s2 + "'");
    REQUIRE(r.rc == 0);
    o = cJSON_Parse(r.out.c_str());
    REQUIRE(o != nullptr);
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "ms_ssim") == nullptr);
    CHECK(json_num(o, "ssim") > 0.5);
    CHECK(json_num(o, "ssim_scales") == 1);
    cJSON_Delete(o);
    r = run(dir, "'" + s1 + "' '" + s2 + "'");
    CHECK(r.out.find("single-scale SSIM") != std::string::npos);

    // identical files: PSNR is infinite, printed as "inf" and as JSON null
    r = run(dir, "--json '" + a + "' '" + a + "'");
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("\"psnr\":null") != std::string::npos);

    // audio, with the length warning on stderr
    std::string wa = vqz_test_path("golden/metrics_stereo_ref.wav");
    std::string wb = vqz_test_path("golden/metrics_stereo_test.wav");
    vqz_audio_metrics am;
    REQUIRE(vqz_eval_audio(wa.c_str(), wb.c_str(), &am) == VQZ_OK);
    r = run(dir, "--json '" + wa + "' '" + wb + "'");
    REQUIRE(r.rc == 0);
    CHECK(r.err.find("warning: ") != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    o = cJSON_Parse(r.out.c_str());
    REQUIRE(o != nullptr);
    CHECK(std::string(cJSON_GetObjectItemCaseSensitive(o, "kind")->valuestring) == "audio");
    CHECK(json_num(o, "si_sdr") == am.si_sdr);
    CHECK(json_num(o, "mel_distance") == am.mel_distance);
    CHECK(json_num(o, "mel_distance_dac") == am.mel_distance_dac);
    CHECK(json_num(o, "stft_distance") == am.stft_distance);
    CHECK(json_num(o, "frames") == 11025);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "length_mismatch")));
    cJSON_Delete(o);
    r = run(dir, "'" + wa + "' '" + wb + "'");
    REQUIRE(r.rc == 0);
    std::snprintf(want, sizeof want, "si_sdr            %.4f dB\n", am.si_sdr);
    CHECK(r.out.find(want) != std::string::npos);

    // mismatched sizes: exit 1, one line naming both files and sizes
    std::string c1 = vqz_test_path("golden/metrics_coffee_jpeg.png");
    std::string c2 = vqz_test_path("golden/metrics_chelsea_noise.png");
    r = run(dir, "'" + c1 + "' '" + c2 + "'");
    CHECK(r.rc == 1);
    CHECK(r.out.empty());
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(r.err.rfind("vqz-eval: ", 0) == 0);
    CHECK(r.err.find("256x256") != std::string::npos);
    CHECK(r.err.find("211x185") != std::string::npos);
    CHECK(r.err.find("metrics_coffee_jpeg.png") != std::string::npos);
    CHECK(r.err.find("metrics_chelsea_noise.png") != std::string::npos);

    // an image against a sound, channel counts that differ: bad input
    r = run(dir, "'" + c1 + "' '" + wa + "'");
    CHECK(r.rc == 1);
    CHECK(r.err.find("metrics_stereo_ref.wav") != std::string::npos);
    r = run(dir, "'" + wa + "' '" + vqz_test_path("golden/metrics_speech_ref.wav") + "'");
    CHECK(r.rc == 1);
    CHECK(r.err.find("channel") != std::string::npos);

    // unreadable files: I/O
    r = run(dir, "'" + dir.at("none.png") + "' '" + c1 + "'");
    CHECK(r.rc == 2);
    CHECK(r.err.find("none.png") != std::string::npos);
    r = run(dir, "'" + c1 + "' '" + dir.at("none.png") + "'");
    CHECK(r.rc == 2);
    CHECK(r.err.find("none.png") != std::string::npos);

    // usage
    r = run(dir, "'" + c1 + "'");
    CHECK(r.rc == 1);
    CHECK(r.err.find("two files") != std::string::npos);
    r = run(dir, "--frobnicate a b");
    CHECK(r.rc == 1);
    r = run(dir, "--help");
    CHECK(r.rc == 0);
    CHECK(r.out.rfind("Usage: vqz-eval", 0) == 0);
    r = run(dir, "--version");
    CHECK(r.rc == 0);
    CHECK(r.out == std::string("vqz-eval ") + vqz_version() + "\n");
}

TEST_CASE("vqz-eval's man page is clean roff with the usual sections", "[metrics]")
{
    if (std::system("command -v groff >/dev/null 2>&1") != 0) {
        vqz_test_skip("groff is not installed: man page not checked");
        return;
    }
    TempDir dir;
    std::string page = vqz_test_path("../tools/vqz-eval.1"), err = dir.at("err");
    int st = std::system(("groff -man -ww -z '" + page + "' 2>'" + err + "'").c_str());
    CHECK(st == 0);
    CHECK(slurp(err).empty());
    std::string text = slurp(page);
    for (const char *section : {"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT",
                                "EXAMPLES", "SEE ALSO"})
        CHECK(text.find(std::string(".SH ") + section + "\n") != std::string::npos);
}
