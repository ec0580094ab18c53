/* image_io.h — images in and out of vqz: PNG (every flavour, libpng) and JPEG (libjpeg-turbo) readers, a PNG
 * writer that gives back the kind of file that came in, and conversion to and from the model's planar RGB. */
#ifndef VQZ_CODEC_IMAGE_IO_H
#define VQZ_CODEC_IMAGE_IO_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* Readers refuse larger images with VQZ_ERR_LIMIT before allocating anything for the pixels. */
#define VQZ_IMAGE_MAX_SIDE 65535
#define VQZ_IMAGE_MAX_PIXELS (UINT64_C(1) << 30)

/* The container the image came from. */
typedef enum { VQZ_IMAGE_SRC_PNG = 0, VQZ_IMAGE_SRC_JPEG = 1 } vqz_image_source;

/* PNG colour types, numerically those of the PNG specification. */
enum {
    VQZ_PNG_GREY = 0,
    VQZ_PNG_RGB = 2,
    VQZ_PNG_PALETTE = 3,
    VQZ_PNG_GREY_ALPHA = 4,
    VQZ_PNG_RGBA = 6
};

/* A decoded image and the description of the file it came from.
 *
 * Samples are interleaved (row-major, `channels` per pixel) and held as uint16_t whatever the depth, with
 * values in [0, 2^bit_depth - 1]. Readers expand what PNG stores compactly: grey below 8 bits is scaled to
 * 8 bits (v * 255 / (2^d - 1), as libpng does), palette images become RGB (RGBA when the palette has tRNS),
 * and a grey or RGB colour key (tRNS) becomes an alpha channel (0 where the key matched, max elsewhere).
 * The fields after `samples` describe the source so vqz_image_write_png can give the user back the same kind
 * of file; a decoder makes its output with vqz_image_create_like so it inherits them. */
typedef struct vqz_image {
    int width, height;
    int channels;      /* 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA */
    int bit_depth;     /* 8 or 16: the range of the samples held */
    uint16_t *samples; /* width * height * channels, owned by the image */

    vqz_image_source source;
    int color_type;       /* PNG colour type of the source; a JPEG records the PNG it is written back as (grey or RGB) */
    int source_bit_depth; /* 1, 2, 4, 8 or 16 as stored in the source */
    int interlaced;       /* 1 for Adam7 */
    int palette_size;     /* palette entries (colour type 3 only), else 0 */
    uint8_t palette[256][4];  /* RGBA; alpha is 255 beyond palette_alpha_size */
    int palette_alpha_size;   /* number of tRNS alpha entries of a palette, 0 when none */
    int has_color_key;        /* grey or RGB source with a tRNS colour key */
    uint16_t color_key[3];    /* the key at source_bit_depth; grey uses [0] */
    int srgb_intent;          /* -1: no sRGB chunk; else its rendering intent 0..3 */
    int32_t gamma;            /* gAMA * 100000 when a gAMA chunk was present without sRGB, else 0 */
    char icc_name[80];        /* iCCP profile name (PNG) or "ICC profile" (JPEG APP2), "" when none */
    uint8_t *icc_profile;     /* the embedded ICC profile, NULL when none; owned by the image */
    size_t icc_size;
} vqz_image;

/* A new image with zeroed samples and a plain PNG description (colour type from the channel count, source
 * depth = bit_depth, not interlaced, no palette, no key, no colour chunks). channels 1..4, bit_depth 8 or
 * 16, sides 1..VQZ_IMAGE_MAX_SIDE and at most VQZ_IMAGE_MAX_PIXELS pixels. */
vqz_status vqz_image_create(int width, int height, int channels, int bit_depth, vqz_image **out);

/* A new image with src's geometry, channels, depth and whole source description (palette, key, ICC
 * profile copied), and zeroed samples: what a decoder fills. */
vqz_status vqz_image_create_like(const vqz_image *src, vqz_image **out);

/* Frees the image and everything it owns; NULL is a no-op. */
void vqz_image_free(vqz_image *img);

/* Reads a PNG or JPEG, recognised by its signature (never by the name). Errors name the file and the fault:
 * VQZ_ERR_IO (cannot open/read), VQZ_ERR_TRUNCATED, VQZ_ERR_CHECKSUM (PNG CRC), VQZ_ERR_FORMAT (not a PNG or
 * JPEG, malformed data), VQZ_ERR_LIMIT (too large, refused before allocating the pixels),
 * VQZ_ERR_UNSUPPORTED (CMYK/YCCK or 12-bit JPEG). */
vqz_status vqz_image_read_file(const char *path, vqz_image **out);

/* Same from memory; messages name the data "(memory)". */
vqz_status vqz_image_read_memory(const uint8_t *data, size_t size, vqz_image **out);

/* Same from memory, with the name to use in messages (e.g. "stdin"). */
vqz_status vqz_image_read_memory_named(const uint8_t *data, size_t size, const char *name, vqz_image **out);

/* Colour samples to the model's input: rgb[3][height][width], v / max * 2 - 1 so [0, max] maps onto
 * [-1, 1]; grey is replicated into the three planes; alpha is ignored. */
vqz_status vqz_image_to_rgb_planar(const vqz_image *img, float *rgb);

/* The model's output back into img's colour samples: each value is clamped to [-1, 1] and rounded to the
 * nearest level at img's bit depth. A grey image takes the mean of R, G and B (so grey planes written by
 * vqz_image_to_rgb_planar come back exactly). Alpha samples are left untouched. VQZ_ERR_NONFINITE (and img
 * unchanged) when a value is NaN. */
vqz_status vqz_image_from_rgb_planar(vqz_image *img, const float *rgb);

/* 1 when the image has an alpha channel (channels 2 or 4), else 0. */
int vqz_image_has_alpha(const vqz_image *img);

/* Copies the alpha channel into plane[height * width] / from it (values at most 2^bit_depth - 1, checked
 * before anything is written). VQZ_ERR_INVALID_ARG when the image has no alpha channel. */
vqz_status vqz_image_get_alpha(const vqz_image *img, uint16_t *plane);
vqz_status vqz_image_set_alpha(vqz_image *img, const uint16_t *plane);

/* One-line description for messages and vqz-info, e.g. "PNG 600x400 RGB 8-bit",
 * "PNG 17x9 palette 4-bit (12 colours, 3 with alpha), interlaced", "JPEG 640x480 grey 8-bit".
 * Always NUL-terminates when n > 0 (truncating if needed). */
void vqz_image_describe(const vqz_image *img, char *buf, size_t n);

/* Encodes img as a PNG shaped like its source: same colour type and bit depth (sub-8-bit grey and palette
 * depths included), palette images mapped pixel by pixel to the nearest palette entry (squared RGB + alpha
 * distance, exact when a pixel equals an entry), grey/RGB colour keys written back as tRNS (alpha below
 * half of max becomes the key colour; an opaque pixel that would equal the key is moved one level away from
 * it), interlacing, sRGB / gAMA / iCCP kept. A JPEG source becomes an 8-bit grey or RGB PNG. The file is
 * written to a temporary file in the target folder and renamed into place; on failure nothing is left
 * behind and an existing file is untouched. */
vqz_status vqz_image_write_png(const vqz_image *img, const char *path);

/* Same into a new buffer (*buf, *len); the caller frees *buf with free(). */
vqz_status vqz_image_write_png_memory(const vqz_image *img, uint8_t **buf, size_t *len);

#endif
