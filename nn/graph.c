/* graph.c — building, memory planning and forward/backward execution of a static layer graph. */
#include "nn/graph.h"

#include <stdlib.h>
#include <string.h>

#include "common/status.h"

#define ALIGN_FLOATS 16 /* 64-byte alignment of every buffer in the arena */

static int64_t align_up(int64_t n)
{
    return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

void vqz_graph_init(vqz_graph *g, int dims)
{
    memset(g, 0, sizeof *g);
    g->dims = dims;
    g->input_slot = g->output_slot = -1;
}

void vqz_graph_free(vqz_graph *g)
{
    if (!g)
        return;
    free(g->nodes);
    free(g->slots);
    free(g->act_off);
    free(g->grad_off);
    free(g->arena);
    free(g->wn_w);
    free(g->wn_dw);
    memset(g, 0, sizeof *g);
}

static int new_slot(vqz_graph *g, int64_t channels, int producer)
{
    if (g->n_slots == g->cap_slots) {
        int cap = g->cap_slots ? 2 * g->cap_slots : 32;
        vqz_slot *s = realloc(g->slots, (size_t)cap * sizeof *s);
        if (!s)
            return -1;
        g->slots = s;
        g->cap_slots = cap;
    }
    vqz_slot *s = &g->slots[g->n_slots];
    memset(s, 0, sizeof *s);
    s->channels = channels;
    s->producer = producer;
    s->last_use = -1;
    g->output_slot = g->n_slots;
    return g->n_slots++;
}

/* Appends a node, creates its output slot with out_ch channels and marks its inputs used. */
static int push_node(vqz_graph *g, vqz_node *n, int64_t out_ch)
{
    if (n->in < 0 || (n->op == VQZ_NODE_ADD && n->in2 < 0))
        return -1;
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 32;
        vqz_node *nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn)
            return -1;
        g->nodes = nn;
        g->cap_nodes = cap;
    }
    int idx = g->n_nodes;
    int out = new_slot(g, out_ch, idx);
    if (out < 0)
        return -1;
    n->out = out;
    g->nodes[idx] = *n;
    g->n_nodes++;
    g->slots[n->in].last_use = idx;
    if (n->op == VQZ_NODE_ADD)
        g->slots[n->in2].last_use = idx;
    return out;
}

static vqz_node blank_node(vqz_node_op op, int in)
{
    vqz_node n;
    memset(&n, 0, sizeof n);
    n.op = op;
    n.in = in;
    n.in2 = -1;
    n.w = n.b = n.wn_v = n.wn_g = n.alpha = -1;
    n.dilation = 1;
    n.stride = 1;
    n.k = 1;
    n.scale = 1.0f;
    return n;
}

int vqz_graph_input(vqz_graph *g, int64_t channels)
{
    int s = new_slot(g, channels, -1);
    g->input_slot = s;
    return s;
}

int vqz_graph_conv(vqz_graph *g, int in, int64_t out_ch, int k, int stride, int pad_l, int pad_r,
                   int dilation, int w, int b, int wn_v, int wn_g)
{
    vqz_node n = blank_node(g->dims == 2 ? VQZ_NODE_CONV2D : VQZ_NODE_CONV1D, in);
    n.k = k;
    n.stride = stride;
    n.pad_l = pad_l;
    n.pad_r = pad_r;
    n.dilation = dilation;
    n.w = w;
    n.b = b;
    n.wn_v = wn_v;
    n.wn_g = wn_g;
    return push_node(g, &n, out_ch);
}

int vqz_graph_convtr1d(vqz_graph *g, int in, int64_t out_ch, int k, int stride, int crop_l, int crop_r,
                       int w, int b, int wn_v, int wn_g)
{
    vqz_node n = blank_node(VQZ_NODE_CONVTR1D, in);
    n.k = k;
    n.stride = stride;
    n.pad_l = crop_l;
    n.pad_r = crop_r;
    n.w = w;
    n.b = b;
    n.wn_v = wn_v;
    n.wn_g = wn_g;
    return push_node(g, &n, out_ch);
}

