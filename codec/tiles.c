/* tiles.c — tiled encode and decode with halos (see tiles.h for why this equals whole-image coding). */
#include "codec/tiles.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"

void vqz_tiling_halos(const vqz_net *net, int *enc_halo_px, int *dec_halo_cells)
{
    double er = 0, dr = 0;
    vqz_net_halo(net, &er, &dr);
    int f = vqz_net_stride(net);
    int e = (int)ceil(er);
    if (enc_halo_px)
        *enc_halo_px = (e + f - 1) / f * f;
    if (dec_halo_cells)
        *dec_halo_cells = (int)ceil(dr);
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}
static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static vqz_status check_tiling(const vqz_net *net, const vqz_tiling *t)
{
    int f = vqz_net_stride(net);
    VQZ_FAIL_IF(t->height <= 0 || t->width <= 0 || t->height % f || t->width % f, VQZ_ERR_SHAPE,
                "tiles: image %lldx%lld is not a positive multiple of the stride %d", (long long)t->width,
                (long long)t->height, f);
    VQZ_FAIL_IF(t->tile < f || t->tile % f, VQZ_ERR_INVALID_ARG, "tiles: tile %d is not a multiple of the stride %d",
                t->tile, f);
    VQZ_FAIL_IF(t->levels < 1 || t->levels > net->cfg.levels, VQZ_ERR_INVALID_ARG, "tiles: %d levels, model has %d",
                t->levels, net->cfg.levels);
    return VQZ_OK;
}

vqz_status vqz_tiles_encode(vqz_nn_ctx *ctx, vqz_net *net, const vqz_tiling *t, vqz_tile_source src, void *user,
                            uint16_t *grid)
{
    VQZ_TRY(check_tiling(net, t));
    int f = vqz_net_stride(net), halo = 0;
    vqz_tiling_halos(net, &halo, NULL);
    int64_t gh = t->height / f, gw = t->width / f;
    int64_t span = t->tile + 2 * (int64_t)halo; /* largest input region */
    int64_t rh_max = min64(span, t->height), rw_max = min64(span, t->width);
    float *buf = malloc((size_t)(3 * rh_max * rw_max) * sizeof(float));
    int32_t *idx = malloc((size_t)(t->levels * (rh_max / f) * (rw_max / f)) * sizeof(int32_t));
    vqz_status s = (buf && idx) ? VQZ_OK : vqz_fail(VQZ_ERR_NOMEM, "tiles: out of memory");
    for (int64_t y0 = 0; s == VQZ_OK && y0 < t->height; y0 += t->tile) {
        for (int64_t x0 = 0; s == VQZ_OK && x0 < t->width; x0 += t->tile) {
            if (t->cancel && *t->cancel) {
                s = vqz_fail(VQZ_ERR_CANCELLED, "encode cancelled");
                break;
            }
            int64_t y1 = min64(y0 + t->tile, t->height), x1 = min64(x0 + t->tile, t->width);
            int64_t ry0 = max64(0, y0 - halo), ry1 = min64(t->height, y1 + halo);
            int64_t rx0 = max64(0, x0 - halo), rx1 = min64(t->width, x1 + halo);
            int64_t rh = ry1 - ry0, rw = rx1 - rx0;
            s = src(user, ry0, rx0, rh, rw, buf);
            if (s != VQZ_OK)
                break;
            vqz_tensor x = vqz_t4(buf, 1, 3, rh, rw);
            s = vqz_net_encode(ctx, net, &x, t->levels, idx);
            if (s != VQZ_OK)
                break;
            /* keep the core cells */
            int64_t lh = rh / f, lw = rw / f;
            for (int l = 0; l < t->levels; l++)
                for (int64_t cy = y0 / f; cy < y1 / f; cy++)
                    for (int64_t cx = x0 / f; cx < x1 / f; cx++)
                        grid[((int64_t)l * gh + cy) * gw + cx] =
                            (uint16_t)idx[((int64_t)l * lh + (cy - ry0 / f)) * lw + (cx - rx0 / f)];
        }
    }
    free(buf);
    free(idx);
    return s;
}

vqz_status vqz_tiles_decode(vqz_nn_ctx *ctx, vqz_net *net, const vqz_tiling *t, const uint16_t *grid,
                            vqz_tile_sink sink, void *user)
{
    VQZ_TRY(check_tiling(net, t));
    int f = vqz_net_stride(net), halo = 0;
    vqz_tiling_halos(net, NULL, &halo);
    int64_t gh = t->height / f, gw = t->width / f, tc = t->tile / f;
    int64_t lh_max = min64(tc + 2 * (int64_t)halo, gh), lw_max = min64(tc + 2 * (int64_t)halo, gw);
    int32_t *idx = malloc((size_t)(t->levels * lh_max * lw_max) * sizeof(int32_t));
    float *out = malloc((size_t)(3 * lh_max * f * lw_max * f) * sizeof(float));
    float *core = malloc((size_t)(3 * tc * f * tc * f) * sizeof(float));
    vqz_status s = (idx && out && core) ? VQZ_OK : vqz_fail(VQZ_ERR_NOMEM, "tiles: out of memory");
    for (int64_t cy0 = 0; s == VQZ_OK && cy0 < gh; cy0 += tc) {
        for (int64_t cx0 = 0; s == VQZ_OK && cx0 < gw; cx0 += tc) {
            if (t->cancel && *t->cancel) {
                s = vqz_fail(VQZ_ERR_CANCELLED, "decode cancelled");
                break;
            }
            int64_t cy1 = min64(cy0 + tc, gh), cx1 = min64(cx0 + tc, gw);
            int64_t ry0 = max64(0, cy0 - halo), ry1 = min64(gh, cy1 + halo);
            int64_t rx0 = max64(0, cx0 - halo), rx1 = min64(gw, cx1 + halo);
            int64_t lh = ry1 - ry0, lw = rx1 - rx0;
            for (int l = 0; l < t->levels; l++)
                for (int64_t y = 0; y < lh; y++)
                    for (int64_t x = 0; x < lw; x++)
                        idx[((int64_t)l * lh + y) * lw + x] = grid[((int64_t)l * gh + ry0 + y) * gw + rx0 + x];
            vqz_tensor yt = vqz_t4(out, 1, 3, lh * f, lw * f);
            s = vqz_net_decode(ctx, net, idx, t->levels, &yt);
            if (s != VQZ_OK)
                break;
            int64_t ch = (cy1 - cy0) * f, cw = (cx1 - cx0) * f, oy = (cy0 - ry0) * f, ox = (cx0 - rx0) * f;
            for (int c = 0; c < 3; c++)
                for (int64_t y = 0; y < ch; y++)
                    memcpy(core + ((int64_t)c * ch + y) * cw, out + ((int64_t)c * lh * f + oy + y) * lw * f + ox,
                           (size_t)cw * sizeof(float));
            s = sink(user, cy0 * f, cx0 * f, ch, cw, core);
        }
    }
    free(idx);
    free(out);
    free(core);
    return s;
}
