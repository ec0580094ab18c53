/* cuda_ops.h — the CUDA twin of the op interface (nn/ops.h): the same operations on device pointers,
 * enqueued on the context's stream. nn/ calls them only after the op's own shape and argument checks
 * passed, so these check only what is CUDA's own (launch, cuBLAS and allocation errors, mapped to
 * VQZ_ERR_CUDA / VQZ_ERR_NOMEM with a message naming the op). Every pointer is device memory; shapes are
 * the logical NCHW / NCT ones of nn/ops.h and weights keep PyTorch's layouts. Semantics (overwrite
 * outputs, accumulate parameter gradients, aliasing rules) are exactly those of the CPU op of the same
 * name. In a build without nvcc none of this is compiled: nn/ never reaches it because no CUDA
 * context can be created. */
#ifndef VQZ_KERNELS_CUDA_OPS_H
#define VQZ_KERNELS_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "include/vqz.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ memory (kernels/device.cu) */
/* st is a context's CUDA state (nn/ctx.h: ctx->cuda). Sizes in bytes. */
vqz_status vqz_cuda_malloc(void *st, size_t bytes, void **p);
void vqz_cuda_free(void *st, void *p);
vqz_status vqz_cuda_h2d(void *st, void *dst, const void *src, size_t bytes);
vqz_status vqz_cuda_d2h(void *st, void *dst, const void *src, size_t bytes); /* waits for the stream */
vqz_status vqz_cuda_d2d(void *st, void *dst, const void *src, size_t bytes);
vqz_status vqz_cuda_memset0(void *st, void *dst, size_t bytes);
vqz_status vqz_cuda_sync(void *st);
/* A scratch buffer of at least `bytes`, owned by the state and valid until the next call of this
 * function on the same state (each op asks once, at its start). */
vqz_status vqz_cuda_workspace(void *st, size_t bytes, void **p);

/* ------------------------------------------------------------- convolutions (kernels/conv.cu) */
/* Activation applied by fused convolutions (0 none, 1 SiLU, 2 ELU with alpha 1), as vqz_fused_act. */
typedef struct {
    int residual;          /* y = act(res_scale * y + out_scale * (conv + b)) when set */
    float res_scale, out_scale;
    int act;               /* applied to the result */
    int pre_act;           /* applied to x as the convolution reads it; x itself is left unchanged */
} vqz_cuda_fusion;

/* 2-D convolution, NCHW: x[N,Ci,H,W], w[Co,Ci,k,k], b[Co] or NULL, y[N,Co,Ho,Wo];
 * pad_mode 0 zero, 1 replicate. f may be NULL (plain: y = conv + b). x and y never overlap. */
vqz_status vqz_cuda_conv2d_fwd(void *st, const float *x, const float *w, const float *b, float *y, int64_t N,
                               int64_t Ci, int64_t H, int64_t W, int64_t Co, int k, int stride, int pad,
                               int dilation, int pad_mode, const vqz_cuda_fusion *f);
/* dx[N,Ci,H,W] overwritten (skipped when NULL); dw, db accumulated (skipped when NULL). */
vqz_status vqz_cuda_conv2d_bwd(void *st, const float *x, const float *w, const float *dy, float *dx, float *dw,
                               float *db, int64_t N, int64_t Ci, int64_t H, int64_t W, int64_t Co, int k,
                               int stride, int pad, int dilation, int pad_mode);
/* y[N,Co,2H,2W] = conv3x3(nearest_upsample2x(x[N,Ci,H,W])) + b, stride 1, zero pad 1; f's act and
 * out_scale apply (no residual, no pre_act). */
vqz_status vqz_cuda_conv2d_up2x_fwd(void *st, const float *x, const float *w, const float *b, float *y, int64_t N,
                                    int64_t Ci, int64_t H, int64_t W, int64_t Co, const vqz_cuda_fusion *f);

/* 1-D convolution, NCT: x[N,Ci,T], w[Co,Ci,k], y[N,Co,To]; pad_mode 0 zero, 1 replicate, 2 reflect. */
vqz_status vqz_cuda_conv1d_fwd(void *st, const float *x, const float *w, const float *b, float *y, int64_t N,
                               int64_t Ci, int64_t T, int64_t Co, int k, int stride, int pad_l, int pad_r,
                               int dilation, int pad_mode, const vqz_cuda_fusion *f);
vqz_status vqz_cuda_conv1d_bwd(void *st, const float *x, const float *w, const float *dy, float *dx, float *dw,
                               float *db, int64_t N, int64_t Ci, int64_t T, int64_t Co, int k, int stride,
                               int pad_l, int pad_r, int dilation, int pad_mode);

/* Transposed 1-D convolution: x[N,Ci,T], w[Ci,Co,k], y[N,Co,To], To = (T-1) stride + k - crop_l - crop_r. */
vqz_status vqz_cuda_convtr1d_fwd(void *st, const float *x, const float *w, const float *b, float *y, int64_t N,
                                 int64_t Ci, int64_t T, int64_t Co, int k, int stride, int crop_l, int crop_r);
vqz_status vqz_cuda_convtr1d_bwd(void *st, const float *x, const float *w, const float *dy, float *dx, float *dw,
                                 float *db, int64_t N, int64_t Ci, int64_t T, int64_t Co, int k, int stride,
                                 int crop_l, int crop_r);

