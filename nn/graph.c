/* graph.c — building, memory planning and forward/backward execution of a static layer graph. */
#include "nn/graph.h"

#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#ifdef VQZ_HAVE_CUDA
#include "kernels/cuda_ops.h"
#endif

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

/* Buffers of the graph's device. */
static void buf_free(const vqz_graph *g, float *p)
{
    (void)g;
#ifdef VQZ_HAVE_CUDA
    if (g->device == VQZ_CUDA) {
        vqz_cuda_free(g->cuda, p);
        return;
    }
#endif
    free(p);
}

/* floats, 64-byte aligned; zeroed when zero is set */
static vqz_status buf_alloc(const vqz_graph *g, int64_t floats, int zero, float **p, const char *what)
{
    size_t bytes = (size_t)(floats > 0 ? floats : 1) * sizeof(float);
    *p = NULL;
    (void)g;
#ifdef VQZ_HAVE_CUDA
    if (g->device == VQZ_CUDA) {
        VQZ_TRY(vqz_cuda_malloc(g->cuda, bytes, (void **)p));
        vqz_status s = zero ? vqz_cuda_memset0(g->cuda, *p, bytes) : VQZ_OK;
        if (s != VQZ_OK) {
            vqz_cuda_free(g->cuda, *p);
            *p = NULL;
        }
        return s;
    }
#endif
    if (posix_memalign((void **)p, 64, bytes) != 0) {
        *p = NULL;
        return vqz_fail(VQZ_ERR_NOMEM, "graph: cannot allocate %.1f MiB for %s", (double)bytes / 1048576.0, what);
    }
    if (zero)
        memset(*p, 0, bytes);
    return VQZ_OK;
}

void vqz_graph_free(vqz_graph *g)
{
    if (!g)
        return;
    free(g->nodes);
    free(g->slots);
    free(g->act_off);
    free(g->grad_off);
    buf_free(g, g->arena);
    buf_free(g, g->wn_w);
    buf_free(g, g->wn_dw);
    memset(g, 0, sizeof *g);
}

