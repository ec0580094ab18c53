// test_dataset.cpp — the trainer's data loader on the sample photos and recordings: folder scan (links,
// subfolders, unknown and corrupt files), the cache (downscaling, 16-bit and grey conversion, mono at the
// model's rate), crops and clips checked against the files themselves, determinism, the loader thread.
#include <catch2/catch.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "testutil.h"

extern "C" {
#include "codec/audio_io.h"
#include "codec/dataset.h"
#include "codec/image_io.h"
#include "codec/resample.h"
}

namespace {

std::string sample(const std::string &rel)
{
    std::string p = vqz_test_path("../samples/" + rel);
    char buf[PATH_MAX];
    REQUIRE(realpath(p.c_str(), buf) != nullptr);
    return buf;
}

// A folder tree under /tmp made of links to and copies of the samples, removed at the end.
struct Tree : TempDir {
    Tree() : TempDir("vqz-dataset") {}
    void dir(const std::string &rel) const { REQUIRE(mkdir(at(rel).c_str(), 0755) == 0); }
    void link(const std::string &target, const std::string &rel) const
    {
        REQUIRE(symlink(target.c_str(), at(rel).c_str()) == 0);
    }
    void write(const std::string &rel, const std::string &bytes) const { spit(at(rel), bytes); }
};

struct Log {
    std::vector<std::string> lines;
    static void cb(void *user, const char *line) { static_cast<Log *>(user)->lines.push_back(line); }
    int count_with(const std::string &s) const
    {
        int n = 0;
        for (auto &l : lines)
            n += l.find(s) != std::string::npos;
        return n;
    }
};

vqz_dataset_opts image_opts(Log *log = nullptr)
{
    vqz_dataset_opts o;
    std::memset(&o, 0, sizeof o);
    o.kind = VQZ_DATA_IMAGE;
    o.threads = 2;
    if (log) {
        o.log = Log::cb;
        o.log_user = log;
    }
    return o;
}

vqz_dataset_opts audio_opts(int rate, Log *log = nullptr)
{
    vqz_dataset_opts o = image_opts(log);
    o.kind = VQZ_DATA_AUDIO;
    o.sample_rate = rate;
    return o;
}

vqz_dataset *load(const std::string &dir, const vqz_dataset_opts &o)
{
    const char *dirs[] = {dir.c_str()};
    vqz_dataset *d = nullptr;
    vqz_status s = vqz_dataset_load(dirs, 1, &o, &d);
    INFO(vqz_last_error());
    REQUIRE(s == VQZ_OK);
    REQUIRE(d != nullptr);
    return d;
}

struct Rgb {
    int w = 0, h = 0;
    std::vector<uint8_t> p; // [h][w][3]
    uint8_t at(int x, int y, int c) const { return p[((size_t)y * w + x) * 3 + c]; }
};

Rgb read_rgb(const std::string &path)
{
    vqz_image *img = nullptr;
    REQUIRE(vqz_image_read_file(path.c_str(), &img) == VQZ_OK);
    REQUIRE(img->channels == 3);
    REQUIRE(img->bit_depth == 8);
    Rgb r;
    r.w = img->width;
    r.h = img->height;
    r.p.assign(img->samples, img->samples + (size_t)r.w * r.h * 3);
    vqz_image_free(img);
    return r;
}

// The 2x2 box filter of the cache, written out plainly.
Rgb halve(const Rgb &a)
{
    Rgb b;
    b.w = a.w / 2;
    b.h = a.h / 2;
    b.p.resize((size_t)b.w * b.h * 3);
    for (int y = 0; y < b.h; y++)
        for (int x = 0; x < b.w; x++)
            for (int c = 0; c < 3; c++) {
                int s = a.at(2 * x, 2 * y, c) + a.at(2 * x + 1, 2 * y, c) + a.at(2 * x, 2 * y + 1, c) +
                        a.at(2 * x + 1, 2 * y + 1, c);
                b.p[((size_t)y * b.w + x) * 3 + c] = (uint8_t)((s + 2) / 4);
            }
    return b;
}

// max |crop - (region of img at x0, y0) / 127.5 - 1| over a planar [3][crop][crop] crop.
double crop_err(const float *x, const Rgb &img, int x0, int y0, int crop)
{
    double e = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < crop; y++)
            for (int i = 0; i < crop; i++) {
                double want = img.at(x0 + i, y0 + y, c) / 127.5 - 1.0;
                e = std::max(e, std::fabs(x[((size_t)c * crop + y) * crop + i] - want));
            }
    return e;
}