int vqz_graph_act(vqz_graph *g, int in, vqz_act act, int alpha)
{
    if (in < 0)
        return -1;
    vqz_node n = blank_node(VQZ_NODE_ACT, in);
    n.act = act;
    n.alpha = alpha;
    return push_node(g, &n, g->slots[in].channels);
}

int vqz_graph_add(vqz_graph *g, int a, int b, float scale)
{
    if (a < 0 || b < 0)
        return -1;
    vqz_node n = blank_node(VQZ_NODE_ADD, a);
    n.in2 = b;
    n.scale = scale;
    return push_node(g, &n, g->slots[a].channels);
}

int vqz_graph_upsample2x(vqz_graph *g, int in)
{
    if (in < 0)
        return -1;
    vqz_node n = blank_node(VQZ_NODE_UPSAMPLE2X, in);
    return push_node(g, &n, g->slots[in].channels);
}

/* Output spatial size of a node along one dimension. */
static int64_t node_out_size(const vqz_node *n, int64_t in)
{
    switch (n->op) {
    case VQZ_NODE_CONV2D:
    case VQZ_NODE_CONV1D:
        return (in + n->pad_l + n->pad_r - (int64_t)n->dilation * (n->k - 1) - 1) / n->stride + 1;
    case VQZ_NODE_CONVTR1D:
        return (in - 1) * n->stride + n->k - n->pad_l - n->pad_r;
    case VQZ_NODE_UPSAMPLE2X:
        return 2 * in;
    default:
        return in;
    }
}

/* Sets every slot's spatial size for an input h × w; fails when a layer's output would be empty. */
static vqz_status propagate_shapes(vqz_graph *g, int64_t h, int64_t w)
{
    g->slots[g->input_slot].h = h;
    g->slots[g->input_slot].w = w;
    for (int i = 0; i < g->n_nodes; i++) {
        const vqz_node *n = &g->nodes[i];
        const vqz_slot *in = &g->slots[n->in];
        vqz_slot *out = &g->slots[n->out];
        out->h = node_out_size(n, in->h);
        out->w = g->dims == 2 ? node_out_size(n, in->w) : 1;
        if (n->op == VQZ_NODE_ADD) {
            const vqz_slot *in2 = &g->slots[n->in2];
            if (in2->h != in->h || in2->w != in->w)
                return vqz_fail(VQZ_ERR_SHAPE, "graph: residual add of %lldx%lld and %lldx%lld at node %d",
                                (long long)in->h, (long long)in->w, (long long)in2->h, (long long)in2->w, i);
        }
        if (out->h <= 0 || out->w <= 0)
            return vqz_fail(VQZ_ERR_SHAPE, "graph: input %lldx%lld is too small (node %d output would be empty)",
                            (long long)h, (long long)w, i);
    }
    return VQZ_OK;
}

static int64_t slot_floats(const vqz_graph *g, int s, int64_t n)
{
    const vqz_slot *sl = &g->slots[s];
    return n * sl->channels * sl->h * sl->w;
}

/* First-fit placement of buffers with lifetimes [start, end] (inclusive) in one region; writes
 * offsets relative to the region start and returns the region's size. */
typedef struct {
    int64_t size, start, end, off;
} interval;

static int64_t first_fit(interval *iv, int n)
{
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (iv[i].size == 0) {
            iv[i].off = 0;
            continue;
        }
        int64_t off = 0;
        /* restart the scan whenever a conflicting live buffer overlaps the candidate offset */
        for (int moved = 1; moved;) {
            moved = 0;
            for (int j = 0; j < i; j++) {
                if (iv[j].size == 0 || iv[j].end < iv[i].start || iv[j].start > iv[i].end)
                    continue;
                if (off < iv[j].off + iv[j].size && iv[j].off < off + iv[i].size) {
                    off = iv[j].off + iv[j].size;
                    moved = 1;
                }
            }
        }
        iv[i].off = off;
        if (off + iv[i].size > total)
            total = off + iv[i].size;
    }
    return total;
}

