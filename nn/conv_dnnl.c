/* conv_dnnl.c — CPU convolutions (conv2d, conv1d, transposed conv1d; forward and backward) through
 * oneDNN's C API, with a per-context cache of primitives and grow-only scratch buffers; forward
 * convolutions with fused activation and residual sum on channels-last data for the inference path. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "common/status.h"
#include "nn/ops.h"
#ifdef VQZ_HAVE_CUDA
#include "kernels/cuda_ops.h"
#endif

/* Primitive creation costs milliseconds, so primitives are cached per problem; a model has a few
 * dozen distinct convolutions, and the cap only bounds growth when input shapes keep changing. */
#define CACHE_MAX 128

/* The transposed convolution's forward pass runs as a K_CONV_FWD (convtr_forward); K_DECONV_FWD
 * only keeps the deconvolution kinds parallel to the convolution ones in the plan table. */
typedef enum {
    K_CONV_FWD,
    K_CONV_BWD_DATA,
    K_CONV_BWD_WEIGHTS,
    K_DECONV_FWD,
    K_DECONV_BWD_DATA,
    K_DECONV_BWD_WEIGHTS
} prim_kind;

/* Scratch slots. The first three hold a tensor in the primitive's (blocked) layout and are indexed
 * by role: activations on the input side, weights, activations on the output side. The SUB_* slots
 * hold the sub-pixel form of a transposed convolution (see convtr_forward). */
enum {
    SLOT_SRC,
    SLOT_WEI,
    SLOT_DST,
    SLOT_BIAS,
    SLOT_PAD,
    SLOT_PADGRAD,
    SLOT_SCRATCHPAD,
    SLOT_SUB_W,
    SLOT_SUB_B,
    SLOT_SUB_Y,
    SLOT_PRE,
    SLOT_COUNT
};

/* One convolution problem as oneDNN sees it (always 2-D; 1-D ops use H = 1). "src" is the input
 * side (x) and "dst" the output side (y), also for the transposed convolution. All fields are
 * int64_t so the struct has no padding and compares with memcmp. */
typedef struct {
    int64_t kind, bias, threads;
    int64_t n, ci, co, ih, iw, oh, ow, kh, kw;
    int64_t sh, sw, dh, dw; /* dilation in oneDNN's convention: 0 = dense */
    int64_t pt, pb, pl, pr;
    /* forward only: inference (the fused entry point) or training, the caller's layouts (vqz_layout) and
     * the fused post-operations (vqz_conv_fusion; the scales as their float bits) */
    int64_t inference, src_fmt, dst_fmt, act, residual, res_scale_bits, out_scale_bits;
} conv_key;

typedef struct {
    int arg;                   /* DNNL_ARG_* of the primitive */
    int slot;                  /* scratch slot holding the primitive-layout copy */
    int out;                   /* the primitive writes it */
    dnnl_memory_desc_t prim_md;
    dnnl_memory_t user, prim;  /* user: the caller's layout (NCHW or NHWC) on its buffer */
    dnnl_primitive_t reorder;  /* NULL when the layouts agree: prim then wraps the caller's buffer */
    dnnl_primitive_t pre;      /* residual destination in another layout: its y_in, user -> prim */
} conv_io;

typedef struct {
    conv_key key;
    uint64_t used;
    dnnl_primitive_desc_t hint, pd; /* the forward hint must outlive backward descriptors */
    dnnl_primitive_t prim;
    conv_io io[3];
    dnnl_memory_t bias;        /* plain [Co]: bias (fwd) or its gradient (bwd weights); NULL if none */
    dnnl_memory_t scratchpad;  /* NULL when the primitive needs none */
    size_t scratchpad_bytes;
    float y_prescale;          /* residual forward: y_in is scaled by this before the run (see fusion_post_ops) */
    int generic;               /* forward: oneDNN chose a reference or im2col+GEMM kernel, not a direct one */
} conv_entry;

typedef struct {
    void *p;
    size_t cap;
} scratch_buf;

typedef struct {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    conv_entry *cache[CACHE_MAX];
    int ncache;
    uint64_t clock;
    scratch_buf slot[SLOT_COUNT];
} dnnl_state;

static vqz_status dnnl_err(dnnl_status_t s, const char *op, const char *what)
{
    vqz_status v = s == dnnl_out_of_memory ? VQZ_ERR_NOMEM
                   : s == dnnl_unimplemented ? VQZ_ERR_UNSUPPORTED
                                             : VQZ_ERR_INTERNAL;
    return vqz_fail(v, "%s: oneDNN %s failed (%s)", op, what, dnnl_status2str(s));
}

#define DNNL_CHECK(call, what)                    \
    do {                                          \
        dnnl_status_t dnnl_s_ = (call);           \
        if (dnnl_s_ != dnnl_success) {            \
            st = dnnl_err(dnnl_s_, op, what);     \
            goto fail;                            \
        }                                         \
    } while (0)

/* ------------------------------------------------------------------------------------ state */

static void entry_free(conv_entry *e)
{
    if (!e)
        return;
    for (int i = 0; i < 3; i++) {
        if (e->io[i].reorder)
            dnnl_primitive_destroy(e->io[i].reorder);
        if (e->io[i].pre)
            dnnl_primitive_destroy(e->io[i].pre);
        if (e->io[i].user)
            dnnl_memory_destroy(e->io[i].user);
        if (e->io[i].prim)
            dnnl_memory_destroy(e->io[i].prim);
    }
    if (e->bias)
        dnnl_memory_destroy(e->bias);
    if (e->scratchpad)
        dnnl_memory_destroy(e->scratchpad);
    if (e->prim)
        dnnl_primitive_destroy(e->prim);
    if (e->pd)
        dnnl_primitive_desc_destroy(e->pd);
    if (e->hint)
        dnnl_primitive_desc_destroy(e->hint);
    free(e);
}

void vqz_dnnl_state_free(void *state)
{
    dnnl_state *s = state;
    if (!s)
        return;
    for (int i = 0; i < s->ncache; i++)
        entry_free(s->cache[i]);
    for (int i = 0; i < SLOT_COUNT; i++)
        free(s->slot[i].p);
    if (s->stream)
        dnnl_stream_destroy(s->stream);
    if (s->engine)
        dnnl_engine_destroy(s->engine);
    free(s);
}

static vqz_status state_get(vqz_nn_ctx *ctx, const char *op, dnnl_state **out)
{
    vqz_status st = VQZ_OK;
    if (ctx->dnnl) {
        *out = ctx->dnnl;
        return VQZ_OK;
    }
    dnnl_state *s = calloc(1, sizeof *s);
    if (!s)
        return vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory for the oneDNN state", op);
    DNNL_CHECK(dnnl_engine_create(&s->engine, dnnl_cpu, 0), "engine creation");
    DNNL_CHECK(dnnl_stream_create(&s->stream, s->engine, dnnl_stream_default_flags), "stream creation");
    ctx->dnnl = s;
    *out = s;
    return VQZ_OK;
fail:
    vqz_dnnl_state_free(s);
    return st;
}

/* Grow-only: once warm, no call allocates. Contents are not preserved. */
static vqz_status slot_reserve(dnnl_state *s, int i, size_t bytes, const char *op)
{
    if (s->slot[i].cap >= bytes)
        return VQZ_OK;
    free(s->slot[i].p);
    s->slot[i].p = NULL;
    s->slot[i].cap = 0;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0)
        return vqz_fail(VQZ_ERR_NOMEM, "%s: cannot allocate %zu bytes of scratch", op, bytes);
    s->slot[i].p = p;
    s->slot[i].cap = bytes;
    return VQZ_OK;
}

/* --------------------------------------------------------------------------- primitive setup */

static dnnl_status_t md_plain(dnnl_memory_desc_t *md, int64_t a, int64_t b, int64_t c, int64_t d,
                              dnnl_format_tag_t tag)
{
    dnnl_dims_t dims = {a, b, c, d};
    return dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, tag);
}

static dnnl_format_tag_t layout_tag(int64_t layout)
{
    return layout == VQZ_LAYOUT_NHWC ? dnnl_nhwc : layout == VQZ_LAYOUT_NC8 ? dnnl_nChw8c : dnnl_nchw;
}

int vqz_conv_cpu_block(void)
{
    return dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core ? 16 : 8;
}

static float bits_float(int64_t bits)
{
    uint32_t u = (uint32_t)bits;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int64_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* The fused post-operations of a forward key: vqz_conv_fusion's formula as written, or with the
 * residual sum first, as out_scale (conv + b + y_in') with y_in' = res_scale / out_scale y_in made by
 * conv_forward. oneDNN's jit kernels (the training ones, and all of them on CPUs without AVX-512) run
 * a sum post-op only first and with scale 1; other chains drop to a reference loop a hundred times
 * slower, which entry_create detects and avoids. */
static dnnl_status_t fusion_post_ops(const conv_key *k, int sum_first, dnnl_post_ops_t *out)
{
    *out = NULL;
    float out_scale = bits_float(k->out_scale_bits), res_scale = bits_float(k->res_scale_bits);
    if (out_scale == 1.0f && !k->residual && k->act == VQZ_FUSED_NONE)
        return dnnl_success;
    dnnl_post_ops_t po;
    dnnl_status_t r = dnnl_post_ops_create(&po);
    if (r != dnnl_success)
        return r;
    if (sum_first) {
        r = dnnl_post_ops_append_sum(po, 1.0f);
        if (r == dnnl_success && out_scale != 1.0f)
            r = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_linear, out_scale, 0.0f);
    } else {
        if (out_scale != 1.0f)
            r = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_linear, out_scale, 0.0f);
        if (r == dnnl_success && k->residual)
            r = dnnl_post_ops_append_sum(po, res_scale);
    }
    if (r == dnnl_success && k->act != VQZ_FUSED_NONE)
        r = dnnl_post_ops_append_eltwise(po, 1.0f, k->act == VQZ_FUSED_SILU ? dnnl_eltwise_swish : dnnl_eltwise_elu,
                                          1.0f, 0.0f);
    if (r != dnnl_success) {
        dnnl_post_ops_destroy(po);
        return r;
    }
    *out = po;
    return dnnl_success;
}