// Where a crop (as 8-bit levels, planar) occurs in img: 0 not found, 1 as is, 2 mirrored left-right.
int find_crop(const std::vector<uint8_t> &q, int crop, const Rgb &img)
{
    size_t plane = (size_t)crop * crop;
    for (int mirror = 0; mirror < 2; mirror++)
        for (int y0 = 0; y0 + crop <= img.h; y0++)
            for (int x0 = 0; x0 + crop <= img.w; x0++) {
                bool ok = true;
                for (int y = 0; y < crop && ok; y++)
                    for (int i = 0; i < crop && ok; i++) {
                        int sx = x0 + (mirror ? crop - 1 - i : i);
                        for (int c = 0; c < 3 && ok; c++)
                            ok = q[c * plane + (size_t)y * crop + i] == img.at(sx, y0 + y, c);
                    }
                if (ok)
                    return 1 + mirror;
            }
    return 0;
}

// The crop as 8-bit levels; false when a value is not exactly one of the 256 levels p / 127.5 - 1.
bool to_levels(const float *x, size_t n, std::vector<uint8_t> &q)
{
    q.resize(n);
    for (size_t i = 0; i < n; i++) {
        long p = std::lround((x[i] + 1.0f) * 127.5f);
        if (p < 0 || p > 255 || x[i] != (float)p / 127.5f - 1.0f)
            return false;
        q[i] = (uint8_t)p;
    }
    return true;
}

std::vector<float> read_mono_pcm(const std::string &path, int *rate)
{
    vqz_audio *a = nullptr;
    REQUIRE(vqz_audio_read_all(path.c_str(), &a) == VQZ_OK);
    int64_t n = a->info.frames;
    std::vector<float> m((size_t)n);
    for (int64_t i = 0; i < n; i++) {
        float s = 0;
        for (int c = 0; c < a->info.channels; c++)
            s += a->data[(size_t)c * n + i];
        m[(size_t)i] = s / (float)a->info.channels;
    }
    *rate = a->info.sample_rate;
    vqz_audio_free(a);
    return m;
}

struct Placement {
    double g = 0;  // gain, 0 when the clip was not found
    int64_t p = 0; // clip[j] = g * src[j + p]
};

// Finds clip = g * src placed at offset p (clip[j] = g * src[j + p], silence outside src).
Placement find_clip(const float *clip, int crop, const std::vector<float> &src)
{
    int64_t f = (int64_t)src.size();
    int j0 = 0;
    for (int j = 1; j < crop; j++)
        if (std::fabs(clip[j]) > std::fabs(clip[j0]))
            j0 = j;
    Placement out;
    if (clip[j0] == 0.0f)
        return out;
    auto fits = [&](int64_t p, double g, int lo, int hi) {
        for (int j = std::max(lo, 0); j < std::min(hi, crop); j++) {
            int64_t t = j + p;
            double want = (t >= 0 && t < f) ? g * src[(size_t)t] : 0.0;
            if (std::fabs(clip[j] - want) > 2e-6)
                return false;
        }
        return true;
    };
    for (int64_t p = std::min<int64_t>(0, f - crop); p <= std::max<int64_t>(0, f - crop); p++) {
        int64_t t0 = j0 + p;
        if (t0 < 0 || t0 >= f || src[(size_t)t0] == 0.0f)
            continue;
        double g = (double)clip[j0] / src[(size_t)t0];
        // the neighbourhood of the loudest sample first, then the whole clip
        if (g > 0 && fits(p, g, j0 - 32, j0 + 32) && fits(p, g, 0, crop)) {
            out.g = g;
            out.p = p;
            return out;
        }
    }
    return out;
}

// The two sample photographs, the two recordings, a corrupt file of each kind and a text file, over three
// folder levels; sub/again.png links to the same photo as coffee.png.
void make_mixed_tree(const Tree &t)
{
    t.dir("sub");
    t.dir("sub/deeper");
    t.link(sample("images/coffee.png"), "coffee.png");
    t.link(sample("images/chelsea.png"), "sub/chelsea.PNG");
    t.link(sample("images/coffee.png"), "sub/again.png");
    t.link(sample("audio/speech-demo-thanks.wav"), "sub/speech.wav");
    t.link(sample("audio/music-electric-guitar.ogg"), "sub/deeper/guitar.ogg");
    t.write("notes.txt", "not media\n");
    t.write("broken.png", slurp(sample("images/coffee.png")).substr(0, 300));
    t.write("sub/deeper/bad.flac", "fLaC but not really a FLAC stream");
}

} // namespace

