/* train.c — vqz_train, the training run behind vqz-train: data loading, the optimisation loop (or the
 * codebook-only fit), validation, the CSV log, progress reports, atomic checkpoints and exact resume. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "codec/dataset.h"
#include "codec/metrics.h"
#include "codec/model.h"
#include "codec/plot.h"
#include "common/status.h"
#include "format/bundle.h"
#include "format/fileio.h"
#include "nn/adamw.h"
#include "nn/gan.h"
#include "nn/net.h"

#define DEFAULT_STEPS 20000
#define VAL_MAX_FILES 32
#define VAL_IMAGE_CROP 256
#define VAL_AUDIO_SECONDS 2.0
#define KMEANS_VECTORS_PER_CODE 8
#define PRIOR_VECTORS_PER_CODE 64 /* latent vectors counted per codeword for --prior-only */
#define KMEANS_ITERS 10

void vqz_train_options_init(vqz_train_options *o)
{
    memset(o, 0, sizeof *o);
    o->kind = VQZ_KIND_IMAGE;
    o->lr = 1e-3;
    o->stft_weight = 1.0;
    o->dropout = 0.5;
    o->device = VQZ_DEVICE_AUTO;
    o->seed = 1;
    o->log_every = 10;
    o->val_every = 500;
    o->ckpt_every = 500;
    o->ckpt_minutes = 10;
    o->cache_mb = 2048;
    o->gan_weight = 1.0;
    o->feat_weight = 2.0;
}

/* What makes a run: saved in every checkpoint so that a resumed run continues the same one. */
typedef struct {
    vqz_net_config cfg;
    int64_t steps;
    int batch;
    int crop;            /* pixels (images) or samples (audio) */
    double lr, msssim_weight, stft_weight, dropout;
    uint64_t seed;
    int codebook_only;
    int64_t decoder_steps; /* codebook-only runs: the last steps of `steps` fine-tune the decoder alone */
    int64_t gan_from;    /* 0: no adversarial stage */
    double gan_weight, feat_weight;
    char parent[256];    /* name of the model we started from, "" when from scratch */
    char parent_sha[65];
} run_settings;

typedef struct {
    const vqz_train_options *o;
    vqz_train_callback cb;
    void *user;
    run_settings rs;
    char name[256];
    char ckpt_path[4096];
    vqz_nn_ctx *ctx;
    vqz_net *net;        /* trains */
    vqz_net *val_net;    /* shares net's weights, for validation */
    vqz_dataset *data, *val;
    vqz_rng rng;         /* level dropout, dead-code restarts, k-means */
    int64_t step;
    double elapsed_before; /* wall time of the earlier parts of a resumed run */
    double t_start;
    FILE *log;
    int64_t n_val;       /* validation crops */
    int64_t val_ids[VAL_MAX_FILES];
    vqz_train_progress last_val;
    vqz_disc *disc;      /* adversarial stage (audio), NULL when off */
    double gan_d, gan_adv, gan_feat; /* of the last step, NaN before the stage */
    float lr_now;
    int64_t disc_step_saved; /* from the checkpoint being resumed */
    int64_t ckpt_step;       /* step of the last checkpoint written by this process, -1 none */
    char data_desc[128];     /* "N files, X megapixels|seconds" of the training data */
} trainer;

/* ------------------------------------------------------------------------------ reporting */

static int report(trainer *t, vqz_train_progress *p)
{
    return t->cb ? t->cb(p, t->user) : 0;
}

static void message(trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void message(trainer *t, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    vqz_train_progress p;
    memset(&p, 0, sizeof p);
    p.event = VQZ_TRAIN_MESSAGE;
    p.message = line;
    p.step = t->step;
    p.steps = t->rs.steps;
    p.val_psnr = p.val_mel = p.val_sisdr = NAN;
    p.gan_d = p.gan_adv = p.gan_feat = NAN;
    report(t, &p);
}

static void dataset_log(void *user, const char *line)
{
    message((trainer *)user, "%s", line);
}

static double elapsed(const trainer *t)
{
    return t->elapsed_before + (vqz_now() - t->t_start);
}

/* ------------------------------------------------------------------------------ settings */

static vqz_status settings_to_json(const run_settings *rs, const trainer *t, char **out)
{
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return vqz_fail(VQZ_ERR_NOMEM, "train: out of memory");
    char rng[4][17];
    for (int i = 0; i < 4; i++)
        snprintf(rng[i], sizeof rng[i], "%016" PRIx64, t->rng.s[i]);
    char seed[17];
    snprintf(seed, sizeof seed, "%016" PRIx64, rs->seed);
    cJSON *r = cJSON_CreateStringArray((const char *const *)(const char *[]){rng[0], rng[1], rng[2], rng[3]}, 4);
    cJSON_AddItemToObject(j, "rng", r);
    cJSON_AddNumberToObject(j, "step", (double)t->step);
    cJSON_AddNumberToObject(j, "elapsed_s", elapsed(t));
    cJSON_AddNumberToObject(j, "steps", (double)rs->steps);
    cJSON_AddNumberToObject(j, "batch", rs->batch);
    cJSON_AddNumberToObject(j, "crop", rs->crop);
    cJSON_AddNumberToObject(j, "lr", rs->lr);
    cJSON_AddNumberToObject(j, "msssim_weight", rs->msssim_weight);
    cJSON_AddNumberToObject(j, "stft_weight", rs->stft_weight);
    cJSON_AddNumberToObject(j, "dropout", rs->dropout);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON_AddBoolToObject(j, "codebook_only", rs->codebook_only);
    cJSON_AddNumberToObject(j, "decoder_steps", (double)rs->decoder_steps);
    cJSON_AddNumberToObject(j, "gan_from", (double)rs->gan_from);
    cJSON_AddNumberToObject(j, "gan_weight", rs->gan_weight);
    cJSON_AddNumberToObject(j, "feat_weight", rs->feat_weight);
    cJSON_AddNumberToObject(j, "disc_step", t->disc ? (double)t->disc->step : 0.0);
    cJSON_AddStringToObject(j, "parent", rs->parent);
    cJSON_AddStringToObject(j, "parent_sha256", rs->parent_sha);
    *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return *out ? VQZ_OK : vqz_fail(VQZ_ERR_NOMEM, "train: out of memory");
}

static int json_num(const cJSON *j, const char *key, double *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(it))
        return 0;
    *v = it->valuedouble;
    return 1;
}

static int json_hex64(const cJSON *it, uint64_t *v)
{
    if (!cJSON_IsString(it) || strlen(it->valuestring) != 16)
        return 0;
    char *end = NULL;
    errno = 0;
    *v = strtoull(it->valuestring, &end, 16);
    return errno == 0 && end && *end == 0;
}

