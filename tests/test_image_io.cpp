// test_image_io.cpp — PNG/JPEG reading and PNG writing (codec/image_io): every PNG flavour written here with
// libpng and read back exactly, round trips that keep the source's kind of file, planar conversion, alpha,
// JPEG quality, damaged inputs and atomic outputs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/resource.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <png.h>
#include <jpeglib.h>

#include "testutil.h"

extern "C" {
#include "codec/image_io.h"
#include "format/crc32.h"
}

namespace {

// ---------------------------------------------------------------- a reference PNG writer

int raw_channels(int ct)
{
    switch (ct) {
    case PNG_COLOR_TYPE_GRAY: return 1;
    case PNG_COLOR_TYPE_PALETTE: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    }
    return 0;
}

// A PNG to write: pixel values as stored (palette indices, grey levels at the source depth, ...).
struct Spec {
    int w = 1, h = 1, ct = PNG_COLOR_TYPE_GRAY, depth = 8;
    bool interlace = false;
    std::vector<uint16_t> raw; // h * w * raw_channels(ct)
    int npal = 0;
    uint8_t pal[256][4] = {};
    int nalpha = 0;
    bool key = false;
    uint16_t keyv[3] = {0, 0, 0};
    int srgb = -1;
    int gamma = 0;
};

std::string spec_name(const Spec &s)
{
    char b[160];
    std::snprintf(b, sizeof b, "ct=%d depth=%d %dx%d%s%s%s npal=%d nalpha=%d", s.ct, s.depth, s.w, s.h,
                  s.interlace ? " interlaced" : "", s.key ? " key" : "", s.srgb >= 0 ? " sRGB" : "", s.npal, s.nalpha);
    return b;
}

void collect_cb(png_structp png, png_bytep d, size_t n)
{
    auto *out = static_cast<std::vector<uint8_t> *>(png_get_io_ptr(png));
    out->insert(out->end(), d, d + n);
}
void flush_cb(png_structp) {}

// Packs the rows by hand (MSB first below 8 bits, big-endian at 16) so the reference does not share the
// code under test's use of png_set_packing.
std::vector<uint8_t> pack_rows(const Spec &s, size_t *rowbytes)
{
    int nc = raw_channels(s.ct);
    size_t bits = (size_t)s.w * nc * s.depth;
    *rowbytes = (bits + 7) / 8;
    std::vector<uint8_t> out(*rowbytes * s.h, 0);
    for (int y = 0; y < s.h; y++) {
        uint8_t *row = out.data() + *rowbytes * y;
        for (int i = 0; i < s.w * nc; i++) {
            uint16_t v = s.raw[(size_t)y * s.w * nc + i];
            if (s.depth == 16) {
                row[2 * i] = (uint8_t)(v >> 8);
                row[2 * i + 1] = (uint8_t)v;
            } else if (s.depth == 8) {
                row[i] = (uint8_t)v;
            } else {
                size_t bit = (size_t)i * s.depth;
                row[bit / 8] |= (uint8_t)(v << (8 - s.depth - bit % 8));
            }
        }
    }
    return out;
}

// No C++ object is created between setjmp and the end of the function.
bool write_png_raw(const Spec &s, png_bytep *rows, std::vector<uint8_t> *out)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return false;
    }
    png_set_write_fn(png, out, collect_cb, flush_cb);
    png_set_IHDR(png, info, s.w, s.h, s.depth, s.ct, s.interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s.ct == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[256];
        png_byte alpha[256];
        for (int i = 0; i < s.npal; i++) {
            pal[i].red = s.pal[i][0];
            pal[i].green = s.pal[i][1];
            pal[i].blue = s.pal[i][2];
            alpha[i] = s.pal[i][3];
        }
        png_set_PLTE(png, info, pal, s.npal);
        if (s.nalpha > 0)
            png_set_tRNS(png, info, alpha, s.nalpha, nullptr);
    } else if (s.key) {
        png_color_16 k;
        std::memset(&k, 0, sizeof k);
        k.gray = s.keyv[0];
        k.red = s.keyv[0];
        k.green = s.keyv[1];
        k.blue = s.keyv[2];
        png_set_tRNS(png, info, nullptr, 1, &k);
    }
    if (s.srgb >= 0)
        png_set_sRGB(png, info, s.srgb);
    else if (s.gamma > 0)
        png_set_gAMA_fixed(png, info, s.gamma);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    return true;
}

std::vector<uint8_t> make_png(const Spec &s)
{
    size_t rowbytes = 0;
    std::vector<uint8_t> packed = pack_rows(s, &rowbytes);
    std::vector<png_bytep> rows(s.h);
    for (int y = 0; y < s.h; y++)
        rows[y] = packed.data() + rowbytes * y;
    std::vector<uint8_t> out;
    REQUIRE(write_png_raw(s, rows.data(), &out));
    return out;
}

// Random content: levels at the source depth, a random palette, and a key that some pixels really match.
Spec random_spec(vqz_rng *r, int ct, int depth, int w, int h, bool interlace, bool transparency)
{
    Spec s;
    s.w = w;
    s.h = h;
    s.ct = ct;
    s.depth = depth;
    s.interlace = interlace;
    int nc = raw_channels(ct);
    uint32_t levels = 1u << depth;
    if (ct == PNG_COLOR_TYPE_PALETTE) {
        s.npal = 1 + (int)vqz_rng_below(r, levels);
        for (int i = 0; i < s.npal; i++)
            for (int c = 0; c < 4; c++)
                s.pal[i][c] = (uint8_t)vqz_rng_below(r, 256);
        for (int i = 0; i < s.npal; i++)
            if (!transparency)
                s.pal[i][3] = 255;
        s.nalpha = transparency ? 1 + (int)vqz_rng_below(r, s.npal) : 0;
        for (int i = s.nalpha; i < s.npal; i++)
            s.pal[i][3] = 255;
        levels = s.npal;
    }
    s.raw.resize((size_t)w * h * nc);
    for (auto &v : s.raw)
        v = (uint16_t)vqz_rng_below(r, levels);
    if (transparency && ct != PNG_COLOR_TYPE_PALETTE) {
        s.key = true;
        for (int c = 0; c < nc; c++)
            s.keyv[c] = s.raw[c]; // the first pixel matches
        for (size_t p = 1; p < (size_t)w * h; p++)
            if (vqz_rng_below(r, 4) == 0)
                for (int c = 0; c < nc; c++)
                    s.raw[p * nc + c] = s.keyv[c];
    }
    return s;
}

// What the reader must produce, computed from the spec alone.
struct Expected {
    int channels, bit_depth;
    std::vector<uint16_t> samples;
};

