// test_format_vectors.cpp — the conformance vectors in tests/vectors/ (tiny .vqz and .safetensors files
// with their expected parse results in manifest.json): the C readers agree with the manifest, the writers
// reproduce the files, the hex dumps in spec/ are these files, and the independent Python reader
// (tools/vqz_reader.py) agrees too. `vqz-tests "[.regen]"` rewrites the vectors and the manifest.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>
#include <zstd.h>

#include "testutil.h"

extern "C" {
#include <cjson/cJSON.h>

#include "common/status.h"
#include "format/bundle.h"
#include "format/bytes.h"
#include "format/container.h"
#include "format/container_internal.h"
#include "format/crc32.h"
#include "format/pack.h"
#include "format/sha256.h"
#include "nn/rng.h"
}

namespace {

typedef std::vector<uint8_t> bytes;
typedef std::vector<uint16_t> indices;

const char *status_name(vqz_status s)
{
    switch (s) {
    case VQZ_OK: return "ok";
    case VQZ_ERR_FORMAT: return "VQZ_ERR_FORMAT";
    case VQZ_ERR_SIGNATURE: return "VQZ_ERR_SIGNATURE";
    case VQZ_ERR_VERSION: return "VQZ_ERR_VERSION";
    case VQZ_ERR_TRUNCATED: return "VQZ_ERR_TRUNCATED";
    case VQZ_ERR_CHECKSUM: return "VQZ_ERR_CHECKSUM";
    case VQZ_ERR_LIMIT: return "VQZ_ERR_LIMIT";
    case VQZ_ERR_INDEX_RANGE: return "VQZ_ERR_INDEX_RANGE";
    case VQZ_ERR_UNSUPPORTED: return "VQZ_ERR_UNSUPPORTED";
    case VQZ_ERR_MISSING: return "VQZ_ERR_MISSING";
    case VQZ_ERR_NONFINITE: return "VQZ_ERR_NONFINITE";
    case VQZ_ERR_NOT_FOUND: return "VQZ_ERR_NOT_FOUND";
    default: return "other";
    }
}

std::string hex(const uint8_t *p, size_t n)
{
    std::string s;
    char b[3];
    for (size_t i = 0; i < n; i++) {
        std::snprintf(b, sizeof b, "%02x", p[i]);
        s += b;
    }
    return s;
}

bytes read_file(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    return bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// One vector: its bytes and what a reader must report.
struct Vector {
    std::string file;
    bytes data;
    cJSON *expect; // owned by the manifest once added
};

cJSON *int_array(const std::vector<long long> &v)
{
    cJSON *a = cJSON_CreateArray();
    for (long long x : v)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)x));
    return a;
}

// ---- bundles ------------------------------------------------------------------------------------

// Serialise a bundle writer's content (sha256, when not NULL, gets the bundle hash) and free the writer.
bytes finish_bundle(vqz_bundle_writer *bw, uint8_t *sha)
{
    uint64_t size = 0;
    REQUIRE(vqz_bundle_writer_size(bw, &size) == VQZ_OK);
    bytes out((size_t)size);
    REQUIRE(vqz_bundle_writer_write_buffer(bw, out.data(), out.size(), sha) == VQZ_OK);
    vqz_bundle_writer_free(bw);
    return out;
}

bytes bundle_tiny(uint8_t sha[32])
{
    static const float w[6] = {0.5f, -1.0f, 2.0f, 0.25f, 3.0f, -0.125f};
    static const float b[2] = {1.0f, -2.0f};
    int64_t ws[2] = {2, 3}, bs[1] = {2};
    vqz_bundle_writer *bw = nullptr;
    REQUIRE(vqz_bundle_writer_create(&bw) == VQZ_OK);
    REQUIRE(vqz_bundle_writer_set_meta(bw, "format", "vqz-bundle-1") == VQZ_OK);
    REQUIRE(vqz_bundle_writer_set_meta(bw, "name", "tiny") == VQZ_OK);
    REQUIRE(vqz_bundle_writer_set_meta(bw, "config", "{\"kind\":\"image\",\"D\":2}") == VQZ_OK);
    REQUIRE(vqz_bundle_writer_add(bw, "dec.w", 2, ws, w, VQZ_DTYPE_F32) == VQZ_OK);
    REQUIRE(vqz_bundle_writer_add(bw, "enc.b", 1, bs, b, VQZ_DTYPE_F32) == VQZ_OK);
    return finish_bundle(bw, sha);
}

bytes bundle_halfs()
{
    static const float h[4] = {1.0f, -2.0f, 0.5f, 65504.0f};
    static const float b[4] = {1.0f, -1.5f, 3.140625f, 0.0009765625f};
    int64_t hs[1] = {4}, bs[2] = {2, 2};
    vqz_bundle_writer *bw = nullptr;
    REQUIRE(vqz_bundle_writer_create(&bw) == VQZ_OK);
    REQUIRE(vqz_bundle_writer_add(bw, "h", 1, hs, h, VQZ_DTYPE_F16) == VQZ_OK);
    REQUIRE(vqz_bundle_writer_add(bw, "b", 2, bs, b, VQZ_DTYPE_BF16) == VQZ_OK);
    return finish_bundle(bw, nullptr);
}

// A hand-made safetensors file: header text then data bytes.
bytes raw_bundle(const std::string &json, const bytes &data, int64_t declared = -1)
{
    bytes out(8);
    vqz_put_u64(out.data(), declared >= 0 ? (uint64_t)declared : json.size());
    out.insert(out.end(), json.begin(), json.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

cJSON *bundle_expect_ok(const bytes &file, const std::map<std::string, std::string> &meta,
                        const std::vector<std::pair<std::string, std::pair<std::vector<long long>, std::vector<float>>>> &tensors,
                        const std::vector<std::string> &dtypes)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "open", "ok");
    uint8_t sha[32];
    vqz_sha256(file.data(), file.size(), sha);
    cJSON_AddStringToObject(e, "sha256", hex(sha, 32).c_str());
    cJSON *m = cJSON_AddObjectToObject(e, "metadata");
    for (auto &kv : meta)
        cJSON_AddStringToObject(m, kv.first.c_str(), kv.second.c_str());
    cJSON *t = cJSON_AddObjectToObject(e, "tensors");
    for (size_t i = 0; i < tensors.size(); i++) {
        cJSON *x = cJSON_AddObjectToObject(t, tensors[i].first.c_str());
        cJSON_AddStringToObject(x, "dtype", dtypes[i].c_str());
        cJSON_AddItemToObject(x, "shape", int_array(tensors[i].second.first));
        cJSON *v = cJSON_AddArrayToObject(x, "values");
        for (float f : tensors[i].second.second)
            cJSON_AddItemToArray(v, cJSON_CreateNumber((double)f));
    }
    return e;
}

