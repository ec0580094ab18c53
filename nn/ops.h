/* ops.h — the engine's op interface. Model code calls only these; each op checks shapes, then
 * dispatches on ctx->device to its CPU implementation (nn/) or its CUDA twin (kernels/).
 *
 * Conventions (as in llm.c):
 *  - *_fwd writes (overwrites) its output.
 *  - *_bwd overwrites the input gradient dx (skipped when NULL) and ACCUMULATES (+=) into parameter
 *    gradients dw / db / dalpha (skipped when NULL), because parameter gradients live in one buffer
 *    zeroed once per step and a parameter may be used more than once.
 *  - Shapes: 2-D images NCHW, 1-D signals NCT; weights use PyTorch's layouts so bundles load in
 *    PyTorch unchanged: conv OIHW / OIK, transposed conv1d IOK.
 *  - Every op returns VQZ_ERR_SHAPE with a message naming the op and both shapes on mismatch.
 */
#ifndef VQZ_NN_OPS_H
#define VQZ_NN_OPS_H

#include "nn/ctx.h"

typedef enum { VQZ_PAD_ZERO = 0, VQZ_PAD_REPLICATE = 1, VQZ_PAD_REFLECT = 2 } vqz_pad_mode;

/* ---------------------------------------------------------------- convolutions (nn/conv_dnnl.c) */

typedef struct {
    int stride;            /* same in both spatial dims */
    int pad;               /* same on all four sides */
    int dilation;          /* 1 = dense */
    vqz_pad_mode pad_mode;
} vqz_conv2d_params;

/* y[N,Co,Ho,Wo] = conv(x[N,Ci,H,W], w[Co,Ci,k,k]) + b[Co] (b may be NULL);
 * Ho = (H + 2 pad - dilation (k-1) - 1) / stride + 1. */
vqz_status vqz_conv2d_fwd(vqz_nn_ctx *ctx, const vqz_conv2d_params *p, const vqz_tensor *x,
                          const vqz_tensor *w, const vqz_tensor *b, vqz_tensor *y);
vqz_status vqz_conv2d_bwd(vqz_nn_ctx *ctx, const vqz_conv2d_params *p, const vqz_tensor *x,
                          const vqz_tensor *w, const vqz_tensor *dy, vqz_tensor *dx, vqz_tensor *dw,
                          vqz_tensor *db);

typedef struct {
    int stride;
    int pad_left, pad_right;
    int dilation;
    vqz_pad_mode pad_mode; /* reflect needs pad < T */
} vqz_conv1d_params;

/* y[N,Co,To] = conv1d(x[N,Ci,T], w[Co,Ci,k]) + b; To = (T + pl + pr - dilation (k-1) - 1) / stride + 1. */
vqz_status vqz_conv1d_fwd(vqz_nn_ctx *ctx, const vqz_conv1d_params *p, const vqz_tensor *x,
                          const vqz_tensor *w, const vqz_tensor *b, vqz_tensor *y);
vqz_status vqz_conv1d_bwd(vqz_nn_ctx *ctx, const vqz_conv1d_params *p, const vqz_tensor *x,
                          const vqz_tensor *w, const vqz_tensor *dy, vqz_tensor *dx, vqz_tensor *dw,
                          vqz_tensor *db);

typedef struct {
    int stride;
    int crop_left, crop_right; /* samples removed from each end of the full output (PyTorch padding) */
} vqz_convtr1d_params;

/* y[N,Co,To] = conv_transpose1d(x[N,Ci,T], w[Ci,Co,k]) + b;
 * To = (T - 1) stride + k - crop_left - crop_right. */
vqz_status vqz_convtr1d_fwd(vqz_nn_ctx *ctx, const vqz_convtr1d_params *p, const vqz_tensor *x,
                            const vqz_tensor *w, const vqz_tensor *b, vqz_tensor *y);
vqz_status vqz_convtr1d_bwd(vqz_nn_ctx *ctx, const vqz_convtr1d_params *p, const vqz_tensor *x,
                            const vqz_tensor *w, const vqz_tensor *dy, vqz_tensor *dx, vqz_tensor *dw,
                            vqz_tensor *db);

