/* bench_nn.c — engine speed benchmark: one row per run (training step, encode or decode of the image
 * and audio models at the sizes of issue 3), printed as one JSON line with the median time and the
 * process's peak RSS. Run each row in its own process so peak memory is per row:
 *   bench_nn image-train | image-encode | image-decode | audio-train | audio-encode | audio-decode [reps]
 *   bench_nn config image|audio [CONFIG]  (prints the benchmarked config's JSON)
 *   bench_nn label image|audio [CONFIG]   (prints the architecture's label, as the rows name it)
 * CONFIG (third argument of a row) benchmarks that architecture instead of the image-base / audio-base
 * preset: a JSON file (e.g. a shipped model's config) or a preset name such as audio-small. The JSON line
 * names it in "label" (the file's base name without .json, or the preset).
 * VQZ_BENCH_DEVICE=cuda runs the encode and decode rows on the GPU (inputs and outputs in host memory, as
 * the codec has them); VQZ_BENCH_BATCH=N codes N items per run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/status.h"
#include "nn/adamw.h"
#include "nn/net.h"

/* The base preset of the row's kind, a named preset, or the architecture in a JSON file. */
static vqz_status load_config(int image, const char *path, vqz_net_config *c)
{
    if (!path)
        return vqz_net_config_preset(image ? "image-base" : "audio-base", c);
    FILE *f = fopen(path, "rb");
    if (!f && !strchr(path, '/') && !strstr(path, ".json"))
        return vqz_net_config_preset(path, c);
    if (!f)
        return vqz_fail(VQZ_ERR_IO, "cannot open %s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return vqz_net_config_from_json(buf, c);
}

/* The label of a row's architecture: the preset's name or the JSON file's base name. */
static void config_label(int image, const char *path, char *out, size_t cap)
{
    if (!path) {
        snprintf(out, cap, "%s", image ? "image-base" : "audio-base");
        return;
    }
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t n = strlen(base);
    if (n > 12 && strcmp(base + n - 12, ".config.json") == 0)
        n -= 12;
    else if (n > 5 && strcmp(base + n - 5, ".json") == 0)
        n -= 5;
    snprintf(out, cap, "%.*s", (int)n, base);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(vqz_status s, const char *what)
{
    fprintf(stderr, "bench_nn: %s: %s: %s\n", what, vqz_strerror(s), vqz_last_error());
    exit(1);
}

#define CHECK(expr, what)            \
    do {                             \
        vqz_status s_ = (expr);      \
        if (s_ != VQZ_OK)            \
            die(s_, what);           \
    } while (0)

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_nn image-train|image-encode|image-decode|audio-train|audio-encode|audio-decode "
                        "[reps [CONFIG.json|PRESET]]\n");
        return 1;
    }
    const char *row = argv[1];
    if (strcmp(row, "label") == 0 && argc > 2) { /* the name the rows give, for the PyTorch twin's lines */
        char label[128];
        config_label(strcmp(argv[2], "image") == 0, argc > 3 ? argv[3] : NULL, label, sizeof label);
        puts(label);
        return 0;
    }
    if (strcmp(row, "config") == 0 && argc > 2) { /* the preset's JSON, for the PyTorch twin */
        vqz_net_config c;
        char *json = NULL;
        CHECK(load_config(strcmp(argv[2], "image") == 0, argc > 3 ? argv[3] : NULL, &c), "config");
        CHECK(vqz_net_config_to_json(&c, &json), "json");
        printf("%s\n", json);
        free(json);
        return 0;
    }
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    int image = strncmp(row, "image", 5) == 0;
    const char *what = strchr(row, '-') ? strchr(row, '-') + 1 : "";

    vqz_net_config cfg;
    CHECK(load_config(image, argc > 3 ? argv[3] : NULL, &cfg), "config");
    vqz_net *m = NULL;
    CHECK(vqz_net_create(&cfg, &m), "model");
    CHECK(vqz_net_init(m, 1), "init");
    vqz_nn_ctx *ctx = NULL;
    const char *dev = getenv("VQZ_BENCH_DEVICE");
    int cuda = dev && strcmp(dev, "cuda") == 0;
    CHECK(vqz_nn_ctx_create(&ctx, cuda ? VQZ_DEVICE_CUDA : VQZ_DEVICE_CPU, 0), "ctx");
    vqz_rng rng;
    vqz_rng_seed(&rng, 2);

    int64_t n, h, w;
    if (strcmp(what, "train") == 0) {
        n = image ? 16 : 8;
        h = image ? 128 : 24000;
        w = image ? 128 : 1;
    } else {
        const char *b = getenv("VQZ_BENCH_BATCH");
        n = b && atoi(b) > 0 ? atoi(b) : 1;
        h = image ? 512 : 60 * 24000;
        w = image ? 768 : 1;
    }
    int64_t numel = n * cfg.in_channels * h * w;
    float *x = malloc((size_t)numel * sizeof(float));
    float *y = malloc((size_t)numel * sizeof(float));
    if (!x || !y)
        die(VQZ_ERR_NOMEM, "input");
    vqz_rng_fill_uniform(&rng, x, numel, -0.8f, 0.8f);
    vqz_tensor xt = image ? vqz_t4(x, n, cfg.in_channels, h, w) : vqz_t3(x, n, 1, h);
    vqz_tensor yt = xt;
    yt.data = y;
    int64_t lh, lw;
    CHECK(vqz_net_latent_size(m, h, w, &lh, &lw), "latent size");
    int32_t *idx = malloc((size_t)(cfg.levels * n * lh * lw) * sizeof(int32_t));
    if (!idx)
        die(VQZ_ERR_NOMEM, "indices");

    vqz_train_opts o;
    memset(&o, 0, sizeof o);
    o.lr = 1e-4f;
    o.weight_decay = 1e-4f;
    o.beta = 0.25f;
    o.grad_clip = 1.0f;
    o.n_levels = cfg.levels;
    o.ema = 1;
    if (image)
        o.mse_weight = 1.0f;
    else
        o.l1_weight = o.stft_weight = 1.0f;
    if (strcmp(what, "train") == 0)
        CHECK(vqz_net_enable_training(m), "training state");
    else if (strcmp(what, "decode") == 0) /* random indices: the decode row's peak memory is the decoder's alone */
        for (int64_t i = 0; i < cfg.levels * n * lh * lw; i++)
            idx[i] = (int32_t)vqz_rng_below(&rng, (uint64_t)cfg.codebook_size);

    double *times = calloc((size_t)reps + 1, sizeof(double));
    for (int r = 0; r <= reps; r++) { /* run 0 warms caches and primitive creation */
        double t0 = now();
        if (strcmp(what, "train") == 0) {
            vqz_train_stats st;
            CHECK(vqz_net_train_grad(ctx, m, &xt, &o, &st), "train_grad");
            CHECK(vqz_net_train_apply(ctx, m, &o, &rng, &st), "train_apply");
        } else if (strcmp(what, "encode") == 0) {
            CHECK(vqz_net_encode(ctx, m, &xt, cfg.levels, idx), "encode");
        } else if (strcmp(what, "decode") == 0) {
            CHECK(vqz_net_decode(ctx, m, idx, cfg.levels, &yt), "decode");
        } else {
            fprintf(stderr, "bench_nn: unknown row '%s'\n", row);
            return 1;
        }
        times[r] = now() - t0;
    }
    qsort(times + 1, (size_t)reps, sizeof(double), cmp_double);
    double med = times[1 + reps / 2];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double enc_macs = 0, dec_macs = 0;
    vqz_net_macs(m, h, w, &enc_macs, &dec_macs);
    /* the row's own network: the encoder, the decoder, or both for a training step's forward pass */
    double row_macs = strcmp(what, "encode") == 0 ? enc_macs : strcmp(what, "decode") == 0 ? dec_macs
                                                                                          : enc_macs + dec_macs;
    char label[128];
    config_label(image, argc > 3 ? argv[3] : NULL, label, sizeof label);
    printf("{\"impl\":\"vqz\",\"device\":\"%s\",\"row\":\"%s\",\"label\":\"%s\",\"n\":%lld,\"h\":%lld,\"w\":%lld,\"threads\":%d,\"median_s\":%.6f,"
           "\"first_s\":%.6f,\"peak_rss_mb\":%.1f,\"arena_mb\":%.1f,\"gmac_per_item\":%.3f}\n",
           cuda ? "cuda" : "cpu", row, label, (long long)n, (long long)h, (long long)w, ctx->threads, med, times[0], ru.ru_maxrss / 1024.0,
           (m->enc.arena_cap + m->dec.arena_cap) * 4.0 / 1048576.0, row_macs / 1e9);
    free(times);
    free(idx);
    free(x);
    free(y);
    vqz_nn_ctx_free(ctx);
    vqz_net_free(m);
    return 0;
}
