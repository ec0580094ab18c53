/* metrics.c — the quality metrics of codec/metrics.h (PSNR, SSIM/MS-SSIM, SI-SDR, SNR, log-mel and STFT
 * distances) and the evaluation entry points of vqz.h that read, align and compare two files. */
#include "codec/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec/audio_io.h"
#include "codec/image_io.h"
#include "codec/resample.h"
#include "common/status.h"
#include "nn/ctx.h"
#include "nn/stft_loss.h"

/* ================================================================================= images */

double vqz_metric_mse(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = a[i] - b[i];
        s += d * d;
    }
    return n ? s / (double)n : 0.0;
}

double vqz_metric_psnr(double mse, double peak)
{
    if (mse <= 0.0)
        return INFINITY;
    return 10.0 * log10(peak * peak / mse);
}

double vqz_metric_psnr_8bit(const float *x, const float *y, int64_t n)
{
    double se = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = floor((x[i] + 1.0) * 127.5 + 0.5), b = floor((y[i] + 1.0) * 127.5 + 0.5);
        b = b < 0 ? 0 : b > 255 ? 255 : b;
        se += (a - b) * (a - b);
    }
    return vqz_metric_psnr(n > 0 ? se / (double)n : 0.0, 255.0);
}

void vqz_metric_luma(const double *r, const double *g, const double *b, size_t n, double *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = 16.0 + 65.481 * r[i] + 128.553 * g[i] + 24.966 * b[i];
}

#define WIN VQZ_METRIC_SSIM_WIN

static const double msssim_weight[5] = {0.0448, 0.2856, 0.3001, 0.2363, 0.1333};

static void gauss_window(double g[WIN])
{
    double s = 0.0;
    for (int i = 0; i < WIN; i++) {
        g[i] = exp(-(double)((i - WIN / 2) * (i - WIN / 2)) / (2.0 * 1.5 * 1.5));
        s += g[i];
    }
    for (int i = 0; i < WIN; i++)
        g[i] /= s;
}

/* Mean cs and mean ssim of one scale. The horizontal pass of the five filtered quantities (x, y, x^2, y^2,
 * x y) is stored in hz[5][H][W-10]; the vertical pass runs one output row at a time, so no map is stored. */
static void ssim_scale(const double *x, const double *y, int H, int W, double C1, double C2, const double *g,
                       double *hz, double *cs_mean, double *ssim_mean)
{
    const int Hv = H - WIN + 1, Wv = W - WIN + 1;
    const size_t plane = (size_t)H * Wv;
    double *hx = hz, *hy = hz + plane, *hxx = hz + 2 * plane, *hyy = hz + 3 * plane, *hxy = hz + 4 * plane;
    for (int h = 0; h < H; h++) {
        const double *rx = x + (size_t)h * W, *ry = y + (size_t)h * W;
        size_t o = (size_t)h * Wv;
        for (int w = 0; w < Wv; w++) {
            double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
            for (int j = 0; j < WIN; j++) {
                double a = rx[w + j], b = ry[w + j], gj = g[j];
                sx += gj * a;
                sy += gj * b;
                sxx += gj * a * a;
                syy += gj * b * b;
                sxy += gj * a * b;
            }
            hx[o + w] = sx;
            hy[o + w] = sy;
            hxx[o + w] = sxx;
            hyy[o + w] = syy;
            hxy[o + w] = sxy;
        }
    }
    double cs_sum = 0.0, ssim_sum = 0.0;
    for (int h = 0; h < Hv; h++) {
        double row_cs = 0.0, row_ssim = 0.0;
        for (int w = 0; w < Wv; w++) {
            double mx = 0, my = 0, exx = 0, eyy = 0, exy = 0;
            for (int i = 0; i < WIN; i++) {
                size_t o = (size_t)(h + i) * Wv + w;
                double gi = g[i];
                mx += gi * hx[o];
                my += gi * hy[o];
                exx += gi * hxx[o];
                eyy += gi * hyy[o];
                exy += gi * hxy[o];
            }
            double vx = exx - mx * mx, vy = eyy - my * my, cxy = exy - mx * my;
            double cs = (2.0 * cxy + C2) / (vx + vy + C2);
            double l = (2.0 * mx * my + C1) / (mx * mx + my * my + C1);
            row_cs += cs;
            row_ssim += l * cs;
        }
        cs_sum += row_cs;
        ssim_sum += row_ssim;
    }
    double count = (double)Hv * (double)Wv;
    *cs_mean = cs_sum / count;
    *ssim_mean = ssim_sum / count;
}

