/* audio_codec.h — the audio pipeline: any audio file (or stdin) → per-channel resampling to the model
 * rate → chunks with a halo → network → index grid (one plane per channel) → .vqz, and back to WAV/FLAC
 * (or a WAV stream on stdout) at the original rate. Memory stays bounded by the chunk size. */
#ifndef VQZ_CODEC_AUDIO_CODEC_H
#define VQZ_CODEC_AUDIO_CODEC_H

#include "codec/codec.h"

/* Encode audio file `in` ("-" = stdin) to the .vqz file `out` (atomic; "-" = stdout). */
vqz_status vqz_audio_codec_encode_file(const vqz_model *m, const vqz_options *o, const char *in, const char *out,
                                       vqz_report *rep);
/* Decode an opened .vqz audio file to `out` (.wav or .flac by extension, atomic; "-" = WAV on stdout). */
vqz_status vqz_audio_codec_decode(const vqz_model *m, const vqz_options *o, vqz_container *c, const char *out,
                                  vqz_report *rep);

#endif
