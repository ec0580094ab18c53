/* audio_stream.c — the streaming audio API of vqz.h: PCM in, stream packets out (resampling, spans of
 * latent frames encoded once their halo has arrived) and packets in, PCM out (spans decoded once the
 * decoder halo has arrived), with memory bounded by the packet size, never by the stream's length. */
#include "codec/audio_stream.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/audio_chunks.h"
#include "codec/audio_io.h"
#include "codec/codec.h"
#include "common/status.h"
#include "format/sha256.h"
#include "format/stream.h"

#define PUSH_BLOCK 16384 /* input frames resampled at a time: a long push does not grow the window */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}
static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Frames per packet: o->chunk_frames, else about one second of latent frames. */
static vqz_status packet_frames_of(const vqz_options *o, int model_rate, int f, int channels, int levels, int *P)
{
    VQZ_FAIL_IF(o->chunk_frames < 0, VQZ_ERR_INVALID_ARG, "chunk_frames must be positive, got %d", o->chunk_frames);
    int64_t p = o->chunk_frames > 0 ? o->chunk_frames : max64(1, (int64_t)lround((double)model_rate / f));
    int64_t most = min64(VQZ_STREAM_MAX_FRAMES, VQZ_STREAM_MAX_INDICES / ((int64_t)channels * levels));
    VQZ_FAIL_IF(o->chunk_frames > 0 && p > most, VQZ_ERR_INVALID_ARG,
                "chunk_frames %d exceeds the %lld frames a packet of %d channels x %d levels may hold",
                o->chunk_frames, (long long)most, channels, levels);
    *P = (int)min64(p, most);
    return VQZ_OK;
}

static void fill_info(const vqz_stream_header *h, vqz_audio_stream_info *info)
{
    memset(info, 0, sizeof *info);
    snprintf(info->model_name, sizeof info->model_name, "%s", h->model_name);
    memcpy(info->model_sha256, h->model_sha256, 32);
    info->sample_rate = (int)h->sample_rate;
    info->output_rate = (int)h->sample_rate;
    info->channels = h->channels;
    info->model_rate = (int)h->model_rate;
    info->stride = (int)h->stride;
    info->levels = h->levels;
    for (int l = 0; l < h->levels; l++)
        info->codebook_size[l] = (int)h->K[l];
    info->packet_frames = (int)h->packet_frames;
}

vqz_status vqz_audio_stream_probe(const uint8_t *packet, size_t size, vqz_audio_stream_info *info)
{
    VQZ_FAIL_IF(!packet || !info, VQZ_ERR_INVALID_ARG, "vqz_audio_stream_probe: NULL argument");
    vqz_error_clear();
    vqz_stream_header h;
    VQZ_TRY(vqz_stream_header_read(packet, size, &h));
    fill_info(&h, info);
    return VQZ_OK;
}

/* ============================================================================ encoder */

typedef struct {
    uint8_t *data;
    size_t size;
} packet;

struct vqz_audio_encoder {
    vqz_span_coder sc;
    vqz_stream_header h;
    vqz_stream_coder *pc;
    int P;              /* latent frames per packet */
    double kbps;        /* > 0: levels chosen per packet */
    vqz_resampler *rs;
    float *rbuf;
    size_t rbuf_cap;
    vqz_sample_window win;
    int64_t total_in;   /* input frames pushed */
    int64_t total_m;    /* model-rate frames out of the resampler */
    int64_t next;       /* first latent frame not yet in a packet */
    uint32_t seq;       /* of the last data packet */
    uint16_t *idx;      /* one packet's indices: level l at idx + l * C * P, laid out [channel][frame] */
    packet *queue;      /* ring of packets not yet pulled */
    size_t q_head, q_len, q_cap;
    uint8_t *current;   /* the packet the last pull returned */
    int finished;
    vqz_status failed;
};

static vqz_status enqueue(vqz_audio_encoder *e, uint8_t *data, size_t size)
{
    if (e->q_len == e->q_cap) {
        size_t cap = e->q_cap ? 2 * e->q_cap : 8;
        packet *q = malloc(cap * sizeof *q);
        if (!q) {
            free(data);
            return vqz_fail(VQZ_ERR_NOMEM, "out of memory for the packet queue");
        }
        for (size_t i = 0; i < e->q_len; i++)
            q[i] = e->queue[(e->q_head + i) % e->q_cap];
        free(e->queue);
        e->queue = q;
        e->q_cap = cap;
        e->q_head = 0;
    }
    e->queue[(e->q_head + e->q_len) % e->q_cap] = (packet){data, size};
    e->q_len++;
    return VQZ_OK;
}

