/* gan.c — multi-scale STFT discriminator (nn/gan.h): STFT by FFTW r2c and its adjoint by c2r and
 * overlap-add, conv2d/LeakyReLU stacks through nn/ops.h, hinge and feature-matching losses, AdamW. */
#include "nn/gan.h"

#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "nn/adamw.h"

#define FEAT_EPS 1e-8
#define MAX_LAYERS 8
#define MAX_CONVS (MAX_LAYERS + 2)

typedef struct {
    int n, hop, K;
    float *window;   /* periodic Hann [n] */
    float norm;      /* 1 / sqrt(sum w^2) */
    fftwf_plan r2c;  /* planned on fftwf_malloc'd arrays, executed on aligned per-thread scratch */
    fftwf_plan c2r;
} disc_fft;

/* Spatial sizes of one scale for the current input: level 0 is the STFT input z (and a_0, same size),
 * level l the output of conv l; the logits have the size of level L. */
typedef struct {
    int64_t N, T, F, K;
    int64_t h[MAX_CONVS], w[MAX_CONVS];
    int64_t act_off[MAX_CONVS + 1]; /* a_0 .. a_L, then the logits, in floats into an activation buffer */
    int64_t act_total;
    int64_t max_grad;               /* largest of z, a_l and logits */
} disc_geom;

typedef struct {
    disc_fft fft[VQZ_DISC_MAX_SCALES];
    int n_max;
    vqz_tensor *pw, *pg;   /* [n_tensors] views into params and grads */
    /* scratch, grown on demand and kept between calls */
    float *spec;           /* z of the current pass [N, 2, F, K] */
    float *act, *featx;    /* activations of the pass, and x's feature maps (generator terms) */
    float *ga, *gb;        /* activation-gradient ping-pong */
    float *fftbuf;         /* per-thread frame and spectrum */
    double *part;          /* per-plane partial sums */
    int64_t cap_spec, cap_act, cap_featx, cap_g, cap_fft, cap_part;
} disc_priv;

/* The FFTW planner is not thread-safe; plan creation and destruction in this module go through it. */
static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

void vqz_disc_config_default(vqz_disc_config *c)
{
    memset(c, 0, sizeof *c);
    c->scales = 3;
    c->n_fft[0] = 512;
    c->n_fft[1] = 1024;
    c->n_fft[2] = 2048;
    c->channels = 32;
    c->layers = 3;
    c->slope = 0.2f;
}

static vqz_status config_check(const vqz_disc_config *c)
{
    VQZ_FAIL_IF(c->scales < 1 || c->scales > VQZ_DISC_MAX_SCALES, VQZ_ERR_INVALID_ARG,
                "disc_create: %d scales (want 1..%d)", c->scales, VQZ_DISC_MAX_SCALES);
    for (int s = 0; s < c->scales; s++)
        VQZ_FAIL_IF(c->n_fft[s] < 16 || c->n_fft[s] > 16384 || c->n_fft[s] % 4 != 0, VQZ_ERR_INVALID_ARG,
                    "disc_create: n_fft[%d] = %d must be a multiple of 4 in 16..16384", s, c->n_fft[s]);
    VQZ_FAIL_IF(c->channels < 1 || c->channels > 1024, VQZ_ERR_INVALID_ARG, "disc_create: channels = %d (want 1..1024)",
                c->channels);
    VQZ_FAIL_IF(c->layers < 0 || c->layers > MAX_LAYERS, VQZ_ERR_INVALID_ARG, "disc_create: layers = %d (want 0..%d)",
                c->layers, MAX_LAYERS);
    VQZ_FAIL_IF(!(c->slope > 0.0f && c->slope <= 1.0f), VQZ_ERR_INVALID_ARG,
                "disc_create: slope = %g (want 0 < slope <= 1)", c->slope);
    return VQZ_OK;
}

static int n_convs(const vqz_disc *d)
{
    return d->cfg.layers + 2;
}

/* tensor id of conv l of scale s: weight, bias + 1 */
static int conv_id(const vqz_disc *d, int s, int l)
{
    return 2 * (s * n_convs(d) + l);
}

