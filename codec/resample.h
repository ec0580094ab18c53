/* resample.h — sample-rate conversion for the audio pipeline (to the model's rate on encode, back to the
 * original rate on decode): a streaming resampler around libsoxr and a one-shot helper. */
#ifndef VQZ_CODEC_RESAMPLE_H
#define VQZ_CODEC_RESAMPLE_H

#include <stddef.h>

#include "common/status.h"

/* Alignment: libsoxr removes its filter's delay itself, so output frame k is the signal at time
 * k / out_rate, the same instant as input frame k * in_rate / out_rate: nothing is shifted, and
 * 44.1k -> 24k -> 44.1k returns a sine in place. While streaming, output lags input by the filter's
 * delay; vqz_resampler_flush() releases the tail. A whole stream of n input frames always yields exactly
 * vqz_resample_length(n, in_rate, out_rate) = round(n * out_rate / in_rate) output frames: the tail
 * libsoxr produces beyond that is dropped, and a shortfall (not seen in practice) is filled with zeros.
 * Quality: SOXR_HQ (20-bit, passband to 91% of the lower Nyquist), float32, one thread. */

typedef struct vqz_resampler vqz_resampler;

/* Rates in Hz within [1000, 768000] (VQZ_ERR_LIMIT otherwise; 8000..384000 is the tested range),
 * channels 1..64. Identical rates make a plain copy, bit-exact. Buffers are INTERLEAVED float
 * (buf[i * channels + c]); all counts are in frames. */
vqz_status vqz_resampler_create(double in_rate, double out_rate, int channels, vqz_resampler **out);

/* Output capacity (frames) that lets the next process() call with n_in input frames, or a flush() call
 * with n_in = 0, return everything available. */
size_t vqz_resampler_out_bound(const vqz_resampler *r, size_t n_in);

/* Consume all n_in input frames and write up to cap output frames to out, *n_out of them. Output that does
 * not fit stays buffered and comes out on later calls (process with n_in = 0 just drains). in may be NULL
 * only when n_in is 0. Errors: VQZ_ERR_INVALID_ARG (after flush, NULL buffers), VQZ_ERR_INTERNAL (libsoxr). */
vqz_status vqz_resampler_process(vqz_resampler *r, const float *in, size_t n_in, float *out, size_t cap,
                                 size_t *n_out);

/* End of input: write up to cap frames of the remaining output. Call until *n_out is 0; the stream's total
 * output is then exactly vqz_resample_length(total input). */
vqz_status vqz_resampler_flush(vqz_resampler *r, float *out, size_t cap, size_t *n_out);

/* NULL is a no-op. */
void vqz_resampler_free(vqz_resampler *r);

/* round(n_in * out_rate / in_rate): the output length of a whole stream. */
size_t vqz_resample_length(size_t n_in, double in_rate, double out_rate);

/* Resample a whole signal of n_in frames into out, which must hold n_out =
 * vqz_resample_length(n_in, in_rate, out_rate) frames (VQZ_ERR_INVALID_ARG otherwise). Same result as
 * streaming the input through a resampler in any block sizes. */
vqz_status vqz_resample_all(double in_rate, double out_rate, int channels, const float *in, size_t n_in, float *out,
                            size_t n_out);

#endif