/* Read the settings and loop state of a checkpoint's "vqz.train" metadata. */
static vqz_status settings_from_json(const char *json, const char *path, run_settings *rs, trainer *t)
{
    cJSON *j = cJSON_Parse(json);
    VQZ_FAIL_IF(!j, VQZ_ERR_FORMAT, "%s: \"vqz.train\" metadata is not JSON", path);
    double step, el, steps, batch, crop, lr, msw, stw, dr;
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(j, "rng");
    int ok = json_num(j, "step", &step) && json_num(j, "elapsed_s", &el) && json_num(j, "steps", &steps) &&
             json_num(j, "batch", &batch) && json_num(j, "crop", &crop) && json_num(j, "lr", &lr) &&
             json_num(j, "msssim_weight", &msw) && json_num(j, "stft_weight", &stw) &&
             json_num(j, "dropout", &dr) && json_hex64(cJSON_GetObjectItemCaseSensitive(j, "seed"), &rs->seed) &&
             cJSON_IsArray(rng) && cJSON_GetArraySize(rng) == 4;
    for (int i = 0; ok && i < 4; i++)
        ok = json_hex64(cJSON_GetArrayItem(rng, i), &t->rng.s[i]);
    const cJSON *cbo = cJSON_GetObjectItemCaseSensitive(j, "codebook_only");
    const cJSON *par = cJSON_GetObjectItemCaseSensitive(j, "parent");
    const cJSON *psha = cJSON_GetObjectItemCaseSensitive(j, "parent_sha256");
    ok = ok && cJSON_IsBool(cbo) && cJSON_IsString(par) && cJSON_IsString(psha) && step >= 0 && steps >= 1 &&
         batch >= 1 && batch <= 4096 && crop >= 1 && lr > 0 && el >= 0;
    if (ok) {
        t->step = (int64_t)step;
        t->elapsed_before = el;
        rs->steps = (int64_t)steps;
        rs->batch = (int)batch;
        rs->crop = (int)crop;
        rs->lr = lr;
        rs->msssim_weight = msw;
        rs->stft_weight = stw;
        rs->dropout = dr;
        rs->codebook_only = cJSON_IsTrue(cbo);
        snprintf(rs->parent, sizeof rs->parent, "%s", par->valuestring);
        snprintf(rs->parent_sha, sizeof rs->parent_sha, "%s", psha->valuestring);
        /* the adversarial settings came later: absent means off */
        double gf = 0, gw = 1, fw = 2, ds = 0, dst = 0;
        json_num(j, "decoder_steps", &dst); /* came later too: absent means none */
        rs->decoder_steps = dst > 0 && dst < steps ? (int64_t)dst : 0;
        json_num(j, "gan_from", &gf);
        json_num(j, "gan_weight", &gw);
        json_num(j, "feat_weight", &fw);
        json_num(j, "disc_step", &ds);
        rs->gan_from = (int64_t)gf;
        rs->gan_weight = gw;
        rs->feat_weight = fw;
        t->disc_step_saved = (int64_t)ds;
    }
    cJSON_Delete(j);
    VQZ_FAIL_IF(!ok, VQZ_ERR_FORMAT, "%s: \"vqz.train\" metadata lacks or mangles a run setting", path);
    return VQZ_OK;
}

/* ------------------------------------------------------------------------------ checkpoints */

static vqz_dtype store_dtype(const char *store)
{
    if (store && strcmp(store, "f16") == 0)
        return VQZ_DTYPE_F16;
    if (store && strcmp(store, "bf16") == 0)
        return VQZ_DTYPE_BF16;
    return VQZ_DTYPE_F32;
}

/* The discriminator's tensors and AdamW moments, as "train.disc.*" entries of the checkpoint. */
static vqz_status add_disc_tensors(vqz_bundle_writer *w, const vqz_disc *d)
{
    char name[160];
    for (int i = 0; i < d->n_tensors; i++) {
        const vqz_param_info *p = &d->info[i];
        snprintf(name, sizeof name, "train.disc.%s", p->name);
        VQZ_TRY(vqz_bundle_writer_add(w, name, p->ndim, p->shape, d->params + p->offset, VQZ_DTYPE_F32));
    }
    int64_t sh[1] = {d->n_params};
    VQZ_TRY(vqz_bundle_writer_add(w, "train.disc.adam_m", 1, sh, d->adam_m, VQZ_DTYPE_F32));
    return vqz_bundle_writer_add(w, "train.disc.adam_v", 1, sh, d->adam_v, VQZ_DTYPE_F32);
}

/* Restore them; a checkpoint written before the stage existed holds none, and the fresh discriminator
 * stays as initialised. */
static vqz_status load_disc_tensors(vqz_bundle *b, vqz_disc *d, int64_t step)
{
    vqz_tensor_info ti;
    if (vqz_bundle_find(b, "train.disc.adam_m", &ti) != VQZ_OK)
        return VQZ_OK;
    char name[160];
    for (int i = 0; i < d->n_tensors; i++) {
        const vqz_param_info *p = &d->info[i];
        snprintf(name, sizeof name, "train.disc.%s", p->name);
        VQZ_TRY(vqz_bundle_get_f32(b, name, p->ndim, p->shape, d->params + p->offset));
    }
    int64_t sh[1] = {d->n_params};
    VQZ_TRY(vqz_bundle_get_f32(b, "train.disc.adam_m", 1, sh, d->adam_m));
    VQZ_TRY(vqz_bundle_get_f32(b, "train.disc.adam_v", 1, sh, d->adam_v));
    d->step = step;
    return VQZ_OK;
}

/* The bundle's entropy-coding prior (spec/bundle.md §3.1), [L][K], from codeword counts [L][K] of which
 * one unit stands for `scale` latent vectors; half a vector more keeps unseen codewords codable. */
static vqz_status prior_of_counts(const float *count, double scale, int L, int K, uint32_t **out)
{
    uint32_t *prior = malloc(sizeof(uint32_t) * (size_t)L * K);
    double *counts = malloc(sizeof(double) * (size_t)K);
    vqz_status s = prior && counts ? VQZ_OK : vqz_fail(VQZ_ERR_NOMEM, "out of memory for the prior");
    for (int l = 0; s == VQZ_OK && l < L; l++) {
        for (int k = 0; k < K; k++) {
            double c = count[(size_t)l * K + k] * scale;
            counts[k] = isfinite(c) && c > 0 ? c : 0;
        }
        s = vqz_prior_from_counts(counts, (uint32_t)K, 0.5, prior + (size_t)l * K);
    }
    free(counts);
    if (s != VQZ_OK) {
        free(prior);
        prior = NULL;
    }
    *out = prior;
    return s;
}

/* The prior from the EMA cluster sizes. An EMA count is in vectors per batch with a memory of
 * 1 / (1 - decay) batches, so count / (1 - decay) is about how many training vectors chose the codeword
 * lately. */
static vqz_status prior_from_ema(const vqz_net *m, uint32_t **out)
{
    const double scale = m->rvq.decay < 1 ? 1.0 / (1.0 - m->rvq.decay) : 1.0;
    return prior_of_counts(m->ema_count, scale, m->cfg.levels, m->cfg.codebook_size, out);
}

/* The checkpoint (unless model_only) and the model bundle, each atomically. */
static vqz_status save(trainer *t, int model_only)
{
    vqz_net *m = t->net;
    char *config = NULL, *train = NULL;
    vqz_status s = vqz_net_check_weights(m);
    if (s == VQZ_OK)
        s = vqz_net_config_to_json(&m->cfg, &config);
    if (s == VQZ_OK)
        s = settings_to_json(&t->rs, t, &train);
    vqz_bundle_writer *w = NULL;
    if (s == VQZ_OK)
        s = vqz_bundle_writer_create(&w);
    if (s == VQZ_OK)
        s = vqz_bundle_writer_set_meta(w, "format", VQZ_BUNDLE_FORMAT);
    if (s == VQZ_OK)
        s = vqz_bundle_writer_set_meta(w, "name", t->name);
    if (s == VQZ_OK)
        s = vqz_bundle_writer_set_meta(w, "config", config);
    if (s == VQZ_OK)
        s = vqz_bundle_writer_set_meta(w, "vqz.train", train);
    if (s == VQZ_OK)
        s = vqz_bundle_writer_set_meta(w, "vqz.data", t->data_desc);
    for (int i = 0; s == VQZ_OK && i < m->n_tensors; i++) {
        const vqz_param_info *p = &m->info[i];
        s = vqz_bundle_writer_add(w, p->name, p->ndim, p->shape, m->params + p->offset, VQZ_DTYPE_F32);
    }
    int64_t sh_train[1] = {m->n_train}, sh_count[2] = {m->cfg.levels, m->cfg.codebook_size},
            sh_sum[3] = {m->cfg.levels, m->cfg.codebook_size, m->cfg.latent_dim};
    if (s == VQZ_OK)
        s = vqz_bundle_writer_add(w, "train.adam_m", 1, sh_train, m->adam_m, VQZ_DTYPE_F32);
    if (s == VQZ_OK)
        s = vqz_bundle_writer_add(w, "train.adam_v", 1, sh_train, m->adam_v, VQZ_DTYPE_F32);
    if (s == VQZ_OK)
        s = vqz_bundle_writer_add(w, "train.ema_count", 2, sh_count, m->ema_count, VQZ_DTYPE_F32);
    if (s == VQZ_OK)
        s = vqz_bundle_writer_add(w, "train.ema_sum", 3, sh_sum, m->ema_sum, VQZ_DTYPE_F32);
    if (s == VQZ_OK && t->disc)
        s = add_disc_tensors(w, t->disc);
    if (s == VQZ_OK && !model_only)
        s = vqz_bundle_writer_write_file(w, t->ckpt_path, NULL);
    vqz_bundle_writer_free(w);
    free(config);

    /* the model itself, with its provenance */
    if (s == VQZ_OK) {
        char steps[32], secs[32];
        const char *data = t->data_desc;
        snprintf(steps, sizeof steps, "%" PRId64, t->step);
        snprintf(secs, sizeof secs, "%.0f", elapsed(t));
        const char *meta[] = {"vqz.trained_by", "vqz-train " VQZ_VERSION_STRING, "vqz.steps", steps,
                              "vqz.train_seconds", secs, "vqz.data", data, "vqz.run", train,
                              t->rs.parent[0] ? "vqz.parent" : NULL, t->rs.parent, "vqz.parent_sha256",
                              t->rs.parent_sha, NULL, NULL};
        uint32_t *prior = NULL;
        s = prior_from_ema(m, &prior);
        if (s == VQZ_OK)
            s = vqz_net_save_bundle_prior(m, t->name, meta, t->o->out_path, store_dtype(t->o->store), prior, NULL);
        free(prior);
    }
    free(train);
    return s;
}