static int kind_is_deconv(int64_t kind)
{
    return kind == K_DECONV_FWD || kind == K_DECONV_BWD_DATA || kind == K_DECONV_BWD_WEIGHTS;
}

/* oneDNN's op descriptors are plain structs; one union holds either kind. */
typedef union {
    dnnl_convolution_desc_t conv;
    dnnl_deconvolution_desc_t deconv;
} any_desc;

/* Inference forwards of images get oneDNN's inference kernels: on AVX-512 these are the brgemm
 * convolutions on channels-last data, which take any chain of post-operations (the training kernels,
 * jit on blocked nChw16c, fall back to a reference loop for a sum after an eltwise). 1-D problems keep
 * the training kernels: oneDNN 2.6's brgemm convolution precomputes per output column, which for 60 s
 * of audio costs 4 s and 850 MB per primitive. */
static dnnl_status_t fwd_desc(const conv_key *k, any_desc *d, const dnnl_memory_desc_t *src,
                              const dnnl_memory_desc_t *wei, const dnnl_memory_desc_t *bias,
                              const dnnl_memory_desc_t *dst)
{
    dnnl_dims_t strides = {k->sh, k->sw}, dil = {k->dh, k->dw}, pl = {k->pt, k->pl}, pr = {k->pb, k->pr};
    dnnl_prop_kind_t prop = k->inference ? dnnl_forward_inference : dnnl_forward_training;
    if (kind_is_deconv(k->kind))
        return dnnl_dilated_deconvolution_forward_desc_init(&d->deconv, prop, dnnl_deconvolution_direct,
                                                            src, wei, bias, dst, strides, dil, pl, pr);
    return dnnl_dilated_convolution_forward_desc_init(&d->conv, prop,
                                                      dnnl_convolution_direct, src, wei, bias, dst,
                                                      strides, dil, pl, pr);
}

static vqz_status entry_create(dnnl_state *s, const conv_key *k, const char *op, conv_entry **out)
{
    vqz_status st = VQZ_OK;
    dnnl_primitive_attr_t attr = NULL, acc_attr = NULL;
    dnnl_post_ops_t acc_ops = NULL, fused_ops = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    conv_entry *e = calloc(1, sizeof *e);
    if (!e)
        return vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory for a primitive cache entry", op);
    e->key = *k;

    int deconv = kind_is_deconv(k->kind);
    dnnl_memory_desc_t u_src, u_dst, u_wei, u_bias, a_src, a_dst, a_wei;
    DNNL_CHECK(md_plain(&u_src, k->n, k->ci, k->ih, k->iw, layout_tag(k->src_fmt)), "memory descriptor");
    DNNL_CHECK(md_plain(&u_dst, k->n, k->co, k->oh, k->ow, layout_tag(k->dst_fmt)), "memory descriptor");
    DNNL_CHECK(md_plain(&u_wei, k->co, k->ci, k->kh, k->kw, deconv ? dnnl_iohw : dnnl_oihw),
               "memory descriptor");
    DNNL_CHECK(md_plain(&a_src, k->n, k->ci, k->ih, k->iw, dnnl_format_tag_any), "memory descriptor");
    DNNL_CHECK(md_plain(&a_dst, k->n, k->co, k->oh, k->ow, dnnl_format_tag_any), "memory descriptor");
    DNNL_CHECK(md_plain(&a_wei, k->co, k->ci, k->kh, k->kw, dnnl_format_tag_any), "memory descriptor");
    dnnl_dims_t bdims = {k->co};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&u_bias, 1, bdims, dnnl_f32, dnnl_x), "memory descriptor");
    const dnnl_memory_desc_t *bmd = k->bias ? &u_bias : NULL;

    /* Scratchpads come from our grow-only slot rather than per-primitive allocations. */
    DNNL_CHECK(dnnl_primitive_attr_create(&attr), "attribute creation");
    DNNL_CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "attribute setup");

    any_desc fd, bd;
    int fwd = k->kind == K_CONV_FWD || k->kind == K_DECONV_FWD;
    int bwd_w = k->kind == K_CONV_BWD_WEIGHTS || k->kind == K_DECONV_BWD_WEIGHTS;
    DNNL_CHECK(fwd_desc(k, &fd, &a_src, &a_wei, fwd || bwd_w ? bmd : NULL, &a_dst), "descriptor setup");
    e->y_prescale = 1.0f;
    if (fwd) {
        float out_scale = bits_float(k->out_scale_bits), res_scale = bits_float(k->res_scale_bits);
        int reorderable = k->residual && out_scale != 0.0f && (out_scale != 1.0f || res_scale != 1.0f);
        int sum_first = reorderable && !k->inference;
        for (int attempt = 0;; attempt++) {
            DNNL_CHECK(fusion_post_ops(k, sum_first, &fused_ops), "post-op setup");
            if (fused_ops)
                DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, fused_ops), "attribute setup");
            DNNL_CHECK(dnnl_primitive_desc_create(&e->pd, &fd, attr, s->engine, NULL), "primitive selection");
            const char *impl = "";
            dnnl_primitive_desc_query(e->pd, dnnl_query_impl_info_str, 0, &impl);
            e->generic = strncmp(impl, "ref", 3) == 0 || strstr(impl, "gemm") != NULL;
            if (!reorderable || attempt == 1 || strncmp(impl, "ref", 3) != 0)
                break;
            dnnl_primitive_desc_destroy(e->pd);
            e->pd = NULL;
            dnnl_post_ops_destroy(fused_ops);
            fused_ops = NULL;
            sum_first = !sum_first;
        }
        if (sum_first)
            e->y_prescale = res_scale / out_scale;
    } else {
        DNNL_CHECK(dnnl_primitive_desc_create(&e->hint, &fd, NULL, s->engine, NULL), "primitive selection");
        dnnl_dims_t strides = {k->sh, k->sw}, dil = {k->dh, k->dw}, pl = {k->pt, k->pl},
                    pr = {k->pb, k->pr};
        dnnl_status_t ds;
        if (k->kind == K_CONV_BWD_DATA)
            ds = dnnl_dilated_convolution_backward_data_desc_init(&bd.conv, dnnl_convolution_direct, &a_src,
                                                                  &a_wei, &a_dst, strides, dil, pl, pr);
        else if (k->kind == K_CONV_BWD_WEIGHTS)
            ds = dnnl_dilated_convolution_backward_weights_desc_init(&bd.conv, dnnl_convolution_direct,
                                                                     &a_src, &a_wei, bmd, &a_dst, strides,
                                                                     dil, pl, pr);
        else if (k->kind == K_DECONV_BWD_DATA)
            ds = dnnl_dilated_deconvolution_backward_data_desc_init(&bd.deconv, dnnl_deconvolution_direct,
                                                                    &a_src, &a_wei, &a_dst, strides, dil,
                                                                    pl, pr);
        else
            ds = dnnl_dilated_deconvolution_backward_weights_desc_init(&bd.deconv,
                                                                       dnnl_deconvolution_direct, &a_src,
                                                                       &a_wei, bmd, &a_dst, strides, dil,
                                                                       pl, pr);
        DNNL_CHECK(ds, "descriptor setup");
        DNNL_CHECK(dnnl_primitive_desc_create(&e->pd, &bd, attr, s->engine, e->hint), "primitive selection");
    }
    DNNL_CHECK(dnnl_primitive_create(&e->prim, e->pd), "primitive creation");

    /* Which tensor plays which part, per kind: {argument, role (= slot), written by the primitive}. */
    static const int plan[6][3][3] = {
        [K_CONV_FWD] = {{DNNL_ARG_SRC, SLOT_SRC, 0}, {DNNL_ARG_WEIGHTS, SLOT_WEI, 0}, {DNNL_ARG_DST, SLOT_DST, 1}},
        [K_CONV_BWD_DATA] = {{DNNL_ARG_DIFF_DST, SLOT_DST, 0}, {DNNL_ARG_WEIGHTS, SLOT_WEI, 0},
                             {DNNL_ARG_DIFF_SRC, SLOT_SRC, 1}},
        [K_CONV_BWD_WEIGHTS] = {{DNNL_ARG_SRC, SLOT_SRC, 0}, {DNNL_ARG_DIFF_DST, SLOT_DST, 0},
                                {DNNL_ARG_DIFF_WEIGHTS, SLOT_WEI, 1}},
    };
    int pk = (int)(deconv ? k->kind - K_DECONV_FWD : k->kind);
    for (int i = 0; i < 3; i++) {
        conv_io *io = &e->io[i];
        io->arg = plan[pk][i][0];
        io->slot = plan[pk][i][1];
        io->out = plan[pk][i][2];
        const dnnl_memory_desc_t *umd = io->slot == SLOT_SRC ? &u_src : io->slot == SLOT_DST ? &u_dst : &u_wei;
        io->prim_md = *dnnl_primitive_desc_query_md(e->pd, dnnl_query_exec_arg_md, io->arg);
        DNNL_CHECK(dnnl_memory_create(&io->prim, &io->prim_md, s->engine, DNNL_MEMORY_NONE), "memory creation");
        /* Weight gradients accumulate (+=) into the caller's buffer, so they always go through a
         * reorder carrying a sum post-op, even when the layouts agree. */
        int accumulate = bwd_w && io->out;
        if (!accumulate && dnnl_memory_desc_equal(umd, &io->prim_md))
            continue;
        DNNL_CHECK(dnnl_memory_create(&io->user, umd, s->engine, DNNL_MEMORY_NONE), "memory creation");
        if (accumulate && !acc_attr) {
            DNNL_CHECK(dnnl_primitive_attr_create(&acc_attr), "attribute creation");
            DNNL_CHECK(dnnl_post_ops_create(&acc_ops), "post-op creation");
            DNNL_CHECK(dnnl_post_ops_append_sum(acc_ops, 1.0f), "post-op setup");
            DNNL_CHECK(dnnl_primitive_attr_set_post_ops(acc_attr, acc_ops), "attribute setup");
        }
        if (io->out)
            DNNL_CHECK(dnnl_reorder_primitive_desc_create(&rpd, &io->prim_md, s->engine, umd, s->engine,
                                                          accumulate ? acc_attr : NULL),
                       "reorder selection");
        else
            DNNL_CHECK(dnnl_reorder_primitive_desc_create(&rpd, umd, s->engine, &io->prim_md, s->engine, NULL),
                       "reorder selection");
        DNNL_CHECK(dnnl_primitive_create(&io->reorder, rpd), "reorder creation");
        dnnl_primitive_desc_destroy(rpd);
        rpd = NULL;
        /* a residual sum reads the destination: its y_in must reach the primitive's layout first */
        if (fwd && io->out && k->residual) {
            DNNL_CHECK(dnnl_reorder_primitive_desc_create(&rpd, umd, s->engine, &io->prim_md, s->engine, NULL),
                       "reorder selection");
            DNNL_CHECK(dnnl_primitive_create(&io->pre, rpd), "reorder creation");
            dnnl_primitive_desc_destroy(rpd);
            rpd = NULL;
        }
    }
    if (k->bias && (fwd || bwd_w))
        DNNL_CHECK(dnnl_memory_create(&e->bias, &u_bias, s->engine, DNNL_MEMORY_NONE), "memory creation");
    const dnnl_memory_desc_t *spmd = dnnl_primitive_desc_query_md(e->pd, dnnl_query_scratchpad_md, 0);
    e->scratchpad_bytes = spmd ? dnnl_memory_desc_get_size(spmd) : 0;
    if (e->scratchpad_bytes > 0)
        DNNL_CHECK(dnnl_memory_create(&e->scratchpad, spmd, s->engine, DNNL_MEMORY_NONE), "memory creation");

    dnnl_primitive_attr_destroy(attr);
    if (acc_attr)
        dnnl_primitive_attr_destroy(acc_attr);
    if (acc_ops)
        dnnl_post_ops_destroy(acc_ops);
    if (fused_ops)
        dnnl_post_ops_destroy(fused_ops);
    *out = e;
    return VQZ_OK;