Expected expand(const Spec &s)
{
    Expected e;
    int nc = raw_channels(s.ct);
    e.bit_depth = s.depth == 16 ? 16 : 8;
    uint32_t max = (1u << e.bit_depth) - 1;
    size_t np = (size_t)s.w * s.h;
    if (s.ct == PNG_COLOR_TYPE_PALETTE) {
        e.channels = s.nalpha > 0 ? 4 : 3;
        for (size_t p = 0; p < np; p++)
            for (int c = 0; c < e.channels; c++)
                e.samples.push_back(s.pal[s.raw[p]][c]);
        return e;
    }
    e.channels = nc + (s.key ? 1 : 0);
    uint32_t scale = s.depth < 8 ? 255 / ((1u << s.depth) - 1) : 1;
    for (size_t p = 0; p < np; p++) {
        bool match = s.key;
        for (int c = 0; c < nc; c++) {
            uint16_t v = s.raw[p * nc + c];
            e.samples.push_back((uint16_t)(v * scale));
            if (s.key && v != s.keyv[c])
                match = false;
        }
        if (s.key)
            e.samples.push_back(match ? 0 : (uint16_t)max);
    }
    return e;
}

struct ImagePtr {
    vqz_image *p = nullptr;
    ~ImagePtr() { vqz_image_free(p); }
};

std::vector<uint16_t> samples_of(const vqz_image *img)
{
    return std::vector<uint16_t>(img->samples, img->samples + (size_t)img->width * img->height * img->channels);
}

std::string describe(const vqz_image *img)
{
    char b[200];
    vqz_image_describe(img, b, sizeof b);
    return b;
}

void require_same_description(const vqz_image *a, const vqz_image *b)
{
    REQUIRE(a->width == b->width);
    REQUIRE(a->height == b->height);
    REQUIRE(a->channels == b->channels);
    REQUIRE(a->bit_depth == b->bit_depth);
    REQUIRE(a->color_type == b->color_type);
    REQUIRE(a->source_bit_depth == b->source_bit_depth);
    REQUIRE(a->interlaced == b->interlaced);
    REQUIRE(a->palette_size == b->palette_size);
    REQUIRE(a->palette_alpha_size == b->palette_alpha_size);
    REQUIRE(std::memcmp(a->palette, b->palette, sizeof a->palette) == 0);
    REQUIRE(a->has_color_key == b->has_color_key);
    REQUIRE(std::memcmp(a->color_key, b->color_key, sizeof a->color_key) == 0);
    REQUIRE(a->srgb_intent == b->srgb_intent);
    REQUIRE(a->gamma == b->gamma);
}

// Every flavour the reader must handle: colour type, depth, with tRNS.
struct Flavour {
    int ct, depth;
    bool transparency;
};
const Flavour k_flavours[] = {
    {PNG_COLOR_TYPE_GRAY, 1, false},      {PNG_COLOR_TYPE_GRAY, 2, false},      {PNG_COLOR_TYPE_GRAY, 4, false},
    {PNG_COLOR_TYPE_GRAY, 8, false},      {PNG_COLOR_TYPE_GRAY, 16, false},     {PNG_COLOR_TYPE_GRAY, 1, true},
    {PNG_COLOR_TYPE_GRAY, 2, true},       {PNG_COLOR_TYPE_GRAY, 4, true},       {PNG_COLOR_TYPE_GRAY, 8, true},
    {PNG_COLOR_TYPE_GRAY, 16, true},      {PNG_COLOR_TYPE_GRAY_ALPHA, 8, false}, {PNG_COLOR_TYPE_GRAY_ALPHA, 16, false},
    {PNG_COLOR_TYPE_PALETTE, 1, false},   {PNG_COLOR_TYPE_PALETTE, 2, false},   {PNG_COLOR_TYPE_PALETTE, 4, false},
    {PNG_COLOR_TYPE_PALETTE, 8, false},   {PNG_COLOR_TYPE_PALETTE, 1, true},    {PNG_COLOR_TYPE_PALETTE, 2, true},
    {PNG_COLOR_TYPE_PALETTE, 4, true},    {PNG_COLOR_TYPE_PALETTE, 8, true},    {PNG_COLOR_TYPE_RGB, 8, false},
    {PNG_COLOR_TYPE_RGB, 16, false},      {PNG_COLOR_TYPE_RGB, 8, true},        {PNG_COLOR_TYPE_RGB, 16, true},
    {PNG_COLOR_TYPE_RGB_ALPHA, 8, false}, {PNG_COLOR_TYPE_RGB_ALPHA, 16, false},
};
const int k_sizes[][2] = {{1, 1}, {3, 5}, {17, 9}};

// A valid small PNG to damage.
std::vector<uint8_t> sample_png(int w = 17, int h = 9)
{
    vqz_rng r;
    vqz_rng_seed(&r, 99);
    return make_png(random_spec(&r, PNG_COLOR_TYPE_RGB, 8, w, h, false, false));
}

void write_bytes(const std::string &path, const std::vector<uint8_t> &b)
{
    FILE *f = std::fopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    if (!b.empty())
        REQUIRE(std::fwrite(b.data(), 1, b.size(), f) == b.size());
    std::fclose(f);
}

std::vector<uint8_t> read_bytes(const std::string &path)
{
    std::vector<uint8_t> b;
    FILE *f = std::fopen(path.c_str(), "rb");
    REQUIRE(f != nullptr);
    int c;
    while ((c = std::fgetc(f)) != EOF)
        b.push_back((uint8_t)c);
    std::fclose(f);
    return b;
}

vqz_status read_mem(const std::vector<uint8_t> &b, ImagePtr *img)
{
    return vqz_image_read_memory_named(b.data(), b.size(), "photo.png", &img->p);
}

// ---------------------------------------------------------------- a reference JPEG writer

bool write_jpeg_raw(const uint8_t *pixels, int w, int h, int comps, J_COLOR_SPACE cs, int quality, unsigned char **buf,
                    unsigned long *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, buf, len);
    c.image_width = w;
    c.image_height = h;
    c.input_components = comps;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)c.next_scanline * w * comps);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return true;
}

std::vector<uint8_t> make_jpeg(const std::vector<uint8_t> &pixels, int w, int h, int comps, J_COLOR_SPACE cs,
                               int quality)
{
    unsigned char *buf = nullptr;
    unsigned long len = 0;
    REQUIRE(write_jpeg_raw(pixels.data(), w, h, comps, cs, quality, &buf, &len));
    std::vector<uint8_t> out(buf, buf + len);
    free(buf);
    return out;
}