/* torch avg_pool2d(kernel 2, stride 2, padding = side % 2, count_include_pad=True): a side S becomes
 * ceil(S / 2); taps outside the plane count as zeros and the sum is still divided by 4. */
static void pool2(const double *in, int H, int W, double *out)
{
    int ph = H % 2, pw = W % 2, Ho = (H + 1) / 2, Wo = (W + 1) / 2;
    for (int h = 0; h < Ho; h++)
        for (int w = 0; w < Wo; w++) {
            double s = 0.0;
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    int hh = 2 * h - ph + i, ww = 2 * w - pw + j;
                    if (hh >= 0 && hh < H && ww >= 0 && ww < W)
                        s += in[(size_t)hh * W + ww];
                }
            out[(size_t)h * Wo + w] = 0.25 * s;
        }
}

vqz_status vqz_metric_ssim_plane(const double *x, const double *y, int H, int W, double L, int scales,
                                 double *value)
{
    VQZ_FAIL_IF(!x || !y || !value, VQZ_ERR_INVALID_ARG, "ssim: NULL argument");
    VQZ_FAIL_IF(scales != 1 && scales != 5, VQZ_ERR_INVALID_ARG, "ssim: %d scales (want 1 or 5)", scales);
    int need = scales == 5 ? VQZ_METRIC_MSSSIM_MIN_SIDE : WIN;
    VQZ_FAIL_IF(H < need || W < need, VQZ_ERR_SHAPE, "ssim: a %dx%d plane is too small for %d scale%s (%d px a side)",
                W, H, scales, scales == 1 ? "" : "s", need);
    double g[WIN];
    gauss_window(g);
    const double C1 = (0.01 * L) * (0.01 * L), C2 = (0.03 * L) * (0.03 * L);
    double *hz = malloc(5 * (size_t)H * (size_t)(W - WIN + 1) * sizeof(double));
    /* pyramid levels alternate between two buffers per image, each the size of level 1 */
    size_t lvl1 = (size_t)((H + 1) / 2) * (size_t)((W + 1) / 2);
    double *buf[2][2] = {{NULL, NULL}, {NULL, NULL}};
    int ok = hz != NULL;
    for (int k = 0; k < 2 && scales > 1; k++)
        for (int im = 0; im < 2; im++) {
            buf[k][im] = malloc(lvl1 * sizeof(double));
            ok = ok && buf[k][im];
        }
    vqz_status st = VQZ_OK;
    double cs[5], ss[5];
    if (ok) {
        const double *cx = x, *cy = y;
        int h = H, w = W;
        for (int s = 0; s < scales; s++) {
            ssim_scale(cx, cy, h, w, C1, C2, g, hz, &cs[s], &ss[s]);
            if (s + 1 < scales) {
                double *ox = buf[s % 2][0], *oy = buf[s % 2][1];
                pool2(cx, h, w, ox);
                pool2(cy, h, w, oy);
                cx = ox;
                cy = oy;
                h = (h + 1) / 2;
                w = (w + 1) / 2;
            }
        }
    } else {
        st = vqz_fail(VQZ_ERR_NOMEM, "ssim: out of memory for a %dx%d plane", W, H);
    }
    free(hz);
    for (int k = 0; k < 2; k++)
        for (int im = 0; im < 2; im++)
            free(buf[k][im]);
    VQZ_TRY(st);
    if (scales == 1) {
        *value = ss[0];
        return VQZ_OK;
    }
    double v = 1.0;
    for (int s = 0; s < 4; s++)
        v *= pow(cs[s] > 0.0 ? cs[s] : 0.0, msssim_weight[s]);
    v *= pow(ss[4] > 0.0 ? ss[4] : 0.0, msssim_weight[4]);
    *value = v;
    return VQZ_OK;
}

/* Colour planes [planes][h][w] in [0, 1] from interleaved samples (uint8_t when depth is 8 and `bytes8`,
 * else uint16_t); a grey source fills every plane, alpha is skipped. */
static void to_planes(const void *samples, int bytes8, size_t npix, int channels, int depth, int planes,
                      double *out)
{
    const double scale = 1.0 / (double)((1u << depth) - 1u);
    const uint8_t *s8 = samples;
    const uint16_t *s16 = samples;
    for (int p = 0; p < planes; p++) {
        int src = channels <= 2 ? 0 : p;
        double *o = out + (size_t)p * npix;
        for (size_t i = 0; i < npix; i++) {
            size_t k = i * (size_t)channels + (size_t)src;
            o[i] = (bytes8 ? (double)s8[k] : (double)s16[k]) * scale;
        }
    }
}

