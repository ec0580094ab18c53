/* arith.c — modelled index frames: priors, the adaptive frequency model (a Fenwick tree for cumulative
 * counts), the encoder's model choice, and an LZMA-style range coder (32-bit range, carry through a
 * cached byte), so that the decoder reads exactly the bytes the encoder wrote. */
#include "format/arith.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const uint8_t vqz_arith_magic[4] = {'V', 'Q', 'Z', 'A'};

int vqz_arith_is_frame(const uint8_t *frame, size_t n)
{
    return n >= 4 && memcmp(frame, vqz_arith_magic, 4) == 0;
}

#define RANGE_TOP (1u << 24) /* the range is renormalised to at least this */

/* ------------------------------------------------------------------------------------------ priors */

void vqz_prior_free(vqz_prior *p)
{
    if (!p)
        return;
    free(p->freq);
    p->freq = NULL;
    p->K = 0;
}

vqz_status vqz_prior_init(vqz_prior *p, const uint32_t *freq, uint32_t K)
{
    VQZ_FAIL_IF(!p || !freq, VQZ_ERR_INVALID_ARG, "vqz_prior_init: NULL argument");
    memset(p, 0, sizeof *p);
    VQZ_FAIL_IF(K < 2 || K > 65536, VQZ_ERR_INVALID_ARG, "prior: K=%u outside 2..65536", K);
    uint64_t sum = 0;
    for (uint32_t k = 0; k < K; k++) {
        VQZ_FAIL_IF(freq[k] == 0, VQZ_ERR_FORMAT, "prior: codeword %u has frequency 0 (every codeword needs >= 1)", k);
        sum += freq[k];
    }
    VQZ_FAIL_IF(sum != VQZ_PRIOR_TOTAL, VQZ_ERR_FORMAT, "prior: frequencies sum to %llu, not 2^%d",
                (unsigned long long)sum, VQZ_PRIOR_BITS);
    p->freq = malloc(sizeof(uint32_t) * K);
    VQZ_FAIL_IF(!p->freq, VQZ_ERR_NOMEM, "prior: out of memory for K=%u", K);
    memcpy(p->freq, freq, sizeof(uint32_t) * K);
    p->K = K;
    return VQZ_OK;
}

vqz_status vqz_prior_init_f32(vqz_prior *p, const float *freq, uint32_t K)
{
    VQZ_FAIL_IF(!p || !freq, VQZ_ERR_INVALID_ARG, "vqz_prior_init_f32: NULL argument");
    memset(p, 0, sizeof *p);
    VQZ_FAIL_IF(K < 2 || K > 65536, VQZ_ERR_INVALID_ARG, "prior: K=%u outside 2..65536", K);
    uint32_t *u = malloc(sizeof(uint32_t) * K);
    VQZ_FAIL_IF(!u, VQZ_ERR_NOMEM, "prior: out of memory for K=%u", K);
    for (uint32_t k = 0; k < K; k++) {
        float f = freq[k];
        if (!(f >= 1 && f <= (float)VQZ_PRIOR_TOTAL) || f != floorf(f)) {
            free(u);
            return vqz_fail(VQZ_ERR_FORMAT, "prior: codeword %u has frequency %g (an integer 1..2^24 is required)",
                            k, (double)f);
        }
        u[k] = (uint32_t)f;
    }
    vqz_status s = vqz_prior_init(p, u, K);
    free(u);
    return s;
}

vqz_status vqz_prior_from_counts(const double *counts, uint32_t K, double alpha, uint32_t *freq)
{
    VQZ_FAIL_IF(!counts || !freq, VQZ_ERR_INVALID_ARG, "vqz_prior_from_counts: NULL argument");
    VQZ_FAIL_IF(K < 2 || K > 65536, VQZ_ERR_INVALID_ARG, "prior: K=%u outside 2..65536", K);
    VQZ_FAIL_IF(!(alpha > 0) || !isfinite(alpha), VQZ_ERR_INVALID_ARG, "prior: alpha=%g must be > 0", alpha);
    double total = 0;
    for (uint32_t k = 0; k < K; k++) {
        VQZ_FAIL_IF(!(counts[k] >= 0) || !isfinite(counts[k]), VQZ_ERR_INVALID_ARG,
                    "prior: count of codeword %u is %g (must be finite and >= 0)", k, counts[k]);
        total += counts[k] + alpha;
    }
    int64_t sum = 0;
    for (uint32_t k = 0; k < K; k++) {
        double f = floor((counts[k] + alpha) / total * VQZ_PRIOR_TOTAL);
        freq[k] = f < 1 ? 1 : (uint32_t)f;
        sum += freq[k];
    }
    /* Flooring leaves a shortfall, the floor of 1 an excess: settle either on the largest entries, where
     * it changes the code lengths least. Ties go to the smallest codeword, so the result is reproducible. */
    while (sum != (int64_t)VQZ_PRIOR_TOTAL) {
        uint32_t big = 0;
        for (uint32_t k = 1; k < K; k++)
            if (freq[k] > freq[big])
                big = k;
        int64_t d = (int64_t)VQZ_PRIOR_TOTAL - sum;
        if (d < 0 && -d > (int64_t)freq[big] - 1)
            d = 1 - (int64_t)freq[big];
        freq[big] = (uint32_t)((int64_t)freq[big] + d);
        sum += d;
    }
    return VQZ_OK;
}