/* Encodes frames [c0, c1) (clipped at padded_len) into the next data packet and queues it. */
static vqz_status emit_packet(vqz_audio_encoder *e, int64_t c0, int64_t c1, int64_t padded_len, int end)
{
    int64_t w = c1 - c0;
    int C = e->h.channels, q = e->h.levels;
    uint16_t *dst[VQZ_MAX_LEVELS];
    for (int l = 0; l < q; l++)
        dst[l] = e->idx + (size_t)l * (size_t)C * (size_t)e->P;
    if (w > 0)
        VQZ_TRY(vqz_span_encode(&e->sc, &e->win, q, c0, c1, padded_len, dst));
    vqz_stream_packet pk;
    memset(&pk, 0, sizeof pk);
    pk.sequence = e->seq + 1;
    pk.first_frame = (uint64_t)c0;
    pk.frame_count = (uint32_t)w;
    pk.levels = q;
    pk.end = end;
    pk.total_samples = end ? (uint64_t)e->total_in : 0;
    uint8_t *data = NULL;
    size_t size = 0;
    VQZ_TRY(vqz_stream_packet_write(e->pc, &e->h, &pk, (const uint16_t *const *)dst, &data, &size));
    /* a rate target: the most levels whose packet stays within it over the packet's duration */
    double seconds = (double)w * e->h.stride / e->h.model_rate;
    while (e->kbps > 0 && w > 0 && pk.levels > 1 && size * 8.0 / seconds / 1000.0 > e->kbps) {
        free(data);
        pk.levels--;
        VQZ_TRY(vqz_stream_packet_write(e->pc, &e->h, &pk, (const uint16_t *const *)dst, &data, &size));
    }
    VQZ_TRY(enqueue(e, data, size));
    e->seq++;
    e->next = c1;
    return VQZ_OK;
}

/* Resampled frames into the window, keeping what the next packet's left halo needs. */
static vqz_status encoder_take(void *user, const float *inter, int64_t n)
{
    vqz_audio_encoder *e = user;
    VQZ_TRY(vqz_sample_window_append(&e->win, inter, n, e->next * e->sc.f - e->sc.enc_halo));
    e->total_m += n;
    return VQZ_OK;
}

/* Every whole packet whose right halo has arrived. */
static vqz_status emit_ready(vqz_audio_encoder *e)
{
    while (e->total_m >= (e->next + e->P) * e->sc.f + e->sc.enc_halo)
        VQZ_TRY(emit_packet(e, e->next, e->next + e->P, INT64_MAX, 0));
    return VQZ_OK;
}

static vqz_status encoder_create(const vqz_model *m, const vqz_options *o, int sample_rate, int channels,
                                 vqz_audio_encoder *e)
{
    VQZ_FAIL_IF(m->cfg.kind != VQZ_NET_AUDIO, VQZ_ERR_MODEL_MISMATCH, "model '%s' codes images, not audio", m->name);
    VQZ_FAIL_IF(o->levels < 0 || o->levels > m->cfg.levels, VQZ_ERR_INVALID_ARG, "levels must be 1..%d, got %d",
                m->cfg.levels, o->levels);
    VQZ_FAIL_IF(!(o->kbps >= 0), VQZ_ERR_INVALID_ARG, "kbps must not be negative, got %g", o->kbps);
    VQZ_FAIL_IF(m->cfg.codebook_size > 65536, VQZ_ERR_UNSUPPORTED, "codebooks over 65536 entries cannot be stored");
    VQZ_FAIL_IF(channels < 1 || channels > VQZ_AUDIO_MAX_CHANNELS, VQZ_ERR_INVALID_ARG,
                "channels must be 1..%d, got %d", VQZ_AUDIO_MAX_CHANNELS, channels);
    VQZ_FAIL_IF(sample_rate < VQZ_AUDIO_MIN_RATE || sample_rate > VQZ_AUDIO_MAX_RATE, VQZ_ERR_INVALID_ARG,
                "sample rate %d Hz outside [%d, %d]", sample_rate, VQZ_AUDIO_MIN_RATE, VQZ_AUDIO_MAX_RATE);
    int q = o->levels > 0 ? o->levels : m->cfg.levels, f = vqz_net_stride(m->net);
    VQZ_TRY(packet_frames_of(o, m->cfg.sample_rate, f, channels, q, &e->P));
    e->kbps = o->levels == 0 ? o->kbps : 0;

    vqz_stream_header *h = &e->h;
    h->version_major = VQZ_STREAM_MAJOR;
    h->levels = q;
    for (int l = 0; l < q; l++)
        h->K[l] = (uint32_t)m->cfg.codebook_size;
    h->channels = channels;
    h->sample_rate = (uint32_t)sample_rate;
    h->model_rate = (uint32_t)m->cfg.sample_rate;
    h->stride = (uint32_t)f;
    h->packet_frames = (uint32_t)e->P;
    memcpy(h->model_sha256, m->sha256, 32);
    snprintf(h->model_name, sizeof h->model_name, "%s", m->name);

    VQZ_TRY(vqz_stream_coder_create(o->zstd_level, &e->pc));
    VQZ_TRY(vqz_span_coder_open(&e->sc, m, o));
    VQZ_TRY(vqz_resampler_create(sample_rate, m->cfg.sample_rate, channels, &e->rs));
    e->win.channels = channels;
    size_t n = (size_t)q * (size_t)channels * (size_t)e->P;
    e->idx = malloc(n * sizeof(uint16_t));
    VQZ_FAIL_IF(!e->idx, VQZ_ERR_NOMEM, "out of memory for %zu indices", n);
    uint8_t *data = NULL;
    size_t size = 0;
    VQZ_TRY(vqz_stream_header_write(h, &data, &size));
    return enqueue(e, data, size);
}