/* Fused forward convolutions of the inference path (the graph executor). oneDNN's fastest kernels
 * here read and write channels-last data, so the executor keeps its activations in that order between
 * layers instead of converting every input and output; elementwise ops are indifferent to the order.
 * The tensor's shape stays the logical [N,C,H,W] (or [N,C,T]); x_layout / y_layout give the order in
 * memory. Weights and bias keep PyTorch's layouts.
 *   y = act(res_scale * y_in + out_scale * (conv(pre_act(x)) + b))  when residual (y holds y_in on entry)
 *   y = act(out_scale * (conv(pre_act(x)) + b))                      otherwise
 * pre_act is applied as the convolution reads x, which is left unchanged; with x and y both NHWC this
 * runs in bands of rows through a small buffer, so pre_act(x) never exists whole (a pre-activation
 * residual block then needs two full-size buffers instead of three). x and y must not overlap. Only
 * zero padding. */
/* VQZ_LAYOUT_NC8: channels in blocks of 8, [N][C/8][H][W][8] (oneDNN's nChw8c / nCw8c, its AVX2 kernels'
 * own layout, so nothing is reordered around them); C must be a multiple of 8. */
typedef enum { VQZ_LAYOUT_NCHW = 0, VQZ_LAYOUT_NHWC = 1, VQZ_LAYOUT_NC8 = 2 } vqz_layout;
typedef enum { VQZ_FUSED_NONE = 0, VQZ_FUSED_SILU = 1, VQZ_FUSED_ELU = 2 } vqz_fused_act; /* ELU: alpha 1 */

typedef struct {
    vqz_layout x_layout, y_layout;
    int residual;
    float res_scale, out_scale;
    vqz_fused_act act;
    vqz_fused_act pre_act;
} vqz_conv_fusion;

vqz_status vqz_conv2d_fwd_fused(vqz_nn_ctx *ctx, const vqz_conv2d_params *p, const vqz_conv_fusion *f,
                                const vqz_tensor *x, const vqz_tensor *w, const vqz_tensor *b, vqz_tensor *y);
vqz_status vqz_conv1d_fwd_fused(vqz_nn_ctx *ctx, const vqz_conv1d_params *p, const vqz_conv_fusion *f,
                                const vqz_tensor *x, const vqz_tensor *w, const vqz_tensor *b, vqz_tensor *y);

/* y[N,Co,2H,2W] = conv3x3(nearest_upsample2x(x[N,Ci,H,W])) with stride 1 and zero pad 1, computed as
 * one 2x2 convolution of x per output phase (16 instead of 36 multiply-adds per input pixel and
 * channel pair, no upsampled copy). The fusion's layouts and activation apply; no residual, no pre_act. */
vqz_status vqz_conv2d_up2x_fwd_fused(vqz_nn_ctx *ctx, const vqz_conv_fusion *f, const vqz_tensor *x,
                                     const vqz_tensor *w, const vqz_tensor *b, vqz_tensor *y);

/* vqz_convtr1d_fwd with the fusion's layouts (NCHW or NC8; the rest of the fusion must be the identity: no
 * residual, out_scale 1, no activations), so that a blocked decoder needs no conversion around it. */
vqz_status vqz_convtr1d_fwd_fused(vqz_nn_ctx *ctx, const vqz_convtr1d_params *p, const vqz_conv_fusion *f,
                                  const vqz_tensor *x, const vqz_tensor *w, const vqz_tensor *b, vqz_tensor *y);

/* The channel block of the CPU convolution kernels' own layout: 8 where they are AVX2 kernels (then
 * VQZ_LAYOUT_NC8 is theirs), 16 with AVX-512. */
int vqz_conv_cpu_block(void);

/* ------------------------------------------------------- elementwise and layout ops (nn/eltwise.c) */

/* Activations: y and x may alias in fwd; dx and dy may alias in bwd. bwd takes the fwd input x. */
vqz_status vqz_silu_fwd(vqz_nn_ctx *ctx, const vqz_tensor *x, vqz_tensor *y);
vqz_status vqz_silu_bwd(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *dy, vqz_tensor *dx);
vqz_status vqz_elu_fwd(vqz_nn_ctx *ctx, float alpha, const vqz_tensor *x, vqz_tensor *y);
vqz_status vqz_elu_bwd(vqz_nn_ctx *ctx, float alpha, const vqz_tensor *x, const vqz_tensor *dy,
                       vqz_tensor *dx);
