// testutil.h — helpers shared by the Catch2 tests: skip reporting, random data, error measures, temporary
// folders, whole-file reads and writes, folder listings and where the built tools are.
#ifndef VQZ_TESTS_TESTUTIL_H
#define VQZ_TESTS_TESTUTIL_H

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <ftw.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

extern "C" {
#include "nn/rng.h"
}

// Marks the running test case as skipped (counted apart by the listener in main.cpp) and prints
// the reason on its own line, e.g. "SKIPPED: no CUDA device".
void vqz_test_skip(const std::string &why);

// Directory holding the test data (tests/), found relative to the working directory.
std::string vqz_test_path(const std::string &rel);

// Random floats from a seeded generator.
inline std::vector<float> rand_vec(vqz_rng *r, size_t n, float lo = -1.0f, float hi = 1.0f)
{
    std::vector<float> v(n);
    vqz_rng_fill_uniform(r, v.data(), (int64_t)n, lo, hi);
    return v;
}

// max |a-b| / max(max|b|, tiny): the relative error used by every numeric test.
inline double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = std::fmax(num, std::fabs((double)a[i] - (double)b[i]));
        den = std::fmax(den, std::fabs((double)b[i]));
    }
    return num / std::fmax(den, 1e-30);
}
inline double rel_err(const std::vector<float> &a, const std::vector<float> &b)
{
    return a.size() == b.size() ? rel_err(a.data(), b.data(), a.size()) : INFINITY;
}
inline double rel_err(const std::vector<double> &a, const std::vector<double> &b)
{
    if (a.size() != b.size())
        return INFINITY;
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); i++) {
        num = std::fmax(num, std::fabs(a[i] - b[i]));
        den = std::fmax(den, std::fabs(b[i]));
    }
    return num / std::fmax(den, 1e-300);
}

// ------------------------------------------------------------------------------------------ files

inline int vqz_test_remove_entry(const char *path, const struct stat *, int, struct FTW *)
{
    return std::remove(path);
}

// A fresh folder /tmp/PREFIX-XXXXXX, removed with everything in it when it goes out of scope (links are
// removed, not followed).
struct TempDir {
    std::string path;
    explicit TempDir(const char *prefix = "vqz-test")
    {
        std::string t = std::string("/tmp/") + prefix + "-XXXXXX";
        std::vector<char> buf(t.begin(), t.end());
        buf.push_back('\0');
        REQUIRE(mkdtemp(buf.data()) != nullptr);
        path = buf.data();
    }
    ~TempDir()
    {
        // CHECK, not REQUIRE: a destructor must not throw, least of all while a failed REQUIRE unwinds.
        CHECK(nftw(path.c_str(), vqz_test_remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0);
    }
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;
    std::string at(const std::string &name) const { return path + "/" + name; }
};

// Appends the whole file to *out; false when it cannot be opened.
inline bool vqz_test_read_all(const std::string &path, std::string *out)
{
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f)
        return false;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
        out->append(buf, n);
    std::fclose(f);
    return true;
}

// The file's bytes, or "" when it cannot be opened.
inline std::string slurp(const std::string &path)
{
    std::string s;
    vqz_test_read_all(path, &s);
    return s;
}

// The file's bytes; fails the test when it cannot be opened (so that two missing files never compare equal).
inline std::string slurp_existing(const std::string &path)
{
    std::string s;
    INFO(path);
    REQUIRE(vqz_test_read_all(path, &s));
    return s;
}

// Writes (replaces) the file with exactly these bytes; fails the test on any error.
inline void spit(const std::string &path, const std::string &bytes)
{
    INFO(path);
    FILE *f = std::fopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size());
    REQUIRE(std::fclose(f) == 0);
}

inline bool file_exists(const std::string &path)
{
    struct stat st;
    return stat(path.c_str(), &st) == 0;
}

// The names in a folder other than "." and "..", hidden ones included, sorted; fails the test when the
// folder cannot be read.
inline std::vector<std::string> dir_names(const std::string &dir)
{
    std::vector<std::string> out;
    DIR *d = opendir(dir.c_str());
    INFO(dir);
    REQUIRE(d != nullptr);
    while (struct dirent *e = readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..")
            out.push_back(n);
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

// DIR/NAME for every entry whose name does not start with '.', sorted; none when the folder cannot be read.
inline std::vector<std::string> dir_paths(const std::string &dir)
{
    std::vector<std::string> out;
    DIR *d = opendir(dir.c_str());
    if (!d)
        return out;
    while (struct dirent *e = readdir(d))
        if (e->d_name[0] != '.')
            out.push_back(dir + "/" + e->d_name);
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

// The build folder that holds this test binary (BUILD for BUILD/tests/vqz-tests), or "" when unknown.
inline std::string vqz_test_build_dir()
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return "";
    std::string p(exe, (size_t)n);
    p = p.substr(0, p.rfind('/'));
    return p.substr(0, p.rfind('/'));
}

// The folder of the built tools (vqz-enc, vqz-train, ...): $VQZ_BIN_DIR, else BUILD/bin beside this test
// binary, else build/bin.
inline std::string vqz_test_bin_dir()
{
    if (const char *e = std::getenv("VQZ_BIN_DIR"))
        return e;
    std::string b = vqz_test_build_dir();
    struct stat st;
    if (!b.empty() && stat((b + "/bin").c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        return b + "/bin";
    return "build/bin";
}

inline bool contains(const std::string &hay, const std::string &needle)
{
    return hay.find(needle) != std::string::npos;
}

#endif