typedef struct {
    const char *name; /* for messages */
    int width, height, channels, depth, bytes8;
    const void *samples;
} image_view;

static vqz_status eval_views(const image_view *a, const image_view *b, vqz_image_metrics *m)
{
    if (a->width != b->width || a->height != b->height)
        return vqz_fail(VQZ_ERR_SHAPE, "%s is %dx%d but the reference %s is %dx%d: the sizes must be equal",
                        b->name, b->width, b->height, a->name, a->width, a->height);
    memset(m, 0, sizeof *m);
    const int W = a->width, H = a->height;
    const size_t npix = (size_t)W * (size_t)H;
    const int planes = (a->channels <= 2 && b->channels <= 2) ? 1 : 3;
    m->width = (uint32_t)W;
    m->height = (uint32_t)H;
    m->channels = planes;
    m->bit_depth_ref = a->depth;
    m->bit_depth_test = b->depth;
    double *pa = malloc((size_t)planes * npix * sizeof(double));
    double *pb = malloc((size_t)planes * npix * sizeof(double));
    double *ya = malloc(npix * sizeof(double)), *yb = malloc(npix * sizeof(double));
    vqz_status st = VQZ_OK;
    if (!pa || !pb || !ya || !yb) {
        st = vqz_fail(VQZ_ERR_NOMEM, "eval: out of memory for %dx%d images", W, H);
        goto done;
    }
    to_planes(a->samples, a->bytes8, npix, a->channels, a->depth, planes, pa);
    to_planes(b->samples, b->bytes8, npix, b->channels, b->depth, planes, pb);
    m->mse = vqz_metric_mse(pa, pb, (size_t)planes * npix);
    m->psnr = vqz_metric_psnr(m->mse, 1.0);
    if (planes == 3) {
        vqz_metric_luma(pa, pa + npix, pa + 2 * npix, npix, ya);
        vqz_metric_luma(pb, pb + npix, pb + 2 * npix, npix, yb);
    } else {
        vqz_metric_luma(pa, pa, pa, npix, ya);
        vqz_metric_luma(pb, pb, pb, npix, yb);
    }
    m->psnr_y = vqz_metric_psnr(vqz_metric_mse(ya, yb, npix), 255.0);

    int minside = W < H ? W : H;
    m->msssim_scales = minside >= VQZ_METRIC_MSSSIM_MIN_SIDE ? 5 : (minside >= WIN ? 1 : 0);
    if (m->msssim_scales == 0) {
        m->msssim = m->msssim_y = NAN;
        goto done;
    }
    double sum = 0.0;
    for (int p = 0; p < planes && st == VQZ_OK; p++) {
        double v = 0.0;
        st = vqz_metric_ssim_plane(pa + (size_t)p * npix, pb + (size_t)p * npix, H, W, 1.0, m->msssim_scales, &v);
        sum += v;
    }
    m->msssim = sum / planes;
    if (st == VQZ_OK)
        st = vqz_metric_ssim_plane(ya, yb, H, W, 255.0, m->msssim_scales, &m->msssim_y);
done:
    free(pa);
    free(pb);
    free(ya);
    free(yb);
    return st;
}

static image_view view_of_image(const vqz_image *img, const char *name)
{
    image_view v = {name, img->width, img->height, img->channels, img->bit_depth, 0, img->samples};
    return v;
}

vqz_status vqz_eval_images(const char *ref, const char *test, vqz_image_metrics *out)
{
    VQZ_FAIL_IF(!ref || !test || !out, VQZ_ERR_INVALID_ARG, "vqz_eval_images: NULL argument");
    vqz_error_clear();
    vqz_image *a = NULL, *b = NULL;
    VQZ_TRY(vqz_image_read_file(ref, &a));
    vqz_status st = vqz_image_read_file(test, &b);
    if (st == VQZ_OK) {
        image_view va = view_of_image(a, ref), vb = view_of_image(b, test);
        st = eval_views(&va, &vb, out);
    }
    vqz_image_free(a);
    vqz_image_free(b);
    return st;
}