void vqz_disc_free(vqz_disc *d)
{
    if (!d)
        return;
    disc_priv *p = d->priv;
    if (p) {
        pthread_mutex_lock(&plan_lock);
        for (int s = 0; s < VQZ_DISC_MAX_SCALES; s++) {
            if (p->fft[s].r2c)
                fftwf_destroy_plan(p->fft[s].r2c);
            if (p->fft[s].c2r)
                fftwf_destroy_plan(p->fft[s].c2r);
        }
        pthread_mutex_unlock(&plan_lock);
        for (int s = 0; s < VQZ_DISC_MAX_SCALES; s++)
            fftwf_free(p->fft[s].window);
        free(p->pw);
        free(p->pg);
        free(p->spec);
        free(p->act);
        free(p->featx);
        free(p->ga);
        free(p->gb);
        fftwf_free(p->fftbuf);
        free(p->part);
        free(p);
    }
    free(d->info);
    free(d->params);
    free(d->grads);
    free(d->adam_m);
    free(d->adam_v);
    free(d);
}

static vqz_status plan_scale(disc_fft *f, int n)
{
    f->n = n;
    f->hop = n / 4;
    f->K = n / 2 + 1;
    f->window = fftwf_malloc((size_t)n * sizeof(float));
    float *in = fftwf_malloc((size_t)n * sizeof(float));
    fftwf_complex *spec = fftwf_malloc((size_t)f->K * sizeof(fftwf_complex));
    if (f->window && in && spec) {
        double sw = 0.0;
        for (int t = 0; t < n; t++) {
            double w = 0.5 - 0.5 * cos(2.0 * M_PI * t / n);
            f->window[t] = (float)w;
            sw += w * w;
        }
        f->norm = (float)(1.0 / sqrt(sw));
        /* ESTIMATE: no timing runs, so every run computes the same bits */
        pthread_mutex_lock(&plan_lock);
        f->r2c = fftwf_plan_dft_r2c_1d(n, in, spec, FFTW_ESTIMATE);
        f->c2r = fftwf_plan_dft_c2r_1d(n, spec, in, FFTW_ESTIMATE);
        pthread_mutex_unlock(&plan_lock);
    }
    fftwf_free(in);
    fftwf_free(spec);
    VQZ_FAIL_IF(!f->window || !f->r2c || !f->c2r, VQZ_ERR_NOMEM,
                "disc_create: cannot allocate or plan an FFT of size %d", n);
    return VQZ_OK;
}

static vqz_status build(vqz_disc *d, uint64_t seed)
{
    const int S = d->cfg.scales, L = d->cfg.layers, C = d->cfg.channels;
    d->n_tensors = 2 * S * n_convs(d);
    d->info = calloc((size_t)d->n_tensors, sizeof *d->info);
    disc_priv *p = calloc(1, sizeof *p);
    d->priv = p;
    VQZ_FAIL_IF(!d->info || !p, VQZ_ERR_NOMEM, "disc_create: out of memory");
    int64_t off = 0;
    for (int s = 0; s < S; s++)
        for (int l = 0; l <= L + 1; l++) {
            int ci = l == 0 ? 2 : C, co = l == L + 1 ? 1 : C;
            vqz_param_info *w = &d->info[conv_id(d, s, l)], *b = w + 1;
            snprintf(w->name, sizeof w->name, "d.%d.%d.weight", s, l);
            w->ndim = 4;
            w->shape[0] = co;
            w->shape[1] = ci;
            w->shape[2] = w->shape[3] = 3;
            w->offset = off;
            off += (int64_t)co * ci * 9;
            snprintf(b->name, sizeof b->name, "d.%d.%d.bias", s, l);
            b->ndim = 1;
            b->shape[0] = co;
            b->offset = off;
            off += co;
            w->trainable = b->trainable = 1;
            w->init_gain = b->init_gain = 1.0f;
        }
    d->n_params = off;
    size_t bytes = (size_t)off * sizeof(float);
    d->params = calloc(1, bytes);
    d->grads = calloc(1, bytes);
    d->adam_m = calloc(1, bytes);
    d->adam_v = calloc(1, bytes);
    p->pw = calloc((size_t)d->n_tensors, sizeof *p->pw);
    p->pg = calloc((size_t)d->n_tensors, sizeof *p->pg);
    VQZ_FAIL_IF(!d->params || !d->grads || !d->adam_m || !d->adam_v || !p->pw || !p->pg, VQZ_ERR_NOMEM,
                "disc_create: out of memory for %lld parameters", (long long)off);
    for (int i = 0; i < d->n_tensors; i++) {
        const vqz_param_info *q = &d->info[i];
        vqz_tensor t = {d->params + q->offset, q->ndim, {q->shape[0], q->shape[1], q->shape[2], q->shape[3]}, VQZ_CPU};
        p->pw[i] = t;
        t.data = d->grads + q->offset;
        p->pg[i] = t;
    }

    vqz_rng rng;
    vqz_rng_seed(&rng, seed);
    for (int i = 0; i < d->n_tensors; i += 2) {
        const vqz_param_info *q = &d->info[i];
        int64_t fan_in = q->shape[1] * 9;
        vqz_rng_fill_normal(&rng, d->params + q->offset, q->shape[0] * fan_in, 0.0f, (float)sqrt(2.0 / fan_in));
    }

    for (int s = 0; s < S; s++) {
        VQZ_TRY(plan_scale(&p->fft[s], d->cfg.n_fft[s]));
        if (d->cfg.n_fft[s] > p->n_max)
            p->n_max = d->cfg.n_fft[s];
    }
    return VQZ_OK;
}