cJSON *expect_status(const char *where, vqz_status s)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, where, status_name(s));
    return e;
}

// The prior of the modelled-frame vectors (spec/bundle.md section 5): two levels of K = 16, the first
// skewed (1/2, 1/4, 1/8, 1/32 and 3/32 over the other twelve), the second uniform.
std::vector<std::vector<uint32_t>> demo_prior()
{
    std::vector<uint32_t> skew = {1u << 23, 1u << 22, 1u << 21, 1u << 19};
    skew.resize(16, 1u << 17);
    return {skew, std::vector<uint32_t>(16, 1u << 20)};
}

bytes bundle_prior(std::vector<float> *values)
{
    values->clear();
    for (const std::vector<uint32_t> &row : demo_prior())
        for (uint32_t f : row)
            values->push_back((float)f);
    int64_t shape[2] = {2, 16};
    vqz_bundle_writer *bw = nullptr;
    REQUIRE(vqz_bundle_writer_create(&bw) == VQZ_OK);
    REQUIRE(vqz_bundle_writer_set_meta(bw, "format", "vqz-bundle-1") == VQZ_OK);
    REQUIRE(vqz_bundle_writer_set_meta(bw, "name", "prior-demo") == VQZ_OK);
    REQUIRE(vqz_bundle_writer_add(bw, "rvq.prior", 2, shape, values->data(), VQZ_DTYPE_F32) == VQZ_OK);
    return finish_bundle(bw, nullptr);
}

std::vector<Vector> bundle_vectors()
{
    std::vector<Vector> v;
    uint8_t sha[32];
    bytes tiny = bundle_tiny(sha);
    v.push_back({"tiny-f32.safetensors", tiny,
                 bundle_expect_ok(tiny,
                                  {{"format", "vqz-bundle-1"}, {"name", "tiny"},
                                   {"config", "{\"kind\":\"image\",\"D\":2}"}},
                                  {{"dec.w", {{2, 3}, {0.5f, -1.0f, 2.0f, 0.25f, 3.0f, -0.125f}}},
                                   {"enc.b", {{2}, {1.0f, -2.0f}}}},
                                  {"F32", "F32"})});
    std::vector<float> pv;
    bytes prior = bundle_prior(&pv);
    v.push_back({"prior-k16.safetensors", prior,
                 bundle_expect_ok(prior, {{"format", "vqz-bundle-1"}, {"name", "prior-demo"}},
                                  {{"rvq.prior", {{2, 16}, pv}}}, {"F32"})});
    bytes halfs = bundle_halfs();
    // 0.0009765625 = 2^-10 is exact in BF16; 3.140625 too. 65504 is the largest F16.
    v.push_back({"halfs.safetensors", halfs,
                 bundle_expect_ok(halfs, {}, {{"h", {{4}, {1.0f, -2.0f, 0.5f, 65504.0f}}},
                                              {"b", {{2, 2}, {1.0f, -1.5f, 3.140625f, 0.0009765625f}}}},
                                  {"F16", "BF16"})});
    bytes eight(8, 0);
    auto bad = [&](const char *name, const std::string &json, const bytes &data, vqz_status s, int64_t declared = -1) {
        v.push_back({name, raw_bundle(json, data, declared), expect_status("open", s)});
    };
    bad("bad-overlap.safetensors",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}",
        bytes(6, 0), VQZ_ERR_FORMAT);
    bad("bad-hole.safetensors",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
        bytes(12, 0), VQZ_ERR_FORMAT);
    bad("bad-length.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", eight,
        VQZ_ERR_FORMAT);
    bad("bad-dtype.safetensors", "{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight,
        VQZ_ERR_FORMAT);
    bad("bad-json.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", eight,
        VQZ_ERR_FORMAT);
    bad("bad-header-length.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight,
        VQZ_ERR_TRUNCATED, 4096);
    bad("bad-trailing-data.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
        bytes(9, 0), VQZ_ERR_FORMAT);
    // Valid structure, but a NaN weight: opening works, loading refuses.
    bytes nan_data(8, 0);
    vqz_put_u32(nan_data.data() + 4, 0x7fc00000u);
    bytes nan = raw_bundle("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", nan_data);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "open", "ok");
    cJSON *t = cJSON_AddObjectToObject(e, "tensors");
    cJSON *a = cJSON_AddObjectToObject(t, "a");
    cJSON_AddStringToObject(a, "dtype", "F32");
    cJSON_AddItemToObject(a, "shape", int_array({2}));
    cJSON_AddStringToObject(a, "load", status_name(VQZ_ERR_NONFINITE));
    v.push_back({"bad-nan.safetensors", nan, e});
    return v;
}

// ---- containers -----------------------------------------------------------------------------------

struct Spec {
    vqz_header h;
    std::vector<indices> levels;
    std::string meta;
    bool has_meta = false;
    bytes alpha;
    bool modelled = false;                   // zstd frames only (a 1.0 file) unless set
    std::vector<std::vector<uint32_t>> prior; // per level, for modelled frames that start from it
};

bytes write_spec(const Spec &s)
{
    vqz_container_writer *w = nullptr;
    REQUIRE(vqz_container_writer_create(&s.h, &w) == VQZ_OK);
    vqz_container_writer_set_modelled(w, s.modelled);
    std::vector<vqz_prior> pr(s.prior.size());
    for (size_t l = 0; l < s.prior.size(); l++) {
        REQUIRE(vqz_prior_init(&pr[l], s.prior[l].data(), (uint32_t)s.prior[l].size()) == VQZ_OK);
        REQUIRE(vqz_container_writer_set_prior(w, (int)l, &pr[l]) == VQZ_OK);
    }
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
    for (vqz_prior &p : pr)
        vqz_prior_free(&p);
    return out;
}

cJSON *header_json(const vqz_header &h, uint16_t minor)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "version", int_array({1, minor}));
    cJSON_AddNumberToObject(j, "media_kind", h.media_kind);
    cJSON_AddNumberToObject(j, "levels", h.levels);
    std::vector<long long> K(h.K, h.K + h.levels);
    cJSON_AddItemToObject(j, "K", int_array(K));
    cJSON_AddItemToObject(j, "grid", int_array({h.grid_planes, h.grid_height, h.grid_width}));
    cJSON_AddItemToObject(j, "chunk", int_array({h.chunk_height, h.chunk_width}));
    cJSON_AddNumberToObject(j, "stride", h.stride);
    cJSON_AddStringToObject(j, "model_name", h.model_name);
    cJSON_AddStringToObject(j, "model_sha256", hex(h.model_sha256, 32).c_str());
    if (h.media_kind == VQZ_MEDIA_IMAGE) {
        cJSON *g = cJSON_AddObjectToObject(j, "image");
        cJSON_AddNumberToObject(g, "width", h.image.width);
        cJSON_AddNumberToObject(g, "height", h.image.height);
        cJSON_AddNumberToObject(g, "channels", h.image.channels);
        cJSON_AddNumberToObject(g, "bit_depth", h.image.bit_depth);
        cJSON_AddNumberToObject(g, "colour_space", h.image.colour_space);
    } else {
        cJSON *g = cJSON_AddObjectToObject(j, "audio");
        cJSON_AddNumberToObject(g, "sample_rate", h.audio.sample_rate);
        cJSON_AddNumberToObject(g, "model_rate", h.audio.model_rate);
        cJSON_AddNumberToObject(g, "sample_count", (double)h.audio.sample_count);
        cJSON_AddNumberToObject(g, "channels", h.audio.channels);
        cJSON_AddNumberToObject(g, "bit_depth", h.audio.bit_depth);
    }
    return j;
}

