/* model.h — the public vqz_model handle's contents, shared by the codec pipelines. */
#ifndef VQZ_CODEC_MODEL_H
#define VQZ_CODEC_MODEL_H

#include <stdint.h>

#include "format/bundle.h"
#include "include/vqz.h"
#include "nn/net.h"

struct vqz_model {
    char name[256];
    uint8_t sha256[32];
    vqz_net_config cfg;
    vqz_net *net;          /* owns the weights; coding calls run on nets sharing them */
};

/* Write a network's weights as a bundle (spec/bundle.md) named `name`, with extra metadata given as
 * NULL-terminated key, value pairs (may be NULL); atomic. sha256 (may be NULL) gets the bundle hash. */
vqz_status vqz_net_save_bundle(const vqz_net *net, const char *name, const char *const *extra_meta, const char *path,
                               uint8_t sha256[32]);
/* The same with the tensors stored as `dtype` (VQZ_DTYPE_F32, F16 or BF16; rounded to nearest even). */
vqz_status vqz_net_save_bundle_as(const vqz_net *net, const char *name, const char *const *extra_meta, const char *path,
                                  vqz_dtype dtype, uint8_t sha256[32]);

#endif
