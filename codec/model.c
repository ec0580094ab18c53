/* model.c — public model handles: loading a weight bundle into a network (every tensor checked),
 * its identity (name, SHA-256) and the model search path. */
#include "codec/model.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/status.h"

#ifndef VQZ_SHARE_DIR
#define VQZ_SHARE_DIR "/usr/local/share/vqz/models"
#endif

const char *vqz_default_model_name(vqz_kind kind)
{
    return kind == VQZ_KIND_AUDIO ? "vqz-audio-v1" : "vqz-image-v1";
}

/* The optional prior (spec/bundle.md §3.1): F32 [L, K], each row valid frequencies (integers >= 1, sum 2^24). */
static vqz_status load_prior(const vqz_bundle *b, const vqz_tensor_info *pi, vqz_model *m)
{
    const int L = m->cfg.levels, K = m->cfg.codebook_size;
    VQZ_FAIL_IF(pi->dtype != VQZ_DTYPE_F32, VQZ_ERR_FORMAT, "%s must be F32, not %s", VQZ_PRIOR_TENSOR,
                vqz_dtype_name(pi->dtype));
    VQZ_FAIL_IF(L > VQZ_MAX_LEVELS, VQZ_ERR_FORMAT, "%s: %d levels, at most %d", VQZ_PRIOR_TENSOR, L, VQZ_MAX_LEVELS);
    const int64_t shape[2] = {L, K};
    float *f = malloc(sizeof(float) * (size_t)L * K);
    VQZ_FAIL_IF(!f, VQZ_ERR_NOMEM, "out of memory for %s", VQZ_PRIOR_TENSOR);
    vqz_status s = vqz_bundle_get_f32(b, VQZ_PRIOR_TENSOR, 2, shape, f);
    for (int l = 0; s == VQZ_OK && l < L; l++) {
        s = vqz_prior_init_f32(&m->prior[l], f + (size_t)l * K, (uint32_t)K);
        if (s != VQZ_OK)
            vqz_error_prefix("%s level %d: ", VQZ_PRIOR_TENSOR, l);
    }
    free(f);
    m->has_prior = s == VQZ_OK;
    return s;
}

vqz_status vqz_model_prior_to_writer(const vqz_model *m, vqz_container_writer *w, int levels)
{
    for (int l = 0; m->has_prior && l < levels; l++)
        VQZ_TRY(vqz_container_writer_set_prior(w, l, &m->prior[l]));
    return VQZ_OK;
}

vqz_status vqz_model_prior_to_reader(const vqz_model *m, vqz_container *c)
{
    int L = vqz_container_header(c)->levels;
    for (int l = 0; m->has_prior && l < L && l < m->cfg.levels; l++)
        VQZ_TRY(vqz_container_set_prior(c, l, &m->prior[l]));
    return VQZ_OK;
}

static vqz_status load_from_bundle(vqz_bundle *b, const char *what, vqz_model **out)
{
    const char *fmt = NULL, *name = NULL, *config = NULL;
    if (vqz_bundle_meta_get(b, "format", &fmt) != VQZ_OK)
        return vqz_fail(VQZ_ERR_FORMAT, "%s: not a vqz weight bundle (no \"format\" metadata)", what);
    VQZ_FAIL_IF(strcmp(fmt, "vqz-bundle-1") != 0, VQZ_ERR_VERSION,
                "%s: bundle format \"%s\" is not supported (this library reads vqz-bundle-1)", what, fmt);
    if (vqz_bundle_meta_get(b, "name", &name) != VQZ_OK || vqz_bundle_meta_get(b, "config", &config) != VQZ_OK)
        return vqz_fail(VQZ_ERR_FORMAT, "%s: bundle metadata lacks \"name\" or \"config\"", what);
    VQZ_FAIL_IF(strlen(name) == 0 || strlen(name) > 255, VQZ_ERR_FORMAT, "%s: model name must be 1..255 bytes", what);

    vqz_model *m = calloc(1, sizeof *m);
    if (!m)
        return vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory", what);
    vqz_status s = vqz_net_config_from_json(config, &m->cfg);
    if (s == VQZ_OK)
        s = vqz_net_create(&m->cfg, &m->net);
    /* every tensor the architecture needs must be present with its exact shape */
    for (int i = 0; s == VQZ_OK && i < m->net->n_tensors; i++) {
        const vqz_param_info *p = &m->net->info[i];
        s = vqz_bundle_get_f32(b, p->name, p->ndim, p->shape, m->net->params + p->offset);
    }
    vqz_tensor_info pi;
    if (s == VQZ_OK) {
        if (vqz_bundle_find(b, VQZ_PRIOR_TENSOR, &pi) == VQZ_OK)
            s = load_prior(b, &pi, m);
        else
            vqz_error_clear(); /* the prior is optional */
    }
    if (s == VQZ_OK && vqz_bundle_tensor_count(b) != m->net->n_tensors + m->has_prior)
        s = vqz_fail(VQZ_ERR_FORMAT, "bundle holds %d tensors, the architecture has %d%s",
                     vqz_bundle_tensor_count(b), m->net->n_tensors, m->has_prior ? " and the prior" : "");
    if (s != VQZ_OK) {
        vqz_error_prefix("%s: ", what);
        vqz_model_free(m);
        return s;
    }
    snprintf(m->name, sizeof m->name, "%s", name);
    vqz_bundle_sha256(b, m->sha256);
    *out = m;
    return VQZ_OK;
}