TEST_CASE("dataset: folders are scanned recursively, links counted once, corrupt files skipped and logged",
          "[dataset]")
{
    Tree t;
    make_mixed_tree(t);

    Log log;
    vqz_dataset_opts o = image_opts(&log);
    // the same folder twice must not duplicate anything
    std::string second = t.path + "/";
    const char *dirs[] = {t.path.c_str(), second.c_str()};
    vqz_dataset *d = nullptr;
    REQUIRE(vqz_dataset_load(dirs, 2, &o, &d) == VQZ_OK);
    REQUIRE(vqz_dataset_count(d) == 2);
    REQUIRE(vqz_dataset_skipped(d) == 1);
    REQUIRE(vqz_dataset_amount(d) == Approx((600.0 * 400 + 451.0 * 300) / 1e6).epsilon(1e-12));
    REQUIRE(std::string(vqz_dataset_path(d, 0)) == t.at("coffee.png"));
    REQUIRE(std::string(vqz_dataset_path(d, 1)) == t.at("sub/chelsea.PNG"));
    REQUIRE(vqz_dataset_path(d, 2) == nullptr);
    REQUIRE(vqz_dataset_path(d, -1) == nullptr);
    vqz_dataset_free(d);

    REQUIRE(log.count_with("broken.png") == 1);
    for (auto &l : log.lines)
        if (l.find("broken.png") != std::string::npos)
            REQUIRE(l.rfind("skipping " + t.at("broken.png"), 0) == 0);
    REQUIRE(log.count_with("notes.txt") == 0);
    REQUIRE(log.count_with(".wav") == 0);
    REQUIRE(!log.lines.empty());
    REQUIRE(log.lines.back().rfind("loaded 2 files (0.38 MP), skipped 1", 0) == 0);

    // audio from the same tree: the WAV at the model's rate and the stereo Ogg Vorbis at 44.1 kHz
    Log alog;
    vqz_dataset_opts ao = audio_opts(16000, &alog);
    d = load(t.path, ao);
    REQUIRE(vqz_dataset_count(d) == 2);
    REQUIRE(vqz_dataset_skipped(d) == 1);
    REQUIRE(std::string(vqz_dataset_path(d, 0)) == t.at("sub/deeper/guitar.ogg"));
    REQUIRE(std::string(vqz_dataset_path(d, 1)) == t.at("sub/speech.wav"));
    int rate_s = 0, rate_m = 0;
    size_t n_speech = read_mono_pcm(t.at("sub/speech.wav"), &rate_s).size();
    size_t n_music = read_mono_pcm(t.at("sub/deeper/guitar.ogg"), &rate_m).size();
    REQUIRE(rate_s == 16000);
    REQUIRE(rate_m == 44100);
    double seconds = (double)(n_speech + vqz_resample_length(n_music, 44100, 16000)) / 16000;
    REQUIRE(vqz_dataset_amount(d) == Approx(seconds).epsilon(1e-12));
    REQUIRE(seconds > 14.9);
    REQUIRE(seconds < 15.1);
    REQUIRE(alog.count_with("bad.flac") == 1);
    REQUIRE(alog.lines.back().rfind("loaded 2 files (14.", 0) == 0);
    vqz_dataset_free(d);

    // A WAV cut short (its header declares more data) is kept with the frames present, and said so.
    t.write("sub/cut.wav", slurp(t.at("sub/speech.wav")).substr(0, 44 + 2 * 8000));
    alog.lines.clear();
    d = load(t.path, ao);
    REQUIRE(vqz_dataset_count(d) == 3);
    REQUIRE(vqz_dataset_skipped(d) == 1);
    REQUIRE(vqz_dataset_amount(d) == Approx(seconds + 0.5).epsilon(1e-12));
    REQUIRE(alog.count_with("cut.wav") == 1);
    REQUIRE(alog.count_with("truncated") == 1);
    vqz_dataset_free(d);
}