/* -------------------------------------------------------------- elementwise (kernels/eltwise.cu) */
/* n elements; y may alias x, dx may alias dy (as on the CPU). */
vqz_status vqz_cuda_silu_fwd(void *st, const float *x, float *y, int64_t n);
vqz_status vqz_cuda_silu_bwd(void *st, const float *x, const float *dy, float *dx, int64_t n);
vqz_status vqz_cuda_elu_fwd(void *st, float alpha, const float *x, float *y, int64_t n);
vqz_status vqz_cuda_elu_bwd(void *st, float alpha, const float *x, const float *dy, float *dx, int64_t n);
vqz_status vqz_cuda_leaky_relu_fwd(void *st, float slope, const float *x, float *y, int64_t n);
vqz_status vqz_cuda_leaky_relu_bwd(void *st, float slope, const float *x, const float *dy, float *dx, int64_t n);
/* Snake over x[N,C,L] (L = product of the spatial dims), alpha[C]; dx (may be NULL) overwritten,
 * dalpha (may be NULL) accumulated. */
vqz_status vqz_cuda_snake_fwd(void *st, const float *x, const float *alpha, float *y, int64_t N, int64_t C,
                              int64_t L);
vqz_status vqz_cuda_snake_bwd(void *st, const float *x, const float *alpha, const float *dy, float *dx,
                              float *dalpha, int64_t N, int64_t C, int64_t L);
/* y = a + scale * b (y may alias a or b); y += alpha x; y = alpha x (y may alias x). */
vqz_status vqz_cuda_add_scaled(void *st, const float *a, float scale, const float *b, float *y, int64_t n);
vqz_status vqz_cuda_axpy(void *st, float alpha, const float *x, float *y, int64_t n);
vqz_status vqz_cuda_scale(void *st, float alpha, const float *x, float *y, int64_t n);
/* Nearest 2x upsampling of x[NC,H,W] (NC = N*C planes) to y[NC,2H,2W]; bwd sums each 2x2 block. */
vqz_status vqz_cuda_upsample2x_fwd(void *st, const float *x, float *y, int64_t NC, int64_t H, int64_t W);
vqz_status vqz_cuda_upsample2x_bwd(void *st, const float *dy, float *dx, int64_t NC, int64_t H, int64_t W);
/* Pixel shuffle (PyTorch): x[N, C r^2, H, W] -> y[N, C, H r, W r]; bwd the inverse. */
vqz_status vqz_cuda_pixel_shuffle_fwd(void *st, int r, const float *x, float *y, int64_t N, int64_t C, int64_t H,
                                      int64_t W);
vqz_status vqz_cuda_pixel_shuffle_bwd(void *st, int r, const float *dy, float *dx, int64_t N, int64_t C, int64_t H,
                                      int64_t W);
/* y[N, Ca+Cb, L] = cat(a[N,Ca,L], b[N,Cb,L]); slice: y[N,Cy,L] = x[N, c0 .. c0+Cy, L] of x[N,Cx,L]. */
vqz_status vqz_cuda_concat_channels(void *st, const float *a, const float *b, float *y, int64_t N, int64_t Ca,
                                    int64_t Cb, int64_t L);
vqz_status vqz_cuda_slice_channels(void *st, const float *x, float *y, int64_t N, int64_t Cx, int64_t c0,
                                   int64_t Cy, int64_t L);
/* Weight norm over rows: v[O, R], g[O], w[O, R] = g v / ||v_row||; bwd: dv overwritten, dg accumulated. */
vqz_status vqz_cuda_weight_norm_fwd(void *st, const float *v, const float *g, float *w, int64_t O, int64_t R);
vqz_status vqz_cuda_weight_norm_bwd(void *st, const float *v, const float *g, const float *dw, float *dv,
                                    float *dg, int64_t O, int64_t R);
/* Dense layer on rows (cuBLAS): y[M,N] = x[M,K] w[N,K]^T + b[N]; bwd: dx overwritten, dw, db accumulated. */
vqz_status vqz_cuda_linear_fwd(void *st, const float *x, const float *w, const float *b, float *y, int64_t M,
                               int64_t K, int64_t N);
vqz_status vqz_cuda_linear_bwd(void *st, const float *x, const float *w, const float *dy, float *dx, float *dw,
                               float *db, int64_t M, int64_t K, int64_t N);
/* Losses over n elements: *loss = mean((x-t)^2) or mean(|x-t|) (summed in double, a fixed order);
 * grad (may be NULL) overwritten with weight * dloss/dx. */
vqz_status vqz_cuda_mse_loss(void *st, const float *x, const float *t, float weight, double *loss, float *grad,
                             int64_t n);
vqz_status vqz_cuda_l1_loss(void *st, const float *x, const float *t, float weight, double *loss, float *grad,
                            int64_t n);

/* ----------------------------------------------------------------------- quantizer (kernels/rvq.cu) */
/* Residual VQ search with the CPU's exact semantics (nn/rvq.c): codebooks cb[levels][K][D], latents
 * x[N][D][S]; for each level the nearest codeword of the running residual by the GEMM form
 * ||c||^2 - 2 c.r, with candidates within the float error bound compared again exactly (squared
 * distance summed in double in ascending d, exact copies of an earlier codeword skipped, ties to the
 * lower index), so the chosen indices equal the CPU's for the same inputs. idx[levels][N][S] (device),
 * xq[N][D][S] (device, may be NULL) the sum of the chosen codewords, commit (host, may be NULL) the sum
 * over levels of the squared residual norms after each level. */
vqz_status vqz_cuda_rvq_encode(void *st, const float *cb, int levels, int K, int D, const float *x, int64_t N,
                               int64_t S, int32_t *idx, float *xq, double *commit);
/* xq[N][D][S] = sum over the first `levels` levels of cb[l][idx[l][n][s]] (indices already checked). */
vqz_status vqz_cuda_rvq_decode(void *st, const float *cb, int levels, int K, int D, const int32_t *idx, int64_t N,
                               int64_t S, float *xq);

#ifdef __cplusplus
}
#endif

#endif
