// test_arith.cpp — modelled index frames (format/arith.c, spec/vqz-format.md §6.5): priors from counts and
// their validation, round trips over codebook sizes, model parameters and stream shapes (the halving of
// the counts included), the model's cost against the bytes written, and every class of damage.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "testutil.h"

extern "C" {
#include "common/status.h"
#include "format/arith.h"
#include "nn/rng.h"
}

namespace {

typedef std::vector<uint8_t> bytes;
typedef std::vector<uint16_t> indices;

// A skewed stream: codeword k with probability proportional to (rank + 1)^-1.1 under a fixed shuffle.
indices skewed(vqz_rng *r, size_t n, uint32_t K)
{
    std::vector<double> cdf(K);
    double t = 0;
    for (uint32_t k = 0; k < K; k++)
        cdf[k] = t += std::pow(k + 1.0, -1.1);
    std::vector<uint16_t> perm(K);
    for (uint32_t k = 0; k < K; k++)
        perm[k] = (uint16_t)k;
    for (uint32_t k = K - 1; k > 0; k--)
        std::swap(perm[k], perm[vqz_rng_below(r, k + 1)]);
    indices v(n);
    for (auto &x : v)
        x = perm[std::lower_bound(cdf.begin(), cdf.end(), vqz_rng_uniform(r) * t) - cdf.begin()];
    return v;
}

// A prior counted on another stream of the same kind.
std::vector<uint32_t> prior_for(vqz_rng *r, uint32_t K)
{
    std::vector<double> counts(K, 0);
    for (uint16_t x : skewed(r, 20 * (size_t)K, K))
        counts[x]++;
    std::vector<uint32_t> f(K);
    REQUIRE(vqz_prior_from_counts(counts.data(), K, 0.5, f.data()) == VQZ_OK);
    return f;
}

bytes encode(const vqz_prior *p, uint32_t K, vqz_arith_params prm, const indices &v)
{
    bytes out(vqz_arith_bound(v.size()));
    size_t n = 0;
    REQUIRE(vqz_arith_encode(p, K, prm, v.data(), v.size(), out.data(), out.size(), &n) == VQZ_OK);
    out.resize(n);
    return out;
}

vqz_status decode(const vqz_prior *p, uint32_t K, const bytes &f, indices *v)
{
    return vqz_arith_decode(p, K, f.data(), f.size(), v->data(), v->size());
}

} // namespace

TEST_CASE("priors: from counts, and validated when loaded", "[format][arith]")
{
    for (uint32_t K : {2u, 3u, 1024u, 65536u}) {
        std::vector<double> counts(K, 0);
        counts[K - 1] = 1e12; // one codeword takes nearly everything; the others still get >= 1
        std::vector<uint32_t> f(K);
        REQUIRE(vqz_prior_from_counts(counts.data(), K, 0.5, f.data()) == VQZ_OK);
        uint64_t sum = 0;
        for (uint32_t x : f) {
            REQUIRE(x >= 1);
            sum += x;
        }
        REQUIRE(sum == VQZ_PRIOR_TOTAL);
        REQUIRE(f[K - 1] == VQZ_PRIOR_TOTAL - (K - 1));
        vqz_prior p;
        REQUIRE(vqz_prior_init(&p, f.data(), K) == VQZ_OK);
        vqz_prior_free(&p);
    }
    // Equal counts give equal frequencies (K divides 2^24).
    std::vector<double> even(256, 3.0);
    std::vector<uint32_t> f(256);
    REQUIRE(vqz_prior_from_counts(even.data(), 256, 0.5, f.data()) == VQZ_OK);
    for (uint32_t x : f)
        REQUIRE(x == VQZ_PRIOR_TOTAL / 256);

    vqz_prior p;
    f[7] = 0;
    REQUIRE(vqz_prior_init(&p, f.data(), 256) == VQZ_ERR_FORMAT);
    REQUIRE(contains(vqz_last_error(), "codeword 7 has frequency 0"));
    f[7] = 2;
    REQUIRE(vqz_prior_init(&p, f.data(), 256) == VQZ_ERR_FORMAT);
    REQUIRE(contains(vqz_last_error(), "sum to"));
    std::vector<float> ff(4, 4194304.0f);
    ff[2] = 4194303.5f; // not an integer
    REQUIRE(vqz_prior_init_f32(&p, ff.data(), 4) == VQZ_ERR_FORMAT);
    ff[2] = NAN;
    REQUIRE(vqz_prior_init_f32(&p, ff.data(), 4) == VQZ_ERR_FORMAT);
    ff[2] = 4194304.0f;
    REQUIRE(vqz_prior_init_f32(&p, ff.data(), 4) == VQZ_OK);
    vqz_prior_free(&p);
    std::vector<double> bad(4, 1.0);
    bad[1] = -1;
    REQUIRE(vqz_prior_from_counts(bad.data(), 4, 0.5, f.data()) == VQZ_ERR_INVALID_ARG);
    REQUIRE(vqz_prior_from_counts(even.data(), 256, 0, f.data()) == VQZ_ERR_INVALID_ARG);
}

