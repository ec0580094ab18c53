/* net.c — builds the image and audio graphs of spec/models.md over one flat parameter block, and runs
 * inference and the training step through the graph executor, the RVQ and the losses. */
#include "nn/net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "nn/adamw.h"
#include "nn/msssim.h"
#include "nn/stft_loss.h"
#ifdef VQZ_HAVE_CUDA
#include "kernels/cuda_ops.h"
#endif

/* ------------------------------------------------------------------------------ configuration */

vqz_status vqz_net_config_check(const vqz_net_config *c)
{
    VQZ_FAIL_IF(!c, VQZ_ERR_INVALID_ARG, "model config is NULL");
    VQZ_FAIL_IF(c->kind != VQZ_NET_IMAGE && c->kind != VQZ_NET_AUDIO, VQZ_ERR_INVALID_ARG,
                "model config: kind %d is neither image nor audio", (int)c->kind);
    VQZ_FAIL_IF(c->n_stages < 1 || c->n_stages > VQZ_MAX_STAGES, VQZ_ERR_INVALID_ARG,
                "model config: %d stages (1..%d)", c->n_stages, VQZ_MAX_STAGES);
    VQZ_FAIL_IF(c->in_channels < 1 || c->in_channels > 4, VQZ_ERR_INVALID_ARG,
                "model config: in_channels %d (1..4)", c->in_channels);
    for (int i = 0; i <= c->n_stages; i++)
        VQZ_FAIL_IF(c->channels[i] < 1 || c->channels[i] > 4096, VQZ_ERR_INVALID_ARG,
                    "model config: channels[%d] = %d (1..4096)", i, c->channels[i]);
    for (int i = 0; i < c->n_stages; i++) {
        VQZ_FAIL_IF(c->strides[i] < 1 || c->strides[i] > 16, VQZ_ERR_INVALID_ARG,
                    "model config: strides[%d] = %d (1..16)", i, c->strides[i]);
        VQZ_FAIL_IF(c->kind == VQZ_NET_IMAGE && c->strides[i] != 2, VQZ_ERR_INVALID_ARG,
                    "model config: image strides must be 2 (strides[%d] = %d)", i, c->strides[i]);
    }
    VQZ_FAIL_IF(c->res_blocks < 0 || c->res_blocks > 16, VQZ_ERR_INVALID_ARG,
                "model config: res_blocks %d (0..16)", c->res_blocks);
    VQZ_FAIL_IF(c->latent_dim < 1 || c->latent_dim > 4096, VQZ_ERR_INVALID_ARG,
                "model config: latent_dim %d (1..4096)", c->latent_dim);
    VQZ_FAIL_IF(c->levels < 1 || c->levels > VQZ_MAX_LEVELS, VQZ_ERR_INVALID_ARG,
                "model config: levels %d (1..%d)", c->levels, VQZ_MAX_LEVELS);
    VQZ_FAIL_IF(c->codebook_size < 2 || c->codebook_size > 65536, VQZ_ERR_INVALID_ARG,
                "model config: codebook_size %d (2..65536)", c->codebook_size);
    VQZ_FAIL_IF(c->activation < VQZ_ACT_SILU || c->activation > VQZ_ACT_SNAKE, VQZ_ERR_INVALID_ARG,
                "model config: unknown activation %d", (int)c->activation);
    VQZ_FAIL_IF(c->kind == VQZ_NET_IMAGE && c->activation == VQZ_ACT_SNAKE, VQZ_ERR_INVALID_ARG,
                "model config: image models use silu or elu (spec/models.md §1), not snake");
    VQZ_FAIL_IF(!(c->res_scale > 0 && c->res_scale <= 10), VQZ_ERR_INVALID_ARG,
                "model config: res_scale %g (0..10]", (double)c->res_scale);
    if (c->kind == VQZ_NET_AUDIO) {
        VQZ_FAIL_IF(c->sample_rate < 1000 || c->sample_rate > 384000, VQZ_ERR_INVALID_ARG,
                    "model config: sample_rate %d (1000..384000)", c->sample_rate);
        for (int i = 0; i <= c->n_stages; i++)
            VQZ_FAIL_IF(c->res_blocks > 0 && c->channels[i] < 2, VQZ_ERR_INVALID_ARG,
                        "model config: audio residual units need channels[%d] >= 2", i);
    }
    return VQZ_OK;
}

vqz_status vqz_net_config_preset(const char *name, vqz_net_config *c)
{
    memset(c, 0, sizeof *c);
    c->res_scale = 1.0f;
    if (strncmp(name, "image-", 6) == 0) {
        static const int small[] = {32, 64, 96, 128}, base[] = {64, 128, 192, 256};
        const int *ch = strcmp(name, "image-small") == 0 ? small : base;
        VQZ_FAIL_IF(strcmp(name, "image-small") && strcmp(name, "image-base"), VQZ_ERR_NOT_FOUND,
                    "no model preset named '%s'", name);
        c->kind = VQZ_NET_IMAGE;
        c->in_channels = 3;
        c->n_stages = 3;
        for (int i = 0; i < 4; i++)
            c->channels[i] = ch[i];
        for (int i = 0; i < 3; i++)
            c->strides[i] = 2;
        c->res_blocks = 2;
        c->latent_dim = 64;
        c->levels = 8;
        c->codebook_size = 1024;
        c->res_scale = 0.5f;
        c->activation = VQZ_ACT_SILU;
    } else if (strncmp(name, "audio-", 6) == 0) {
        VQZ_FAIL_IF(strcmp(name, "audio-small") && strcmp(name, "audio-base"), VQZ_ERR_NOT_FOUND,
                    "no model preset named '%s'", name);
        int base = strcmp(name, "audio-small") == 0 ? 16 : 32;
        static const int strides[] = {2, 4, 5, 8};
        c->kind = VQZ_NET_AUDIO;
        c->in_channels = 1;
        c->n_stages = 4;
        for (int i = 0; i <= 4; i++)
            c->channels[i] = base << i;
        for (int i = 0; i < 4; i++)
            c->strides[i] = strides[i];
        c->res_blocks = 3;
        c->latent_dim = 128;
        c->levels = 8;
        c->codebook_size = 1024;
        c->activation = VQZ_ACT_ELU;
        c->weight_norm = 1;
        c->sample_rate = 24000;
    } else {
        return vqz_fail(VQZ_ERR_NOT_FOUND, "no model preset named '%s'", name);
    }
    return vqz_net_config_check(c);
}