TEST_CASE("dataset: load errors name the folder; bad arguments are refused", "[dataset]")
{
    Tree t;
    t.dir("empty");
    t.write("empty/notes.txt", "nothing here\n");
    t.write("empty/broken.png", "\x89PNG\r\n\x1a\n garbage");
    Log log;
    vqz_dataset_opts o = image_opts(&log);
    vqz_dataset *d = reinterpret_cast<vqz_dataset *>(1);

    std::string missing = t.at("missing");
    const char *dirs[] = {missing.c_str()};
    REQUIRE(vqz_dataset_load(dirs, 1, &o, &d) == VQZ_ERR_IO);
    REQUIRE(d == nullptr);
    REQUIRE(std::string(vqz_last_error()).find(missing) != std::string::npos);

    std::string empty = t.at("empty");
    dirs[0] = empty.c_str();
    REQUIRE(vqz_dataset_load(dirs, 1, &o, &d) == VQZ_ERR_NOT_FOUND);
    REQUIRE(d == nullptr);
    REQUIRE(std::string(vqz_last_error()).find(empty) != std::string::npos);
    REQUIRE(log.count_with("broken.png") == 1);

    vqz_dataset_opts bad = o;
    bad.kind = (vqz_data_kind)3;
    REQUIRE(vqz_dataset_load(dirs, 1, &bad, &d) == VQZ_ERR_INVALID_ARG);
    bad = audio_opts(0);
    REQUIRE(vqz_dataset_load(dirs, 1, &bad, &d) == VQZ_ERR_INVALID_ARG);
    REQUIRE(vqz_dataset_load(dirs, 0, &o, &d) == VQZ_ERR_INVALID_ARG);
    REQUIRE(vqz_dataset_load(nullptr, 1, &o, &d) == VQZ_ERR_INVALID_ARG);
    REQUIRE(vqz_dataset_load(dirs, 1, nullptr, &d) == VQZ_ERR_INVALID_ARG);
    vqz_dataset_free(nullptr);
}

TEST_CASE("dataset: fixed crops are the central pixels of the files", "[dataset]")
{
    Tree t;
    make_mixed_tree(t);
    vqz_dataset *d = load(t.path, image_opts());
    Rgb coffee = read_rgb(sample("images/coffee.png"));
    Rgb chelsea = read_rgb(sample("images/chelsea.png"));

    std::vector<float> x(3 * 300 * 300);
    REQUIRE(vqz_dataset_fixed(d, 0, 64, x.data()) == VQZ_OK);
    REQUIRE(crop_err(x.data(), coffee, (600 - 64) / 2, (400 - 64) / 2, 64) < 1e-6);
    // the whole height of the cat photo, odd margins
    REQUIRE(vqz_dataset_fixed(d, 1, 300, x.data()) == VQZ_OK);
    REQUIRE(crop_err(x.data(), chelsea, (451 - 300) / 2, 0, 300) < 1e-6);
    REQUIRE(crop_err(x.data(), chelsea, (451 - 300) / 2 + 1, 0, 300) > 0.01);

    REQUIRE(vqz_dataset_fixed(d, 1, 301, x.data()) == VQZ_ERR_SHAPE);
    REQUIRE(std::string(vqz_last_error()).find("chelsea.PNG") != std::string::npos);
    REQUIRE(vqz_dataset_fixed(d, 2, 8, x.data()) == VQZ_ERR_INVALID_ARG);
    REQUIRE(vqz_dataset_fixed(d, 0, 0, x.data()) == VQZ_ERR_INVALID_ARG);
    vqz_dataset_free(d);
}

TEST_CASE("dataset: large images are halved with a 2x2 box filter; small ones skipped", "[dataset]")
{
    Tree t;
    make_mixed_tree(t);
    Rgb coffee = halve(read_rgb(sample("images/coffee.png")));   // 600x400 -> 300x200
    Rgb chelsea = halve(read_rgb(sample("images/chelsea.png"))); // 451x300 -> 225x150, last column dropped
    REQUIRE(coffee.w == 300);
    REQUIRE(chelsea.w == 225);

    Log log;
    vqz_dataset_opts o = image_opts(&log);
    o.max_pixels = 60000; // the coffee photo lands exactly on it after one halving
    vqz_dataset *d = load(t.path, o);
    REQUIRE(vqz_dataset_count(d) == 2);
    REQUIRE(vqz_dataset_amount(d) == Approx((300.0 * 200 + 225.0 * 150) / 1e6).epsilon(1e-12));
    std::vector<float> x(3 * 200 * 200);
    REQUIRE(vqz_dataset_fixed(d, 0, 200, x.data()) == VQZ_OK);
    REQUIRE(crop_err(x.data(), coffee, 50, 0, 200) < 1e-6);
    REQUIRE(vqz_dataset_fixed(d, 0, 201, x.data()) == VQZ_ERR_SHAPE);
    REQUIRE(vqz_dataset_fixed(d, 1, 150, x.data()) == VQZ_OK);
    REQUIRE(crop_err(x.data(), chelsea, 37, 0, 150) < 1e-6);
    REQUIRE(vqz_dataset_fixed(d, 1, 151, x.data()) == VQZ_ERR_SHAPE);
    vqz_dataset_free(d);

    // twice as many halvings for a budget a quarter as large
    o.max_pixels = 59999;
    d = load(t.path, o);
    REQUIRE(vqz_dataset_amount(d) == Approx((150.0 * 100 + 225.0 * 150) / 1e6).epsilon(1e-12));
    vqz_dataset_free(d);

    o.max_pixels = 60000;
    o.min_side = 160;
    log.lines.clear();
    d = load(t.path, o);
    REQUIRE(vqz_dataset_count(d) == 1);
    REQUIRE(vqz_dataset_skipped(d) == 2);
    REQUIRE(std::string(vqz_dataset_path(d, 0)) == t.at("coffee.png"));
    REQUIRE(log.count_with("chelsea.PNG") == 1);
    REQUIRE(log.count_with("225x150") == 1);
    vqz_dataset_free(d);
}