// Expected results of a readable file: level_status[l] is the whole-level status, chunk_status (if not
// empty) the per-chunk statuses of each level.
cJSON *container_expect(const Spec &s, uint16_t minor, int available, const std::vector<vqz_status> &level_status,
                        const std::vector<std::vector<vqz_status>> &chunk_status = {})
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "open", "ok");
    cJSON_AddItemToObject(e, "header", header_json(s.h, minor));
    cJSON_AddNumberToObject(e, "levels_available", available);
    cJSON *lv = cJSON_AddArrayToObject(e, "levels");
    for (int l = 0; l < s.h.levels; l++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "status", status_name(level_status[(size_t)l]));
        if (level_status[(size_t)l] == VQZ_OK)
            cJSON_AddItemToObject(x, "indices", int_array(std::vector<long long>(s.levels[l].begin(), s.levels[l].end())));
        if (!chunk_status.empty()) {
            cJSON *cs = cJSON_AddArrayToObject(x, "chunks");
            for (vqz_status st : chunk_status[(size_t)l])
                cJSON_AddItemToArray(cs, cJSON_CreateString(status_name(st)));
        }
        cJSON_AddItemToArray(lv, x);
    }
    if (s.has_meta)
        cJSON_AddStringToObject(e, "metadata", s.meta.c_str());
    else
        cJSON_AddNullToObject(e, "metadata");
    if (!s.alpha.empty())
        cJSON_AddStringToObject(e, "alpha", hex(s.alpha.data(), s.alpha.size()).c_str());
    else
        cJSON_AddNullToObject(e, "alpha");
    return e;
}

void fix_header_crc(bytes &f)
{
    uint32_t hs = vqz_get_u32(f.data() + 12);
    vqz_put_u32(f.data() + hs - 4, vqz_crc32(f.data(), hs - 4));
}

uint64_t frame_offset(const bytes &f, int level, uint32_t chunk, uint32_t *comp = nullptr)
{
    vqz_container *c = nullptr;
    REQUIRE(vqz_container_open_memory(f.data(), f.size(), nullptr, &c) == VQZ_OK);
    vqz_frame_info fi;
    REQUIRE(vqz_container_frame_info(c, level, chunk, &fi) == VQZ_OK);
    vqz_container_free(c);
    if (comp)
        *comp = fi.comp_size;
    return fi.offset;
}

// Recompute the frame-table CRC of frame (level, chunk) and the header CRC after the frame was edited.
void set_frame_crc(bytes &f, int level, uint32_t chunk)
{
    vqz_container *c = nullptr;
    REQUIRE(vqz_container_open_memory(f.data(), f.size(), nullptr, &c) == VQZ_OK);
    vqz_frame_info fi;
    REQUIRE(vqz_container_frame_info(c, level, chunk, &fi) == VQZ_OK);
    const vqz_header *h = vqz_container_header(c);
    uint64_t nframes = (uint64_t)h->levels * vqz_header_chunk_count(h);
    uint64_t entry = level * vqz_header_chunk_count(h) + chunk;
    vqz_container_free(c);
    uint32_t hs = vqz_get_u32(f.data() + OFF_HEADER_SIZE);
    size_t at = (size_t)(hs - 4 - 12 * nframes + 12 * entry + 8);
    vqz_put_u32(f.data() + at, vqz_crc32(f.data() + fi.offset, fi.comp_size));
    fix_header_crc(f);
}