/* ------------------------------------------------------------------------------ parameter table */

/* Registers a tensor; offsets are assigned later (weights with decay first, then the other trainable
 * tensors, then codebooks). Returns its id or -1. */
static int add_param(vqz_net *m, const char *name, int ndim, const int64_t *shape, int decay,
                     int trainable, float gain)
{
    if (m->n_tensors == m->cap_tensors) {
        int cap = m->cap_tensors ? 2 * m->cap_tensors : 64;
        vqz_param_info *p = realloc(m->info, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        m->info = p;
        m->cap_tensors = cap;
    }
    vqz_param_info *p = &m->info[m->n_tensors];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    for (int i = 0; i < 4; i++)
        p->shape[i] = i < ndim ? shape[i] : 1;
    p->decay = decay;
    p->trainable = trainable;
    p->init_gain = gain;
    return m->n_tensors++;
}

typedef struct {
    int w, b, v, g;
} conv_ids;

/* Registers a convolution's tensors: weight (or weight_v/weight_g) and bias. For a transposed conv
 * the stored weight is [in, out, k] and weight norm runs over its first dimension. */
static int conv_params(vqz_net *m, const char *prefix, int64_t cin, int64_t cout, int k, int dims,
                       int transposed, int wn, float gain, conv_ids *ids)
{
    char name[96];
    int64_t shape[4] = {transposed ? cin : cout, transposed ? cout : cin, k, k};
    int ndim = dims == 2 ? 4 : 3;
    ids->w = ids->v = ids->g = -1;
    if (wn) {
        snprintf(name, sizeof name, "%s.weight_v", prefix);
        ids->v = add_param(m, name, ndim, shape, 1, 1, gain);
        int64_t gshape[3] = {shape[0], 1, 1};
        snprintf(name, sizeof name, "%s.weight_g", prefix);
        ids->g = add_param(m, name, 3, gshape, 0, 1, 0);
        if (ids->v < 0 || ids->g < 0)
            return -1;
    } else {
        snprintf(name, sizeof name, "%s.weight", prefix);
        if ((ids->w = add_param(m, name, ndim, shape, 1, 1, gain)) < 0)
            return -1;
    }
    snprintf(name, sizeof name, "%s.bias", prefix);
    int64_t bshape[1] = {cout};
    ids->b = add_param(m, name, 1, bshape, 0, 1, 0);
    return ids->b < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------------------ graph builders */

/* Builder state: the graph under construction and a sticky failure flag. */
typedef struct {
    vqz_net *m;
    vqz_graph *g;
    int fail;
} builder;

static int b_conv(builder *b, const char *prefix, int x, int64_t cout, int k, int stride, int pl, int pr,
                  int dil, float gain)
{
    if (b->fail || x < 0) {
        b->fail = 1;
        return -1;
    }
    conv_ids id;
    int64_t cin = b->g->slots[x].channels;
    int wn = b->m->cfg.kind == VQZ_NET_AUDIO && b->m->cfg.weight_norm;
    if (conv_params(b->m, prefix, cin, cout, k, b->g->dims, 0, wn, gain, &id) < 0) {
        b->fail = 1;
        return -1;
    }
    int y = vqz_graph_conv(b->g, x, cout, k, stride, pl, pr, dil, id.w, id.b, id.v, id.g);
    if (y < 0)
        b->fail = 1;
    return y;
}

static int b_act(builder *b, const char *alpha_name, int x)
{
    if (b->fail || x < 0) {
        b->fail = 1;
        return -1;
    }
    int alpha = -1;
    if (b->m->cfg.activation == VQZ_ACT_SNAKE) {
        int64_t shape[1] = {b->g->slots[x].channels};
        if ((alpha = add_param(b->m, alpha_name, 1, shape, 0, 1, 0)) < 0) {
            b->fail = 1;
            return -1;
        }
    }
    int y = vqz_graph_act(b->g, x, b->m->cfg.activation, alpha);
    if (y < 0)
        b->fail = 1;
    return y;
}

/* ResBlock2d (spec §2): y = x + res_scale * conv2(act(conv1(act(x)))) */
static int resblock2d(builder *b, const char *prefix, int x)
{
    char n1[96], n2[96], a1[96], a2[96];
    int64_t c = b->g->slots[x < 0 ? 0 : x].channels;
    snprintf(n1, sizeof n1, "%s.conv1", prefix);
    snprintf(n2, sizeof n2, "%s.conv2", prefix);
    snprintf(a1, sizeof a1, "%s.act1.alpha", prefix);
    snprintf(a2, sizeof a2, "%s.act2.alpha", prefix);
    int h = b_act(b, a1, x);
    h = b_conv(b, n1, h, c, 3, 1, 1, 1, 1, 1.0f);
    h = b_act(b, a2, h);
    h = b_conv(b, n2, h, c, 3, 1, 1, 1, 1, 0.1f);
    if (b->fail)
        return -1;
    int y = vqz_graph_add(b->g, x, h, b->m->cfg.res_scale);
    if (y < 0)
        b->fail = 1;
    return y;
}

/* ResUnit1d (spec §2): y = x + conv2_k1(act2(conv1_k3_dil(act1(x)))) with a C/2 bottleneck */
static int resunit1d(builder *b, const char *prefix, int x, int dil)
{
    char n1[96], n2[96], a1[96], a2[96];
    int64_t c = b->g->slots[x < 0 ? 0 : x].channels;
    snprintf(n1, sizeof n1, "%s.conv1", prefix);
    snprintf(n2, sizeof n2, "%s.conv2", prefix);
    snprintf(a1, sizeof a1, "%s.act1.alpha", prefix);
    snprintf(a2, sizeof a2, "%s.act2.alpha", prefix);
    int h = b_act(b, a1, x);
    h = b_conv(b, n1, h, c / 2, 3, 1, dil, dil, dil, 1.0f);
    h = b_act(b, a2, h);
    h = b_conv(b, n2, h, c, 1, 1, 0, 0, 1, 0.1f);
    if (b->fail)
        return -1;
    int y = vqz_graph_add(b->g, x, h, 1.0f);
    if (y < 0)
        b->fail = 1;
    return y;
}

static vqz_status build_image(vqz_net *m)
{
    const vqz_net_config *c = &m->cfg;
    char name[96], sub[96];
    int S = c->n_stages;
    builder b = {m, &m->enc, 0};
    vqz_graph_init(&m->enc, 2);
    vqz_graph_init(&m->dec, 2);

    int x = vqz_graph_input(&m->enc, c->in_channels);
    x = b_conv(&b, "enc.stem", x, c->channels[0], 3, 1, 1, 1, 1, 1.0f);
    for (int i = 0; i < S; i++) {
        for (int j = 0; j < c->res_blocks; j++) {
            snprintf(name, sizeof name, "enc.stages.%d.res.%d", i, j);
            x = resblock2d(&b, name, x);
        }
        snprintf(name, sizeof name, "enc.stages.%d.down", i);
        x = b_conv(&b, name, x, c->channels[i + 1], 3, 2, 1, 1, 1, 1.0f);
    }
    for (int j = 0; j < c->res_blocks; j++) {
        snprintf(name, sizeof name, "enc.mid.%d", j);
        x = resblock2d(&b, name, x);
    }
    x = b_act(&b, "enc.proj_act.alpha", x);
    x = b_conv(&b, "enc.proj", x, c->latent_dim, 1, 1, 0, 0, 1, 1.0f);

    b.g = &m->dec;
    x = vqz_graph_input(&m->dec, c->latent_dim);
    x = b_conv(&b, "dec.proj", x, c->channels[S], 3, 1, 1, 1, 1, 1.0f);
    for (int j = 0; j < c->res_blocks; j++) {
        snprintf(name, sizeof name, "dec.mid.%d", j);
        x = resblock2d(&b, name, x);
    }
    for (int i = S - 1; i >= 0; i--) {
        if (!b.fail && x >= 0 && (x = vqz_graph_upsample2x(&m->dec, x)) < 0)
            b.fail = 1;
        snprintf(name, sizeof name, "dec.stages.%d.up", i);
        x = b_conv(&b, name, x, c->channels[i], 3, 1, 1, 1, 1, 1.0f);
        for (int j = 0; j < c->res_blocks; j++) {
            snprintf(sub, sizeof sub, "dec.stages.%d.res.%d", i, j);
            x = resblock2d(&b, sub, x);
        }
    }
    x = b_act(&b, "dec.out_act.alpha", x);
    x = b_conv(&b, "dec.out", x, c->in_channels, 3, 1, 1, 1, 1, 1.0f);
    return b.fail ? vqz_fail(VQZ_ERR_NOMEM, "model: out of memory building the image graphs") : VQZ_OK;
}

static vqz_status build_audio(vqz_net *m)
{
    const vqz_net_config *c = &m->cfg;
    char name[96], sub[96];
    int S = c->n_stages;
    builder b = {m, &m->enc, 0};
    vqz_graph_init(&m->enc, 1);
    vqz_graph_init(&m->dec, 1);

    int x = vqz_graph_input(&m->enc, c->in_channels);
    x = b_conv(&b, "enc.stem", x, c->channels[0], 7, 1, 3, 3, 1, 1.0f);
    for (int i = 0; i < S; i++) {
        int s = c->strides[i], dil = 1;
        for (int j = 0; j < c->res_blocks; j++, dil *= 3) {
            snprintf(name, sizeof name, "enc.stages.%d.res.%d", i, j);
            x = resunit1d(&b, name, x, dil);
        }
        snprintf(name, sizeof name, "enc.stages.%d.down_act.alpha", i);
        x = b_act(&b, name, x);
        snprintf(name, sizeof name, "enc.stages.%d.down", i);
        x = b_conv(&b, name, x, c->channels[i + 1], 2 * s, s, (s + 1) / 2, s / 2, 1, 1.0f);
    }
    x = b_act(&b, "enc.proj_act.alpha", x);
    x = b_conv(&b, "enc.proj", x, c->latent_dim, 7, 1, 3, 3, 1, 1.0f);

    b.g = &m->dec;
    x = vqz_graph_input(&m->dec, c->latent_dim);
    x = b_conv(&b, "dec.proj", x, c->channels[S], 7, 1, 3, 3, 1, 1.0f);
    for (int i = S - 1; i >= 0; i--) {
        int s = c->strides[i];
        snprintf(name, sizeof name, "dec.stages.%d.up_act.alpha", i);
        x = b_act(&b, name, x);
        snprintf(name, sizeof name, "dec.stages.%d.up", i);
        if (!b.fail && x >= 0) {
            conv_ids id;
            if (conv_params(m, name, c->channels[i + 1], c->channels[i], 2 * s, 1, 1, c->weight_norm, 1.0f, &id) < 0 ||
                (x = vqz_graph_convtr1d(&m->dec, x, c->channels[i], 2 * s, s, (s + 1) / 2, s / 2, id.w, id.b,
                                        id.v, id.g)) < 0)
                b.fail = 1;
        }
        int dil = 1;
        for (int j = 0; j < c->res_blocks; j++, dil *= 3) {
            snprintf(sub, sizeof sub, "dec.stages.%d.res.%d", i, j);
            x = resunit1d(&b, sub, x, dil);
        }
    }
    x = b_act(&b, "dec.out_act.alpha", x);
    x = b_conv(&b, "dec.out", x, c->in_channels, 7, 1, 3, 3, 1, 1.0f);
    return b.fail ? vqz_fail(VQZ_ERR_NOMEM, "model: out of memory building the audio graphs") : VQZ_OK;
}

/* Assigns offsets (decayed, other trainable, codebooks), allocates the block and the views. */
static vqz_status layout_params(vqz_net *m)
{
    int64_t off = 0;
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < m->n_tensors; i++) {
            vqz_param_info *p = &m->info[i];
            int cls = p->trainable ? (p->decay ? 0 : 1) : 2;
            if (cls != pass)
                continue;
            p->offset = off;
            int64_t n = 1;
            for (int d = 0; d < p->ndim; d++)
                n *= p->shape[d];
            off += n;
        }
        if (pass == 0)
            m->n_decay = off;
        if (pass == 1)
            m->n_train = off;
    }
    m->n_total = off;
    m->params = calloc((size_t)m->n_total, sizeof(float));
    m->views = calloc((size_t)m->n_tensors, sizeof *m->views);
    m->gviews = calloc((size_t)m->n_tensors, sizeof *m->gviews);
    if (!m->params || !m->views || !m->gviews)
        return vqz_fail(VQZ_ERR_NOMEM, "model: cannot allocate %lld parameters", (long long)m->n_total);
    for (int i = 0; i < m->n_tensors; i++) {
        const vqz_param_info *p = &m->info[i];
        vqz_tensor t = {m->params + p->offset, p->ndim, {p->shape[0], p->shape[1], p->shape[2], p->shape[3]}, VQZ_CPU};
        m->views[i] = t;
        t.data = NULL;
        m->gviews[i] = t;
    }
    m->pv.w = m->views;
    m->pv.g = m->gviews;
    return VQZ_OK;
}