TEST_CASE("dataset: 16-bit grey images with alpha are cached as rounded 8-bit grey RGB", "[dataset]")
{
    // A 16-bit grey + alpha picture made from the photo's red and green samples (every 16-bit level
    // pattern, not only multiples of 257).
    Rgb src = read_rgb(sample("images/coffee.png"));
    vqz_image *img = nullptr;
    REQUIRE(vqz_image_create(src.w, src.h, 2, 16, &img) == VQZ_OK);
    for (int y = 0; y < src.h; y++)
        for (int x = 0; x < src.w; x++) {
            uint16_t *p = img->samples + ((size_t)y * src.w + x) * 2;
            p[0] = (uint16_t)(src.at(x, y, 0) << 8 | src.at(x, y, 1));
            p[1] = (uint16_t)(src.at(x, y, 2) * 257);
        }
    Tree t;
    REQUIRE(vqz_image_write_png(img, t.at("grey16.png").c_str()) == VQZ_OK);
    vqz_dataset *d = load(t.path, image_opts());
    const int crop = 128;
    std::vector<float> x(3 * crop * crop);
    REQUIRE(vqz_dataset_fixed(d, 0, crop, x.data()) == VQZ_OK);
    double e = 0;
    int x0 = (src.w - crop) / 2, y0 = (src.h - crop) / 2;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < crop; y++)
            for (int i = 0; i < crop; i++) {
                uint32_t v = img->samples[((size_t)(y0 + y) * src.w + x0 + i) * 2];
                double want = ((v * 255 + 32767) / 65535) / 127.5 - 1.0;
                e = std::max(e, std::fabs(x[((size_t)c * crop + y) * crop + i] - want));
            }
    REQUIRE(e < 1e-6);
    vqz_image_free(img);
    vqz_dataset_free(d);
}

TEST_CASE("dataset: image batches are reproducible crops of the files, mirrored about half the time",
          "[dataset]")
{
    Tree t;
    make_mixed_tree(t);
    vqz_dataset *d = load(t.path, image_opts());
    Rgb coffee = read_rgb(sample("images/coffee.png"));
    Rgb chelsea = read_rgb(sample("images/chelsea.png"));

    const int n = 32, crop = 24;
    const size_t per = 3 * crop * crop;
    std::vector<float> x(n * per), y(n * per);
    int from_coffee = 0, from_chelsea = 0, mirrored = 0, direct = 0, not_found = 0, bad_levels = 0;
    for (int b = 0; b < 4; b++) {
        REQUIRE(vqz_dataset_batch(d, 11, b, n, crop, x.data()) == VQZ_OK);
        REQUIRE(vqz_dataset_batch(d, 11, b, n, crop, y.data()) == VQZ_OK);
        REQUIRE(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
        for (int k = 0; k < n; k++) {
            std::vector<uint8_t> q;
            if (!to_levels(x.data() + k * per, per, q)) {
                bad_levels++;
                continue;
            }
            int where = find_crop(q, crop, coffee);
            if (where)
                from_coffee++;
            else if ((where = find_crop(q, crop, chelsea)) != 0)
                from_chelsea++;
            else
                not_found++;
            mirrored += where == 2;
            direct += where == 1;
        }
    }
    REQUIRE(bad_levels == 0);
    REQUIRE(not_found == 0);
    REQUIRE(mirrored >= 40); // 128 crops, half expected mirrored
    REQUIRE(direct >= 40);
    // drawn in proportion to pixel count: 240000 / 375300 = 0.64 of the crops from the coffee photo
    double share = (double)from_coffee / (from_coffee + from_chelsea);
    REQUIRE(share > 0.5);
    REQUIRE(share < 0.78);

    // another batch number or seed gives other crops
    REQUIRE(vqz_dataset_batch(d, 11, 0, n, crop, x.data()) == VQZ_OK);
    REQUIRE(vqz_dataset_batch(d, 11, 1, n, crop, y.data()) == VQZ_OK);
    REQUIRE(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) != 0);
    REQUIRE(vqz_dataset_batch(d, 12, 0, n, crop, y.data()) == VQZ_OK);
    REQUIRE(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) != 0);

    // a crop taller than the cat photo only comes from the coffee photo
    std::vector<float> big(2 * 3 * 320 * 320);
    REQUIRE(vqz_dataset_batch(d, 5, 0, 2, 320, big.data()) == VQZ_OK);
    for (int k = 0; k < 2; k++) {
        std::vector<uint8_t> q;
        REQUIRE(to_levels(big.data() + (size_t)k * 3 * 320 * 320, 3 * 320 * 320, q));
        REQUIRE(find_crop(q, 320, coffee) != 0);
    }
    REQUIRE(vqz_dataset_batch(d, 5, 0, 1, 401, big.data()) == VQZ_ERR_SHAPE);
    REQUIRE(vqz_dataset_batch(d, 5, 0, 0, 8, big.data()) == VQZ_ERR_INVALID_ARG);
    vqz_dataset_free(d);
}