TEST_CASE("modelled frames round-trip every codebook size, model and stream shape", "[format][arith]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 65);
    for (uint32_t K : {2u, 3u, 16u, 255u, 256u, 257u, 1000u, 1024u, 4097u, 65536u}) {
        std::vector<uint32_t> pf = prior_for(&r, K);
        vqz_prior prior;
        REQUIRE(vqz_prior_init(&prior, pf.data(), K) == VQZ_OK);
        for (size_t n : {0u, 1u, 7u, 1000u, 20000u}) {
            if (!vqz_arith_allowed(K, n)) { // too few indices for the codebook: refused both ways
                indices v(n, 0), back(n);
                bytes out(vqz_arith_bound(n)), f(VQZ_ARITH_HEADER + 5, 0);
                std::memcpy(f.data(), vqz_arith_magic, 4);
                size_t wrote = 0;
                REQUIRE(vqz_arith_encode(&prior, K, vqz_arith_params{0, 1}, v.data(), n, out.data(), out.size(),
                                         &wrote) == VQZ_ERR_INVALID_ARG);
                REQUIRE(decode(&prior, K, f, &back) == VQZ_ERR_FORMAT);
                REQUIRE(contains(vqz_last_error(), "at least K/64"));
                continue;
            }
            for (int kind = 0; kind < 3; kind++) {
                indices v = kind == 0 ? skewed(&r, n, K) : indices(n);
                if (kind == 1)
                    for (auto &x : v)
                        x = (uint16_t)vqz_rng_below(&r, K);
                if (kind == 2) // one codeword throughout: the cheapest case, and long renormalisation runs
                    for (auto &x : v)
                        x = (uint16_t)(K - 1);
                double best_bits = 0;
                vqz_arith_params best = vqz_arith_choose(&prior, K, v.data(), v.size(), &best_bits);
                for (vqz_arith_params prm : {vqz_arith_params{0, 0}, vqz_arith_params{0, 1}, vqz_arith_params{8, 2},
                                             vqz_arith_params{20, 12}, best}) {
                    INFO("K=" << K << " n=" << n << " kind=" << kind << " prior_shift=" << prm.prior_shift
                              << " inc_shift=" << prm.inc_shift);
                    bytes f = encode(&prior, K, prm, v);
                    indices back(n, 0xffff);
                    REQUIRE(decode(&prior, K, f, &back) == VQZ_OK);
                    REQUIRE(back == v);
                    // The model's cost is what the range coder spends, to within 1% and 0.01 bit an index
                    // of rounding and 13 bytes of header and flush (for the encoder's own choices; extreme
                    // models such as a total near 2^22 on K = 2 leave the coder coarser steps).
                    double cost = vqz_arith_cost(&prior, K, prm, v.data(), v.size());
                    if (prm.prior_shift == best.prior_shift && prm.inc_shift == best.inc_shift)
                        REQUIRE(f.size() * 8.0 <= cost * 1.01 + 0.01 * n + 8 * (VQZ_ARITH_HEADER + 5) + 8);
                    REQUIRE(f.size() * 8.0 >= cost - 8);
                    if (prm.prior_shift == 0 && prm.inc_shift <= 1) // candidates of the encoder's choice
                        REQUIRE(cost >= best_bits - 1e-6);
                }
            }
        }
        vqz_prior_free(&prior);
    }
}