vqz_status vqz_graph_plan(vqz_graph *g, int64_t n, int64_t h, int64_t w, int train)
{
    VQZ_FAIL_IF(g->input_slot < 0 || g->n_nodes == 0, VQZ_ERR_INTERNAL, "graph: plan of an empty graph");
    VQZ_FAIL_IF(n <= 0 || h <= 0 || w <= 0, VQZ_ERR_SHAPE, "graph: invalid input size %lldx%lldx%lld",
                (long long)n, (long long)h, (long long)w);
    if (g->arena && g->plan_n == n && g->plan_h == h && g->plan_w == w && g->plan_train == train)
        return VQZ_OK;
    VQZ_TRY(propagate_shapes(g, h, w));

    int ns = g->n_slots;
    interval *iv = calloc((size_t)ns, sizeof *iv);
    int64_t *act_off = realloc(g->act_off, (size_t)ns * sizeof *act_off);
    if (act_off)
        g->act_off = act_off;
    int64_t *grad_off = realloc(g->grad_off, (size_t)ns * sizeof *grad_off);
    if (grad_off)
        g->grad_off = grad_off;
    if (!iv || !act_off || !grad_off) {
        free(iv);
        return vqz_fail(VQZ_ERR_NOMEM, "graph: out of memory planning %d slots", ns);
    }

    /* activations: slot s lives from its producer to its last reader (inference) or to the end of the
     * backward pass (training, where every activation is read again) */
    int end = g->n_nodes;
    for (int s = 0; s < ns; s++) {
        iv[s].size = align_up(slot_floats(g, s, n));
        iv[s].start = g->slots[s].producer;
        iv[s].end = (train || s == g->output_slot) ? end : g->slots[s].last_use;
        if (s == g->input_slot)
            iv[s].end = train ? end : g->slots[s].last_use;
    }
    /* inference: an activation or residual add whose input dies at that node writes in place (the ops
     * allow it), so a chain of them shares one buffer; root[s] is the slot whose buffer s uses */
    int *root = malloc((size_t)ns * sizeof *root);
    if (!root) {
        free(iv);
        return vqz_fail(VQZ_ERR_NOMEM, "graph: out of memory planning %d slots", ns);
    }
    for (int s = 0; s < ns; s++)
        root[s] = s;
    if (!train) {
        for (int i = 0; i < g->n_nodes; i++) {
            const vqz_node *nd = &g->nodes[i];
            if (nd->op != VQZ_NODE_ACT && nd->op != VQZ_NODE_ADD)
                continue;
            int cands[2] = {nd->in, nd->op == VQZ_NODE_ADD ? nd->in2 : -1};
            for (int c = 0; c < 2; c++) {
                int a = cands[c];
                if (a >= 0 && g->slots[a].last_use == i && iv[a].size == iv[nd->out].size &&
                    !(nd->op == VQZ_NODE_ADD && nd->in == nd->in2)) {
                    root[nd->out] = root[a];
                    break;
                }
            }
        }
        for (int s = 0; s < ns; s++)
            if (root[s] != s) {
                if (iv[s].end > iv[root[s]].end)
                    iv[root[s]].end = iv[s].end;
                iv[s].size = 0;
            }
    }
    int64_t act_total = first_fit(iv, ns);
    int64_t max_slot = 0;
    for (int s = 0; s < ns; s++) {
        g->act_off[s] = iv[root[s]].off;
        if (iv[s].size > max_slot)
            max_slot = iv[s].size;
    }
    free(root);

    int64_t grad_total = 0;
    if (train) {
        /* gradients in reverse time r = n_nodes - 1 - node: the gradient of slot s is first written by
         * the backward of its last reader and consumed by the backward of its producer */
        for (int s = 0; s < ns; s++) {
            const vqz_slot *sl = &g->slots[s];
            int born = (s == g->output_slot) ? -1 : g->n_nodes - 1 - sl->last_use;
            int dies = (sl->producer < 0) ? g->n_nodes : g->n_nodes - 1 - sl->producer;
            iv[s].size = align_up(slot_floats(g, s, n));
            iv[s].start = born;
            iv[s].end = dies;
        }
        grad_total = first_fit(iv, ns);
        for (int s = 0; s < ns; s++)
            g->grad_off[s] = act_total + iv[s].off;
    }
    free(iv);

    g->scratch_off = act_total + grad_total;
    int64_t total = g->scratch_off + (train ? max_slot : 0);
    if (total > g->arena_cap) {
        free(g->arena);
        g->arena = NULL;
        g->arena_cap = 0;
        if (posix_memalign((void **)&g->arena, 64, (size_t)total * sizeof(float)) != 0) {
            g->arena = NULL;
            return vqz_fail(VQZ_ERR_NOMEM, "graph: cannot allocate a %.1f MiB activation arena",
                            (double)total * 4 / 1048576.0);
        }
        g->arena_cap = total;
    }
    g->arena_floats = total;
    g->plan_n = n;
    g->plan_h = h;
    g->plan_w = w;
    g->plan_train = train;
    return VQZ_OK;
}