vqz_status vqz_audio_encoder_create(const vqz_model *m, const vqz_options *o, int sample_rate, int channels,
                                    vqz_audio_encoder **out)
{
    VQZ_FAIL_IF(!m || !out, VQZ_ERR_INVALID_ARG, "vqz_audio_encoder_create: NULL argument");
    vqz_error_clear();
    *out = NULL;
    vqz_options def;
    vqz_options_init(&def);
    if (!o)
        o = &def;
    vqz_audio_encoder *e = calloc(1, sizeof *e);
    VQZ_FAIL_IF(!e, VQZ_ERR_NOMEM, "out of memory for an audio encoder");
    vqz_status s = encoder_create(m, o, sample_rate, channels, e);
    if (s != VQZ_OK) {
        vqz_audio_encoder_free(e);
        return s;
    }
    *out = e;
    return VQZ_OK;
}

static vqz_status encoder_usable(const vqz_audio_encoder *e, const char *op)
{
    VQZ_FAIL_IF(e->failed != VQZ_OK, e->failed, "%s: the encoder stopped at an earlier error", op);
    VQZ_FAIL_IF(e->finished, VQZ_ERR_INVALID_ARG, "%s: the stream was already finished", op);
    return VQZ_OK;
}

vqz_status vqz_audio_encoder_push(vqz_audio_encoder *e, const float *pcm, size_t frames)
{
    VQZ_FAIL_IF(!e || (!pcm && frames > 0), VQZ_ERR_INVALID_ARG, "vqz_audio_encoder_push: NULL argument");
    vqz_error_clear();
    VQZ_TRY(encoder_usable(e, "vqz_audio_encoder_push"));
    int C = e->h.channels;
    for (size_t i = 0; i < frames * (size_t)C; i++)
        VQZ_FAIL_IF(!isfinite(pcm[i]), VQZ_ERR_NONFINITE, "vqz_audio_encoder_push: frame %zu of channel %d is %g",
                    i / (size_t)C, (int)(i % (size_t)C), pcm[i]);
    vqz_status s = VQZ_OK;
    for (size_t off = 0; s == VQZ_OK && off < frames; off += PUSH_BLOCK) {
        int64_t n = min64(PUSH_BLOCK, (int64_t)(frames - off));
        s = vqz_resample_into(e->rs, C, pcm + off * (size_t)C, n, 0, &e->rbuf, &e->rbuf_cap, encoder_take, e);
        if (s == VQZ_OK)
            e->total_in += n;
        if (s == VQZ_OK)
            s = emit_ready(e);
    }
    if (s != VQZ_OK)
        e->failed = s;
    return s;
}

