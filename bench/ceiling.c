/* ceiling.c — where an image model's quality stops: for each image, the PSNR of the model's reconstruction
 * at every level count 1..L and with no quantizer at all (the encoder's latent straight into the decoder),
 * averaged over the images. The unquantized figure is the autoencoder's ceiling, which more levels can only
 * approach; the gap from the last level to it is what the quantizer costs. The network runs on whole images
 * (no tiles), so their sides must be multiples of the model's stride (bench/rd.sh's 768x512 crops are).
 *
 *   bench_ceiling MODEL.safetensors IMAGE.png...      (one line per image, then the means)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/image_io.h"
#include "codec/metrics.h"
#include "codec/model.h"
#include "common/status.h"
#include "nn/net.h"

static vqz_status one_image(vqz_nn_ctx *ctx, vqz_net *net, const char *path, double *psnr /* [L + 1] */)
{
    vqz_image *im = NULL;
    VQZ_TRY(vqz_image_read_file(path, &im));
    const int w = im->width, h = im->height, L = net->cfg.levels;
    int64_t lh = 0, lw = 0;
    vqz_status s = im->bit_depth == 8 ? vqz_net_latent_size(net, h, w, &lh, &lw)
                                      : vqz_fail(VQZ_ERR_UNSUPPORTED, "%s: 8-bit images only", path);
    const int64_t plane = (int64_t)w * h, D = net->cfg.latent_dim;
    float *x = malloc(sizeof(float) * 3 * plane), *y = malloc(sizeof(float) * 3 * plane);
    float *z = malloc(sizeof(float) * D * lh * lw);
    int32_t *idx = malloc(sizeof(int32_t) * L * lh * lw);
    if (s == VQZ_OK && (!x || !y || !z || !idx))
        s = vqz_fail(VQZ_ERR_NOMEM, "out of memory for %s", path);
    if (s == VQZ_OK)
        s = vqz_image_to_rgb_planar(im, x);
    vqz_tensor xt = vqz_t4(x, 1, 3, h, w), yt = vqz_t4(y, 1, 3, h, w), zt = vqz_t4(z, 1, D, lh, lw);
    if (s == VQZ_OK)
        s = vqz_net_encode_latent(ctx, net, &xt, &zt);
    if (s == VQZ_OK)
        s = vqz_net_decode_latent(ctx, net, &zt, &yt);
    if (s == VQZ_OK)
        psnr[L] = vqz_metric_psnr_8bit(x, y, 3 * plane);
    if (s == VQZ_OK)
        s = vqz_net_encode(ctx, net, &xt, L, idx);
    for (int l = 1; s == VQZ_OK && l <= L; l++) {
        /* indices are [level][position]: the first l levels are a prefix */
        s = vqz_net_decode(ctx, net, idx, l, &yt);
        if (s == VQZ_OK)
            psnr[l - 1] = vqz_metric_psnr_8bit(x, y, 3 * plane);
    }
    free(x), free(y), free(z), free(idx);
    vqz_image_free(im);
    return s;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_ceiling MODEL.safetensors IMAGE.png...\n");
        return 1;
    }
    vqz_model *m = NULL;
    vqz_nn_ctx *ctx = NULL;
    vqz_status s = vqz_model_load(argv[1], &m);
    if (s == VQZ_OK && m->cfg.kind != VQZ_NET_IMAGE)
        s = vqz_fail(VQZ_ERR_MODEL_MISMATCH, "%s is not an image model", argv[1]);
    if (s == VQZ_OK)
        s = vqz_nn_ctx_create(&ctx, VQZ_DEVICE_CPU, 0);
    const int L = s == VQZ_OK ? m->cfg.levels : 0;
    double sum[VQZ_MAX_LEVELS + 1] = {0}, p[VQZ_MAX_LEVELS + 1];
    int n = 0;
    if (s == VQZ_OK) {
        printf("%-40s", "image");
        for (int l = 1; l <= L; l++)
            printf(" %7s%d", "L=", l);
        printf(" %8s\n", "no RVQ");
    }
    for (int a = 2; s == VQZ_OK && a < argc; a++) {
        s = one_image(ctx, m->net, argv[a], p);
        if (s != VQZ_OK)
            break;
        const char *base = strrchr(argv[a], '/');
        printf("%-40.40s", base ? base + 1 : argv[a]);
        for (int l = 0; l <= L; l++) {
            printf(" %8.2f", p[l]);
            sum[l] += p[l];
        }
        printf("\n");
        n++;
    }
    if (s == VQZ_OK && n > 0) {
        printf("%-40s", "mean PSNR (dB)");
        for (int l = 0; l <= L; l++)
            printf(" %8.2f", sum[l] / n);
        printf("\n");
    }
    if (s != VQZ_OK)
        fprintf(stderr, "bench_ceiling: %s\n", vqz_last_error());
    vqz_nn_ctx_free(ctx);
    vqz_model_free(m);
    return s == VQZ_OK ? 0 : 1;
}