static vqz_tensor slot_view(const vqz_graph *g, int s, float *data)
{
    const vqz_slot *sl = &g->slots[s];
    if (g->dims == 2)
        return vqz_t4(data, g->plan_n, sl->channels, sl->h, sl->w);
    return vqz_t3(data, g->plan_n, sl->channels, sl->h);
}

vqz_tensor vqz_graph_slot(const vqz_graph *g, int slot)
{
    return slot_view(g, slot, g->arena + g->act_off[slot]);
}

vqz_tensor vqz_graph_slot_grad(const vqz_graph *g, int slot)
{
    return slot_view(g, slot, g->arena + g->grad_off[slot]);
}

/* Ensures the weight-norm buffers exist; offsets are assigned on first use. */
static vqz_status ensure_wn(vqz_graph *g, const vqz_param_views *pv)
{
    if (g->wn_w)
        return VQZ_OK;
    int64_t total = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        vqz_node *n = &g->nodes[i];
        if (n->wn_v < 0)
            continue;
        n->wn_off = total;
        total += align_up(vqz_tensor_numel(&pv->w[n->wn_v]));
    }
    g->wn_floats = total;
    if (total == 0)
        return VQZ_OK;
    g->wn_w = calloc((size_t)total, sizeof(float));
    g->wn_dw = calloc((size_t)total, sizeof(float));
    if (!g->wn_w || !g->wn_dw) {
        free(g->wn_w);
        free(g->wn_dw);
        g->wn_w = g->wn_dw = NULL;
        return vqz_fail(VQZ_ERR_NOMEM, "graph: out of memory for weight-norm buffers");
    }
    return VQZ_OK;
}

/* The effective weight of a conv node: its parameter, or the weight-norm derived buffer. */
static vqz_tensor node_weight(const vqz_graph *g, const vqz_param_views *pv, const vqz_node *n, int grad)
{
    if (n->wn_v < 0)
        return grad ? pv->g[n->w] : pv->w[n->w];
    vqz_tensor t = pv->w[n->wn_v];
    t.data = (grad ? g->wn_dw : g->wn_w) + n->wn_off;
    return t;
}

