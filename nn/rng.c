/* rng.c — xoshiro256** (Blackman & Vigna) with splitmix64 seeding. */
#include "nn/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void vqz_rng_seed(vqz_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

uint64_t vqz_rng_u64(vqz_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float vqz_rng_uniform(vqz_rng *r)
{
    return (float)(vqz_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

uint64_t vqz_rng_below(vqz_rng *r, uint64_t n)
{
    /* rejection sampling on the top of the range keeps the result unbiased */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do {
        v = vqz_rng_u64(r);
    } while (v >= limit);
    return v % n;
}

float vqz_rng_normal(vqz_rng *r)
{
    /* u1 in (0, 1] so log never sees 0 */
    double u1 = ((double)(vqz_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(vqz_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void vqz_rng_fill_normal(vqz_rng *r, float *x, int64_t n, float mean, float std)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = mean + std * vqz_rng_normal(r);
}

void vqz_rng_fill_uniform(vqz_rng *r, float *x, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * vqz_rng_uniform(r);
}