TEST_CASE("dataset: audio is cached mono at the model's rate; clips keep gain in [-10, +4] dB and peak <= 0.99",
          "[dataset]")
{
    Tree t;
    make_mixed_tree(t);
    const int rate = 16000;
    vqz_dataset *d = load(t.path, audio_opts(rate));
    REQUIRE(vqz_dataset_count(d) == 2);

    // The cached signals through fixed(): the WAV is already at 16 kHz, mono, 16-bit, so it comes back
    // exactly; the Ogg is mixed to mono, resampled and rounded to 16 bits.
    int r = 0;
    std::vector<float> speech_ref = read_mono_pcm(t.at("sub/speech.wav"), &r);
    std::vector<float> music_in = read_mono_pcm(t.at("sub/deeper/guitar.ogg"), &r);
    std::vector<float> music_ref(vqz_resample_length(music_in.size(), 44100, rate));
    REQUIRE(vqz_resample_all(44100, rate, 1, music_in.data(), music_in.size(), music_ref.data(), music_ref.size()) ==
            VQZ_OK);
    std::vector<std::vector<float>> cached(2);
    const std::vector<float> *refs[2] = {&music_ref, &speech_ref};
    for (int i = 0; i < 2; i++) {
        size_t f = refs[i]->size();
        std::vector<float> x(f + 10, 1.0f);
        REQUIRE(vqz_dataset_fixed(d, i, (int)x.size(), x.data()) == VQZ_OK);
        double e = 0;
        for (size_t j = 0; j < f; j++)
            e = std::max(e, std::fabs((double)x[j] - (*refs[i])[j]));
        for (size_t j = f; j < f + 10; j++)
            REQUIRE(x[j] == 0.0f); // a short file is followed by silence
        INFO("file " << i << " max error " << e);
        REQUIRE(e <= (i == 1 ? 0.0 : 0.5 / 32768 + 1e-7));
        cached[i].assign(x.begin(), x.begin() + (long)f);
    }
    // the middle of the file
    std::vector<float> mid(1000);
    REQUIRE(vqz_dataset_fixed(d, 1, 1000, mid.data()) == VQZ_OK);
    REQUIRE(std::memcmp(mid.data(), cached[1].data() + (cached[1].size() - 1000) / 2, 1000 * sizeof(float)) == 0);

    const int n = 16, crop = 8000;
    std::vector<float> x(n * crop), y(n * crop);
    double gmin = 1e9, gmax = 0;
    int found = 0;
    float peak = 0;
    for (int b = 0; b < 2; b++) {
        REQUIRE(vqz_dataset_batch(d, 3, b, n, crop, x.data()) == VQZ_OK);
        REQUIRE(vqz_dataset_batch(d, 3, b, n, crop, y.data()) == VQZ_OK);
        REQUIRE(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
        for (int k = 0; k < n; k++) {
            const float *c = x.data() + (size_t)k * crop;
            for (int j = 0; j < crop; j++)
                peak = std::max(peak, std::fabs(c[j]));
            double g = find_clip(c, crop, cached[0]).g;
            if (g == 0)
                g = find_clip(c, crop, cached[1]).g;
            if (g > 0) {
                found++;
                gmin = std::min(gmin, g);
                gmax = std::max(gmax, g);
            }
        }
    }
    REQUIRE(vqz_dataset_batch(d, 3, 2, n, crop, y.data()) == VQZ_OK);
    REQUIRE(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) != 0);
    INFO("gain range " << gmin << " .. " << gmax);
    REQUIRE(found == 2 * n);
    REQUIRE(peak <= 0.99f);
    REQUIRE(gmin >= std::pow(10.0, -10.0 / 20) * (1 - 1e-5));
    REQUIRE(gmax <= std::pow(10.0, 4.0 / 20) * (1 + 1e-5));
    REQUIRE(gmax / gmin > 2.0); // the gains do spread over the range

    // Clips longer than both files hold a whole file at a random offset in silence, so they contain its
    // loudest sample: the larger gains have to be reduced to keep the peak at 0.99.
    const int lcrop = (int)cached[0].size() + 1000;
    const int ln = 96;
    float src_peak[2] = {0, 0};
    for (int i = 0; i < 2; i++)
        for (float v : cached[i])
            src_peak[i] = std::max(src_peak[i], std::fabs(v));
    std::vector<float> l((size_t)ln * lcrop);
    REQUIRE(vqz_dataset_batch(d, 4, 0, ln, lcrop, l.data()) == VQZ_OK);
    int limited = 0, whole = 0, bad = 0;
    std::set<int64_t> offsets[2];
    for (int k = 0; k < ln; k++) {
        const float *c = l.data() + (size_t)k * lcrop;
        float pk = 0;
        for (int j = 0; j < lcrop; j++)
            pk = std::max(pk, std::fabs(c[j]));
        for (int i = 0; i < 2; i++) {
            Placement pl = find_clip(c, lcrop, cached[i]);
            if (pl.g == 0)
                continue;
            whole++;
            offsets[i].insert(pl.p);
            if (pk > 0.99f)
                bad++;
            if (pk >= 0.99f * (1 - 1e-6f)) {
                limited++;
                // reduced to exactly what the peak allows, from a draw that would have gone past it
                if (std::fabs(pl.g * src_peak[i] - 0.99) > 1e-5 || 0.99 / src_peak[i] > std::pow(10.0, 0.2))
                    bad++;
            } else if (pl.g < std::pow(10.0, -0.5) * (1 - 1e-5) || pl.g > std::pow(10.0, 0.2) * (1 + 1e-5)) {
                bad++;
            }
            break;
        }
    }
    INFO(whole << " whole-file clips, " << limited << " limited, offsets " << offsets[0].size() << " and "
                << offsets[1].size());
    REQUIRE(whole == ln);
    REQUIRE(bad == 0);
    REQUIRE(limited >= 1);
    REQUIRE(offsets[0].size() >= 2);
    REQUIRE(offsets[1].size() >= 2);
    vqz_dataset_free(d);
}