vqz_status vqz_graph_set_device(vqz_graph *g, vqz_dev device, void *cuda)
{
    VQZ_FAIL_IF(device == VQZ_CUDA && !cuda, VQZ_ERR_INVALID_ARG, "graph: a CUDA graph needs a CUDA state");
    if (g->device == device) {
        /* device memory belongs to the process: a later context only lends its stream */
        g->cuda = device == VQZ_CUDA ? cuda : NULL;
        return VQZ_OK;
    }
    buf_free(g, g->arena);
    buf_free(g, g->wn_w);
    buf_free(g, g->wn_dw);
    g->arena = g->wn_w = g->wn_dw = NULL;
    g->arena_cap = 0;
    g->plan_n = 0;
    g->device = device;
    g->cuda = device == VQZ_CUDA ? cuda : NULL;
    return VQZ_OK;
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
    g->slots[n->in].readers++;
    if (n->op == VQZ_NODE_ADD) {
        g->slots[n->in2].last_use = idx;
        g->slots[n->in2].readers++;
    }
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

/* Placement of buffers with lifetimes [start, end] (inclusive) in one region; writes offsets relative to
 * the region start and returns the region's size. Largest first, each at the lowest offset free of the
 * buffers placed so far that live at the same time: in slot order, smaller early buffers would split
 * the region so that the large late ones stack above them (a decoder's last stage ends up 25% larger). */
typedef struct {
    int64_t size, start, end, off;
} interval;

static int64_t first_fit(interval *iv, int n)
{
    int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    if (!order)
        return -1;
    for (int i = 0; i < n; i++) {
        int k = i;
        while (k > 0 && iv[order[k - 1]].size < iv[i].size) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = i;
    }
    int64_t total = 0;
    for (int oi = 0; oi < n; oi++) {
        interval *a = &iv[order[oi]];
        a->off = 0;
        if (a->size == 0)
            continue;
        /* restart the scan whenever a conflicting live buffer overlaps the candidate offset */
        for (int moved = 1; moved;) {
            moved = 0;
            for (int oj = 0; oj < oi; oj++) {
                const interval *b = &iv[order[oj]];
                if (b->size == 0 || b->end < a->start || b->start > a->end)
                    continue;
                if (a->off < b->off + b->size && b->off < a->off + a->size) {
                    a->off = b->off + b->size;
                    moved = 1;
                }
            }
        }
        if (a->off + a->size > total)
            total = a->off + a->size;
    }
    free(order);
    return total;
}

static int node_is_conv(const vqz_node *n)
{
    return n->op == VQZ_NODE_CONV2D || n->op == VQZ_NODE_CONV1D;
}

/* Inference: a convolution takes over the residual add right after it (when its output feeds only that
 * add and the add's other operand dies there, so the result can overwrite it: a oneDNN sum post-op) and
 * then the SiLU or ELU right after that (when nothing else reads the value before the activation).
 * It also takes over the node right before it when nothing else reads that node's output: a 2x
 * upsampling before a 3x3 convolution (the sub-pixel form, vqz_conv2d_up2x_fwd_fused, without a
 * residual), or, on channels-last data, a SiLU or ELU (done band by band as the convolution reads, so
 * a residual block's activated input is never stored whole).
 * Training runs every node as built: the backward pass needs each intermediate value. */
static void plan_fusion(vqz_graph *g, int train)
{
    for (int i = 0; i < g->n_nodes; i++) {
        vqz_node *nd = &g->nodes[i];
        nd->fused = 0;
        nd->fuse_up = 0;
        nd->fuse_pre_act = VQZ_FUSED_NONE;
        nd->fuse_in = nd->in;
        nd->fuse_out = nd->out;
        nd->fuse_res = 0;
        nd->fuse_res_scale = 0.0f;
        nd->fuse_out_scale = 1.0f;
        nd->fuse_act = VQZ_FUSED_NONE;
    }
    if (train)
        return;
    for (int i = 0; i < g->n_nodes; i++) {
        vqz_node *nd = &g->nodes[i];
        if (!node_is_conv(nd))
            continue;
        vqz_node *prev = i > 0 ? &g->nodes[i - 1] : NULL;
        int lone = prev && !prev->fused && nd->in == prev->out && g->slots[prev->out].readers == 1;
        if (lone && prev->op == VQZ_NODE_UPSAMPLE2X && nd->op == VQZ_NODE_CONV2D && nd->k == 3 && nd->stride == 1 &&
            nd->pad_l == 1 && nd->dilation == 1) {
            prev->fused = VQZ_FUSED_INTO_NEXT;
            nd->fuse_up = 1;
            nd->fuse_in = prev->in;
        } else if (lone && prev->op == VQZ_NODE_ACT && (prev->act == VQZ_ACT_SILU || prev->act == VQZ_ACT_ELU) &&
                   g->slots[prev->in].layout == VQZ_LAYOUT_NHWC && g->slots[nd->out].layout == VQZ_LAYOUT_NHWC) {
            prev->fused = VQZ_FUSED_INTO_NEXT;
            nd->fuse_pre_act = prev->act == VQZ_ACT_SILU ? VQZ_FUSED_SILU : VQZ_FUSED_ELU;
            nd->fuse_in = prev->in;
        }
        int cur = nd->out, j = i + 1;
        if (!nd->fuse_up && j < g->n_nodes && g->nodes[j].op == VQZ_NODE_ADD && g->slots[cur].readers == 1) {
            vqz_node *add = &g->nodes[j];
            int other = add->in == cur ? add->in2 : add->in;
            const vqz_slot *so = &g->slots[other], *sc = &g->slots[cur];
            if (other != cur && other != nd->in && other != nd->fuse_in && so->last_use == j &&
                so->channels == sc->channels) {
                nd->fuse_res = 1;
                nd->fuse_out_scale = add->in2 == cur ? add->scale : 1.0f;
                nd->fuse_res_scale = add->in2 == cur ? 1.0f : add->scale;
                add->fused = VQZ_FUSED_INTO_PREV;
                cur = add->out;
                j++;
            }
        }
        if (j < g->n_nodes && g->nodes[j].op == VQZ_NODE_ACT && g->nodes[j].in == cur && g->slots[cur].readers == 1 &&
            (g->nodes[j].act == VQZ_ACT_SILU || g->nodes[j].act == VQZ_ACT_ELU)) {
            nd->fuse_act = g->nodes[j].act == VQZ_ACT_SILU ? VQZ_FUSED_SILU : VQZ_FUSED_ELU;
            g->nodes[j].fused = VQZ_FUSED_INTO_PREV;
            cur = g->nodes[j].out;
        }
        nd->fuse_out = cur;
    }
}

/* Inference on the CPU keeps the interior activations in the convolution kernels' order: images
 * channels-last, audio in oneDNN's 8-channel blocks where those are its kernels' own (AVX2 CPUs) and every
 * interior slot's channels are a multiple of 8 (otherwise channels-first, and oneDNN reorders around each
 * kernel). The input and output slots stay NCHW, so that needs every node touching them to be a
 * convolution, which converts as it reads or writes; Snake's per-channel parameter needs NCHW too. */
static void plan_layouts(vqz_graph *g, int train)
{
    vqz_layout inner = g->dims == 2 ? VQZ_LAYOUT_NHWC : VQZ_LAYOUT_NC8;
    int keep = !train && g->device == VQZ_CPU && (g->dims == 2 || vqz_conv_cpu_block() == 8);
    for (int i = 0; keep && i < g->n_nodes; i++) {
        const vqz_node *nd = &g->nodes[i];
        int edge = nd->in == g->input_slot || nd->out == g->output_slot ||
                   (nd->op == VQZ_NODE_ADD && (nd->in2 == g->input_slot || nd->in2 == g->output_slot));
        if ((edge && !node_is_conv(nd)) || (nd->op == VQZ_NODE_ACT && nd->act == VQZ_ACT_SNAKE))
            keep = 0;
    }
    for (int s = 0; keep && inner == VQZ_LAYOUT_NC8 && s < g->n_slots; s++)
        if (s != g->input_slot && s != g->output_slot && g->slots[s].channels % 8 != 0)
            keep = 0;
    for (int s = 0; s < g->n_slots; s++)
        g->slots[s].layout = keep && s != g->input_slot && s != g->output_slot ? inner : VQZ_LAYOUT_NCHW;
}

vqz_status vqz_graph_plan(vqz_graph *g, int64_t n, int64_t h, int64_t w, int train)
{
    VQZ_FAIL_IF(g->input_slot < 0 || g->n_nodes == 0, VQZ_ERR_INTERNAL, "graph: plan of an empty graph");
    VQZ_FAIL_IF(n <= 0 || h <= 0 || w <= 0, VQZ_ERR_SHAPE, "graph: invalid input size %lldx%lldx%lld",
                (long long)n, (long long)h, (long long)w);
    if (g->arena && g->plan_n == n && g->plan_h == h && g->plan_w == w && g->plan_train == train)
        return VQZ_OK;
    g->plan_n = 0; /* no valid plan until this one completes */
    VQZ_TRY(propagate_shapes(g, h, w));
    plan_layouts(g, train);
    plan_fusion(g, train);

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
    /* the output of a node fused into the convolution after it is never made; its input is read by
     * that convolution */
    for (int i = 0; !train && i < g->n_nodes; i++) {
        const vqz_node *nd = &g->nodes[i];
        if (!nd->fuse_up && nd->fuse_pre_act == VQZ_FUSED_NONE)
            continue;
        iv[g->nodes[i - 1].out].size = 0;
        if (iv[nd->fuse_in].end < i)
            iv[nd->fuse_in].end = i;
    }
    /* inference: an activation or residual add whose input dies at that node writes in place (the ops
     * allow it), so a chain of them shares one buffer; root[s] is the slot whose buffer s uses. A fused
     * residual add's result, and the convolution output it replaces, are the residual's buffer. */
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
            if (nd->fused == VQZ_FUSED_INTO_NEXT)
                continue;
            if (nd->fused && nd->op == VQZ_NODE_ADD) {
                int conv_out = g->nodes[i - 1].out, other = nd->in == conv_out ? nd->in2 : nd->in;
                root[nd->out] = root[conv_out] = root[other];
                continue;
            }
            if (nd->fused) {
                root[nd->out] = root[nd->in];
                continue;
            }
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
    if (act_total < 0) {
        free(iv);
        free(root);
        return vqz_fail(VQZ_ERR_NOMEM, "graph: out of memory planning %d slots", ns);
    }
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
        if (grad_total < 0) {
            free(iv);
            return vqz_fail(VQZ_ERR_NOMEM, "graph: out of memory planning %d slots", ns);
        }
        for (int s = 0; s < ns; s++)
            g->grad_off[s] = act_total + iv[s].off;
    }
    free(iv);

    g->scratch_off = act_total + grad_total;
    int64_t total = g->scratch_off + (train ? max_slot : 0);
    if (total > g->arena_cap) {
        buf_free(g, g->arena);
        g->arena = NULL;
        g->arena_cap = 0;
        VQZ_TRY(buf_alloc(g, total, 0, &g->arena, "the activation arena"));
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
    vqz_tensor t = g->dims == 2 ? vqz_t4(data, g->plan_n, sl->channels, sl->h, sl->w)
                                : vqz_t3(data, g->plan_n, sl->channels, sl->h);
    t.device = g->device;
    return t;
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
    vqz_status s = buf_alloc(g, total, 1, &g->wn_w, "weight-norm buffers");
    if (s == VQZ_OK)
        s = buf_alloc(g, total, 1, &g->wn_dw, "weight-norm buffers");
    if (s != VQZ_OK) {
        buf_free(g, g->wn_w);
        g->wn_w = NULL;
    }
    return s;
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

/* Nearest 2x upsampling of channels-last data: each pixel's channel vector goes to a 2x2 block. */
static vqz_status upsample2x_nhwc(vqz_nn_ctx *ctx, const vqz_tensor *x, vqz_tensor *y)
{
    VQZ_FAIL_IF(ctx->device != VQZ_CPU, VQZ_ERR_NO_CUDA, "upsample2x: the CUDA channels-last upsampling is not available");
    int64_t c = x->shape[1], h = x->shape[2], w = x->shape[3], rows = x->shape[0] * h;
    size_t px = (size_t)c * sizeof(float);
    vqz_nn_ctx_enter(ctx);
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        /* input row r (image r / h, row r % h) becomes output rows 2r and 2r + 1 */
        const float *src = x->data + r * w * c;
        float *d0 = y->data + 2 * r * (2 * w * c);
        for (int64_t j = 0; j < w; j++) {
            memcpy(d0 + 2 * j * c, src + j * c, px);
            memcpy(d0 + (2 * j + 1) * c, src + j * c, px);
        }
        memcpy(d0 + 2 * w * c, d0, 2 * (size_t)w * px);
    }
    return VQZ_OK;
}

vqz_status vqz_graph_forward(vqz_nn_ctx *ctx, vqz_graph *g, const vqz_param_views *pv, const vqz_tensor *x)
{
    VQZ_FAIL_IF(!g->arena || g->plan_n == 0, VQZ_ERR_INTERNAL, "graph: forward before plan");
    vqz_tensor in = vqz_graph_slot(g, g->input_slot);
    VQZ_FAIL_IF(!vqz_tensor_same_shape(x, &in), VQZ_ERR_SHAPE,
                "graph: input [%lld,%lld,%lld,%lld] does not match the plan [%lld,%lld,%lld,%lld]",
                (long long)x->shape[0], (long long)x->shape[1], (long long)x->shape[2],
                (long long)x->shape[3], (long long)in.shape[0], (long long)in.shape[1],
                (long long)in.shape[2], (long long)in.shape[3]);
    VQZ_FAIL_IF(x->device != g->device, VQZ_ERR_INVALID_ARG, "graph: the input is not on the graph's device");
    if (x->data != in.data) {
#ifdef VQZ_HAVE_CUDA
        if (g->device == VQZ_CUDA)
            VQZ_TRY(vqz_cuda_d2d(g->cuda, in.data, x->data, (size_t)vqz_tensor_numel(x) * sizeof(float)));
        else
#endif
            memcpy(in.data, x->data, (size_t)vqz_tensor_numel(x) * sizeof(float));
    }
    VQZ_TRY(ensure_wn(g, pv));

    for (int i = 0; i < g->n_nodes; i++) {
        const vqz_node *n = &g->nodes[i];
        if (n->fused)
            continue;
        vqz_tensor a = vqz_graph_slot(g, n->in);
        vqz_tensor y = vqz_graph_slot(g, n->out);
        vqz_tensor af = vqz_graph_slot(g, n->fuse_in);
        const vqz_tensor *bias = n->b >= 0 ? &pv->w[n->b] : NULL;
        if (n->wn_v >= 0) {
            vqz_tensor wd = node_weight(g, pv, n, 0);
            VQZ_TRY(vqz_weight_norm_fwd(ctx, &pv->w[n->wn_v], &pv->w[n->wn_g], &wd));
        }
        /* a convolution writes the last slot of its fused chain, in that slot's layout */
        vqz_conv_fusion f = {g->slots[n->fuse_in].layout, g->slots[n->fuse_out].layout, n->fuse_res,
                             n->fuse_res_scale, n->fuse_out_scale, n->fuse_act, n->fuse_pre_act};
        vqz_tensor yf = vqz_graph_slot(g, n->fuse_out);
        switch (n->op) {
        case VQZ_NODE_CONV2D: {
            vqz_conv2d_params p = {n->stride, n->pad_l, n->dilation, VQZ_PAD_ZERO};
            vqz_tensor w = node_weight(g, pv, n, 0);
            if (g->plan_train)
                VQZ_TRY(vqz_conv2d_fwd(ctx, &p, &a, &w, bias, &y));
            else if (n->fuse_up)
                VQZ_TRY(vqz_conv2d_up2x_fwd_fused(ctx, &f, &af, &w, bias, &yf));
            else
                VQZ_TRY(vqz_conv2d_fwd_fused(ctx, &p, &f, &af, &w, bias, &yf));
            break;
        }
        case VQZ_NODE_CONV1D: {
            vqz_conv1d_params p = {n->stride, n->pad_l, n->pad_r, n->dilation, VQZ_PAD_ZERO};
            vqz_tensor w = node_weight(g, pv, n, 0);
            if (g->plan_train)
                VQZ_TRY(vqz_conv1d_fwd(ctx, &p, &a, &w, bias, &y));
            else
                VQZ_TRY(vqz_conv1d_fwd_fused(ctx, &p, &f, &af, &w, bias, &yf));
            break;
        }
        case VQZ_NODE_CONVTR1D: {
            vqz_convtr1d_params p = {n->stride, n->pad_l, n->pad_r};
            vqz_tensor w = node_weight(g, pv, n, 0);
            if (g->plan_train)
                VQZ_TRY(vqz_convtr1d_fwd(ctx, &p, &a, &w, bias, &y));
            else
                VQZ_TRY(vqz_convtr1d_fwd_fused(ctx, &p, &f, &a, &w, bias, &y));
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
            if (g->slots[n->in].layout == VQZ_LAYOUT_NHWC)
                VQZ_TRY(upsample2x_nhwc(ctx, &a, &y));
            else
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
    VQZ_FAIL_IF(g->device != VQZ_CPU, VQZ_ERR_UNSUPPORTED, "graph: training runs on the CPU only");
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