vqz_status vqz_graph_forward(vqz_nn_ctx *ctx, vqz_graph *g, const vqz_param_views *pv, const vqz_tensor *x)
{
    VQZ_FAIL_IF(!g->arena, VQZ_ERR_INTERNAL, "graph: forward before plan");
    vqz_tensor in = vqz_graph_slot(g, g->input_slot);
    VQZ_FAIL_IF(!vqz_tensor_same_shape(x, &in), VQZ_ERR_SHAPE,
                "graph: input [%lld,%lld,%lld,%lld] does not match the plan [%lld,%lld,%lld,%lld]",
                (long long)x->shape[0], (long long)x->shape[1], (long long)x->shape[2],
                (long long)x->shape[3], (long long)in.shape[0], (long long)in.shape[1],
                (long long)in.shape[2], (long long)in.shape[3]);
    if (x->data != in.data)
        memcpy(in.data, x->data, (size_t)vqz_tensor_numel(x) * sizeof(float));
    VQZ_TRY(ensure_wn(g, pv));

    for (int i = 0; i < g->n_nodes; i++) {
        const vqz_node *n = &g->nodes[i];
        vqz_tensor a = vqz_graph_slot(g, n->in);
        vqz_tensor y = vqz_graph_slot(g, n->out);
        const vqz_tensor *bias = n->b >= 0 ? &pv->w[n->b] : NULL;
        if (n->wn_v >= 0) {
            vqz_tensor wd = node_weight(g, pv, n, 0);
            VQZ_TRY(vqz_weight_norm_fwd(ctx, &pv->w[n->wn_v], &pv->w[n->wn_g], &wd));
        }
        switch (n->op) {
        case VQZ_NODE_CONV2D: {
            vqz_conv2d_params p = {n->stride, n->pad_l, n->dilation, VQZ_PAD_ZERO};
            vqz_tensor w = node_weight(g, pv, n, 0);
            VQZ_TRY(vqz_conv2d_fwd(ctx, &p, &a, &w, bias, &y));
            break;
        }
        case VQZ_NODE_CONV1D: {
            vqz_conv1d_params p = {n->stride, n->pad_l, n->pad_r, n->dilation, VQZ_PAD_ZERO};
            vqz_tensor w = node_weight(g, pv, n, 0);
            VQZ_TRY(vqz_conv1d_fwd(ctx, &p, &a, &w, bias, &y));
            break;
        }
        case VQZ_NODE_CONVTR1D: {
            vqz_convtr1d_params p = {n->stride, n->pad_l, n->pad_r};
            vqz_tensor w = node_weight(g, pv, n, 0);
            VQZ_TRY(vqz_convtr1d_fwd(ctx, &p, &a, &w, bias, &y));
            break;
        }
        case VQZ_NODE_ACT:
            if (n->act == VQZ_ACT_SILU)
                VQZ_TRY(vqz_silu_fwd(ctx, &a, &y));
            else if (n->act == VQZ_ACT_ELU)
                VQZ_TRY(vqz_elu_fwd(ctx, 1.0f, &a, &y));
            else
                VQZ_TRY(vqz_snake_fwd(ctx, &a, &pv->w[n->alpha], &y));
            break;
        case VQZ_NODE_ADD: {
            vqz_tensor b2 = vqz_graph_slot(g, n->in2);
            VQZ_TRY(vqz_add_scaled(ctx, &a, n->scale, &b2, &y));
            break;
        }
        case VQZ_NODE_UPSAMPLE2X:
            VQZ_TRY(vqz_upsample2x_fwd(ctx, &a, &y));
            break;
        }
    }
    return VQZ_OK;
}

/* Adds `src` (the gradient a node computed for slot s, held in the scratch buffer or written in place)
 * to slot s's gradient. `*init` tells whether the slot's gradient already holds a contribution. */
static vqz_status accumulate(vqz_nn_ctx *ctx, const vqz_tensor *src, vqz_tensor *dst, char *init)
{
    if (src->data != dst->data) {
        if (*init)
            VQZ_TRY(vqz_axpy(ctx, 1.0f, src, dst));
        else
            VQZ_TRY(vqz_scale(ctx, 1.0f, src, dst));
    }
    *init = 1;
    return VQZ_OK;
}

