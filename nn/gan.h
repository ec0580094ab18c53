/* gan.h — the adversarial stage for audio training: a multi-scale STFT discriminator (MS-STFTD, after
 * EnCodec) with its forward and backward passes, hinge losses, feature matching and its own AdamW state.
 * Training only: the discriminator is never part of a model bundle.
 *
 * Definition. Signals are [N, 1, T] (T >= 1). For each scale s = 0 .. S-1 with FFT size n = n_fft[s]:
 *   window   w[j] = 0.5 - 0.5 cos(2 pi j / n), j = 0..n-1          (periodic Hann)
 *   hop      h = n / 4; the signal is zero-padded by n/2 on both sides (torch.stft center=True,
 *            pad_mode="constant"), giving F = floor(T / h) + 1 frames; every sample lies in some frame
 *   spectrum X[b,f,k] = c sum_j w[j] x[b, f h - n/2 + j] exp(-2 pi i k j / n), k = 0 .. K-1, K = n/2 + 1,
 *            c = 1 / sqrt(sum_j w[j]^2) (torchaudio's normalized=True), x = 0 outside [0, T)
 *   input    z_0 [N, 2, F, K]: channel 0 = Re X, channel 1 = Im X (frames along H, bins along W)
 *   layers   (conv2d(k, stride, pad) as in spec/models.md, all 3x3 with padding 1, C = channels):
 *              a_0 = lrelu(conv2d(3, 1, 1)(z_0))                 2 -> C    d.{s}.0
 *              a_i = lrelu(conv2d(3, 2, 1)(a_{i-1})), i = 1..L   C -> C    d.{s}.{i}      (L = layers)
 *              D_s = conv2d(3, 1, 1)(a_L)                        C -> 1    d.{s}.{L+1}
 *            lrelu(v) = v for v > 0, slope v otherwise (slope 0.2). The feature maps of scale s are a_0 .. a_L.
 * Losses (mean = over every element of the tensor, the batch included; x real, y generated):
 *   discriminator  L_D  = sum_s [ mean(relu(1 - D_s(x))) + mean(relu(1 + D_s(y))) ]
 *   adversarial    adv  = sum_s mean(relu(1 - D_s(y)))
 *   feature match  feat = 1/(S (L+1)) sum_s sum_{i=0..L} mean|a_i(x) - a_i(y)| / (mean|a_i(x)| + 1e-8)
 * Subgradients at the kinks: relu'(0) = 0, lrelu'(0) = slope, sign(0) = 0.
 * Parameters: per scale and layer l = 0 .. L+1 a weight d.{s}.{l}.weight [Co, Ci, 3, 3] and a bias
 * d.{s}.{l}.bias [Co], in that order, scales in order, in one flat block. Initialisation: weights
 * N(0, 2 / fan_in) (fan_in = Ci 9), biases 0. Optimiser: AdamW with betas 0.5 / 0.9, eps 1e-8, no weight
 * decay, after global-norm gradient clipping.
 * Scratch, grown on demand and kept between calls: the activations of one scale and one signal at a time,
 * x's feature maps and two gradient buffers, about 470 MB at the defaults for 16 x 24000 samples.
 */
#ifndef VQZ_NN_GAN_H
#define VQZ_NN_GAN_H

#include <stdint.h>

#include "nn/net.h"

#define VQZ_DISC_MAX_SCALES 4

typedef struct {
    int scales;                    /* S, 1..VQZ_DISC_MAX_SCALES */
    int n_fft[VQZ_DISC_MAX_SCALES]; /* each a multiple of 4 in 16..16384 */
    int channels;                  /* C, 1..1024 */
    int layers;                    /* L, stride-2 convolutions, 0..8 */
    float slope;                   /* LeakyReLU negative slope, in (0, 1] (1 makes the stack linear) */
} vqz_disc_config;

/* The defaults: S = 3 with n_fft 512, 1024, 2048; C = 32; L = 3; slope 0.2. */
void vqz_disc_config_default(vqz_disc_config *c);

/* The discriminator. The fields up to `step` are for the trainer to read and to checkpoint (write params,
 * adam_m, adam_v and step back to resume); the rest is private state. */
typedef struct vqz_disc {
    vqz_disc_config cfg;
    int n_tensors;          /* 2 S (L + 2) */
    vqz_param_info *info;   /* [n_tensors]: name, shape, offset into params (decay 0, trainable 1) */
    int64_t n_params;       /* floats in each of params, grads, adam_m, adam_v */
    float *params, *grads, *adam_m, *adam_v;
    int64_t step;           /* AdamW steps taken */
    void *priv;             /* FFT plans, parameter views and scratch (nn/gan.c) */
} vqz_disc;

/* Build, allocate and initialise a discriminator from a seed (the same seed gives the same bits).
 * c == NULL means the defaults. Plans the FFTs: creation is serialised among discriminators, but must not
 * run concurrently with other FFTW planning in the process (vqz_stft_loss_create). */
vqz_status vqz_disc_create(const vqz_disc_config *c, uint64_t seed, vqz_disc **out);
void vqz_disc_free(vqz_disc *d);

/* Parameter id by name, or -1. */
int vqz_disc_find(const vqz_disc *d, const char *name);

/* Discriminator step: L_D of real x against generated y (both [N, 1, T], y treated as a constant) into
 * *loss; the parameter gradients are zeroed first and left in d->grads. */
vqz_status vqz_disc_grad(vqz_nn_ctx *ctx, vqz_disc *d, const vqz_tensor *x, const vqz_tensor *y, double *loss);

/* Clip d->grads to global norm `clip` (0 = off) and take one AdamW step (betas 0.5 / 0.9, no decay) at
 * learning rate lr. *grad_norm (may be NULL) receives the norm before clipping. VQZ_ERR_NONFINITE, with
 * nothing changed, when the gradient holds a NaN or Inf. */
vqz_status vqz_disc_apply(vqz_nn_ctx *ctx, vqz_disc *d, float lr, float clip, double *grad_norm);

/* Generator terms: adv and feat (definitions above) of generated y against real x, into *adv and *feat
 * (either may be NULL), and w_adv d(adv)/dy + w_feat d(feat)/dy ADDED into dy (same shape as y; x is a
 * constant; dy NULL evaluates the terms only). The discriminator's gradients are left untouched. */
vqz_status vqz_disc_generator_terms(vqz_nn_ctx *ctx, vqz_disc *d, const vqz_tensor *x, const vqz_tensor *y,
                                    float w_adv, float w_feat, vqz_tensor *dy, double *adv, double *feat);

/* The scale-s STFT alone (exposed for tests): frames of a T-sample signal, z = STFT(x) with x [N, 1, T]
 * and z [N, 2, F, K], and its exact adjoint: dx += STFT^T(g) for g [N, 2, F, K]. */
int64_t vqz_disc_frames(const vqz_disc *d, int s, int64_t T);
vqz_status vqz_disc_stft(vqz_nn_ctx *ctx, vqz_disc *d, int s, const vqz_tensor *x, vqz_tensor *z);
vqz_status vqz_disc_stft_adjoint(vqz_nn_ctx *ctx, vqz_disc *d, int s, const vqz_tensor *g, vqz_tensor *dx);

#endif