static vqz_status finish_impl(vqz_audio_encoder *e)
{
    int f = e->sc.f;
    VQZ_TRY(vqz_resample_into(e->rs, e->h.channels, NULL, 0, 1, &e->rbuf, &e->rbuf_cap, encoder_take, e));
    VQZ_TRY(emit_ready(e));
    /* the end: zeros up to a whole latent frame, then the remaining packets clipped there */
    int64_t W = (e->total_m + f - 1) / f, padded = W * f;
    VQZ_TRY(vqz_sample_window_append(&e->win, NULL, padded - e->total_m, e->next * f - e->sc.enc_halo));
    do {
        int64_t c1 = min64(W, e->next + e->P);
        VQZ_TRY(emit_packet(e, e->next, c1, padded, c1 == W));
    } while (e->next < W);
    return VQZ_OK;
}

vqz_status vqz_audio_encoder_finish(vqz_audio_encoder *e)
{
    VQZ_FAIL_IF(!e, VQZ_ERR_INVALID_ARG, "vqz_audio_encoder_finish: NULL argument");
    vqz_error_clear();
    VQZ_TRY(encoder_usable(e, "vqz_audio_encoder_finish"));
    vqz_status s = finish_impl(e);
    if (s != VQZ_OK)
        e->failed = s;
    else
        e->finished = 1;
    return s;
}

vqz_status vqz_audio_encoder_pull(vqz_audio_encoder *e, const uint8_t **data, size_t *size)
{
    VQZ_FAIL_IF(!e || !data || !size, VQZ_ERR_INVALID_ARG, "vqz_audio_encoder_pull: NULL argument");
    vqz_error_clear();
    *data = NULL;
    *size = 0;
    free(e->current);
    e->current = NULL;
    if (e->q_len > 0) {
        packet p = e->queue[e->q_head];
        e->q_head = (e->q_head + 1) % e->q_cap;
        e->q_len--;
        e->current = p.data;
        *data = p.data;
        *size = p.size;
        return VQZ_OK;
    }
    if (e->finished)
        return VQZ_OK;
    VQZ_FAIL_IF(e->failed != VQZ_OK, e->failed, "vqz_audio_encoder_pull: the encoder stopped at an earlier error");
    return vqz_fail(VQZ_ERR_MISSING, "no packet is ready: the next needs %lld more model-rate samples",
                    (long long)((e->next + e->P) * e->sc.f + e->sc.enc_halo - e->total_m));
}

vqz_status vqz_audio_encoder_info(const vqz_audio_encoder *e, vqz_audio_stream_info *info)
{
    VQZ_FAIL_IF(!e || !info, VQZ_ERR_INVALID_ARG, "vqz_audio_encoder_info: NULL argument");
    fill_info(&e->h, info);
    info->encoder_lookahead = e->sc.enc_halo;
    info->decoder_lookahead = e->sc.dec_halo;
    return VQZ_OK;
}

void vqz_audio_encoder_free(vqz_audio_encoder *e)
{
    if (!e)
        return;
    vqz_span_coder_close(&e->sc);
    vqz_stream_coder_free(e->pc);
    vqz_resampler_free(e->rs);
    free(e->rbuf);
    vqz_sample_window_free(&e->win);
    free(e->idx);
    for (size_t i = 0; i < e->q_len; i++)
        free(e->queue[(e->q_head + i) % e->q_cap].data);
    free(e->queue);
    free(e->current);
    free(e);
}

size_t vqz_audio_encoder_buffered_bytes(const vqz_audio_encoder *e)
{
    size_t n = (size_t)e->win.cap * (size_t)e->win.channels * sizeof(float);
    n += e->rbuf_cap * (size_t)e->h.channels * sizeof(float);
    n += e->sc.x_cap * sizeof(float) + e->sc.idx_cap * sizeof(int32_t);
    n += e->q_cap * sizeof(packet);
    for (size_t i = 0; i < e->q_len; i++)
        n += e->queue[(e->q_head + i) % e->q_cap].size;
    return n;
}

/* ============================================================================ decoder */

