/* net.h — the vqz image and audio networks (spec/models.md): configuration, parameter table in one
 * flat block, encoder/decoder graphs, RVQ, inference (encode to indices, decode from indices) and the
 * training step (forward, losses, backward, clipping, AdamW, EMA codebooks). */
#ifndef VQZ_NN_NET_H
#define VQZ_NN_NET_H

#include <stdint.h>

#include "nn/graph.h"
#include "nn/rng.h"
#include "nn/rvq.h"

typedef enum { VQZ_NET_IMAGE = 1, VQZ_NET_AUDIO = 2 } vqz_net_kind;

#define VQZ_MAX_STAGES 8
#define VQZ_MAX_LEVELS 32

typedef struct {
    vqz_net_kind kind;
    int in_channels;                     /* 3 (RGB) or 1 (audio) */
    int n_stages;                        /* S */
    int channels[VQZ_MAX_STAGES + 1];    /* C_0 .. C_S */
    int strides[VQZ_MAX_STAGES];         /* s_0 .. s_{S-1} */
    int res_blocks;
    int latent_dim;                      /* D */
    int levels;                          /* L */
    int codebook_size;                   /* K */
    float res_scale;                     /* images */
    vqz_act activation;
    int weight_norm;                     /* audio */
    int sample_rate;                     /* audio */
} vqz_net_config;

/* Check every field against its documented range (VQZ_ERR_INVALID_ARG naming the field). */
vqz_status vqz_net_config_check(const vqz_net_config *cfg);

/* The config as a JSON object string in spec/models.md's keys (caller frees with free()). */
vqz_status vqz_net_config_to_json(const vqz_net_config *cfg, char **json);
/* Parse and check a config JSON string. */
vqz_status vqz_net_config_from_json(const char *json, vqz_net_config *cfg);

/* Built-in configurations: "image-small", "image-base", "audio-small", "audio-base". */
vqz_status vqz_net_config_preset(const char *name, vqz_net_config *cfg);

typedef struct {
    char name[96];
    int ndim;
    int64_t shape[4];
    int64_t offset;      /* in floats, into vqz_net.params */
    int decay;           /* AdamW weight decay applies */
    int trainable;       /* updated by AdamW (codebooks are updated by EMA instead) */
    float init_gain;     /* conv weights: std = gain * sqrt(2 / fan_in) */
} vqz_param_info;

typedef struct {
    float lr;                 /* learning rate of this step */
    float weight_decay;       /* AdamW decoupled weight decay (conv weights only) */
    float beta;               /* commitment weight, 0.25 */
    float grad_clip;          /* global-norm clip, 0 = off */
    float mse_weight, l1_weight, stft_weight, msssim_weight;
    int n_levels;             /* RVQ levels used this step (1..L) */
    int ema;                  /* update codebooks by EMA after the step */
    int decoder_only;         /* train the decoder alone: no gradient reaches the quantizer or the encoder,
                               * and AdamW updates only the dec.* tensors (leave ema 0 to keep the codebooks) */
    /* Optional further loss on the reconstruction (e.g. the adversarial stage): called after the losses
     * above with the output y and the input x; adds its gradient into dy and returns its value in *value
     * (added to the total loss and to stats.extra). NULL = none. */
    vqz_status (*extra_loss)(void *user, vqz_nn_ctx *ctx, const vqz_tensor *y, const vqz_tensor *x,
                             vqz_tensor *dy, double *value);
    void *extra_user;
} vqz_train_opts;

typedef struct {
    double loss, recon, commit, aux; /* total, main reconstruction term, commitment, second term */
    double extra;                    /* value of o->extra_loss, 0 without */
    double grad_norm;                /* global gradient norm before clipping */
    int n_levels;
    vqz_rvq_usage usage[VQZ_MAX_LEVELS];
    int restarted[VQZ_MAX_LEVELS];
} vqz_train_stats;

typedef struct vqz_net {
    vqz_net_config cfg;
    int n_tensors, cap_tensors;
    vqz_param_info *info;
    int64_t n_decay;          /* floats [0, n_decay) have weight decay */
    int64_t n_train;          /* floats [0, n_train) are trained by AdamW */
    int64_t n_total;          /* floats in params (trainable + codebooks) */
    float *params;            /* one block: every tensor, codebooks last */
    int shares_params;        /* params belong to another net (vqz_net_create_sharing) */
    float *grads, *adam_m, *adam_v; /* [n_train] each, training only */
    float *ema_count, *ema_sum;     /* RVQ EMA state, training only */
    int64_t step;             /* AdamW steps taken */
    vqz_tensor *views, *gviews;
    vqz_param_views pv;
    int cb;                   /* parameter id of rvq.codebooks */
    vqz_graph enc, dec;
    vqz_rvq rvq;
    void *stft;               /* audio STFT loss state, created on first use */
    /* training/inference scratch, grown as needed */
    float *buf_dy, *buf_tmp, *buf_dz;
    int32_t *buf_idx;
    int64_t buf_cap, idx_cap;
    /* inference on CUDA: a device copy of params with its views (pv.w then points to them), and a
     * device index buffer; placed on first use with a CUDA context (training stays on the CPU) */
    vqz_dev device;
    float *dparams;
    vqz_tensor *dviews;
    int32_t *d_idx;
    int64_t d_idx_cap;
} vqz_net;