vqz_status vqz_model_load(const char *path, vqz_model **out)
{
    VQZ_FAIL_IF(!path || !out, VQZ_ERR_INVALID_ARG, "vqz_model_load: NULL argument");
    vqz_error_clear();
    *out = NULL;
    vqz_bundle *b = NULL;
    VQZ_TRY(vqz_bundle_open_file(path, &b));
    vqz_status s = load_from_bundle(b, path, out);
    vqz_bundle_free(b);
    return s;
}

vqz_status vqz_model_load_memory(const void *data, size_t size, vqz_model **out)
{
    VQZ_FAIL_IF(!data || !out, VQZ_ERR_INVALID_ARG, "vqz_model_load_memory: NULL argument");
    vqz_error_clear();
    *out = NULL;
    vqz_bundle *b = NULL;
    VQZ_TRY(vqz_bundle_open_memory(data, size, &b));
    vqz_status s = load_from_bundle(b, "model in memory", out);
    vqz_bundle_free(b);
    return s;
}

void vqz_model_free(vqz_model *m)
{
    if (!m)
        return;
    vqz_net_free(m->net);
    for (int l = 0; l < VQZ_MAX_LEVELS; l++)
        vqz_prior_free(&m->prior[l]);
    free(m);
}

vqz_status vqz_model_describe(const vqz_model *m, vqz_model_info *info)
{
    VQZ_FAIL_IF(!m || !info, VQZ_ERR_INVALID_ARG, "vqz_model_describe: NULL argument");
    memset(info, 0, sizeof *info);
    info->name = m->name;
    info->kind = m->cfg.kind == VQZ_NET_IMAGE ? VQZ_KIND_IMAGE : VQZ_KIND_AUDIO;
    memcpy(info->sha256, m->sha256, 32);
    info->levels = m->cfg.levels;
    info->codebook_size = m->cfg.codebook_size;
    info->latent_dim = m->cfg.latent_dim;
    info->stride = vqz_net_stride(m->net);
    info->sample_rate = m->cfg.sample_rate;
    info->parameters = m->net->n_total;
    return VQZ_OK;
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Checks dir/name.safetensors; with a hash, only a bundle with that SHA-256 matches. */
static int try_dir(const char *dir, size_t dlen, const char *name, const uint8_t *sha256, char *path, size_t cap)
{
    char cand[PATH_MAX];
    if (dlen == 0 || (size_t)snprintf(cand, sizeof cand, "%.*s/%s.safetensors", (int)dlen, dir, name) >= sizeof cand)
        return 0;
    if (!is_file(cand))
        return 0;
    if (sha256) {
        vqz_bundle *b = NULL;
        uint8_t h[32];
        if (vqz_bundle_open_file(cand, &b) != VQZ_OK)
            return 0;
        vqz_bundle_sha256(b, h);
        vqz_bundle_free(b);
        if (memcmp(h, sha256, 32) != 0)
            return 0;
    }
    if (strlen(cand) + 1 > cap)
        return 0;
    memcpy(path, cand, strlen(cand) + 1);
    return 1;
}

vqz_status vqz_model_locate(const char *name, const uint8_t *sha256, char *path, size_t cap)
{
    VQZ_FAIL_IF(!name || !*name || !path || cap == 0, VQZ_ERR_INVALID_ARG, "vqz_model_locate: bad argument");
    VQZ_FAIL_IF(strchr(name, '/') != NULL, VQZ_ERR_INVALID_ARG, "model name '%s' must not contain '/'", name);
    char searched[1024] = "";
    const char *env = getenv("VQZ_MODEL_PATH");
    if (env) {
        for (const char *p = env; *p;) {
            const char *e = strchr(p, ':');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            if (try_dir(p, n, name, sha256, path, cap))
                return VQZ_OK;
            p += n + (e ? 1 : 0);
        }
        snprintf(searched + strlen(searched), sizeof searched - strlen(searched), "$VQZ_MODEL_PATH (%s), ", env);
    }
    const char *dirs[4] = {VQZ_SHARE_DIR, NULL, NULL, "samples/models"};
    char exe[PATH_MAX], d1[PATH_MAX], d2[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(d1, sizeof d1, "%s", exe);
            snprintf(d2, sizeof d2, "%s/../share/vqz/models", exe);
            dirs[1] = d1;
            dirs[2] = d2;
        }
    }
    for (int i = 0; i < 4; i++) {
        if (!dirs[i])
            continue;
        if (try_dir(dirs[i], strlen(dirs[i]), name, sha256, path, cap))
            return VQZ_OK;
        snprintf(searched + strlen(searched), sizeof searched - strlen(searched), "%s%s", dirs[i], i < 3 ? ", " : "");
    }
    return vqz_fail(VQZ_ERR_NOT_FOUND, "model '%s'%s not found (searched %s)", name,
                    sha256 ? " with the file's SHA-256" : "", searched);
}