static vqz_status load_checkpoint(trainer *t, const char *path)
{
    vqz_bundle *b = NULL;
    VQZ_TRY(vqz_bundle_open_file(path, &b));
    const char *config = NULL, *train = NULL, *name = NULL;
    vqz_status s = vqz_bundle_meta_get(b, "vqz.train", &train);
    if (s != VQZ_OK)
        s = vqz_fail(VQZ_ERR_FORMAT, "%s: not a vqz-train checkpoint (no \"vqz.train\" metadata)", path);
    if (s == VQZ_OK)
        s = vqz_bundle_meta_get(b, "config", &config);
    if (s == VQZ_OK)
        s = vqz_bundle_meta_get(b, "name", &name);
    if (s == VQZ_OK)
        s = vqz_net_config_from_json(config, &t->rs.cfg);
    if (s == VQZ_OK)
        s = settings_from_json(train, path, &t->rs, t);
    if (s == VQZ_OK && !t->o->name)
        snprintf(t->name, sizeof t->name, "%s", name);
    const char *desc = NULL;
    if (s == VQZ_OK && vqz_bundle_meta_get(b, "vqz.data", &desc) == VQZ_OK)
        snprintf(t->data_desc, sizeof t->data_desc, "%s", desc);
    if (s == VQZ_OK)
        s = vqz_net_create(&t->rs.cfg, &t->net);
    if (s == VQZ_OK)
        s = vqz_net_enable_training(t->net);
    vqz_net *m = t->net;
    for (int i = 0; s == VQZ_OK && i < m->n_tensors; i++) {
        const vqz_param_info *p = &m->info[i];
        s = vqz_bundle_get_f32(b, p->name, p->ndim, p->shape, m->params + p->offset);
    }
    if (s == VQZ_OK) {
        int64_t sh_train[1] = {m->n_train}, sh_count[2] = {m->cfg.levels, m->cfg.codebook_size},
                sh_sum[3] = {m->cfg.levels, m->cfg.codebook_size, m->cfg.latent_dim};
        s = vqz_bundle_get_f32(b, "train.adam_m", 1, sh_train, m->adam_m);
        if (s == VQZ_OK)
            s = vqz_bundle_get_f32(b, "train.adam_v", 1, sh_train, m->adam_v);
        if (s == VQZ_OK)
            s = vqz_bundle_get_f32(b, "train.ema_count", 2, sh_count, m->ema_count);
        if (s == VQZ_OK)
            s = vqz_bundle_get_f32(b, "train.ema_sum", 3, sh_sum, m->ema_sum);
    }
    if (s == VQZ_OK && t->o->gan_from > 0)
        t->rs.gan_from = t->o->gan_from; /* the stage may be added to (or moved in) a resumed run */
    if (s == VQZ_OK && t->rs.gan_from > 0 && t->rs.cfg.kind == VQZ_NET_AUDIO) {
        s = vqz_disc_create(NULL, t->rs.seed ^ UINT64_C(0x64697363), &t->disc);
        if (s == VQZ_OK)
            s = load_disc_tensors(b, t->disc, t->disc_step_saved);
    }
    if (s == VQZ_OK)
        m->step = t->step; /* AdamW's bias correction continues from here */
    else
        vqz_error_prefix("%s: ", path);
    vqz_bundle_free(b);
    return s;
}

/* Weights (all tensors, codebooks included) of a model bundle with the run's architecture. */
static vqz_status load_init(trainer *t, const char *path)
{
    vqz_model *pm = NULL;
    VQZ_TRY(vqz_model_load(path, &pm));
    vqz_status s = VQZ_OK;
    char *a = NULL, *b = NULL;
    if (vqz_net_config_to_json(&pm->cfg, &a) == VQZ_OK && vqz_net_config_to_json(&t->rs.cfg, &b) == VQZ_OK &&
        strcmp(a, b) != 0)
        s = vqz_fail(VQZ_ERR_MODEL_MISMATCH, "%s: its architecture %s differs from the run's %s "
                     "(leave out --config, --levels and --codebook-size with --init)", path, a, b);
    free(a);
    free(b);
    if (s == VQZ_OK) {
        memcpy(t->net->params, pm->net->params, (size_t)t->net->n_total * sizeof(float));
        snprintf(t->rs.parent, sizeof t->rs.parent, "%s", pm->name);
        for (int i = 0; i < 32; i++)
            snprintf(t->rs.parent_sha + 2 * i, 3, "%02x", pm->sha256[i]);
        /* EMA state starts at the loaded codebooks */
        int64_t lk = (int64_t)t->rs.cfg.levels * t->rs.cfg.codebook_size;
        for (int64_t i = 0; i < lk; i++)
            t->net->ema_count[i] = 1.0f;
        memcpy(t->net->ema_sum, t->net->views[t->net->cb].data, (size_t)lk * t->rs.cfg.latent_dim * sizeof(float));
    }
    vqz_model_free(pm);
    return s;
}

/* ------------------------------------------------------------------------------ the log */

/* The log's header row (without its newline) into buf. */
static void log_header_text(const trainer *t, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "step,time_s,lr,loss,recon,commit,aux,grad_norm,levels_used,samples_per_s");
    for (int l = 0; l < t->rs.cfg.levels && n < cap; l++)
        n += (size_t)snprintf(buf + n, cap - n, ",ppl_%d", l + 1);
    if (n < cap)
        snprintf(buf + n, cap - n, ",restarts,%s,val_ppl_min,val_dead_max%s",
                 t->rs.cfg.kind == VQZ_NET_IMAGE ? "val_psnr" : "val_mel,val_sisdr",
                 t->rs.cfg.kind == VQZ_NET_IMAGE ? "" : ",gan_d,gan_adv,gan_feat");
}

static int count_char(const char *s, size_t n, char c)
{
    int k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == c;
    return k;
}

/* Make an existing log continue the run: drop the rows written after the checkpoint being resumed (by
 * the run that was killed), and when the log was written by a version with fewer trailing columns, add
 * the new header names and empty cells to the old rows. Rewritten atomically; a log with other columns
 * is refused rather than mixed. */
static vqz_status prepare_log(const char *path, int64_t last_step, const char *header)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return VQZ_OK; /* a new log */
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            return vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory", path);
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *nb = realloc(buf, cap * 2);
        if (!nb)
            free(buf);
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    if (n == 0) {
        free(buf);
        return VQZ_OK;
    }
    size_t hl = 0;
    while (hl < n && buf[hl] != '\n')
        hl++;
    size_t want = strlen(header);
    int same = hl == want && memcmp(buf, header, hl) == 0;
    int prefix = hl < want && memcmp(buf, header, hl) == 0 && header[hl] == ',';
    if (!same && !prefix) {
        free(buf);
        return vqz_fail(VQZ_ERR_INVALID_ARG, "log %s has other columns than this run writes; give another --log",
                        path);
    }
    int pad = count_char(header, want, ',') - count_char(buf, hl, ',');
    size_t out_cap = n + want + 2 + (size_t)pad * (size_t)count_char(buf, n, '\n') + 2;
    char *out = malloc(out_cap);
    if (!out) {
        free(buf);
        return vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t o = (size_t)snprintf(out, out_cap, "%s\n", header);
    int changed = !same;
    for (size_t i = hl < n ? hl + 1 : n; i < n;) {
        size_t e = i;
        while (e < n && buf[e] != '\n')
            e++;
        if (e == n || strtoll(buf + i, NULL, 10) > last_step) {
            changed = 1; /* a row after the checkpoint, or one cut off mid-write */
            break;
        }
        memcpy(out + o, buf + i, e - i);
        o += e - i;
        for (int k = 0; k < pad; k++)
            out[o++] = ',';
        out[o++] = '\n';
        i = e + 1;
    }
    vqz_status s = changed ? vqz_write_file_atomic(path, (const uint8_t *)out, o) : VQZ_OK;
    free(out);
    free(buf);
    return s;
}