vqz_status vqz_disc_create(const vqz_disc_config *c, uint64_t seed, vqz_disc **out)
{
    VQZ_FAIL_IF(!out, VQZ_ERR_INVALID_ARG, "disc_create: out is NULL");
    *out = NULL;
    vqz_disc_config def;
    if (!c) {
        vqz_disc_config_default(&def);
        c = &def;
    }
    VQZ_TRY(config_check(c));
    vqz_disc *d = calloc(1, sizeof *d);
    VQZ_FAIL_IF(!d, VQZ_ERR_NOMEM, "disc_create: out of memory");
    d->cfg = *c;
    vqz_status st = build(d, seed);
    if (st != VQZ_OK) {
        vqz_disc_free(d);
        return st;
    }
    *out = d;
    return VQZ_OK;
}

int vqz_disc_find(const vqz_disc *d, const char *name)
{
    for (int i = 0; d && name && i < d->n_tensors; i++)
        if (strcmp(d->info[i].name, name) == 0)
            return i;
    return -1;
}

int64_t vqz_disc_frames(const vqz_disc *d, int s, int64_t T)
{
    if (!d || s < 0 || s >= d->cfg.scales || T < 1)
        return 0;
    return T / (d->cfg.n_fft[s] / 4) + 1;
}

/* ------------------------------------------------------------------------------------ scratch */

static void geom_of(const vqz_disc *d, int s, int64_t N, int64_t T, disc_geom *g)
{
    const int L = d->cfg.layers;
    const int64_t C = d->cfg.channels;
    memset(g, 0, sizeof *g);
    g->N = N;
    g->T = T;
    g->F = vqz_disc_frames(d, s, T);
    g->K = d->cfg.n_fft[s] / 2 + 1;
    g->h[0] = g->F;
    g->w[0] = g->K;
    for (int l = 1; l <= L; l++) {
        g->h[l] = (g->h[l - 1] - 1) / 2 + 1; /* k 3, stride 2, pad 1 */
        g->w[l] = (g->w[l - 1] - 1) / 2 + 1;
    }
    int64_t off = 0;
    g->max_grad = N * 2 * g->F * g->K;
    for (int l = 0; l <= L; l++) {
        g->act_off[l] = off;
        int64_t n = N * C * g->h[l] * g->w[l];
        off += n;
        if (n > g->max_grad)
            g->max_grad = n;
    }
    g->act_off[L + 1] = off;
    off += N * g->h[L] * g->w[L];
    g->act_total = off;
}

static vqz_status grow(float **buf, int64_t *cap, int64_t need, const char *what)
{
    if (need <= *cap)
        return VQZ_OK;
    free(*buf);
    *buf = malloc((size_t)need * sizeof(float));
    *cap = *buf ? need : 0;
    VQZ_FAIL_IF(!*buf, VQZ_ERR_NOMEM, "disc: out of memory for %lld floats of %s", (long long)need, what);
    return VQZ_OK;
}

static int64_t round16(int64_t n)
{
    return (n + 15) / 16 * 16;
}

/* floats of one thread's FFT scratch: a frame, then a spectrum, each starting on 64 bytes so that they
 * are as aligned as the arrays the plans were made on */
static int64_t fft_slice(const disc_priv *p)
{
    return round16(p->n_max) + round16(2 * (p->n_max / 2 + 1));
}