static vqz_status check_pixels(const vqz_pixels *p, const char *name)
{
    VQZ_FAIL_IF(!p->pixels, VQZ_ERR_INVALID_ARG, "vqz_eval_pixels: %s image has no pixels", name);
    VQZ_FAIL_IF(p->channels < 1 || p->channels > 4, VQZ_ERR_INVALID_ARG,
                "vqz_eval_pixels: %s image has %d channels (want 1..4)", name, p->channels);
    VQZ_FAIL_IF(p->bit_depth != 8 && p->bit_depth != 16, VQZ_ERR_INVALID_ARG,
                "vqz_eval_pixels: %s image has bit depth %d (want 8 or 16)", name, p->bit_depth);
    VQZ_FAIL_IF(p->width < 1 || p->height < 1 || p->width > VQZ_IMAGE_MAX_SIDE || p->height > VQZ_IMAGE_MAX_SIDE ||
                    (uint64_t)p->width * p->height > VQZ_IMAGE_MAX_PIXELS,
                VQZ_ERR_LIMIT, "vqz_eval_pixels: %s image is %ux%u (sides 1..%d, at most %llu pixels)", name,
                (unsigned)p->width, (unsigned)p->height, VQZ_IMAGE_MAX_SIDE,
                (unsigned long long)VQZ_IMAGE_MAX_PIXELS);
    return VQZ_OK;
}

vqz_status vqz_eval_pixels(const vqz_pixels *ref, const vqz_pixels *test, vqz_image_metrics *out)
{
    VQZ_FAIL_IF(!ref || !test || !out, VQZ_ERR_INVALID_ARG, "vqz_eval_pixels: NULL argument");
    vqz_error_clear();
    VQZ_TRY(check_pixels(ref, "reference"));
    VQZ_TRY(check_pixels(test, "test"));
    image_view va = {"reference", (int)ref->width, (int)ref->height, ref->channels, ref->bit_depth,
                     ref->bit_depth == 8, ref->pixels};
    image_view vb = {"test", (int)test->width, (int)test->height, test->channels, test->bit_depth,
                     test->bit_depth == 8, test->pixels};
    return eval_views(&va, &vb, out);
}

/* ================================================================================= audio */

double vqz_metric_si_sdr(const float *ref, const float *test, int64_t n)
{
    double mr = 0.0, mt = 0.0;
    for (int64_t i = 0; i < n; i++) {
        mr += ref[i];
        mt += test[i];
    }
    mr /= (double)n;
    mt /= (double)n;
    double ss = 0.0, es = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double s = ref[i] - mr, e = test[i] - mt;
        ss += s * s;
        es += e * s;
    }
    double a = es / ss, target = 0.0, noise = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double t = a * (ref[i] - mr), d = t - (test[i] - mt);
        target += t * t;
        noise += d * d;
    }
    return 10.0 * log10(target / noise);
}

double vqz_metric_snr(const float *ref, const float *test, int64_t n)
{
    double sig = 0.0, noise = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)ref[i] - (double)test[i];
        sig += (double)ref[i] * ref[i];
        noise += d * d;
    }
    return 10.0 * log10(sig / noise);
}

/* librosa's Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above. */
static double hz_to_mel(double f)
{
    const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
    const double logstep = log(6.4) / 27.0;
    return f >= min_log_hz ? min_log_mel + log(f / min_log_hz) / logstep : f / f_sp;
}

static double mel_to_hz(double m)
{
    const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
    const double logstep = log(6.4) / 27.0;
    return m >= min_log_mel ? min_log_hz * exp(logstep * (m - min_log_mel)) : f_sp * m;
}

vqz_status vqz_metric_mel_filterbank(double sample_rate, int n_fft, int n_mels, double fmin, double fmax,
                                     double *fb)
{
    VQZ_FAIL_IF(!fb || n_fft < 2 || n_fft % 2 || n_mels < 1 || !(fmin >= 0.0) || !(fmax > fmin) || !(sample_rate > 0),
                VQZ_ERR_INVALID_ARG, "mel_filterbank: n_fft %d, %d bands, %g..%g Hz at %g Hz", n_fft, n_mels, fmin,
                fmax, sample_rate);
    const int K = n_fft / 2 + 1;
    double *mel_f = malloc((size_t)(n_mels + 2) * sizeof(double));
    VQZ_FAIL_IF(!mel_f, VQZ_ERR_NOMEM, "mel_filterbank: out of memory");
    /* band edges: n_mels + 2 points evenly spaced in mel (numpy.linspace, the last point exact) */
    double lo = hz_to_mel(fmin), hi = hz_to_mel(fmax), step = (hi - lo) / (n_mels + 1);
    for (int i = 0; i < n_mels + 2; i++)
        mel_f[i] = mel_to_hz(i == n_mels + 1 ? hi : lo + i * step);
    for (int m = 0; m < n_mels; m++) {
        double d0 = mel_f[m + 1] - mel_f[m], d1 = mel_f[m + 2] - mel_f[m + 1];
        double enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
        for (int k = 0; k < K; k++) {
            double f = k * sample_rate / n_fft;
            double lower = (f - mel_f[m]) / d0, upper = (mel_f[m + 2] - f) / d1;
            double v = lower < upper ? lower : upper;
            fb[(size_t)m * K + k] = (v > 0.0 ? v : 0.0) * enorm;
        }
    }
    free(mel_f);
    return VQZ_OK;
}