/* ------------------------------------------------------------------------------ validation */

static vqz_status validate(trainer *t, vqz_train_progress *p)
{
    p->val_psnr = p->val_mel = p->val_sisdr = NAN;
    if (t->n_val == 0)
        return VQZ_OK;
    vqz_net *m = t->val_net;
    const vqz_net_config *c = &t->rs.cfg;
    int image = c->kind == VQZ_NET_IMAGE;
    int f = vqz_net_stride(m);
    int crop = image ? VAL_IMAGE_CROP : (int)(VAL_AUDIO_SECONDS * c->sample_rate) / f * f;
    int64_t numel = image ? 3LL * crop * crop : crop;
    int64_t pos = image ? (int64_t)(crop / f) * (crop / f) : crop / f;
    float *x = malloc((size_t)numel * sizeof(float)), *y = malloc((size_t)numel * sizeof(float));
    int32_t *idx = malloc((size_t)(c->levels * pos * t->n_val) * sizeof(int32_t));
    int32_t *one = malloc((size_t)(c->levels * pos) * sizeof(int32_t));
    vqz_status s = x && y && idx && one ? VQZ_OK : vqz_fail(VQZ_ERR_NOMEM, "validation: out of memory");
    double psnr = 0, mel = 0, sisdr = 0;
    int64_t used = 0; /* latent positions counted for codebook usage */
    for (int64_t v = 0; s == VQZ_OK && v < t->n_val; v++) {
        s = vqz_dataset_fixed(t->val, t->val_ids[v], crop, x);
        vqz_tensor xt = image ? vqz_t4(x, 1, 3, crop, crop) : vqz_t3(x, 1, 1, crop);
        vqz_tensor yt = image ? vqz_t4(y, 1, 3, crop, crop) : vqz_t3(y, 1, 1, crop);
        if (s == VQZ_OK)
            s = vqz_net_encode(t->ctx, m, &xt, c->levels, one);
        if (s == VQZ_OK)
            s = vqz_net_decode(t->ctx, m, one, c->levels, &yt);
        if (s != VQZ_OK)
            break;
        /* codebook usage counts the positions that hold sound: a short file's window is zero-padded, and
         * digital silence or padding would count one codeword over and over (audio below -60 dBFS over the
         * cell's samples, the level the training clips are redrawn at, is left out) */
        for (int64_t q = 0; q < pos; q++) {
            double e = 0;
            for (int64_t i = 0; !image && i < f; i++)
                e += (double)x[q * f + i] * x[q * f + i];
            if (!image && e < 1e-6 * f)
                continue;
            for (int l = 0; l < c->levels; l++)
                idx[(int64_t)l * t->n_val * pos + used] = one[(int64_t)l * pos + q];
            used++;
        }
        if (image) {
            psnr += vqz_metric_psnr_8bit(x, y, numel);
        } else {
            double md = 0;
            s = vqz_metric_mel_distance_dac(x, y, crop, c->sample_rate, &md);
            mel += md;
            sisdr += vqz_metric_si_sdr(x, y, crop);
        }
    }
    if (s == VQZ_OK) {
        if (image)
            p->val_psnr = psnr / (double)t->n_val;
        else {
            p->val_mel = mel / (double)t->n_val;
            p->val_sisdr = sisdr / (double)t->n_val;
        }
        for (int l = 0; s == VQZ_OK && l < c->levels; l++) {
            vqz_rvq_usage u;
            memset(&u, 0, sizeof u);
            u.perplexity = 0;
            u.unused = c->codebook_size;
            if (used > 0)
                s = vqz_rvq_usage_of(idx + (int64_t)l * t->n_val * pos, used, c->codebook_size, &u);
            p->perplexity[l] = u.perplexity;
            p->dead[l] = u.unused;
        }
    }
    free(x);
    free(y);
    free(idx);
    free(one);
    return s;
}

/* ------------------------------------------------------------------------------ set-up */

static vqz_status resolve_config(const vqz_train_options *o, vqz_net_config *cfg)
{
    const char *kind = o->kind == VQZ_KIND_AUDIO ? "audio" : "image";
    const char *c = o->config ? o->config : "small";
    char preset[64];
    if (strcmp(c, "small") == 0 || strcmp(c, "base") == 0) {
        snprintf(preset, sizeof preset, "%s-%s", kind, c);
        VQZ_TRY(vqz_net_config_preset(preset, cfg));
    } else if (strncmp(c, "image-", 6) == 0 || strncmp(c, "audio-", 6) == 0) {
        VQZ_TRY(vqz_net_config_preset(c, cfg));
    } else {
        FILE *f = fopen(c, "rb");
        VQZ_FAIL_IF(!f, VQZ_ERR_IO, "config '%s': not a preset (small, base) and cannot open it as a JSON file: %s",
                    c, strerror(errno));
        char *buf = malloc(1 << 20);
        size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
        fclose(f);
        VQZ_FAIL_IF(!buf, VQZ_ERR_NOMEM, "config '%s': out of memory", c);
        buf[n] = 0;
        vqz_status s = vqz_net_config_from_json(buf, cfg);
        free(buf);
        if (s != VQZ_OK) {
            vqz_error_prefix("config '%s': ", c);
            return s;
        }
    }
    VQZ_FAIL_IF((cfg->kind == VQZ_NET_AUDIO) != (o->kind == VQZ_KIND_AUDIO), VQZ_ERR_INVALID_ARG,
                "config '%s' is a%s model, the run trains %s", c, cfg->kind == VQZ_NET_AUDIO ? "n audio" : "n image",
                kind);
    if (o->levels > 0)
        cfg->levels = o->levels;
    if (o->codebook_size > 0)
        cfg->codebook_size = o->codebook_size;
    return vqz_net_config_check(cfg);
}

static void default_name(const char *out, char *name, size_t cap)
{
    const char *b = strrchr(out, '/');
    b = b ? b + 1 : out;
    snprintf(name, cap, "%s", b);
    char *dot = strstr(name, ".safetensors");
    if (dot && dot != name)
        *dot = 0;
}

static vqz_status load_data(trainer *t)
{
    const vqz_train_options *o = t->o;
    vqz_dataset_opts d;
    memset(&d, 0, sizeof d);
    d.kind = t->rs.cfg.kind == VQZ_NET_IMAGE ? VQZ_DATA_IMAGE : VQZ_DATA_AUDIO;
    d.sample_rate = t->rs.cfg.sample_rate;
    d.min_side = d.kind == VQZ_DATA_IMAGE ? t->rs.crop : 0;
    d.cache_bytes = o->cache_mb * (1LL << 20);
    d.seed = t->rs.seed;
    d.threads = o->threads;
    d.log = dataset_log;
    d.log_user = t;
    message(t, "loading training data");
    VQZ_TRY(vqz_dataset_load(o->data_dirs, o->n_data_dirs, &d, &t->data));
    if (o->n_val_dirs > 0) {
        message(t, "loading validation data");
        d.min_side = d.kind == VQZ_DATA_IMAGE ? VAL_IMAGE_CROP : 0;
        d.cache_bytes = (int64_t)256 << 20; /* enough for VAL_MAX_FILES, however many files the folders hold */
        VQZ_TRY(vqz_dataset_load(o->val_dirs, o->n_val_dirs, &d, &t->val));
        int64_t n = vqz_dataset_count(t->val);
        t->n_val = n < VAL_MAX_FILES ? n : VAL_MAX_FILES;
        for (int64_t i = 0; i < t->n_val; i++) /* evenly spread over the (path-sorted) files */
            t->val_ids[i] = i * n / t->n_val;
    }
    return VQZ_OK;
}

