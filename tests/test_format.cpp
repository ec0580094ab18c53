// test_format.cpp — the .vqz container: checksums, index packing, round trips over random headers and
// index streams, truncation, every class of damage with its exact code and message, version policy,
// packing efficiency against the 0th-order entropy, vqz-info statistics, and the fuzz corpus replay.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>
#include <zstd.h>

#include "testutil.h"

extern "C" {
#include "common/status.h"
#include "format/bytes.h"
#include "format/container.h"
#include "format/container_internal.h"
#include "format/crc32.h"
#include "format/pack.h"
#include "format/sha256.h"
#include "format/utf8.h"
}
#include "fuzz/targets.h"

namespace {

typedef std::vector<uint8_t> bytes;
typedef std::vector<uint16_t> indices;

// A container's inputs, kept to compare against what the reader returns.
struct Source {
    vqz_header h;
    std::vector<indices> levels; // whole grids, [plane][row][column]
    bool has_meta = false;
    std::string meta;
    bytes alpha;
    bool modelled = true; // let the writer choose modelled frames (spec §6.5)
};

vqz_header base_image(uint32_t gh, uint32_t gw, uint32_t ch, uint32_t cw, int L, uint32_t K)
{
    vqz_header h;
    std::memset(&h, 0, sizeof h);
    h.media_kind = VQZ_MEDIA_IMAGE;
    h.levels = (uint8_t)L;
    for (int l = 0; l < L; l++)
        h.K[l] = K;
    h.grid_planes = 1;
    h.grid_height = gh;
    h.grid_width = gw;
    h.chunk_height = ch;
    h.chunk_width = cw;
    h.stride = 8;
    std::strcpy(h.model_name, "test-model");
    for (int i = 0; i < 32; i++)
        h.model_sha256[i] = (uint8_t)(i * 7 + 1);
    h.image.width = gw * 8 - 3;
    h.image.height = gh * 8 - 1;
    h.image.channels = 3;
    h.image.bit_depth = 8;
    h.image.colour_space = VQZ_COLOUR_SRGB;
    return h;
}

indices random_indices(vqz_rng *r, size_t n, uint32_t K)
{
    indices v(n);
    int kind = (int)vqz_rng_below(r, 4);
    for (size_t i = 0; i < n; i++) {
        switch (kind) {
        case 0: v[i] = (uint16_t)vqz_rng_below(r, K); break;                          // uniform
        case 1: v[i] = (uint16_t)(K - 1); break;                                       // constant, the largest
        case 2: v[i] = (uint16_t)((i & 1) ? K - 1 : 0); break;                         // both extremes
        default: v[i] = (uint16_t)(vqz_rng_below(r, 1 + vqz_rng_below(r, K)) % K); break; // skewed
        }
    }
    return v;
}

bytes write_source(const Source &s, int zstd_level = 1)
{
    vqz_container_writer *w = nullptr;
    REQUIRE(vqz_container_writer_create(&s.h, &w) == VQZ_OK);
    REQUIRE(vqz_container_writer_set_zstd_level(w, zstd_level) == VQZ_OK);
    vqz_container_writer_set_modelled(w, s.modelled);
    for (int l = 0; l < s.h.levels; l++)
        REQUIRE(vqz_container_writer_put_level(w, l, s.levels[l].data(), s.levels[l].size()) == VQZ_OK);
    if (s.has_meta)
        REQUIRE(vqz_container_writer_set_metadata(w, s.meta.data(), s.meta.size()) == VQZ_OK);
    if (!s.alpha.empty())
        REQUIRE(vqz_container_writer_set_alpha(w, s.alpha.data(), s.alpha.size()) == VQZ_OK);
    uint64_t size = 0;
    REQUIRE(vqz_container_writer_size(w, &size) == VQZ_OK);
    bytes out((size_t)size);
    REQUIRE(vqz_container_writer_write_buffer(w, out.data(), out.size()) == VQZ_OK);
    vqz_container_writer_free(w);
    return out;
}

Source make_source(const vqz_header &h, vqz_rng *r)
{
    Source s;
    s.h = h;
    for (int l = 0; l < h.levels; l++)
        s.levels.push_back(random_indices(r, (size_t)vqz_header_level_indices(&h), h.K[l]));
    return s;
}

void require_header_eq(const vqz_header &a, const vqz_header &b)
{
    REQUIRE(a.version_major == VQZ_FORMAT_MAJOR);
    REQUIRE(a.version_minor <= VQZ_FORMAT_MINOR);
    REQUIRE(a.media_kind == b.media_kind);
    REQUIRE(a.levels == b.levels);
    for (int l = 0; l < a.levels; l++)
        REQUIRE(a.K[l] == b.K[l]);
    REQUIRE(a.grid_planes == b.grid_planes);
    REQUIRE(a.grid_height == b.grid_height);
    REQUIRE(a.grid_width == b.grid_width);
    REQUIRE(a.chunk_height == b.chunk_height);
    REQUIRE(a.chunk_width == b.chunk_width);
    REQUIRE(a.stride == b.stride);
    REQUIRE(std::string(a.model_name) == std::string(b.model_name));
    REQUIRE(std::memcmp(a.model_sha256, b.model_sha256, 32) == 0);
    if (a.media_kind == VQZ_MEDIA_IMAGE) {
        REQUIRE(a.image.width == b.image.width);
        REQUIRE(a.image.height == b.image.height);
        REQUIRE(a.image.channels == b.image.channels);
        REQUIRE(a.image.bit_depth == b.image.bit_depth);
        REQUIRE(a.image.colour_space == b.image.colour_space);
    } else {
        REQUIRE(a.audio.sample_rate == b.audio.sample_rate);
        REQUIRE(a.audio.model_rate == b.audio.model_rate);
        REQUIRE(a.audio.sample_count == b.audio.sample_count);
        REQUIRE(a.audio.channels == b.audio.channels);
        REQUIRE(a.audio.bit_depth == b.audio.bit_depth);
    }
}

// Read everything back and compare with the source, through the level path and the chunk path.
void require_reads_back(const bytes &file, const Source &s)
{
    vqz_container *c = nullptr;
    INFO(vqz_last_error());
    REQUIRE(vqz_container_open_memory(file.data(), file.size(), nullptr, &c) == VQZ_OK);
    const vqz_header *h = vqz_container_header(c);
    require_header_eq(*h, s.h);
    // 1.1 exactly when a frame is modelled (and the modelled-frames section says so)
    REQUIRE(h->version_minor == vqz_container_uses_prior(c));
    REQUIRE(vqz_container_levels_available(c) == s.h.levels);
    REQUIRE(vqz_container_full_size(c) == file.size());
    size_t n = (size_t)vqz_header_level_indices(h);
    indices grid(n);
    for (int l = 0; l < h->levels; l++) {
        REQUIRE(vqz_container_read_level(c, l, grid.data(), n) == VQZ_OK);
        REQUIRE(grid == s.levels[l]);
        for (uint32_t ch = 0; ch < vqz_header_chunk_count(h); ch++) {
            vqz_chunk_rect r = vqz_header_chunk_rect(h, ch);
            indices part((size_t)vqz_header_chunk_indices(h, ch));
            REQUIRE(vqz_container_read_chunk(c, l, ch, part.data(), part.size()) == VQZ_OK);
            for (uint32_t p = 0; p < h->grid_planes; p++)
                for (uint32_t y = 0; y < r.h; y++)
                    for (uint32_t x = 0; x < r.w; x++)
                        REQUIRE(part[((size_t)p * r.h + y) * r.w + x] ==
                                s.levels[l][((size_t)p * h->grid_height + r.y + y) * h->grid_width + r.x + x]);
        }
    }
    const char *text = nullptr;
    size_t len = 0;
    if (s.has_meta) {
        REQUIRE(vqz_container_metadata(c, &text, &len) == VQZ_OK);
        REQUIRE(std::string(text, len) == s.meta);
    } else {
        REQUIRE(vqz_container_metadata(c, &text, &len) == VQZ_ERR_MISSING);
    }
    REQUIRE(vqz_container_has_alpha(c) == (s.alpha.empty() ? 0 : 1));
    if (!s.alpha.empty()) {
        bytes a((size_t)vqz_container_alpha_size(c));
        REQUIRE(vqz_container_read_alpha(c, a.data(), a.size()) == VQZ_OK);
        REQUIRE(a == s.alpha);
    }
    vqz_container_free(c);
}

vqz_header random_header(vqz_rng *r)
{
    vqz_header h;
    std::memset(&h, 0, sizeof h);
    h.media_kind = vqz_rng_below(r, 2) ? VQZ_MEDIA_IMAGE : VQZ_MEDIA_AUDIO;
    h.levels = (uint8_t)(1 + vqz_rng_below(r, 32));
    static const uint32_t edges[] = {2, 3, 255, 256, 257, 511, 512, 513, 1024, 4095, 65535, 65536};
    for (int l = 0; l < h.levels; l++) {
        if (vqz_rng_below(r, 3) == 0) {
            h.K[l] = edges[vqz_rng_below(r, sizeof edges / sizeof edges[0])];
        } else {
            uint32_t bits = 1 + (uint32_t)vqz_rng_below(r, 16); // log-uniform over 2..65536
            h.K[l] = (1u << (bits - 1)) + 1 + (uint32_t)vqz_rng_below(r, 1u << (bits - 1));
        }
    }
    h.grid_planes = 1 + (uint32_t)vqz_rng_below(r, 3);
    h.grid_height = 1 + (uint32_t)vqz_rng_below(r, 9);
    h.grid_width = 1 + (uint32_t)vqz_rng_below(r, 23);
    h.chunk_height = 1 + (uint32_t)vqz_rng_below(r, h.grid_height);
    h.chunk_width = 1 + (uint32_t)vqz_rng_below(r, h.grid_width);
    h.stride = 1 + (uint32_t)vqz_rng_below(r, 8);
    // Random printable names, 1..255 bytes, some with multi-byte UTF-8.
    size_t nlen = 1 + vqz_rng_below(r, 255);
    std::string name;
    while (name.size() < nlen) {
        if (vqz_rng_below(r, 8) == 0 && name.size() + 2 <= nlen)
            name += "\xc3\xa9"; // é
        else
            name += (char)('!' + vqz_rng_below(r, 94));
    }
    std::memcpy(h.model_name, name.data(), name.size());
    for (int i = 0; i < 32; i++)
        h.model_sha256[i] = (uint8_t)vqz_rng_below(r, 256);
    if (h.media_kind == VQZ_MEDIA_IMAGE) {
        h.grid_planes = 1;
        h.image.width = h.grid_width * h.stride - (uint32_t)vqz_rng_below(r, h.stride);
        h.image.height = h.grid_height * h.stride - (uint32_t)vqz_rng_below(r, h.stride);
        h.image.channels = (uint8_t)(1 + vqz_rng_below(r, 4));
        h.image.bit_depth = vqz_rng_below(r, 2) ? 8 : 16;
        h.image.colour_space = (uint8_t)vqz_rng_below(r, 3);
    } else {
        h.audio.sample_rate = 8000 + (uint32_t)vqz_rng_below(r, 88000);
        h.audio.model_rate = 24000;
        h.audio.sample_count = 1 + vqz_rng_below(r, (uint64_t)1 << 40);
        h.audio.channels = (uint16_t)h.grid_planes;
        static const uint8_t depths[] = {0, 8, 16, 24, 32};
        h.audio.bit_depth = depths[vqz_rng_below(r, 5)];
    }
    return h;
}

bool has_alpha(const vqz_header &h)
{
    return h.media_kind == VQZ_MEDIA_IMAGE && (h.image.channels == 2 || h.image.channels == 4);
}

bytes random_alpha(vqz_rng *r, const vqz_header &h)
{
    bytes a((size_t)h.image.width * h.image.height * (h.image.bit_depth / 8));
    for (size_t i = 0; i < a.size(); i++)
        a[i] = (uint8_t)(i % 97 < 60 ? 255 : vqz_rng_below(r, 256));
    return a;
}

vqz_status open_status(const bytes &b, size_t size, const vqz_limits *lim = nullptr)
{
    vqz_container *c = nullptr;
    vqz_status s = vqz_container_open_memory(b.data(), size, lim, &c);
    vqz_container_free(c);
    return s;
}

// Recompute the header CRC after a deliberate edit of header bytes.
void fix_header_crc(bytes &f)
{
    uint32_t hs = vqz_get_u32(f.data() + 12);
    vqz_put_u32(f.data() + hs - 4, vqz_crc32(f.data(), hs - 4));
}

} // namespace