std::vector<Vector> container_vectors()
{
    std::vector<Vector> v;
    uint8_t tiny_sha[32];
    bundle_tiny(tiny_sha);

    // 1. The smallest useful file: an 8 x 8 RGB image, stride 4, one 2 x 2 chunk, two levels of K = 4.
    Spec m;
    std::memset(&m.h, 0, sizeof m.h);
    m.h.media_kind = VQZ_MEDIA_IMAGE;
    m.h.levels = 2;
    m.h.K[0] = m.h.K[1] = 4;
    m.h.grid_planes = 1;
    m.h.grid_height = m.h.grid_width = 2;
    m.h.chunk_height = m.h.chunk_width = 2;
    m.h.stride = 4;
    std::strcpy(m.h.model_name, "tiny");
    std::memcpy(m.h.model_sha256, tiny_sha, 32);
    m.h.image.width = m.h.image.height = 8;
    m.h.image.channels = 3;
    m.h.image.bit_depth = 8;
    m.h.image.colour_space = VQZ_COLOUR_SRGB;
    m.levels = {{0, 1, 2, 3}, {3, 3, 0, 1}};
    bytes minimal = write_spec(m);
    v.push_back({"image-minimal.vqz", minimal, container_expect(m, 0, 2, {VQZ_OK, VQZ_OK})});

    // 2. Alpha, metadata, odd chunking (2 x 2 chunks of 1 x 2 over a 2 x 3 grid) and the K > 256 packing.
    Spec a;
    std::memset(&a.h, 0, sizeof a.h);
    a.h.media_kind = VQZ_MEDIA_IMAGE;
    a.h.levels = 3;
    a.h.K[0] = 16;
    a.h.K[1] = 300;
    a.h.K[2] = 2;
    a.h.grid_planes = 1;
    a.h.grid_height = 2;
    a.h.grid_width = 3;
    a.h.chunk_height = 1;
    a.h.chunk_width = 2;
    a.h.stride = 2;
    std::strcpy(a.h.model_name, "tiny");
    std::memcpy(a.h.model_sha256, tiny_sha, 32);
    a.h.image.width = 6;
    a.h.image.height = 4;
    a.h.image.channels = 4;
    a.h.image.bit_depth = 8;
    a.h.image.colour_space = VQZ_COLOUR_SRGB;
    a.levels = {{1, 2, 3, 4, 5, 15}, {7, 299, 256, 0, 255, 257}, {1, 0, 1, 1, 0, 1}};
    a.has_meta = true;
    a.meta = "{\"title\":\"test vector 2\",\"note\":\"caf\xc3\xa9\"}";
    for (int i = 0; i < 24; i++)
        a.alpha.push_back((uint8_t)(i < 12 ? 255 : (i - 12) * 20));
    v.push_back({"image-alpha-meta.vqz", write_spec(a), container_expect(a, 0, 3, {VQZ_OK, VQZ_OK, VQZ_OK})});

    // 3. Stereo audio: 10 latent frames per channel in chunks of 4, 4, 2; K = 1024 and 65536.
    Spec s;
    std::memset(&s.h, 0, sizeof s.h);
    s.h.media_kind = VQZ_MEDIA_AUDIO;
    s.h.levels = 2;
    s.h.K[0] = 1024;
    s.h.K[1] = 65536;
    s.h.grid_planes = 2;
    s.h.grid_height = 1;
    s.h.grid_width = 10;
    s.h.chunk_height = 1;
    s.h.chunk_width = 4;
    s.h.stride = 320;
    std::strcpy(s.h.model_name, "audio-24k");
    for (int i = 0; i < 32; i++)
        s.h.model_sha256[i] = (uint8_t)(0xa0 + i);
    s.h.audio.sample_rate = 48000;
    s.h.audio.model_rate = 24000;
    s.h.audio.sample_count = 6400;
    s.h.audio.channels = 2;
    s.h.audio.bit_depth = 16;
    indices l0(20), l1(20);
    for (int i = 0; i < 20; i++) {
        l0[(size_t)i] = (uint16_t)((i * 101) % 1024);
        l1[(size_t)i] = (uint16_t)((i * 6553 + 1) % 65536);
    }
    s.levels = {l0, l1};
    bytes stereo = write_spec(s);
    v.push_back({"audio-stereo.vqz", stereo, container_expect(s, 0, 2, {VQZ_OK, VQZ_OK})});

    // 4. Cut after level 0: decodes at quality 1, level 1 reported missing.
    uint64_t l1_start = frame_offset(stereo, 1, 0);
    v.push_back({"audio-stereo-cut-level.vqz", bytes(stereo.begin(), stereo.begin() + (long)l1_start),
                 container_expect(s, 0, 1, {VQZ_OK, VQZ_ERR_MISSING},
                                  {{VQZ_OK, VQZ_OK, VQZ_OK}, {VQZ_ERR_MISSING, VQZ_ERR_MISSING, VQZ_ERR_MISSING}})});
    // 5. Cut inside frame (level 1, chunk 1).
    uint32_t comp = 0;
    uint64_t f11 = frame_offset(stereo, 1, 1, &comp);
    v.push_back({"audio-stereo-cut-frame.vqz", bytes(stereo.begin(), stereo.begin() + (long)(f11 + comp / 2)),
                 container_expect(s, 0, 1, {VQZ_OK, VQZ_ERR_TRUNCATED},
                                  {{VQZ_OK, VQZ_OK, VQZ_OK}, {VQZ_OK, VQZ_ERR_TRUNCATED, VQZ_ERR_MISSING}})});

    // 6-11. Damage to the minimal file, one class each.
    bytes g = minimal;
    g.erase(g.begin() + 4); // CR LF -> LF, as a text-mode transfer does
    v.push_back({"bad-signature-textmode.vqz", g, expect_status("open", VQZ_ERR_SIGNATURE)});
    g = minimal;
    vqz_put_u16(g.data() + OFF_MAJOR, 2);
    v.push_back({"bad-version.vqz", g, expect_status("open", VQZ_ERR_VERSION)});
    v.push_back({"truncated-header.vqz", bytes(minimal.begin(), minimal.begin() + 50),
                 expect_status("open", VQZ_ERR_TRUNCATED)});
    g = minimal;
    g[OFF_IMG_WIDTH] = 9;
    v.push_back({"bad-header-crc.vqz", g, expect_status("open", VQZ_ERR_CHECKSUM)});
    g = minimal;
    vqz_put_u32(g.data() + OFF_GRID_WIDTH, 100000);
    vqz_put_u32(g.data() + OFF_GRID_HEIGHT, 100000);
    fix_header_crc(g);
    v.push_back({"bad-limit.vqz", g, expect_status("open", VQZ_ERR_LIMIT)});
    g = minimal;
    uint64_t f10 = frame_offset(minimal, 1, 0, &comp);
    g[(size_t)(f10 + comp - 1)] ^= 0x80;
    v.push_back({"bad-frame-crc.vqz", g, container_expect(m, 0, 2, {VQZ_OK, VQZ_ERR_CHECKSUM})});

    // 12. Index 4 with K = 4 in level 0: a raw zstd frame written by hand (header, one raw block).
    {
        vqz_container_writer *w = nullptr;
        REQUIRE(vqz_container_writer_create(&m.h, &w) == VQZ_OK);
        const uint8_t frame[] = {0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x04, 0x21, 0x00, 0x00, 0x00, 0x04, 0x02, 0x03};
        REQUIRE(vqz_container_writer_put_frame(w, 0, 0, frame, sizeof frame, 4) == VQZ_OK);
        REQUIRE(vqz_container_writer_put_level(w, 1, m.levels[1].data(), 4) == VQZ_OK);
        uint64_t size = 0;
        REQUIRE(vqz_container_writer_size(w, &size) == VQZ_OK);
        bytes bi((size_t)size);
        REQUIRE(vqz_container_writer_write_buffer(w, bi.data(), bi.size()) == VQZ_OK);
        vqz_container_writer_free(w);
        v.push_back({"bad-index.vqz", bi, container_expect(m, 0, 2, {VQZ_ERR_INDEX_RANGE, VQZ_OK})});
    }

    // 13. A version 1.2 file: 4 more fixed-header bytes and an unknown optional section; a 1.1 reader
    // decodes it. 14. The same section marked critical: refused.
    for (int critical = 0; critical < 2; critical++) {
        uint64_t p0 = frame_offset(minimal, 0, 0);
        uint32_t hs = vqz_get_u32(minimal.data() + OFF_HEADER_SIZE);
        std::vector<vqz_frame_info> frames(2);
        for (int l = 0; l < 2; l++) {
            vqz_container *c = nullptr;
            REQUIRE(vqz_container_open_memory(minimal.data(), minimal.size(), nullptr, &c) == VQZ_OK);
            REQUIRE(vqz_container_frame_info(c, l, 0, &frames[(size_t)l]) == VQZ_OK);
            vqz_container_free(c);
        }
        const char future[] = "optional data from a newer writer";
        vqz_section_entry sec;
        sec.type = 0x0100;
        sec.flags = (uint16_t)critical;
        sec.size = sizeof future - 1;
        sec.crc32 = vqz_crc32(future, sizeof future - 1);
        bytes hdr((size_t)vqz_encoded_header_size(&m.h, 1));
        vqz_encode_header(&m.h, &sec, 1, frames.data(), hdr.data());
        bytes n(hdr.begin(), hdr.begin() + VQZ_FIXED_HEADER_SIZE);
        n.insert(n.end(), {0xde, 0xad, 0xbe, 0xef});
        n.insert(n.end(), hdr.begin() + VQZ_FIXED_HEADER_SIZE, hdr.end());
        vqz_put_u16(n.data() + OFF_MINOR, 2);
        vqz_put_u16(n.data() + OFF_FIXED_SIZE, VQZ_FIXED_HEADER_SIZE + 4);
        vqz_put_u32(n.data() + OFF_HEADER_SIZE, (uint32_t)n.size());
        fix_header_crc(n);
        n.insert(n.end(), future, future + sizeof future - 1);
        n.insert(n.end(), minimal.begin() + (long)p0, minimal.end());
        (void)hs;
        if (!critical)
            v.push_back({"newer-minor.vqz", n, container_expect(m, 2, 2, {VQZ_OK, VQZ_OK})});
        else
            v.push_back({"unknown-critical.vqz", n, expect_status("open", VQZ_ERR_UNSUPPORTED)});
    }

    // 15. Modelled frames without a prior (version 1.1): a 16 x 16 image grid, one level of K = 1024 using
    // only a handful of codewords, which the adaptive model codes in fewer bytes than zstd.
    Spec am = m;
    am.h.levels = 1;
    am.h.K[0] = 1024;
    am.h.grid_height = am.h.grid_width = am.h.chunk_height = am.h.chunk_width = 16;
    am.h.image.width = am.h.image.height = 64;
    am.modelled = true;
    vqz_rng sr;
    vqz_rng_seed(&sr, 15);
    static const uint16_t words[8] = {3, 3, 3, 511, 511, 1000, 1001, 1023};
    indices sparse(256);
    for (size_t i = 0; i < sparse.size(); i++)
        sparse[i] = words[vqz_rng_below(&sr, 8)];
    am.levels = {sparse};
    bytes modelled = write_spec(am);
    uint32_t mc = 0;
    uint64_t mo = frame_offset(modelled, 0, 0, &mc);
    REQUIRE(std::memcmp(modelled.data() + mo, vqz_arith_magic, 4) == 0);
    REQUIRE(modelled[(size_t)mo + 4] == 0); // uniform start: no prior needed
    v.push_back({"image-modelled.vqz", modelled, container_expect(am, 1, 1, {VQZ_OK})});
    // 16. Its reserved frame byte set (frame CRC and header CRC made right again): the frame is refused.
    bytes mr = modelled;
    mr[(size_t)mo + 6] = 1;
    set_frame_crc(mr, 0, 0);
    v.push_back({"bad-modelled-reserved.vqz", mr, container_expect(am, 1, 1, {VQZ_ERR_FORMAT})});

    // 17. Modelled frames that start from the model's prior (prior-k16.safetensors): mono audio, 64 latent
    // frames in two chunks, two levels of K = 16; level 0 follows the skewed prior. 18. The same file read
    // without the prior: the frames that need it are refused, the others decode.
    Spec ap;
    std::memset(&ap.h, 0, sizeof ap.h);
    ap.h.media_kind = VQZ_MEDIA_AUDIO;
    ap.h.levels = 2;
    ap.h.K[0] = ap.h.K[1] = 16;
    ap.h.grid_planes = ap.h.grid_height = 1;
    ap.h.grid_width = 64;
    ap.h.chunk_height = 1;
    ap.h.chunk_width = 32;
    ap.h.stride = 320;
    std::strcpy(ap.h.model_name, "prior-demo");
    ap.h.audio.sample_rate = ap.h.audio.model_rate = 24000;
    ap.h.audio.sample_count = 64 * 320;
    ap.h.audio.channels = 1;
    ap.h.audio.bit_depth = 16;
    ap.modelled = true;
    ap.prior = demo_prior();
    vqz_rng r;
    vqz_rng_seed(&r, 17);
    indices a0(64), a1(64);
    for (size_t i = 0; i < 64; i++) {
        uint32_t x = (uint32_t)vqz_rng_below(&r, 32); // 16/32, 8/32, 4/32, 1/32, then 3/32 spread
        a0[i] = (uint16_t)(x < 16 ? 0 : x < 24 ? 1 : x < 28 ? 2 : x < 29 ? 3 : 4 + vqz_rng_below(&r, 12));
        a1[i] = (uint16_t)vqz_rng_below(&r, 16);
    }
    ap.levels = {a0, a1};
    bytes pf = write_spec(ap);
    std::vector<vqz_status> without(2, VQZ_OK);
    std::vector<std::vector<vqz_status>> chunks_without(2, std::vector<vqz_status>(2, VQZ_OK));
    for (int l = 0; l < 2; l++)
        for (uint32_t c = 0; c < 2; c++) {
            uint64_t o = frame_offset(pf, l, c);
            if (std::memcmp(pf.data() + o, vqz_arith_magic, 4) == 0 && pf[(size_t)o + 4] != 0)
                without[(size_t)l] = chunks_without[(size_t)l][c] = VQZ_ERR_UNSUPPORTED;
        }
    REQUIRE(without[0] == VQZ_ERR_UNSUPPORTED); // level 0 does use the prior
    cJSON *with = container_expect(ap, 1, 2, {VQZ_OK, VQZ_OK}, {{VQZ_OK, VQZ_OK}, {VQZ_OK, VQZ_OK}});
    cJSON_AddStringToObject(with, "prior", "prior-k16.safetensors");
    v.push_back({"audio-prior.vqz", pf, with});
    v.push_back({"audio-prior-no-model.vqz", pf, container_expect(ap, 1, 2, without, chunks_without)});
    return v;
}