/* Latents of enough random crops for `vectors` latent vectors, drawn from a batch stream of its own. */
static vqz_status gather_latents(trainer *t, int64_t vectors, float **z_out, vqz_tensor *zt)
{
    vqz_net *m = t->net;
    const run_settings *rs = &t->rs;
    int image = rs->cfg.kind == VQZ_NET_IMAGE;
    int64_t lh, lw;
    VQZ_TRY(vqz_net_latent_size(m, rs->crop, image ? rs->crop : 1, &lh, &lw));
    int64_t per = lh * lw, D = rs->cfg.latent_dim;
    int chunk = rs->batch;
    int64_t n = (vectors + per - 1) / per;
    n = (n + chunk - 1) / chunk * chunk;
    int64_t in_numel = image ? 3LL * rs->crop * rs->crop : rs->crop;
    float *x = malloc((size_t)(chunk * in_numel) * sizeof(float));
    float *z = malloc((size_t)(n * per * D) * sizeof(float));
    vqz_status s = x && z ? VQZ_OK : vqz_fail(VQZ_ERR_NOMEM, "train: cannot hold %lld latents", (long long)(n * per));
    for (int64_t b = 0; s == VQZ_OK && b < n / chunk; b++) {
        /* seed stream apart from the training batches */
        s = vqz_dataset_batch(t->data, rs->seed ^ UINT64_C(0x6b6d65616e73), b, chunk, rs->crop, x);
        vqz_tensor xt = image ? vqz_t4(x, chunk, 3, rs->crop, rs->crop) : vqz_t3(x, chunk, 1, rs->crop);
        vqz_tensor zc = image ? vqz_t4(z + b * chunk * per * D, chunk, D, lh, lw) : vqz_t3(z + b * chunk * per * D, chunk, D, lh);
        if (s == VQZ_OK)
            s = vqz_net_encode_latent(t->ctx, m, &xt, &zc);
    }
    free(x);
    if (s != VQZ_OK) {
        free(z);
        return s;
    }
    *z_out = z;
    *zt = vqz_t3(z, n, D, per);
    return VQZ_OK;
}

/* --prior-only: how often the parent's codewords are chosen on the data, *count_out [L][K] (malloc'ed);
 * no weight changes. */
static vqz_status fit_prior(trainer *t, float **count_out)
{
    const int L = t->rs.cfg.levels, K = t->rs.cfg.codebook_size;
    int64_t want = (int64_t)PRIOR_VECTORS_PER_CODE * K;
    message(t, "counting codewords on %lld latent vectors, %d levels", (long long)want, L);
    float *z = NULL;
    vqz_tensor zt;
    VQZ_TRY(gather_latents(t, want, &z, &zt));
    int64_t n = zt.shape[0] * zt.shape[2];
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)(n * L));
    vqz_status s = idx ? vqz_rvq_encode(t->ctx, &t->net->rvq, &zt, L, idx, NULL)
                       : vqz_fail(VQZ_ERR_NOMEM, "train: out of memory for %lld indices", (long long)(n * L));
    float *count = s == VQZ_OK ? calloc((size_t)L * K, sizeof(float)) : NULL;
    if (s == VQZ_OK && !count)
        s = vqz_fail(VQZ_ERR_NOMEM, "train: out of memory for the codeword counts");
    for (int l = 0; s == VQZ_OK && l < L; l++)
        for (int64_t i = 0; i < n; i++)
            count[(size_t)l * K + idx[(size_t)l * n + i]] += 1.0f;
    free(idx);
    free(z);
    *count_out = count;
    return s;
}

/* --prior-only output: the parent's weights and provenance unchanged, plus the prior and what it was
 * counted on. */
static vqz_status save_with_prior(trainer *t, const float *count)
{
    vqz_bundle *parent = NULL;
    VQZ_TRY(vqz_bundle_open_file(t->o->init_path, &parent));
    int n = vqz_bundle_meta_count(parent);
    const char **meta = calloc((size_t)(2 * n + 5), sizeof *meta);
    char vectors[32];
    snprintf(vectors, sizeof vectors, "%d", PRIOR_VECTORS_PER_CODE * t->rs.cfg.codebook_size);
    int m = 0;
    for (int i = 0; meta && i < n; i++) {
        const char *k, *v;
        if (vqz_bundle_meta_at(parent, i, &k, &v) != VQZ_OK || !strcmp(k, "format") || !strcmp(k, "name") ||
            !strcmp(k, "config") || !strncmp(k, "vqz.prior_", 10))
            continue;
        meta[m++] = k, meta[m++] = v;
    }
    vqz_status s = meta ? VQZ_OK : vqz_fail(VQZ_ERR_NOMEM, "out of memory for the metadata");
    uint32_t *prior = NULL;
    if (s == VQZ_OK) {
        meta[m++] = "vqz.prior_data", meta[m++] = t->data_desc;
        meta[m++] = "vqz.prior_vectors", meta[m++] = vectors;
        s = prior_of_counts(count, 1.0, t->rs.cfg.levels, t->rs.cfg.codebook_size, &prior);
    }
    if (s == VQZ_OK)
        s = vqz_net_save_bundle_prior(t->net, t->name, meta, t->o->out_path, store_dtype(t->o->store), prior, NULL);
    free(prior);
    free(meta);
    vqz_bundle_free(parent);
    return s;
}

/* k-means++ + Lloyd on fresh latents: the codebooks of a new run (runs from a parent, codebook-only ones
 * included, refine the parent's codebooks by EMA instead). */
static vqz_status fit_codebooks(trainer *t)
{
    int64_t want = (int64_t)KMEANS_VECTORS_PER_CODE * t->rs.cfg.codebook_size;
    message(t, "fitting codebooks: k-means on %lld latent vectors, %d levels", (long long)want, t->rs.cfg.levels);
    float *z = NULL;
    vqz_tensor zt;
    VQZ_TRY(gather_latents(t, want, &z, &zt));
    vqz_status s = vqz_rvq_kmeans_init(t->ctx, &t->net->rvq, &zt, KMEANS_ITERS, &t->rng);
    free(z);
    return s;
}

/* ------------------------------------------------------------------------------ the loop */

static void fill_stats(trainer *t, vqz_train_progress *p, const vqz_train_stats *st, double lr)
{
    p->lr = lr;
    p->loss = st->loss;
    p->recon = st->recon;
    p->commit = st->commit;
    p->aux = st->aux;
    p->grad_norm = st->grad_norm;
    p->gan_d = t->gan_d;
    p->gan_adv = t->gan_adv;
    p->gan_feat = t->gan_feat;
    for (int l = 0; l < t->rs.cfg.levels; l++) {
        p->perplexity[l] = l < st->n_levels ? st->usage[l].perplexity : NAN;
        p->dead[l] = l < st->n_levels ? st->restarted[l] : 0;
    }
}

static void log_row(trainer *t, const vqz_train_progress *p, int levels_used, int val)
{
    if (!t->log)
        return;
    if (levels_used > 0)
        fprintf(t->log, "%" PRId64 ",%.1f,%.4g,%.6g,%.6g,%.6g,%.6g,%.4g,%d,%.3g", p->step, p->elapsed_s, p->lr,
                p->loss, p->recon, p->commit, p->aux, p->grad_norm, levels_used, p->samples_per_s);
    else /* the validation before the first step: no training figures yet */
        fprintf(t->log, "%" PRId64 ",%.1f,,,,,,,,", p->step, p->elapsed_s);
    int restarts = 0;
    for (int l = 0; l < t->rs.cfg.levels; l++) {
        if (l < levels_used)
            fprintf(t->log, ",%.1f", p->perplexity[l]);
        else
            fprintf(t->log, ",");
        restarts += p->dead[l];
    }
    fprintf(t->log, ",%d", restarts);
    if (val) {
        double pmin = INFINITY;
        int dmax = 0;
        for (int l = 0; l < t->rs.cfg.levels; l++) {
            pmin = fmin(pmin, t->last_val.perplexity[l] / t->rs.cfg.codebook_size);
            dmax = t->last_val.dead[l] > dmax ? t->last_val.dead[l] : dmax;
        }
        if (t->rs.cfg.kind == VQZ_NET_IMAGE)
            fprintf(t->log, ",%.3f", t->last_val.val_psnr);
        else
            fprintf(t->log, ",%.4f,%.3f", t->last_val.val_mel, t->last_val.val_sisdr);
        fprintf(t->log, ",%.3f,%d", pmin, dmax);
    } else {
        fprintf(t->log, t->rs.cfg.kind == VQZ_NET_IMAGE ? ",,," : ",,,,");
    }
    if (t->rs.cfg.kind == VQZ_NET_AUDIO) {
        if (levels_used > 0 && !isnan(p->gan_d))
            fprintf(t->log, ",%.5g,%.5g,%.5g", p->gan_d, p->gan_adv, p->gan_feat);
        else
            fprintf(t->log, ",,,");
    }
    fputc('\n', t->log);
    fflush(t->log);
}