TEST_CASE("dataset: silent audio clips are redrawn", "[dataset]")
{
    Tree t;
    make_mixed_tree(t);
    const int rate = 16000, n = 512, crop = 160;
    vqz_dataset *d = load(t.path, audio_opts(rate));
    int r = 0;
    std::vector<float> speech = read_mono_pcm(t.at("sub/speech.wav"), &r);
    size_t music_frames = (size_t)std::lround(vqz_dataset_amount(d) * rate) - speech.size();

    // The speech file has pauses below -60 dBFS: without redrawing, this many clips would be quiet.
    size_t quiet_windows = 0, windows = speech.size() - crop + 1;
    for (size_t s = 0; s < windows; s++) {
        double e = 0;
        for (int j = 0; j < crop; j++)
            e += (double)speech[s + j] * speech[s + j];
        quiet_windows += std::sqrt(e / crop) < 1e-3;
    }
    double expected_quiet = n * (double)speech.size() / (speech.size() + music_frames) * quiet_windows / windows;
    INFO("quiet clips expected without redrawing: " << expected_quiet);
    REQUIRE(expected_quiet > 10);

    std::vector<float> x((size_t)n * crop);
    REQUIRE(vqz_dataset_batch(d, 1, 0, n, crop, x.data()) == VQZ_OK);
    int quiet = 0;
    float peak = 0;
    for (int k = 0; k < n; k++) {
        double e = 0;
        for (int j = 0; j < crop; j++) {
            float v = x[(size_t)k * crop + j];
            e += (double)v * v;
            peak = std::max(peak, std::fabs(v));
        }
        // -70 dBFS after a gain of at least -10 dB means below -60 dBFS before it
        quiet += std::sqrt(e / crop) < std::pow(10.0, -70.0 / 20);
    }
    REQUIRE(quiet == 0);
    REQUIRE(peak <= 0.99f);
    vqz_dataset_free(d);
}