fail:
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (acc_attr)
        dnnl_primitive_attr_destroy(acc_attr);
    if (acc_ops)
        dnnl_post_ops_destroy(acc_ops);
    if (fused_ops)
        dnnl_post_ops_destroy(fused_ops);
    entry_free(e);
    return st;
}

static vqz_status entry_get(dnnl_state *s, const conv_key *k, const char *op, conv_entry **out)
{
    s->clock++;
    for (int i = 0; i < s->ncache; i++) {
        if (memcmp(&s->cache[i]->key, k, sizeof *k) == 0) {
            s->cache[i]->used = s->clock;
            *out = s->cache[i];
            return VQZ_OK;
        }
    }
    conv_entry *e = NULL;
    VQZ_TRY(entry_create(s, k, op, &e));
    e->used = s->clock;
    if (s->ncache == CACHE_MAX) {
        int lru = 0;
        for (int i = 1; i < s->ncache; i++)
            if (s->cache[i]->used < s->cache[lru]->used)
                lru = i;
        entry_free(s->cache[lru]);
        s->cache[lru] = s->cache[--s->ncache];
    }
    s->cache[s->ncache++] = e;
    *out = e;
    return VQZ_OK;
}

static vqz_status run_prim(dnnl_state *s, dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args,
                           const char *op)
{
    dnnl_status_t r = dnnl_primitive_execute(p, s->stream, nargs, args);
    if (r != dnnl_success)
        return dnnl_err(r, op, "execution");
    return VQZ_OK;
}

static vqz_status run_reorder(dnnl_state *s, dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to,
                              const char *op)
{
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return run_prim(s, r, 2, args, op);
}

/* Run one cached primitive on the caller's plain buffers user[i] (in the order of e->io), with
 * bias (fwd: read; bwd weights: its gradient ACCUMULATED into it) when the entry has one.
 * skip_in: bit i set = io[i] already sits in its slot in the primitive's layout. */
static vqz_status entry_run(dnnl_state *s, conv_entry *e, float *const user[3], float *bias, unsigned skip_in,
                            const char *op)
{
    vqz_status st = VQZ_OK;
    for (int i = 0; i < 3; i++)
        if (e->io[i].reorder)
            VQZ_TRY(slot_reserve(s, e->io[i].slot, dnnl_memory_desc_get_size(&e->io[i].prim_md), op));
    VQZ_TRY(slot_reserve(s, SLOT_SCRATCHPAD, e->scratchpad_bytes, op));
    int bias_grad = e->bias && (e->key.kind == K_CONV_BWD_WEIGHTS || e->key.kind == K_DECONV_BWD_WEIGHTS);
    if (bias_grad)
        VQZ_TRY(slot_reserve(s, SLOT_BIAS, (size_t)e->key.co * sizeof(float), op));

    for (int i = 0; i < 3; i++) {
        conv_io *io = &e->io[i];
        void *ph = io->reorder ? s->slot[io->slot].p : user[i];
        DNNL_CHECK(dnnl_memory_set_data_handle_v2(io->prim, ph, s->stream), "set_data_handle");
        if (!io->reorder)
            continue;
        DNNL_CHECK(dnnl_memory_set_data_handle_v2(io->user, user[i], s->stream), "set_data_handle");
        if (!io->out && !(skip_in & (1u << i)))
            VQZ_TRY(run_reorder(s, io->reorder, io->user, io->prim, op));
        if (io->pre)
            VQZ_TRY(run_reorder(s, io->pre, io->user, io->prim, op));
    }
    dnnl_exec_arg_t args[5];
    int nargs = 0;
    for (int i = 0; i < 3; i++)
        args[nargs++] = (dnnl_exec_arg_t){e->io[i].arg, e->io[i].prim};
    if (e->bias) {
        DNNL_CHECK(dnnl_memory_set_data_handle_v2(e->bias, bias_grad ? s->slot[SLOT_BIAS].p : bias, s->stream),
                   "set_data_handle");
        args[nargs++] = (dnnl_exec_arg_t){bias_grad ? DNNL_ARG_DIFF_BIAS : DNNL_ARG_BIAS, e->bias};
    }
    if (e->scratchpad) {
        DNNL_CHECK(dnnl_memory_set_data_handle_v2(e->scratchpad, s->slot[SLOT_SCRATCHPAD].p, s->stream),
                   "set_data_handle");
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->scratchpad};
    }
    VQZ_TRY(run_prim(s, e->prim, nargs, args, op));
    for (int i = 0; i < 3; i++)
        if (e->io[i].out && e->io[i].reorder)
            VQZ_TRY(run_reorder(s, e->io[i].reorder, e->io[i].prim, e->io[i].user, op));
    DNNL_CHECK(dnnl_stream_wait(s->stream), "stream wait");
    if (bias_grad) {
        const float *g = s->slot[SLOT_BIAS].p;
        for (int64_t c = 0; c < e->key.co; c++)
            bias[c] += g[c];
    }
    return VQZ_OK;
fail:
    return st;
}

/* ------------------------------------------------------------------- replicate / reflect padding */

/* Source index of padded position i (in input coordinates) for an axis of length n; -1 for zero padding. */
static inline int64_t pad_src(int64_t i, int64_t n, vqz_pad_mode m)
{
    if (m == VQZ_PAD_ZERO)
        return i < 0 || i >= n ? -1 : i;
    if (i < 0)
        return m == VQZ_PAD_REFLECT ? -i : 0;
    if (i >= n)
        return m == VQZ_PAD_REFLECT ? 2 * (n - 1) - i : n - 1;
    return i;
}

/* xp[plane, h+pt+pb, w+pl+pr] = x[plane, h, w] padded with zeros, by replication or by reflection. */
static void pad_planes(const float *x, float *xp, int64_t planes, int64_t h, int64_t w, int64_t pt,
                       int64_t pb, int64_t pl, int64_t pr, vqz_pad_mode m)
{
    int64_t hp = h + pt + pb, wp = w + pl + pr;
    #pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        for (int64_t i = 0; i < hp; i++) {
            float *o = xp + (p * hp + i) * wp;
            int64_t src = pad_src(i - pt, h, m);
            if (src < 0) {
                memset(o, 0, (size_t)wp * sizeof(float));
                continue;
            }
            const float *row = x + (p * h + src) * w;
            for (int64_t j = 0; j < pl; j++)
                o[j] = m == VQZ_PAD_ZERO ? 0.0f : row[pad_src(j - pl, w, m)];
            memcpy(o + pl, row, (size_t)w * sizeof(float));
            for (int64_t j = 0; j < pr; j++)
                o[pl + w + j] = m == VQZ_PAD_ZERO ? 0.0f : row[pad_src(w + j, w, m)];
        }
    }
}

/* The adjoint of pad_planes: gx = sum of the padded gradient over every position that read it. */
static void fold_planes(const float *gp, float *gx, int64_t planes, int64_t h, int64_t w, int64_t pt,
                        int64_t pb, int64_t pl, int64_t pr, vqz_pad_mode m)
{
    int64_t hp = h + pt + pb, wp = w + pl + pr;
    #pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        float *g = gx + p * h * w;
        memset(g, 0, (size_t)(h * w) * sizeof(float));
        for (int64_t i = 0; i < hp; i++) {
            float *row = g + pad_src(i - pt, h, m) * w;
            const float *in = gp + (p * hp + i) * wp;
            for (int64_t j = 0; j < pl; j++)
                row[pad_src(j - pl, w, m)] += in[j];
            for (int64_t j = 0; j < w; j++)
                row[j] += in[pl + j];
            for (int64_t j = 0; j < pr; j++)
                row[pad_src(w + j, w, m)] += in[pl + w + j];
        }
    }
}

/* --------------------------------------------------------------------------- shared drivers */

/* A convolution problem in our terms (before any explicit padding). */
typedef struct {
    int64_t n, ci, co, ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, pt, pb, pl, pr;
    vqz_pad_mode mode;
    int deconv;
    int zero_pad_copy; /* forward: zero padding written into a copy of the input, not left to oneDNN */
} conv_geom;

static int geom_explicit_pad(const conv_geom *g)
{
    return !g->deconv && (g->mode != VQZ_PAD_ZERO || g->zero_pad_copy) && (g->pt | g->pb | g->pl | g->pr) != 0;
}

