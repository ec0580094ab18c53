/* net_config.c — network configuration to and from the JSON object of spec/models.md §1. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/status.h"
#include "nn/net.h"

static const char *act_name(vqz_act a)
{
    return a == VQZ_ACT_SILU ? "silu" : a == VQZ_ACT_ELU ? "elu" : "snake";
}

vqz_status vqz_net_config_to_json(const vqz_net_config *c, char **json)
{
    VQZ_TRY(vqz_net_config_check(c));
    *json = NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return vqz_fail(VQZ_ERR_NOMEM, "config: out of memory");
    int ok = 1;
    ok &= cJSON_AddStringToObject(o, "kind", c->kind == VQZ_NET_IMAGE ? "image" : "audio") != NULL;
    ok &= cJSON_AddNumberToObject(o, "in_channels", c->in_channels) != NULL;
    cJSON *ch = cJSON_CreateIntArray(c->channels, c->n_stages + 1);
    cJSON *st = cJSON_CreateIntArray(c->strides, c->n_stages);
    ok &= ch && st;
    if (ch)
        cJSON_AddItemToObject(o, "channels", ch);
    if (st)
        cJSON_AddItemToObject(o, "strides", st);
    ok &= cJSON_AddNumberToObject(o, "res_blocks", c->res_blocks) != NULL;
    ok &= cJSON_AddNumberToObject(o, "latent_dim", c->latent_dim) != NULL;
    ok &= cJSON_AddNumberToObject(o, "levels", c->levels) != NULL;
    ok &= cJSON_AddNumberToObject(o, "codebook_size", c->codebook_size) != NULL;
    ok &= cJSON_AddNumberToObject(o, "res_scale", c->res_scale) != NULL;
    ok &= cJSON_AddStringToObject(o, "activation", act_name(c->activation)) != NULL;
    ok &= cJSON_AddBoolToObject(o, "weight_norm", c->weight_norm) != NULL;
    if (c->kind == VQZ_NET_AUDIO)
        ok &= cJSON_AddNumberToObject(o, "sample_rate", c->sample_rate) != NULL;
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s)
        return vqz_fail(VQZ_ERR_NOMEM, "config: out of memory");
    /* cJSON allocates with malloc by default, so the caller's free() matches */
    *json = s;
    return VQZ_OK;
}

static vqz_status get_int(const cJSON *o, const char *key, int required, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        VQZ_FAIL_IF(required, VQZ_ERR_FORMAT, "config: missing key '%s'", key);
        return VQZ_OK;
    }
    VQZ_FAIL_IF(!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble, VQZ_ERR_FORMAT,
                "config: '%s' must be an integer", key);
    *out = (int)v->valuedouble;
    return VQZ_OK;
}

static vqz_status get_int_array(const cJSON *o, const char *key, int *out, int max, int *count)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    VQZ_FAIL_IF(!cJSON_IsArray(a), VQZ_ERR_FORMAT, "config: '%s' must be an array of integers", key);
    int n = cJSON_GetArraySize(a);
    VQZ_FAIL_IF(n < 1 || n > max, VQZ_ERR_FORMAT, "config: '%s' has %d entries (1..%d)", key, n, max);
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        VQZ_FAIL_IF(!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble, VQZ_ERR_FORMAT,
                    "config: '%s'[%d] must be an integer", key, i);
        out[i] = (int)v->valuedouble;
    }
    *count = n;
    return VQZ_OK;
}

static vqz_status parse(const cJSON *o, vqz_net_config *c)
{
    VQZ_FAIL_IF(!cJSON_IsObject(o), VQZ_ERR_FORMAT, "config: not a JSON object");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    VQZ_FAIL_IF(!cJSON_IsString(kind), VQZ_ERR_FORMAT, "config: missing string key 'kind'");
    if (strcmp(kind->valuestring, "image") == 0)
        c->kind = VQZ_NET_IMAGE;
    else if (strcmp(kind->valuestring, "audio") == 0)
        c->kind = VQZ_NET_AUDIO;
    else
        return vqz_fail(VQZ_ERR_FORMAT, "config: unknown kind '%s'", kind->valuestring);
    int nch = 0, nst = 0;
    VQZ_TRY(get_int(o, "in_channels", 1, &c->in_channels));
    VQZ_TRY(get_int_array(o, "channels", c->channels, VQZ_MAX_STAGES + 1, &nch));
    VQZ_TRY(get_int_array(o, "strides", c->strides, VQZ_MAX_STAGES, &nst));
    VQZ_FAIL_IF(nch != nst + 1, VQZ_ERR_FORMAT, "config: %d channels for %d strides (need strides + 1)", nch, nst);
    c->n_stages = nst;
    VQZ_TRY(get_int(o, "res_blocks", 1, &c->res_blocks));
    VQZ_TRY(get_int(o, "latent_dim", 1, &c->latent_dim));
    VQZ_TRY(get_int(o, "levels", 1, &c->levels));
    VQZ_TRY(get_int(o, "codebook_size", 1, &c->codebook_size));
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, "res_scale");
    c->res_scale = 1.0f;
    if (rs) {
        VQZ_FAIL_IF(!cJSON_IsNumber(rs), VQZ_ERR_FORMAT, "config: 'res_scale' must be a number");
        c->res_scale = (float)rs->valuedouble;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "activation");
    VQZ_FAIL_IF(!cJSON_IsString(act), VQZ_ERR_FORMAT, "config: missing string key 'activation'");
    if (strcmp(act->valuestring, "silu") == 0)
        c->activation = VQZ_ACT_SILU;
    else if (strcmp(act->valuestring, "elu") == 0)
        c->activation = VQZ_ACT_ELU;
    else if (strcmp(act->valuestring, "snake") == 0)
        c->activation = VQZ_ACT_SNAKE;
    else
        return vqz_fail(VQZ_ERR_FORMAT, "config: unknown activation '%s'", act->valuestring);
    const cJSON *wn = cJSON_GetObjectItemCaseSensitive(o, "weight_norm");
    VQZ_FAIL_IF(wn && !cJSON_IsBool(wn), VQZ_ERR_FORMAT, "config: 'weight_norm' must be true or false");
    c->weight_norm = wn && cJSON_IsTrue(wn);
    VQZ_TRY(get_int(o, "sample_rate", c->kind == VQZ_NET_AUDIO, &c->sample_rate));
    return VQZ_OK;
}

vqz_status vqz_net_config_from_json(const char *json, vqz_net_config *c)
{
    VQZ_FAIL_IF(!json || !c, VQZ_ERR_INVALID_ARG, "config: NULL argument");
    memset(c, 0, sizeof *c);
    cJSON *o = cJSON_Parse(json);
    VQZ_FAIL_IF(!o, VQZ_ERR_FORMAT, "config: invalid JSON");
    vqz_status s = parse(o, c);
    cJSON_Delete(o);
    VQZ_TRY(s);
    VQZ_FAIL_IF(c->kind == VQZ_NET_IMAGE && c->weight_norm, VQZ_ERR_FORMAT,
                "config: weight_norm is only defined for audio models");
    return vqz_net_config_check(c);
}