TEST_CASE("CRC-32 matches the ISO-HDLC check value and a bitwise reference", "[format]")
{
    REQUIRE(vqz_crc32("123456789", 9) == 0xCBF43926u);
    REQUIRE(vqz_crc32("", 0) == 0);
    vqz_rng r;
    vqz_rng_seed(&r, 3);
    bytes data(1000);
    for (auto &b : data)
        b = (uint8_t)vqz_rng_below(&r, 256);
    // Bit-at-a-time reference straight from the polynomial.
    uint32_t c = 0xffffffffu;
    for (uint8_t b : data) {
        c ^= b;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    REQUIRE(vqz_crc32(data.data(), data.size()) == (c ^ 0xffffffffu));
    REQUIRE(vqz_crc32_update(vqz_crc32(data.data(), 377), data.data() + 377, 623) == vqz_crc32(data.data(), 1000));
}

TEST_CASE("SHA-256 matches the FIPS 180-4 examples", "[format]")
{
    struct {
        std::string msg;
        const char *hex;
    } cases[] = {
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrst"
         "nopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    for (auto &t : cases) {
        uint8_t d[32];
        char hex[65];
        vqz_sha256(t.msg.data(), t.msg.size(), d);
        vqz_sha256_hex(d, hex);
        REQUIRE(std::string(hex) == t.hex);
        // The same digest whatever the split into updates.
        for (size_t cut = 0; cut <= t.msg.size(); cut += 7) {
            vqz_sha256_ctx c;
            vqz_sha256_init(&c);
            vqz_sha256_update(&c, t.msg.data(), cut);
            vqz_sha256_update(&c, t.msg.data() + cut, t.msg.size() - cut);
            uint8_t d2[32];
            vqz_sha256_final(&c, d2);
            REQUIRE(std::memcmp(d, d2, 32) == 0);
        }
    }
    // One million 'a', fed in uneven pieces.
    std::string a(1000000, 'a');
    vqz_sha256_ctx c;
    vqz_sha256_init(&c);
    for (size_t pos = 0; pos < a.size();) {
        size_t step = std::min<size_t>(a.size() - pos, 1 + pos % 1000);
        vqz_sha256_update(&c, a.data() + pos, step);
        pos += step;
    }
    uint8_t d[32];
    char hex[65];
    vqz_sha256_final(&c, d);
    vqz_sha256_hex(d, hex);
    REQUIRE(std::string(hex) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    // Padding boundaries: lengths 55, 56, 63, 64 against the one-shot digest of a rebuilt message.
    for (size_t n : {55u, 56u, 63u, 64u, 119u, 120u}) {
        std::string m(n, 'x');
        vqz_sha256_ctx cc;
        vqz_sha256_init(&cc);
        for (size_t i = 0; i < n; i++)
            vqz_sha256_update(&cc, m.data() + i, 1);
        uint8_t d1[32], d2[32];
        vqz_sha256_final(&cc, d1);
        vqz_sha256(m.data(), n, d2);
        REQUIRE(std::memcmp(d1, d2, 32) == 0);
    }
}

TEST_CASE("UTF-8 validation follows RFC 3629", "[format]")
{
    auto ok = [](const std::string &s) { return vqz_utf8_valid((const uint8_t *)s.data(), s.size(), nullptr) == 1; };
    REQUIRE(ok(""));
    REQUIRE(ok("plain ascii"));
    REQUIRE(ok("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80")); // é € 😀
    REQUIRE(ok("\xf4\x8f\xbf\xbf"));                    // U+10FFFF
    REQUIRE_FALSE(ok(std::string("a\0b", 3)));         // NUL
    REQUIRE_FALSE(ok("\xc0\xaf"));                      // overlong '/'
    REQUIRE_FALSE(ok("\xe0\x80\xaf"));                  // overlong
    REQUIRE_FALSE(ok("\xed\xa0\x80"));                  // surrogate
    REQUIRE_FALSE(ok("\xf4\x90\x80\x80"));              // above U+10FFFF
    REQUIRE_FALSE(ok("\xc3"));                          // cut
    REQUIRE_FALSE(ok("\x80"));                          // stray continuation
    size_t bad = 0;
    REQUIRE(vqz_utf8_valid((const uint8_t *)"ab\xff", 3, &bad) == 0);
    REQUIRE(bad == 2);
}

TEST_CASE("index packing round-trips every high-bit width and rejects bad planes", "[format]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 11);
    REQUIRE(vqz_pack_high_bits(2) == 0);
    REQUIRE(vqz_pack_high_bits(256) == 0);
    REQUIRE(vqz_pack_high_bits(257) == 1);
    REQUIRE(vqz_pack_high_bits(1024) == 2);
    REQUIRE(vqz_pack_high_bits(1025) == 3);
    REQUIRE(vqz_pack_high_bits(65536) == 8);
    for (uint32_t K : {2u, 200u, 256u, 257u, 512u, 1000u, 2048u, 4096u, 5000u, 16384u, 40000u, 65536u}) {
        for (size_t n : {1u, 2u, 3u, 7u, 8u, 9u, 100u, 1001u}) {
            indices v = random_indices(&r, n, K);
            bytes raw(vqz_pack_size(K, n));
            size_t seg[VQZ_PACK_MAX_SEGMENTS];
            int nseg = 0;
            vqz_pack_indices(v.data(), n, K, raw.data(), seg, &nseg);
            size_t total = 0;
            for (int i = 0; i < nseg; i++)
                total += seg[i];
            REQUIRE(total == raw.size());
            REQUIRE(nseg == (K <= 256 ? 1 : 1 + (1 << vqz_pack_high_bits(K))));
            indices back(n);
            REQUIRE(vqz_unpack_indices(raw.data(), raw.size(), K, back.data(), n) == VQZ_OK);
            REQUIRE(back == v);
        }
    }
    // The packed layout spelled out for K = 1024 (2 high bits, 4 per byte) and indices 5, 1023, 256, 7, 513:
    // high plane 0b00_01_11_00 = 0x1c, 0b10 = 0x02; low bytes grouped by high value 0 | 1 | 2 | 3.
    indices v = {5, 1023, 256, 7, 513};
    bytes raw(vqz_pack_size(1024, 5));
    vqz_pack_indices(v.data(), 5, 1024, raw.data(), nullptr, nullptr);
    REQUIRE(raw == bytes({0x1c, 0x02, 5, 7, 0x00, 0x01, 0xff}));
    indices back(5);
    // A set padding bit, an index >= K (K = 1000: 1023 is out of range), a wrong size.
    bytes pad = raw;
    pad[1] |= 0x40;
    vqz_error_clear();
    REQUIRE(vqz_unpack_indices(pad.data(), pad.size(), 1024, back.data(), 5) == VQZ_ERR_FORMAT);
    REQUIRE(contains(vqz_last_error(), "padding"));
    REQUIRE(vqz_unpack_indices(raw.data(), raw.size(), 1000, back.data(), 5) == VQZ_ERR_INDEX_RANGE);
    REQUIRE(contains(vqz_last_error(), "index 1023 at position 1 is >= K=1000"));
    REQUIRE(vqz_unpack_indices(raw.data(), raw.size() - 1, 1024, back.data(), 5) == VQZ_ERR_FORMAT);
    bytes small = {0, 1, 9};
    REQUIRE(vqz_unpack_indices(small.data(), 3, 9, back.data(), 3) == VQZ_ERR_INDEX_RANGE);
    REQUIRE(contains(vqz_last_error(), "index 9 at position 2 is >= K=9"));
}

TEST_CASE("containers round-trip random headers and index streams", "[format]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 2024);
    for (int iter = 0; iter < 60; iter++) {
        vqz_header h = random_header(&r);
        Source s = make_source(h, &r);
        int meta = (int)vqz_rng_below(&r, 3);
        if (meta) {
            s.has_meta = true;
            s.meta = meta == 1 ? "" : "{\"title\": \"caf\xc3\xa9\", \"iter\": " + std::to_string(iter) + "}";
        }
        if (has_alpha(h))
            s.alpha = random_alpha(&r, h);
        INFO("iteration " << iter << ": L=" << (int)h.levels << " grid " << h.grid_planes << "x" << h.grid_height
                          << "x" << h.grid_width << " chunk " << h.chunk_height << "x" << h.chunk_width);
        bytes f = write_source(s, iter % 10 == 0 ? VQZ_DEFAULT_ZSTD_LEVEL : 1);
        require_reads_back(f, s);
        // The writer is deterministic.
        REQUIRE(write_source(s, iter % 10 == 0 ? VQZ_DEFAULT_ZSTD_LEVEL : 1) == f);
    }
}

TEST_CASE("every K from 2 to 65536 round-trips", "[format]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 65536);
    // 32 levels per file, each with its own K; 5 odd-sized chunks per level.
    for (uint32_t K0 = 2; K0 <= VQZ_MAX_K; K0 += 32) {
        vqz_header h = base_image(1, 11, 1, 3, 32, 2);
        int L = 0;
        for (uint32_t K = K0; K < K0 + 32 && K <= VQZ_MAX_K; K++)
            h.K[L++] = K;
        h.levels = (uint8_t)L;
        Source s;
        s.h = h;
        for (int l = 0; l < L; l++) {
            indices v(11);
            for (auto &x : v)
                x = (uint16_t)vqz_rng_below(&r, h.K[l]);
            v[0] = (uint16_t)(h.K[l] - 1); // the largest index must survive
            v[1] = 0;
            s.levels.push_back(v);
        }
        bytes f = write_source(s, 1);
        vqz_container *c = nullptr;
        REQUIRE(vqz_container_open_memory(f.data(), f.size(), nullptr, &c) == VQZ_OK);
        indices back(11);
        for (int l = 0; l < L; l++) {
            REQUIRE(vqz_container_read_level(c, l, back.data(), back.size()) == VQZ_OK);
            if (back != s.levels[l])
                FAIL("K=" << h.K[l] << " did not round-trip");
        }
        vqz_container_free(c);
    }
}

TEST_CASE("metadata: absent, empty, and at the size limit", "[format]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 5);
    vqz_limits lim;
    vqz_limits_default(&lim);
    Source s = make_source(base_image(3, 5, 2, 2, 2, 300), &r);
    require_reads_back(write_source(s), s);
    s.has_meta = true;
    s.meta = "";
    require_reads_back(write_source(s), s);
    // Exactly at the limit, multi-byte characters included.
    std::string big;
    while (big.size() + 3 <= lim.max_metadata_bytes)
        big += "\xe2\x82\xac"; // €
    while (big.size() < lim.max_metadata_bytes)
        big += 'x';
    s.meta = big;
    bytes f = write_source(s);
    require_reads_back(f, s);
    // One byte over is refused by the writer, and by a reader with a lower limit.
    vqz_container_writer *w = nullptr;
    REQUIRE(vqz_container_writer_create(&s.h, &w) == VQZ_OK);
    std::string over = big + "y";
    REQUIRE(vqz_container_writer_set_metadata(w, over.data(), over.size()) == VQZ_ERR_LIMIT);
    REQUIRE(contains(vqz_last_error(), "metadata of 1048577 bytes exceeds the limit"));
    std::string bad = "ok\xff";
    REQUIRE(vqz_container_writer_set_metadata(w, bad.data(), bad.size()) == VQZ_ERR_INVALID_ARG);
    vqz_container_writer_free(w);
    vqz_limits small = lim;
    small.max_metadata_bytes = big.size() - 1;
    REQUIRE(open_status(f, f.size(), &small) == VQZ_ERR_LIMIT);
    REQUIRE(contains(vqz_last_error(), "metadata of 1048576 bytes exceeds the limit of 1048575"));
}

TEST_CASE("a file cut at a level boundary decodes the levels before it", "[format]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 77);
    vqz_header h = base_image(4, 7, 2, 3, 5, 1024);
    h.K[2] = 16;
    h.K[4] = 65536;
    h.image.channels = 4; // with an alpha plane, which lies before the payload
    Source s = make_source(h, &r);
    s.alpha = random_alpha(&r, h);
    s.has_meta = true;
    s.meta = "{\"k\": 1}";
    bytes f = write_source(s);
    vqz_container *full = nullptr;
    REQUIRE(vqz_container_open_memory(f.data(), f.size(), nullptr, &full) == VQZ_OK);
    size_t n = (size_t)vqz_header_level_indices(&h);
    indices grid(n);
    for (int k = 0; k <= h.levels; k++) {
        vqz_frame_info fi;
        size_t cut = f.size();
        if (k < h.levels) {
            REQUIRE(vqz_container_frame_info(full, k, 0, &fi) == VQZ_OK);
            cut = (size_t)fi.offset;
        }
        vqz_container *c = nullptr;
        REQUIRE(vqz_container_open_memory(f.data(), cut, nullptr, &c) == VQZ_OK);
        REQUIRE(vqz_container_levels_available(c) == k);
        for (int l = 0; l < h.levels; l++) {
            vqz_status st = vqz_container_read_level(c, l, grid.data(), n);
            if (l < k) {
                REQUIRE(st == VQZ_OK);
                REQUIRE(grid == s.levels[l]);
            } else {
                REQUIRE(st == VQZ_ERR_MISSING);
                REQUIRE(contains(vqz_last_error(), "level " + std::to_string(l) + ", chunk 0: frame absent"));
            }
        }
        // Alpha and metadata survive any cut in the payload.
        bytes a((size_t)vqz_container_alpha_size(c));
        REQUIRE(vqz_container_read_alpha(c, a.data(), a.size()) == VQZ_OK);
        REQUIRE(a == s.alpha);
        vqz_container_free(c);
    }

    // The lower-rate copy: a new header, then the sections and the payload prefix byte for byte.
    char path[] = "/tmp/vqz-test-levels-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    for (int k = 1; k <= h.levels; k++) {
        REQUIRE(vqz_container_write_levels(full, k, path) == VQZ_OK);
        std::ifstream in(path, std::ios::binary);
        bytes g((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        vqz_container *c = nullptr;
        REQUIRE(vqz_container_open_memory(g.data(), g.size(), nullptr, &c) == VQZ_OK);
        REQUIRE(vqz_container_header(c)->levels == k);
        uint64_t gh = vqz_get_u32(g.data() + 12), fh = vqz_get_u32(f.data() + 12);
        vqz_frame_info end_f;
        size_t src_end = f.size();
        if (k < h.levels) {
            REQUIRE(vqz_container_frame_info(full, k, 0, &end_f) == VQZ_OK);
            src_end = (size_t)end_f.offset;
        }
        REQUIRE(g.size() - gh == src_end - fh);
        REQUIRE(std::memcmp(g.data() + gh, f.data() + fh, src_end - fh) == 0);
        Source t = s;
        t.h.levels = (uint8_t)k;
        t.levels.resize((size_t)k);
        vqz_container_free(c);
        require_reads_back(g, t);
    }
    REQUIRE(vqz_container_write_levels(full, 0, path) == VQZ_ERR_INVALID_ARG);
    unlink(path);
    vqz_container_free(full);
}

TEST_CASE("a file cut anywhere else is detected", "[format]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 78);
    vqz_header h = base_image(2, 5, 2, 2, 3, 700);
    h.image.channels = 2;
    Source s = make_source(h, &r);
    s.alpha = random_alpha(&r, h);
    s.has_meta = true;
    s.meta = "cut me";
    bytes f = write_source(s);
    vqz_container *full = nullptr;
    REQUIRE(vqz_container_open_memory(f.data(), f.size(), nullptr, &full) == VQZ_OK);
    uint32_t C = vqz_header_chunk_count(&h);
    std::vector<vqz_frame_info> frames;
    for (int l = 0; l < h.levels; l++)
        for (uint32_t ch = 0; ch < C; ch++) {
            vqz_frame_info fi;
            REQUIRE(vqz_container_frame_info(full, l, ch, &fi) == VQZ_OK);
            frames.push_back(fi);
        }
    uint64_t payload = frames[0].offset;
    for (size_t cut = 0; cut < f.size(); cut++) {
        INFO("cut at byte " << cut << " of " << f.size());
        vqz_container *c = nullptr;
        vqz_status st = vqz_container_open_memory(f.data(), cut, nullptr, &c);
        if (cut < payload) {
            // Inside the header or the sections: the file cannot be used at all.
            REQUIRE(st == VQZ_ERR_TRUNCATED);
            continue;
        }
        REQUIRE(st == VQZ_OK);
        int avail = 0;
        while (avail < h.levels && frames[(size_t)avail * C + C - 1].offset + frames[(size_t)avail * C + C - 1].comp_size <= cut)
            avail++;
        REQUIRE(vqz_container_levels_available(c) == avail);
        for (int l = 0; l < h.levels; l++)
            for (uint32_t ch = 0; ch < C; ch++) {
                const vqz_frame_info &fi = frames[(size_t)l * C + ch];
                indices part((size_t)vqz_header_chunk_indices(&h, ch));
                vqz_status cs = vqz_container_read_chunk(c, l, ch, part.data(), part.size());
                if (fi.offset >= cut)
                    REQUIRE(cs == VQZ_ERR_MISSING);
                else if (fi.offset + fi.comp_size > cut) {
                    REQUIRE(cs == VQZ_ERR_TRUNCATED);
                    REQUIRE(contains(vqz_last_error(), "level " + std::to_string(l) + ", chunk " + std::to_string(ch) +
                                                           ": frame cut"));
                } else
                    REQUIRE(cs == VQZ_OK);
            }
        vqz_container_free(c);
    }
    vqz_container_free(full);
    // Extra bytes at the end are damage too.
    bytes longer = f;
    longer.push_back(0);
    REQUIRE(open_status(longer, longer.size()) == VQZ_ERR_FORMAT);
    REQUIRE(contains(vqz_last_error(), "1 bytes of trailing data"));
}

TEST_CASE("damage is reported with the exact code and a message naming it", "[format]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 99);
    vqz_header h = base_image(3, 4, 2, 2, 3, 300);
    Source s = make_source(h, &r);
    bytes f = write_source(s);
    REQUIRE(open_status(f, f.size()) == VQZ_OK);

    SECTION("bad signature")
    {
        bytes g = f;
        g[1] = 'X';
        REQUIRE(open_status(g, g.size()) == VQZ_ERR_SIGNATURE);
        REQUIRE(contains(vqz_last_error(), "<memory>: bad signature: not a vqz file (starts with 89 58 51 5a"));
        // Text-mode damage: CR LF turned into LF.
        g = f;
        g.erase(g.begin() + 4);
        REQUIRE(open_status(g, g.size()) == VQZ_ERR_SIGNATURE);
        REQUIRE(contains(vqz_last_error(), "CR LF became LF"));
        g = f;
        g[0] = 0x09;
        REQUIRE(open_status(g, g.size()) == VQZ_ERR_SIGNATURE);
        REQUIRE(contains(vqz_last_error(), "high bit"));
        bytes png = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
        REQUIRE(open_status(png, png.size()) == VQZ_ERR_SIGNATURE);
    }
    SECTION("unknown major version")
    {
        bytes g = f;
        vqz_put_u16(g.data() + 8, 2);
        vqz_put_u16(g.data() + 10, 3);
        REQUIRE(open_status(g, g.size()) == VQZ_ERR_VERSION);
        REQUIRE(contains(vqz_last_error(), "format version 2.3 is not supported (this reader: 1.1)"));
        vqz_put_u16(g.data() + 8, 0);
        REQUIRE(open_status(g, g.size()) == VQZ_ERR_VERSION);
    }
    SECTION("truncated header")
    {
        for (size_t cut : {0u, 5u, 8u, 15u, 16u, 100u, 140u}) {
            REQUIRE(open_status(f, cut) == VQZ_ERR_TRUNCATED);
        }
        REQUIRE(open_status(f, 100) == VQZ_ERR_TRUNCATED);
        REQUIRE(contains(vqz_last_error(), "header of " + std::to_string(vqz_get_u32(f.data() + 12)) +
                                               " bytes cut after 100 bytes"));
        REQUIRE(open_status(f, 0) == VQZ_ERR_TRUNCATED);
        REQUIRE(contains(vqz_last_error(), "empty"));
    }
    SECTION("header CRC")
    {
        bytes g = f;
        g[OFF_IMG_WIDTH] ^= 1;
        REQUIRE(open_status(g, g.size()) == VQZ_ERR_CHECKSUM);
        REQUIRE(contains(vqz_last_error(), "header CRC-32 mismatch (stored"));
        // Any bit of the header, frame table included.
        uint32_t hs = vqz_get_u32(f.data() + 12);
        for (uint32_t i = 16; i < hs; i += 5) {
            g = f;
            g[i] ^= 0x10;
            REQUIRE(open_status(g, g.size()) == VQZ_ERR_CHECKSUM);
        }
    }
    SECTION("frame checksum")
    {
        vqz_container *c = nullptr;
        REQUIRE(vqz_container_open_memory(f.data(), f.size(), nullptr, &c) == VQZ_OK);
        vqz_frame_info fi;
        REQUIRE(vqz_container_frame_info(c, 1, 2, &fi) == VQZ_OK);
        vqz_container_free(c);
        bytes g = f;
        g[(size_t)fi.offset + fi.comp_size / 2] ^= 0x01;
        REQUIRE(vqz_container_open_memory(g.data(), g.size(), nullptr, &c) == VQZ_OK);
        indices grid((size_t)vqz_header_level_indices(&h));
        REQUIRE(vqz_container_read_level(c, 0, grid.data(), grid.size()) == VQZ_OK);
        REQUIRE(vqz_container_read_level(c, 1, grid.data(), grid.size()) == VQZ_ERR_CHECKSUM);
        REQUIRE(contains(vqz_last_error(), "<memory>: level 1, chunk 2: frame CRC-32 mismatch"));
        indices part1((size_t)vqz_header_chunk_indices(&h, 1)), part2((size_t)vqz_header_chunk_indices(&h, 2));
        REQUIRE(vqz_container_read_chunk(c, 1, 1, part1.data(), part1.size()) == VQZ_OK);
        REQUIRE(vqz_container_read_chunk(c, 1, 2, part2.data(), part2.size()) == VQZ_ERR_CHECKSUM);
        vqz_container_free(c);
    }
    SECTION("declared size over a limit")
    {
        vqz_limits lim;
        vqz_limits_default(&lim);
        vqz_limits l1 = lim;
        l1.max_header_bytes = 100;
        REQUIRE(open_status(f, f.size(), &l1) == VQZ_ERR_LIMIT);
        REQUIRE(contains(vqz_last_error(), "exceeds the limit of 100"));
        vqz_limits l2 = lim;
        l2.max_level_indices = 11;
        REQUIRE(open_status(f, f.size(), &l2) == VQZ_ERR_LIMIT);
        REQUIRE(contains(vqz_last_error(), "latent grid 1 x 3 x 4 exceeds the limit of 11 indices per level"));
        vqz_limits l3 = lim;
        l3.max_chunk_indices = 3;
        REQUIRE(open_status(f, f.size(), &l3) == VQZ_ERR_LIMIT);
        REQUIRE(contains(vqz_last_error(), "chunk of 1 x 2 x 2 indices exceeds the limit of 3"));
        vqz_limits l4 = lim;
        l4.max_image_pixels = 10;
        REQUIRE(open_status(f, f.size(), &l4) == VQZ_ERR_LIMIT);
        REQUIRE(contains(vqz_last_error(), "pixels"));
        // A hostile header with a sane CRC: a huge grid, a huge compressed size.
        bytes g = f;
        vqz_put_u32(g.data() + OFF_GRID_WIDTH, 0xfffffff0u);
        fix_header_crc(g);
        REQUIRE(open_status(g, g.size()) == VQZ_ERR_LIMIT);
        REQUIRE(contains(vqz_last_error(), "exceeds the limit of 67108864 indices per level"));
        g = f;
        uint32_t hs = vqz_get_u32(g.data() + 12);
        size_t entry0 = hs - 4 - (size_t)VQZ_FRAME_ENTRY_SIZE * h.levels * vqz_header_chunk_count(&h);
        vqz_put_u32(g.data() + entry0, 0x7fffffffu);
        fix_header_crc(g);
        REQUIRE(open_status(g, g.size()) == VQZ_ERR_LIMIT);
        REQUIRE(contains(vqz_last_error(), "level 0, chunk 0: compressed size 2147483647 bytes is outside"));
        // A header_size far beyond the default limit is refused before anything is read or allocated.
        g = f;
        vqz_put_u32(g.data() + 12, 0xffffff00u);
        REQUIRE(open_status(g, g.size()) == VQZ_ERR_LIMIT);
        REQUIRE(contains(vqz_last_error(), "header size 4294967040 exceeds the limit of 16777216"));
    }
    SECTION("index out of range")
    {
        for (uint32_t K : {5u, 300u}) {
            vqz_header hk = base_image(1, 3, 1, 3, 1, K);
            // Indices 1, K (one too many), 0, packed by hand and compressed with plain zstd.
            indices v = {1, (uint16_t)K, 0};
            bytes raw(vqz_pack_size(K, 3));
            vqz_pack_indices(v.data(), 3, K, raw.data(), nullptr, nullptr);
            bytes frame(ZSTD_compressBound(raw.size()));
            size_t fn = ZSTD_compress(frame.data(), frame.size(), raw.data(), raw.size(), 3);
            REQUIRE(!ZSTD_isError(fn));
            vqz_container_writer *w = nullptr;
            REQUIRE(vqz_container_writer_create(&hk, &w) == VQZ_OK);
            REQUIRE(vqz_container_writer_put_chunk(w, 0, 0, v.data(), 3) == VQZ_ERR_INDEX_RANGE);
            REQUIRE(vqz_container_writer_put_frame(w, 0, 0, frame.data(), fn, (uint32_t)raw.size()) == VQZ_OK);
            uint64_t size = 0;
            REQUIRE(vqz_container_writer_size(w, &size) == VQZ_OK);
            bytes g((size_t)size);
            REQUIRE(vqz_container_writer_write_buffer(w, g.data(), g.size()) == VQZ_OK);
            vqz_container_writer_free(w);
            vqz_container *c = nullptr;
            REQUIRE(vqz_container_open_memory(g.data(), g.size(), nullptr, &c) == VQZ_OK);
            indices back(3);
            REQUIRE(vqz_container_read_level(c, 0, back.data(), 3) == VQZ_ERR_INDEX_RANGE);
            REQUIRE(contains(vqz_last_error(), "level 0, chunk 0: index " + std::to_string(K) +
                                                   " at position 1 is >= K=" + std::to_string(K)));
            vqz_container_free(c);
        }
    }
    SECTION("model hash mismatch")
    {
        vqz_container *c = nullptr;
        REQUIRE(vqz_container_open_memory(f.data(), f.size(), nullptr, &c) == VQZ_OK);
        REQUIRE(vqz_container_check_model(c, "test-model", h.model_sha256) == VQZ_OK);
        uint8_t other[32];
        std::memcpy(other, h.model_sha256, 32);
        other[31] ^= 1;
        REQUIRE(vqz_container_check_model(c, "test-model", other) == VQZ_ERR_MODEL_MISMATCH);
        REQUIRE(contains(vqz_last_error(), "made with model \"test-model\" (bundle sha256 01080f161d242b32...), "
                                           "not with \"test-model\" (0108"));
        REQUIRE(vqz_container_check_model(c, "image-f16", h.model_sha256) == VQZ_ERR_MODEL_MISMATCH);
        REQUIRE(contains(vqz_last_error(), "not with \"image-f16\""));
        vqz_container_free(c);
    }
    SECTION("malformed frames and fields")
    {
        vqz_container *c = nullptr;
        REQUIRE(vqz_container_open_memory(f.data(), f.size(), nullptr, &c) == VQZ_OK);
        vqz_frame_info fi;
        REQUIRE(vqz_container_frame_info(c, 0, 0, &fi) == VQZ_OK);
        vqz_container_free(c);
        // A frame whose bytes (and CRC) are consistent but which is not a zstd frame.
        bytes g = f;
        std::memset(g.data() + fi.offset, 0x55, fi.comp_size);
        uint32_t hs = vqz_get_u32(g.data() + 12);
        size_t entry0 = hs - 4 - (size_t)VQZ_FRAME_ENTRY_SIZE * h.levels * vqz_header_chunk_count(&h);
        vqz_put_u32(g.data() + entry0 + 8, vqz_crc32(g.data() + fi.offset, fi.comp_size));
        fix_header_crc(g);
        REQUIRE(vqz_container_open_memory(g.data(), g.size(), nullptr, &c) == VQZ_OK);
        indices part((size_t)vqz_header_chunk_indices(&h, 0));
        REQUIRE(vqz_container_read_chunk(c, 0, 0, part.data(), part.size()) == VQZ_ERR_FORMAT);
        REQUIRE(contains(vqz_last_error(), "level 0, chunk 0: not a zstd frame"));
        vqz_container_free(c);
        // Reserved bytes, bad enumerations, inconsistent geometry.
        struct {
            size_t off;
            uint8_t val;
            vqz_status want;
            const char *msg;
        } edits[] = {
            {OFF_RESERVED1 + 3, 1, VQZ_ERR_FORMAT, "reserved header bytes"},
            {OFF_IMG_RESERVED, 1, VQZ_ERR_FORMAT, "reserved image geometry"},
            {OFF_MEDIA_KIND, 7, VQZ_ERR_UNSUPPORTED, "media kind 7"},
            {OFF_IMG_COLOUR, 9, VQZ_ERR_UNSUPPORTED, "colour space 9"},
            {OFF_IMG_DEPTH, 12, VQZ_ERR_FORMAT, "bit depth 12"},
            {OFF_IMG_CHANNELS, 2, VQZ_ERR_FORMAT, "2 channels but no alpha section"},
            {OFF_CHUNK_WIDTH, 9, VQZ_ERR_FORMAT, "does not fit the latent grid"},
            {OFF_STRIDE + 2, 2, VQZ_ERR_FORMAT, "stride"},
        };
        for (auto &e : edits) {
            g = f;
            g[e.off] = e.val;
            fix_header_crc(g);
            REQUIRE(open_status(g, g.size()) == e.want);
            INFO(vqz_last_error());
            REQUIRE(contains(vqz_last_error(), e.msg));
        }
    }
}

TEST_CASE("newer minor versions are read; unknown sections are skipped or refused", "[format]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 7);
    vqz_header h = base_image(2, 2, 2, 2, 2, 9);
    Source s = make_source(h, &r);
    s.has_meta = true;
    s.meta = "hello";
    s.modelled = false; // zstd frames: the file is 1.0, the rebuilt one 1.2 without a modelled-frames section
    bytes f = write_source(s);
    vqz_container *c = nullptr;
    REQUIRE(vqz_container_open_memory(f.data(), f.size(), nullptr, &c) == VQZ_OK);
    vqz_frame_info fi;
    std::vector<vqz_frame_info> frames;
    for (int l = 0; l < 2; l++) {
        REQUIRE(vqz_container_frame_info(c, l, 0, &fi) == VQZ_OK);
        frames.push_back(fi);
    }
    vqz_container_free(c);
    bytes payload(f.begin() + frames[0].offset, f.end());

    // Rebuild the file with a 1.2 header: 8 more fixed bytes and one more, unknown section.
    auto rebuild = [&](uint16_t extra_flags) {
        vqz_section_entry sec[2];
        sec[0].type = VQZ_SECTION_METADATA;
        sec[0].flags = 0;
        sec[0].size = 5;
        sec[0].crc32 = vqz_crc32("hello", 5);
        const char future[] = "from the future";
        sec[1].type = 0x4242;
        sec[1].flags = extra_flags;
        sec[1].size = sizeof future - 1;
        sec[1].crc32 = vqz_crc32(future, sizeof future - 1);
        bytes hdr((size_t)vqz_encoded_header_size(&h, 2));
        vqz_encode_header(&h, sec, 2, frames.data(), hdr.data());
        bytes g(hdr.begin(), hdr.begin() + VQZ_FIXED_HEADER_SIZE);
        g.insert(g.end(), 8, 0xee); // a field this reader does not know
        g.insert(g.end(), hdr.begin() + VQZ_FIXED_HEADER_SIZE, hdr.end());
        vqz_put_u16(g.data() + OFF_MINOR, 2);
        vqz_put_u16(g.data() + OFF_FIXED_SIZE, VQZ_FIXED_HEADER_SIZE + 8);
        vqz_put_u32(g.data() + OFF_HEADER_SIZE, (uint32_t)g.size());
        g[OFF_RESERVED1] = 0x77; // reserved in 1.0 and 1.1, maybe used by 1.2
        fix_header_crc(g);
        g.insert(g.end(), s.meta.begin(), s.meta.end());
        g.insert(g.end(), future, future + sizeof future - 1);
        g.insert(g.end(), payload.begin(), payload.end());
        return g;
    };
    bytes g = rebuild(0);
    REQUIRE(open_status(g, g.size()) == VQZ_OK);
    REQUIRE(vqz_container_open_memory(g.data(), g.size(), nullptr, &c) == VQZ_OK);
    REQUIRE(vqz_container_header(c)->version_minor == 2);
    indices grid(4);
    for (int l = 0; l < 2; l++) {
        REQUIRE(vqz_container_read_level(c, l, grid.data(), 4) == VQZ_OK);
        REQUIRE(grid == s.levels[l]);
    }
    const char *text;
    size_t len;
    REQUIRE(vqz_container_metadata(c, &text, &len) == VQZ_OK);
    REQUIRE(std::string(text, len) == "hello");
    // The lower-rate copy of a newer file is a plain 1.0 file without the unknown section.
    char path[] = "/tmp/vqz-test-minor-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    REQUIRE(vqz_container_write_levels(c, 1, path) == VQZ_OK);
    vqz_container_free(c);
    REQUIRE(vqz_container_open_file(path, nullptr, &c) == VQZ_OK);
    REQUIRE(vqz_container_header(c)->version_minor == 0);
    REQUIRE(vqz_container_metadata(c, &text, &len) == VQZ_OK);
    vqz_container_free(c);
    unlink(path);

    g = rebuild(1); // critical
    REQUIRE(open_status(g, g.size()) == VQZ_ERR_UNSUPPORTED);
    REQUIRE(contains(vqz_last_error(), "unknown critical section type 16962 (format 1.2)"));
    // In a 1.0 file the same reserved byte is an error.
    bytes z = f;
    z[OFF_RESERVED1] = 0x77;
    fix_header_crc(z);
    REQUIRE(open_status(z, z.size()) == VQZ_ERR_FORMAT);
}

TEST_CASE("files are written atomically and opened from disk", "[format]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 8);
    Source s = make_source(base_image(2, 3, 1, 2, 2, 100), &r);
    vqz_container_writer *w = nullptr;
    REQUIRE(vqz_container_writer_create(&s.h, &w) == VQZ_OK);
    // An incomplete writer refuses to produce a file, naming what is missing.
    REQUIRE(vqz_container_writer_put_level(w, 0, s.levels[0].data(), s.levels[0].size()) == VQZ_OK);
    uint64_t size = 0;
    REQUIRE(vqz_container_writer_size(w, &size) == VQZ_ERR_INVALID_ARG);
    REQUIRE(contains(vqz_last_error(), "level 1, chunk 0 was not given"));
    REQUIRE(vqz_container_writer_put_level(w, 1, s.levels[1].data(), s.levels[1].size()) == VQZ_OK);
    TempDir tmp("vqz-test-dir");
    const std::string dir = tmp.path;
    std::string path = std::string(dir) + "/out.vqz";
    {
        std::ofstream old(path);
        old << "previous contents";
    }
    // Writing into a folder that does not exist fails and leaves nothing behind.
    std::string bad = std::string(dir) + "/missing/out.vqz";
    REQUIRE(vqz_container_writer_write_file(w, bad.c_str()) == VQZ_ERR_IO);
    REQUIRE(contains(vqz_last_error(), "cannot create a temporary file"));
    REQUIRE(vqz_container_writer_write_file(w, path.c_str()) == VQZ_OK);
    vqz_container_writer_free(w);
    // Only the target is in the folder: the temporary file was renamed.
    REQUIRE(dir_names(dir).size() == 1);
    vqz_container *c = nullptr;
    REQUIRE(vqz_container_open_file(path.c_str(), nullptr, &c) == VQZ_OK);
    indices grid(6);
    REQUIRE(vqz_container_read_level(c, 1, grid.data(), 6) == VQZ_OK);
    REQUIRE(grid == s.levels[1]);
    vqz_container_free(c);
    REQUIRE(vqz_container_open_file((std::string(dir) + "/nope.vqz").c_str(), nullptr, &c) == VQZ_ERR_IO);
    REQUIRE(contains(vqz_last_error(), "nope.vqz: cannot open"));
    REQUIRE(c == nullptr);
    REQUIRE(vqz_container_open_file(dir.c_str(), nullptr, &c) == VQZ_ERR_IO);
}

namespace {

// Zipf(s) over K symbols, ranks shuffled so that frequency is unrelated to the index value (as in a
// trained codebook), or left in order.
// A Zipf distribution of exponent s over K codewords, its ranks shuffled over the index range (as the
// frequent codewords of a trained codebook are).
struct Zipf {
    std::vector<double> cdf, p;
    std::vector<uint32_t> perm;
    Zipf(vqz_rng *r, uint32_t K, double s, bool shuffle) : cdf(K), p(K), perm(K)
    {
        double t = 0;
        for (uint32_t k = 0; k < K; k++)
            cdf[k] = t += std::pow(k + 1.0, -s);
        for (uint32_t k = 0; k < K; k++) {
            p[k] = std::pow(k + 1.0, -s) / t;
            perm[k] = k;
        }
        if (shuffle)
            for (uint32_t k = K - 1; k > 0; k--)
                std::swap(perm[k], perm[vqz_rng_below(r, k + 1)]);
    }
    indices draw(vqz_rng *r, size_t n) const
    {
        indices v(n);
        for (auto &x : v) {
            double u = vqz_rng_uniform(r) * cdf.back();
            x = (uint16_t)perm[std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin()];
        }
        return v;
    }
    double entropy() const // of the source, bits per index
    {
        double h = 0;
        for (double q : p)
            h -= q * std::log2(q);
        return h;
    }
};

// Size of one chunk of v written as a whole file's only frame (zstd or modelled, whichever the writer
// picks; modelled frames from the prior when given), after checking that it reads back.
uint32_t frame_bytes(const indices &v, uint32_t K, const vqz_prior *prior, int modelled)
{
    size_t n = v.size();
    vqz_header h = base_image(1, (uint32_t)n, 1, (uint32_t)n, 1, K);
    vqz_container_writer *w = nullptr;
    REQUIRE(vqz_container_writer_create(&h, &w) == VQZ_OK);
    vqz_container_writer_set_modelled(w, modelled);
    REQUIRE(vqz_container_writer_set_prior(w, 0, prior) == VQZ_OK);
    REQUIRE(vqz_container_writer_put_chunk(w, 0, 0, v.data(), n) == VQZ_OK);
    uint64_t size = 0;
    REQUIRE(vqz_container_writer_size(w, &size) == VQZ_OK);
    bytes f((size_t)size);
    REQUIRE(vqz_container_writer_write_buffer(w, f.data(), f.size()) == VQZ_OK);
    vqz_container_writer_free(w);
    vqz_container *c = nullptr;
    REQUIRE(vqz_container_open_memory(f.data(), f.size(), nullptr, &c) == VQZ_OK);
    if (prior)
        REQUIRE(vqz_container_set_prior(c, 0, prior) == VQZ_OK);
    vqz_frame_info fi;
    REQUIRE(vqz_container_frame_info(c, 0, 0, &fi) == VQZ_OK);
    indices back(n);
    REQUIRE(vqz_container_read_chunk(c, 0, 0, back.data(), n) == VQZ_OK);
    REQUIRE(back == v);
    vqz_container_free(c);
    return fi.comp_size;
}

// Naive 0th-order entropy in bits per index, and the ideal adaptive (Krichevsky-Trofimov) code length per
// index: what a coder that learns the statistics from the stream itself cannot beat on average.
void entropies(const indices &v, uint32_t K, double *h0, double *kt)
{
    std::vector<double> c(K, 0);
    for (auto x : v)
        c[x]++;
    double n = (double)v.size(), h = 0, lp = 0;
    for (double ci : c) {
        if (ci > 0) {
            h -= ci / n * std::log2(ci / n);
            lp += std::lgamma(ci + 0.5) - std::lgamma(0.5);
        }
    }
    lp -= std::lgamma(n + K / 2.0) - std::lgamma(K / 2.0);
    *h0 = h;
    *kt = -lp / std::log(2.0) / n;
}

} // namespace

TEST_CASE("packing spends within 5% of the 0th-order entropy", "[format]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 4096);
    std::printf("packing efficiency: bytes of the frame against n x H0 / 8 (H0: the stream's empirical entropy;\n"
                "H: the source's; zstd: zstd frames only; model: the writer's choice without a prior; prior: with a\n"
                "prior counted on 2^20 other draws of the source; KT: the ideal adaptive coder)\n");
    std::printf("%6s %6s %4s %7s %7s %7s %7s %7s %7s\n", "K", "n", "s", "H0", "H over", "zstd", "model", "prior",
                "KT");
    for (uint32_t K : {16u, 256u, 1024u, 4096u, 65536u}) {
        for (size_t n : {4096u, 65536u}) {
            for (double s : {0.8, 1.0, 1.2}) {
                Zipf z(&r, K, s, true);
                indices v = z.draw(&r, n), train = z.draw(&r, (size_t)1 << 20);
                std::vector<double> counts(K, 0);
                for (uint16_t x : train)
                    counts[x]++;
                std::vector<uint32_t> freq(K);
                REQUIRE(vqz_prior_from_counts(counts.data(), K, 0.5, freq.data()) == VQZ_OK);
                vqz_prior prior;
                REQUIRE(vqz_prior_init(&prior, freq.data(), K) == VQZ_OK);
                double h0, kt;
                entropies(v, K, &h0, &kt);
                double ideal = h0 * (double)n / 8;
                auto over = [&](double bytes_) { return 100 * (bytes_ / ideal - 1); };
                double zs = over(frame_bytes(v, K, nullptr, 0)), ms = over(frame_bytes(v, K, nullptr, 1));
                double ps = over(frame_bytes(v, K, &prior, 1)), hs = 100 * (z.entropy() / h0 - 1);
                vqz_prior_free(&prior);
                std::printf("%6u %6zu %4.1f %7.3f %6.1f%% %6.1f%% %6.1f%% %6.1f%% %6.1f%%\n", K, n, s, h0, hs, zs, ms,
                            ps, 100 * (kt / h0 - 1));
                INFO("K=" << K << " n=" << n << " s=" << s << ": zstd " << zs << "%, model " << ms << "%, prior "
                          << ps << "% over H0; the source's entropy is " << hs << "% over");
                // Never worse than zstd alone, and the prior never hurts (the writer keeps the smaller frame).
                REQUIRE(ms <= zs + 1e-9);
                REQUIRE(ps <= ms + 0.5);
                // The acceptance bound wherever a coder can meet it: where the source's entropy is within 3%
                // of the stream's empirical entropy. Where it is not (large alphabets against short streams),
                // no coder reaches H0 on average, since the expected code length is at least the source's
                // entropy: the prior then has to come within 1.5% of that.
                if (hs <= 3.0)
                    REQUIRE(ps <= 5.0);
                else
                    REQUIRE(ps <= hs + 1.5);
            }
        }
    }
}

TEST_CASE("level statistics for vqz-info", "[format]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 12);
    vqz_header h = base_image(5, 6, 2, 4, 3, 512);
    h.K[1] = 4;
    Source s = make_source(h, &r);
    s.levels[1] = indices(30, 0);
    for (int i = 0; i < 10; i++)
        s.levels[1][(size_t)i] = (uint16_t)(1 + i % 3);
    bytes f = write_source(s);
    vqz_container *c = nullptr;
    REQUIRE(vqz_container_open_memory(f.data(), f.size(), nullptr, &c) == VQZ_OK);
    for (int l = 0; l < h.levels; l++) {
        vqz_level_stats st;
        REQUIRE(vqz_container_level_stats(c, l, &st) == VQZ_OK);
        REQUIRE(st.indices == 30);
        REQUIRE(st.table_bytes == 12u * vqz_header_chunk_count(&h));
        uint64_t comp = 0, raw = 0;
        for (uint32_t ch = 0; ch < vqz_header_chunk_count(&h); ch++) {
            vqz_frame_info fi;
            REQUIRE(vqz_container_frame_info(c, l, ch, &fi) == VQZ_OK);
            comp += fi.comp_size;
            raw += fi.raw_size;
        }
        REQUIRE(st.comp_bytes == comp);
        REQUIRE(st.raw_bytes == raw);
        double h0, kt;
        entropies(s.levels[l], h.K[l], &h0, &kt);
        REQUIRE(std::fabs(st.entropy_bits - h0) < 1e-9);
    }
    // Level 1: 20 zeros, four 1s, three 2s, three 3s.
    vqz_level_stats st;
    REQUIRE(vqz_container_level_stats(c, 1, &st) == VQZ_OK);
    REQUIRE(st.distinct == 4);
    double want = -(20.0 / 30) * std::log2(20.0 / 30) - (4.0 / 30) * std::log2(4.0 / 30) -
                  2 * (3.0 / 30) * std::log2(3.0 / 30);
    REQUIRE(std::fabs(st.entropy_bits - want) < 1e-12);
    vqz_container_free(c);
    REQUIRE(std::string(vqz_media_kind_name(VQZ_MEDIA_AUDIO)) == "audio");
    REQUIRE(std::string(vqz_colour_space_name(VQZ_COLOUR_SRGB)) == "sRGB");
    REQUIRE(std::string(vqz_colour_space_name(42)) == "unknown");
}

namespace {
bytes read_file(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    return bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
} // namespace

TEST_CASE("the container fuzz corpus replays cleanly", "[format]")
{
    size_t files = 0;
    for (const char *target : {"container", "roundtrip"}) {
        for (const std::string &p : dir_paths(vqz_test_path(std::string("fuzz/corpus/") + target))) {
            bytes b = read_file(p);
            INFO(p);
            int bad = std::strcmp(target, "container") == 0 ? vqz_fuzz_container(b.data(), b.size())
                                                           : vqz_fuzz_roundtrip(b.data(), b.size());
            REQUIRE(bad == 0);
            files++;
        }
    }
    // The vectors are part of the container corpus too.
    for (const std::string &p : dir_paths(vqz_test_path("vectors"))) {
        bytes b = read_file(p);
        REQUIRE(vqz_fuzz_container(b.data(), b.size()) == 0);
        files++;
    }
    std::printf("fuzz replay: %zu container inputs\n", files);
    REQUIRE(files > 0);
}