std::string manifest_path()
{
    return vqz_test_path("vectors/manifest.json");
}

cJSON *load_manifest()
{
    bytes b = read_file(manifest_path());
    REQUIRE(!b.empty());
    cJSON *j = cJSON_ParseWithLength((const char *)b.data(), b.size());
    REQUIRE(j != nullptr);
    return j;
}

std::string get_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

std::vector<long long> get_ints(const cJSON *a)
{
    std::vector<long long> out;
    for (const cJSON *e = a ? a->child : nullptr; e; e = e->next)
        out.push_back((long long)e->valuedouble);
    return out;
}

// The priors of a vector's model: the rvq.prior tensor [levels, K] of a bundle among the vectors (none
// when file is empty).
std::vector<vqz_prior> load_priors(const std::string &file, const vqz_header *h)
{
    std::vector<vqz_prior> out;
    if (file.empty())
        return out;
    bytes b = read_file(vqz_test_path("vectors/" + file));
    vqz_bundle *bd = nullptr;
    REQUIRE(vqz_bundle_open_memory(b.data(), b.size(), &bd) == VQZ_OK);
    int64_t shape[2] = {h->levels, h->K[0]};
    std::vector<float> f((size_t)(shape[0] * shape[1]));
    REQUIRE(vqz_bundle_get_f32(bd, "rvq.prior", 2, shape, f.data()) == VQZ_OK);
    vqz_bundle_free(bd);
    out.resize((size_t)h->levels);
    for (int l = 0; l < h->levels; l++)
        REQUIRE(vqz_prior_init_f32(&out[(size_t)l], f.data() + (size_t)l * h->K[0], h->K[0]) == VQZ_OK);
    return out;
}