static vqz_status run_validation(trainer *t, vqz_train_progress *base)
{
    vqz_train_progress p = *base;
    p.event = VQZ_TRAIN_VALIDATION;
    VQZ_TRY(validate(t, &p));
    if (t->n_val == 0)
        return VQZ_OK;
    t->last_val = p;
    report(t, &p);
    return VQZ_OK;
}

static vqz_status checkpoint(trainer *t, double *last_ckpt)
{
    if (t->ckpt_step == t->step && t->step > 0)
        return VQZ_OK; /* the step's checkpoint is already written */
    VQZ_TRY(save(t, 0));
    t->ckpt_step = t->step;
    *last_ckpt = vqz_now();
    message(t, "checkpoint at step %" PRId64 " written to %s (model: %s)", t->step, t->ckpt_path, t->o->out_path);
    return VQZ_OK;
}

/* The adversarial stage inside the training step: one discriminator step on this batch (real x against
 * the current reconstruction y), then the generator's adversarial and feature-matching gradients added to
 * the reconstruction gradient dy. */
static vqz_status gan_hook(void *user, vqz_nn_ctx *ctx, const vqz_tensor *y, const vqz_tensor *x, vqz_tensor *dy,
                           double *value)
{
    trainer *t = user;
    double ld = 0, adv = 0, feat = 0;
    VQZ_TRY(vqz_disc_grad(ctx, t->disc, x, y, &ld));
    VQZ_TRY(vqz_disc_apply(ctx, t->disc, t->lr_now, 1.0f, NULL));
    VQZ_TRY(vqz_disc_generator_terms(ctx, t->disc, x, y, (float)t->rs.gan_weight, (float)t->rs.feat_weight, dy,
                                     &adv, &feat));
    t->gan_d = ld;
    t->gan_adv = adv;
    t->gan_feat = feat;
    *value = t->rs.gan_weight * adv + t->rs.feat_weight * feat;
    return VQZ_OK;
}

static vqz_status train_loop(trainer *t)
{
    const run_settings *rs = &t->rs;
    vqz_net *m = t->net;
    int image = rs->cfg.kind == VQZ_NET_IMAGE;
    vqz_train_opts to;
    memset(&to, 0, sizeof to);
    to.weight_decay = 1e-4f;
    to.beta = 0.25f;
    to.grad_clip = 1.0f;
    to.mse_weight = image ? 1.0f : 0.0f;
    to.msssim_weight = image ? (float)rs->msssim_weight : 0.0f;
    to.l1_weight = image ? 0.0f : 1.0f;
    to.stft_weight = image ? 0.0f : (float)rs->stft_weight;
    to.ema = 1;

    /* dead codewords: restart those assigned under half their fair share per batch (EMA terms); each
     * restart splits the busiest codeword (vqz_rvq_ema_update) */
    int64_t lh, lw;
    VQZ_TRY(vqz_net_latent_size(m, rs->crop, image ? rs->crop : 1, &lh, &lw));
    double fair = (double)rs->batch * lh * lw / rs->cfg.codebook_size;
    m->rvq.dead_threshold = (float)fmin(1.0, 0.5 * fair);
    if (t->step == 0 && rs->parent[0]) {
        /* the parent's codewords start as if each had held its fair share: the unused ones are restarted
         * from the new data gradually (after ~140 steps), not all on the first batch */
        int64_t lk = (int64_t)rs->cfg.levels * rs->cfg.codebook_size, D = rs->cfg.latent_dim;
        const float *cb = m->views[m->cb].data;
        for (int64_t i = 0; i < lk; i++) {
            m->ema_count[i] = (float)fair;
            for (int64_t d = 0; d < D; d++)
                m->ema_sum[i * D + d] = (float)fair * cb[i * D + d];
        }
    }

    int64_t warmup = rs->steps / 20 < 500 ? rs->steps / 20 : 500;
    /* a codebook-only run fits its codebooks until fit_end, then fine-tunes the decoder on them (its own
     * warm-up and cosine schedule) */
    const int64_t fit_end = rs->codebook_only ? rs->steps - rs->decoder_steps : rs->steps;
    const int64_t dec_warmup = rs->decoder_steps / 20 < 500 ? rs->decoder_steps / 20 : 500;
    vqz_loader *ld = NULL;
    VQZ_TRY(vqz_loader_start(t->data, rs->seed, t->step, rs->batch, rs->crop, &ld));
    vqz_status s = VQZ_OK;
    double last_ckpt = vqz_now(), t_rep = vqz_now();
    int64_t step_rep = t->step;
    int stop = 0;
    float *zbuf = NULL;
    int32_t *ibuf = NULL;
    if (rs->codebook_only) {
        zbuf = malloc((size_t)(rs->batch * lh * lw * rs->cfg.latent_dim) * sizeof(float));
        ibuf = malloc((size_t)(rs->batch * lh * lw * rs->cfg.levels) * sizeof(int32_t));
        if (!zbuf || !ibuf)
            s = vqz_fail(VQZ_ERR_NOMEM, "train: out of memory for the latents of a batch");
    }
    vqz_train_progress p;
    memset(&p, 0, sizeof p);
    p.levels = rs->cfg.levels;
    while (s == VQZ_OK && t->step < rs->steps && !stop) {
        const float *x = NULL;
        s = vqz_loader_next(ld, &x);
        if (s != VQZ_OK)
            break;
        vqz_tensor xt = image ? vqz_t4((float *)x, rs->batch, 3, rs->crop, rs->crop)
                              : vqz_t3((float *)x, rs->batch, 1, rs->crop);
        const int fitting = rs->codebook_only && t->step < fit_end;
        const int decoder_only = rs->codebook_only && !fitting;
        to.lr = decoder_only ? vqz_lr_at((float)rs->lr, t->step - fit_end, dec_warmup, rs->decoder_steps, 0.1f)
                             : vqz_lr_at((float)rs->lr, t->step, warmup, rs->steps, 0.1f);
        to.decoder_only = decoder_only;
        to.ema = !decoder_only;
        to.n_levels = vqz_rvq_dropout_levels(&t->rng, rs->cfg.levels, (float)rs->dropout);
        int gan = t->disc && t->step >= rs->gan_from;
        to.extra_loss = gan ? gan_hook : NULL;
        to.extra_user = t;
        t->lr_now = to.lr;
        if (!gan)
            t->gan_d = t->gan_adv = t->gan_feat = NAN;
        vqz_train_stats st;
        if (fitting) {
            /* frozen encoder: the new domain's latents refine the codebooks by EMA alone */
            vqz_tensor z = image ? vqz_t4(zbuf, rs->batch, rs->cfg.latent_dim, lh, lw)
                                 : vqz_t3(zbuf, rs->batch, rs->cfg.latent_dim, lh);
            memset(&st, 0, sizeof st);
            st.n_levels = to.n_levels = rs->cfg.levels;
            s = vqz_net_encode_latent(t->ctx, m, &xt, &z);
            if (s == VQZ_OK)
                s = vqz_rvq_encode(t->ctx, &m->rvq, &z, rs->cfg.levels, ibuf, NULL);
            if (s == VQZ_OK)
                s = vqz_rvq_ema_update(t->ctx, &m->rvq, &z, ibuf, rs->cfg.levels, &t->rng, st.restarted);
            int64_t npos = rs->batch * lh * lw;
            for (int l = 0; s == VQZ_OK && l < rs->cfg.levels; l++)
                s = vqz_rvq_usage_of(ibuf + l * npos, npos, rs->cfg.codebook_size, &st.usage[l]);
        } else {
            s = vqz_net_train_grad(t->ctx, m, &xt, &to, &st);
            if (s == VQZ_OK && !isfinite(st.loss))
                s = vqz_fail(VQZ_ERR_NONFINITE, "step %" PRId64 ": the loss is %g; the last checkpoint is intact "
                             "(try a lower --lr)", t->step, st.loss);
            if (s == VQZ_OK)
                s = vqz_net_train_apply(t->ctx, m, &to, &t->rng, &st);
        }
        if (s != VQZ_OK)
            break;
        t->step++;
        if (t->o->cancel && *t->o->cancel)
            stop = 1;

        int due_val = t->n_val > 0 && (t->step % t->o->val_every == 0 || t->step == rs->steps);
        if (t->step % t->o->log_every == 0 || due_val || t->step == rs->steps) {
            double now = vqz_now();
            p.event = VQZ_TRAIN_STEP;
            p.step = t->step;
            p.steps = rs->steps;
            p.elapsed_s = elapsed(t);
            p.steps_per_s = (double)(t->step - step_rep) / fmax(now - t_rep, 1e-9);
            p.samples_per_s = p.steps_per_s * rs->batch;
            p.eta_s = (double)(rs->steps - t->step) / fmax(p.steps_per_s, 1e-9);
            p.val_psnr = p.val_mel = p.val_sisdr = NAN;
            fill_stats(t, &p, &st, to.lr);
            t_rep = now;
            step_rep = t->step;
            stop = report(t, &p) != 0;
            if (due_val && !stop) {
                s = run_validation(t, &p);
                t_rep = vqz_now(); /* validation time is not training speed */
            }
            log_row(t, &p, st.n_levels, due_val && s == VQZ_OK);
        }
        if (s == VQZ_OK && !stop &&
            (t->step % t->o->ckpt_every == 0 || vqz_now() - last_ckpt > 60.0 * t->o->ckpt_minutes))
            s = checkpoint(t, &last_ckpt);
    }
    vqz_loader_stop(ld);
    free(zbuf);
    free(ibuf);
    if (s == VQZ_OK)
        s = checkpoint(t, &last_ckpt);
    if (s == VQZ_OK && stop)
        return vqz_fail(VQZ_ERR_CANCELLED, "stopped at step %" PRId64 "; resume with the checkpoint %s", t->step,
                        t->ckpt_path);
    return s;
}

