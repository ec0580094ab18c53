/* tiles.h — tiled image coding with a halo: the encoder runs on overlapping input tiles and keeps the
 * latents of each tile's core; the decoder runs on overlapping latent tiles and keeps each tile's core
 * pixels. With halos at least the networks' receptive-field radii the result equals whole-image coding,
 * while memory depends on the tile size only. Pixels travel through callbacks so that no full-image
 * float buffer is ever needed. */
#ifndef VQZ_CODEC_TILES_H
#define VQZ_CODEC_TILES_H

#include <stdint.h>

#include "nn/net.h"

/* Fills rgb[3][h][w] (values in [-1, 1]) with the padded image's pixels of rows [y, y+h), columns
 * [x, x+w). */
typedef vqz_status (*vqz_tile_source)(void *user, int64_t y, int64_t x, int64_t h, int64_t w, float *rgb);
/* Receives decoded pixels rgb[3][h][w] of rows [y, y+h), columns [x, x+w) of the padded image. */
typedef vqz_status (*vqz_tile_sink)(void *user, int64_t y, int64_t x, int64_t h, int64_t w, const float *rgb);

typedef struct {
    int64_t height, width;   /* padded image size, multiples of the net's stride */
    int tile;                /* core tile side in pixels (multiple of the stride) */
    int levels;              /* levels to encode or decode */
    const volatile int *cancel;
} vqz_tiling;

/* Halo sizes actually used: encoder in pixels, decoder in latent cells (radius rounded up, encoder
 * halo rounded up to the stride so that tiles stay on the stride grid). */
void vqz_tiling_halos(const vqz_net *net, int *enc_halo_px, int *dec_halo_cells);

/* Encode the padded image tile by tile into grid[level][gh][gw] (gh = height / stride, ...). */
vqz_status vqz_tiles_encode(vqz_nn_ctx *ctx, vqz_net *net, const vqz_tiling *t, vqz_tile_source src, void *user,
                            uint16_t *grid);
/* Decode grid[level][gh][gw] (first t->levels levels) tile by tile, handing the pixels to sink. */
vqz_status vqz_tiles_decode(vqz_nn_ctx *ctx, vqz_net *net, const vqz_tiling *t, const uint16_t *grid,
                            vqz_tile_sink sink, void *user);

#endif