// Check one .vqz vector against its manifest entry with the C reader.
void check_container(const std::string &file, const cJSON *e)
{
    INFO(file);
    bytes b = read_file(vqz_test_path("vectors/" + file));
    REQUIRE(!b.empty());
    vqz_container *c = nullptr;
    vqz_status s = vqz_container_open_memory(b.data(), b.size(), nullptr, &c);
    INFO(vqz_last_error());
    REQUIRE(std::string(status_name(s)) == get_str(e, "open"));
    if (s != VQZ_OK)
        return;
    const vqz_header *h = vqz_container_header(c);
    std::vector<vqz_prior> priors = load_priors(get_str(e, "prior"), h);
    for (size_t l = 0; l < priors.size(); l++)
        REQUIRE(vqz_container_set_prior(c, (int)l, &priors[l]) == VQZ_OK);
    cJSON *got = header_json(*h, h->version_minor);
    REQUIRE(cJSON_Compare(got, cJSON_GetObjectItemCaseSensitive(e, "header"), 1));
    cJSON_Delete(got);
    REQUIRE(vqz_container_levels_available(c) ==
            (int)cJSON_GetObjectItemCaseSensitive(e, "levels_available")->valuedouble);
    const cJSON *levels = cJSON_GetObjectItemCaseSensitive(e, "levels");
    int l = 0;
    for (const cJSON *lv = levels->child; lv; lv = lv->next, l++) {
        indices grid((size_t)vqz_header_level_indices(h));
        vqz_status st = vqz_container_read_level(c, l, grid.data(), grid.size());
        REQUIRE(std::string(status_name(st)) == get_str(lv, "status"));
        if (st == VQZ_OK)
            REQUIRE(std::vector<long long>(grid.begin(), grid.end()) ==
                    get_ints(cJSON_GetObjectItemCaseSensitive(lv, "indices")));
        const cJSON *chunks = cJSON_GetObjectItemCaseSensitive(lv, "chunks");
        uint32_t ch = 0;
        for (const cJSON *cs = chunks ? chunks->child : nullptr; cs; cs = cs->next, ch++) {
            indices part((size_t)vqz_header_chunk_indices(h, ch));
            REQUIRE(std::string(status_name(vqz_container_read_chunk(c, l, ch, part.data(), part.size()))) ==
                    cs->valuestring);
        }
    }
    REQUIRE(l == h->levels);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(e, "metadata");
    const char *text = nullptr;
    size_t len = 0;
    vqz_status ms = vqz_container_metadata(c, &text, &len);
    if (cJSON_IsString(meta)) {
        REQUIRE(ms == VQZ_OK);
        REQUIRE(std::string(text, len) == meta->valuestring);
    } else {
        REQUIRE(ms == VQZ_ERR_MISSING);
    }
    const cJSON *alpha = cJSON_GetObjectItemCaseSensitive(e, "alpha");
    REQUIRE(vqz_container_has_alpha(c) == (cJSON_IsString(alpha) ? 1 : 0));
    if (cJSON_IsString(alpha)) {
        bytes ab((size_t)vqz_container_alpha_size(c));
        REQUIRE(vqz_container_read_alpha(c, ab.data(), ab.size()) == VQZ_OK);
        REQUIRE(hex(ab.data(), ab.size()) == alpha->valuestring);
    }
    vqz_container_free(c);
    for (vqz_prior &p : priors)
        vqz_prior_free(&p);
}

void check_bundle(const std::string &file, const cJSON *e)
{
    INFO(file);
    bytes b = read_file(vqz_test_path("vectors/" + file));
    REQUIRE(!b.empty());
    vqz_bundle *bd = nullptr;
    vqz_status s = vqz_bundle_open_memory(b.data(), b.size(), &bd);
    INFO(vqz_last_error());
    REQUIRE(std::string(status_name(s)) == get_str(e, "open"));
    if (s != VQZ_OK)
        return;
    if (cJSON_GetObjectItemCaseSensitive(e, "sha256")) {
        uint8_t sha[32];
        vqz_bundle_sha256(bd, sha);
        REQUIRE(hex(sha, 32) == get_str(e, "sha256"));
    }
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(e, "metadata");
    REQUIRE(vqz_bundle_meta_count(bd) == (meta ? cJSON_GetArraySize(meta) : 0));
    for (const cJSON *kv = meta ? meta->child : nullptr; kv; kv = kv->next) {
        const char *val = nullptr;
        REQUIRE(vqz_bundle_meta_get(bd, kv->string, &val) == VQZ_OK);
        REQUIRE(std::string(val) == kv->valuestring);
    }
    const cJSON *tensors = cJSON_GetObjectItemCaseSensitive(e, "tensors");
    REQUIRE(vqz_bundle_tensor_count(bd) == cJSON_GetArraySize(tensors));
    for (const cJSON *t = tensors->child; t; t = t->next) {
        vqz_tensor_info info;
        REQUIRE(vqz_bundle_find(bd, t->string, &info) == VQZ_OK);
        REQUIRE(std::string(vqz_dtype_name(info.dtype)) == get_str(t, "dtype"));
        std::vector<long long> shape = get_ints(cJSON_GetObjectItemCaseSensitive(t, "shape"));
        REQUIRE(std::vector<long long>(info.shape, info.shape + info.ndim) == shape);
        std::vector<float> out((size_t)info.numel);
        vqz_status ls = vqz_bundle_get_f32(bd, t->string, info.ndim, info.shape, out.data());
        const cJSON *values = cJSON_GetObjectItemCaseSensitive(t, "values");
        if (values) {
            REQUIRE(ls == VQZ_OK);
            size_t i = 0;
            for (const cJSON *x = values->child; x; x = x->next, i++)
                REQUIRE(out[i] == (float)x->valuedouble);
            REQUIRE(i == out.size());
        } else {
            REQUIRE(std::string(status_name(ls)) == get_str(t, "load"));
        }
    }
    vqz_bundle_free(bd);
}