static vqz_status check_options(const vqz_train_options *o)
{
    VQZ_FAIL_IF(!o, VQZ_ERR_INVALID_ARG, "vqz_train: NULL options");
    VQZ_FAIL_IF(o->kind != VQZ_KIND_IMAGE && o->kind != VQZ_KIND_AUDIO, VQZ_ERR_INVALID_ARG,
                "vqz_train: kind must be image or audio");
    VQZ_FAIL_IF(!o->out_path || !o->out_path[0], VQZ_ERR_INVALID_ARG, "vqz_train: no output path");
    VQZ_FAIL_IF((o->n_data_dirs < 1 || !o->data_dirs) && !o->resume_path, VQZ_ERR_INVALID_ARG,
                "vqz_train: no training folder");
    VQZ_FAIL_IF(o->n_val_dirs < 0 || (o->n_val_dirs > 0 && !o->val_dirs), VQZ_ERR_INVALID_ARG,
                "vqz_train: bad validation folders");
    VQZ_FAIL_IF(o->steps < 0 || o->steps > INT64_C(1000000000), VQZ_ERR_INVALID_ARG, "steps %lld (1..1e9)",
                (long long)o->steps);
    VQZ_FAIL_IF(o->batch < 0 || o->batch > 4096, VQZ_ERR_INVALID_ARG, "batch %d (1..4096)", o->batch);
    VQZ_FAIL_IF(!(o->crop >= 0 && o->crop <= 65536), VQZ_ERR_INVALID_ARG, "crop %g", o->crop);
    VQZ_FAIL_IF(!(o->lr > 0 && o->lr < 1), VQZ_ERR_INVALID_ARG, "learning rate %g (0..1)", o->lr);
    VQZ_FAIL_IF(!(o->dropout >= 0 && o->dropout <= 1), VQZ_ERR_INVALID_ARG, "dropout %g (0..1)", o->dropout);
    VQZ_FAIL_IF(!(o->msssim_weight >= 0 && o->msssim_weight <= 1000) || !(o->stft_weight >= 0 && o->stft_weight <= 1000),
                VQZ_ERR_INVALID_ARG, "loss weights must be in 0..1000");
    VQZ_FAIL_IF(o->log_every < 1 || o->val_every < 1 || o->ckpt_every < 1, VQZ_ERR_INVALID_ARG,
                "log, validation and checkpoint intervals must be >= 1 step");
    VQZ_FAIL_IF(!(o->ckpt_minutes > 0), VQZ_ERR_INVALID_ARG, "checkpoint minutes must be > 0");
    VQZ_FAIL_IF(o->cache_mb < 16, VQZ_ERR_INVALID_ARG, "cache of %lld MiB (at least 16)", (long long)o->cache_mb);
    VQZ_FAIL_IF(o->prior_only && (!o->init_path || o->resume_path || o->codebook_only), VQZ_ERR_INVALID_ARG,
                "vqz_train: prior_only measures the model of init_path (no resume_path, no codebook_only)");
    VQZ_FAIL_IF(o->codebook_only && !o->init_path && !o->resume_path, VQZ_ERR_INVALID_ARG,
                "codebook-only adaptation needs a model to start from (--init MODEL)");
    VQZ_FAIL_IF(o->resume_path && o->init_path, VQZ_ERR_INVALID_ARG, "--resume and --init exclude each other");
    VQZ_FAIL_IF(o->store && strcmp(o->store, "f32") && strcmp(o->store, "f16") && strcmp(o->store, "bf16"),
                VQZ_ERR_INVALID_ARG, "weights are stored as f32, f16 or bf16, not '%s'", o->store);
    VQZ_FAIL_IF(o->gan_from < 0 || !(o->gan_weight >= 0 && o->gan_weight <= 1000) ||
                    !(o->feat_weight >= 0 && o->feat_weight <= 1000),
                VQZ_ERR_INVALID_ARG, "adversarial stage: step >= 0 and weights in 0..1000");
    VQZ_FAIL_IF(o->decoder_steps < 0 || (o->decoder_steps > 0 && !o->codebook_only && !o->resume_path),
                VQZ_ERR_INVALID_ARG, "decoder steps (%" PRId64 ") follow a codebook-only fit (--codebook-only)",
                o->decoder_steps);
    VQZ_FAIL_IF(o->gan_from > 0 && o->codebook_only, VQZ_ERR_INVALID_ARG,
                "the adversarial stage trains the decoder; codebook-only runs keep it frozen");
    return VQZ_OK;
}

