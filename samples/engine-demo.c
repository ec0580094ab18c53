/* engine-demo.c — a demonstration of the nn engine on real photographs: trains a small image model for
 * a fixed number of steps on random crops of the first image, then encodes and decodes every image
 * given at each RVQ level and prints the index rate (bits per pixel before entropy coding), PSNR and
 * times. Usage: engine-demo [--steps N] image.png [more.png ...] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/image_io.h"
#include "common/status.h"
#include "nn/adamw.h"
#include "nn/net.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Loads a PNG or JPEG through the codec's reader as planar RGB floats in [-1, 1]. */
static float *load_image(const char *path, int *w, int *h)
{
    vqz_image *img = NULL;
    vqz_status st = vqz_image_read_file(path, &img);
    if (st != VQZ_OK) {
        fprintf(stderr, "engine-demo: %s\n", vqz_last_error());
        return NULL;
    }
    *w = img->width;
    *h = img->height;
    float *x = malloc((size_t)3 * img->width * img->height * sizeof(float));
    if (x && vqz_image_to_rgb_planar(img, x) != VQZ_OK) {
        fprintf(stderr, "engine-demo: %s\n", vqz_last_error());
        free(x);
        x = NULL;
    }
    vqz_image_free(img);
    return x;
}

static void fail(vqz_status s, const char *what)
{
    fprintf(stderr, "engine-demo: %s: %s (%s)\n", what, vqz_strerror(s), vqz_last_error());
    exit(1);
}

#define CHECK(e, what)          \
    do {                        \
        vqz_status s_ = (e);    \
        if (s_ != VQZ_OK)       \
            fail(s_, what);     \
    } while (0)

int main(int argc, char **argv)
{
    int steps = 300, first = 1;
    if (argc > 2 && strcmp(argv[1], "--steps") == 0) {
        steps = atoi(argv[2]);
        first = 3;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: engine-demo [--steps N] image.png [more.png ...]\n");
        return 1;
    }
    vqz_net_config cfg;
    CHECK(vqz_net_config_preset("image-small", &cfg), "preset");
    cfg.channels[0] = 16;
    cfg.channels[1] = 32;
    cfg.channels[2] = 48;
    cfg.channels[3] = 64;
    cfg.res_blocks = 1;
    cfg.latent_dim = 16;
    cfg.levels = 4;
    cfg.codebook_size = 256;
    vqz_net *m = NULL;
    vqz_nn_ctx *ctx = NULL;
    CHECK(vqz_net_create(&cfg, &m), "model");
    CHECK(vqz_net_init(m, 1), "init");
    CHECK(vqz_net_enable_training(m), "training state");
    CHECK(vqz_nn_ctx_create(&ctx, VQZ_DEVICE_AUTO, 0), "context");

    int tw, th;
    float *train = load_image(argv[first], &tw, &th);
    if (!train)
        return 2;
    const int B = 8, P = 64;
    float *batch = malloc((size_t)B * 3 * P * P * sizeof(float));
    vqz_tensor bt = vqz_t4(batch, B, 3, P, P);
    vqz_rng rng;
    vqz_rng_seed(&rng, 1);
    printf("training a %.2f M-parameter model for %d steps on %dx%d crops of %s (%d threads)\n",
           m->n_total / 1e6, steps, P, P, argv[first], ctx->threads);
    double t0 = now();
    vqz_train_opts o;
    memset(&o, 0, sizeof o);
    o.weight_decay = 1e-4f;
    o.beta = 0.25f;
    o.grad_clip = 1.0f;
    o.mse_weight = 1.0f;
    o.ema = 1;
    for (int step = 0; step < steps; step++) {
        for (int b = 0; b < B; b++) {
            int y0 = (int)vqz_rng_below(&rng, (uint64_t)(th - P)), x0 = (int)vqz_rng_below(&rng, (uint64_t)(tw - P));
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < P; i++)
                    memcpy(batch + (((size_t)b * 3 + c) * P + i) * P,
                           train + ((size_t)c * th + y0 + i) * tw + x0, P * sizeof(float));
        }
        if (step == 0)
            CHECK(vqz_net_kmeans_init(ctx, m, &bt, 5, &rng), "k-means");
        o.lr = vqz_lr_at(2e-3f, step, 20, steps, 0.05f);
        o.n_levels = vqz_rvq_dropout_levels(&rng, cfg.levels, 0.5f);
        vqz_train_stats st;
        CHECK(vqz_net_train_grad(ctx, m, &bt, &o, &st), "train");
        CHECK(vqz_net_train_apply(ctx, m, &o, &rng, &st), "train");
        if (step % 50 == 0 || step == steps - 1)
            printf("  step %4d  mse %.5f  commit %.5f  levels %d  perplexity L1 %.0f  (%.1f s)\n", step, st.recon,
                   st.commit, st.n_levels, st.usage[0].perplexity, now() - t0);
    }
    free(batch);
    free(train);

    printf("\n%-28s %6s %8s %8s %9s %9s\n", "image", "levels", "bpp", "PSNR", "enc ms", "dec ms");
    for (int a = first; a < argc; a++) {
        int w, h;
        float *img = load_image(argv[a], &w, &h);
        if (!img)
            return 2;
        int f = vqz_net_stride(m), pw = (w + f - 1) / f * f, ph = (h + f - 1) / f * f;
        float *x = malloc((size_t)3 * pw * ph * sizeof(float)), *y = malloc((size_t)3 * pw * ph * sizeof(float));
        /* edge replication to a multiple of the stride */
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < ph; i++)
                for (int j = 0; j < pw; j++)
                    x[((size_t)c * ph + i) * pw + j] = img[((size_t)c * h + (i < h ? i : h - 1)) * w + (j < w ? j : w - 1)];
        vqz_tensor xt = vqz_t4(x, 1, 3, ph, pw), yt = vqz_t4(y, 1, 3, ph, pw);
        int32_t *idx = malloc((size_t)cfg.levels * (ph / f) * (pw / f) * sizeof(int32_t));
        double te = now();
        CHECK(vqz_net_encode(ctx, m, &xt, cfg.levels, idx), "encode");
        te = now() - te;
        for (int L = 1; L <= cfg.levels; L++) {
            double td = now();
            CHECK(vqz_net_decode(ctx, m, idx, L, &yt), "decode");
            td = now() - td;
            double se = 0;
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < h; i++)
                    for (int j = 0; j < w; j++) {
                        double v = fmax(-1.0, fmin(1.0, (double)y[((size_t)c * ph + i) * pw + j]));
                        double d = (v - img[((size_t)c * h + i) * w + j]) * 127.5;
                        se += d * d;
                    }
            double mse = se / (3.0 * w * h);
            double bpp = L * log2((double)cfg.codebook_size) * (ph / f) * (pw / f) / ((double)w * h);
            printf("%-28s %6d %8.3f %8.2f %9.1f %9.1f\n", argv[a], L, bpp, 10 * log10(255.0 * 255.0 / mse),
                   te * 1e3, td * 1e3);
        }
        free(idx);
        free(x);
        free(y);
        free(img);
    }
    vqz_nn_ctx_free(ctx);
    vqz_net_free(m);
    return 0;
}