struct vqz_audio_decoder {
    const vqz_model *m;
    int levels_wanted;   /* o->levels: 0 = all carried */
    int output_rate;     /* o->output_rate: 0 = the stream's */
    vqz_span_coder sc;
    vqz_stream_coder *pc;
    int have_header;
    vqz_stream_header h;
    int out_rate;
    uint64_t packets;    /* packets accepted, the header included: the next packet's number */
    int ended;           /* the end-of-stream packet was accepted */
    uint64_t total_samples;
    /* indices of frames [win_start, win_start + win_len): level l, channel c at win + (l C + c) cap */
    uint16_t *win;
    uint8_t *win_levels; /* levels carried for each frame */
    int64_t win_start, win_len, win_cap;
    uint16_t *pkt;       /* one packet's indices */
    int64_t done;        /* first frame not yet decoded */
    vqz_resampler *rs;
    float *rbuf, *inter;
    size_t rbuf_cap, inter_cap;
    /* decoded PCM not yet pulled: frames [out_head, out_head + out_len) of out */
    float *out;
    int64_t out_head, out_len, out_cap;
    int64_t produced;    /* frames that went into out */
    int64_t target;      /* known at the end: frames the output holds in all */
    vqz_status failed;
};

vqz_status vqz_audio_decoder_create(const vqz_model *m, const vqz_options *o, vqz_audio_decoder **out)
{
    VQZ_FAIL_IF(!m || !out, VQZ_ERR_INVALID_ARG, "vqz_audio_decoder_create: NULL argument");
    vqz_error_clear();
    *out = NULL;
    vqz_options def;
    vqz_options_init(&def);
    if (!o)
        o = &def;
    VQZ_FAIL_IF(m->cfg.kind != VQZ_NET_AUDIO, VQZ_ERR_MODEL_MISMATCH, "model '%s' codes images, not audio", m->name);
    VQZ_FAIL_IF(o->levels < 0, VQZ_ERR_INVALID_ARG, "levels must be positive, got %d", o->levels);
    VQZ_FAIL_IF(o->output_rate != 0 && (o->output_rate < VQZ_AUDIO_MIN_RATE || o->output_rate > VQZ_AUDIO_MAX_RATE),
                VQZ_ERR_INVALID_ARG, "output rate %d Hz outside [%d, %d]", o->output_rate, VQZ_AUDIO_MIN_RATE,
                VQZ_AUDIO_MAX_RATE);
    vqz_audio_decoder *d = calloc(1, sizeof *d);
    VQZ_FAIL_IF(!d, VQZ_ERR_NOMEM, "out of memory for an audio decoder");
    d->m = m;
    d->levels_wanted = o->levels;
    d->output_rate = o->output_rate;
    d->target = -1;
    vqz_status s = vqz_stream_coder_create(0, &d->pc);
    if (s == VQZ_OK)
        s = vqz_span_coder_open(&d->sc, m, o);
    if (s != VQZ_OK) {
        vqz_audio_decoder_free(d);
        return s;
    }
    *out = d;
    return VQZ_OK;
}

/* The header packet: checked against the model before anything is allocated for the stream. */
static vqz_status accept_header(vqz_audio_decoder *d, const uint8_t *p, size_t n)
{
    vqz_stream_header h;
    VQZ_TRY(vqz_stream_header_read(p, n, &h));
    const vqz_model *m = d->m;
    if (strcmp(h.model_name, m->name) != 0 || memcmp(h.model_sha256, m->sha256, 32) != 0) {
        char want[65], have[65];
        vqz_sha256_hex(h.model_sha256, want);
        vqz_sha256_hex(m->sha256, have);
        return vqz_fail(VQZ_ERR_MODEL_MISMATCH,
                        "stream packet 0 (header): made with model \"%s\" (bundle sha256 %.16s...), not with \"%s\" "
                        "(%.16s...)",
                        h.model_name, want, m->name, have);
    }
    VQZ_FAIL_IF(h.stride != (uint32_t)d->sc.f || h.model_rate != (uint32_t)m->cfg.sample_rate, VQZ_ERR_MODEL_MISMATCH,
                "stream packet 0 (header): stride %u at %u Hz does not match model '%s' (stride %d at %d Hz)",
                h.stride, h.model_rate, m->name, d->sc.f, m->cfg.sample_rate);
    for (int l = 0; l < h.levels; l++)
        VQZ_FAIL_IF(h.K[l] != (uint32_t)m->cfg.codebook_size, VQZ_ERR_MODEL_MISMATCH,
                    "stream packet 0 (header): level %d has K = %u, model '%s' has %d", l + 1, h.K[l], m->name,
                    m->cfg.codebook_size);
    VQZ_FAIL_IF(h.levels > m->cfg.levels, VQZ_ERR_MODEL_MISMATCH,
                "stream packet 0 (header): %d levels, model '%s' has %d", h.levels, m->name, m->cfg.levels);
    VQZ_FAIL_IF(h.sample_rate < VQZ_AUDIO_MIN_RATE || h.sample_rate > VQZ_AUDIO_MAX_RATE, VQZ_ERR_LIMIT,
                "stream packet 0 (header): sample rate %u Hz outside [%d, %d]", h.sample_rate, VQZ_AUDIO_MIN_RATE,
                VQZ_AUDIO_MAX_RATE);

    int C = h.channels;
    int64_t cap = (int64_t)h.packet_frames + 2 * (int64_t)d->sc.dec_halo + 1;
    size_t win_n = (size_t)h.levels * (size_t)C * (size_t)cap;
    size_t pkt_n = (size_t)h.levels * (size_t)C * h.packet_frames;
    d->win = malloc(win_n * sizeof(uint16_t));
    d->win_levels = malloc((size_t)cap);
    d->pkt = malloc(pkt_n * sizeof(uint16_t));
    VQZ_FAIL_IF(!d->win || !d->win_levels || !d->pkt, VQZ_ERR_NOMEM, "out of memory for the index window");
    d->out_rate = d->output_rate > 0 ? d->output_rate : (int)h.sample_rate;
    VQZ_TRY(vqz_resampler_create(h.model_rate, d->out_rate, C, &d->rs));
    d->win_cap = cap;
    d->h = h;
    d->have_header = 1;
    d->packets = 1;
    return VQZ_OK;
}