vqz_status vqz_net_create(const vqz_net_config *cfg, vqz_net **out)
{
    VQZ_FAIL_IF(!out, VQZ_ERR_INVALID_ARG, "vqz_net_create: out is NULL");
    *out = NULL;
    VQZ_TRY(vqz_net_config_check(cfg));
    vqz_net *m = calloc(1, sizeof *m);
    if (!m)
        return vqz_fail(VQZ_ERR_NOMEM, "model: out of memory");
    m->cfg = *cfg;
    vqz_status s = cfg->kind == VQZ_NET_IMAGE ? build_image(m) : build_audio(m);
    if (s == VQZ_OK) {
        int64_t shape[3] = {cfg->levels, cfg->codebook_size, cfg->latent_dim};
        m->cb = add_param(m, "rvq.codebooks", 3, shape, 0, 0, 0);
        s = m->cb < 0 ? vqz_fail(VQZ_ERR_NOMEM, "model: out of memory") : layout_params(m);
    }
    if (s != VQZ_OK) {
        vqz_net_free(m);
        return s;
    }
    m->rvq.levels = cfg->levels;
    m->rvq.K = cfg->codebook_size;
    m->rvq.D = cfg->latent_dim;
    m->rvq.codebooks = m->views[m->cb].data;
    m->rvq.decay = 0.99f;
    m->rvq.eps = 1e-5f;
    m->rvq.dead_threshold = 0.0f;
    *out = m;
    return VQZ_OK;
}