/* ------------------------------------------------------------------------------------------- model */

typedef struct {
    uint32_t K, T, inc, top; /* top: the highest power of two <= K, for the tree search */
    uint32_t *f;             /* current frequencies */
    uint32_t *tree;          /* Fenwick tree over f, 1-based; NULL when only costs are needed */
} model;

static void tree_build(model *m)
{
    for (uint32_t i = 1; i <= m->K; i++)
        m->tree[i] = m->f[i - 1];
    for (uint32_t i = 1; i <= m->K; i++) {
        uint32_t j = i + (i & -i);
        if (j <= m->K)
            m->tree[j] += m->tree[i];
    }
}

static vqz_status model_init(model *m, const vqz_prior *prior, uint32_t K, vqz_arith_params prm, int with_tree)
{
    memset(m, 0, sizeof *m);
    m->K = K;
    m->inc = 1u << prm.inc_shift;
    m->f = malloc(sizeof(uint32_t) * K);
    m->tree = with_tree ? malloc(sizeof(uint32_t) * ((size_t)K + 1)) : NULL;
    if (!m->f || (with_tree && !m->tree)) {
        free(m->f), free(m->tree);
        return vqz_fail(VQZ_ERR_NOMEM, "out of memory for a K=%u model", K);
    }
    for (uint32_t k = 0; k < K; k++) {
        uint32_t f = prm.prior_shift ? prior->freq[k] >> (VQZ_PRIOR_BITS - prm.prior_shift) : 1;
        m->f[k] = f ? f : 1;
        m->T += m->f[k];
    }
    m->top = 1;
    while (m->top * 2 <= K)
        m->top *= 2;
    if (m->tree)
        tree_build(m);
    return VQZ_OK;
}

static void model_free(model *m)
{
    free(m->f), free(m->tree);
}

static void model_update(model *m, uint32_t k)
{
    m->f[k] += m->inc;
    m->T += m->inc;
    if (m->T > VQZ_ARITH_MAX_TOTAL) {
        /* halve: the sum stays bounded (so the range keeps >= 16 steps per unit) and no entry reaches 0 */
        m->T = 0;
        for (uint32_t j = 0; j < m->K; j++) {
            m->f[j] = (m->f[j] + 1) >> 1;
            m->T += m->f[j];
        }
        if (m->tree)
            tree_build(m);
    } else if (m->tree) {
        for (uint32_t i = k + 1; i <= m->K; i += i & -i)
            m->tree[i] += m->inc;
    }
}

/* Sum of f[0..k-1]. */
static uint32_t model_cum(const model *m, uint32_t k)
{
    uint32_t s = 0;
    for (uint32_t i = k; i > 0; i -= i & -i)
        s += m->tree[i];
    return s;
}

/* The codeword k with cum(k) <= s < cum(k + 1) (s < T); *cum gets cum(k). */
static uint32_t model_find(const model *m, uint32_t s, uint32_t *cum)
{
    uint32_t pos = 0, acc = 0;
    for (uint32_t step = m->top; step; step >>= 1) {
        if (pos + step <= m->K && acc + m->tree[pos + step] <= s) {
            pos += step;
            acc += m->tree[pos];
        }
    }
    *cum = acc;
    return pos;
}