static vqz_status reserve(vqz_disc *d, int64_t N, int64_t T, int featx)
{
    disc_priv *p = d->priv;
    int64_t spec = 0, act = 0, g = 0;
    for (int s = 0; s < d->cfg.scales; s++) {
        disc_geom ge;
        geom_of(d, s, N, T, &ge);
        if (N * 2 * ge.F * ge.K > spec)
            spec = N * 2 * ge.F * ge.K;
        if (ge.act_total > act)
            act = ge.act_total;
        if (ge.max_grad > g)
            g = ge.max_grad;
    }
    VQZ_TRY(grow(&p->spec, &p->cap_spec, spec, "spectra"));
    VQZ_TRY(grow(&p->act, &p->cap_act, act, "activations"));
    if (featx)
        VQZ_TRY(grow(&p->featx, &p->cap_featx, act, "feature maps"));
    if (g > p->cap_g) {
        free(p->ga);
        free(p->gb);
        p->ga = malloc((size_t)g * sizeof(float));
        p->gb = malloc((size_t)g * sizeof(float));
        p->cap_g = p->ga && p->gb ? g : 0;
        VQZ_FAIL_IF(!p->cap_g, VQZ_ERR_NOMEM, "disc: out of memory for 2 x %lld floats of gradients", (long long)g);
    }
    int64_t threads = omp_get_max_threads();
    if (threads < 1)
        threads = 1;
    int64_t fft = threads * fft_slice(p);
    if (fft > p->cap_fft) {
        fftwf_free(p->fftbuf);
        p->fftbuf = fftwf_malloc((size_t)fft * sizeof(float));
        p->cap_fft = p->fftbuf ? fft : 0;
        VQZ_FAIL_IF(!p->fftbuf, VQZ_ERR_NOMEM, "disc: out of memory for FFT scratch");
    }
    int64_t planes = 2 * N * d->cfg.channels;
    if (planes > p->cap_part) {
        free(p->part);
        p->part = malloc((size_t)planes * sizeof(double));
        p->cap_part = p->part ? planes : 0;
        VQZ_FAIL_IF(!p->part, VQZ_ERR_NOMEM, "disc: out of memory");
    }
    return VQZ_OK;
}

/* ------------------------------------------------------------------------------------ STFT */

/* z [N, 2, F, K] = normalised STFT of the rows of x [N, T] (zero padding n/2 on both sides). */
static void stft_fwd(disc_priv *p, const disc_fft *f, const float *x, int64_t N, int64_t T, float *z)
{
    const int n = f->n, hop = f->hop, K = f->K;
    const int64_t F = T / hop + 1, frames = N * F;
    const int64_t slice = fft_slice(p);
    #pragma omp parallel if (frames * n > 65536)
    {
        float *in = p->fftbuf + omp_get_thread_num() * slice;
        fftwf_complex *sp = (fftwf_complex *)(in + round16(p->n_max));
        #pragma omp for schedule(static)
        for (int64_t fr = 0; fr < frames; fr++) {
            int64_t b = fr / F, fi = fr % F, start = fi * hop - n / 2;
            const float *xr = x + b * T;
            for (int j = 0; j < n; j++) {
                int64_t t = start + j;
                in[j] = (t >= 0 && t < T) ? f->window[j] * xr[t] : 0.0f;
            }
            fftwf_execute_dft_r2c(f->r2c, in, sp);
            float *re = z + ((b * 2) * F + fi) * K, *im = re + F * K;
            for (int k = 0; k < K; k++) {
                re[k] = f->norm * sp[k][0];
                im[k] = f->norm * sp[k][1];
            }
        }
    }
}

/* dx [N, T] += STFT^T(g): per frame sum_k Re(G_k e^{+2 pi i k j/n}), which c2r gives once the interior
 * bins are halved (c2r counts each of them twice through Hermitian symmetry), then windowed overlap-add. */