/* f: the forward fusion, NULL for a plain NCHW convolution */
static conv_key geom_key(const vqz_nn_ctx *ctx, const conv_geom *g, prim_kind kind, int bias,
                         const vqz_conv_fusion *f)
{
    conv_key k;
    memset(&k, 0, sizeof k);
    k.out_scale_bits = float_bits(1.0f);
    if (f) {
        k.inference = g->ih > 1 || g->kh > 1;
        k.src_fmt = f->x_layout;
        k.dst_fmt = f->y_layout;
        k.act = f->act;
        k.residual = f->residual != 0;
        k.res_scale_bits = f->residual ? float_bits(f->res_scale) : 0;
        k.out_scale_bits = float_bits(f->out_scale);
    }
    k.kind = kind;
    k.bias = bias;
    k.threads = ctx->threads;
    k.n = g->n;
    k.ci = g->ci;
    k.co = g->co;
    k.ih = g->ih;
    k.iw = g->iw;
    k.oh = g->oh;
    k.ow = g->ow;
    k.kh = g->kh;
    k.kw = g->kw;
    k.sh = g->sh;
    k.sw = g->sw;
    k.dh = g->dh - 1;
    k.dw = g->dw - 1;
    if (geom_explicit_pad(g)) {
        /* The primitive sees the explicitly padded input and pads nothing itself. */
        k.ih = g->ih + g->pt + g->pb;
        k.iw = g->iw + g->pl + g->pr;
    } else {
        k.pt = g->pt;
        k.pb = g->pb;
        k.pl = g->pl;
        k.pr = g->pr;
    }
    return k;
}

/* lanes: 1 for channels-first x, 8 for NC8 x (zero padding only), whose rows hold 8 floats per position */
static vqz_status padded_input(dnnl_state *s, const conv_geom *g, const float *x, int64_t lanes, float **out,
                               const char *op)
{
    size_t bytes = (size_t)(g->n * g->ci * (g->ih + g->pt + g->pb) * (g->iw + g->pl + g->pr)) * sizeof(float);
    VQZ_TRY(slot_reserve(s, SLOT_PAD, bytes, op));
    pad_planes(x, s->slot[SLOT_PAD].p, g->n * g->ci / lanes, g->ih, g->iw * lanes, g->pt, g->pb, g->pl * lanes,
               g->pr * lanes, g->mode);
    *out = s->slot[SLOT_PAD].p;
    return VQZ_OK;
}

/* Transposed convolution forward as its sub-pixel equivalent: output phase r of y_full[q s + r] =
 * sum_j x[q - (J-1) + j] w[:, :, r + s (J-1-j)], J = ceil(k / s), is a stride-1 convolution, so all s
 * phases are one ordinary convolution with s*Co output channels and J taps, followed by an
 * interleave that also applies the crop. oneDNN's strided deconvolution kernel runs at about half
 * the speed of its forward convolution for the narrow layers at the end of an audio decoder. */
/* f: the layouts of x and y (NULL: both channels-first). */
static vqz_status convtr_forward(vqz_nn_ctx *ctx, dnnl_state *st, const conv_geom *g, float *x, const float *w,
                                 const float *b, float *y, const vqz_conv_fusion *f, const char *op)
{
    int64_t s = g->sw, k = g->kw, ci = g->ci, co = g->co, jt = (k + s - 1) / s, q = g->iw + jt - 1;
    conv_geom sub = *g;
    sub.deconv = 0;
    sub.co = s * co;
    sub.kw = jt;
    sub.sw = 1;
    sub.ow = q;
    sub.pl = sub.pr = jt - 1;
    VQZ_TRY(slot_reserve(st, SLOT_SUB_W, (size_t)(s * co * ci * jt) * sizeof(float), op));
    VQZ_TRY(slot_reserve(st, SLOT_SUB_Y, (size_t)(g->n * s * co * q) * sizeof(float), op));
    if (b)
        VQZ_TRY(slot_reserve(st, SLOT_SUB_B, (size_t)(s * co) * sizeof(float), op));
    float *ws = st->slot[SLOT_SUB_W].p, *bs = b ? st->slot[SLOT_SUB_B].p : NULL, *ys = st->slot[SLOT_SUB_Y].p;
    for (int64_t r = 0; r < s; r++)
        for (int64_t o = 0; o < co; o++) {
            for (int64_t i = 0; i < ci; i++)
                for (int64_t j = 0; j < jt; j++) {
                    int64_t kk = r + s * (jt - 1 - j);
                    ws[((r * co + o) * ci + i) * jt + j] = kk < k ? w[(i * co + o) * k + kk] : 0.0f;
                }
            if (bs)
                bs[r * co + o] = b[o];
        }
    conv_entry *e;
    vqz_conv_fusion layouts = {f ? f->x_layout : VQZ_LAYOUT_NCHW, f ? f->y_layout : VQZ_LAYOUT_NCHW, 0, 0.0f, 1.0f,
                               VQZ_FUSED_NONE, VQZ_FUSED_NONE};
    conv_key key = geom_key(ctx, &sub, K_CONV_FWD, b != NULL, f ? &layouts : NULL);
    VQZ_TRY(entry_get(st, &key, op, &e));
    float *user[3] = {x, ws, ys};
    VQZ_TRY(entry_run(st, e, user, bs, 0, op));
    int64_t to = g->ow, crop = g->pl;
    if (layouts.y_layout == VQZ_LAYOUT_NC8) {
        /* sub-pixel channel r co + o is block r co/8 + o/8, lane o % 8 (co is a multiple of 8) */
        int64_t cb = co / 8;
        #pragma omp parallel for schedule(static)
        for (int64_t nb = 0; nb < g->n * cb; nb++) {
            int64_t n = nb / cb, ob = nb % cb;
            float *out = y + nb * to * 8;
            for (int64_t p = 0; p < to; p++) {
                int64_t qi = (p + crop) / s, r = (p + crop) % s;
                memcpy(out + p * 8, ys + ((n * s * cb + r * cb + ob) * q + qi) * 8, 8 * sizeof(float));
            }
        }
        return VQZ_OK;
    }
    #pragma omp parallel for schedule(static)
    for (int64_t no = 0; no < g->n * co; no++) {
        int64_t n = no / co, o = no % co;
        float *out = y + no * to;
        for (int64_t r = 0; r < s; r++) {
            /* Phase r fills out[p] for p + crop = qi s + r: contiguous reads, writes s apart. */
            const float *in = ys + ((n * s + r) * co + o) * q;
            int64_t qi = crop > r ? (crop - r + s - 1) / s : 0;
            for (int64_t p = qi * s + r - crop; p < to; p += s, qi++)
                out[p] = in[qi];
        }
    }
    return VQZ_OK;
}

static vqz_status preact_forward(vqz_nn_ctx *ctx, dnnl_state *s, const conv_geom *g, const float *x, float *w,
                                 float *b, float *y, const vqz_conv_fusion *f, const char *op);

static vqz_status conv_forward(vqz_nn_ctx *ctx, const conv_geom *g, float *x, float *w, float *b, float *y,
                               const vqz_conv_fusion *f, const char *op)
{
    dnnl_state *s;
    conv_entry *e;
    VQZ_TRY(state_get(ctx, op, &s));
    if (g->deconv)
        return convtr_forward(ctx, s, g, x, w, b, y, f, op);
    if (f && f->pre_act != VQZ_FUSED_NONE)
        return preact_forward(ctx, s, g, x, w, b, y, f, op);
    conv_key k = geom_key(ctx, g, K_CONV_FWD, b != NULL, f);
    VQZ_TRY(entry_get(s, &k, op, &e));
    /* oneDNN's direct kernels take only a few columns of implicit padding (its AVX2 kernel at most 3): a
     * dilated convolution padded by 9 falls back to im2col+GEMM, with its post-ops in scalar code. Padding
     * a copy of the input first lets the direct kernel run. Not for channels-last inputs: that path
     * (images) pads by 1. */
    conv_geom copy;
    int64_t lanes = f && f->x_layout == VQZ_LAYOUT_NC8 ? 8 : 1;
    if (e->generic && !geom_explicit_pad(g) && (g->pt | g->pb | g->pl | g->pr) != 0 &&
        (!f || f->x_layout != VQZ_LAYOUT_NHWC)) {
        copy = *g;
        copy.zero_pad_copy = 1;
        conv_key kc = geom_key(ctx, &copy, K_CONV_FWD, b != NULL, f);
        conv_entry *ec;
        VQZ_TRY(entry_get(s, &kc, op, &ec));
        if (!ec->generic) {
            g = &copy;
            e = ec;
        }
    }
    if (geom_explicit_pad(g))
        VQZ_TRY(padded_input(s, g, x, lanes, &x, op));
    if (e->y_prescale != 1.0f) {
        int64_t numel = g->n * g->co * g->oh * g->ow;
        float pre = e->y_prescale;
        #pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < numel; i++)
            y[i] *= pre;
    }
    float *user[3] = {x, w, y};
    return entry_run(s, e, user, b, 0, op);
}

/* About this many bytes of activated input per band of a pre-activated convolution: a few bands per
 * image at the decoder's full resolution, each in the last-level cache while the kernel reads it. */
#define PRE_BAND_BYTES (4 << 20)

static vqz_status pre_activate(vqz_nn_ctx *ctx, vqz_fused_act act, const float *x, float *out, int64_t count)
{
    vqz_tensor a = vqz_t1((float *)x, count), o = vqz_t1(out, count);
    return act == VQZ_FUSED_SILU ? vqz_silu_fwd(ctx, &a, &o) : vqz_elu_fwd(ctx, 1.0f, &a, &o);
}

/* conv(pre_act(x)). Channels-last rows are contiguous, so a band of output rows is computed from the
 * band of input rows it reads (with the halo of the kernel, the padding only at the image's edges),
 * activated into a small buffer, and written straight into its place in y. Other layouts activate the
 * whole input into a buffer first. */
