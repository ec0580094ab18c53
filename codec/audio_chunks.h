/* audio_chunks.h — the pieces of chunked audio coding shared by the file pipeline (audio_codec.c) and the
 * stream API (audio_stream.c): the window of model-rate samples, resampling into a callback, and coding
 * one span of latent frames with its halo, so that any span schedule gives whole-signal results. */
#ifndef VQZ_CODEC_AUDIO_CHUNKS_H
#define VQZ_CODEC_AUDIO_CHUNKS_H

#include <stddef.h>
#include <stdint.h>

#include "codec/codec.h"
#include "codec/resample.h"

/* The model-rate signal from the oldest sample a later span still needs to the newest produced. */
typedef struct {
    int channels;
    int64_t start;    /* model-rate position of the first frame held */
    int64_t len, cap;
    float *data;      /* planar: channel c at data + c * cap */
} vqz_sample_window;

/* Appends n interleaved frames (zeros when inter is NULL), first dropping the frames before keep_from
 * when room is needed. */
vqz_status vqz_sample_window_append(vqz_sample_window *w, const float *inter, int64_t n, int64_t keep_from);
void vqz_sample_window_free(vqz_sample_window *w);

/* Receives n interleaved frames. */
typedef vqz_status (*vqz_frames_sink)(void *user, const float *inter, int64_t n);

/* Runs n interleaved frames through rs and hands the output to sink; with flush (in ignored), drains the
 * resampler's tail until it gives nothing. *buf / *cap are scratch kept by the caller between calls. */
vqz_status vqz_resample_into(vqz_resampler *rs, int channels, const float *in, int64_t n, int flush, float **buf,
                             size_t *cap, vqz_frames_sink sink, void *user);

/* VQZ_ERR_FORMAT unless `frames` latent frames of f samples are the fewest that hold `samples` samples
 * at `rate` once resampled to model_rate (the last frame padded with zeros). */
vqz_status vqz_audio_check_length(uint64_t samples, uint32_t rate, uint32_t model_rate, uint64_t frames, int f);

/* A net with its engine context and scratch, coding spans of latent frames one channel at a time. */
typedef struct {
    vqz_nn_ctx *ctx;
    vqz_net *net;
    int f;                       /* model-rate samples per latent frame */
    int enc_halo;                /* encoder halo in model-rate samples (a multiple of f) */
    int dec_halo;                /* decoder halo in latent frames */
    const volatile int *cancel;
    float *x;                    /* one channel's samples */
    int32_t *idx;                /* one channel's indices [level][frame] */
    size_t x_cap, idx_cap;
} vqz_span_coder;

/* A session on m (vqz_codec_session) with o's device, threads and cancel flag. */
vqz_status vqz_span_coder_open(vqz_span_coder *sc, const vqz_model *m, const vqz_options *o);
void vqz_span_coder_close(vqz_span_coder *sc);

/* Encodes latent frames [c0, c1) of every channel of w: samples [c0 f - halo, c1 f + halo), clipped to
 * [0, padded_len), which w must hold. Writes dst[l][c * (c1 - c0) + j] for the first `levels` levels. */
vqz_status vqz_span_encode(vqz_span_coder *sc, const vqz_sample_window *w, int levels, int64_t c0, int64_t c1,
                           int64_t padded_len, uint16_t *const *dst);

/* Decodes latent frames [c0, c1) of every channel from the indices of frames [c0 - halo, c1 + halo)
 * clipped to [0, known): frame j of channel c at level l is grid[(l * channels + c) * row + j - first].
 * Writes the (c1 - c0) f core samples interleaved into inter. */
vqz_status vqz_span_decode(vqz_span_coder *sc, const uint16_t *grid, int64_t row, int64_t first, int channels,
                           int levels, int64_t c0, int64_t c1, int64_t known, float *inter);

#endif