// Every key of want is in got with an agreeing value (the Python reader reports more than is expected).
bool json_agrees(const cJSON *got, const cJSON *want)
{
    if (cJSON_IsObject(want)) {
        if (!cJSON_IsObject(got))
            return false;
        for (const cJSON *k = want->child; k; k = k->next)
            if (!json_agrees(cJSON_GetObjectItemCaseSensitive(got, k->string), k))
                return false;
        return true;
    }
    if (cJSON_IsArray(want)) {
        if (!cJSON_IsArray(got) || cJSON_GetArraySize(got) != cJSON_GetArraySize(want))
            return false;
        for (const cJSON *a = got->child, *b = want->child; b; a = a->next, b = b->next)
            if (!json_agrees(a, b))
                return false;
        return true;
    }
    return got && cJSON_Compare(got, want, 1);
}

bool zstandard_available()
{
    return std::system("/usr/bin/python3 -c 'import zstandard' >/dev/null 2>&1") == 0;
}

std::string run_capture(const std::string &cmd, int *rc)
{
    std::string out;
    FILE *p = popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
        out.append(buf, n);
    int st = pclose(p);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

} // namespace

TEST_CASE("regenerate the test vectors and manifest", "[.regen]")
{
    cJSON *man = cJSON_CreateObject();
    cJSON_AddStringToObject(man, "comment",
                            "Expected parse results of the vqz conformance vectors (spec/vqz-format.md section 9, "
                            "spec/bundle.md section 6). Written by tests/test_format_vectors.cpp.");
    cJSON_AddStringToObject(man, "zstd_version", ZSTD_versionString());
    cJSON *cv = cJSON_AddObjectToObject(man, "vqz");
    for (Vector &x : container_vectors()) {
        std::ofstream(vqz_test_path("vectors/" + x.file), std::ios::binary)
            .write((const char *)x.data.data(), (std::streamsize)x.data.size());
        cJSON_AddItemToObject(cv, x.file.c_str(), x.expect);
    }
    cJSON *bv = cJSON_AddObjectToObject(man, "bundle");
    for (Vector &x : bundle_vectors()) {
        std::ofstream(vqz_test_path("vectors/" + x.file), std::ios::binary)
            .write((const char *)x.data.data(), (std::streamsize)x.data.size());
        cJSON_AddItemToObject(bv, x.file.c_str(), x.expect);
    }
    char *text = cJSON_Print(man);
    std::ofstream(manifest_path()) << text << "\n";
    std::free(text);
    cJSON_Delete(man);
}

TEST_CASE("the test vectors parse to the results in their manifest", "[format]")
{
    cJSON *man = load_manifest();
    int n = 0;
    for (const cJSON *e = cJSON_GetObjectItemCaseSensitive(man, "vqz")->child; e; e = e->next, n++)
        check_container(e->string, e);
    REQUIRE(n >= 14);
    cJSON_Delete(man);
}

TEST_CASE("the bundle vectors parse to the results in their manifest", "[bundle]")
{
    cJSON *man = load_manifest();
    int n = 0;
    for (const cJSON *e = cJSON_GetObjectItemCaseSensitive(man, "bundle")->child; e; e = e->next, n++)
        check_bundle(e->string, e);
    REQUIRE(n >= 9);
    cJSON_Delete(man);
}

TEST_CASE("the writers reproduce the test vectors byte for byte", "[format]")
{
    cJSON *man = load_manifest();
    bool same_zstd = get_str(man, "zstd_version") == ZSTD_versionString();
    cJSON_Delete(man);
    std::vector<Vector> all = container_vectors();
    for (Vector &x : bundle_vectors())
        all.push_back(x);
    int mismatched = 0;
    for (Vector &x : all) {
        cJSON_Delete(x.expect);
        bytes disk = read_file(vqz_test_path("vectors/" + x.file));
        if (disk != x.data) {
            INFO(x.file << " differs from what the writer produces now");
            if (same_zstd)
                FAIL();
            mismatched++;
        }
    }
    // Frames are zstd output: another zstd version may pick other (equally valid) bytes.
    if (mismatched)
        vqz_test_skip("zstd " + std::string(ZSTD_versionString()) + " writes some vector frames differently");
}

TEST_CASE("the hex dumps in spec/ are the test vectors", "[format]")
{
    int blocks = 0;
    for (const char *doc : {"spec/vqz-format.md", "spec/bundle.md"}) {
        std::string path = vqz_test_path("../" + std::string(doc));
        std::ifstream in(path);
        REQUIRE(in.good());
        std::string line, file;
        bytes dump;
        bool inside = false;
        while (std::getline(in, line)) {
            if (!inside && line.rfind("```hex ", 0) == 0) {
                inside = true;
                file = line.substr(7);
                dump.clear();
                continue;
            }
            if (inside && line.rfind("```", 0) == 0) {
                INFO(doc << ": hex dump of " << file);
                REQUIRE(dump == read_file(vqz_test_path("../" + file)));
                inside = false;
                blocks++;
                continue;
            }
            if (!inside)
                continue;
            // "OFFSET  xx xx xx ...  comment": the offset must match, then pairs of hex digits.
            std::istringstream ls(line);
            std::string tok;
            if (!(ls >> tok))
                continue;
            INFO(doc << ": line \"" << line << "\"");
            REQUIRE(std::stoul(tok, nullptr, 16) == dump.size());
            while (ls >> tok && tok.size() == 2 && std::isxdigit((unsigned char)tok[0]) &&
                   std::isxdigit((unsigned char)tok[1]))
                dump.push_back((uint8_t)std::stoul(tok, nullptr, 16));
        }
        REQUIRE_FALSE(inside);
    }
    REQUIRE(blocks >= 2);
}