/* Decoded PCM into the output queue, cut at the target length once it is known. */
static vqz_status decoder_take(void *user, const float *inter, int64_t n)
{
    vqz_audio_decoder *d = user;
    int C = d->h.channels;
    if (d->target >= 0)
        n = min64(n, max64(0, d->target - d->produced));
    if (n == 0)
        return VQZ_OK;
    if (d->out_head + d->out_len + n > d->out_cap) {
        if (d->out_head > 0) {
            memmove(d->out, d->out + d->out_head * C, (size_t)(d->out_len * C) * sizeof(float));
            d->out_head = 0;
        }
        if (d->out_len + n > d->out_cap) {
            int64_t cap = max64(2 * d->out_cap, d->out_len + n);
            float *p = realloc(d->out, (size_t)(cap * C) * sizeof(float));
            VQZ_FAIL_IF(!p, VQZ_ERR_NOMEM, "out of memory for %lld decoded frames", (long long)cap);
            d->out = p;
            d->out_cap = cap;
        }
    }
    memcpy(d->out + (d->out_head + d->out_len) * C, inter, (size_t)(n * C) * sizeof(float));
    d->out_len += n;
    d->produced += n;
    return VQZ_OK;
}

/* Decodes every frame whose decoder halo has arrived (all of them after the end) and, at the end, drains
 * the resampler and brings the output to its exact length. */
static vqz_status decode_ready(vqz_audio_decoder *d)
{
    int C = d->h.channels, f = d->sc.f, halo = d->sc.dec_halo;
    int64_t known = d->win_start + d->win_len;
    int64_t end = d->ended ? known : known - halo;
    int wanted = d->levels_wanted > 0 && d->levels_wanted < d->h.levels ? d->levels_wanted : d->h.levels;
    while (d->done < end) {
        int64_t c0 = d->done, c1 = min64(end, c0 + d->h.packet_frames);
        int64_t r0 = max64(0, c0 - halo), r1 = min64(known, c1 + halo);
        int levels = wanted;
        for (int64_t j = r0; j < r1; j++)
            if (d->win_levels[j - d->win_start] < levels)
                levels = d->win_levels[j - d->win_start];
        size_t need = (size_t)((c1 - c0) * f * C);
        if (need > d->inter_cap) {
            free(d->inter);
            d->inter = malloc(need * sizeof(float));
            d->inter_cap = d->inter ? need : 0;
            VQZ_FAIL_IF(!d->inter, VQZ_ERR_NOMEM, "out of memory for %zu decoded samples", need);
        }
        VQZ_TRY(vqz_span_decode(&d->sc, d->win, d->win_cap, d->win_start, C, levels, c0, c1, known, d->inter));
        VQZ_TRY(vqz_resample_into(d->rs, C, d->inter, (c1 - c0) * f, 0, &d->rbuf, &d->rbuf_cap, decoder_take, d));
        d->done = c1;
    }
    if (!d->ended)
        return VQZ_OK;
    VQZ_TRY(vqz_resample_into(d->rs, C, NULL, 0, 1, &d->rbuf, &d->rbuf_cap, decoder_take, d));
    /* output before the end cannot pass the length (it trails the input), but make sure */
    if (d->produced > d->target) {
        int64_t extra = d->produced - d->target;
        VQZ_FAIL_IF(extra > d->out_len, VQZ_ERR_INTERNAL, "decoded %lld frames past the stream's end were pulled",
                    (long long)extra);
        d->out_len -= extra;
        d->produced = d->target;
    }
    /* the resampler gave fewer frames than the input held: the rest lies past the signal */
    while (d->produced < d->target) {
        int64_t n = min64(d->target - d->produced, 4096);
        float *zeros = calloc((size_t)(n * C), sizeof(float));
        VQZ_FAIL_IF(!zeros, VQZ_ERR_NOMEM, "out of memory");
        vqz_status s = decoder_take(d, zeros, n);
        free(zeros);
        VQZ_TRY(s);
    }
    return VQZ_OK;
}

