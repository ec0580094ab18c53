// test_data_manifest.cpp — the committed training-data manifest (samples/DATA-MANIFEST.tsv): its shape,
// the validation split rule of tools/fetch-training-data.sh, and the shipped samples being in val.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "testutil.h"

namespace {

// Plain FIPS 180-4 SHA-256, the reference for the split rule (the script uses sha256sum).
std::vector<uint8_t> sha256(const std::string &msg)
{
    static const uint32_t K[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    std::vector<uint8_t> m(msg.begin(), msg.end());
    uint64_t bits = (uint64_t)m.size() * 8;
    m.push_back(0x80);
    while (m.size() % 64 != 56)
        m.push_back(0);
    for (int i = 7; i >= 0; i--)
        m.push_back((uint8_t)(bits >> (8 * i)));
    auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
    for (size_t blk = 0; blk < m.size(); blk += 64) {
        uint32_t w[64];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)m[blk + 4 * i] << 24 | (uint32_t)m[blk + 4 * i + 1] << 16 |
                   (uint32_t)m[blk + 4 * i + 2] << 8 | (uint32_t)m[blk + 4 * i + 3];
        for (int i = 16; i < 64; i++) {
            uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int i = 0; i < 64; i++) {
            uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
            uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    std::vector<uint8_t> out(32);
    for (int i = 0; i < 32; i++)
        out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
    return out;
}

std::string hex(const std::vector<uint8_t> &d)
{
    std::string s;
    char b[3];
    for (uint8_t x : d) {
        std::snprintf(b, sizeof b, "%02x", x);
        s += b;
    }
    return s;
}

// The digest read as a big-endian number, mod 10: the fetch script's validation rule.
int digest_mod10(const std::vector<uint8_t> &d)
{
    int r = 0;
    for (uint8_t x : d)
        r = (r * 256 + x) % 10;
    return r;
}

std::vector<std::string> split_tabs(const std::string &line)
{
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        size_t t = line.find('\t', start);
        out.push_back(line.substr(start, t == std::string::npos ? std::string::npos : t - start));
        if (t == std::string::npos)
            return out;
        start = t + 1;
    }
}

struct Row {
    std::string package, version, path, file, split, licence, sha;
    long bytes;
    int width, height, rate, channels;
    double seconds;
};

const char *HEADER = "package\tversion\tpath\tfile\tsplit\tlicence\tbytes\twidth\theight\tseconds\trate\tchannels\tsha256";

std::vector<Row> load_manifest()
{
    std::string text = slurp(vqz_test_path("../samples/DATA-MANIFEST.tsv"));
    REQUIRE(!text.empty());
    std::istringstream in(text);
    std::string line;
    std::getline(in, line);
    REQUIRE(line == HEADER);
    std::vector<Row> rows;
    int n = 1;
    while (std::getline(in, line)) {
        n++;
        std::vector<std::string> f = split_tabs(line);
        INFO("manifest line " << n << ": " << line);
        REQUIRE(f.size() == 13);
        Row r;
        r.package = f[0]; r.version = f[1]; r.path = f[2]; r.file = f[3]; r.split = f[4]; r.licence = f[5];
        r.bytes = std::atol(f[6].c_str());
        bool image = f[7] != "-";
        r.width = image ? std::atoi(f[7].c_str()) : 0;
        r.height = image ? std::atoi(f[8].c_str()) : 0;
        r.seconds = image ? 0 : std::atof(f[9].c_str());
        r.rate = image ? 0 : std::atoi(f[10].c_str());
        r.channels = image ? 0 : std::atoi(f[11].c_str());
        r.sha = f[12];
        REQUIRE(!r.package.empty());
        REQUIRE(!r.version.empty());
        REQUIRE(!r.path.empty());
        REQUIRE(!r.licence.empty());
        REQUIRE(r.bytes > 0);
        REQUIRE(r.sha.size() == 64);
        REQUIRE(r.sha.find_first_not_of("0123456789abcdef") == std::string::npos);
        if (image) {
            REQUIRE(r.width > 0);
            REQUIRE(r.height > 0);
            REQUIRE(f[9] == "-");
        } else {
            REQUIRE(f[8] == "-");
            REQUIRE(r.seconds > 0);
            REQUIRE(r.rate >= 8000);
            REQUIRE(r.channels >= 1);
        }
        rows.push_back(r);
    }
    return rows;
}

} // namespace

TEST_CASE("reference SHA-256 matches the FIPS 180-4 examples", "[data]")
{
    REQUIRE(hex(sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    REQUIRE(hex(sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    REQUIRE(hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("data manifest: rows well formed, names unique, files filed by group and split", "[data]")
{
    std::vector<Row> rows = load_manifest();
    REQUIRE(rows.size() > 1000);
    std::set<std::string> keys, files;
    std::map<std::string, int> per_split;
    for (const Row &r : rows) {
        INFO(r.package << " " << r.path << " -> " << r.file);
        REQUIRE(keys.insert(r.package + "/" + r.path).second);
        REQUIRE(files.insert(r.file).second);
        REQUIRE((r.split == "train" || r.split == "val"));
        size_t s1 = r.file.find('/'), s2 = r.file.find('/', s1 + 1);
        REQUIRE(s2 != std::string::npos);
        std::string group = r.file.substr(0, s1);
        REQUIRE((group == "images" || group == "speech" || group == "music"));
        REQUIRE(r.file.substr(s1 + 1, s2 - s1 - 1) == r.split);
        REQUIRE(r.file.compare(s2 + 1, r.package.size() + 1, r.package + "_") == 0);
        REQUIRE((group == "images") == (r.width > 0));
        per_split[group + "/" + r.split]++;
    }
    // a file name (without the split folder) is never both in train and in val
    std::set<std::string> bare;
    for (const std::string &f : files)
        REQUIRE(bare.insert(f.substr(0, f.find('/')) + f.substr(f.find('/', f.find('/') + 1))).second);
    for (const char *g : {"images", "speech", "music"}) {
        int tr = per_split[std::string(g) + "/train"], va = per_split[std::string(g) + "/val"];
        INFO(g << ": " << tr << " train, " << va << " val");
        REQUIRE(va > 0);
        REQUIRE(tr > 4 * va); // about 10 % in val
        REQUIRE(tr < 20 * va);
    }
}

TEST_CASE("data manifest: validation split follows SHA-256(package/path) mod 10", "[data]")
{
    std::vector<Row> rows = load_manifest();
    const std::set<std::string> forced = {"python3-skimage/usr/lib/python3/dist-packages/skimage/data/coffee.png",
                                          "python3-skimage/usr/lib/python3/dist-packages/skimage/data/chelsea.png"};
    int val = 0, forced_seen = 0;
    for (const Row &r : rows) {
        std::string key = r.package + "/" + r.path;
        bool want = forced.count(key) || digest_mod10(sha256(key)) == 0;
        INFO(key << " filed in " << r.split);
        REQUIRE((r.split == "val") == want);
        val += want;
        forced_seen += (int)forced.count(key);
    }
    REQUIRE(forced_seen == 2);
    REQUIRE(val > 0);
}

TEST_CASE("data manifest: the shipped sample images are validation files", "[data]")
{
    std::vector<Row> rows = load_manifest();
    for (const char *name : {"coffee.png", "chelsea.png"}) {
        std::string bytes = slurp(vqz_test_path(std::string("../samples/images/") + name));
        REQUIRE(!bytes.empty());
        std::string digest = hex(sha256(bytes));
        int found = 0;
        for (const Row &r : rows) {
            if (r.sha != digest)
                continue;
            found++;
            INFO(name << " is " << r.file);
            REQUIRE(r.split == "val");
            REQUIRE(r.bytes == (long)bytes.size());
        }
        INFO(name << " sha256 " << digest);
        REQUIRE(found == 1);
    }
}