vqz_status vqz_net_save_bundle(const vqz_net *net, const char *name, const char *const *extra_meta, const char *path,
                               uint8_t sha256[32])
{
    return vqz_net_save_bundle_as(net, name, extra_meta, path, VQZ_DTYPE_F32, sha256);
}

vqz_status vqz_net_save_bundle_as(const vqz_net *net, const char *name, const char *const *extra_meta, const char *path,
                                  vqz_dtype dtype, uint8_t sha256[32])
{
    return vqz_net_save_bundle_prior(net, name, extra_meta, path, dtype, NULL, sha256);
}

vqz_status vqz_net_save_bundle_prior(const vqz_net *net, const char *name, const char *const *extra_meta,
                                     const char *path, vqz_dtype dtype, const uint32_t *prior, uint8_t sha256[32])
{
    VQZ_FAIL_IF(!net || !name || !path, VQZ_ERR_INVALID_ARG, "vqz_net_save_bundle: NULL argument");
    VQZ_FAIL_IF(dtype != VQZ_DTYPE_F32 && dtype != VQZ_DTYPE_F16 && dtype != VQZ_DTYPE_BF16, VQZ_ERR_INVALID_ARG,
                "vqz_net_save_bundle: weights are stored as F32, F16 or BF16, not %s", vqz_dtype_name(dtype));
    VQZ_TRY(vqz_net_check_weights(net));
    char *config = NULL;
    VQZ_TRY(vqz_net_config_to_json(&net->cfg, &config));
    vqz_bundle_writer *w = NULL;
    vqz_status s = vqz_bundle_writer_create(&w);
    if (s == VQZ_OK)
        s = vqz_bundle_writer_set_meta(w, "format", "vqz-bundle-1");
    if (s == VQZ_OK)
        s = vqz_bundle_writer_set_meta(w, "name", name);
    if (s == VQZ_OK)
        s = vqz_bundle_writer_set_meta(w, "config", config);
    for (int i = 0; s == VQZ_OK && extra_meta && extra_meta[i] && extra_meta[i + 1]; i += 2)
        s = vqz_bundle_writer_set_meta(w, extra_meta[i], extra_meta[i + 1]);
    for (int i = 0; s == VQZ_OK && i < net->n_tensors; i++) {
        const vqz_param_info *p = &net->info[i];
        s = vqz_bundle_writer_add(w, p->name, p->ndim, p->shape, net->params + p->offset, dtype);
    }
    const int64_t L = net->cfg.levels, K = net->cfg.codebook_size, pshape[2] = {L, K};
    float *pf = NULL;
    if (s == VQZ_OK && prior) {
        if (!(pf = malloc(sizeof(float) * (size_t)(L * K))))
            s = vqz_fail(VQZ_ERR_NOMEM, "out of memory for the prior");
        for (int64_t i = 0; s == VQZ_OK && i < L * K; i++)
            pf[i] = (float)prior[i]; /* exact: every frequency is at most 2^24 */
        if (s == VQZ_OK)
            s = vqz_bundle_writer_add(w, VQZ_PRIOR_TENSOR, 2, pshape, pf, VQZ_DTYPE_F32);
    }
    if (s == VQZ_OK)
        s = vqz_bundle_writer_write_file(w, path, sha256);
    vqz_bundle_writer_free(w);
    free(pf);
    free(config);
    return s;
}
