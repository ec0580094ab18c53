/* rng.h — a small seeded random generator (xoshiro256** seeded by splitmix64). The same seed gives the
 * same stream on every machine: only integer arithmetic and IEEE-exact float conversions are used for
 * uniforms; normals use the Box–Muller transform. */
#ifndef VQZ_NN_RNG_H
#define VQZ_NN_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} vqz_rng;

void vqz_rng_seed(vqz_rng *r, uint64_t seed);
uint64_t vqz_rng_u64(vqz_rng *r);
/* uniform in [0, 1) with 24 random bits (exact in float) */
float vqz_rng_uniform(vqz_rng *r);
/* uniform integer in [0, n), unbiased; n > 0 */
uint64_t vqz_rng_below(vqz_rng *r, uint64_t n);
/* standard normal */
float vqz_rng_normal(vqz_rng *r);
/* fill with mean + std * normal */
void vqz_rng_fill_normal(vqz_rng *r, float *x, int64_t n, float mean, float std);
/* fill with uniform in [lo, hi) */
void vqz_rng_fill_uniform(vqz_rng *r, float *x, int64_t n, float lo, float hi);

#endif