/* A radix-2 complex FFT in double (exp(-2 pi i k t / n)): exact enough to match NumPy to ~1e-12, and free of
 * any global planner state, so evaluations may run on several threads at once. */
typedef struct {
    int n;
    int *rev;
    double *cosv, *sinv; /* cos, sin of 2 pi m / n, m < n / 2 */
} fft_plan;

static void fft_plan_free(fft_plan *p)
{
    free(p->rev);
    free(p->cosv);
    free(p->sinv);
}

static int fft_plan_init(fft_plan *p, int n)
{
    p->n = n;
    p->rev = malloc((size_t)n * sizeof(int));
    p->cosv = malloc((size_t)(n / 2 + 1) * sizeof(double));
    p->sinv = malloc((size_t)(n / 2 + 1) * sizeof(double));
    if (!p->rev || !p->cosv || !p->sinv) {
        fft_plan_free(p);
        return 0;
    }
    int bits = 0;
    while ((1 << bits) < n)
        bits++;
    for (int i = 0; i < n; i++) {
        int r = 0;
        for (int b = 0; b < bits; b++)
            r |= ((i >> b) & 1) << (bits - 1 - b);
        p->rev[i] = r;
    }
    for (int m = 0; m <= n / 2; m++) {
        p->cosv[m] = cos(2.0 * M_PI * m / n);
        p->sinv[m] = sin(2.0 * M_PI * m / n);
    }
    return 1;
}

