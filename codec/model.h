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

#endif
