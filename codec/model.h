/* model.h — the public vqz_model handle's contents, shared by the codec pipelines. */
#ifndef VQZ_CODEC_MODEL_H
#define VQZ_CODEC_MODEL_H

#include <stdint.h>

#include "format/bundle.h"
#include "format/container.h"
#include "format/arith.h"
#include "include/vqz.h"
#include "nn/net.h"

struct vqz_model {
    char name[256];
    uint8_t sha256[32];
    vqz_net_config cfg;
    vqz_net *net;          /* owns the weights; coding calls run on nets sharing them */
    int has_prior;         /* the bundle's optional rvq.prior: one entropy-coding prior per level */
    vqz_prior prior[VQZ_MAX_LEVELS];
};

/* Name of the optional prior tensor (spec/bundle.md §3.1): F32 [L, K], integer frequencies summing to 2^24. */
#define VQZ_PRIOR_TENSOR "rvq.prior"

/* Give a writer or a reader the model's priors (no-op for a model without them); call the reader's after
 * vqz_container_check_model. The priors stay owned by the model, which must outlive w or c. */
vqz_status vqz_model_prior_to_writer(const vqz_model *m, vqz_container_writer *w, int levels);
vqz_status vqz_model_prior_to_reader(const vqz_model *m, vqz_container *c);

/* Write a network's weights as a bundle (spec/bundle.md) named `name`, with extra metadata given as
 * NULL-terminated key, value pairs (may be NULL); atomic. sha256 (may be NULL) gets the bundle hash. */
vqz_status vqz_net_save_bundle(const vqz_net *net, const char *name, const char *const *extra_meta, const char *path,
                               uint8_t sha256[32]);
/* The same with the tensors stored as `dtype` (VQZ_DTYPE_F32, F16 or BF16; rounded to nearest even). */
vqz_status vqz_net_save_bundle_as(const vqz_net *net, const char *name, const char *const *extra_meta, const char *path,
                                  vqz_dtype dtype, uint8_t sha256[32]);
/* The same plus the entropy-coding prior `prior` [levels x K] (vqz_prior_from_counts rows; NULL: none),
 * always stored as F32 so its integers stay exact. */
vqz_status vqz_net_save_bundle_prior(const vqz_net *net, const char *name, const char *const *extra_meta,
                                     const char *path, vqz_dtype dtype, const uint32_t *prior, uint8_t sha256[32]);

#endif