static void stft_adj(disc_priv *p, const disc_fft *f, const float *g, int64_t N, int64_t T, float *dx)
{
    const int n = f->n, hop = f->hop, K = f->K;
    const int64_t F = T / hop + 1, per_phase = (F + 3) / 4;
    const int64_t slice = fft_slice(p);
    /* frames 4 apart do not overlap (4 hop = n), so one phase scatters without races, in a fixed order */
    for (int phase = 0; phase < 4; phase++) {
        #pragma omp parallel if (N * per_phase * n > 65536)
        {
            float *out = p->fftbuf + omp_get_thread_num() * slice;
            fftwf_complex *sp = (fftwf_complex *)(out + round16(p->n_max));
            #pragma omp for schedule(static)
            for (int64_t task = 0; task < N * per_phase; task++) {
                int64_t b = task / per_phase, fi = 4 * (task % per_phase) + phase;
                if (fi >= F)
                    continue;
                const float *re = g + ((b * 2) * F + fi) * K, *im = re + F * K;
                for (int k = 0; k < K; k++) {
                    float h = (k == 0 || k == K - 1) ? f->norm : 0.5f * f->norm;
                    sp[k][0] = h * re[k];
                    sp[k][1] = h * im[k];
                }
                fftwf_execute_dft_c2r(f->c2r, sp, out);
                int64_t start = fi * hop - n / 2;
                float *dr = dx + b * T;
                for (int j = 0; j < n; j++) {
                    int64_t t = start + j;
                    if (t >= 0 && t < T)
                        dr[t] += f->window[j] * out[j];
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------------------ checks */

static vqz_status check_signal(const vqz_tensor *t, const char *op, const char *name)
{
    VQZ_FAIL_IF(!t || !t->data || t->device != VQZ_CPU, VQZ_ERR_INVALID_ARG, "%s: %s is not a CPU tensor with data",
                op, name);
    VQZ_FAIL_IF(t->ndim != 3 || t->shape[0] < 1 || t->shape[1] != 1 || t->shape[2] < 1, VQZ_ERR_SHAPE,
                "%s: %s [%lld,%lld,%lld] (ndim %d) must be [N, 1, T]", op, name, (long long)t->shape[0],
                (long long)t->shape[1], (long long)t->shape[2], t->ndim);
    return VQZ_OK;
}

static vqz_status check_common(vqz_nn_ctx *ctx, const vqz_disc *d, const char *op)
{
    VQZ_FAIL_IF(!ctx || !d, VQZ_ERR_INVALID_ARG, "%s: ctx or discriminator is NULL", op);
    VQZ_FAIL_IF(ctx->device == VQZ_CUDA, VQZ_ERR_NO_CUDA, "%s: no CUDA implementation in this build", op);
    vqz_nn_ctx_enter(ctx);
    return VQZ_OK;
}

static vqz_status check_pair(const vqz_tensor *x, const vqz_tensor *y, const char *op, const char *nx,
                             const char *ny)
{
    VQZ_TRY(check_signal(x, op, nx));
    VQZ_TRY(check_signal(y, op, ny));
    VQZ_FAIL_IF(!vqz_tensor_same_shape(x, y), VQZ_ERR_SHAPE, "%s: %s [%lld,1,%lld] and %s [%lld,1,%lld] differ", op,
                nx, (long long)x->shape[0], (long long)x->shape[2], ny, (long long)y->shape[0], (long long)y->shape[2]);
    return VQZ_OK;
}

vqz_status vqz_disc_stft(vqz_nn_ctx *ctx, vqz_disc *d, int s, const vqz_tensor *x, vqz_tensor *z)
{
    const char *op = "disc_stft";
    VQZ_TRY(check_common(ctx, d, op));
    VQZ_FAIL_IF(s < 0 || s >= d->cfg.scales, VQZ_ERR_INVALID_ARG, "%s: scale %d of %d", op, s, d->cfg.scales);
    VQZ_TRY(check_signal(x, op, "x"));
    VQZ_FAIL_IF(!z || !z->data || z->device != VQZ_CPU, VQZ_ERR_INVALID_ARG, "%s: z is not a CPU tensor with data", op);
    disc_geom g;
    geom_of(d, s, x->shape[0], x->shape[2], &g);
    VQZ_FAIL_IF(z->ndim != 4 || z->shape[0] != g.N || z->shape[1] != 2 || z->shape[2] != g.F || z->shape[3] != g.K,
                VQZ_ERR_SHAPE, "%s: z [%lld,%lld,%lld,%lld] must be [%lld,2,%lld,%lld] for x [%lld,1,%lld]", op,
                (long long)z->shape[0], (long long)z->shape[1], (long long)z->shape[2], (long long)z->shape[3],
                (long long)g.N, (long long)g.F, (long long)g.K, (long long)g.N, (long long)g.T);
    VQZ_TRY(reserve(d, 1, 1, 0));
    stft_fwd(d->priv, &((disc_priv *)d->priv)->fft[s], x->data, g.N, g.T, z->data);
    return VQZ_OK;
}

vqz_status vqz_disc_stft_adjoint(vqz_nn_ctx *ctx, vqz_disc *d, int s, const vqz_tensor *gz, vqz_tensor *dx)
{
    const char *op = "disc_stft_adjoint";
    VQZ_TRY(check_common(ctx, d, op));
    VQZ_FAIL_IF(s < 0 || s >= d->cfg.scales, VQZ_ERR_INVALID_ARG, "%s: scale %d of %d", op, s, d->cfg.scales);
    VQZ_TRY(check_signal(dx, op, "dx"));
    VQZ_FAIL_IF(!gz || !gz->data || gz->device != VQZ_CPU, VQZ_ERR_INVALID_ARG, "%s: g is not a CPU tensor with data",
                op);
    disc_geom g;
    geom_of(d, s, dx->shape[0], dx->shape[2], &g);
    VQZ_FAIL_IF(gz->ndim != 4 || gz->shape[0] != g.N || gz->shape[1] != 2 || gz->shape[2] != g.F || gz->shape[3] != g.K,
                VQZ_ERR_SHAPE, "%s: g [%lld,%lld,%lld,%lld] must be [%lld,2,%lld,%lld] for dx [%lld,1,%lld]", op,
                (long long)gz->shape[0], (long long)gz->shape[1], (long long)gz->shape[2], (long long)gz->shape[3],
                (long long)g.N, (long long)g.F, (long long)g.K, (long long)g.N, (long long)g.T);
    VQZ_TRY(reserve(d, 1, 1, 0));
    stft_adj(d->priv, &((disc_priv *)d->priv)->fft[s], gz->data, g.N, g.T, dx->data);
    return VQZ_OK;
}

/* ------------------------------------------------------------------------------------ network */

static vqz_tensor act_view(const vqz_disc *d, const disc_geom *g, float *buf, int l)
{
    int64_t c = l == d->cfg.layers + 1 ? 1 : d->cfg.channels;
    int hl = l == d->cfg.layers + 1 ? d->cfg.layers : l;
    return vqz_t4(buf + g->act_off[l], g->N, c, g->h[hl], g->w[hl]);
}

static vqz_conv2d_params conv_params(const vqz_disc *d, int l)
{
    vqz_conv2d_params cp = {(l >= 1 && l <= d->cfg.layers) ? 2 : 1, 1, 1, VQZ_PAD_ZERO};
    return cp;
}

/* Forward of scale s on signal rows x: z into p->spec, a_0..a_L (after the activation) and, when
 * logits is set, D_s into buf laid out as g->act_off. */
static vqz_status forward_scale(vqz_nn_ctx *ctx, vqz_disc *d, int s, const disc_geom *g, const float *x,
                                float *buf, int logits)
{
    disc_priv *p = d->priv;
    const int L = d->cfg.layers;
    stft_fwd(p, &p->fft[s], x, g->N, g->T, p->spec);
    vqz_tensor in = vqz_t4(p->spec, g->N, 2, g->F, g->K);
    for (int l = 0; l <= L + (logits ? 1 : 0); l++) {
        vqz_tensor out = act_view(d, g, buf, l);
        vqz_conv2d_params cp = conv_params(d, l);
        int id = conv_id(d, s, l);
        VQZ_TRY(vqz_conv2d_fwd(ctx, &cp, &in, &p->pw[id], &p->pw[id + 1], &out));
        if (l <= L)
            VQZ_TRY(vqz_leaky_relu_fwd(ctx, d->cfg.slope, &out, &out));
        in = out;
    }
    return VQZ_OK;
}

/* Backward of scale s from dlogits (in p->ga) after forward_scale into p->act. Parameter gradients are
 * accumulated when params is set; with featx, coef[l] sign(a_l - featx_l) joins the gradient of a_l
 * (feature matching); with dsig, the signal gradient is added into it. */
static vqz_status backward_scale(vqz_nn_ctx *ctx, vqz_disc *d, int s, const disc_geom *g, int params,
                                 const float *featx, const float *coef, float *dsig)
{
    disc_priv *p = d->priv;
    const int L = d->cfg.layers;
    float *cur = p->ga, *other = p->gb;
    for (int l = L + 1; l >= 0; l--) {
        vqz_tensor dout = act_view(d, g, cur, l);
        dout.data = cur;
        if (l <= L) {
            vqz_tensor a = act_view(d, g, p->act, l);
            if (featx) {
                const float *fx = featx + g->act_off[l], *fy = a.data;
                float *gd = cur, c = coef[l];
                int64_t n = vqz_tensor_numel(&a);
                #pragma omp parallel for simd schedule(static) if (n > 65536)
                for (int64_t i = 0; i < n; i++) {
                    float df = fy[i] - fx[i];
                    gd[i] += df > 0.0f ? c : (df < 0.0f ? -c : 0.0f);
                }
            }
            /* with slope > 0 the output's sign is the input's, so a_l stands in for the pre-activation */
            VQZ_TRY(vqz_leaky_relu_bwd(ctx, d->cfg.slope, &a, &dout, &dout));
        }
        vqz_tensor in = l == 0 ? vqz_t4(p->spec, g->N, 2, g->F, g->K) : act_view(d, g, p->act, l - 1);
        vqz_tensor din = in;
        din.data = other;
        int want_dx = l > 0 || dsig;
        if (!want_dx && !params)
            break;
        int id = conv_id(d, s, l);
        vqz_conv2d_params cp = conv_params(d, l);
        VQZ_TRY(vqz_conv2d_bwd(ctx, &cp, &in, &p->pw[id], &dout, want_dx ? &din : NULL, params ? &p->pg[id] : NULL,
                               params ? &p->pg[id + 1] : NULL));
        float *t = cur;
        cur = other;
        other = t;
    }
    if (dsig)
        stft_adj(p, &p->fft[s], cur, g->N, g->T, dsig);
    return VQZ_OK;
}

/* mean(relu(1 - sign D)) over the logits, and its gradient times coef into dlogits. */
static double hinge(const float *logit, int64_t n, float sign, float coef, float *dlogit)
{
    double sum = 0.0;
    float gval = -sign * coef / (float)n;
    for (int64_t i = 0; i < n; i++) {
        float m = 1.0f - sign * logit[i];
        if (m > 0.0f) {
            sum += m;
            if (dlogit)
                dlogit[i] = gval;
        } else if (dlogit) {
            dlogit[i] = 0.0f;
        }
    }
    return sum / (double)n;
}

vqz_status vqz_disc_grad(vqz_nn_ctx *ctx, vqz_disc *d, const vqz_tensor *x, const vqz_tensor *y, double *loss)
{
    const char *op = "disc_grad";
    VQZ_TRY(check_common(ctx, d, op));
    VQZ_TRY(check_pair(x, y, op, "x", "y"));
    VQZ_FAIL_IF(!loss, VQZ_ERR_INVALID_ARG, "%s: loss is NULL", op);
    const int64_t N = x->shape[0], T = x->shape[2];
    VQZ_TRY(reserve(d, N, T, 0));
    disc_priv *p = d->priv;
    memset(d->grads, 0, (size_t)d->n_params * sizeof(float));
    double total = 0.0;
    for (int s = 0; s < d->cfg.scales; s++) {
        disc_geom g;
        geom_of(d, s, N, T, &g);
        int64_t nl = g.act_total - g.act_off[d->cfg.layers + 1];
        for (int pass = 0; pass < 2; pass++) { /* real x (target +1), then generated y (target -1) */
            VQZ_TRY(forward_scale(ctx, d, s, &g, pass == 0 ? x->data : y->data, p->act, 1));
            total += hinge(p->act + g.act_off[d->cfg.layers + 1], nl, pass == 0 ? 1.0f : -1.0f, 1.0f, p->ga);
            VQZ_TRY(backward_scale(ctx, d, s, &g, 1, NULL, NULL, NULL));
        }
    }
    *loss = total;
    VQZ_FAIL_IF(!isfinite(total), VQZ_ERR_NONFINITE, "%s: discriminator loss is %g (NaN/Inf in x, y or weights)", op,
                total);
    return VQZ_OK;
}

vqz_status vqz_disc_apply(vqz_nn_ctx *ctx, vqz_disc *d, float lr, float clip, double *grad_norm)
{
    const char *op = "disc_apply";
    VQZ_TRY(check_common(ctx, d, op));
    VQZ_FAIL_IF(!(lr >= 0.0f) || !isfinite(lr) || !(clip >= 0.0f), VQZ_ERR_INVALID_ARG,
                "%s: lr = %g must be finite and >= 0, clip = %g >= 0", op, lr, clip);
    double norm = 0.0;
    VQZ_TRY(vqz_grad_clip(ctx, d->grads, d->n_params, clip, &norm));
    if (grad_norm)
        *grad_norm = norm;
    vqz_adamw_cfg acfg = {0.5f, 0.9f, 1e-8f};
    d->step++;
    return vqz_adamw_step(ctx, &acfg, lr, 0.0f, d->step, d->params, d->grads, d->adam_m, d->adam_v, d->n_params);
}

/* mean|a| of x's maps and mean|a(y) - a(x)| for one layer, reduced per plane in a fixed order. */
static void feat_sums(disc_priv *p, const float *fx, const float *fy, int64_t planes, int64_t hw, double *mx,
                      double *md)
{
    double *part = p->part;
    #pragma omp parallel for schedule(static) if (planes * hw > 65536)
    for (int64_t q = 0; q < planes; q++) {
        double sa = 0.0, sd = 0.0;
        const float *a = fx + q * hw, *b = fy + q * hw;
        for (int64_t i = 0; i < hw; i++) {
            sa += fabsf(a[i]);
            sd += fabsf(b[i] - a[i]);
        }
        part[2 * q] = sa;
        part[2 * q + 1] = sd;
    }
    double sa = 0.0, sd = 0.0;
    for (int64_t q = 0; q < planes; q++) {
        sa += part[2 * q];
        sd += part[2 * q + 1];
    }
    *mx = sa / (double)(planes * hw);
    *md = sd / (double)(planes * hw);
}

vqz_status vqz_disc_generator_terms(vqz_nn_ctx *ctx, vqz_disc *d, const vqz_tensor *x, const vqz_tensor *y,
                                    float w_adv, float w_feat, vqz_tensor *dy, double *adv, double *feat)
{
    const char *op = "disc_generator_terms";
    VQZ_TRY(check_common(ctx, d, op));
    VQZ_TRY(check_pair(x, y, op, "x", "y"));
    if (dy)
        VQZ_TRY(check_pair(y, dy, op, "y", "dy"));
    VQZ_FAIL_IF(!isfinite(w_adv) || !isfinite(w_feat), VQZ_ERR_INVALID_ARG, "%s: weights %g, %g must be finite", op,
                w_adv, w_feat);
    const int64_t N = x->shape[0], T = x->shape[2];
    const int L = d->cfg.layers, S = d->cfg.scales;
    /* x's feature maps are needed only for the feature-matching value or gradient */
    const int need_feat = feat || (dy && w_feat != 0.0f);
    VQZ_TRY(reserve(d, N, T, need_feat));
    disc_priv *p = d->priv;
    double a_total = 0.0, f_total = 0.0;
    for (int s = 0; s < S; s++) {
        disc_geom g;
        geom_of(d, s, N, T, &g);
        if (need_feat)
            VQZ_TRY(forward_scale(ctx, d, s, &g, x->data, p->featx, 0));
        VQZ_TRY(forward_scale(ctx, d, s, &g, y->data, p->act, 1));
        int64_t nl = g.act_total - g.act_off[L + 1];
        a_total += hinge(p->act + g.act_off[L + 1], nl, 1.0f, w_adv, p->ga);
        float coef[MAX_CONVS] = {0};
        for (int l = 0; need_feat && l <= L; l++) {
            int64_t planes = N * d->cfg.channels, hw = g.h[l] * g.w[l];
            double mx, md;
            feat_sums(p, p->featx + g.act_off[l], p->act + g.act_off[l], planes, hw, &mx, &md);
            double den = mx + FEAT_EPS;
            f_total += md / den / (double)(S * (L + 1));
            coef[l] = (float)((double)w_feat / (double)(S * (L + 1)) / ((double)(planes * hw) * den));
        }
        if (dy && (w_adv != 0.0f || w_feat != 0.0f))
            VQZ_TRY(backward_scale(ctx, d, s, &g, 0, need_feat && w_feat != 0.0f ? p->featx : NULL, coef, dy->data));
    }
    if (adv)
        *adv = a_total;
    if (feat)
        *feat = f_total;
    VQZ_FAIL_IF(!isfinite(a_total) || !isfinite(f_total), VQZ_ERR_NONFINITE,
                "%s: adversarial loss %g, feature loss %g (NaN/Inf in x, y or weights)", op, a_total, f_total);
    return VQZ_OK;
}
