/* arith.h — modelled index frames (spec/vqz-format.md §6.5): a range coder driven by an adaptive
 * frequency model that starts from the weight bundle's per-level prior (spec/bundle.md §3.1) or from a
 * uniform table, and learns the chunk's statistics as it goes. zstd cannot code a chunk of a few thousand
 * indices of a 1024-word codebook within a few percent of its entropy (spec §6.4); this can. */
#ifndef VQZ_FORMAT_ARITH_H
#define VQZ_FORMAT_ARITH_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define VQZ_PRIOR_BITS 24
#define VQZ_PRIOR_TOTAL (1u << VQZ_PRIOR_BITS)
#define VQZ_ARITH_HEADER 8                   /* magic, prior_shift, inc_shift, 2 reserved bytes */
#define VQZ_ARITH_MAX_TOTAL (1u << 22)       /* the model halves its counts when their sum exceeds this */
#define VQZ_ARITH_MAX_PRIOR_SHIFT 20
#define VQZ_ARITH_MAX_INC_SHIFT 12
#define VQZ_ARITH_MAX_K_PER_INDEX 64 /* a modelled frame holds at least K / 64 indices (spec §6.5) */

/* The first four bytes of a modelled frame: 'V' 'Q' 'Z' 'A'. */
extern const uint8_t vqz_arith_magic[4];
/* 1 when frame[n] starts with that magic (a modelled frame rather than a zstd frame). */
int vqz_arith_is_frame(const uint8_t *frame, size_t n);

/* One level's prior: freq[K], each >= 1, summing to VQZ_PRIOR_TOTAL. freq is owned by the struct. */
typedef struct {
    uint32_t K;
    uint32_t *freq;
} vqz_prior;

/* Build a prior from frequencies freq[K] (copied). VQZ_ERR_FORMAT when a frequency is 0 or the sum is not
 * VQZ_PRIOR_TOTAL, naming the first bad codeword; VQZ_ERR_INVALID_ARG when K is outside 2..65536. */
vqz_status vqz_prior_init(vqz_prior *p, const uint32_t *freq, uint32_t K);
/* The same from a bundle's F32 tensor row: every value must be an integer 1..2^24. */
vqz_status vqz_prior_init_f32(vqz_prior *p, const float *freq, uint32_t K);
void vqz_prior_free(vqz_prior *p); /* frees freq; the struct itself is the caller's */
/* Frequencies for a prior from codeword counts (e.g. a trainer's EMA cluster sizes): add-alpha smoothing
 * (alpha > 0), scaled to VQZ_PRIOR_TOTAL, every entry >= 1. Deterministic. */
vqz_status vqz_prior_from_counts(const double *counts, uint32_t K, double alpha, uint32_t *freq);

/* The model of a frame: initial frequency of codeword k is 1 + (prior[k] >> (24 - prior_shift)) (just 1
 * when prior_shift is 0, which needs no prior), and each coded index adds 2^inc_shift to its frequency. */
typedef struct {
    int prior_shift; /* 0..VQZ_ARITH_MAX_PRIOR_SHIFT */
    int inc_shift;   /* 0..VQZ_ARITH_MAX_INC_SHIFT */
} vqz_arith_params;

/* Ideal size in bits of coding idx[n] (each < K) with the model (prior may be NULL when prior_shift = 0). */
double vqz_arith_cost(const vqz_prior *prior, uint32_t K, vqz_arith_params prm, const uint16_t *idx, size_t n);
/* The encoder's choice: the cheapest of its candidate models for idx[n]; *bits gets that cost. */
vqz_arith_params vqz_arith_choose(const vqz_prior *prior, uint32_t K, const uint16_t *idx, size_t n, double *bits);

/* 1 when n indices of a K-word codebook may be a modelled frame: n * 64 >= K. Setting up the model costs
 * O(K), so this keeps the work of decoding any frame proportional to its indices. */
int vqz_arith_allowed(uint32_t K, size_t n);

/* Largest frame vqz_arith_encode writes for n indices. */
size_t vqz_arith_bound(size_t n);
/* Code idx[n] into out[cap] (cap >= vqz_arith_bound(n)); *out_n gets the frame size. VQZ_ERR_INDEX_RANGE
 * for an index >= K, VQZ_ERR_INVALID_ARG for bad parameters, a missing prior, or too few indices for K. */
vqz_status vqz_arith_encode(const vqz_prior *prior, uint32_t K, vqz_arith_params prm, const uint16_t *idx, size_t n,
                            uint8_t *out, size_t cap, size_t *out_n);
/* Decode exactly n indices from frame[len]. VQZ_ERR_FORMAT for a bad magic, reserved bytes, parameters,
 * too few indices for K, a stream that ends early or leaves bytes over, or a coded value outside the model;
 * VQZ_ERR_UNSUPPORTED when the frame uses the prior and prior is NULL. */
vqz_status vqz_arith_decode(const vqz_prior *prior, uint32_t K, const uint8_t *frame, size_t len, uint16_t *idx,
                            size_t n);

#endif