vqz_status vqz_graph_backward(vqz_nn_ctx *ctx, vqz_graph *g, const vqz_param_views *pv,
                              const vqz_tensor *dy, vqz_tensor *dx)
{
    VQZ_FAIL_IF(!g->arena || !g->plan_train, VQZ_ERR_INTERNAL, "graph: backward needs a training plan");
    vqz_tensor gout = vqz_graph_slot_grad(g, g->output_slot);
    VQZ_FAIL_IF(!vqz_tensor_same_shape(dy, &gout), VQZ_ERR_SHAPE, "graph: output gradient shape mismatch");
    char *init = calloc((size_t)g->n_slots, 1);
    if (!init)
        return vqz_fail(VQZ_ERR_NOMEM, "graph: out of memory in backward");
    vqz_status st = VQZ_OK;
    memcpy(gout.data, dy->data, (size_t)vqz_tensor_numel(dy) * sizeof(float));
    init[g->output_slot] = 1;

#define BW_TRY(expr)            \
    do {                        \
        st = (expr);            \
        if (st != VQZ_OK)       \
            goto done;          \
    } while (0)

    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const vqz_node *n = &g->nodes[i];
        vqz_tensor a = vqz_graph_slot(g, n->in);
        vqz_tensor dout = vqz_graph_slot_grad(g, n->out);
        vqz_tensor da = vqz_graph_slot_grad(g, n->in);
        /* the node writes the input gradient straight into the slot when it is the first contribution,
         * else into the scratch buffer, which is then added */
        vqz_tensor target = da;
        if (init[n->in])
            target.data = g->arena + g->scratch_off;
        vqz_tensor *bias_g = (n->b >= 0 && pv->g[n->b].data) ? &pv->g[n->b] : NULL;
        vqz_tensor w = {0}, dw = {0};
        if (n->w >= 0 || n->wn_v >= 0) {
            w = node_weight(g, pv, n, 0);
            dw = node_weight(g, pv, n, 1);
            /* a weight-normalised conv's weight gradient is rebuilt per node, then mapped to v and g */
            if (n->wn_v >= 0)
                memset(dw.data, 0, (size_t)vqz_tensor_numel(&dw) * sizeof(float));
        }
        vqz_tensor *dwp = dw.data ? &dw : NULL;

        switch (n->op) {
        case VQZ_NODE_CONV2D: {
            vqz_conv2d_params p = {n->stride, n->pad_l, n->dilation, VQZ_PAD_ZERO};
            BW_TRY(vqz_conv2d_bwd(ctx, &p, &a, &w, &dout, &target, dwp, bias_g));
            break;
        }
        case VQZ_NODE_CONV1D: {
            vqz_conv1d_params p = {n->stride, n->pad_l, n->pad_r, n->dilation, VQZ_PAD_ZERO};
            BW_TRY(vqz_conv1d_bwd(ctx, &p, &a, &w, &dout, &target, dwp, bias_g));
            break;
        }
        case VQZ_NODE_CONVTR1D: {
            vqz_convtr1d_params p = {n->stride, n->pad_l, n->pad_r};
            BW_TRY(vqz_convtr1d_bwd(ctx, &p, &a, &w, &dout, &target, dwp, bias_g));
            break;
        }
        case VQZ_NODE_ACT:
            if (n->act == VQZ_ACT_SILU)
                BW_TRY(vqz_silu_bwd(ctx, &a, &dout, &target));
            else if (n->act == VQZ_ACT_ELU)
                BW_TRY(vqz_elu_bwd(ctx, 1.0f, &a, &dout, &target));
            else
                BW_TRY(vqz_snake_bwd(ctx, &a, &pv->w[n->alpha], &dout, &target,
                                     pv->g[n->alpha].data ? &pv->g[n->alpha] : NULL));
            break;
        case VQZ_NODE_ADD: {
            /* out = a + scale * b: da += dout, db += scale * dout */
            vqz_tensor db = vqz_graph_slot_grad(g, n->in2);
            if (init[n->in2])
                BW_TRY(vqz_axpy(ctx, n->scale, &dout, &db));
            else
                BW_TRY(vqz_scale(ctx, n->scale, &dout, &db));
            init[n->in2] = 1;
            target = dout; /* da is dout itself: accumulate copies or adds it */
            break;
        }
        case VQZ_NODE_UPSAMPLE2X:
            BW_TRY(vqz_upsample2x_bwd(ctx, &dout, &target));
            break;
        }
        BW_TRY(accumulate(ctx, &target, &da, &init[n->in]));
        if (n->wn_v >= 0 && pv->g[n->wn_v].data)
            BW_TRY(vqz_weight_norm_bwd(ctx, &pv->w[n->wn_v], &pv->w[n->wn_g], &dw, &pv->g[n->wn_v],
                                       &pv->g[n->wn_g]));
    }
    if (dx) {
        vqz_tensor din = vqz_graph_slot_grad(g, g->input_slot);
        if (!vqz_tensor_same_shape(dx, &din)) {
            st = vqz_fail(VQZ_ERR_SHAPE, "graph: input gradient shape mismatch");
            goto done;
        }
        if (init[g->input_slot])
            memcpy(dx->data, din.data, (size_t)vqz_tensor_numel(dx) * sizeof(float));
        else
            memset(dx->data, 0, (size_t)vqz_tensor_numel(dx) * sizeof(float));
    }