vqz_status vqz_leaky_relu_fwd(vqz_nn_ctx *ctx, float slope, const vqz_tensor *x, vqz_tensor *y);
vqz_status vqz_leaky_relu_bwd(vqz_nn_ctx *ctx, float slope, const vqz_tensor *x, const vqz_tensor *dy,
                              vqz_tensor *dx);

/* Snake (BigVGAN/DAC): y = x + sin^2(alpha_c x) / (alpha_c + 1e-9), alpha[C] per channel;
 * x is [N,C,...]. bwd accumulates dalpha. */
vqz_status vqz_snake_fwd(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *alpha, vqz_tensor *y);
vqz_status vqz_snake_bwd(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *alpha,
                         const vqz_tensor *dy, vqz_tensor *dx, vqz_tensor *dalpha);

/* y = a + scale * b (residual add); y may alias a or b. Its backward is da = dy, db = scale dy,
 * done by the caller with vqz_axpy. */
vqz_status vqz_add_scaled(vqz_nn_ctx *ctx, const vqz_tensor *a, float scale, const vqz_tensor *b,
                          vqz_tensor *y);
/* y += alpha x */
vqz_status vqz_axpy(vqz_nn_ctx *ctx, float alpha, const vqz_tensor *x, vqz_tensor *y);
/* y = alpha x (y may alias x) */
vqz_status vqz_scale(vqz_nn_ctx *ctx, float alpha, const vqz_tensor *x, vqz_tensor *y);

/* Nearest-neighbour 2x upsampling of [N,C,H,W] to [N,C,2H,2W]; bwd sums each 2x2 block. */
vqz_status vqz_upsample2x_fwd(vqz_nn_ctx *ctx, const vqz_tensor *x, vqz_tensor *y);
vqz_status vqz_upsample2x_bwd(vqz_nn_ctx *ctx, const vqz_tensor *dy, vqz_tensor *dx);

/* Pixel shuffle (PyTorch semantics): [N, C r^2, H, W] -> [N, C, H r, W r]; bwd is the inverse. */
vqz_status vqz_pixel_shuffle_fwd(vqz_nn_ctx *ctx, int r, const vqz_tensor *x, vqz_tensor *y);
vqz_status vqz_pixel_shuffle_bwd(vqz_nn_ctx *ctx, int r, const vqz_tensor *dy, vqz_tensor *dx);

/* Channel concatenation / slicing of [N,C,...] tensors: y = cat(a, b) along dim 1;
 * slice copies channels [c0, c0 + y.C) of x into y. */
vqz_status vqz_concat_channels(vqz_nn_ctx *ctx, const vqz_tensor *a, const vqz_tensor *b, vqz_tensor *y);
vqz_status vqz_slice_channels(vqz_nn_ctx *ctx, const vqz_tensor *x, int64_t c0, vqz_tensor *y);

/* Weight normalisation (PyTorch weight_norm, dim = 0): w[o,...] = g[o] v[o,...] / ||v[o,...]||.
 * bwd takes dw and produces dv, dg (accumulated). */
vqz_status vqz_weight_norm_fwd(vqz_nn_ctx *ctx, const vqz_tensor *v, const vqz_tensor *g, vqz_tensor *w);
vqz_status vqz_weight_norm_bwd(vqz_nn_ctx *ctx, const vqz_tensor *v, const vqz_tensor *g,
                               const vqz_tensor *dw, vqz_tensor *dv, vqz_tensor *dg);

/* Dense layer on rows: y[M,N] = x[M,K] w[N,K]^T + b[N] (OpenBLAS). bwd: dx overwrite, dw/db accumulate. */
vqz_status vqz_linear_fwd(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *w, const vqz_tensor *b,
                          vqz_tensor *y);
vqz_status vqz_linear_bwd(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *w, const vqz_tensor *dy,
                          vqz_tensor *dx, vqz_tensor *dw, vqz_tensor *db);

/* ---------------------------------------------------------------------------- losses (nn/loss.c) */
/* Each returns the loss in *loss and, when grad is non-NULL, OVERWRITES grad with dloss/dx scaled by
 * `weight` (so several losses can be summed by accumulating into one buffer via separate calls). */

/* mean((x - y)^2) over all elements */
vqz_status vqz_mse_loss(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *target, float weight,
                        double *loss, vqz_tensor *grad);
/* mean(|x - y|) over all elements (subgradient 0 at 0) */
vqz_status vqz_l1_loss(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *target, float weight,
                       double *loss, vqz_tensor *grad);

#endif
