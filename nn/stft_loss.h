/* stft_loss.h — multi-resolution STFT magnitude loss for audio (FFTW single precision) and its exact
 * gradient.
 *
 * Definition (tests/reference/losses_ref.py is its PyTorch twin, checked by tests/test_loss.cpp):
 *   Signals x (prediction) and y (target) are [N, C, T]; each of the B = N C rows is one signal.
 *   For each FFT size n in the loss object (default {512, 1024, 2048}):
 *     window   w[t] = 0.5 - 0.5 cos(2 pi t / n), t = 0..n-1     (periodic Hann, torch.hann_window(n))
 *     hop      h = n / 4; frames f = 0 .. F-1 with F = floor((T - n) / h) + 1 (no centering, no padding)
 *     spectrum X[b,f,k] = sum_t w[t] x[b, f h + t] exp(-2 pi i k t / n), k = 0 .. n/2
 *     magnitude m_x = sqrt(re^2 + im^2 + 1e-7), likewise m_y
 *     L_n = ||m_y - m_x||_F / ||m_y||_F                     (spectral convergence; Frobenius norms over
 *                                                              all b, f, k together)
 *         + mean_{b,f,k} |log m_y - log m_x|                (log-magnitude L1, mean over B F (n/2+1))
 *   loss = mean over the FFT sizes of L_n.
 * In PyTorch: torch.stft(x, n, hop_length=n//4, win_length=n, window=torch.hann_window(n),
 * center=False, return_complex=True), then the formulas above.
 *
 * The gradient is exact (the inverse real FFT of the magnitude gradient, windowed and overlap-added);
 * at |log m_y - log m_x| = 0 the subgradient 0 is used, and the spectral-convergence term contributes 0
 * when m_x = m_y everywhere. Samples past the last frame get gradient 0.
 */
#ifndef VQZ_NN_STFT_LOSS_H
#define VQZ_NN_STFT_LOSS_H

#include "nn/ctx.h"

typedef struct vqz_stft_loss vqz_stft_loss;

#define VQZ_STFT_MAX_SIZES 8

/* Create a loss object with FFTW plans for each size (each a multiple of 4, 16..65536, at most
 * VQZ_STFT_MAX_SIZES of them). fft_sizes == NULL with n_sizes == 0 gives the default {512, 1024, 2048}.
 * Plan creation is serialised internally, so objects may be created from several threads. */
vqz_status vqz_stft_loss_create(vqz_stft_loss **out, const int *fft_sizes, int n_sizes);
void vqz_stft_loss_free(vqz_stft_loss *l);

/* Evaluate the loss of x against target (both [N, C, T], T >= the largest FFT size). *loss receives the
 * unweighted loss; grad (same shape, may be NULL) is OVERWRITTEN with weight * dloss/dx. The object keeps
 * scratch buffers between calls: use one object from one thread at a time. VQZ_ERR_NONFINITE when the
 * loss is NaN/Inf (non-finite input). */
vqz_status vqz_stft_loss_eval(vqz_nn_ctx *ctx, vqz_stft_loss *l, const vqz_tensor *x, const vqz_tensor *target,
                              float weight, double *loss, vqz_tensor *grad);

#endif