static vqz_status preact_forward(vqz_nn_ctx *ctx, dnnl_state *s, const conv_geom *g, const float *x, float *w,
                                 float *b, float *y, const vqz_conv_fusion *f, const char *op)
{
    vqz_conv_fusion bf = *f;
    bf.pre_act = VQZ_FUSED_NONE;
    int64_t row = g->iw * g->ci, span = g->dh * (g->kh - 1) + 1; /* floats per input row; rows per tap */
    int banded = f->x_layout == VQZ_LAYOUT_NHWC && f->y_layout == VQZ_LAYOUT_NHWC && g->pt < span && g->pb < span;
    if (!banded) {
        int64_t count = g->n * g->ci * g->ih * g->iw;
        VQZ_TRY(slot_reserve(s, SLOT_PRE, (size_t)count * sizeof(float), op));
        VQZ_TRY(pre_activate(ctx, f->pre_act, x, s->slot[SLOT_PRE].p, count));
        return conv_forward(ctx, g, s->slot[SLOT_PRE].p, w, b, y, &bf, op);
    }
    int64_t band = PRE_BAND_BYTES / (int64_t)sizeof(float) / (row * g->sh);
    if (band < 1)
        band = 1;
    if (band > g->oh)
        band = g->oh;
    VQZ_TRY(slot_reserve(s, SLOT_PRE, (size_t)(((band - 1) * g->sh + span) * row) * sizeof(float), op));
    float *buf = s->slot[SLOT_PRE].p;
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t o0 = 0; o0 < g->oh; o0 += band) {
            int64_t o1 = o0 + band < g->oh ? o0 + band : g->oh;
            /* input rows first..last feed output rows o0..o1-1; those outside the image are padding */
            int64_t first = o0 * g->sh - g->pt, last = (o1 - 1) * g->sh - g->pt + span - 1;
            int64_t lo = first > 0 ? first : 0, hi = last < g->ih - 1 ? last : g->ih - 1;
            conv_geom bg = *g;
            bg.n = 1;
            bg.ih = hi - lo + 1;
            bg.oh = o1 - o0;
            bg.pt = lo - first;
            bg.pb = last - hi;
            VQZ_TRY(pre_activate(ctx, f->pre_act, x + (n * g->ih + lo) * row, buf, bg.ih * row));
            VQZ_TRY(conv_forward(ctx, &bg, buf, w, b, y + (n * g->oh + o0) * g->ow * g->co, &bf, op));
        }
    return VQZ_OK;
}

/* conv3x3(upsample2x(x)) as four 2x2 convolutions of x. Output row 2i + a of the upsampled-then-
 * convolved image reads upsampled rows 2i + a - 1 .. 2i + a + 1, i.e. x rows i - 1, i, i (a = 0: taps
 * w0 | w1 + w2 on rows i - 1, i) or i, i, i + 1 (a = 1: taps w0 + w1 | w2 on rows i, i + 1); zero padding
 * of the upsampled image is zero padding of x. Columns likewise, so phase (a, b) is a 2x2 convolution
 * with pads (1 - a, a) x (1 - b, b) giving an H x W image, interleaved into y. */
static vqz_status up2x_forward(vqz_nn_ctx *ctx, const conv_geom *g, const float *x, const float *w, const float *b,
                               float *y, const vqz_conv_fusion *f, const char *op)
{
    dnnl_state *st;
    VQZ_TRY(state_get(ctx, op, &st));
    int64_t n = g->n, ci = g->ci, co = g->co, h = g->ih, wd = g->iw, plane = h * wd, kk = ci * 4;
    VQZ_TRY(slot_reserve(st, SLOT_SUB_W, (size_t)(4 * co * kk) * sizeof(float), op));
    VQZ_TRY(slot_reserve(st, SLOT_SUB_Y, (size_t)(n * co * plane) * sizeof(float), op));
    float *ws = st->slot[SLOT_SUB_W].p, *ys = st->slot[SLOT_SUB_Y].p;
    /* tap t of the 3-tap axis goes to 2-tap position map[phase][t] */
    static const int map[2][3] = {{0, 1, 1}, {0, 0, 1}};
    memset(ws, 0, (size_t)(4 * co * kk) * sizeof(float));
    for (int ph = 0; ph < 4; ph++)
        for (int64_t o = 0; o < co; o++)
            for (int64_t i = 0; i < ci; i++) {
                const float *src = w + (o * ci + i) * 9;
                float *dst = ws + ((ph * co + o) * ci + i) * 4;
                for (int ty = 0; ty < 3; ty++)
                    for (int tx = 0; tx < 3; tx++)
                        dst[map[ph >> 1][ty] * 2 + map[ph & 1][tx]] += src[ty * 3 + tx];
            }
    /* the phase image is in y's layout, so the NHWC interleave moves whole pixels */
    for (int ph = 0; ph < 4; ph++) {
        int a = ph >> 1, bb = ph & 1;
        conv_geom pg = *g;
        pg.oh = h;
        pg.ow = wd;
        pg.kh = pg.kw = 2;
        pg.sh = pg.sw = pg.dh = pg.dw = 1;
        pg.pt = 1 - a;
        pg.pb = a;
        pg.pl = 1 - bb;
        pg.pr = bb;
        conv_entry *e;
        conv_key key = geom_key(ctx, &pg, K_CONV_FWD, b != NULL, f);
        VQZ_TRY(entry_get(st, &key, op, &e));
        float *user[3] = {(float *)x, ws + ph * co * kk, ys};
        VQZ_TRY(entry_run(st, e, user, (float *)b, 0, op));
        if (f->y_layout == VQZ_LAYOUT_NHWC) {
            size_t px = (size_t)co * sizeof(float);
            #pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < n * h; r++) {
                /* phase row r (image r / h, row i = r % h) is output row 2i + a of that image */
                const float *src = ys + r * wd * co;
                float *dst = y + ((2 * r + a) * 2 * wd + bb) * co;
                for (int64_t j = 0; j < wd; j++)
                    memcpy(dst + 2 * j * co, src + j * co, px);
            }
        } else {
            #pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < n * co * h; r++) {
                const float *src = ys + r * wd;
                float *dst = y + ((2 * r + a) * 2 * wd + bb);
                for (int64_t j = 0; j < wd; j++)
                    dst[2 * j] = src[j];
            }
        }
    }
    return VQZ_OK;
}

static void bias_grad_sum(const conv_geom *g, const float *dy, float *db)
{
    int64_t sp = g->oh * g->ow;
    #pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < g->co; c++) {
        double acc = 0;
        for (int64_t n = 0; n < g->n; n++) {
            const float *p = dy + (n * g->co + c) * sp;
            for (int64_t i = 0; i < sp; i++)
                acc += p[i];
        }
        db[c] += (float)acc;
    }
}

static vqz_status conv_backward(vqz_nn_ctx *ctx, const conv_geom *g, float *x, float *w, float *dy, float *dx,
                                float *dw, float *db, const char *op)
{
    dnnl_state *s;
    VQZ_TRY(state_get(ctx, op, &s));
    int explicit_pad = geom_explicit_pad(g);
    conv_entry *ed = NULL, *ew = NULL;
    if (dx) {
        conv_key k = geom_key(ctx, g, g->deconv ? K_DECONV_BWD_DATA : K_CONV_BWD_DATA, 0, NULL);
        VQZ_TRY(entry_get(s, &k, op, &ed));
    }
    if (dw) {
        conv_key k = geom_key(ctx, g, g->deconv ? K_DECONV_BWD_WEIGHTS : K_CONV_BWD_WEIGHTS, db != NULL, NULL);
        VQZ_TRY(entry_get(s, &k, op, &ew));
    }
    if (ed) {
        float *out = dx;
        if (explicit_pad) {
            size_t bytes = (size_t)(g->n * g->ci * (g->ih + g->pt + g->pb) * (g->iw + g->pl + g->pr)) *
                           sizeof(float);
            VQZ_TRY(slot_reserve(s, SLOT_PADGRAD, bytes, op));
            out = s->slot[SLOT_PADGRAD].p;
        }
        float *user[3] = {dy, w, out};
        VQZ_TRY(entry_run(s, ed, user, NULL, 0, op));
        if (explicit_pad)
            fold_planes(out, dx, g->n * g->ci, g->ih, g->iw, g->pt, g->pb, g->pl, g->pr, g->mode);
    }
    if (ew) {
        if (explicit_pad)
            VQZ_TRY(padded_input(s, g, x, 1, &x, op));
        /* The backward-data pass left dy in the DST slot; reuse it when both want the same layout. */
        unsigned skip = 0;
        if (ed && ed->io[0].reorder && ew->io[1].reorder &&
            dnnl_memory_desc_equal(&ed->io[0].prim_md, &ew->io[1].prim_md))
            skip = 1u << 1;
        float *user[3] = {x, dy, dw};
        VQZ_TRY(entry_run(s, ew, user, db, skip, op));
    } else if (db) {
        bias_grad_sum(g, dy, db);
    }
    return VQZ_OK;
}

/* --------------------------------------------------------------------------- validation */

static const char *shape_str(const vqz_tensor *t, char *buf, size_t size)
{
    size_t off = 0;
    off += (size_t)snprintf(buf + off, size - off, "[");
    for (int i = 0; i < t->ndim && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (off < size)
        snprintf(buf + off, size - off, "]");
    return buf;
}

static int positive_dims(const vqz_tensor *t)
{
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] <= 0)
            return 0;
    return 1;
}

/* The tensor exists, has rank ndim and positive dimensions. */
static vqz_status check_tensor(const vqz_tensor *t, int ndim, const char *op, const char *name)
{
    char b[96];
    VQZ_FAIL_IF(!t, VQZ_ERR_INVALID_ARG, "%s: %s is NULL", op, name);
    if (t->ndim < 1 || t->ndim > VQZ_MAX_DIMS)
        return vqz_fail(VQZ_ERR_SHAPE, "%s: %s has invalid rank %d", op, name, t->ndim);
    if (t->ndim != ndim)
        return vqz_fail(VQZ_ERR_SHAPE, "%s: %s %s must have %d dimensions, has %d", op, name,
                        shape_str(t, b, sizeof b), ndim, t->ndim);
    if (!positive_dims(t))
        return vqz_fail(VQZ_ERR_SHAPE, "%s: %s %s has a non-positive dimension", op, name,
                        shape_str(t, b, sizeof b));
    return VQZ_OK;
}

