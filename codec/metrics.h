/* metrics.h — full-reference quality metrics behind vqz_eval_* and vqz-eval: PSNR and MS-SSIM for images,
 * SI-SDR, SNR, log-mel and multi-resolution STFT distances for audio, each defined exactly below.
 *
 * IMAGES (vqz_eval_images / vqz_eval_pixels). Both images must have the same width and height
 * (VQZ_ERR_SHAPE naming both sizes otherwise). Samples are normalised to [0, 1] by the maximum of their own
 * bit depth (255 or 65535), so 8- and 16-bit files compare on one scale. Alpha is never compared. When both
 * images are grey they are compared as one grey plane; otherwise a grey image is replicated into R = G = B
 * and three planes are compared.
 *   PSNR     = 10 log10(1 / MSE), MSE the mean of (a - b)^2 over every colour sample in [0, 1]; this is
 *              skimage.metrics.peak_signal_noise_ratio on the integer samples with data_range 255 (8-bit) or
 *              65535 (16-bit). +inf when the images are equal.
 *   PSNR-Y   = 10 log10(255^2 / MSE_Y) on the BT.601 luma of scikit-image's rgb2ycbcr (the studio-range
 *              "Y" of super-resolution and JPEG papers): Y = 16 + 65.481 R + 128.553 G + 24.966 B with R, G, B in
 *              [0, 1], so Y is in [16, 235]; not rounded. A grey image has Y = 16 + 219 v.
 *   MS-SSIM  = the 5-scale definition of Wang, Simoncelli and Bovik (2003) as computed by pytorch_msssim's
 *              ms_ssim (and, on even sides, identically by TensorFlow's tf.image.ssim_multiscale):
 *              window the 11x11 Gaussian g g^T, g[i] = exp(-(i-5)^2 / (2 * 1.5^2)) normalised to sum 1, applied
 *              'valid' (no padding: an H x W plane gives (H-10) x (W-10) maps); C1 = (0.01 L)^2, C2 = (0.03 L)^2
 *              with L the data range (1 for the colour planes, 255 for Y);
 *                mu_x = G x, s_xx = G(x^2) - mu_x^2, s_xy = G(x y) - mu_x mu_y (likewise y),
 *                cs_s   = mean of (2 s_xy + C2) / (s_xx + s_yy + C2),
 *                ssim_s = mean of (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) * the cs map;
 *              between scales both planes are 2x2 average-pooled; an odd side is zero-padded by one at both
 *              ends and each pooled value is still the sum of its 4 taps / 4 (torch avg_pool2d with
 *              padding = side % 2, count_include_pad), so a side S becomes ceil(S / 2);
 *                MS-SSIM = prod_{s=1..4} max(cs_s, 0)^w_s * max(ssim_5, 0)^w_5,
 *                w = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333).
 *              Computed per colour plane and averaged (RGB: mean of three), and on the Y plane.
 *              Five scales need both sides >= 161 px. A smaller image (both sides >= 11) gets the single-scale
 *              SSIM instead, ssim_1 above (= skimage's structural_similarity with gaussian_weights=True,
 *              sigma=1.5, use_sample_covariance=False), and scales = 1 says so; a side below 11 px gets NaN
 *              and scales = 0.
 *
 * AUDIO (vqz_eval_audio / vqz_eval_signals). The channel counts must agree (VQZ_ERR_SHAPE). A test signal at
 * another sample rate is first resampled to the reference's rate (codec/resample.h, SoX HQ); then both are
 * cut to the shorter length, and length_mismatch is set when the lengths differ by more than 1% of the
 * longer. Samples are libsndfile's floats (integer PCM / 2^(bits-1)). Every metric is computed per channel
 * and the per-channel values are averaged (a NaN in one channel makes the mean NaN).
 *   SI-SDR   (Le Roux et al. 2019, zero-mean): s = ref - mean(ref), e = test - mean(test),
 *              a = <e, s> / <s, s>, SI-SDR = 10 log10(|a s|^2 / |a s - e|^2) dB; no epsilon. NaN when the
 *              reference channel is constant, +inf when e = a s exactly.
 *   SNR      = 10 log10(sum ref^2 / sum (ref - test)^2) dB.
 *   mel distance (the log-mel L1 distance of DAC's MelSpectrogramLoss at one resolution):
 *              STFT with n_fft = 2048, hop 512, periodic Hann window of 2048, centred frames: the signal is
 *              reflect-padded by 1024 at both ends (x[-i] = x[i]; torch.stft / librosa center=True with
 *              pad_mode 'reflect'), frames f = 0 .. T / 512 (integer division); magnitudes |X| (power 1);
 *              80 mel bands from librosa.filters.mel(sr, 2048, 80) with its defaults (Slaney mel scale,
 *              htk=False; norm='slaney' area normalisation; fmin 0, fmax sr / 2), sr the reference's rate;
 *              M = filterbank x |X|; distance = mean over bands and frames of
 *              |log10(max(M_test, 1e-5)) - log10(max(M_ref, 1e-5))|. Needs T > 1024 frames, else NaN.
 *   mel distance, DAC multi-scale (DAC's training mel loss, conf/base.yml of descript-audio-codec): the
 *              same with window / n_fft n in {32, 64, 128, 256, 512, 1024, 2048}, hop n / 4, and
 *              {5, 10, 20, 40, 80, 160, 320} mel bands respectively, power 1, clamp 1e-5; the SUM of the seven
 *              distances. Needs T > 1024, else NaN.
 *   STFT distance: the multi-resolution STFT loss of nn/stft_loss.h with FFT sizes 512, 1024, 2048
 *              (spectral convergence + mean log-magnitude L1, averaged over the sizes), the test signal as
 *              the prediction and the reference as the target, one channel at a time. Needs T >= 2048,
 *              else NaN.
 */