/* Checks a data packet completely, then adds its indices to the window; a refused packet changes
 * nothing. */
static vqz_status accept_data(vqz_audio_decoder *d, const uint8_t *p, size_t n, int *accepted)
{
    const vqz_stream_header *h = &d->h;
    uint64_t no = d->packets;
    vqz_stream_packet pk;
    VQZ_TRY(vqz_stream_packet_parse(h, no, p, n, &pk));
    VQZ_FAIL_IF(d->ended, VQZ_ERR_FORMAT, "stream packet %llu: the stream ended at packet %llu",
                (unsigned long long)no, (unsigned long long)(no - 1));
    VQZ_FAIL_IF(pk.sequence != no, VQZ_ERR_FORMAT,
                "stream packet %llu: sequence number %u, expected %llu (a packet is missing or out of order)",
                (unsigned long long)no, pk.sequence, (unsigned long long)no);
    int64_t known = d->win_start + d->win_len;
    VQZ_FAIL_IF(pk.first_frame != (uint64_t)known, VQZ_ERR_FORMAT, "stream packet %llu: first_frame %llu, expected %lld",
                (unsigned long long)no, (unsigned long long)pk.first_frame, (long long)known);
    if (pk.end) {
        vqz_status s = vqz_audio_check_length(pk.total_samples, h->sample_rate, h->model_rate,
                                              (uint64_t)known + pk.frame_count, (int)h->stride);
        if (s != VQZ_OK) {
            vqz_error_prefix("stream packet %llu: total_samples: ", (unsigned long long)no);
            return s;
        }
    }
    int C = h->channels;
    size_t per_level = (size_t)C * pk.frame_count;
    VQZ_TRY(vqz_stream_packet_indices(d->pc, h, no, p, &pk, d->pkt, per_level * (size_t)pk.levels));

    /* accepted: drop the frames no later span needs, then append */
    *accepted = 1;
    int64_t keep = max64(d->win_start, d->done - d->sc.dec_halo), drop = keep - d->win_start;
    if (drop > 0) {
        for (int r = 0; r < h->levels * C; r++)
            memmove(d->win + (size_t)r * (size_t)d->win_cap, d->win + (size_t)r * (size_t)d->win_cap + drop,
                    (size_t)(d->win_len - drop) * sizeof(uint16_t));
        memmove(d->win_levels, d->win_levels + drop, (size_t)(d->win_len - drop));
        d->win_start += drop;
        d->win_len -= drop;
    }
    VQZ_FAIL_IF(d->win_len + pk.frame_count > d->win_cap, VQZ_ERR_INTERNAL,
                "index window of %lld frames overflows (%lld held, %u more)", (long long)d->win_cap,
                (long long)d->win_len, pk.frame_count);
    for (int l = 0; l < pk.levels; l++)
        for (int c = 0; c < C; c++)
            memcpy(d->win + ((size_t)l * (size_t)C + (size_t)c) * (size_t)d->win_cap + d->win_len,
                   d->pkt + (size_t)l * per_level + (size_t)c * pk.frame_count, pk.frame_count * sizeof(uint16_t));
    memset(d->win_levels + d->win_len, pk.levels, pk.frame_count);
    d->win_len += pk.frame_count;
    d->packets++;
    if (pk.end) {
        d->ended = 1;
        d->total_samples = pk.total_samples;
        d->target = (int64_t)vqz_resample_length((size_t)pk.total_samples, h->sample_rate, d->out_rate);
    }
    return decode_ready(d);
}