/* t has exactly the given shape (ndim entries of want). */
static vqz_status check_shape(const vqz_tensor *t, int ndim, const int64_t *want, const char *op,
                              const char *name, const char *ref_name, const vqz_tensor *ref)
{
    VQZ_FAIL_IF(!t, VQZ_ERR_INVALID_ARG, "%s: %s is NULL", op, name);
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == want[i];
    if (ok)
        return VQZ_OK;
    vqz_tensor w = {NULL, ndim, {0}, VQZ_CPU};
    for (int i = 0; i < ndim; i++)
        w.shape[i] = want[i];
    char b1[96], b2[96], b3[96];
    return vqz_fail(VQZ_ERR_SHAPE, "%s: %s is %s but must be %s to fit %s %s", op, name,
                    shape_str(t, b1, sizeof b1), shape_str(&w, b2, sizeof b2), ref_name,
                    shape_str(ref, b3, sizeof b3));
}

/* After shapes pass: the device, then the data pointers, of every non-NULL tensor. */
static vqz_status check_devices(const vqz_nn_ctx *ctx, const vqz_tensor *const *t, const char *const *names,
                                int count, const char *op)
{
    for (int i = 0; i < count; i++) {
        if (!t[i])
            continue;
        VQZ_FAIL_IF(t[i]->device != ctx->device, VQZ_ERR_INVALID_ARG, "%s: %s is not a %s tensor", op, names[i],
                    ctx->device == VQZ_CUDA ? "CUDA" : "CPU");
        VQZ_FAIL_IF(!t[i]->data, VQZ_ERR_INVALID_ARG, "%s: %s has no data", op, names[i]);
    }
    return VQZ_OK;
}

static vqz_status check_pad_mode(vqz_pad_mode m, const char *op)
{
    VQZ_FAIL_IF(m != VQZ_PAD_ZERO && m != VQZ_PAD_REPLICATE && m != VQZ_PAD_REFLECT, VQZ_ERR_INVALID_ARG,
                "%s: unknown padding mode %d", op, (int)m);
    return VQZ_OK;
}

/* A fused forward's extra arguments: known layouts and activation, finite scales, zero padding only,
 * and x and y apart (the primitive reads x while it writes y). */
static vqz_status check_fusion(const vqz_conv_fusion *f, const conv_geom *g, const vqz_tensor *x,
                               const vqz_tensor *y, const char *op)
{
    VQZ_FAIL_IF(!f, VQZ_ERR_INVALID_ARG, "%s: fusion is NULL", op);
    VQZ_FAIL_IF((unsigned)f->x_layout > VQZ_LAYOUT_NC8 || (unsigned)f->y_layout > VQZ_LAYOUT_NC8, VQZ_ERR_INVALID_ARG,
                "%s: unknown layouts %d, %d", op, (int)f->x_layout, (int)f->y_layout);
    VQZ_FAIL_IF((f->x_layout == VQZ_LAYOUT_NC8 && g->ci % 8) || (f->y_layout == VQZ_LAYOUT_NC8 && g->co % 8),
                VQZ_ERR_INVALID_ARG, "%s: the 8-channel blocked layout needs channels in multiples of 8 (%lld in, %lld out)",
                op, (long long)g->ci, (long long)g->co);
    VQZ_FAIL_IF(f->act != VQZ_FUSED_NONE && f->act != VQZ_FUSED_SILU && f->act != VQZ_FUSED_ELU,
                VQZ_ERR_INVALID_ARG, "%s: unknown fused activation %d", op, (int)f->act);
    VQZ_FAIL_IF(f->pre_act != VQZ_FUSED_NONE && f->pre_act != VQZ_FUSED_SILU && f->pre_act != VQZ_FUSED_ELU,
                VQZ_ERR_INVALID_ARG, "%s: unknown fused input activation %d", op, (int)f->pre_act);
    VQZ_FAIL_IF(!isfinite(f->out_scale) || (f->residual && !isfinite(f->res_scale)), VQZ_ERR_INVALID_ARG,
                "%s: scales must be finite (out %g, residual %g)", op, (double)f->out_scale, (double)f->res_scale);
    VQZ_FAIL_IF(g->mode != VQZ_PAD_ZERO, VQZ_ERR_UNSUPPORTED,
                "%s: fused convolutions pad with zeros only, not mode %d", op, (int)g->mode);
    const float *xa = x->data, *xb = xa + vqz_tensor_numel(x), *ya = y->data, *yb = ya + vqz_tensor_numel(y);
    VQZ_FAIL_IF(xa < yb && ya < xb, VQZ_ERR_INVALID_ARG, "%s: x and y overlap", op);
    return VQZ_OK;
}

/* ---------------------------------------------------------------------------------- CUDA twin */
#ifdef VQZ_HAVE_CUDA
/* The fusion in the CUDA twin's terms; the twin keeps activations in NCHW / NCT only (the graph plans
 * CUDA activations that way). */
static vqz_status cuda_fusion(const vqz_conv_fusion *f, vqz_cuda_fusion *cf, const char *op)
{
    if (!f)
        return VQZ_OK;
    VQZ_FAIL_IF(f->x_layout != VQZ_LAYOUT_NCHW || f->y_layout != VQZ_LAYOUT_NCHW, VQZ_ERR_UNSUPPORTED,
                "%s: the CUDA convolutions take channels-first data only", op);
    cf->residual = f->residual;
    cf->res_scale = f->res_scale;
    cf->out_scale = f->out_scale;
    cf->act = (int)f->act;
    cf->pre_act = (int)f->pre_act;
    return VQZ_OK;
}

static vqz_status cuda_forward(vqz_nn_ctx *ctx, const conv_geom *g, int dims, const float *x, const float *w,
                               const float *b, float *y, const vqz_conv_fusion *f, const char *op)
{
    vqz_cuda_fusion cf;
    VQZ_TRY(cuda_fusion(f, &cf, op));
    const vqz_cuda_fusion *fp = f ? &cf : NULL;
    if (g->deconv)
        return vqz_cuda_convtr1d_fwd(ctx->cuda, x, w, b, y, g->n, g->ci, g->iw, g->co, (int)g->kw, (int)g->sw,
                                     (int)g->pl, (int)g->pr);
    if (dims == 1)
        return vqz_cuda_conv1d_fwd(ctx->cuda, x, w, b, y, g->n, g->ci, g->iw, g->co, (int)g->kw, (int)g->sw,
                                   (int)g->pl, (int)g->pr, (int)g->dw, (int)g->mode, fp);
    return vqz_cuda_conv2d_fwd(ctx->cuda, x, w, b, y, g->n, g->ci, g->ih, g->iw, g->co, (int)g->kh, (int)g->sh,
                               (int)g->pt, (int)g->dh, (int)g->mode, fp);
}

static vqz_status cuda_backward(vqz_nn_ctx *ctx, const conv_geom *g, int dims, const float *x, const float *w,
                                const float *dy, float *dx, float *dw, float *db)
{
    if (g->deconv)
        return vqz_cuda_convtr1d_bwd(ctx->cuda, x, w, dy, dx, dw, db, g->n, g->ci, g->iw, g->co, (int)g->kw,
                                     (int)g->sw, (int)g->pl, (int)g->pr);
    if (dims == 1)
        return vqz_cuda_conv1d_bwd(ctx->cuda, x, w, dy, dx, dw, db, g->n, g->ci, g->iw, g->co, (int)g->kw,
                                   (int)g->sw, (int)g->pl, (int)g->pr, (int)g->dw, (int)g->mode);
    return vqz_cuda_conv2d_bwd(ctx->cuda, x, w, dy, dx, dw, db, g->n, g->ci, g->ih, g->iw, g->co, (int)g->kh,
                               (int)g->sh, (int)g->pt, (int)g->dh, (int)g->mode);
}
#endif

/* ------------------------------------------------------------------------------------ conv2d */

static vqz_status conv2d_geom(const vqz_nn_ctx *ctx, const vqz_conv2d_params *p, const vqz_tensor *x,
                              const vqz_tensor *w, const vqz_tensor *b, const char *op, conv_geom *g)
{
    char b1[96], b2[96];
    VQZ_FAIL_IF(!ctx || !p, VQZ_ERR_INVALID_ARG, "%s: ctx or params is NULL", op);
    VQZ_FAIL_IF(p->stride < 1 || p->dilation < 1 || p->pad < 0, VQZ_ERR_INVALID_ARG,
                "%s: stride %d, dilation %d must be >= 1 and pad %d >= 0", op, p->stride, p->dilation, p->pad);
    VQZ_TRY(check_pad_mode(p->pad_mode, op));
    VQZ_TRY(check_tensor(x, 4, op, "x"));
    VQZ_TRY(check_tensor(w, 4, op, "w"));
    if (x->shape[1] != w->shape[1])
        return vqz_fail(VQZ_ERR_SHAPE, "%s: x %s has %lld channels but w %s expects %lld", op,
                        shape_str(x, b1, sizeof b1), (long long)x->shape[1], shape_str(w, b2, sizeof b2),
                        (long long)w->shape[1]);
    memset(g, 0, sizeof *g);
    g->n = x->shape[0];
    g->ci = x->shape[1];
    g->ih = x->shape[2];
    g->iw = x->shape[3];
    g->co = w->shape[0];
    g->kh = w->shape[2];
    g->kw = w->shape[3];
    g->sh = g->sw = p->stride;
    g->dh = g->dw = p->dilation;
    g->pt = g->pb = g->pl = g->pr = p->pad;
    g->mode = p->pad ? p->pad_mode : VQZ_PAD_ZERO;
    g->oh = (g->ih + 2 * g->pt - g->dh * (g->kh - 1) - 1);
    g->ow = (g->iw + 2 * g->pl - g->dw * (g->kw - 1) - 1);
    if (g->oh < 0 || g->ow < 0)
        return vqz_fail(VQZ_ERR_SHAPE, "%s: x %s with pad %d is smaller than w %s with dilation %d", op,
                        shape_str(x, b1, sizeof b1), p->pad, shape_str(w, b2, sizeof b2), p->dilation);
    g->oh = g->oh / g->sh + 1;
    g->ow = g->ow / g->sw + 1;
    if (g->mode == VQZ_PAD_REFLECT && (p->pad >= g->ih || p->pad >= g->iw))
        return vqz_fail(VQZ_ERR_SHAPE, "%s: reflect padding %d needs an input larger than the pad, x is %s", op,
                        p->pad, shape_str(x, b1, sizeof b1));
    if (b) {
        int64_t want[1] = {g->co};
        VQZ_TRY(check_shape(b, 1, want, op, "b", "w", w));
    }
    return VQZ_OK;
}