#ifndef VQZ_CODEC_METRICS_H
#define VQZ_CODEC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define VQZ_METRIC_SSIM_WIN 11
#define VQZ_METRIC_MSSSIM_MIN_SIDE 161

/* Mean of (a[i] - b[i])^2 over n samples; 0 when n is 0. */
double vqz_metric_mse(const double *a, const double *b, size_t n);

/* 10 log10(peak^2 / mse); +inf when mse is 0. */
double vqz_metric_psnr(double mse, double peak);

/* PSNR of a model output y against its input x, both in the model's range [-1, 1], as the codec delivers
 * them: both rounded to 8-bit levels (y clamped to 0..255), peak 255. */
double vqz_metric_psnr_8bit(const float *x, const float *y, int64_t n);

/* BT.601 studio-range luma of scikit-image's rgb2ycbcr from planes in [0, 1] (n samples each). */
void vqz_metric_luma(const double *r, const double *g, const double *b, size_t n, double *y);

/* SSIM of one H x W plane pair (row-major) with data range L, as defined above: scales 5 (MS-SSIM, both
 * sides >= 161) or 1 (single-scale SSIM, both sides >= 11); VQZ_ERR_SHAPE when the plane is too small for
 * the scales asked, VQZ_ERR_INVALID_ARG for other scale counts, VQZ_ERR_NOMEM. */
vqz_status vqz_metric_ssim_plane(const double *x, const double *y, int H, int W, double L, int scales,
                                 double *value);

/* Zero-mean SI-SDR and SNR of test against ref (n samples), in dB. */
double vqz_metric_si_sdr(const float *ref, const float *test, int64_t n);
double vqz_metric_snr(const float *ref, const float *test, int64_t n);

/* librosa.filters.mel(sr=sample_rate, n_fft, n_mels, fmin, fmax, htk=False, norm='slaney') in double:
 * fb[n_mels][n_fft / 2 + 1], row-major. n_fft even >= 2, n_mels >= 1, 0 <= fmin < fmax. */
vqz_status vqz_metric_mel_filterbank(double sample_rate, int n_fft, int n_mels, double fmin, double fmax,
                                     double *fb);

/* The log-mel L1 distance above at one resolution: window and FFT size n_fft (a power of two, 4..65536),
 * hop n_fft / 4, n_mels Slaney bands up to sample_rate / 2. *value is NaN when n <= n_fft / 2. */
vqz_status vqz_metric_mel_distance(const float *ref, const float *test, int64_t n, double sample_rate, int n_fft,
                                   int n_mels, double *value);

/* DAC's seven-resolution sum of mel distances (above). NaN when n <= 1024. */
vqz_status vqz_metric_mel_distance_dac(const float *ref, const float *test, int64_t n, double sample_rate,
                                       double *value);

/* nn/stft_loss.h's multi-resolution STFT loss (512, 1024, 2048) of test against ref, one signal of n
 * samples. NaN when n < 2048. */
vqz_status vqz_metric_stft_distance(const float *ref, const float *test, int64_t n, double *value);

#endif