vqz_status vqz_net_create_sharing(const vqz_net *src, vqz_net **out)
{
    VQZ_TRY(vqz_net_create(&src->cfg, out));
    vqz_net *m = *out;
    free(m->params);
    m->params = src->params;
    m->shares_params = 1;
    for (int i = 0; i < m->n_tensors; i++)
        m->views[i].data = m->params + m->info[i].offset;
    m->rvq.codebooks = m->views[m->cb].data;
    return VQZ_OK;
}

void vqz_net_free(vqz_net *m)
{
    if (!m)
        return;
    vqz_graph_free(&m->enc);
    vqz_graph_free(&m->dec);
    if (m->stft)
        vqz_stft_loss_free((vqz_stft_loss *)m->stft);
    free(m->info);
    if (!m->shares_params)
        free(m->params);
    free(m->grads);
    free(m->adam_m);
    free(m->adam_v);
    free(m->ema_count);
    free(m->ema_sum);
    free(m->views);
    free(m->gviews);
    free(m->buf_dy);
    free(m->buf_tmp);
    free(m->buf_dz);
    free(m->buf_idx);
#ifdef VQZ_HAVE_CUDA
    vqz_cuda_free(NULL, m->dparams);
    vqz_cuda_free(NULL, m->d_idx);
#endif
    free(m->dviews);
    free(m);
}

int vqz_net_find(const vqz_net *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->info[i].name, name) == 0)
            return i;
    return -1;
}