vqz_status vqz_conv2d_fwd(vqz_nn_ctx *ctx, const vqz_conv2d_params *p, const vqz_tensor *x,
                          const vqz_tensor *w, const vqz_tensor *b, vqz_tensor *y)
{
    const char *op = "conv2d_fwd";
    conv_geom g;
    VQZ_TRY(conv2d_geom(ctx, p, x, w, b, op, &g));
    int64_t want[4] = {g.n, g.co, g.oh, g.ow};
    VQZ_TRY(check_shape(y, 4, want, op, "y", "x", x));
    const vqz_tensor *t[] = {x, w, b, y};
    const char *names[] = {"x", "w", "b", "y"};
    VQZ_TRY(check_devices(ctx, t, names, 4, op));
    VQZ_ON_CUDA(ctx, cuda_forward(ctx, &g, x->ndim == 3 ? 1 : 2, x->data, w->data, b ? b->data : NULL, y->data,
                                  NULL, op));
    vqz_nn_ctx_enter(ctx);
    return conv_forward(ctx, &g, x->data, w->data, b ? b->data : NULL, y->data, NULL, op);
}

vqz_status vqz_conv2d_fwd_fused(vqz_nn_ctx *ctx, const vqz_conv2d_params *p, const vqz_conv_fusion *f,
                                const vqz_tensor *x, const vqz_tensor *w, const vqz_tensor *b, vqz_tensor *y)
{
    const char *op = "conv2d_fwd_fused";
    conv_geom g;
    VQZ_TRY(conv2d_geom(ctx, p, x, w, b, op, &g));
    int64_t want[4] = {g.n, g.co, g.oh, g.ow};
    VQZ_TRY(check_shape(y, 4, want, op, "y", "x", x));
    const vqz_tensor *t[] = {x, w, b, y};
    const char *names[] = {"x", "w", "b", "y"};
    VQZ_TRY(check_devices(ctx, t, names, 4, op));
    VQZ_TRY(check_fusion(f, &g, x, y, op));
    VQZ_ON_CUDA(ctx, cuda_forward(ctx, &g, x->ndim == 3 ? 1 : 2, x->data, w->data, b ? b->data : NULL, y->data,
                                  f, op));
    vqz_nn_ctx_enter(ctx);
    return conv_forward(ctx, &g, x->data, w->data, b ? b->data : NULL, y->data, f, op);
}

vqz_status vqz_conv2d_up2x_fwd_fused(vqz_nn_ctx *ctx, const vqz_conv_fusion *f, const vqz_tensor *x,
                                     const vqz_tensor *w, const vqz_tensor *b, vqz_tensor *y)
{
    const char *op = "conv2d_up2x_fwd_fused";
    char b1[96];
    conv_geom g;
    vqz_conv2d_params p = {1, 1, 1, VQZ_PAD_ZERO};
    VQZ_TRY(conv2d_geom(ctx, &p, x, w, b, op, &g));
    VQZ_FAIL_IF(g.kh != 3 || g.kw != 3, VQZ_ERR_SHAPE, "%s: w %s must be a 3x3 kernel", op, shape_str(w, b1, sizeof b1));
    int64_t want[4] = {g.n, g.co, 2 * g.ih, 2 * g.iw};
    VQZ_TRY(check_shape(y, 4, want, op, "y", "x", x));
    const vqz_tensor *t[] = {x, w, b, y};
    const char *names[] = {"x", "w", "b", "y"};
    VQZ_TRY(check_devices(ctx, t, names, 4, op));
    VQZ_TRY(check_fusion(f, &g, x, y, op));
    VQZ_FAIL_IF(f->residual || f->pre_act != VQZ_FUSED_NONE, VQZ_ERR_UNSUPPORTED,
                "%s: no residual sum or input activation with an upsampling convolution", op);
    VQZ_FAIL_IF(f->x_layout == VQZ_LAYOUT_NC8 || f->y_layout == VQZ_LAYOUT_NC8, VQZ_ERR_UNSUPPORTED,
                "%s: an upsampling convolution takes NCHW or NHWC data", op);
    if (ctx->device == VQZ_CUDA) {
        VQZ_TRY(vqz_nn_cuda_ready(ctx, op));
#ifdef VQZ_HAVE_CUDA
        vqz_cuda_fusion cf;
        VQZ_TRY(cuda_fusion(f, &cf, op));
        return vqz_cuda_conv2d_up2x_fwd(ctx->cuda, x->data, w->data, b ? b->data : NULL, y->data, g.n, g.ci, g.ih,
                                        g.iw, g.co, &cf);
#endif
    }
    vqz_nn_ctx_enter(ctx);
    return up2x_forward(ctx, &g, x->data, w->data, b ? b->data : NULL, y->data, f, op);
}

vqz_status vqz_conv2d_bwd(vqz_nn_ctx *ctx, const vqz_conv2d_params *p, const vqz_tensor *x,
                          const vqz_tensor *w, const vqz_tensor *dy, vqz_tensor *dx, vqz_tensor *dw,
                          vqz_tensor *db)
{
    const char *op = "conv2d_bwd";
    conv_geom g;
    VQZ_TRY(conv2d_geom(ctx, p, x, w, NULL, op, &g));
    int64_t want[4] = {g.n, g.co, g.oh, g.ow};
    VQZ_TRY(check_shape(dy, 4, want, op, "dy", "x", x));
    if (dx)
        VQZ_TRY(check_shape(dx, 4, x->shape, op, "dx", "x", x));
    if (dw)
        VQZ_TRY(check_shape(dw, 4, w->shape, op, "dw", "w", w));
    if (db) {
        int64_t bw[1] = {g.co};
        VQZ_TRY(check_shape(db, 1, bw, op, "db", "w", w));
    }
    const vqz_tensor *t[] = {x, w, dy, dx, dw, db};
    const char *names[] = {"x", "w", "dy", "dx", "dw", "db"};
    VQZ_TRY(check_devices(ctx, t, names, 6, op));
    VQZ_ON_CUDA(ctx, cuda_backward(ctx, &g, x->ndim == 3 ? 1 : 2, x->data, w->data, dy->data, dx ? dx->data : NULL,
                                   dw ? dw->data : NULL, db ? db->data : NULL));
    vqz_nn_ctx_enter(ctx);
    return conv_backward(ctx, &g, x->data, w->data, dy->data, dx ? dx->data : NULL, dw ? dw->data : NULL,
                         db ? db->data : NULL, op);
}

/* ------------------------------------------------------------------------------------ conv1d */

static vqz_status conv1d_geom(const vqz_nn_ctx *ctx, const vqz_conv1d_params *p, const vqz_tensor *x,
                              const vqz_tensor *w, const vqz_tensor *b, const char *op, conv_geom *g)
{
    char b1[96], b2[96];
    VQZ_FAIL_IF(!ctx || !p, VQZ_ERR_INVALID_ARG, "%s: ctx or params is NULL", op);
    VQZ_FAIL_IF(p->stride < 1 || p->dilation < 1 || p->pad_left < 0 || p->pad_right < 0, VQZ_ERR_INVALID_ARG,
                "%s: stride %d, dilation %d must be >= 1 and pads %d, %d >= 0", op, p->stride, p->dilation,
                p->pad_left, p->pad_right);
    VQZ_TRY(check_pad_mode(p->pad_mode, op));
    VQZ_TRY(check_tensor(x, 3, op, "x"));
    VQZ_TRY(check_tensor(w, 3, op, "w"));
    if (x->shape[1] != w->shape[1])
        return vqz_fail(VQZ_ERR_SHAPE, "%s: x %s has %lld channels but w %s expects %lld", op,
                        shape_str(x, b1, sizeof b1), (long long)x->shape[1], shape_str(w, b2, sizeof b2),
                        (long long)w->shape[1]);
    memset(g, 0, sizeof *g);
    g->n = x->shape[0];
    g->ci = x->shape[1];
    g->ih = 1;
    g->iw = x->shape[2];
    g->co = w->shape[0];
    g->kh = 1;
    g->kw = w->shape[2];
    g->sh = 1;
    g->sw = p->stride;
    g->dh = 1;
    g->dw = p->dilation;
    g->pl = p->pad_left;
    g->pr = p->pad_right;
    g->mode = (p->pad_left | p->pad_right) ? p->pad_mode : VQZ_PAD_ZERO;
    g->oh = 1;
    g->ow = g->iw + g->pl + g->pr - g->dw * (g->kw - 1) - 1;
    if (g->ow < 0)
        return vqz_fail(VQZ_ERR_SHAPE, "%s: x %s with pads %d+%d is shorter than w %s with dilation %d", op,
                        shape_str(x, b1, sizeof b1), p->pad_left, p->pad_right, shape_str(w, b2, sizeof b2),
                        p->dilation);
    g->ow = g->ow / g->sw + 1;
    if (g->mode == VQZ_PAD_REFLECT && (p->pad_left >= g->iw || p->pad_right >= g->iw))
        return vqz_fail(VQZ_ERR_SHAPE, "%s: reflect padding %d+%d needs an input longer than the pad, x is %s",
                        op, p->pad_left, p->pad_right, shape_str(x, b1, sizeof b1));
    if (b) {
        int64_t want[1] = {g->co};
        VQZ_TRY(check_shape(b, 1, want, op, "b", "w", w));
    }
    return VQZ_OK;
}

