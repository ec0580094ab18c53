/* codec.h — internal interface between the codec pipelines (image, audio) and the public entry points. */
#ifndef VQZ_CODEC_CODEC_H
#define VQZ_CODEC_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "codec/image_io.h"
#include "codec/model.h"
#include "format/container.h"
#include "include/vqz.h"

/* Monotonic seconds. */
double vqz_now(void);

/* A coding session for one call: a net sharing the model's weights and an engine context. */
vqz_status vqz_codec_session(const vqz_model *m, const vqz_options *o, vqz_net **net, vqz_nn_ctx **ctx);

/* Image pipeline: a decoded source image to a complete .vqz file in memory (caller frees *data). */
vqz_status vqz_image_codec_encode(const vqz_model *m, const vqz_options *o, const vqz_image *img, uint8_t **data,
                                  size_t *size, vqz_report *rep);
/* An opened .vqz image to an image shaped like the original file (caller frees with vqz_image_free). */
vqz_status vqz_image_codec_decode(const vqz_model *m, const vqz_options *o, vqz_container *c, vqz_image **out,
                                  vqz_report *rep);

#endif