TEST_CASE("the worked examples of the spec hold", "[format]")
{
    // spec/vqz-format.md 10.1: sizes and offsets of image-minimal.vqz, its cut and its lower-rate copy.
    bytes f = read_file(vqz_test_path("vectors/image-minimal.vqz"));
    REQUIRE(f.size() == 194);
    REQUIRE(vqz_get_u32(f.data() + OFF_HEADER_SIZE) == 168);
    REQUIRE(frame_offset(f, 0, 0) == 0xa8);
    REQUIRE(frame_offset(f, 1, 0) == 0xb5);
    vqz_container *c = nullptr;
    REQUIRE(vqz_container_open_memory(f.data(), 0xb5, nullptr, &c) == VQZ_OK);
    REQUIRE(vqz_container_levels_available(c) == 1);
    indices grid(4);
    REQUIRE(vqz_container_read_level(c, 0, grid.data(), 4) == VQZ_OK);
    REQUIRE(grid == indices({0, 1, 2, 3}));
    REQUIRE(vqz_container_read_level(c, 1, grid.data(), 4) == VQZ_ERR_MISSING);
    char path[] = "/tmp/vqz-test-spec-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    REQUIRE(vqz_container_write_levels(c, 1, path) == VQZ_OK);
    vqz_container_free(c);
    bytes g = read_file(path);
    unlink(path);
    REQUIRE(g.size() == 165);
    REQUIRE(vqz_get_u32(g.data() + OFF_HEADER_SIZE) == 152);
    REQUIRE(g[OFF_LEVELS] == 1);
    REQUIRE(bytes(g.begin() + 152, g.end()) == bytes(f.begin() + 0xa8, f.begin() + 0xb5));
    // The model of the vectors is the tiny bundle: the container names it by its SHA-256.
    bytes tiny = read_file(vqz_test_path("vectors/tiny-f32.safetensors"));
    vqz_bundle *b = nullptr;
    REQUIRE(vqz_bundle_open_memory(tiny.data(), tiny.size(), &b) == VQZ_OK);
    REQUIRE(vqz_bundle_check_vqz(b) == VQZ_OK);
    uint8_t sha[32];
    vqz_bundle_sha256(b, sha);
    const char *name = nullptr;
    REQUIRE(vqz_bundle_meta_get(b, "name", &name) == VQZ_OK);
    REQUIRE(vqz_container_open_memory(f.data(), f.size(), nullptr, &c) == VQZ_OK);
    REQUIRE(vqz_container_check_model(c, name, sha) == VQZ_OK);
    vqz_container_free(c);
    vqz_bundle_free(b);
    // spec/bundle.md: the SHA-256 quoted there.
    REQUIRE(hex(sha, 32) == "d1da83870ed6740ab38ee6f2abe4ed37c608542d6767c752aab31b5b40674357");
}

TEST_CASE("the independent Python reader agrees on every vector", "[format]")
{
    if (!zstandard_available()) {
        vqz_test_skip("python3-zstandard not installed");
        return;
    }
    int rc = -1;
    std::string out = run_capture("/usr/bin/python3 " + vqz_test_path("../tools/vqz_reader.py") + " --check " +
                                      manifest_path() + " 2>&1",
                                  &rc);
    INFO(out);
    REQUIRE(rc == 0);
    REQUIRE(out.find("all vectors agree") != std::string::npos);
}

TEST_CASE("the independent Python reader decodes random files like the C reader", "[format]")
{
    if (!zstandard_available()) {
        vqz_test_skip("python3-zstandard not installed");
        return;
    }
    vqz_rng r;
    vqz_rng_seed(&r, 31337);
    char path[] = "/tmp/vqz-test-py-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    for (int iter = 0; iter < 6; iter++) {
        Spec s;
        std::memset(&s.h, 0, sizeof s.h);
        s.h.media_kind = iter % 2 ? VQZ_MEDIA_AUDIO : VQZ_MEDIA_IMAGE;
        s.h.levels = (uint8_t)(1 + vqz_rng_below(&r, 8));
        for (int l = 0; l < s.h.levels; l++)
            s.h.K[l] = 2 + (uint32_t)vqz_rng_below(&r, iter < 3 ? 255 : 65535);
        s.h.grid_planes = iter % 2 ? 2 : 1;
        s.h.grid_height = 1 + (uint32_t)vqz_rng_below(&r, 6);
        s.h.grid_width = 1 + (uint32_t)vqz_rng_below(&r, 20);
        s.h.chunk_height = 1 + (uint32_t)vqz_rng_below(&r, s.h.grid_height);
        s.h.chunk_width = 1 + (uint32_t)vqz_rng_below(&r, s.h.grid_width);
        s.h.stride = 16;
        std::strcpy(s.h.model_name, "random-\xc3\xa9");
        if (s.h.media_kind == VQZ_MEDIA_IMAGE) {
            s.h.image.width = s.h.grid_width * 16;
            s.h.image.height = s.h.grid_height * 16;
            s.h.image.channels = 4;
            s.h.image.bit_depth = 16;
            for (uint32_t i = 0; i < s.h.image.width * s.h.image.height * 2; i++)
                s.alpha.push_back((uint8_t)(i / 7));
        } else {
            s.h.audio.sample_rate = s.h.audio.model_rate = 24000;
            s.h.audio.sample_count = s.h.grid_width * 320;
            s.h.audio.channels = 2;
        }
        for (int l = 0; l < s.h.levels; l++) {
            indices v((size_t)vqz_header_level_indices(&s.h));
            for (auto &x : v)
                x = (uint16_t)vqz_rng_below(&r, s.h.K[l]);
            s.levels.push_back(v);
        }
        s.has_meta = iter % 3 != 0;
        s.meta = "{\"iter\": " + std::to_string(iter) + "}";
        bytes f = write_spec(s);
        // Cut some files inside the payload so the Python reader's truncation rules are exercised too.
        if (iter >= 4) {
            vqz_container *full = nullptr;
            vqz_frame_info fi;
            REQUIRE(vqz_container_open_memory(f.data(), f.size(), nullptr, &full) == VQZ_OK);
            REQUIRE(vqz_container_frame_info(full, 0, 0, &fi) == VQZ_OK);
            vqz_container_free(full);
            f.resize(f.size() - 1 - vqz_rng_below(&r, std::min<uint64_t>(20, f.size() - fi.offset)));
        }
        std::ofstream(path, std::ios::binary).write((const char *)f.data(), (std::streamsize)f.size());
        int rc = -1;
        std::string out = run_capture("/usr/bin/python3 " + vqz_test_path("../tools/vqz_reader.py") + " --dump " +
                                          path + " 2>&1",
                                      &rc);
        INFO(out);
        REQUIRE(rc == 0);
        cJSON *got = cJSON_Parse(out.c_str());
        REQUIRE(got != nullptr);
        vqz_container *c = nullptr;
        REQUIRE(vqz_container_open_memory(f.data(), f.size(), nullptr, &c) == VQZ_OK);
        const vqz_header *h = vqz_container_header(c);
        int avail = vqz_container_levels_available(c);
        cJSON *want = container_expect(s, 0, avail, std::vector<vqz_status>((size_t)h->levels, VQZ_OK));
        // Levels past the cut: the C reader's verdict is the reference.
        cJSON *wl = cJSON_GetObjectItemCaseSensitive(want, "levels");
        for (int l = 0; l < h->levels; l++) {
            indices grid((size_t)vqz_header_level_indices(h));
            vqz_status st = vqz_container_read_level(c, l, grid.data(), grid.size());
            if (st != VQZ_OK) {
                cJSON *x = cJSON_GetArrayItem(wl, l);
                cJSON_ReplaceItemInObject(x, "status", cJSON_CreateString(status_name(st)));
                cJSON_DeleteItemFromObject(x, "indices");
            }
        }
        vqz_container_free(c);
        char *w = cJSON_PrintUnformatted(want);
        INFO("expected " << w);
        std::free(w);
        REQUIRE(json_agrees(got, want));
        cJSON_Delete(got);
        cJSON_Delete(want);
    }
    unlink(path);
}
