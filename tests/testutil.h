// testutil.h — helpers shared by the Catch2 tests: skip reporting, random data, error measures.
#ifndef VQZ_TESTS_TESTUTIL_H
#define VQZ_TESTS_TESTUTIL_H

#include <cmath>
#include <cstdint>
#include <string>
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

#endif