static vqz_status train_run(trainer *t)
{
    const vqz_train_options *o = t->o;
    if (o->ckpt_path)
        snprintf(t->ckpt_path, sizeof t->ckpt_path, "%s", o->ckpt_path);
    else
        snprintf(t->ckpt_path, sizeof t->ckpt_path, "%s.ckpt", o->out_path);
    if (o->name)
        snprintf(t->name, sizeof t->name, "%s", o->name);
    else
        default_name(o->out_path, t->name, sizeof t->name);

    if (o->resume_path) {
        VQZ_TRY(load_checkpoint(t, o->resume_path));
        VQZ_FAIL_IF((t->rs.cfg.kind == VQZ_NET_AUDIO) != (o->kind == VQZ_KIND_AUDIO), VQZ_ERR_INVALID_ARG,
                    "%s is a checkpoint of a%s run", o->resume_path,
                    t->rs.cfg.kind == VQZ_NET_AUDIO ? "n audio" : "n image");
        /* a resumed run may be extended, and a codebook-only run given (more) decoder steps */
        int64_t fit = o->steps > 0 ? o->steps : t->rs.steps - t->rs.decoder_steps;
        VQZ_FAIL_IF(o->decoder_steps > 0 && !t->rs.codebook_only, VQZ_ERR_INVALID_ARG,
                    "%s is not a codebook-only run: decoder steps follow a codebook fit", o->resume_path);
        if (o->decoder_steps > 0) {
            t->rs.decoder_steps = o->decoder_steps;
            t->rs.lr = o->lr; /* the fit used none: the decoder stage runs at the caller's rate */
        }
        t->rs.steps = fit + t->rs.decoder_steps;
        message(t, "resuming at step %" PRId64 " of %" PRId64 " from %s", t->step, t->rs.steps, o->resume_path);
    } else {
        if (o->init_path && !o->config) {
            /* fine-tuning or adapting: the architecture is the parent's */
            vqz_model *pm = NULL;
            VQZ_TRY(vqz_model_load(o->init_path, &pm));
            t->rs.cfg = pm->cfg;
            vqz_model_free(pm);
            if (o->levels > 0)
                t->rs.cfg.levels = o->levels;
            if (o->codebook_size > 0)
                t->rs.cfg.codebook_size = o->codebook_size;
            VQZ_FAIL_IF((t->rs.cfg.kind == VQZ_NET_AUDIO) != (o->kind == VQZ_KIND_AUDIO), VQZ_ERR_INVALID_ARG,
                        "%s is a%s model", o->init_path, t->rs.cfg.kind == VQZ_NET_AUDIO ? "n audio" : "n image");
        } else {
            VQZ_TRY(resolve_config(o, &t->rs.cfg));
        }
        const vqz_net_config *c = &t->rs.cfg;
        t->rs.steps = (o->steps > 0 ? o->steps : DEFAULT_STEPS) + (o->codebook_only ? o->decoder_steps : 0);
        t->rs.decoder_steps = o->codebook_only ? o->decoder_steps : 0;
        t->rs.batch = o->batch > 0 ? o->batch : 16;
        int f = 1;
        for (int i = 0; i < c->n_stages; i++)
            f *= c->strides[i];
        if (c->kind == VQZ_NET_IMAGE) {
            int px = o->crop > 0 ? (int)o->crop : 128;
            t->rs.crop = px / f * f;
            VQZ_FAIL_IF(t->rs.crop < f, VQZ_ERR_INVALID_ARG, "crop %d px is below the model's stride %d", px, f);
        } else {
            double sec = o->crop > 0 ? o->crop : 1.0;
            t->rs.crop = (int)llround(sec * c->sample_rate) / f * f;
            VQZ_FAIL_IF(t->rs.crop < f, VQZ_ERR_INVALID_ARG, "clip of %g s is below the model's stride %d samples",
                        sec, f);
        }
        t->rs.lr = o->lr;
        t->rs.msssim_weight = o->msssim_weight;
        t->rs.stft_weight = o->stft_weight;
        t->rs.dropout = o->dropout;
        t->rs.seed = o->seed;
        t->rs.codebook_only = o->codebook_only;
        t->rs.gan_from = o->gan_from;
        t->rs.gan_weight = o->gan_weight;
        t->rs.feat_weight = o->feat_weight;
        VQZ_FAIL_IF(o->gan_from > 0 && c->kind != VQZ_NET_AUDIO, VQZ_ERR_INVALID_ARG,
                    "the adversarial stage (--gan-from) is for audio models");
        if (o->gan_from > 0)
            VQZ_TRY(vqz_disc_create(NULL, o->seed ^ UINT64_C(0x64697363), &t->disc));
        vqz_rng_seed(&t->rng, o->seed ^ UINT64_C(0x7472616e));
        VQZ_TRY(vqz_net_create(c, &t->net));
        VQZ_TRY(vqz_net_init(t->net, o->seed));
        VQZ_TRY(vqz_net_enable_training(t->net));
        if (o->init_path)
            VQZ_TRY(load_init(t, o->init_path));
    }
    VQZ_TRY(vqz_nn_ctx_create(&t->ctx, o->device, o->threads));
    VQZ_TRY(vqz_net_create_sharing(t->net, &t->val_net));
    if (o->resume_path && (t->step >= t->rs.steps || o->n_data_dirs < 1)) {
        /* nothing to train: write the model (e.g. in another --store type) from the checkpoint alone */
        message(t, "writing the model of %s at step %" PRId64 " to %s", o->resume_path, t->step, o->out_path);
        return save(t, 1);
    }
    VQZ_TRY(load_data(t));
    snprintf(t->data_desc, sizeof t->data_desc, "%" PRId64 " files, %.1f %s", vqz_dataset_count(t->data),
             vqz_dataset_amount(t->data), t->rs.cfg.kind == VQZ_NET_IMAGE ? "megapixels" : "seconds");
    message(t, "training on %" PRId64 " files (%.1f %s), %" PRId64 " skipped; validating on %" PRId64 " files",
            vqz_dataset_count(t->data), vqz_dataset_amount(t->data),
            t->rs.cfg.kind == VQZ_NET_IMAGE ? "megapixels" : "seconds", vqz_dataset_skipped(t->data), t->n_val);

    VQZ_FAIL_IF(o->cancel && *o->cancel, VQZ_ERR_CANCELLED, "stopped before the first step; nothing written");
    if (o->log_csv) {
        char header[1024];
        log_header_text(t, header, sizeof header);
        if (o->resume_path) {
            VQZ_TRY(prepare_log(o->log_csv, t->step, header));
        } else {
            FILE *f = fopen(o->log_csv, "rb");
            int used = f && fgetc(f) != EOF;
            if (f)
                fclose(f);
            VQZ_FAIL_IF(used, VQZ_ERR_INVALID_ARG, "the log %s already holds a run: give another --log, or --resume",
                        o->log_csv);
        }
        t->log = fopen(o->log_csv, "ab");
        VQZ_FAIL_IF(!t->log, VQZ_ERR_IO, "cannot open the log %s: %s", o->log_csv, strerror(errno));
        if (ftell(t->log) == 0)
            fprintf(t->log, "%s\n", header);
    }
    if (o->prior_only) {
        float *count = NULL;
        vqz_status s = fit_prior(t, &count);
        if (s == VQZ_OK) {
            message(t, "writing %s with the prior of its codewords on this data", o->out_path);
            s = save_with_prior(t, count);
        }
        free(count);
        return s;
    }
    /* a new run seeds its codebooks by k-means++ on the first latents; a run from a parent refines the
     * parent's codebooks instead (EMA updates are online k-means), which keeps what transfers */
    if (!o->resume_path && !o->init_path)
        VQZ_TRY(fit_codebooks(t));
    if (!o->resume_path && t->n_val > 0) {
        vqz_train_progress p;
        memset(&p, 0, sizeof p);
        p.levels = t->rs.cfg.levels;
        p.steps = t->rs.steps;
        p.gan_d = p.gan_adv = p.gan_feat = NAN;
        VQZ_TRY(run_validation(t, &p));
        if (t->log)
            log_row(t, &p, 0, 1);
    }
    return train_loop(t);
}

vqz_status vqz_train(const vqz_train_options *o, vqz_train_callback cb, void *user)
{
    vqz_error_clear();
    VQZ_TRY(check_options(o));
    trainer t;
    memset(&t, 0, sizeof t);
    t.o = o;
    t.cb = cb;
    t.user = user;
    t.t_start = vqz_now();
    t.ckpt_step = -1;
    vqz_status s = train_run(&t);
    if (t.log)
        fclose(t.log);
    vqz_dataset_free(t.data);
    vqz_dataset_free(t.val);
    vqz_disc_free(t.disc);
    vqz_net_free(t.val_net);
    vqz_net_free(t.net);
    vqz_nn_ctx_free(t.ctx);
    return s;
}

vqz_status vqz_train_plot(const char *csv_path, const char *png_path, const char *const *columns, int n_columns)
{
    vqz_error_clear();
    VQZ_FAIL_IF(!csv_path || !png_path || n_columns < 0 || (n_columns > 0 && !columns), VQZ_ERR_INVALID_ARG,
                "vqz_train_plot: bad arguments");
    return vqz_plot_log(csv_path, png_path, columns, n_columns);
}