// A smooth synthetic photo: gradients plus low-frequency waves, as JPEG is meant for.
std::vector<uint8_t> synthetic_photo(int w, int h, int comps)
{
    std::vector<uint8_t> p((size_t)w * h * comps);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comps; c++) {
                double v = 128 + 60 * std::sin(0.11 * x + 0.7 * c) * std::cos(0.07 * y) + 50.0 * (x - w / 2) / w +
                           30.0 * (y - h / 2) / h;
                p[((size_t)y * w + x) * comps + c] = (uint8_t)std::lround(std::fmin(255, std::fmax(0, v)));
            }
    return p;
}

double psnr8(const std::vector<uint8_t> &ref, const vqz_image *img)
{
    double se = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        double d = (double)ref[i] - (double)img->samples[i];
        se += d * d;
    }
    double mse = se / (double)ref.size();
    return 10.0 * std::log10(255.0 * 255.0 / std::fmax(mse, 1e-12));
}

// ---------------------------------------------------------------- crafted chunks

void put_be32(std::vector<uint8_t> &b, uint32_t v)
{
    b.push_back((uint8_t)(v >> 24));
    b.push_back((uint8_t)(v >> 16));
    b.push_back((uint8_t)(v >> 8));
    b.push_back((uint8_t)v);
}

void put_chunk(std::vector<uint8_t> &b, const char *type, const std::vector<uint8_t> &data)
{
    put_be32(b, (uint32_t)data.size());
    std::vector<uint8_t> td(type, type + 4);
    td.insert(td.end(), data.begin(), data.end());
    b.insert(b.end(), td.begin(), td.end());
    put_be32(b, vqz_crc32(td.data(), td.size()));
}

// A PNG whose IHDR declares w x h, followed by a tiny IDAT (a few bytes of a valid zlib stream) and IEND.
std::vector<uint8_t> png_with_ihdr(uint32_t w, uint32_t h, int depth, int ct)
{
    std::vector<uint8_t> b = {137, 80, 78, 71, 13, 10, 26, 10};
    std::vector<uint8_t> ihdr;
    put_be32(ihdr, w);
    put_be32(ihdr, h);
    ihdr.push_back((uint8_t)depth);
    ihdr.push_back((uint8_t)ct);
    ihdr.push_back(0);
    ihdr.push_back(0);
    ihdr.push_back(0);
    put_chunk(b, "IHDR", ihdr);
    put_chunk(b, "IDAT", {0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01}); // zlib of {0, 0}
    put_chunk(b, "IEND", {});
    return b;
}

// Reads png in a child process whose address space may grow by at most 256 MiB: a reader that allocated
// for the declared size before checking it would get VQZ_ERR_NOMEM (or die) instead of VQZ_ERR_LIMIT.
// Returns 0 for VQZ_ERR_LIMIT.
int limit_status_in_child(const std::vector<uint8_t> &png)
{
    if (RUNNING_ON_VALGRIND) {
        // valgrind's own address space cannot live under the cap, and its leak check of a forked child
        // reports the parent's live blocks: check the status in-process (the no-allocation property is
        // covered by the runs outside valgrind)
        vqz_image *img = nullptr;
        vqz_status s = vqz_image_read_memory(png.data(), png.size(), &img);
        vqz_image_free(img);
        return s == VQZ_ERR_LIMIT ? 0 : 3;
    }
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
        long pages = 0;
        FILE *f = std::fopen("/proc/self/statm", "r");
        if (!f || std::fscanf(f, "%ld", &pages) != 1)
            _exit(10);
        std::fclose(f);
        rlim_t cap = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)256 << 20);
        struct rlimit rl = {cap, cap};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(11);
        vqz_image *img = nullptr;
        vqz_status s = vqz_image_read_memory(png.data(), png.size(), &img);
        vqz_image_free(img);
        _exit(s == VQZ_ERR_LIMIT ? 0 : s == VQZ_ERR_NOMEM ? 2 : 3);
    }
    REQUIRE(pid > 0);
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

} // namespace

// ---------------------------------------------------------------- tests

TEST_CASE("every PNG flavour reads back exactly what libpng wrote", "[image]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 2024);
    int cases = 0;
    for (const Flavour &f : k_flavours)
        for (auto &sz : k_sizes)
            for (int il = 0; il < 2; il++) {
                Spec s = random_spec(&r, f.ct, f.depth, sz[0], sz[1], il != 0, f.transparency);
                INFO(spec_name(s));
                std::vector<uint8_t> png = make_png(s);
                ImagePtr img;
                REQUIRE(read_mem(png, &img) == VQZ_OK);
                Expected e = expand(s);
                REQUIRE(img.p->width == s.w);
                REQUIRE(img.p->height == s.h);
                REQUIRE(img.p->channels == e.channels);
                REQUIRE(img.p->bit_depth == e.bit_depth);
                REQUIRE(samples_of(img.p) == e.samples);
                REQUIRE(img.p->source == VQZ_IMAGE_SRC_PNG);
                REQUIRE(img.p->color_type == s.ct);
                REQUIRE(img.p->source_bit_depth == s.depth);
                REQUIRE(img.p->interlaced == (int)s.interlace);
                REQUIRE(img.p->palette_size == s.npal);
                REQUIRE(img.p->palette_alpha_size == s.nalpha);
                for (int i = 0; i < s.npal; i++)
                    for (int c = 0; c < 4; c++)
                        REQUIRE(img.p->palette[i][c] == s.pal[i][c]);
                REQUIRE(img.p->has_color_key == (int)s.key);
                if (s.key)
                    for (int c = 0; c < raw_channels(s.ct); c++)
                        REQUIRE(img.p->color_key[c] == s.keyv[c]);
                REQUIRE(vqz_image_has_alpha(img.p) == (e.channels == 2 || e.channels == 4));
                REQUIRE(img.p->srgb_intent == -1);
                cases++;
            }
    REQUIRE(cases == 26 * 3 * 2);
}

TEST_CASE("every PNG flavour round-trips through the writer with its kind of file", "[image]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 77);
    for (const Flavour &f : k_flavours)
        for (auto &sz : k_sizes)
            for (int il = 0; il < 2; il++) {
                Spec s = random_spec(&r, f.ct, f.depth, sz[0], sz[1], il != 0, f.transparency);
                INFO(spec_name(s));
                ImagePtr a, b;
                REQUIRE(read_mem(make_png(s), &a) == VQZ_OK);
                uint8_t *buf = nullptr;
                size_t len = 0;
                REQUIRE(vqz_image_write_png_memory(a.p, &buf, &len) == VQZ_OK);
                std::vector<uint8_t> out(buf, buf + len);
                free(buf);
                REQUIRE(read_mem(out, &b) == VQZ_OK);
                require_same_description(a.p, b.p);
                REQUIRE(samples_of(a.p) == samples_of(b.p));
            }
}

