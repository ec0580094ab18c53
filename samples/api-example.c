/* api-example.c — libvqz in one page: load an image model, encode an RGB picture held in memory at
 * each number of RVQ levels, decode it back, and print the compressed size and the PSNR.
 *
 * Build against an installed libvqz and run it with an image model bundle:
 *   cc api-example.c $(pkg-config --cflags --libs vqz) -lm -o api-example
 *   ./api-example /usr/local/share/vqz/models/vqz-image-v1.safetensors
 * (with a PREFIX outside the loader's path, run it with LD_LIBRARY_PATH=PREFIX/lib). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <vqz.h>

/* Every libvqz call returns a vqz_status. On failure, vqz_strerror() names the kind of fault and
 * vqz_last_error() says which file, field or value caused it. */
static int failed(vqz_status s, const char *what)
{
    if (s == VQZ_OK)
        return 0;
    fprintf(stderr, "api-example: %s: %s: %s\n", what, vqz_strerror(s), vqz_last_error());
    return 1;
}

/* Peak signal-to-noise ratio of two 8-bit pictures, in dB. */
static double psnr(const uint8_t *a, const uint8_t *b, size_t n)
{
    double se = 0;
    for (size_t i = 0; i < n; i++)
        se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return se == 0 ? INFINITY : 10.0 * log10(255.0 * 255.0 * n / se);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: api-example MODEL.safetensors\n");
        return 1;
    }

    /* A model is loaded once and is read-only afterwards: any number of threads may share it. */
    vqz_model *model = NULL;
    if (failed(vqz_model_load(argv[1], &model), argv[1]))
        return 1;
    vqz_model_info info;
    if (failed(vqz_model_describe(model, &info), argv[1]) || info.kind != VQZ_KIND_IMAGE) {
        fprintf(stderr, "api-example: %s: not an image model\n", argv[1]);
        vqz_model_free(model);
        return 1;
    }
    printf("%s: model %s, %d levels of %d codewords, %s\n", argv[1], info.name, info.levels, info.codebook_size,
           vqz_version());

    /* The picture: colour ramps and a bright disc, 8-bit RGB, rows stored one after another. Any size
     * works; the library pads and tiles internally. */
    const uint32_t width = 160, height = 120;
    uint8_t *rgb = malloc((size_t)width * height * 3);
    if (!rgb) {
        vqz_model_free(model);
        return 1;
    }
    for (uint32_t y = 0; y < height; y++)
        for (uint32_t x = 0; x < width; x++) {
            uint8_t *p = rgb + ((size_t)y * width + x) * 3;
            double dx = x - 100.0, dy = y - 50.0;
            int disc = dx * dx + dy * dy < 30.0 * 30.0;
            p[0] = (uint8_t)(disc ? 240 : 255 * x / width);
            p[1] = (uint8_t)(disc ? 220 : 255 * y / height);
            p[2] = (uint8_t)(disc ? 90 : 128);
        }
    vqz_pixels picture = {width, height, 3, 8, rgb};

    int status = 0;
    for (int levels = 1; levels <= info.levels && status == 0; levels++) {
        /* Options start from their defaults; levels = how many RVQ levels to write (0 = all). */
        vqz_options opt;
        vqz_options_init(&opt);
        opt.levels = levels;

        /* Encoding gives a complete .vqz file in memory (write it anywhere as it is). */
        uint8_t *file = NULL;
        size_t size = 0;
        if (failed(vqz_image_encode(model, &opt, &picture, &file, &size), "encode")) {
            status = 1;
            break;
        }

        /* Decoding allocates the pixels; they come back with the original geometry and depth. */
        vqz_pixels back;
        if (failed(vqz_image_decode(model, NULL, file, size, &back), "decode")) {
            vqz_free(file);
            status = 1;
            break;
        }
        if (back.width != width || back.height != height || back.channels != 3 || back.bit_depth != 8) {
            fprintf(stderr, "api-example: decoded %ux%u with %d channels, expected %ux%u RGB\n", back.width,
                    back.height, back.channels, width, height);
            status = 1;
        } else {
            printf("levels %d: %zu bytes, %.3f bpp, PSNR %.2f dB\n", levels, size, size * 8.0 / (width * height),
                   psnr(rgb, back.pixels, (size_t)width * height * 3));
        }
        vqz_free(back.pixels); /* memory the library returned goes back through vqz_free */
        vqz_free(file);
    }

    free(rgb);
    vqz_model_free(model);
    return status;
}