#undef BW_TRY
done:
    free(init);
    return st;
}

double vqz_graph_macs(const vqz_graph *g, int64_t n, int64_t h, int64_t w)
{
    /* a const copy of the shapes: walk the nodes with local sizes */
    int64_t *hs = malloc((size_t)g->n_slots * sizeof *hs);
    int64_t *ws = malloc((size_t)g->n_slots * sizeof *ws);
    double macs = 0;
    if (!hs || !ws) {
        free(hs);
        free(ws);
        return -1;
    }
    hs[g->input_slot] = h;
    ws[g->input_slot] = w;
    for (int i = 0; i < g->n_nodes; i++) {
        const vqz_node *nd = &g->nodes[i];
        int64_t ih = hs[nd->in], iw = ws[nd->in];
        int64_t oh = node_out_size(nd, ih), ow = g->dims == 2 ? node_out_size(nd, iw) : 1;
        hs[nd->out] = oh;
        ws[nd->out] = ow;
        int64_t ci = g->slots[nd->in].channels, co = g->slots[nd->out].channels;
        int64_t kk = g->dims == 2 ? (int64_t)nd->k * nd->k : nd->k;
        if (nd->op == VQZ_NODE_CONV2D || nd->op == VQZ_NODE_CONV1D)
            macs += (double)n * oh * ow * co * ci * kk;
        else if (nd->op == VQZ_NODE_CONVTR1D)
            macs += (double)n * ih * co * ci * kk;
    }
    free(hs);
    free(ws);
    return macs;
}

double vqz_graph_radius(const vqz_graph *g)
{
    /* radius[s]: receptive-field radius of slot s in input units; scale[s]: input units per slot unit */
    double *radius = calloc((size_t)g->n_slots, sizeof *radius);
    double *scale = calloc((size_t)g->n_slots, sizeof *scale);
    double r = 0;
    if (!radius || !scale) {
        free(radius);
        free(scale);
        return -1;
    }
    scale[g->input_slot] = 1.0;
    for (int i = 0; i < g->n_nodes; i++) {
        const vqz_node *nd = &g->nodes[i];
        double rin = radius[nd->in], sin = scale[nd->in];
        switch (nd->op) {
        case VQZ_NODE_CONV2D:
        case VQZ_NODE_CONV1D:
            radius[nd->out] = rin + (nd->k - 1) * nd->dilation / 2.0 * sin;
            scale[nd->out] = sin * nd->stride;
            break;
        case VQZ_NODE_CONVTR1D:
            /* an output sample depends on ceil(k / stride) input samples */
            scale[nd->out] = sin / nd->stride;
            radius[nd->out] = rin + ((nd->k + nd->stride - 1) / nd->stride) / 2.0 * sin;
            break;
        case VQZ_NODE_UPSAMPLE2X:
            radius[nd->out] = rin + 0.5 * sin;
            scale[nd->out] = sin / 2;
            break;
        case VQZ_NODE_ADD:
            radius[nd->out] = rin > radius[nd->in2] ? rin : radius[nd->in2];
            scale[nd->out] = sin;
            break;
        default:
            radius[nd->out] = rin;
            scale[nd->out] = sin;
        }
    }
    r = radius[g->output_slot];
    free(radius);
    free(scale);
    return r;
}
