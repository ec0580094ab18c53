/* graph.h — a static layer graph (encoder or decoder) as a list of nodes over activation slots, its
 * memory plan for a given input shape, and its forward and backward execution through nn/ops.h.
 * Parameters are referred to by index into the owning model's parameter table. */
#ifndef VQZ_NN_GRAPH_H
#define VQZ_NN_GRAPH_H

#include <stdint.h>

#include "nn/ops.h"

typedef enum { VQZ_ACT_SILU = 0, VQZ_ACT_ELU = 1, VQZ_ACT_SNAKE = 2 } vqz_act;

typedef enum {
    VQZ_NODE_CONV2D,
    VQZ_NODE_CONV1D,
    VQZ_NODE_CONVTR1D,
    VQZ_NODE_ACT,
    VQZ_NODE_ADD,       /* out = in + scale * in2 */
    VQZ_NODE_UPSAMPLE2X
} vqz_node_op;

#define VQZ_FUSED_INTO_PREV 1
#define VQZ_FUSED_INTO_NEXT 2

typedef struct {
    vqz_node_op op;
    int in, in2, out;            /* activation slots; in2 only for ADD */
    int w, b;                    /* parameter ids (w = -1 when weight-normalised) */
    int wn_v, wn_g;              /* weight-norm parameter ids, or -1 */
    int alpha;                   /* snake alpha parameter id, or -1 */
    int k, stride, pad_l, pad_r, dilation; /* convs; convtr1d: pad_* are crops */
    vqz_act act;
    float scale;                 /* ADD */
    int64_t wn_off;              /* offset of the derived weight in the graph's weight-norm buffer */

    /* inference plan: a convolution also does the residual add and the activation that follow it */
    int fused;                   /* done by the convolution after it (VQZ_FUSED_INTO_NEXT) or before it */
    int fuse_up;                 /* conv: does the 2x upsampling before it (reads that node's input) */
    vqz_fused_act fuse_pre_act;  /* conv: does the activation before it (reads that node's input) */
    int fuse_in;                 /* conv: the slot it reads (its own input, or the fused node's) */
    int fuse_out;                /* conv: the slot it writes (its own output, or the last fused node's) */
    int fuse_res;                /* conv: 1 when it sums into the residual held in fuse_out's buffer */
    float fuse_res_scale, fuse_out_scale;
    vqz_fused_act fuse_act;
} vqz_node;

/* One activation slot: its channel count (fixed by the graph) and its spatial size (set by the plan
 * for the current input shape; w = 1 for 1-D graphs). */
typedef struct {
    int64_t channels;
    int64_t h, w;
    int producer;            /* node writing it, -1 for the input */
    int last_use;            /* last node reading it (n_nodes for the output) */
    int readers;             /* number of node inputs reading it */
    vqz_layout layout;       /* memory order under the current plan */
} vqz_slot;

/* Parameter tensor views the graph reads and writes (owned by the model). */
typedef struct {
    vqz_tensor *w;       /* [n_params] views into the parameter block */
    vqz_tensor *g;       /* [n_params] views into the gradient block (data NULL when not training) */
} vqz_param_views;

typedef struct {
    int dims;                 /* 2 (images, NCHW) or 1 (audio, NCT) */
    int n_nodes, cap_nodes;
    vqz_node *nodes;
    int n_slots, cap_slots;
    vqz_slot *slots;
    int input_slot, output_slot;
    int64_t wn_floats;        /* size of the weight-norm derived-weight buffer */

    /* plan for the current input shape */
    int64_t plan_n, plan_h, plan_w; /* batch and spatial input size (w = 1 for audio) */
    int plan_train;
    int64_t *act_off;         /* [n_slots] float offsets of activations in the arena */
    int64_t *grad_off;        /* [n_slots] float offsets of activation gradients (training) */
    int64_t scratch_off;      /* scratch region for gradient accumulation */
    int64_t arena_floats;
    float *arena;
    int64_t arena_cap;
    float *wn_w, *wn_dw;      /* derived weights and their gradients (weight norm) */

    /* where the arena and derived weights live: VQZ_CPU, or VQZ_CUDA with the state that allocates
     * (set by vqz_graph_set_device before the first plan) */
    vqz_dev device;
    void *cuda;
} vqz_graph;

void vqz_graph_init(vqz_graph *g, int dims);
void vqz_graph_free(vqz_graph *g);

/* Moves the graph's memory to a device (cuda: the context's CUDA state, for VQZ_CUDA). Drops any
 * plan; activations are then planned channels-first, the only order the CUDA twin takes. */
vqz_status vqz_graph_set_device(vqz_graph *g, vqz_dev device, void *cuda);

/* Builders: each appends a node reading slot `in` and returns the new output slot (or -1 on
 * allocation failure). Shapes are tracked symbolically. */
int vqz_graph_input(vqz_graph *g, int64_t channels);
int vqz_graph_conv(vqz_graph *g, int in, int64_t out_ch, int k, int stride, int pad_l, int pad_r,
                   int dilation, int w, int b, int wn_v, int wn_g);
int vqz_graph_convtr1d(vqz_graph *g, int in, int64_t out_ch, int k, int stride, int crop_l, int crop_r,
                       int w, int b, int wn_v, int wn_g);
int vqz_graph_act(vqz_graph *g, int in, vqz_act act, int alpha);
int vqz_graph_add(vqz_graph *g, int a, int b, float scale);
int vqz_graph_upsample2x(vqz_graph *g, int in);

/* Size the arena for an input [n, C, h, w] (w = 1 for 1-D). Training keeps every activation for the
 * backward pass, in NCHW. Inference reuses memory as soon as a slot is dead, lets each convolution do
 * the residual add and activation that follow it and the activation or 2x upsampling before it,
 * and keeps the activations between layers in the order oneDNN's convolutions run on: channels-last
 * (NHWC) for 2-D graphs, 8-channel blocks (NC8) for 1-D graphs on AVX2 CPUs when every interior slot's
 * channels are a multiple of 8; the input and output slots stay NCHW.
 * Re-planning with the same shape is free; the arena only grows. */
vqz_status vqz_graph_plan(vqz_graph *g, int64_t n, int64_t h, int64_t w, int train);

/* The activation tensor of a slot under the current plan: its logical shape, in the memory order of
 * g->slots[slot].layout (always NCHW for the input and output slots). */
vqz_tensor vqz_graph_slot(const vqz_graph *g, int slot);
vqz_tensor vqz_graph_slot_grad(const vqz_graph *g, int slot);

/* Forward: copies x into the input slot (unless x->data already is that slot), runs every node;
 * the output is vqz_graph_slot(g, g->output_slot). */
vqz_status vqz_graph_forward(vqz_nn_ctx *ctx, vqz_graph *g, const vqz_param_views *pv, const vqz_tensor *x);

/* Backward from dy (gradient of the output slot); accumulates parameter gradients into pv->g and, when
 * dx is non-NULL, writes the gradient of the input. Needs a training plan and a preceding forward. */
vqz_status vqz_graph_backward(vqz_nn_ctx *ctx, vqz_graph *g, const vqz_param_views *pv,
                              const vqz_tensor *dy, vqz_tensor *dx);

/* Multiply-accumulate count of one forward pass for an input of the given size. */
double vqz_graph_macs(const vqz_graph *g, int64_t n, int64_t h, int64_t w);

/* Receptive-field radius of the graph's output w.r.t. its input, in input units. */
double vqz_graph_radius(const vqz_graph *g);

#endif
