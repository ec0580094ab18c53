/* audio_stream.h — internal queries on the stream encoder and decoder of vqz.h (for tests). */
#ifndef VQZ_CODEC_AUDIO_STREAM_H
#define VQZ_CODEC_AUDIO_STREAM_H

#include <stddef.h>

#include "include/vqz.h"

/* Bytes the handle holds in its growable buffers (sample and index windows, scratch, queued packets or
 * decoded PCM), net and engine excluded: what must stay bounded however long the stream runs. */
size_t vqz_audio_encoder_buffered_bytes(const vqz_audio_encoder *e);
size_t vqz_audio_decoder_buffered_bytes(const vqz_audio_decoder *d);

#endif