static vqz_status check_params(const vqz_prior *prior, uint32_t K, vqz_arith_params prm)
{
    VQZ_FAIL_IF(K < 2 || K > 65536, VQZ_ERR_INVALID_ARG, "modelled frame: K=%u outside 2..65536", K);
    VQZ_FAIL_IF(prm.prior_shift < 0 || prm.prior_shift > VQZ_ARITH_MAX_PRIOR_SHIFT || prm.inc_shift < 0 ||
                    prm.inc_shift > VQZ_ARITH_MAX_INC_SHIFT,
                VQZ_ERR_FORMAT, "modelled frame: prior_shift %d (0..%d) or inc_shift %d (0..%d) out of range",
                prm.prior_shift, VQZ_ARITH_MAX_PRIOR_SHIFT, prm.inc_shift, VQZ_ARITH_MAX_INC_SHIFT);
    VQZ_FAIL_IF(prm.prior_shift && !prior, VQZ_ERR_UNSUPPORTED,
                "modelled frame uses the model's prior (spec §6.5), which was not given");
    VQZ_FAIL_IF(prm.prior_shift && prior->K != K, VQZ_ERR_INVALID_ARG, "modelled frame: prior for K=%u, level K=%u",
                prior->K, K);
    return VQZ_OK;
}

double vqz_arith_cost(const vqz_prior *prior, uint32_t K, vqz_arith_params prm, const uint16_t *idx, size_t n)
{
    model m;
    if (check_params(prior, K, prm) != VQZ_OK || model_init(&m, prior, K, prm, 0) != VQZ_OK)
        return INFINITY;
    double bits = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t k = idx[i] < K ? idx[i] : 0;
        bits += log2((double)m.T / m.f[k]);
        model_update(&m, k);
    }
    model_free(&m);
    return bits;
}

vqz_arith_params vqz_arith_choose(const vqz_prior *prior, uint32_t K, const uint16_t *idx, size_t n, double *bits)
{
    /* Without a prior: Laplace (inc 1), Krichevsky-Trofimov (inc 2) and sparser estimators. With one, how
     * many observations the prior is worth, from 2^4 / inc to 2^16 / inc. */
    static const int incs[] = {0, 1, 2, 3, 4, 6, 8};
    static const int shifts[] = {0, 4, 6, 8, 10, 12, 14, 16, 18, 20};
    vqz_arith_params best = {0, 1};
    double best_bits = INFINITY;
    for (size_t s = 0; s < sizeof shifts / sizeof *shifts; s++) {
        if (shifts[s] && !prior)
            break;
        /* a prior worth more than 64 observations per codeword gains nothing and makes the range
         * coder's rounding cost more (its total is larger) */
        if (((uint64_t)1 << shifts[s]) > 64 * (uint64_t)K)
            break;
        for (size_t i = 0; i < sizeof incs / sizeof *incs; i++) {
            vqz_arith_params p = {shifts[s], incs[i]};
            double b = vqz_arith_cost(prior, K, p, idx, n);
            if (b < best_bits)
                best_bits = b, best = p;
        }
    }
    if (bits)
        *bits = best_bits;
    return best;
}

/* ------------------------------------------------------------------------------------ range coder */

typedef struct {
    uint64_t low;
    uint32_t range;
    uint8_t cache;
    uint64_t pending; /* bytes held back: the cache and 0xFF bytes a carry may still change */
    uint8_t *out, *end;
    int overflow;
} encoder;

static void put_byte(encoder *e, uint8_t b)
{
    if (e->out < e->end)
        *e->out++ = b;
    else
        e->overflow = 1;
}

static void shift_low(encoder *e)
{
    if ((uint32_t)e->low < 0xFF000000u || (e->low >> 32) != 0) {
        uint8_t carry = (uint8_t)(e->low >> 32), b = e->cache;
        do {
            put_byte(e, (uint8_t)(b + carry));
            b = 0xFF;
        } while (--e->pending != 0);
        e->cache = (uint8_t)(e->low >> 24);
    }
    e->pending++;
    e->low = (e->low & 0x00FFFFFFu) << 8;
}

int vqz_arith_allowed(uint32_t K, size_t n)
{
    return (uint64_t)n * VQZ_ARITH_MAX_K_PER_INDEX >= K;
}

size_t vqz_arith_bound(size_t n)
{
    /* an index costs at most log2(2^20) = 20 bits plus the rounding of the range, so under 3 bytes */
    return VQZ_ARITH_HEADER + 5 + 3 * n;
}

