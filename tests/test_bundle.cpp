// test_bundle.cpp — weight bundles (safetensors): writer/loader round trips in F32/F16/BF16, the half
// conversions, lookup errors naming the tensor and shapes, every safetensors validation rule, the bundle
// SHA-256, atomic writes, the vqz metadata keys, and the fuzz corpus replay.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "testutil.h"

extern "C" {
#include <cjson/cJSON.h>

#include "common/status.h"
#include "format/bundle.h"
#include "format/bytes.h"
#include "format/sha256.h"
}
#include "fuzz/targets.h"

namespace {

typedef std::vector<uint8_t> bytes;

bytes serialise(const vqz_bundle_writer *w, uint8_t sha[32] = nullptr)
{
    uint64_t size = 0;
    REQUIRE(vqz_bundle_writer_size(w, &size) == VQZ_OK);
    bytes out((size_t)size);
    REQUIRE(vqz_bundle_writer_write_buffer(w, out.data(), out.size(), sha) == VQZ_OK);
    return out;
}

// A safetensors file from its header text and data bytes.
bytes raw_bundle(const std::string &json, const bytes &data)
{
    bytes out(8);
    vqz_put_u64(out.data(), json.size());
    out.insert(out.end(), json.begin(), json.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

vqz_status open_status(const bytes &b)
{
    vqz_bundle *bd = nullptr;
    vqz_status s = vqz_bundle_open_memory(b.data(), b.size(), &bd);
    vqz_bundle_free(bd);
    return s;
}

// Reference half -> float by the definition (sign, 5-bit exponent with bias 15, 10-bit fraction).
double f16_reference(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? std::ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : std::ldexp(1024 + m, e - 25);
    return sign ? -v : v;
}

} // namespace

TEST_CASE("bundles round-trip tensors and metadata in F32, F16 and BF16", "[bundle]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 42);
    std::vector<float> a = rand_vec(&r, 3 * 4 * 5, -3, 3), b = rand_vec(&r, 7, -100, 100), c = rand_vec(&r, 12);
    float scalar = 0.125f;
    int64_t as[3] = {3, 4, 5}, bs[1] = {7}, cs[2] = {3, 4}, zs[2] = {0, 5};
    vqz_bundle_writer *w = nullptr;
    REQUIRE(vqz_bundle_writer_create(&w) == VQZ_OK);
    REQUIRE(vqz_bundle_writer_add(w, "enc.conv0.weight", 3, as, a.data(), VQZ_DTYPE_F32) == VQZ_OK);
    REQUIRE(vqz_bundle_writer_add(w, "enc.conv0.bias", 1, bs, b.data(), VQZ_DTYPE_F16) == VQZ_OK);
    REQUIRE(vqz_bundle_writer_add(w, "dec.proj \"q\"", 2, cs, c.data(), VQZ_DTYPE_BF16) == VQZ_OK);
    REQUIRE(vqz_bundle_writer_add(w, "scale", 0, nullptr, &scalar, VQZ_DTYPE_F32) == VQZ_OK);
    REQUIRE(vqz_bundle_writer_add(w, "empty", 2, zs, nullptr, VQZ_DTYPE_F32) == VQZ_OK);
    const std::string tricky = "quote \" backslash \\ newline \n tab \t caf\xc3\xa9 \x01";
    REQUIRE(vqz_bundle_writer_set_meta(w, "format", "vqz-bundle-1") == VQZ_OK);
    REQUIRE(vqz_bundle_writer_set_meta(w, "name", "image-f16-l8") == VQZ_OK);
    REQUIRE(vqz_bundle_writer_set_meta(w, "config", "{\"kind\":\"image\",\"D\":8}") == VQZ_OK);
    REQUIRE(vqz_bundle_writer_set_meta(w, "notes", "first") == VQZ_OK);
    REQUIRE(vqz_bundle_writer_set_meta(w, "notes", tricky.c_str()) == VQZ_OK); // replaces
    uint8_t sha[32];
    bytes f = serialise(w, sha);
    REQUIRE(serialise(w) == f); // deterministic
    // The header is padded with spaces to a multiple of 8 bytes, as safetensors writers do.
    REQUIRE(vqz_get_u64(f.data()) % 8 == 0);
    vqz_bundle_writer_free(w);

    vqz_bundle *bd = nullptr;
    INFO(vqz_last_error());
    REQUIRE(vqz_bundle_open_memory(f.data(), f.size(), &bd) == VQZ_OK);
    uint8_t got[32], want[32];
    vqz_bundle_sha256(bd, got);
    vqz_sha256(f.data(), f.size(), want);
    REQUIRE(std::memcmp(got, want, 32) == 0);
    REQUIRE(std::memcmp(got, sha, 32) == 0);
    REQUIRE(vqz_bundle_check_vqz(bd) == VQZ_OK);
    REQUIRE(vqz_bundle_tensor_count(bd) == 5);
    // Data order is the order added.
    vqz_tensor_info t;
    REQUIRE(vqz_bundle_tensor_at(bd, 0, &t) == VQZ_OK);
    REQUIRE(std::string(t.name) == "enc.conv0.weight");
    REQUIRE(t.offset == 8 + vqz_get_u64(f.data()));
    REQUIRE(t.nbytes == 240);

    std::vector<float> out(60);
    REQUIRE(vqz_bundle_get_f32(bd, "enc.conv0.weight", 3, as, out.data()) == VQZ_OK);
    REQUIRE(out == a);
    REQUIRE(vqz_bundle_get_f32(bd, "enc.conv0.bias", 1, bs, out.data()) == VQZ_OK);
    for (int i = 0; i < 7; i++)
        REQUIRE(out[(size_t)i] == vqz_f16_to_f32(vqz_f32_to_f16(b[(size_t)i])));
    REQUIRE(vqz_bundle_find(bd, "enc.conv0.bias", &t) == VQZ_OK);
    REQUIRE(t.dtype == VQZ_DTYPE_F16);
    REQUIRE(vqz_bundle_get_f32(bd, "dec.proj \"q\"", 2, cs, out.data()) == VQZ_OK);
    for (int i = 0; i < 12; i++) {
        REQUIRE(out[(size_t)i] == vqz_bf16_to_f32(vqz_f32_to_bf16(c[(size_t)i])));
        REQUIRE(std::fabs(out[(size_t)i] - c[(size_t)i]) <= std::fabs(c[(size_t)i]) / 256); // 8 significant bits
    }
    REQUIRE(vqz_bundle_get_f32(bd, "scale", 0, nullptr, out.data()) == VQZ_OK);
    REQUIRE(out[0] == 0.125f);
    REQUIRE(vqz_bundle_find(bd, "empty", &t) == VQZ_OK);
    REQUIRE(t.numel == 0);
    REQUIRE(t.nbytes == 0);
    const char *v = nullptr;
    REQUIRE(vqz_bundle_meta_get(bd, "notes", &v) == VQZ_OK);
    REQUIRE(std::string(v) == tricky);
    REQUIRE(vqz_bundle_meta_count(bd) == 4);
    const char *k = nullptr;
    REQUIRE(vqz_bundle_meta_at(bd, 0, &k, &v) == VQZ_OK);
    REQUIRE(std::string(k) == "format");
    vqz_bundle_free(bd);

    // An independent JSON parse of the header sees the same layout.
    uint64_t n = vqz_get_u64(f.data());
    cJSON *j = cJSON_ParseWithLength((const char *)f.data() + 8, (size_t)n);
    REQUIRE(j != nullptr);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "enc.conv0.bias");
    REQUIRE(std::string(cJSON_GetObjectItemCaseSensitive(e, "dtype")->valuestring) == "F16");
    cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    REQUIRE(cJSON_GetArrayItem(offs, 0)->valuedouble == 240);
    REQUIRE(cJSON_GetArrayItem(offs, 1)->valuedouble == 254);
    cJSON_Delete(j);
}

TEST_CASE("half-precision conversions are exact and round to nearest even", "[bundle]")
{
    // Every F16 pattern decodes to its defined value and encodes back to itself.
    for (uint32_t h = 0; h < 65536; h++) {
        float f = vqz_f16_to_f32((uint16_t)h);
        double ref = f16_reference((uint16_t)h);
        if (std::isnan(ref)) {
            REQUIRE(std::isnan(f));
            continue;
        }
        REQUIRE((double)f == ref);
        REQUIRE(vqz_f32_to_f16(f) == h);
    }
    // Every BF16 pattern survives a round trip through F32.
    for (uint32_t h = 0; h < 65536; h++) {
        float f = vqz_bf16_to_f32((uint16_t)h);
        if (!std::isnan(f))
            REQUIRE(vqz_f32_to_bf16(f) == h);
    }
    // Ties go to even; just above a tie goes up; overflow becomes infinity.
    REQUIRE(vqz_f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);       // halfway to 0x3c01: even
    REQUIRE(vqz_f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);   // halfway 0x3c01/0x3c02: even
    REQUIRE(vqz_f32_to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3c01);
    REQUIRE(vqz_f32_to_f16(65504.0f) == 0x7bff);
    REQUIRE(vqz_f32_to_f16(65519.0f) == 0x7bff);
    REQUIRE(vqz_f32_to_f16(65520.0f) == 0x7c00);
    REQUIRE(vqz_f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);              // half the smallest subnormal: even
    REQUIRE(vqz_f32_to_f16(std::ldexp(3.0f, -26)) == 0x0001);
    REQUIRE(vqz_f32_to_f16(-std::ldexp(1.0f, -14)) == 0x8400);             // smallest normal
    REQUIRE(vqz_f32_to_f16(std::ldexp(1023.5f, -24)) == 0x0400);           // subnormal rounding into normal
    REQUIRE(vqz_f32_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);       // tie: even
    REQUIRE(vqz_f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);   // tie: even (up)
    REQUIRE(vqz_f32_to_bf16(3.4028235e38f) == 0x7f80);                     // rounds past the largest: inf
    REQUIRE(std::isnan(vqz_bf16_to_f32(vqz_f32_to_bf16(NAN))));
}

TEST_CASE("lookups name the tensor, the shapes and the file", "[bundle]")
{
    float w[6] = {1, 2, 3, 4, 5, 6};
    int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s6[1] = {6};
    vqz_bundle_writer *bw = nullptr;
    REQUIRE(vqz_bundle_writer_create(&bw) == VQZ_OK);
    REQUIRE(vqz_bundle_writer_add(bw, "w", 2, s23, w, VQZ_DTYPE_F32) == VQZ_OK);
    bytes f = serialise(bw);
    vqz_bundle_writer_free(bw);
    vqz_bundle *bd = nullptr;
    REQUIRE(vqz_bundle_open_memory(f.data(), f.size(), &bd) == VQZ_OK);
    float out[6];
    REQUIRE(vqz_bundle_get_f32(bd, "v", 2, s23, out) == VQZ_ERR_NOT_FOUND);
    REQUIRE(std::string(vqz_last_error()) == "<memory>: no tensor named \"v\"");
    REQUIRE(vqz_bundle_get_f32(bd, "w", 2, s32, out) == VQZ_ERR_SHAPE);
    REQUIRE(std::string(vqz_last_error()) == "<memory>: tensor \"w\" has shape [2, 3], expected [3, 2]");
    REQUIRE(vqz_bundle_get_f32(bd, "w", 1, s6, out) == VQZ_ERR_SHAPE);
    REQUIRE(contains(vqz_last_error(), "expected [6]"));
    const char *v;
    REQUIRE(vqz_bundle_meta_get(bd, "config", &v) == VQZ_ERR_NOT_FOUND);
    REQUIRE(contains(vqz_last_error(), "no metadata key \"config\""));
    REQUIRE(vqz_bundle_check_vqz(bd) == VQZ_ERR_NOT_FOUND);
    REQUIRE(contains(vqz_last_error(), "no metadata key \"format\""));
    vqz_bundle_free(bd);

    // Other dtypes are validated but not loadable as weights; NaN and Inf are refused with their place.
    bytes data(16, 0);
    vqz_put_u32(data.data() + 8, 0x7f800000u); // x[0] = +inf (bytes 8..11), x[1] = 0
    bytes g = raw_bundle("{\"steps\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                         "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                         data);
    REQUIRE(vqz_bundle_open_memory(g.data(), g.size(), &bd) == VQZ_OK);
    int64_t s1[1] = {1}, s2[1] = {2};
    REQUIRE(vqz_bundle_get_f32(bd, "steps", 1, s1, out) == VQZ_ERR_UNSUPPORTED);
    REQUIRE(contains(vqz_last_error(), "tensor \"steps\" has dtype I64"));
    REQUIRE(vqz_bundle_get_f32(bd, "x", 1, s2, out) == VQZ_ERR_NONFINITE);
    REQUIRE(contains(vqz_last_error(), "tensor \"x\" element 0 is infinite"));
    vqz_bundle_free(bd);

    // The writer refuses what a loader would refuse.
    REQUIRE(vqz_bundle_writer_create(&bw) == VQZ_OK);
    float bad[2] = {1.0f, NAN};
    int64_t s2b[1] = {2};
    REQUIRE(vqz_bundle_writer_add(bw, "nan", 1, s2b, bad, VQZ_DTYPE_F32) == VQZ_ERR_NONFINITE);
    float big[1] = {1e6f};
    REQUIRE(vqz_bundle_writer_add(bw, "big", 1, s1, big, VQZ_DTYPE_F16) == VQZ_ERR_NONFINITE);
    REQUIRE(contains(vqz_last_error(), "out of F16 range"));
    REQUIRE(vqz_bundle_writer_add(bw, "w", 2, s23, w, VQZ_DTYPE_F32) == VQZ_OK);
    REQUIRE(vqz_bundle_writer_add(bw, "w", 2, s23, w, VQZ_DTYPE_F32) == VQZ_ERR_INVALID_ARG);
    REQUIRE(vqz_bundle_writer_add(bw, "__metadata__", 2, s23, w, VQZ_DTYPE_F32) == VQZ_ERR_INVALID_ARG);
    REQUIRE(vqz_bundle_writer_add(bw, "i", 2, s23, w, VQZ_DTYPE_I64) == VQZ_ERR_INVALID_ARG);
    REQUIRE(vqz_bundle_writer_set_meta(bw, "k", "\xff") == VQZ_ERR_INVALID_ARG);
    vqz_bundle_writer_free(bw);
}

TEST_CASE("safetensors validation rejects every malformed header", "[bundle]")
{
    const std::string ok_a = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";
    bytes eight(8, 0);
    REQUIRE(open_status(raw_bundle("{" + ok_a + "}", eight)) == VQZ_OK);
    REQUIRE(open_status(raw_bundle("{" + ok_a + "}    \n ", eight)) == VQZ_OK); // padding
    REQUIRE(open_status(raw_bundle("{}", {})) == VQZ_OK);
    REQUIRE(open_status(raw_bundle("{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]}}", eight)) == VQZ_OK);

    struct Case {
        const char *what;
        std::string json;
        bytes data;
        vqz_status want;
        const char *msg;
    } cases[] = {
        {"not an object", "[1,2]", {}, VQZ_ERR_FORMAT, "does not start with '{'"},
        {"invalid UTF-8", "{\"\xff\":1}", {}, VQZ_ERR_FORMAT, "not UTF-8"},
        {"NUL byte", std::string("{\"a\0\":1}", 8), {}, VQZ_ERR_FORMAT, "not UTF-8"},
        {"bad JSON", "{\"a\":", {}, VQZ_ERR_FORMAT, "not valid JSON"},
        {"data after JSON", "{} x", {}, VQZ_ERR_FORMAT, "data after the JSON object"},
        {"entry not an object", "{\"a\":3}", {}, VQZ_ERR_FORMAT, "tensor \"a\": entry is not an object"},
        {"missing dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", eight, VQZ_ERR_FORMAT, "needs a \"dtype\""},
        {"unknown dtype", "{\"a\":{\"dtype\":\"F31\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight, VQZ_ERR_FORMAT,
         "unknown dtype \"F31\""},
        {"negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", eight, VQZ_ERR_FORMAT,
         "shape[0] is not a non-negative integer"},
        {"fractional dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", eight, VQZ_ERR_FORMAT,
         "shape[0]"},
        {"too many dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", eight,
         VQZ_ERR_LIMIT, "9 dimensions, at most 8"},
        {"three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", eight, VQZ_ERR_FORMAT,
         "data_offsets is not two"},
        {"backwards", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", eight, VQZ_ERR_FORMAT,
         "run backwards"},
        {"past the data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", eight, VQZ_ERR_FORMAT,
         "past the 8 data bytes"},
        {"dtype x shape", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight, VQZ_ERR_FORMAT,
         "F16 x 2 elements is 4 bytes, data_offsets span 8"},
        {"huge shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", eight,
         VQZ_ERR_FORMAT, "data_offsets span 8"},
        {"overlap",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}",
         bytes(6, 0), VQZ_ERR_FORMAT, "tensor \"b\": bytes 2..6 overlap"},
        {"hole",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         bytes(12, 0), VQZ_ERR_FORMAT, "tensor \"b\": hole of 4 bytes"},
        {"trailing data", "{" + ok_a + "}", bytes(9, 0), VQZ_ERR_FORMAT, "1 bytes after the last tensor"},
        {"duplicate tensor",
         "{" + ok_a + ",\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", bytes(16, 0), VQZ_ERR_FORMAT,
         "tensor \"a\" appears twice"},
        {"metadata not object", "{\"__metadata__\":[]}", {}, VQZ_ERR_FORMAT, "__metadata__ is not an object"},
        {"metadata value", "{\"__metadata__\":{\"k\":1}}", {}, VQZ_ERR_FORMAT, "value of \"k\" is not a string"},
        {"metadata duplicate", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", {}, VQZ_ERR_FORMAT,
         "key \"k\" appears twice"},
        {"metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", {}, VQZ_ERR_FORMAT, "appears twice"},
        {"empty name", "{\"\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", {}, VQZ_ERR_FORMAT,
         "empty name"},
    };
    for (auto &c : cases) {
        INFO(c.what);
        REQUIRE(open_status(raw_bundle(c.json, c.data)) == c.want);
        INFO(vqz_last_error());
        REQUIRE(contains(vqz_last_error(), c.msg));
    }
    // Header length: beyond the file, beyond the limit, and a file too short to hold it.
    bytes g = raw_bundle("{" + ok_a + "}", eight);
    vqz_put_u64(g.data(), g.size());
    REQUIRE(open_status(g) == VQZ_ERR_TRUNCATED);
    REQUIRE(contains(vqz_last_error(), "header of"));
    vqz_put_u64(g.data(), (uint64_t)VQZ_BUNDLE_MAX_HEADER + 1);
    REQUIRE(open_status(g) == VQZ_ERR_LIMIT);
    REQUIRE(contains(vqz_last_error(), "exceeds the limit"));
    vqz_put_u64(g.data(), ~(uint64_t)0);
    REQUIRE(open_status(g) == VQZ_ERR_LIMIT);
    bytes tiny = {1, 0, 0};
    REQUIRE(open_status(tiny) == VQZ_ERR_TRUNCATED);
    REQUIRE(open_status(bytes()) == VQZ_ERR_TRUNCATED);
    // Every cut of a valid bundle is refused.
    float w[3] = {1, 2, 3};
    int64_t s3[1] = {3};
    vqz_bundle_writer *bw = nullptr;
    REQUIRE(vqz_bundle_writer_create(&bw) == VQZ_OK);
    REQUIRE(vqz_bundle_writer_set_meta(bw, "k", "v") == VQZ_OK);
    REQUIRE(vqz_bundle_writer_add(bw, "w", 1, s3, w, VQZ_DTYPE_F32) == VQZ_OK);
    bytes f = serialise(bw);
    vqz_bundle_writer_free(bw);
    for (size_t cut = 0; cut < f.size(); cut++) {
        INFO("cut at " << cut);
        vqz_status s = open_status(bytes(f.begin(), f.begin() + (long)cut));
        REQUIRE((s == VQZ_ERR_TRUNCATED || s == VQZ_ERR_FORMAT));
    }
}

