/* msssim.h — multi-scale structural similarity (MS-SSIM) of images in [-1, 1], and the loss
 * 1 - MS-SSIM with its exact gradient.
 *
 * Definition (that of pytorch_msssim.ms_ssim(X, Y, data_range=2), which tests/reference/losses_ref.py
 * re-implements in PyTorch for the golden values):
 *   Images x, y are [N, C, H, W]; each (n, c) plane is scored separately.
 *   Window: 11-tap Gaussian g[i] = exp(-(i-5)^2 / (2 1.5^2)) / sum, applied separably as the 11x11
 *   window g g^T with 'valid' filtering (no padding): an H x W plane gives (H-10) x (W-10) maps.
 *   C1 = (0.01 * 2)^2, C2 = (0.03 * 2)^2 (data range 2). Per scale:
 *     mu_x = G x, mu_y = G y, s_xx = G(x^2) - mu_x^2, s_yy = G(y^2) - mu_y^2, s_xy = G(x y) - mu_x mu_y
 *     cs   = mean over the map of (2 s_xy + C2) / (s_xx + s_yy + C2)
 *     ssim = mean over the map of (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) * the cs map
 *   Scales 1..5; between scales both images are 2x2 average-pooled; an odd side is zero-padded by one
 *   on both ends and the pooled value is still the sum over 4 (torch avg_pool2d with padding = side % 2
 *   and count_include_pad), so a side S becomes ceil(S / 2).
 *   MS-SSIM(plane) = prod_{s=1..4} relu(cs_s)^w_s * relu(ssim_5)^w_5 with
 *   w = {0.0448, 0.2856, 0.3001, 0.2363, 0.1333}; negative cs/ssim are clamped to 0 by the relu, as
 *   pytorch_msssim does. The result is the mean over all planes.
 * Five scales need H, W >= 161 (the last scale must still hold the 11-px window); smaller images are a
 * VQZ_ERR_SHAPE error, as in the reference implementations. Values outside [-1, 1] are not refused.
 */
#ifndef VQZ_NN_MSSSIM_H
#define VQZ_NN_MSSSIM_H

#include "nn/ctx.h"

#define VQZ_MSSSIM_MIN_SIDE 161

/* MS-SSIM of x against y ([N, C, H, W], identical shapes) in *value; identical images give exactly 1. */
vqz_status vqz_msssim(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *y, double *value);

/* *loss = 1 - MS-SSIM(x, target) (unweighted); grad (same shape, may be NULL) is OVERWRITTEN with
 * weight * dloss/dx. Where a plane's product is 0 (a clamped cs/ssim), that plane's gradient is 0. */
vqz_status vqz_msssim_loss(vqz_nn_ctx *ctx, const vqz_tensor *x, const vqz_tensor *target, float weight,
                           double *loss, vqz_tensor *grad);

#endif