TEST_CASE("colour chunks are kept: sRGB intent and gAMA", "[image]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 5);
    Spec s = random_spec(&r, PNG_COLOR_TYPE_RGB, 8, 3, 5, false, false);
    s.srgb = 2;
    ImagePtr a, b;
    REQUIRE(read_mem(make_png(s), &a) == VQZ_OK);
    REQUIRE(a.p->srgb_intent == 2);
    REQUIRE(a.p->gamma == 0);
    REQUIRE(contains(describe(a.p), "sRGB"));
    uint8_t *buf = nullptr;
    size_t len = 0;
    REQUIRE(vqz_image_write_png_memory(a.p, &buf, &len) == VQZ_OK);
    REQUIRE(vqz_image_read_memory(buf, len, &b.p) == VQZ_OK);
    free(buf);
    REQUIRE(b.p->srgb_intent == 2);

    Spec g = random_spec(&r, PNG_COLOR_TYPE_GRAY, 16, 3, 5, false, false);
    g.gamma = 45455;
    ImagePtr c, d;
    REQUIRE(read_mem(make_png(g), &c) == VQZ_OK);
    REQUIRE(c.p->srgb_intent == -1);
    REQUIRE(c.p->gamma == 45455);
    REQUIRE(vqz_image_write_png_memory(c.p, &buf, &len) == VQZ_OK);
    REQUIRE(vqz_image_read_memory(buf, len, &d.p) == VQZ_OK);
    free(buf);
    REQUIRE(d.p->gamma == 45455);
    REQUIRE(samples_of(c.p) == samples_of(d.p));
}

TEST_CASE("describe names the source kind", "[image]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 6);
    ImagePtr a, b, c;
    REQUIRE(read_mem(make_png(random_spec(&r, PNG_COLOR_TYPE_RGB, 8, 17, 9, false, false)), &a) == VQZ_OK);
    REQUIRE(describe(a.p) == "PNG 17x9 RGB 8-bit");
    Spec p = random_spec(&r, PNG_COLOR_TYPE_PALETTE, 4, 3, 5, true, true);
    REQUIRE(read_mem(make_png(p), &b) == VQZ_OK);
    char want[160];
    std::snprintf(want, sizeof want, "PNG 3x5 palette 4-bit (%d colours, %d with alpha), interlaced", p.npal, p.nalpha);
    REQUIRE(describe(b.p) == want);
    REQUIRE(read_mem(make_png(random_spec(&r, PNG_COLOR_TYPE_GRAY, 2, 1, 1, false, true)), &c) == VQZ_OK);
    REQUIRE(describe(c.p) == "PNG 1x1 grey 2-bit, colour-key transparency");
    char small[8];
    vqz_image_describe(a.p, small, sizeof small);
    REQUIRE(std::string(small) == "PNG 17x");
}

TEST_CASE("sub-8-bit grey output rounds every 8-bit value to the nearest level", "[image]")
{
    for (int depth : {1, 2, 4}) {
        INFO("depth " << depth);
        Spec s;
        s.w = 256;
        s.h = 1;
        s.ct = PNG_COLOR_TYPE_GRAY;
        s.depth = depth;
        s.raw.assign(256, 0);
        ImagePtr a, b;
        REQUIRE(read_mem(make_png(s), &a) == VQZ_OK);
        for (int v = 0; v < 256; v++)
            a.p->samples[v] = (uint16_t)v;
        uint8_t *buf = nullptr;
        size_t len = 0;
        REQUIRE(vqz_image_write_png_memory(a.p, &buf, &len) == VQZ_OK);
        REQUIRE(vqz_image_read_memory(buf, len, &b.p) == VQZ_OK);
        free(buf);
        REQUIRE(b.p->source_bit_depth == depth);
        int levels = (1 << depth) - 1;
        for (int v = 0; v < 256; v++) {
            int level = (int)std::lround(v * levels / 255.0);
            REQUIRE(b.p->samples[v] == level * (255 / levels));
        }
    }
}

TEST_CASE("palette output maps each pixel to the nearest palette entry", "[image]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 31);
    for (bool alpha : {false, true}) {
        Spec s = random_spec(&r, PNG_COLOR_TYPE_PALETTE, 8, 17, 9, false, alpha);
        ImagePtr a, b;
        REQUIRE(read_mem(make_png(s), &a) == VQZ_OK);
        int ch = a.p->channels;
        std::vector<uint16_t> exact = samples_of(a.p);
        // Half the pixels moved a little off their entry, the rest set to arbitrary colours.
        size_t np = (size_t)s.w * s.h;
        for (size_t p = 0; p < np; p++)
            for (int c = 0; c < ch; c++) {
                int v = a.p->samples[p * ch + c];
                v = p % 2 ? v + (int)vqz_rng_below(&r, 7) - 3 : (int)vqz_rng_below(&r, 256);
                a.p->samples[p * ch + c] = (uint16_t)std::min(255, std::max(0, v));
            }
        uint8_t *buf = nullptr;
        size_t len = 0;
        REQUIRE(vqz_image_write_png_memory(a.p, &buf, &len) == VQZ_OK);
        REQUIRE(vqz_image_read_memory(buf, len, &b.p) == VQZ_OK);
        free(buf);
        REQUIRE(b.p->color_type == PNG_COLOR_TYPE_PALETTE);
        REQUIRE(b.p->palette_size == s.npal);
        for (size_t p = 0; p < np; p++) {
            long best = -1;
            for (int i = 0; i < s.npal; i++) {
                long d = 0;
                for (int c = 0; c < 4; c++) {
                    long pv = c < ch ? a.p->samples[p * ch + c] : 255;
                    d += (pv - s.pal[i][c]) * (pv - s.pal[i][c]);
                }
                if (best < 0 || d < best)
                    best = d;
            }
            long got = 0;
            for (int c = 0; c < 4; c++) {
                long pv = c < ch ? a.p->samples[p * ch + c] : 255;
                long qv = c < ch ? b.p->samples[p * ch + c] : 255;
                got += (pv - qv) * (pv - qv);
            }
            REQUIRE(got == best); // ties may pick either entry, at the same distance
        }
        // Pixels equal to an entry stay exactly that entry.
        std::memcpy(a.p->samples, exact.data(), exact.size() * sizeof(uint16_t));
        ImagePtr c;
        REQUIRE(vqz_image_write_png_memory(a.p, &buf, &len) == VQZ_OK);
        REQUIRE(vqz_image_read_memory(buf, len, &c.p) == VQZ_OK);
        free(buf);
        REQUIRE(samples_of(c.p) == exact);
    }
}