TEST_CASE("dataset: the files kept under a cache budget do not depend on the thread count", "[dataset]")
{
    Tree t;
    t.dir("more");
    std::string coffee = slurp(sample("images/coffee.png")), chelsea = slurp(sample("images/chelsea.png"));
    for (int i = 0; i < 6; i++) {
        t.write("a" + std::to_string(i) + ".png", coffee); // copies: distinct files
        t.write("more/b" + std::to_string(i) + ".png", chelsea);
    }
    const int64_t budget = 3000000; // 12 files hold 6 * 720000 + 6 * 405900 bytes
    std::set<std::vector<std::string>> sets;
    for (uint64_t seed = 0; seed < 3; seed++) {
        std::vector<std::string> paths[2];
        std::vector<float> batch[2];
        for (int threads = 1; threads <= 2; threads++) {
            Log log;
            vqz_dataset_opts o = image_opts(&log);
            o.threads = threads;
            o.cache_bytes = budget;
            o.seed = seed;
            vqz_dataset *d = load(t.path, o);
            REQUIRE(vqz_dataset_count(d) < 12);
            REQUIRE(vqz_dataset_count(d) >= 4);
            REQUIRE(vqz_dataset_skipped(d) == 0);
            REQUIRE(vqz_dataset_amount(d) * 1e6 * 3 <= budget);
            REQUIRE(log.count_with("cache limit") == 1);
            for (int64_t i = 0; i < vqz_dataset_count(d); i++) {
                paths[threads - 1].push_back(vqz_dataset_path(d, i));
                if (i > 0)
                    REQUIRE(paths[threads - 1][i - 1] < paths[threads - 1][i]);
            }
            batch[threads - 1].resize(8 * 3 * 32 * 32);
            REQUIRE(vqz_dataset_batch(d, 7, 3, 8, 32, batch[threads - 1].data()) == VQZ_OK);
            vqz_dataset_free(d);
        }
        REQUIRE(paths[0] == paths[1]);
        REQUIRE(batch[0] == batch[1]);
        sets.insert(paths[0]);
    }
    REQUIRE(sets.size() >= 2); // the seed chooses which files
}

TEST_CASE("dataset: the loader thread returns the batches of vqz_dataset_batch", "[dataset]")
{
    Tree t;
    make_mixed_tree(t);
    vqz_dataset *d = load(t.path, image_opts());
    const int n = 4, crop = 32;
    const size_t floats = (size_t)n * 3 * crop * crop;
    std::vector<float> want(floats);

    vqz_loader *l = nullptr;
    REQUIRE(vqz_loader_start(d, 9, 5, n, crop, &l) == VQZ_OK);
    const float *prev = nullptr;
    for (int k = 0; k < 4; k++) {
        const float *x = nullptr;
        REQUIRE(vqz_loader_next(l, &x) == VQZ_OK);
        REQUIRE(x != nullptr);
        REQUIRE(x != prev); // double buffered
        REQUIRE(vqz_dataset_batch(d, 9, 5 + k, n, crop, want.data()) == VQZ_OK);
        REQUIRE(std::memcmp(x, want.data(), floats * sizeof(float)) == 0);
        prev = x;
    }
    vqz_loader_stop(l);

    // stopped before anything was taken
    REQUIRE(vqz_loader_start(d, 9, 0, n, crop, &l) == VQZ_OK);
    vqz_loader_stop(l);
    vqz_loader_stop(nullptr);

    // the batch function's error comes out of next(), every time
    REQUIRE(vqz_loader_start(d, 9, 0, 1, 401, &l) == VQZ_OK);
    const float *x = reinterpret_cast<const float *>(1);
    REQUIRE(vqz_loader_next(l, &x) == VQZ_ERR_SHAPE);
    REQUIRE(x == nullptr);
    REQUIRE(std::string(vqz_last_error()).find("401") != std::string::npos);
    REQUIRE(vqz_loader_next(l, &x) == VQZ_ERR_SHAPE);
    vqz_loader_stop(l);
    vqz_dataset_free(d);

    // audio too
    d = load(t.path, audio_opts(16000));
    std::vector<float> wa(2 * 1000);
    REQUIRE(vqz_loader_start(d, 2, 0, 2, 1000, &l) == VQZ_OK);
    for (int k = 0; k < 3; k++) {
        REQUIRE(vqz_loader_next(l, &x) == VQZ_OK);
        REQUIRE(vqz_dataset_batch(d, 2, k, 2, 1000, wa.data()) == VQZ_OK);
        REQUIRE(std::memcmp(x, wa.data(), wa.size() * sizeof(float)) == 0);
    }
    vqz_loader_stop(l);
    vqz_dataset_free(d);
}
