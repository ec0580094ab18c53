/* audio_codec.c — the audio pipeline (see audio_codec.h). */
#include "codec/audio_codec.h"

#include "common/status.h"

vqz_status vqz_audio_codec_encode_file(const vqz_model *m, const vqz_options *o, const char *in, const char *out,
                                       vqz_report *rep)
{
    (void)m, (void)o, (void)out, (void)rep;
    return vqz_fail(VQZ_ERR_UNSUPPORTED, "%s: audio coding is not available in this build yet", in);
}

vqz_status vqz_audio_codec_decode(const vqz_model *m, const vqz_options *o, vqz_container *c, const char *out,
                                  vqz_report *rep)
{
    (void)m, (void)o, (void)c, (void)rep;
    return vqz_fail(VQZ_ERR_UNSUPPORTED, "%s: audio decoding is not available in this build yet", out);
}