vqz_status vqz_arith_encode(const vqz_prior *prior, uint32_t K, vqz_arith_params prm, const uint16_t *idx, size_t n,
                            uint8_t *out, size_t cap, size_t *out_n)
{
    VQZ_FAIL_IF((!idx && n) || !out || !out_n, VQZ_ERR_INVALID_ARG, "vqz_arith_encode: NULL argument");
    VQZ_FAIL_IF(cap < vqz_arith_bound(n), VQZ_ERR_INVALID_ARG,
                "vqz_arith_encode: %zu bytes of output for %zu indices (needs %zu)", cap, n, vqz_arith_bound(n));
    VQZ_FAIL_IF(!vqz_arith_allowed(K, n), VQZ_ERR_INVALID_ARG,
                "vqz_arith_encode: %zu indices are too few for a modelled frame with K=%u (at least K/%d)", n, K,
                VQZ_ARITH_MAX_K_PER_INDEX);
    VQZ_FAIL_IF(check_params(prior, K, prm) != VQZ_OK, VQZ_ERR_INVALID_ARG,
                "vqz_arith_encode: model (prior_shift %d, inc_shift %d) is not valid for K=%u%s", prm.prior_shift,
                prm.inc_shift, K, prm.prior_shift && !prior ? " without a prior" : "");
    for (size_t i = 0; i < n; i++)
        VQZ_FAIL_IF(idx[i] >= K, VQZ_ERR_INDEX_RANGE, "vqz_arith_encode: index %u at position %zu is >= K=%u", idx[i],
                    i, K);
    model m;
    VQZ_TRY(model_init(&m, prior, K, prm, 1));
    memcpy(out, vqz_arith_magic, 4);
    out[4] = (uint8_t)prm.prior_shift;
    out[5] = (uint8_t)prm.inc_shift;
    out[6] = out[7] = 0;
    encoder e = {0, 0xFFFFFFFFu, 0, 1, out + VQZ_ARITH_HEADER, out + cap, 0};
    for (size_t i = 0; i < n; i++) {
        uint32_t k = idx[i], r = e.range / m.T;
        e.low += (uint64_t)r * model_cum(&m, k);
        e.range = r * m.f[k];
        while (e.range < RANGE_TOP) {
            e.range <<= 8;
            shift_low(&e);
        }
        model_update(&m, k);
    }
    for (int i = 0; i < 5; i++)
        shift_low(&e);
    model_free(&m);
    VQZ_FAIL_IF(e.overflow, VQZ_ERR_INTERNAL, "vqz_arith_encode: output exceeded its bound");
    *out_n = (size_t)(e.out - out);
    return VQZ_OK;
}

vqz_status vqz_arith_decode(const vqz_prior *prior, uint32_t K, const uint8_t *frame, size_t len, uint16_t *idx,
                            size_t n)
{
    VQZ_FAIL_IF(!frame || (!idx && n), VQZ_ERR_INVALID_ARG, "vqz_arith_decode: NULL argument");
    VQZ_FAIL_IF(len < VQZ_ARITH_HEADER + 5 || !vqz_arith_is_frame(frame, len), VQZ_ERR_FORMAT,
                "not a modelled frame (bad magic or shorter than 13 bytes)");
    VQZ_FAIL_IF(frame[6] || frame[7], VQZ_ERR_FORMAT, "modelled frame: reserved bytes are not zero");
    vqz_arith_params prm = {frame[4], frame[5]};
    VQZ_TRY(check_params(prior, K, prm));
    VQZ_FAIL_IF(!vqz_arith_allowed(K, n), VQZ_ERR_FORMAT,
                "modelled frame of %zu indices with K=%u: at least K/%d are required", n, K, VQZ_ARITH_MAX_K_PER_INDEX);
    const uint8_t *p = frame + VQZ_ARITH_HEADER, *end = frame + len;
    VQZ_FAIL_IF(p[0] != 0, VQZ_ERR_FORMAT, "modelled frame: the coded bytes must start with 0");
    uint32_t code = 0, range = 0xFFFFFFFFu;
    for (int i = 1; i < 5; i++)
        code = (code << 8) | p[i];
    p += 5;
    model m;
    VQZ_TRY(model_init(&m, prior, K, prm, 1));
    vqz_status s = VQZ_OK;
    for (size_t i = 0; i < n && s == VQZ_OK; i++) {
        uint32_t r = range / m.T, v = code / r, cum;
        if (v >= m.T) {
            s = vqz_fail(VQZ_ERR_FORMAT, "modelled frame: value outside the model at index %zu", i);
            break;
        }
        uint32_t k = model_find(&m, v, &cum);
        idx[i] = (uint16_t)k;
        code -= r * cum;
        range = r * m.f[k];
        while (range < RANGE_TOP && s == VQZ_OK) {
            if (p == end)
                s = vqz_fail(VQZ_ERR_FORMAT, "modelled frame ends after %zu of %zu indices", i + 1, n);
            else
                code = (code << 8) | *p++, range <<= 8;
        }
        model_update(&m, k);
    }
    model_free(&m);
    VQZ_TRY(s);
    VQZ_FAIL_IF(p != end, VQZ_ERR_FORMAT, "modelled frame: %zu bytes left after %zu indices", (size_t)(end - p), n);
    return VQZ_OK;
}