static int name_ends(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

vqz_status vqz_net_check_weights(const vqz_net *m)
{
    for (int i = 0; i < m->n_tensors; i++)
        VQZ_TRY(vqz_tensor_check_finite(&m->views[i], m->info[i].name));
    return VQZ_OK;
}

vqz_status vqz_net_init(vqz_net *m, uint64_t seed)
{
    vqz_rng rng;
    vqz_rng_seed(&rng, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        vqz_param_info *p = &m->info[i];
        float *d = m->params + p->offset;
        int64_t n = vqz_tensor_numel(&m->views[i]);
        if (i == m->cb) {
            vqz_rng_fill_normal(&rng, d, n, 0.0f, 0.1f);
        } else if (name_ends(p->name, ".weight") || name_ends(p->name, ".weight_v")) {
            /* fan_in: the layer's input channels times kernel elements (a transposed conv stores
             * [in, out, k]) */
            int transposed = strstr(p->name, ".up.") != NULL && m->cfg.kind == VQZ_NET_AUDIO;
            int64_t fan_in = (transposed ? p->shape[0] : p->shape[1]) * p->shape[2] * (p->ndim == 4 ? p->shape[3] : 1);
            float std = p->init_gain * sqrtf(2.0f / (float)fan_in);
            vqz_rng_fill_normal(&rng, d, n, 0.0f, std);
        } else if (name_ends(p->name, ".alpha")) {
            for (int64_t k = 0; k < n; k++)
                d[k] = 1.0f;
        } else {
            memset(d, 0, (size_t)n * sizeof(float));
        }
    }
    /* weight_g = ||weight_v|| per first-dimension slice, so the initial weight equals weight_v */
    for (int i = 0; i < m->n_tensors; i++) {
        vqz_param_info *p = &m->info[i];
        if (!name_ends(p->name, ".weight_g"))
            continue;
        char vname[96];
        snprintf(vname, sizeof vname, "%.*s.weight_v", (int)(strlen(p->name) - 9), p->name);
        int v = vqz_net_find(m, vname);
        if (v < 0)
            return vqz_fail(VQZ_ERR_INTERNAL, "model: %s has no matching %s", p->name, vname);
        int64_t rows = m->views[v].shape[0], per = vqz_tensor_numel(&m->views[v]) / rows;
        for (int64_t r = 0; r < rows; r++) {
            double s = 0;
            for (int64_t k = 0; k < per; k++) {
                double x = m->views[v].data[r * per + k];
                s += x * x;
            }
            m->params[p->offset + r] = (float)sqrt(s);
        }
    }
    m->step = 0;
    return VQZ_OK;
}

vqz_status vqz_net_enable_training(vqz_net *m)
{
    VQZ_FAIL_IF(m->shares_params, VQZ_ERR_INVALID_ARG, "model: a net sharing another's weights cannot train");
    if (m->grads)
        return VQZ_OK;
    int64_t lk = (int64_t)m->cfg.levels * m->cfg.codebook_size;
    m->grads = calloc((size_t)m->n_train, sizeof(float));
    m->adam_m = calloc((size_t)m->n_train, sizeof(float));
    m->adam_v = calloc((size_t)m->n_train, sizeof(float));
    m->ema_count = malloc((size_t)lk * sizeof(float));
    m->ema_sum = malloc((size_t)lk * m->cfg.latent_dim * sizeof(float));
    if (!m->grads || !m->adam_m || !m->adam_v || !m->ema_count || !m->ema_sum)
        return vqz_fail(VQZ_ERR_NOMEM, "model: cannot allocate training state for %lld parameters",
                        (long long)m->n_train);
    for (int64_t i = 0; i < lk; i++)
        m->ema_count[i] = 1.0f;
    memcpy(m->ema_sum, m->views[m->cb].data, (size_t)lk * m->cfg.latent_dim * sizeof(float));
    for (int i = 0; i < m->n_tensors; i++)
        if (m->info[i].trainable)
            m->gviews[i].data = m->grads + m->info[i].offset;
    m->rvq.ema_count = m->ema_count;
    m->rvq.ema_sum = m->ema_sum;
    m->rvq.dead_threshold = 1.0f; /* about one assignment per batch in EMA terms */
    return VQZ_OK;
}

/* ------------------------------------------------------------------------------ sizes */

int vqz_net_stride(const vqz_net *m)
{
    int f = 1;
    for (int i = 0; i < m->cfg.n_stages; i++)
        f *= m->cfg.strides[i];
    return f;
}

vqz_status vqz_net_latent_size(const vqz_net *m, int64_t h, int64_t w, int64_t *lh, int64_t *lw)
{
    int f = vqz_net_stride(m);
    int image = m->cfg.kind == VQZ_NET_IMAGE;
    VQZ_FAIL_IF(h <= 0 || h % f != 0 || (image && (w <= 0 || w % f != 0)), VQZ_ERR_SHAPE,
                "model: input size %lldx%lld is not a positive multiple of the model stride %d",
                (long long)h, (long long)w, f);
    *lh = h / f;
    *lw = image ? w / f : 1;
    return VQZ_OK;
}

void vqz_net_halo(const vqz_net *m, double *enc_radius, double *dec_radius)
{
    if (enc_radius)
        *enc_radius = vqz_graph_radius(&m->enc);
    if (dec_radius)
        *dec_radius = vqz_graph_radius(&m->dec);
}

void vqz_net_macs(const vqz_net *m, int64_t h, int64_t w, double *enc_macs, double *dec_macs)
{
    int f = vqz_net_stride(m);
    int image = m->cfg.kind == VQZ_NET_IMAGE;
    if (enc_macs)
        *enc_macs = vqz_graph_macs(&m->enc, 1, h, image ? w : 1);
    if (dec_macs)
        *dec_macs = vqz_graph_macs(&m->dec, 1, h / f, image ? w / f : 1);
}

/* ------------------------------------------------------------------------------ inference */

/* Checks the input tensor against the model and returns its spatial size. */
static vqz_status check_input(const vqz_net *m, const vqz_tensor *x, int64_t *h, int64_t *w)
{
    int image = m->cfg.kind == VQZ_NET_IMAGE;
    VQZ_FAIL_IF(x->ndim != (image ? 4 : 3) || x->shape[1] != m->cfg.in_channels, VQZ_ERR_SHAPE,
                "model: input must be [N, %d, %s], got a %d-D tensor with %lld channels", m->cfg.in_channels,
                image ? "H, W" : "T", x->ndim, (long long)x->shape[1]);
    *h = x->shape[2];
    *w = image ? x->shape[3] : 1;
    int64_t lh, lw;
    return vqz_net_latent_size(m, *h, *w, &lh, &lw);
}

/* The encoder output slot as an RVQ input [N, D, positions]. */
static vqz_tensor latent_rows(const vqz_graph *g, int slot)
{
    vqz_tensor t = vqz_graph_slot(g, slot);
    int64_t s = t.shape[2] * (t.ndim == 4 ? t.shape[3] : 1);
    vqz_tensor r = vqz_t3(t.data, t.shape[0], t.shape[1], s);
    r.device = t.device;
    return r;
}

/* ------------------------------------------------------------------------- inference on CUDA */
#ifdef VQZ_HAVE_CUDA
/* Puts the weights on the context's GPU the first time the net meets a CUDA context; later contexts
 * (the device memory is the process's) only lend their stream. */
static vqz_status place_on_cuda(vqz_nn_ctx *ctx, vqz_net *m)
{
    if (m->device != VQZ_CUDA) {
        VQZ_FAIL_IF(m->grads, VQZ_ERR_UNSUPPORTED, "model: training runs on the CPU only");
        VQZ_TRY(vqz_net_check_weights(m));
        vqz_tensor *dv = malloc(sizeof *dv * (size_t)m->n_tensors);
        VQZ_FAIL_IF(!dv, VQZ_ERR_NOMEM, "model: out of memory");
        float *dp = NULL;
        size_t bytes = (size_t)m->n_total * sizeof(float);
        vqz_status s = vqz_cuda_malloc(ctx->cuda, bytes, (void **)&dp);
        if (s == VQZ_OK)
            s = vqz_cuda_h2d(ctx->cuda, dp, m->params, bytes);
        if (s != VQZ_OK) {
            vqz_cuda_free(ctx->cuda, dp);
            free(dv);
            return s;
        }
        for (int i = 0; i < m->n_tensors; i++) {
            dv[i] = m->views[i];
            dv[i].data = dp + m->info[i].offset;
            dv[i].device = VQZ_CUDA;
        }
        m->dparams = dp;
        m->dviews = dv;
        m->pv.w = dv;
        m->rvq.codebooks = dv[m->cb].data;
        m->device = VQZ_CUDA;
    }
    VQZ_TRY(vqz_graph_set_device(&m->enc, VQZ_CUDA, ctx->cuda));
    return vqz_graph_set_device(&m->dec, VQZ_CUDA, ctx->cuda);
}

static vqz_status grow_dev_idx(vqz_nn_ctx *ctx, vqz_net *m, int64_t count)
{
    if (count <= m->d_idx_cap)
        return VQZ_OK;
    vqz_cuda_free(ctx->cuda, m->d_idx);
    m->d_idx = NULL;
    m->d_idx_cap = 0;
    VQZ_TRY(vqz_cuda_malloc(ctx->cuda, (size_t)count * sizeof(int32_t), (void **)&m->d_idx));
    m->d_idx_cap = count;
    return VQZ_OK;
}

/* x and idx are host memory, as on the CPU; only the network and the quantizer run on the GPU. */
static vqz_status encode_cuda(vqz_nn_ctx *ctx, vqz_net *m, const vqz_tensor *x, int n_levels, int32_t *idx)
{
    int64_t h = 0, w = 0;
    VQZ_FAIL_IF(x->device != VQZ_CPU, VQZ_ERR_INVALID_ARG, "model: the input must be host memory");
    VQZ_TRY(check_input(m, x, &h, &w));
    VQZ_TRY(vqz_tensor_check_finite(x, "model input"));
    VQZ_TRY(place_on_cuda(ctx, m));
    VQZ_TRY(vqz_graph_plan(&m->enc, x->shape[0], h, w, 0));
    vqz_tensor in = vqz_graph_slot(&m->enc, m->enc.input_slot);
    VQZ_TRY(vqz_cuda_h2d(ctx->cuda, in.data, x->data, (size_t)vqz_tensor_numel(x) * sizeof(float)));
    VQZ_TRY(vqz_graph_forward(ctx, &m->enc, &m->pv, &in));
    vqz_tensor z = latent_rows(&m->enc, m->enc.output_slot);
    int64_t count = (int64_t)n_levels * z.shape[0] * z.shape[2];
    VQZ_TRY(grow_dev_idx(ctx, m, count));
    VQZ_TRY(vqz_rvq_encode(ctx, &m->rvq, &z, n_levels, m->d_idx, NULL));
    return vqz_cuda_d2h(ctx->cuda, idx, m->d_idx, (size_t)count * sizeof(int32_t));
}

static vqz_status decode_cuda(vqz_nn_ctx *ctx, vqz_net *m, const int32_t *idx, int n_levels, vqz_tensor *y)
{
    int64_t h = 0, w = 0, lh = 0, lw = 0;
    VQZ_FAIL_IF(y->device != VQZ_CPU, VQZ_ERR_INVALID_ARG, "model: the output must be host memory");
    VQZ_TRY(check_input(m, y, &h, &w));
    VQZ_TRY(vqz_net_latent_size(m, h, w, &lh, &lw));
    VQZ_TRY(place_on_cuda(ctx, m));
    VQZ_TRY(vqz_graph_plan(&m->dec, y->shape[0], lh, lw, 0));
    int64_t count = (int64_t)n_levels * y->shape[0] * lh * lw;
    VQZ_TRY(grow_dev_idx(ctx, m, count));
    VQZ_TRY(vqz_cuda_h2d(ctx->cuda, m->d_idx, idx, (size_t)count * sizeof(int32_t)));
    vqz_tensor zq = latent_rows(&m->dec, m->dec.input_slot);
    VQZ_TRY(vqz_rvq_decode(ctx, &m->rvq, m->d_idx, n_levels, &zq));
    vqz_tensor in = vqz_graph_slot(&m->dec, m->dec.input_slot);
    VQZ_TRY(vqz_graph_forward(ctx, &m->dec, &m->pv, &in));
    vqz_tensor out = vqz_graph_slot(&m->dec, m->dec.output_slot);
    return vqz_cuda_d2h(ctx->cuda, y->data, out.data, (size_t)vqz_tensor_numel(&out) * sizeof(float));
}
#endif

/* A net placed on the GPU serves CUDA contexts only; training and the latent probes stay on the CPU. */
static vqz_status check_placement(const vqz_nn_ctx *ctx, const vqz_net *m, int cuda_ok)
{
    VQZ_FAIL_IF(!ctx, VQZ_ERR_INVALID_ARG, "model: ctx is NULL");
    VQZ_FAIL_IF(ctx->device == VQZ_CUDA && !cuda_ok, VQZ_ERR_UNSUPPORTED,
                "model: this step runs on the CPU only (use a CPU context)");
    VQZ_FAIL_IF(ctx->device == VQZ_CPU && m->device == VQZ_CUDA, VQZ_ERR_INVALID_ARG,
                "model: its weights were moved to the GPU; use a CUDA context or another copy of the model");
    return VQZ_OK;
}

static vqz_status run_encoder(vqz_nn_ctx *ctx, vqz_net *m, const vqz_tensor *x, int train)
{
    VQZ_TRY(check_placement(ctx, m, 0));
    int64_t h = 0, w = 0;
    VQZ_TRY(check_input(m, x, &h, &w));
    VQZ_TRY(vqz_tensor_check_finite(x, "model input"));
    VQZ_TRY(vqz_graph_plan(&m->enc, x->shape[0], h, w, train));
    return vqz_graph_forward(ctx, &m->enc, &m->pv, x);
}

vqz_status vqz_net_encode_latent(vqz_nn_ctx *ctx, vqz_net *m, const vqz_tensor *x, vqz_tensor *z)
{
    VQZ_TRY(run_encoder(ctx, m, x, 0));
    vqz_tensor out = vqz_graph_slot(&m->enc, m->enc.output_slot);
    VQZ_FAIL_IF(!vqz_tensor_same_shape(z, &out), VQZ_ERR_SHAPE, "model: latent output tensor has the wrong shape");
    memcpy(z->data, out.data, (size_t)vqz_tensor_numel(&out) * sizeof(float));
    return VQZ_OK;
}

vqz_status vqz_net_encode(vqz_nn_ctx *ctx, vqz_net *m, const vqz_tensor *x, int n_levels, int32_t *idx)
{
    VQZ_FAIL_IF(n_levels < 1 || n_levels > m->cfg.levels, VQZ_ERR_INVALID_ARG, "model: %d levels asked, model has %d",
                n_levels, m->cfg.levels);
    VQZ_TRY(check_placement(ctx, m, 1));
    if (ctx->device == VQZ_CUDA) {
        VQZ_TRY(vqz_nn_cuda_ready(ctx, "model"));
#ifdef VQZ_HAVE_CUDA
        return encode_cuda(ctx, m, x, n_levels, idx);
#endif
    }
    VQZ_TRY(run_encoder(ctx, m, x, 0));
    vqz_tensor z = latent_rows(&m->enc, m->enc.output_slot);
    return vqz_rvq_encode(ctx, &m->rvq, &z, n_levels, idx, NULL);
}

/* Plan the CPU decoder for an output y; *lh x *lw is the latent grid its input slot then holds. */
static vqz_status plan_decoder(vqz_net *m, const vqz_tensor *y, int64_t *lh, int64_t *lw)
{
    int64_t h = 0, w = 0;
    VQZ_TRY(check_input(m, y, &h, &w));
    VQZ_TRY(vqz_net_latent_size(m, h, w, lh, lw));
    return vqz_graph_plan(&m->dec, y->shape[0], *lh, *lw, 0);
}

/* Run the planned decoder on what its input slot holds and copy its output to y. */
static vqz_status run_decoder(vqz_nn_ctx *ctx, vqz_net *m, vqz_tensor *y)
{
    vqz_tensor in = vqz_graph_slot(&m->dec, m->dec.input_slot);
    VQZ_TRY(vqz_graph_forward(ctx, &m->dec, &m->pv, &in));
    vqz_tensor out = vqz_graph_slot(&m->dec, m->dec.output_slot);
    memcpy(y->data, out.data, (size_t)vqz_tensor_numel(&out) * sizeof(float));
    return VQZ_OK;
}

vqz_status vqz_net_decode(vqz_nn_ctx *ctx, vqz_net *m, const int32_t *idx, int n_levels, vqz_tensor *y)
{
    VQZ_FAIL_IF(n_levels < 1 || n_levels > m->cfg.levels, VQZ_ERR_INVALID_ARG, "model: %d levels asked, model has %d",
                n_levels, m->cfg.levels);
    VQZ_TRY(check_placement(ctx, m, 1));
    if (ctx->device == VQZ_CUDA) {
        VQZ_TRY(vqz_nn_cuda_ready(ctx, "model"));
#ifdef VQZ_HAVE_CUDA
        return decode_cuda(ctx, m, idx, n_levels, y);
#endif
    }
    int64_t lh = 0, lw = 0;
    VQZ_TRY(plan_decoder(m, y, &lh, &lw));
    vqz_tensor zq = latent_rows(&m->dec, m->dec.input_slot);
    VQZ_TRY(vqz_rvq_decode(ctx, &m->rvq, idx, n_levels, &zq));
    return run_decoder(ctx, m, y);
}

vqz_status vqz_net_decode_latent(vqz_nn_ctx *ctx, vqz_net *m, const vqz_tensor *z, vqz_tensor *y)
{
    VQZ_TRY(check_placement(ctx, m, 0));
    int64_t lh = 0, lw = 0;
    VQZ_TRY(plan_decoder(m, y, &lh, &lw));
    VQZ_FAIL_IF(z->shape[0] != y->shape[0] || z->shape[1] != m->cfg.latent_dim ||
                    vqz_tensor_numel(z) != y->shape[0] * m->cfg.latent_dim * lh * lw,
                VQZ_ERR_SHAPE, "model: latent of the wrong shape for a %lld x %lld latent grid", (long long)lh,
                (long long)lw);
    vqz_tensor in = vqz_graph_slot(&m->dec, m->dec.input_slot);
    memcpy(in.data, z->data, (size_t)vqz_tensor_numel(z) * sizeof(float));
    return run_decoder(ctx, m, y);
}

/* ------------------------------------------------------------------------------ training */

static vqz_status grow_scratch(vqz_net *m, int64_t floats, int64_t idx_count)
{
    if (floats > m->buf_cap) {
        free(m->buf_dy);
        free(m->buf_tmp);
        free(m->buf_dz);
        m->buf_dy = malloc((size_t)floats * sizeof(float));
        m->buf_tmp = malloc((size_t)floats * sizeof(float));
        m->buf_dz = malloc((size_t)floats * sizeof(float));
        m->buf_cap = floats;
        if (!m->buf_dy || !m->buf_tmp || !m->buf_dz) {
            m->buf_cap = 0;
            return vqz_fail(VQZ_ERR_NOMEM, "model: out of memory for training buffers");
        }
    }
    if (idx_count > m->idx_cap) {
        free(m->buf_idx);
        m->buf_idx = malloc((size_t)idx_count * sizeof(int32_t));
        m->idx_cap = m->buf_idx ? idx_count : 0;
        if (!m->buf_idx)
            return vqz_fail(VQZ_ERR_NOMEM, "model: out of memory for indices");
    }
    return VQZ_OK;
}

vqz_status vqz_net_train_grad(vqz_nn_ctx *ctx, vqz_net *m, const vqz_tensor *x, const vqz_train_opts *o,
                                vqz_train_stats *st)
{
    VQZ_FAIL_IF(!m->grads, VQZ_ERR_INVALID_ARG, "model: training step before vqz_net_enable_training");
    VQZ_TRY(check_placement(ctx, m, 0));
    int nq = o->n_levels;
    VQZ_FAIL_IF(nq < 1 || nq > m->cfg.levels, VQZ_ERR_INVALID_ARG, "model: %d levels asked, model has %d", nq,
                m->cfg.levels);
    memset(st, 0, sizeof *st);
    st->n_levels = nq;
    memset(m->grads, 0, (size_t)m->n_train * sizeof(float));

    /* encoder */
    VQZ_TRY(run_encoder(ctx, m, x, 1));
    vqz_tensor z = latent_rows(&m->enc, m->enc.output_slot);
    int64_t numel_x = vqz_tensor_numel(x), numel_z = vqz_tensor_numel(&z);
    VQZ_TRY(grow_scratch(m, numel_x > numel_z ? numel_x : numel_z, (int64_t)m->cfg.levels * z.shape[0] * z.shape[2]));

    /* quantizer: zq straight into the decoder's input slot */
    vqz_tensor zout = vqz_graph_slot(&m->enc, m->enc.output_slot);
    VQZ_TRY(vqz_graph_plan(&m->dec, x->shape[0], zout.shape[2], zout.ndim == 4 ? zout.shape[3] : 1, 1));
    vqz_tensor zq = latent_rows(&m->dec, m->dec.input_slot);
    VQZ_TRY(vqz_rvq_train_fwd(ctx, &m->rvq, &z, nq, o->beta, m->buf_idx, &zq, &st->commit));

    /* decoder and losses */
    vqz_tensor din = vqz_graph_slot(&m->dec, m->dec.input_slot);
    VQZ_TRY(vqz_graph_forward(ctx, &m->dec, &m->pv, &din));
    vqz_tensor y = vqz_graph_slot(&m->dec, m->dec.output_slot);
    vqz_tensor dy = y, tmp = y;
    dy.data = m->buf_dy;
    tmp.data = m->buf_tmp;
    int have = 0;
    if (m->cfg.kind == VQZ_NET_IMAGE) {
        if (o->mse_weight > 0) {
            VQZ_TRY(vqz_mse_loss(ctx, &y, x, o->mse_weight, &st->recon, &dy));
            have = 1;
        }
        if (o->msssim_weight > 0) {
            VQZ_TRY(vqz_msssim_loss(ctx, &y, x, o->msssim_weight, &st->aux, have ? &tmp : &dy));
            if (have)
                VQZ_TRY(vqz_axpy(ctx, 1.0f, &tmp, &dy));
            have = 1;
        }
        st->loss = o->mse_weight * st->recon + o->msssim_weight * st->aux;
    } else {
        if (o->l1_weight > 0) {
            VQZ_TRY(vqz_l1_loss(ctx, &y, x, o->l1_weight, &st->recon, &dy));
            have = 1;
        }
        if (o->stft_weight > 0) {
            if (!m->stft) {
                static const int def[] = {512, 1024, 2048};
                VQZ_TRY(vqz_net_set_stft_sizes(m, def, 3));
            }
            VQZ_TRY(vqz_stft_loss_eval(ctx, (vqz_stft_loss *)m->stft, &y, x, o->stft_weight, &st->aux,
                                       have ? &tmp : &dy));
            if (have)
                VQZ_TRY(vqz_axpy(ctx, 1.0f, &tmp, &dy));
            have = 1;
        }
        st->loss = o->l1_weight * st->recon + o->stft_weight * st->aux;
    }
    VQZ_FAIL_IF(!have, VQZ_ERR_INVALID_ARG, "model: every reconstruction loss weight is zero");
    if (o->extra_loss) {
        VQZ_TRY(o->extra_loss(o->extra_user, ctx, &y, x, &dy, &st->extra));
        st->loss += st->extra;
    }
    st->loss += st->commit;
    VQZ_FAIL_IF(!isfinite(st->loss), VQZ_ERR_NONFINITE, "model: training loss is %g at step %lld (recon %g, commit %g)",
                st->loss, (long long)m->step, st->recon, st->commit);

    /* backward: decoder -> straight-through + commitment -> encoder */
    vqz_tensor dzq = zq;
    dzq.data = m->buf_dz;
    vqz_tensor dzq_in = vqz_graph_slot(&m->dec, m->dec.input_slot);
    dzq_in.data = m->buf_dz;
    VQZ_TRY(vqz_graph_backward(ctx, &m->dec, &m->pv, &dy, o->decoder_only ? NULL : &dzq_in));
    if (!o->decoder_only) {
        VQZ_TRY(vqz_rvq_train_bwd(ctx, &m->rvq, &z, m->buf_idx, nq, o->beta, &dzq, &dzq));
        vqz_tensor dz = zout;
        dz.data = m->buf_dz;
        VQZ_TRY(vqz_graph_backward(ctx, &m->enc, &m->pv, &dz, NULL));
    }

    int64_t per_level = z.shape[0] * z.shape[2];
    for (int l = 0; l < nq; l++)
        VQZ_TRY(vqz_rvq_usage_of(m->buf_idx + l * per_level, per_level, m->cfg.codebook_size, &st->usage[l]));
    return VQZ_OK;
}

vqz_status vqz_net_train_apply(vqz_nn_ctx *ctx, vqz_net *m, const vqz_train_opts *o, vqz_rng *rng,
                                 vqz_train_stats *st)
{
    VQZ_FAIL_IF(!m->grads, VQZ_ERR_INVALID_ARG, "model: training step before vqz_net_enable_training");
    vqz_adamw_cfg acfg = {0.9f, 0.999f, 1e-8f};
    VQZ_TRY(vqz_grad_clip(ctx, m->grads, m->n_train, o->grad_clip, &st->grad_norm));
    VQZ_FAIL_IF(!isfinite(st->grad_norm), VQZ_ERR_NONFINITE, "model: gradient norm is %g at step %lld",
                st->grad_norm, (long long)m->step);
    m->step++;
    if (o->decoder_only) {
        /* tensor by tensor: the encoder's weights and moments stay exactly as they are */
        for (int i = 0; i < m->n_tensors; i++) {
            const vqz_param_info *p = &m->info[i];
            if (!p->trainable || strncmp(p->name, "dec.", 4) != 0)
                continue;
            int64_t n = 1;
            for (int d = 0; d < p->ndim; d++)
                n *= p->shape[d];
            VQZ_TRY(vqz_adamw_step(ctx, &acfg, o->lr, p->decay ? o->weight_decay : 0.0f, m->step,
                                   m->params + p->offset, m->grads + p->offset, m->adam_m + p->offset,
                                   m->adam_v + p->offset, n));
        }
    } else {
        VQZ_TRY(vqz_adamw_step(ctx, &acfg, o->lr, o->weight_decay, m->step, m->params, m->grads, m->adam_m,
                               m->adam_v, m->n_decay));
        VQZ_TRY(vqz_adamw_step(ctx, &acfg, o->lr, 0.0f, m->step, m->params + m->n_decay, m->grads + m->n_decay,
                               m->adam_m + m->n_decay, m->adam_v + m->n_decay, m->n_train - m->n_decay));
    }
    if (o->ema) {
        vqz_tensor z = latent_rows(&m->enc, m->enc.output_slot);
        VQZ_TRY(vqz_rvq_ema_update(ctx, &m->rvq, &z, m->buf_idx, st->n_levels, rng, st->restarted));
    }
    return VQZ_OK;
}

vqz_status vqz_net_set_stft_sizes(vqz_net *m, const int *sizes, int n)
{
    vqz_stft_loss *l = NULL;
    VQZ_TRY(vqz_stft_loss_create(&l, sizes, n));
    if (m->stft)
        vqz_stft_loss_free((vqz_stft_loss *)m->stft);
    m->stft = l;
    return VQZ_OK;
}

vqz_status vqz_net_kmeans_init(vqz_nn_ctx *ctx, vqz_net *m, const vqz_tensor *x, int iters, vqz_rng *rng)
{
    VQZ_TRY(run_encoder(ctx, m, x, 0));
    vqz_tensor z = latent_rows(&m->enc, m->enc.output_slot);
    return vqz_rvq_kmeans_init(ctx, &m->rvq, &z, iters, rng);
}