static void fft_run(const fft_plan *p, double *re, double *im)
{
    const int n = p->n;
    for (int i = 0; i < n; i++) {
        int j = p->rev[i];
        if (i < j) {
            double t = re[i];
            re[i] = re[j];
            re[j] = t;
            t = im[i];
            im[i] = im[j];
            im[j] = t;
        }
    }
    for (int len = 2; len <= n; len <<= 1) {
        int half = len / 2, stride = n / len;
        for (int i = 0; i < n; i += len)
            for (int k = 0; k < half; k++) {
                double wr = p->cosv[k * stride], wi = -p->sinv[k * stride];
                int a = i + k, b = a + half;
                double tr = wr * re[b] - wi * im[b], ti = wr * im[b] + wi * re[b];
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
    }
}

/* The band limits of a filterbank row: its weights are zero outside [first, last). */
typedef struct {
    int first, last;
} band_range;

/* Mel magnitudes of one centred frame: reflect-padded samples f * hop - n/2 .. + n - 1, Hann-windowed, FFT,
 * |X|, then the filterbank restricted to each band's nonzero bins. */
static void mel_frame(const fft_plan *p, const double *win, const float *x, int64_t len, int64_t f, int hop,
                      const double *fb, const band_range *br, int n_mels, double *re, double *im, double *mag,
                      double *mel)
{
    const int n = p->n, K = n / 2 + 1;
    for (int t = 0; t < n; t++) {
        int64_t j = f * hop + t - n / 2;
        if (j < 0)
            j = -j;
        if (j >= len)
            j = 2 * (len - 1) - j;
        re[t] = win[t] * (double)x[j];
        im[t] = 0.0;
    }
    fft_run(p, re, im);
    for (int k = 0; k < K; k++)
        mag[k] = sqrt(re[k] * re[k] + im[k] * im[k]);
    for (int m = 0; m < n_mels; m++) {
        double s = 0.0;
        const double *row = fb + (size_t)m * K;
        for (int k = br[m].first; k < br[m].last; k++)
            s += row[k] * mag[k];
        mel[m] = s;
    }
}

vqz_status vqz_metric_mel_distance(const float *ref, const float *test, int64_t n, double sample_rate, int n_fft,
                                   int n_mels, double *value)
{
    VQZ_FAIL_IF(!ref || !test || !value, VQZ_ERR_INVALID_ARG, "mel_distance: NULL argument");
    VQZ_FAIL_IF(n_fft < 4 || n_fft > 65536 || (n_fft & (n_fft - 1)), VQZ_ERR_INVALID_ARG,
                "mel_distance: n_fft %d is not a power of two in 4..65536", n_fft);
    VQZ_FAIL_IF(n_mels < 1 || n_mels > 4096, VQZ_ERR_INVALID_ARG, "mel_distance: %d mel bands", n_mels);
    *value = NAN;
    if (n <= n_fft / 2)
        return VQZ_OK; /* reflect padding needs more samples than half a window */
    const int K = n_fft / 2 + 1, hop = n_fft / 4;
    const int64_t frames = 1 + n / hop;
    double *fb = malloc((size_t)n_mels * K * sizeof(double));
    band_range *br = malloc((size_t)n_mels * sizeof(band_range));
    double *win = malloc((size_t)n_fft * sizeof(double));
    double *part = malloc((size_t)frames * sizeof(double));
    fft_plan plan = {0, NULL, NULL, NULL};
    vqz_status st = VQZ_OK;
    if (!fb || !br || !win || !part || !fft_plan_init(&plan, n_fft)) {
        st = vqz_fail(VQZ_ERR_NOMEM, "mel_distance: out of memory (n_fft %d, %lld frames)", n_fft, (long long)frames);
        goto done;
    }
    st = vqz_metric_mel_filterbank(sample_rate, n_fft, n_mels, 0.0, sample_rate / 2.0, fb);
    if (st != VQZ_OK)
        goto done;
    for (int m = 0; m < n_mels; m++) {
        const double *row = fb + (size_t)m * K;
        int a = 0, b = K;
        while (a < K && row[a] == 0.0)
            a++;
        while (b > a && row[b - 1] == 0.0)
            b--;
        br[m].first = a;
        br[m].last = b;
    }
    for (int t = 0; t < n_fft; t++)
        win[t] = 0.5 - 0.5 * cos(2.0 * M_PI * t / n_fft); /* periodic Hann */

    int failed = 0;
    #pragma omp parallel if (frames * n_fft > (1 << 18)) num_threads(vqz_get_threads())
    {
        double *re = malloc((size_t)n_fft * sizeof(double)), *im = malloc((size_t)n_fft * sizeof(double));
        double *mag = malloc((size_t)K * sizeof(double));
        double *mr = malloc((size_t)n_mels * sizeof(double)), *mt = malloc((size_t)n_mels * sizeof(double));
        int ok = re && im && mag && mr && mt;
        if (!ok) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(static)
        for (int64_t f = 0; f < frames; f++) {
            if (!ok)
                continue;
            mel_frame(&plan, win, ref, n, f, hop, fb, br, n_mels, re, im, mag, mr);
            mel_frame(&plan, win, test, n, f, hop, fb, br, n_mels, re, im, mag, mt);
            double s = 0.0;
            for (int m = 0; m < n_mels; m++)
                s += fabs(log10(mt[m] > 1e-5 ? mt[m] : 1e-5) - log10(mr[m] > 1e-5 ? mr[m] : 1e-5));
            part[f] = s;
        }
        free(re);
        free(im);
        free(mag);
        free(mr);
        free(mt);
    }
    if (failed) {
        st = vqz_fail(VQZ_ERR_NOMEM, "mel_distance: out of memory for FFT scratch (n_fft %d)", n_fft);
        goto done;
    }
    double total = 0.0; /* summed in frame order: the same bits for any thread count */
    for (int64_t f = 0; f < frames; f++)
        total += part[f];
    *value = total / ((double)frames * n_mels);
done:
    fft_plan_free(&plan);
    free(fb);
    free(br);
    free(win);
    free(part);
    return st;
}

vqz_status vqz_metric_mel_distance_dac(const float *ref, const float *test, int64_t n, double sample_rate,
                                       double *value)
{
    static const int windows[7] = {32, 64, 128, 256, 512, 1024, 2048};
    static const int mels[7] = {5, 10, 20, 40, 80, 160, 320};
    VQZ_FAIL_IF(!value, VQZ_ERR_INVALID_ARG, "mel_distance_dac: NULL argument");
    double sum = 0.0;
    for (int r = 0; r < 7; r++) {
        double v;
        VQZ_TRY(vqz_metric_mel_distance(ref, test, n, sample_rate, windows[r], mels[r], &v));
        sum += v;
    }
    *value = sum;
    return VQZ_OK;
}

vqz_status vqz_metric_stft_distance(const float *ref, const float *test, int64_t n, double *value)
{
    VQZ_FAIL_IF(!ref || !test || !value, VQZ_ERR_INVALID_ARG, "stft_distance: NULL argument");
    *value = NAN;
    if (n < 2048)
        return VQZ_OK;
    vqz_nn_ctx *ctx = NULL;
    vqz_stft_loss *loss = NULL;
    VQZ_TRY(vqz_nn_ctx_create(&ctx, VQZ_DEVICE_CPU, 0));
    vqz_status st = vqz_stft_loss_create(&loss, NULL, 0);
    if (st == VQZ_OK) {
        /* the loss only reads its inputs; tensors are views over non-const data */
        vqz_tensor x = vqz_t3((float *)test, 1, 1, n), y = vqz_t3((float *)ref, 1, 1, n);
        st = vqz_stft_loss_eval(ctx, loss, &x, &y, 1.0f, value, NULL);
    }
    vqz_stft_loss_free(loss);
    vqz_nn_ctx_free(ctx);
    return st;
}

/* Every sample finite; else VQZ_ERR_NONFINITE naming the signal, channel and frame. */
static vqz_status check_finite(const float *x, int channels, int64_t frames, const char *name)
{
    for (int c = 0; c < channels; c++)
        for (int64_t i = 0; i < frames; i++)
            if (!isfinite(x[(size_t)c * (size_t)frames + (size_t)i]))
                return vqz_fail(VQZ_ERR_NONFINITE, "%s: sample %lld of channel %d is %g", name, (long long)i, c,
                                (double)x[(size_t)c * (size_t)frames + (size_t)i]);
    return VQZ_OK;
}

/* Resamples a planar signal to another rate (planar out, *out_frames frames, caller frees *out). */
static vqz_status resample_planar(const float *in, int channels, int64_t frames, int in_rate, int out_rate,
                                  float **out, int64_t *out_frames, const char *name)
{
    size_t n_out = vqz_resample_length((size_t)frames, in_rate, out_rate);
    float *il = malloc((size_t)frames * (size_t)channels * sizeof(float) + sizeof(float));
    float *ol = malloc(n_out * (size_t)channels * sizeof(float) + sizeof(float));
    float *pl = malloc(n_out * (size_t)channels * sizeof(float) + sizeof(float));
    vqz_status st = VQZ_OK;
    if (!il || !ol || !pl)
        st = vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory to resample %lld frames", name, (long long)frames);
    if (st == VQZ_OK) {
        for (int c = 0; c < channels; c++)
            for (int64_t i = 0; i < frames; i++)
                il[(size_t)i * channels + c] = in[(size_t)c * (size_t)frames + (size_t)i];
        st = vqz_resample_all(in_rate, out_rate, channels, il, (size_t)frames, ol, n_out);
    }
    if (st == VQZ_OK)
        for (int c = 0; c < channels; c++)
            for (size_t i = 0; i < n_out; i++)
                pl[(size_t)c * n_out + i] = ol[i * (size_t)channels + (size_t)c];
    free(il);
    free(ol);
    if (st != VQZ_OK) {
        free(pl);
        vqz_error_prefix("%s: ", name);
        return st;
    }
    *out = pl;
    *out_frames = (int64_t)n_out;
    return VQZ_OK;
}

/* The evaluation proper, with names for messages. */
static vqz_status eval_signals(const float *ref, int64_t ref_frames, int ref_rate, const float *test,
                               int64_t test_frames, int test_rate, int channels, const char *ref_name,
                               const char *test_name, vqz_audio_metrics *m)
{
    VQZ_FAIL_IF(ref_frames < 0 || test_frames < 0, VQZ_ERR_INVALID_ARG, "eval: negative frame count");
    VQZ_FAIL_IF(ref_rate < VQZ_AUDIO_MIN_RATE || ref_rate > VQZ_AUDIO_MAX_RATE || test_rate < VQZ_AUDIO_MIN_RATE ||
                    test_rate > VQZ_AUDIO_MAX_RATE,
                VQZ_ERR_LIMIT, "eval: sample rates %d and %d Hz (want %d..%d)", ref_rate, test_rate,
                VQZ_AUDIO_MIN_RATE, VQZ_AUDIO_MAX_RATE);
    VQZ_TRY(check_finite(ref, channels, ref_frames, ref_name));
    VQZ_TRY(check_finite(test, channels, test_frames, test_name));
    memset(m, 0, sizeof *m);
    m->channels = channels;
    m->sample_rate = ref_rate;
    m->test_sample_rate = test_rate;
    m->frames_ref = ref_frames;
    float *resampled = NULL;
    int64_t tf = test_frames;
    if (test_rate != ref_rate && test_frames > 0) {
        VQZ_TRY(resample_planar(test, channels, test_frames, test_rate, ref_rate, &resampled, &tf, test_name));
        test = resampled;
    } else if (test_rate != ref_rate) {
        tf = 0;
    }
    m->frames_test = tf;
    int64_t n = ref_frames < tf ? ref_frames : tf, longer = ref_frames < tf ? tf : ref_frames;
    m->frames = n;
    m->length_mismatch = (double)(longer - n) > 0.01 * (double)longer;
    if (n == 0) {
        free(resampled);
        return vqz_fail(VQZ_ERR_SHAPE, "%s: nothing to compare: %s has %lld frames, %s has %lld", test_name,
                        ref_name, (long long)ref_frames, test_name, (long long)tf);
    }
    double sums[6] = {0, 0, 0, 0, 0, 0};
    vqz_status st = VQZ_OK;
    for (int c = 0; c < channels && st == VQZ_OK; c++) {
        const float *r = ref + (size_t)c * (size_t)ref_frames, *t = test + (size_t)c * (size_t)tf;
        double mel = 0, dac = 0, stft = 0;
        sums[0] += vqz_metric_si_sdr(r, t, n);
        sums[1] += vqz_metric_snr(r, t, n);
        st = vqz_metric_mel_distance(r, t, n, ref_rate, 2048, 80, &mel);
        if (st == VQZ_OK)
            st = vqz_metric_mel_distance_dac(r, t, n, ref_rate, &dac);
        if (st == VQZ_OK)
            st = vqz_metric_stft_distance(r, t, n, &stft);
        sums[2] += mel;
        sums[3] += dac;
        sums[4] += stft;
    }
    free(resampled);
    VQZ_TRY(st);
    m->si_sdr = sums[0] / channels;
    m->snr = sums[1] / channels;
    m->mel_distance = sums[2] / channels;
    m->mel_distance_dac = sums[3] / channels;
    m->stft_distance = sums[4] / channels;
    return VQZ_OK;
}

vqz_status vqz_eval_signals(const float *ref, int64_t ref_frames, int ref_rate, const float *test,
                            int64_t test_frames, int test_rate, int channels, vqz_audio_metrics *out)
{
    VQZ_FAIL_IF(!ref || !test || !out, VQZ_ERR_INVALID_ARG, "vqz_eval_signals: NULL argument");
    VQZ_FAIL_IF(channels < 1 || channels > VQZ_AUDIO_MAX_CHANNELS, VQZ_ERR_INVALID_ARG,
                "vqz_eval_signals: %d channels (want 1..%d)", channels, VQZ_AUDIO_MAX_CHANNELS);
    vqz_error_clear();
    return eval_signals(ref, ref_frames, ref_rate, test, test_frames, test_rate, channels, "reference", "test", out);
}

vqz_status vqz_eval_audio(const char *ref, const char *test, vqz_audio_metrics *out)
{
    VQZ_FAIL_IF(!ref || !test || !out, VQZ_ERR_INVALID_ARG, "vqz_eval_audio: NULL argument");
    vqz_error_clear();
    vqz_audio *a = NULL, *b = NULL;
    VQZ_TRY(vqz_audio_read_all(ref, &a));
    vqz_status st = vqz_audio_read_all(test, &b);
    if (st == VQZ_OK && a->info.channels != b->info.channels)
        st = vqz_fail(VQZ_ERR_SHAPE,
                      "%s has %d channel%s but the reference %s has %d: the channel counts must be equal", test,
                      b->info.channels, b->info.channels == 1 ? "" : "s", ref, a->info.channels);
    if (st == VQZ_OK)
        st = eval_signals(a->data, a->info.frames, a->info.sample_rate, b->data, b->info.frames, b->info.sample_rate,
                          a->info.channels, ref, test, out);
    vqz_audio_free(a);
    vqz_audio_free(b);
    return st;
}