/* Build the graphs and the parameter table for a config and allocate the parameter block
 * (zeroed). Free with vqz_net_free. */
vqz_status vqz_net_create(const vqz_net_config *cfg, vqz_net **out);
void vqz_net_free(vqz_net *m);

/* A second net over the same (read-only) parameter block as src, with its own graphs and scratch, so
 * that several threads can run inference on one set of weights. src must outlive it; no training. */
vqz_status vqz_net_create_sharing(const vqz_net *src, vqz_net **out);

/* Initialise every parameter per spec/models.md §6 from a seed (codebooks: small normal noise;
 * use vqz_net_kmeans_init on data for real training). */
vqz_status vqz_net_init(vqz_net *m, uint64_t seed);

/* VQZ_ERR_NONFINITE naming the first tensor holding a NaN or Inf. */
vqz_status vqz_net_check_weights(const vqz_net *m);

/* Allocate gradients, AdamW moments and EMA state (EMA: count 1, sum = codebook). */
vqz_status vqz_net_enable_training(vqz_net *m);

/* Parameter id by name, or -1. */
int vqz_net_find(const vqz_net *m, const char *name);

/* Sizes: latent grid for an input of h × w (w = 1 for audio); VQZ_ERR_SHAPE when not a multiple of
 * the total stride. */
int vqz_net_stride(const vqz_net *m);
vqz_status vqz_net_latent_size(const vqz_net *m, int64_t h, int64_t w, int64_t *lh, int64_t *lw);

/* Receptive-field radii: encoder in input units, decoder in latent units (spec §7). */
void vqz_net_halo(const vqz_net *m, double *enc_radius, double *dec_radius);
/* Multiply-accumulates of encoder and decoder for one input of h × w. */
void vqz_net_macs(const vqz_net *m, int64_t h, int64_t w, double *enc_macs, double *dec_macs);

/* Inference. x is [N, C, H, W] or [N, 1, T]; idx is [n_levels][N][latent positions]. */
vqz_status vqz_net_encode(vqz_nn_ctx *ctx, vqz_net *m, const vqz_tensor *x, int n_levels, int32_t *idx);
/* Decoder output y [N, C, H, W] / [N, 1, T] straight from an unquantized latent z [N, D, lh, lw] / [N, D, lt]
 * (CPU): what the autoencoder gives without the quantizer, the ceiling of every level count. */
vqz_status vqz_net_decode_latent(vqz_nn_ctx *ctx, vqz_net *m, const vqz_tensor *z, vqz_tensor *y);
/* Latent z of the encoder (before quantization) into z [N, D, lh, lw] / [N, D, lt]. */
vqz_status vqz_net_encode_latent(vqz_nn_ctx *ctx, vqz_net *m, const vqz_tensor *x, vqz_tensor *z);
/* y [N, C, H, W] / [N, 1, T] from indices of the first n_levels levels. */
vqz_status vqz_net_decode(vqz_nn_ctx *ctx, vqz_net *m, const int32_t *idx, int n_levels, vqz_tensor *y);

/* Training: forward, losses and backward of one batch; gradients are zeroed first and left in
 * m->grads. Indices and latents stay in the model's scratch for vqz_net_train_apply. */
vqz_status vqz_net_train_grad(vqz_nn_ctx *ctx, vqz_net *m, const vqz_tensor *x,
                                const vqz_train_opts *o, vqz_train_stats *st);
/* Clip, AdamW step, then (o->ema) EMA codebook update with dead-code restarts drawn from rng. */
vqz_status vqz_net_train_apply(vqz_nn_ctx *ctx, vqz_net *m, const vqz_train_opts *o, vqz_rng *rng,
                                 vqz_train_stats *st);

/* FFT sizes of the audio STFT loss (default 512, 1024, 2048 when never set). */
vqz_status vqz_net_set_stft_sizes(vqz_net *m, const int *sizes, int n);

/* k-means++ initialisation of the codebooks on the encoder latents of a batch. */
vqz_status vqz_net_kmeans_init(vqz_nn_ctx *ctx, vqz_net *m, const vqz_tensor *x, int iters, vqz_rng *rng);

#endif