TEST_CASE("colour-key output: transparent pixels take the key, opaque ones never do", "[image]")
{
    for (int depth : {8, 16}) {
        Spec s;
        s.w = 4;
        s.h = 1;
        s.ct = PNG_COLOR_TYPE_RGB;
        s.depth = depth;
        s.key = true;
        s.keyv[0] = 10;
        s.keyv[1] = 20;
        s.keyv[2] = 0;
        s.raw = {10, 20, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
        ImagePtr a, b;
        REQUIRE(read_mem(make_png(s), &a) == VQZ_OK);
        REQUIRE(a.p->channels == 4);
        uint16_t max = depth == 16 ? 65535 : 255;
        std::vector<uint16_t> alpha(4);
        REQUIRE(vqz_image_get_alpha(a.p, alpha.data()) == VQZ_OK);
        REQUIRE(alpha == std::vector<uint16_t>({0, max, max, max}));
        // pixel 1 becomes the key colour but stays opaque; pixel 2 turns transparent.
        uint16_t *px = a.p->samples;
        px[4] = 10, px[5] = 20, px[6] = 0;
        px[11] = 0;
        uint8_t *buf = nullptr;
        size_t len = 0;
        REQUIRE(vqz_image_write_png_memory(a.p, &buf, &len) == VQZ_OK);
        REQUIRE(vqz_image_read_memory(buf, len, &b.p) == VQZ_OK);
        free(buf);
        REQUIRE(b.p->has_color_key == 1);
        std::vector<uint16_t> want = {10, 20, 0, 0, 10, 20, 1, max, 10, 20, 0, 0, 7, 8, 9, max};
        REQUIRE(samples_of(b.p) == want);
    }
    // Grey 1-bit with key 0: an opaque 0 must become 1.
    Spec g;
    g.w = 2;
    g.h = 1;
    g.ct = PNG_COLOR_TYPE_GRAY;
    g.depth = 1;
    g.key = true;
    g.keyv[0] = 0;
    g.raw = {0, 1};
    ImagePtr a, b;
    REQUIRE(read_mem(make_png(g), &a) == VQZ_OK);
    REQUIRE(samples_of(a.p) == std::vector<uint16_t>({0, 0, 255, 255}));
    a.p->samples[1] = 255; // pixel 0 opaque black
    uint8_t *buf = nullptr;
    size_t len = 0;
    REQUIRE(vqz_image_write_png_memory(a.p, &buf, &len) == VQZ_OK);
    REQUIRE(vqz_image_read_memory(buf, len, &b.p) == VQZ_OK);
    free(buf);
    REQUIRE(samples_of(b.p) == std::vector<uint16_t>({255, 255, 255, 255}));
}

TEST_CASE("planar conversion is exact at 8 and 16 bits", "[image]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 11);
    for (int depth : {8, 16})
        for (int ch : {1, 2, 3, 4}) {
            INFO("depth " << depth << " channels " << ch);
            const int w = 37, h = 23;
            ImagePtr a, b;
            REQUIRE(vqz_image_create(w, h, ch, depth, &a.p) == VQZ_OK);
            uint32_t max = (1u << depth) - 1;
            size_t n = (size_t)w * h * ch;
            for (size_t i = 0; i < n; i++)
                a.p->samples[i] = (uint16_t)vqz_rng_below(&r, max + 1);
            a.p->samples[0] = 0;
            a.p->samples[n - 1] = (uint16_t)max;
            std::vector<float> rgb(3 * (size_t)w * h);
            REQUIRE(vqz_image_to_rgb_planar(a.p, rgb.data()) == VQZ_OK);
            size_t np = (size_t)w * h;
            double maxdiff = 0;
            for (size_t p = 0; p < np; p++)
                for (int c = 0; c < 3; c++) {
                    int sc = ch <= 2 ? 0 : c;
                    double want = (double)a.p->samples[p * ch + sc] / max * 2.0 - 1.0;
                    maxdiff = std::fmax(maxdiff, std::fabs(rgb[c * np + p] - want));
                }
            REQUIRE(maxdiff < 1e-6);
            REQUIRE(*std::min_element(rgb.begin(), rgb.end()) >= -1.0f);
            REQUIRE(*std::max_element(rgb.begin(), rgb.end()) <= 1.0f);
            REQUIRE(vqz_image_create_like(a.p, &b.p) == VQZ_OK);
            if (vqz_image_has_alpha(a.p)) {
                std::vector<uint16_t> al(np);
                REQUIRE(vqz_image_get_alpha(a.p, al.data()) == VQZ_OK);
                REQUIRE(vqz_image_set_alpha(b.p, al.data()) == VQZ_OK);
            }
            REQUIRE(vqz_image_from_rgb_planar(b.p, rgb.data()) == VQZ_OK);
            REQUIRE(samples_of(b.p) == samples_of(a.p));
        }
}

TEST_CASE("planar output: clamping, rounding, grey as the mean, alpha untouched", "[image]")
{
    for (int depth : {8, 16}) {
        INFO("depth " << depth);
        const double max = depth == 16 ? 65535.0 : 255.0;
        auto unit = [&](double level) { return (float)(level / max * 2.0 - 1.0); };
        // RGB: clamping and round to nearest.
        ImagePtr rgb;
        REQUIRE(vqz_image_create(4, 1, 4, depth, &rgb.p) == VQZ_OK);
        for (int p = 0; p < 4; p++)
            rgb.p->samples[p * 4 + 3] = (uint16_t)(100 + p);
        std::vector<float> pl = {1.5f,      -3.0f, unit(10.4), unit(10.6), // R
                                 unit(0),   unit(max), INFINITY, -INFINITY, // G
                                 unit(7.2), unit(7.8), unit(0.49), unit(max - 0.49)};
        REQUIRE(vqz_image_from_rgb_planar(rgb.p, pl.data()) == VQZ_OK);
        uint16_t m = (uint16_t)max;
        std::vector<uint16_t> want = {m, 0, 7, 100, 0, m, 8, 101, 10, m, 0, 102, 11, 0, m, 103};
        REQUIRE(samples_of(rgb.p) == want);
        // NaN: refused, image unchanged.
        pl[5] = NAN;
        REQUIRE(vqz_image_from_rgb_planar(rgb.p, pl.data()) == VQZ_ERR_NONFINITE);
        REQUIRE(samples_of(rgb.p) == want);

        // Grey (+alpha) takes the mean of R, G, B.
        vqz_rng r;
        vqz_rng_seed(&r, 3);
        const int w = 9, h = 7;
        ImagePtr g;
        REQUIRE(vqz_image_create(w, h, 2, depth, &g.p) == VQZ_OK);
        size_t np = (size_t)w * h;
        std::vector<uint16_t> alpha(np);
        for (auto &a : alpha)
            a = (uint16_t)vqz_rng_below(&r, (uint64_t)max + 1);
        REQUIRE(vqz_image_set_alpha(g.p, alpha.data()) == VQZ_OK);
        std::vector<float> planes(3 * np);
        std::vector<uint32_t> levels(3 * np);
        for (size_t i = 0; i < 3 * np; i++) {
            levels[i] = (uint32_t)vqz_rng_below(&r, (uint64_t)max + 1);
            planes[i] = unit(levels[i]);
        }
        REQUIRE(vqz_image_from_rgb_planar(g.p, planes.data()) == VQZ_OK);
        for (size_t p = 0; p < np; p++) {
            double mean = (levels[p] + levels[np + p] + levels[2 * np + p]) / 3.0;
            REQUIRE(g.p->samples[2 * p] == (uint16_t)std::lround(mean));
            REQUIRE(g.p->samples[2 * p + 1] == alpha[p]);
        }
    }
}

TEST_CASE("alpha planes are bit-exact and checked", "[image]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 8);
    for (int depth : {8, 16})
        for (int ch : {2, 4}) {
            ImagePtr a, b;
            REQUIRE(vqz_image_create(13, 11, ch, depth, &a.p) == VQZ_OK);
            size_t np = 13 * 11;
            uint32_t max = (1u << depth) - 1;
            std::vector<uint16_t> alpha(np), got(np);
            for (auto &v : alpha)
                v = (uint16_t)vqz_rng_below(&r, max + 1);
            REQUIRE(vqz_image_set_alpha(a.p, alpha.data()) == VQZ_OK);
            // through a PNG file and back
            uint8_t *buf = nullptr;
            size_t len = 0;
            REQUIRE(vqz_image_write_png_memory(a.p, &buf, &len) == VQZ_OK);
            REQUIRE(vqz_image_read_memory(buf, len, &b.p) == VQZ_OK);
            free(buf);
            REQUIRE(vqz_image_get_alpha(b.p, got.data()) == VQZ_OK);
            REQUIRE(got == alpha);
            if (depth == 8) {
                alpha[5] = 256;
                REQUIRE(vqz_image_set_alpha(a.p, alpha.data()) == VQZ_ERR_INVALID_ARG);
                REQUIRE(vqz_image_get_alpha(a.p, got.data()) == VQZ_OK);
                REQUIRE(got[5] != 256);
            }
        }
    ImagePtr rgb;
    REQUIRE(vqz_image_create(2, 2, 3, 8, &rgb.p) == VQZ_OK);
    std::vector<uint16_t> plane(4);
    REQUIRE(vqz_image_has_alpha(rgb.p) == 0);
    REQUIRE(vqz_image_get_alpha(rgb.p, plane.data()) == VQZ_ERR_INVALID_ARG);
    REQUIRE(vqz_image_set_alpha(rgb.p, plane.data()) == VQZ_ERR_INVALID_ARG);
}

TEST_CASE("create, create_like and free", "[image]")
{
    vqz_image_free(nullptr);
    vqz_image *p = nullptr;
    REQUIRE(vqz_image_create(0, 5, 3, 8, &p) == VQZ_ERR_INVALID_ARG);
    REQUIRE(vqz_image_create(5, 5, 5, 8, &p) == VQZ_ERR_INVALID_ARG);
    REQUIRE(vqz_image_create(5, 5, 3, 12, &p) == VQZ_ERR_INVALID_ARG);
    REQUIRE(vqz_image_create(65536, 1, 3, 8, &p) == VQZ_ERR_LIMIT);
    REQUIRE(vqz_image_create(40000, 40000, 3, 8, &p) == VQZ_ERR_LIMIT);
    REQUIRE(p == nullptr);

    vqz_rng r;
    vqz_rng_seed(&r, 12);
    Spec s = random_spec(&r, PNG_COLOR_TYPE_PALETTE, 4, 17, 9, true, true);
    s.srgb = 0;
    ImagePtr a, b;
    REQUIRE(read_mem(make_png(s), &a) == VQZ_OK);
    REQUIRE(vqz_image_create_like(a.p, &b.p) == VQZ_OK);
    require_same_description(a.p, b.p);
    for (size_t i = 0; i < samples_of(b.p).size(); i++)
        REQUIRE(b.p->samples[i] == 0);
    REQUIRE(b.p->samples != a.p->samples);
}

TEST_CASE("JPEG: colour and grey decode close to the source", "[image]")
{
    const int w = 67, h = 45;
    for (int comps : {3, 1}) {
        INFO("components " << comps);
        std::vector<uint8_t> pix = synthetic_photo(w, h, comps);
        std::vector<uint8_t> jpg = make_jpeg(pix, w, h, comps, comps == 3 ? JCS_RGB : JCS_GRAYSCALE, 95);
        ImagePtr a, b;
        REQUIRE(vqz_image_read_memory_named(jpg.data(), jpg.size(), "photo.png", &a.p) == VQZ_OK); // name ignored
        REQUIRE(a.p->source == VQZ_IMAGE_SRC_JPEG);
        REQUIRE(a.p->width == w);
        REQUIRE(a.p->height == h);
        REQUIRE(a.p->channels == comps);
        REQUIRE(a.p->bit_depth == 8);
        double q = psnr8(pix, a.p);
        INFO("PSNR " << q);
        REQUIRE(q > 35.0);
        REQUIRE(describe(a.p) == std::string("JPEG 67x45 ") + (comps == 3 ? "RGB" : "grey") + " 8-bit");
        // Written back as an 8-bit PNG of the same layout, losslessly.
        uint8_t *buf = nullptr;
        size_t len = 0;
        REQUIRE(vqz_image_write_png_memory(a.p, &buf, &len) == VQZ_OK);
        REQUIRE(len > 8);
        REQUIRE(std::memcmp(buf, "\x89PNG", 4) == 0);
        REQUIRE(vqz_image_read_memory(buf, len, &b.p) == VQZ_OK);
        free(buf);
        REQUIRE(b.p->source == VQZ_IMAGE_SRC_PNG);
        REQUIRE(b.p->color_type == (comps == 3 ? VQZ_PNG_RGB : VQZ_PNG_GREY));
        REQUIRE(b.p->source_bit_depth == 8);
        REQUIRE(samples_of(b.p) == samples_of(a.p));
    }
}

TEST_CASE("JPEG: CMYK refused, truncation and damage reported", "[image]")
{
    const int w = 16, h = 16;
    std::vector<uint8_t> cmyk((size_t)w * h * 4, 100);
    std::vector<uint8_t> jpg = make_jpeg(cmyk, w, h, 4, JCS_CMYK, 90);
    ImagePtr a;
    REQUIRE(vqz_image_read_memory_named(jpg.data(), jpg.size(), "print.jpg", &a.p) == VQZ_ERR_UNSUPPORTED);
    REQUIRE(a.p == nullptr);
    REQUIRE(contains(vqz_last_error(), "print.jpg"));

    std::vector<uint8_t> pix = synthetic_photo(64, 48, 3);
    std::vector<uint8_t> good = make_jpeg(pix, 64, 48, 3, JCS_RGB, 90);
    for (size_t cut : {(size_t)2, (size_t)20, good.size() / 2, good.size() - 2}) {
        INFO("cut at " << cut << " of " << good.size());
        std::vector<uint8_t> t(good.begin(), good.begin() + cut);
        ImagePtr b;
        REQUIRE(vqz_image_read_memory_named(t.data(), t.size(), "x.jpg", &b.p) == VQZ_ERR_TRUNCATED);
        REQUIRE(b.p == nullptr);
        REQUIRE(contains(vqz_last_error(), "x.jpg: truncated JPEG"));
    }
    // The frame header (SOF0) declares zero components.
    std::vector<uint8_t> bad = good;
    size_t sof = 0;
    for (size_t i = 2; i + 10 < bad.size(); i++)
        if (bad[i] == 0xFF && bad[i + 1] == 0xC0) {
            sof = i;
            break;
        }
    REQUIRE(sof > 0);
    bad[sof + 9] = 0;
    ImagePtr c;
    vqz_status s = vqz_image_read_memory_named(bad.data(), bad.size(), "x.jpg", &c.p);
    REQUIRE(s == VQZ_ERR_FORMAT);
    REQUIRE(contains(vqz_last_error(), "x.jpg: malformed JPEG data (libjpeg: "));

    // Declared sizes over the limits (the frame header patched): refused before decoding.
    for (auto wh : {std::make_pair(60000, 60000), std::make_pair(65535, 16)}) {
        INFO(wh.first << "x" << wh.second);
        std::vector<uint8_t> big = good;
        big[sof + 5] = (uint8_t)(wh.second >> 8);
        big[sof + 6] = (uint8_t)wh.second;
        big[sof + 7] = (uint8_t)(wh.first >> 8);
        big[sof + 8] = (uint8_t)wh.first;
        ImagePtr d;
        REQUIRE(vqz_image_read_memory_named(big.data(), big.size(), "big.jpg", &d.p) == VQZ_ERR_LIMIT);
        REQUIRE(d.p == nullptr);
        REQUIRE(contains(vqz_last_error(), "big.jpg: "));
        REQUIRE(limit_status_in_child(big) == 0);
    }
}

TEST_CASE("PNG damage: truncation, CRC, garbage and empty input", "[image]")
{
    std::vector<uint8_t> good = sample_png();
    ImagePtr ok;
    REQUIRE(read_mem(good, &ok) == VQZ_OK);
    size_t n = good.size();
    for (size_t cut : {(size_t)1, (size_t)4, (size_t)8, (size_t)20, (size_t)33, (size_t)40, n / 2, n - 12, n - 1}) {
        INFO("cut at " << cut << " of " << n);
        std::vector<uint8_t> t(good.begin(), good.begin() + cut);
        ImagePtr img;
        REQUIRE(read_mem(t, &img) == VQZ_ERR_TRUNCATED);
        REQUIRE(img.p == nullptr);
        REQUIRE(contains(vqz_last_error(), "photo.png: truncated PNG data"));
    }
    // IHDR CRC (bytes 29..32), then a byte inside IDAT's data.
    std::vector<uint8_t> crc = good;
    crc[30] ^= 0x40;
    ImagePtr a;
    REQUIRE(read_mem(crc, &a) == VQZ_ERR_CHECKSUM);
    REQUIRE(contains(vqz_last_error(), "photo.png: PNG checksum mismatch (libpng: "));
    std::vector<uint8_t> idat = good;
    size_t pos = 0;
    for (size_t i = 8; i + 4 < idat.size(); i++)
        if (std::memcmp(&idat[i], "IDAT", 4) == 0) {
            pos = i + 6;
            break;
        }
    REQUIRE(pos > 0);
    uint32_t idat_len = (uint32_t)idat[pos - 10] << 24 | (uint32_t)idat[pos - 9] << 16 | (uint32_t)idat[pos - 8] << 8 |
                        idat[pos - 7];
    std::vector<uint8_t> idat_crc = idat;
    idat_crc[pos - 2 + idat_len + 1] ^= 0x10; // a byte of IDAT's CRC
    ImagePtr b;
    REQUIRE(read_mem(idat_crc, &b) == VQZ_ERR_CHECKSUM);
    REQUIRE(contains(vqz_last_error(), "photo.png: PNG checksum mismatch"));
    // A byte of the compressed data: zlib may see the damage before the chunk's CRC is reached.
    idat[pos] ^= 0x01;
    ImagePtr b2;
    vqz_status sd = read_mem(idat, &b2);
    REQUIRE((sd == VQZ_ERR_CHECKSUM || sd == VQZ_ERR_FORMAT));
    REQUIRE(b2.p == nullptr);

    vqz_rng r;
    vqz_rng_seed(&r, 1);
    std::vector<uint8_t> garbage(1000);
    for (auto &v : garbage)
        v = (uint8_t)vqz_rng_below(&r, 256);
    garbage[0] = 'G';
    ImagePtr c;
    REQUIRE(vqz_image_read_memory_named(garbage.data(), garbage.size(), "x.jpg", &c.p) == VQZ_ERR_FORMAT);
    REQUIRE(std::string(vqz_last_error()) == "x.jpg: not a PNG or JPEG file");
    // A PNG signature followed by garbage.
    std::vector<uint8_t> sig_garbage(good.begin(), good.begin() + 8);
    sig_garbage.insert(sig_garbage.end(), garbage.begin(), garbage.end());
    ImagePtr d;
    vqz_status s = read_mem(sig_garbage, &d);
    REQUIRE((s == VQZ_ERR_FORMAT || s == VQZ_ERR_CHECKSUM || s == VQZ_ERR_TRUNCATED));
    REQUIRE(d.p == nullptr);

    ImagePtr e;
    REQUIRE(vqz_image_read_memory(nullptr, 0, &e.p) == VQZ_ERR_TRUNCATED);
    REQUIRE(contains(vqz_last_error(), "empty"));
    REQUIRE(vqz_image_read_memory(good.data(), good.size(), nullptr) == VQZ_ERR_INVALID_ARG);
}

TEST_CASE("PNG: huge declared dimensions are refused before allocating", "[image]")
{
    struct Case {
        uint32_t w, h;
        int depth, ct;
    } cases[] = {
        {65536, 1, 8, 2},            // a side over the limit
        {1, 100000, 8, 0},           // the other side
        {60000, 60000, 1, 0},        // 3.6 G pixels of 1-bit grey, 7 GB once expanded to 16-bit samples
        {65535, 65535, 16, 6},       // 34 GB of RGBA16
        {3000000, 3000000, 16, 6},   // beyond libpng's own default limits
    };
    for (const Case &c : cases) {
        INFO(c.w << "x" << c.h);
        std::vector<uint8_t> png = png_with_ihdr(c.w, c.h, c.depth, c.ct);
        ImagePtr img;
        REQUIRE(read_mem(png, &img) == VQZ_ERR_LIMIT);
        REQUIRE(img.p == nullptr);
        REQUIRE(contains(vqz_last_error(), "photo.png: image is "));
    }
    // Nothing is allocated for the declared pixels: the same answer with the address space capped.
    REQUIRE(limit_status_in_child(png_with_ihdr(60000, 60000, 1, 0)) == 0);
    REQUIRE(limit_status_in_child(png_with_ihdr(65535, 65535, 16, 6)) == 0);
    // The crafted chunks are well-formed: a legal size with the same layout gets past the header.
    std::vector<uint8_t> png = png_with_ihdr(1, 1, 8, 0);
    ImagePtr img;
    REQUIRE(read_mem(png, &img) == VQZ_OK);
    REQUIRE(img.p->width == 1);
    REQUIRE(img.p->samples[0] == 0);
}

TEST_CASE("files: reading names the path, writing is atomic", "[image]")
{
    TempDir tmp("vqz-test-image");
    const std::string dir = tmp.path;
    std::string missing = dir + "/missing.png";
    ImagePtr a;
    REQUIRE(vqz_image_read_file(missing.c_str(), &a.p) == VQZ_ERR_IO);
    REQUIRE(contains(vqz_last_error(), missing + ": cannot open"));
    REQUIRE(vqz_image_read_file(dir.c_str(), &a.p) == VQZ_ERR_IO);

    std::string empty = dir + "/empty.png";
    write_bytes(empty, {});
    REQUIRE(vqz_image_read_file(empty.c_str(), &a.p) == VQZ_ERR_TRUNCATED);
    REQUIRE(std::string(vqz_last_error()) == empty + ": empty file");

    std::string garbage = dir + "/x.jpg";
    write_bytes(garbage, {'h', 'e', 'l', 'l', 'o', '\n'});
    REQUIRE(vqz_image_read_file(garbage.c_str(), &a.p) == VQZ_ERR_FORMAT);
    REQUIRE(std::string(vqz_last_error()) == garbage + ": not a PNG or JPEG file");

    // A PNG named .jpg is still read as PNG: the signature decides.
    std::vector<uint8_t> good = sample_png();
    std::string misnamed = dir + "/really-a-png.jpg";
    write_bytes(misnamed, good);
    REQUIRE(vqz_image_read_file(misnamed.c_str(), &a.p) == VQZ_OK);
    REQUIRE(a.p->source == VQZ_IMAGE_SRC_PNG);

    // Writing: a good write, then failures that must leave it untouched and leave no temporary file.
    std::string out = dir + "/out.png";
    REQUIRE(vqz_image_write_png(a.p, out.c_str()) == VQZ_OK);
    std::vector<uint8_t> first = read_bytes(out);
    ImagePtr back;
    REQUIRE(vqz_image_read_file(out.c_str(), &back.p) == VQZ_OK);
    REQUIRE(samples_of(back.p) == samples_of(a.p));
    size_t files_before = dir_names(dir).size();

    a.p->samples[7] = 300; // not an 8-bit value: refused
    REQUIRE(vqz_image_write_png(a.p, out.c_str()) == VQZ_ERR_INVALID_ARG);
    REQUIRE(contains(vqz_last_error(), out));
    a.p->samples[7] = 3;
    REQUIRE(read_bytes(out) == first);
    REQUIRE(dir_names(dir).size() == files_before);

    std::string nodir = dir + "/no/such/folder/out.png";
    REQUIRE(vqz_image_write_png(a.p, nodir.c_str()) == VQZ_ERR_IO);
    REQUIRE(contains(vqz_last_error(), nodir));
    REQUIRE(dir_names(dir).size() == files_before);

    // The target is a folder: the encoded file cannot be renamed over it, and the temporary goes away.
    std::string sub = dir + "/sub";
    REQUIRE(mkdir(sub.c_str(), 0755) == 0);
    REQUIRE(vqz_image_write_png(a.p, sub.c_str()) == VQZ_ERR_IO);
    REQUIRE(dir_names(dir).size() == files_before + 1);
    REQUIRE(dir_names(sub).empty());

    // An inconsistent description is refused before anything is written.
    a.p->color_type = VQZ_PNG_GREY;
    REQUIRE(vqz_image_write_png(a.p, out.c_str()) == VQZ_ERR_INVALID_ARG);
    REQUIRE(read_bytes(out) == first);
}

TEST_CASE("the sample photographs read with their dimensions", "[image]")
{
    struct {
        const char *name;
        int w, h;
        bool icc;
    } photos[] = {{"coffee.png", 600, 400, false}, {"chelsea.png", 451, 300, true}};
    for (auto &p : photos) {
        std::string path = vqz_test_path(std::string("../samples/images/") + p.name);
        INFO(path);
        ImagePtr img;
        REQUIRE(vqz_image_read_file(path.c_str(), &img.p) == VQZ_OK);
        REQUIRE(img.p->width == p.w);
        REQUIRE(img.p->height == p.h);
        REQUIRE(img.p->channels == 3);
        REQUIRE(img.p->bit_depth == 8);
        char want[64];
        std::snprintf(want, sizeof want, "PNG %dx%d RGB 8-bit", p.w, p.h);
        REQUIRE(describe(img.p).rfind(want, 0) == 0);
        // chelsea.png carries an ICC profile (recognised by libpng as sRGB); it must survive a rewrite.
        REQUIRE((img.p->icc_profile != nullptr) == p.icc);
        REQUIRE(img.p->srgb_intent == -1);
        uint8_t *buf = nullptr;
        size_t len = 0;
        REQUIRE(vqz_image_write_png_memory(img.p, &buf, &len) == VQZ_OK);
        ImagePtr back;
        REQUIRE(vqz_image_read_memory(buf, len, &back.p) == VQZ_OK);
        free(buf);
        require_same_description(img.p, back.p);
        REQUIRE(samples_of(back.p) == samples_of(img.p));
        REQUIRE(back.p->icc_size == img.p->icc_size);
        if (p.icc) {
            REQUIRE(std::string(back.p->icc_name) == "ICC Profile");
            REQUIRE(std::memcmp(back.p->icc_profile, img.p->icc_profile, img.p->icc_size) == 0);
            REQUIRE(contains(describe(img.p), "ICC profile"));
        }
        // Not flat: a real photograph spans most of the range.
        uint16_t lo = 255, hi = 0;
        for (uint16_t v : samples_of(img.p)) {
            lo = std::min(lo, v);
            hi = std::max(hi, v);
        }
        REQUIRE(hi - lo > 150);
    }
}