vqz_status vqz_conv1d_fwd(vqz_nn_ctx *ctx, const vqz_conv1d_params *p, const vqz_tensor *x,
                          const vqz_tensor *w, const vqz_tensor *b, vqz_tensor *y)
{
    const char *op = "conv1d_fwd";
    conv_geom g;
    VQZ_TRY(conv1d_geom(ctx, p, x, w, b, op, &g));
    int64_t want[3] = {g.n, g.co, g.ow};
    VQZ_TRY(check_shape(y, 3, want, op, "y", "x", x));
    const vqz_tensor *t[] = {x, w, b, y};
    const char *names[] = {"x", "w", "b", "y"};
    VQZ_TRY(check_devices(ctx, t, names, 4, op));
    VQZ_ON_CUDA(ctx, cuda_forward(ctx, &g, x->ndim == 3 ? 1 : 2, x->data, w->data, b ? b->data : NULL, y->data,
                                  NULL, op));
    vqz_nn_ctx_enter(ctx);
    return conv_forward(ctx, &g, x->data, w->data, b ? b->data : NULL, y->data, NULL, op);
}

vqz_status vqz_conv1d_fwd_fused(vqz_nn_ctx *ctx, const vqz_conv1d_params *p, const vqz_conv_fusion *f,
                                const vqz_tensor *x, const vqz_tensor *w, const vqz_tensor *b, vqz_tensor *y)
{
    const char *op = "conv1d_fwd_fused";
    conv_geom g;
    VQZ_TRY(conv1d_geom(ctx, p, x, w, b, op, &g));
    int64_t want[3] = {g.n, g.co, g.ow};
    VQZ_TRY(check_shape(y, 3, want, op, "y", "x", x));
    const vqz_tensor *t[] = {x, w, b, y};
    const char *names[] = {"x", "w", "b", "y"};
    VQZ_TRY(check_devices(ctx, t, names, 4, op));
    VQZ_TRY(check_fusion(f, &g, x, y, op));
    VQZ_ON_CUDA(ctx, cuda_forward(ctx, &g, x->ndim == 3 ? 1 : 2, x->data, w->data, b ? b->data : NULL, y->data,
                                  f, op));
    vqz_nn_ctx_enter(ctx);
    return conv_forward(ctx, &g, x->data, w->data, b ? b->data : NULL, y->data, f, op);
}

vqz_status vqz_conv1d_bwd(vqz_nn_ctx *ctx, const vqz_conv1d_params *p, const vqz_tensor *x,
                          const vqz_tensor *w, const vqz_tensor *dy, vqz_tensor *dx, vqz_tensor *dw,
                          vqz_tensor *db)
{
    const char *op = "conv1d_bwd";
    conv_geom g;
    VQZ_TRY(conv1d_geom(ctx, p, x, w, NULL, op, &g));
    int64_t want[3] = {g.n, g.co, g.ow};
    VQZ_TRY(check_shape(dy, 3, want, op, "dy", "x", x));
    if (dx)
        VQZ_TRY(check_shape(dx, 3, x->shape, op, "dx", "x", x));
    if (dw)
        VQZ_TRY(check_shape(dw, 3, w->shape, op, "dw", "w", w));
    if (db) {
        int64_t bw[1] = {g.co};
        VQZ_TRY(check_shape(db, 1, bw, op, "db", "w", w));
    }
    const vqz_tensor *t[] = {x, w, dy, dx, dw, db};
    const char *names[] = {"x", "w", "dy", "dx", "dw", "db"};
    VQZ_TRY(check_devices(ctx, t, names, 6, op));
    VQZ_ON_CUDA(ctx, cuda_backward(ctx, &g, x->ndim == 3 ? 1 : 2, x->data, w->data, dy->data, dx ? dx->data : NULL,
                                   dw ? dw->data : NULL, db ? db->data : NULL));
    vqz_nn_ctx_enter(ctx);
    return conv_backward(ctx, &g, x->data, w->data, dy->data, dx ? dx->data : NULL, dw ? dw->data : NULL,
                         db ? db->data : NULL, op);
}

/* ------------------------------------------------------------------------- transposed conv1d */

static vqz_status convtr1d_geom(const vqz_nn_ctx *ctx, const vqz_convtr1d_params *p, const vqz_tensor *x,
                                const vqz_tensor *w, const vqz_tensor *b, const char *op, conv_geom *g)
{
    char b1[96], b2[96];
    VQZ_FAIL_IF(!ctx || !p, VQZ_ERR_INVALID_ARG, "%s: ctx or params is NULL", op);
    VQZ_FAIL_IF(p->stride < 1 || p->crop_left < 0 || p->crop_right < 0, VQZ_ERR_INVALID_ARG,
                "%s: stride %d must be >= 1 and crops %d, %d >= 0", op, p->stride, p->crop_left, p->crop_right);
    VQZ_TRY(check_tensor(x, 3, op, "x"));
    VQZ_TRY(check_tensor(w, 3, op, "w"));
    if (x->shape[1] != w->shape[0])
        return vqz_fail(VQZ_ERR_SHAPE, "%s: x %s has %lld channels but w %s (in, out, k) expects %lld", op,
                        shape_str(x, b1, sizeof b1), (long long)x->shape[1], shape_str(w, b2, sizeof b2),
                        (long long)w->shape[0]);
    memset(g, 0, sizeof *g);
    g->deconv = 1;
    g->n = x->shape[0];
    g->ci = x->shape[1];
    g->ih = 1;
    g->iw = x->shape[2];
    g->co = w->shape[1];
    g->kh = 1;
    g->kw = w->shape[2];
    g->sh = 1;
    g->sw = p->stride;
    g->dh = g->dw = 1;
    g->pl = p->crop_left;
    g->pr = p->crop_right;
    g->mode = VQZ_PAD_ZERO;
    g->oh = 1;
    g->ow = (g->iw - 1) * g->sw + g->kw - g->pl - g->pr;
    if (g->ow < 1)
        return vqz_fail(VQZ_ERR_SHAPE, "%s: crops %d+%d leave no output for x %s and w %s with stride %d", op,
                        p->crop_left, p->crop_right, shape_str(x, b1, sizeof b1), shape_str(w, b2, sizeof b2),
                        p->stride);
    if (b) {
        int64_t want[1] = {g->co};
        VQZ_TRY(check_shape(b, 1, want, op, "b", "w", w));
    }
    return VQZ_OK;
}

/* f: the fused entry point's layouts, NULL for the plain one */
static vqz_status convtr1d_forward(vqz_nn_ctx *ctx, const vqz_convtr1d_params *p, const vqz_conv_fusion *f,
                                   const vqz_tensor *x, const vqz_tensor *w, const vqz_tensor *b, vqz_tensor *y,
                                   const char *op)
{
    conv_geom g;
    VQZ_TRY(convtr1d_geom(ctx, p, x, w, b, op, &g));
    int64_t want[3] = {g.n, g.co, g.ow};
    VQZ_TRY(check_shape(y, 3, want, op, "y", "x", x));
    const vqz_tensor *t[] = {x, w, b, y};
    const char *names[] = {"x", "w", "b", "y"};
    VQZ_TRY(check_devices(ctx, t, names, 4, op));
    if (f) {
        VQZ_TRY(check_fusion(f, &g, x, y, op));
        VQZ_FAIL_IF(f->x_layout == VQZ_LAYOUT_NHWC || f->y_layout == VQZ_LAYOUT_NHWC || f->residual ||
                        f->out_scale != 1.0f || f->act != VQZ_FUSED_NONE || f->pre_act != VQZ_FUSED_NONE,
                    VQZ_ERR_UNSUPPORTED, "%s: a transposed convolution takes only NCHW or NC8 layouts from a fusion",
                    op);
    }
    VQZ_ON_CUDA(ctx, cuda_forward(ctx, &g, 1, x->data, w->data, b ? b->data : NULL, y->data, f, op));
    vqz_nn_ctx_enter(ctx);
    return conv_forward(ctx, &g, x->data, w->data, b ? b->data : NULL, y->data, f, op);
}

vqz_status vqz_convtr1d_fwd(vqz_nn_ctx *ctx, const vqz_convtr1d_params *p, const vqz_tensor *x,
                            const vqz_tensor *w, const vqz_tensor *b, vqz_tensor *y)
{
    return convtr1d_forward(ctx, p, NULL, x, w, b, y, "convtr1d_fwd");
}

vqz_status vqz_convtr1d_fwd_fused(vqz_nn_ctx *ctx, const vqz_convtr1d_params *p, const vqz_conv_fusion *f,
                                  const vqz_tensor *x, const vqz_tensor *w, const vqz_tensor *b, vqz_tensor *y)
{
    return convtr1d_forward(ctx, p, f, x, w, b, y, "convtr1d_fwd_fused");
}

vqz_status vqz_convtr1d_bwd(vqz_nn_ctx *ctx, const vqz_convtr1d_params *p, const vqz_tensor *x,
                            const vqz_tensor *w, const vqz_tensor *dy, vqz_tensor *dx, vqz_tensor *dw,
                            vqz_tensor *db)
{
    const char *op = "convtr1d_bwd";
    conv_geom g;
    VQZ_TRY(convtr1d_geom(ctx, p, x, w, NULL, op, &g));
    int64_t want[3] = {g.n, g.co, g.ow};
    VQZ_TRY(check_shape(dy, 3, want, op, "dy", "x", x));
    if (dx)
        VQZ_TRY(check_shape(dx, 3, x->shape, op, "dx", "x", x));
    if (dw)
        VQZ_TRY(check_shape(dw, 3, w->shape, op, "dw", "w", w));
    if (db) {
        int64_t bw[1] = {g.co};
        VQZ_TRY(check_shape(db, 1, bw, op, "db", "w", w));
    }
    const vqz_tensor *t[] = {x, w, dy, dx, dw, db};
    const char *names[] = {"x", "w", "dy", "dx", "dw", "db"};
    VQZ_TRY(check_devices(ctx, t, names, 6, op));
    VQZ_ON_CUDA(ctx, cuda_backward(ctx, &g, x->ndim == 3 ? 1 : 2, x->data, w->data, dy->data, dx ? dx->data : NULL,
                                   dw ? dw->data : NULL, db ? db->data : NULL));
    vqz_nn_ctx_enter(ctx);
    return conv_backward(ctx, &g, x->data, w->data, dy->data, dx ? dx->data : NULL, dw ? dw->data : NULL,
                         db ? db->data : NULL, op);
}