TEST_CASE("the model halves its counts as the spec says", "[format][arith]")
{
    // inc_shift 12 adds 4096 per index: the total passes 2^22 after about a thousand indices, many times
    // over in 20000, and decoding only agrees with encoding if both halve at the same index.
    vqz_rng r;
    vqz_rng_seed(&r, 3);
    indices v = skewed(&r, 20000, 300);
    vqz_arith_params prm = {0, 12};
    bytes f = encode(nullptr, 300, prm, v);
    indices back(v.size());
    REQUIRE(decode(nullptr, 300, f, &back) == VQZ_OK);
    REQUIRE(back == v);
    // A fast-adapting model is cheaper than a slow one on a stream whose statistics change midway.
    indices shift(8000);
    for (size_t i = 0; i < shift.size(); i++)
        shift[i] = (uint16_t)(i < 4000 ? vqz_rng_below(&r, 8) : 200 + vqz_rng_below(&r, 8));
    REQUIRE(vqz_arith_cost(nullptr, 300, vqz_arith_params{0, 12}, shift.data(), shift.size()) <
            vqz_arith_cost(nullptr, 300, vqz_arith_params{0, 0}, shift.data(), shift.size()));
}

TEST_CASE("damaged modelled frames are refused with the reason", "[format][arith]")
{
    vqz_rng r;
    vqz_rng_seed(&r, 9);
    const uint32_t K = 1024;
    std::vector<uint32_t> pf = prior_for(&r, K);
    vqz_prior prior;
    REQUIRE(vqz_prior_init(&prior, pf.data(), K) == VQZ_OK);
    indices v = skewed(&r, 3000, K), back(v.size());
    bytes f = encode(&prior, K, vqz_arith_params{10, 1}, v);

    bytes g = f;
    g.pop_back();
    REQUIRE(decode(&prior, K, g, &back) == VQZ_ERR_FORMAT);
    g = f;
    g.push_back(0);
    REQUIRE(decode(&prior, K, g, &back) == VQZ_ERR_FORMAT);
    REQUIRE(contains(vqz_last_error(), "1 bytes left"));
    g = f;
    g[0] = 'X';
    REQUIRE(decode(&prior, K, g, &back) == VQZ_ERR_FORMAT);
    REQUIRE(contains(vqz_last_error(), "not a modelled frame"));
    g = f;
    g[7] = 1;
    REQUIRE(decode(&prior, K, g, &back) == VQZ_ERR_FORMAT);
    REQUIRE(contains(vqz_last_error(), "reserved"));
    g = f;
    g[4] = 21;
    REQUIRE(decode(&prior, K, g, &back) == VQZ_ERR_FORMAT);
    REQUIRE(contains(vqz_last_error(), "prior_shift 21"));
    g = f;
    g[8] = 1;
    REQUIRE(decode(&prior, K, g, &back) == VQZ_ERR_FORMAT);
    REQUIRE(contains(vqz_last_error(), "start with 0"));
    REQUIRE(decode(nullptr, K, f, &back) == VQZ_ERR_UNSUPPORTED);
    REQUIRE(contains(vqz_last_error(), "prior"));
    bytes tiny(f.begin(), f.begin() + 12);
    REQUIRE(decode(&prior, K, tiny, &back) == VQZ_ERR_FORMAT);
    // Any byte flipped: a clean error or other indices, never a crash or a read past the frame (ASan).
    for (size_t i = VQZ_ARITH_HEADER + 1; i < f.size(); i += 7) {
        g = f;
        g[i] ^= 0x5a;
        vqz_status s = decode(&prior, K, g, &back);
        REQUIRE((s == VQZ_OK || s == VQZ_ERR_FORMAT));
        for (uint16_t x : back)
            REQUIRE(x < K);
    }
    // The encoder checks its input and its output space.
    indices bad = v;
    bad[5] = (uint16_t)K;
    bytes out(vqz_arith_bound(bad.size()));
    size_t n = 0;
    REQUIRE(vqz_arith_encode(&prior, K, vqz_arith_params{0, 1}, bad.data(), bad.size(), out.data(), out.size(), &n) ==
            VQZ_ERR_INDEX_RANGE);
    REQUIRE(vqz_arith_encode(&prior, K, vqz_arith_params{0, 1}, v.data(), v.size(), out.data(), 10, &n) ==
            VQZ_ERR_INVALID_ARG);
    REQUIRE(vqz_arith_encode(nullptr, K, vqz_arith_params{4, 1}, v.data(), v.size(), out.data(), out.size(), &n) ==
            VQZ_ERR_INVALID_ARG);
    vqz_prior_free(&prior);
}