vqz_status vqz_audio_decoder_push(vqz_audio_decoder *d, const uint8_t *packet, size_t size)
{
    VQZ_FAIL_IF(!d || !packet, VQZ_ERR_INVALID_ARG, "vqz_audio_decoder_push: NULL argument");
    vqz_error_clear();
    VQZ_FAIL_IF(d->failed != VQZ_OK, d->failed, "vqz_audio_decoder_push: the decoder stopped at an earlier error");
    if (!d->have_header) {
        vqz_stream_packet_kind kind;
        vqz_status s = vqz_stream_packet_kind_of(packet, size, &kind);
        if (s == VQZ_OK && kind != VQZ_STREAM_PACKET_HEADER)
            s = vqz_fail(VQZ_ERR_FORMAT, "a data packet before the stream header packet");
        if (s != VQZ_OK) {
            vqz_error_prefix("stream packet 0: ");
            return s;
        }
        s = accept_header(d, packet, size);
        if (s != VQZ_OK) { /* nothing of a refused header stays */
            free(d->win);
            free(d->win_levels);
            free(d->pkt);
            vqz_resampler_free(d->rs);
            d->win = NULL;
            d->win_levels = NULL;
            d->pkt = NULL;
            d->rs = NULL;
        }
        return s;
    }
    int accepted = 0;
    vqz_status s = accept_data(d, packet, size, &accepted);
    if (s != VQZ_OK && accepted)
        d->failed = s;
    return s;
}

vqz_status vqz_audio_decoder_pull(vqz_audio_decoder *d, float *pcm, size_t cap_frames, size_t *frames)
{
    VQZ_FAIL_IF(!d || !frames || (!pcm && cap_frames > 0), VQZ_ERR_INVALID_ARG, "vqz_audio_decoder_pull: NULL argument");
    vqz_error_clear();
    *frames = 0;
    if (d->out_len == 0) {
        if (d->ended && d->failed == VQZ_OK)
            return VQZ_OK;
        VQZ_FAIL_IF(d->failed != VQZ_OK, d->failed, "vqz_audio_decoder_pull: the decoder stopped at an earlier error");
        return vqz_fail(VQZ_ERR_MISSING, "no decoded audio is ready: push more packets");
    }
    int C = d->h.channels;
    int64_t n = min64(d->out_len, (int64_t)cap_frames);
    memcpy(pcm, d->out + d->out_head * C, (size_t)(n * C) * sizeof(float));
    d->out_head += n;
    d->out_len -= n;
    if (d->out_len == 0)
        d->out_head = 0;
    *frames = (size_t)n;
    return VQZ_OK;
}

vqz_status vqz_audio_decoder_info(const vqz_audio_decoder *d, vqz_audio_stream_info *info)
{
    VQZ_FAIL_IF(!d || !info, VQZ_ERR_INVALID_ARG, "vqz_audio_decoder_info: NULL argument");
    VQZ_FAIL_IF(!d->have_header, VQZ_ERR_MISSING, "vqz_audio_decoder_info: no stream header packet yet");
    fill_info(&d->h, info);
    info->output_rate = d->out_rate;
    info->encoder_lookahead = d->sc.enc_halo;
    info->decoder_lookahead = d->sc.dec_halo;
    return VQZ_OK;
}

void vqz_audio_decoder_free(vqz_audio_decoder *d)
{
    if (!d)
        return;
    vqz_span_coder_close(&d->sc);
    vqz_stream_coder_free(d->pc);
    vqz_resampler_free(d->rs);
    free(d->win);
    free(d->win_levels);
    free(d->pkt);
    free(d->rbuf);
    free(d->inter);
    free(d->out);
    free(d);
}

size_t vqz_audio_decoder_buffered_bytes(const vqz_audio_decoder *d)
{
    int C = d->have_header ? d->h.channels : 0, q = d->have_header ? d->h.levels : 0;
    size_t n = (size_t)d->win_cap * ((size_t)q * (size_t)C * sizeof(uint16_t) + 1);
    n += (size_t)q * (size_t)C * d->h.packet_frames * sizeof(uint16_t);
    n += (d->rbuf_cap * (size_t)C + d->inter_cap + (size_t)d->out_cap * (size_t)C) * sizeof(float);
    n += d->sc.x_cap * sizeof(float) + d->sc.idx_cap * sizeof(int32_t);
    return n;
}