TEST_CASE("bundles are written atomically and hashed as whole files", "[bundle]")
{
    TempDir tmp("vqz-test-bundle");
    const std::string dir = tmp.path;
    std::string path = std::string(dir) + "/model.safetensors";
    float w[4] = {1, -1, 0.5f, 2};
    int64_t s4[1] = {4};
    vqz_bundle_writer *bw = nullptr;
    REQUIRE(vqz_bundle_writer_create(&bw) == VQZ_OK);
    REQUIRE(vqz_bundle_writer_add(bw, "w", 1, s4, w, VQZ_DTYPE_F32) == VQZ_OK);
    REQUIRE(vqz_bundle_writer_set_meta(bw, "format", "vqz-bundle-1") == VQZ_OK);
    REQUIRE(vqz_bundle_writer_set_meta(bw, "name", "m") == VQZ_OK);
    REQUIRE(vqz_bundle_writer_set_meta(bw, "config", "[1]") == VQZ_OK);
    std::string missing = std::string(dir) + "/no/such/dir/model.safetensors";
    REQUIRE(vqz_bundle_writer_write_file(bw, missing.c_str(), nullptr) == VQZ_ERR_IO);
    uint8_t sha[32];
    REQUIRE(vqz_bundle_writer_write_file(bw, path.c_str(), sha) == VQZ_OK);
    vqz_bundle_writer_free(bw);
    REQUIRE(dir_paths(dir).size() == 1);
    std::ifstream in(path, std::ios::binary);
    bytes f((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    uint8_t whole[32];
    vqz_sha256(f.data(), f.size(), whole);
    REQUIRE(std::memcmp(sha, whole, 32) == 0);
    vqz_bundle *bd = nullptr;
    REQUIRE(vqz_bundle_open_file(path.c_str(), &bd) == VQZ_OK);
    uint8_t got[32];
    vqz_bundle_sha256(bd, got);
    REQUIRE(std::memcmp(got, whole, 32) == 0);
    // config must hold a JSON object with a "kind".
    REQUIRE(vqz_bundle_check_vqz(bd) == VQZ_ERR_FORMAT);
    REQUIRE(contains(vqz_last_error(), "model.safetensors: config is not a JSON object"));
    vqz_bundle_free(bd);
    // A bundle of another (future) format is refused by name.
    bytes future = raw_bundle("{\"__metadata__\":{\"format\":\"vqz-bundle-2\",\"name\":\"m\",\"config\":\"{\\\"kind\\\":\\\"image\\\"}\"}}", {});
    REQUIRE(vqz_bundle_open_memory(future.data(), future.size(), &bd) == VQZ_OK);
    REQUIRE(vqz_bundle_check_vqz(bd) == VQZ_ERR_VERSION);
    REQUIRE(contains(vqz_last_error(), "bundle format \"vqz-bundle-2\" is not supported (this reader: vqz-bundle-1)"));
    vqz_bundle_free(bd);
    REQUIRE(vqz_bundle_open_file((std::string(dir) + "/nope").c_str(), &bd) == VQZ_ERR_IO);
    REQUIRE(bd == nullptr);
}

TEST_CASE("the bundle fuzz corpus replays cleanly", "[bundle]")
{
    size_t files = 0;
    std::vector<std::string> inputs = dir_paths(vqz_test_path("fuzz/corpus/bundle"));
    for (const std::string &p : dir_paths(vqz_test_path("vectors")))
        inputs.push_back(p);
    for (const std::string &p : inputs) {
        std::ifstream in(p, std::ios::binary);
        bytes b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        INFO(p);
        REQUIRE(vqz_fuzz_bundle(b.data(), b.size()) == 0);
        files++;
    }
    std::printf("fuzz replay: %zu bundle inputs\n", files);
    REQUIRE(files > 0);
}
