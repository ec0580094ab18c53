/* plot.c — training-log charts (codec/plot.h): a strict CSV reader, panels with "nice" ticks, log axes and
 * antialiased lines, labels in a built-in 5x7 bitmap font, written as an 8-bit RGB PNG through image_io. */
#include "codec/plot.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec/image_io.h"

/* Limits on what is read: far above any training log, low enough that a wrong file cannot exhaust memory. */
#define PLOT_MAX_FILE_BYTES ((int64_t)256 << 20)
#define PLOT_MAX_COLUMNS 1000
#define PLOT_MAX_PANELS 64
#define PLOT_MAX_ROWS 4000000
#define PLOT_MAX_VALUES ((int64_t)1 << 25) /* numbers held: rows x (plotted columns + step), 256 MB */
/* Beyond this a value is treated as a gap, so that axis ranges and their arithmetic stay finite. */
#define PLOT_MAX_ABS 1e300

/* Layout in pixels (tests/test_plot.cpp relies on it). The image is 1200 wide and 20 + 320 * ceil(panels / 2)
 * high. Panel i has its top-left corner at (20 + 600 * (i % 2), 20 + 320 * (i / 2)) and is 560 x 300; its
 * framed plot area covers x in [left + 100, left + 546) and y in [top + 28, top + 270), and the data lie at
 * least INSET pixels inside it. Everything but the data lines is grey: a pixel with colour is a data line. */
enum {
    IMG_W = 1200,
    MARGIN = 20,
    PITCH_X = 600,
    PITCH_Y = 320,
    PANEL_W = 560,
    PANEL_H = 300,
    AREA_L = 100,
    AREA_R = 546,
    AREA_T = 28,
    AREA_B = 270,
    AREA_W = AREA_R - AREA_L,
    AREA_H = AREA_B - AREA_T,
    INSET = 4,
    FONT_SCALE = 2,
    CHAR_W = 6 * FONT_SCALE, /* 5 columns and a blank one */
    CHAR_H = 7 * FONT_SCALE /* above the baseline */
};

#define MAX_TICKS 6

/* Greys of the chart furniture and the data colours (as in matplotlib's tab10, all clearly saturated). */
#define GREY_GRID 230
#define GREY_FRAME 96
#define GREY_TEXT 32
#define GREY_LABEL 80
#define GREY_NOTE 120
static const uint8_t k_colors[8][3] = {
    {31, 119, 180}, {214, 39, 40}, {44, 160, 44}, {255, 127, 14},
    {148, 103, 189}, {23, 190, 207}, {227, 119, 194}, {188, 189, 34},
};

/* Columns that are bookkeeping rather than something to watch; left out when no columns are named. */
static const char *const k_skipped[] = {"step", "time_s", "lr"};

/* ---------------------------------------------------------------- font */

/* Printable ASCII from ' ' to '~', 5 pixels wide with the leftmost in bit 4: 7 rows above the baseline and
 * 2 below it for the descenders of g, j, p, q and y. */
static const uint8_t k_font[95][9] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* space */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00, 0x00}, /* ! */
    {0x0a, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* " */
    {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a, 0x00, 0x00}, /* # */
    {0x04, 0x0f, 0x14, 0x0e, 0x05, 0x1e, 0x04, 0x00, 0x00}, /* $ */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00, 0x00}, /* % */
    {0x0c, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0d, 0x00, 0x00}, /* & */
    {0x0c, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ' */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00, 0x00}, /* ( */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00, 0x00}, /* ) */
    {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00, 0x00, 0x00}, /* * */
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00, 0x00, 0x00}, /* + */
    {0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08, 0x00, 0x00}, /* , */
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00}, /* - */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c, 0x00, 0x00}, /* . */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00, 0x00}, /* / */
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e, 0x00, 0x00}, /* 0 */
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* 1 */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f, 0x00, 0x00}, /* 2 */
    {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e, 0x00, 0x00}, /* 3 */
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02, 0x00, 0x00}, /* 4 */
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e, 0x00, 0x00}, /* 5 */
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* 6 */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00, 0x00}, /* 7 */
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* 8 */
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c, 0x00, 0x00}, /* 9 */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00, 0x00, 0x00}, /* : */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x04, 0x08, 0x00, 0x00}, /* ; */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00, 0x00}, /* < */
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00}, /* = */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00, 0x00}, /* > */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00, 0x00}, /* ? */
    {0x0e, 0x11, 0x01, 0x0d, 0x15, 0x15, 0x0e, 0x00, 0x00}, /* @ */
    {0x0e, 0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x00, 0x00}, /* A */
    {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e, 0x00, 0x00}, /* B */
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e, 0x00, 0x00}, /* C */
    {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c, 0x00, 0x00}, /* D */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f, 0x00, 0x00}, /* E */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10, 0x00, 0x00}, /* F */
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f, 0x00, 0x00}, /* G */
    {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00, 0x00}, /* H */
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* I */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c, 0x00, 0x00}, /* J */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00, 0x00}, /* K */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f, 0x00, 0x00}, /* L */
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00, 0x00}, /* M */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00, 0x00}, /* N */
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* O */
    {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10, 0x00, 0x00}, /* P */
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d, 0x00, 0x00}, /* Q */
    {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11, 0x00, 0x00}, /* R */
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e, 0x00, 0x00}, /* S */
    {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00}, /* T */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* U */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00, 0x00}, /* V */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a, 0x00, 0x00}, /* W */
    {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11, 0x00, 0x00}, /* X */
    {0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x00, 0x00}, /* Y */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f, 0x00, 0x00}, /* Z */
    {0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e, 0x00, 0x00}, /* [ */
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00, 0x00}, /* backslash */
    {0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e, 0x00, 0x00}, /* ] */
    {0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ^ */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x00, 0x00}, /* _ */
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ` */
    {0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f, 0x00, 0x00}, /* a */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e, 0x00, 0x00}, /* b */
    {0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e, 0x00, 0x00}, /* c */
    {0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f, 0x00, 0x00}, /* d */
    {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e, 0x00, 0x00}, /* e */
    {0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08, 0x00, 0x00}, /* f */
    {0x00, 0x00, 0x0f, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* g */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00}, /* h */
    {0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* i */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}, /* j */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00, 0x00}, /* k */
    {0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* l */
    {0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11, 0x00, 0x00}, /* m */
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00}, /* n */
    {0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* o */
    {0x00, 0x00, 0x1e, 0x11, 0x11, 0x11, 0x1e, 0x10, 0x10}, /* p */
    {0x00, 0x00, 0x0f, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x01}, /* q */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00, 0x00}, /* r */
    {0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e, 0x00, 0x00}, /* s */
    {0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06, 0x00, 0x00}, /* t */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d, 0x00, 0x00}, /* u */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00, 0x00}, /* v */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a, 0x00, 0x00}, /* w */
    {0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x00, 0x00}, /* x */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* y */
    {0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f, 0x00, 0x00}, /* z */
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00, 0x00}, /* { */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00}, /* | */
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00, 0x00}, /* } */
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00, 0x00}, /* ~ */
};

typedef struct {
    int w, h;
    uint8_t *rgb; /* w * h * 3, row-major */
} canvas;

static void put_grey(canvas *cv, int x, int y, uint8_t g)
{
    if (x < 0 || y < 0 || x >= cv->w || y >= cv->h)
        return;
    uint8_t *p = cv->rgb + ((size_t)y * (size_t)cv->w + (size_t)x) * 3;
    p[0] = p[1] = p[2] = g;
}

static void fill_rect(canvas *cv, int x, int y, int w, int h, uint8_t g)
{
    for (int j = y; j < y + h; j++)
        for (int i = x; i < x + w; i++)
            put_grey(cv, i, j, g);
}

static int text_width(const char *s)
{
    int n = (int)strlen(s);
    return n > 0 ? n * CHAR_W - FONT_SCALE : 0;
}

/* Draws s with its top-left corner at (x, y) (descenders go CHAR_H below it); bytes outside printable ASCII
 * show as '?'. */
static void draw_text(canvas *cv, int x, int y, const char *s, uint8_t g)
{
    for (; *s; s++, x += CHAR_W) {
        unsigned char c = (unsigned char)*s;
        const uint8_t *glyph = k_font[(c >= 32 && c <= 126 ? c : '?') - 32];
        for (int r = 0; r < 9; r++)
            for (int b = 0; b < 5; b++)
                if (glyph[r] & (0x10 >> b))
                    fill_rect(cv, x + b * FONT_SCALE, y + r * FONT_SCALE, FONT_SCALE, FONT_SCALE, g);
    }
}

/* ---------------------------------------------------------------- numbers as labels */

/* Rewrites printf's "%e" output in place without its padding: "2.50e-07" -> "2.5e-7", "1.0e+06" -> "1e6". */
static void compact_exponent(char *s)
{
    char *e = strchr(s, 'e');
    if (!e)
        return;
    char exp_part[16];
    const char *d = e + 1;
    int neg = *d == '-';
    if (*d == '-' || *d == '+')
        d++;
    while (*d == '0' && d[1] != '\0')
        d++;
    snprintf(exp_part, sizeof exp_part, "e%s%s", neg ? "-" : "", d);
    char *m = e;
    if (memchr(s, '.', (size_t)(e - s))) {
        while (m > s && m[-1] == '0')
            m--;
        if (m > s && m[-1] == '.')
            m--;
    }
    memmove(m, exp_part, strlen(exp_part) + 1);
}

/* A value printed with 4 significant digits, as in "last 0.1235". */
static void format_short(char *buf, size_t n, double v)
{
    snprintf(buf, n, "%.4g", v);
    compact_exponent(buf);
}

/* A tick of a linear axis whose ticks are `step` apart: as many decimals as the step needs, or an exponent
 * when the numbers are very large or very small. */
static void format_linear_tick(char *buf, size_t n, double v, double step, double big)
{
    int decimals = step < 1 ? (int)ceil(-log10(step) - 1e-9) : 0;
    if (big >= 1e6 || decimals > 5) {
        if (v == 0) {
            snprintf(buf, n, "0");
            return;
        }
        int digits = (int)floor(log10(big)) - (int)floor(log10(step) + 1e-9) + 1;
        digits = digits < 1 ? 1 : digits > 8 ? 8 : digits;
        snprintf(buf, n, "%.*e", digits - 1, v);
        compact_exponent(buf);
    } else {
        snprintf(buf, n, "%.*f", decimals, v);
    }
}

/* A tick of a log axis, m * 10^k with m in {1, 2, 5}. */
static void format_log_tick(char *buf, size_t n, double v)
{
    int k = (int)floor(log10(v) + 1e-9);
    if (v >= 1e-4 && v < 1e6) {
        snprintf(buf, n, "%.*f", k < 0 ? -k : 0, v);
    } else {
        snprintf(buf, n, "%.0e", v);
        compact_exponent(buf);
    }
}

/* ---------------------------------------------------------------- axes */

typedef struct {
    int log;        /* values are mapped through log10 */
    double lo, hi;  /* the axis range, in log10 units on a log axis */
    double step;    /* tick spacing of a linear axis */
    int n_ticks;
    double ticks[MAX_TICKS * 3]; /* tick values, not logged */
} axis;

/* A linear axis over [lo, hi] widened by pad (a fraction of the range) at each end, with ticks at the
 * multiples of the finest step of 1, 2 or 5 x 10^k that puts at most max_ticks of them inside it. A single
 * value gets a range around it. */
static void axis_linear(axis *a, double lo, double hi, double pad, int max_ticks)
{
    memset(a, 0, sizeof *a);
    if (!(hi - lo > 1e-12 * fmax(fabs(lo), fabs(hi)))) {
        double d = lo == 0 ? 1 : fabs(lo) * 0.05;
        lo -= d;
        hi += d;
    }
    double range = hi - lo;
    a->lo = lo - pad * range;
    a->hi = hi + pad * range;
    static const double mant[3] = {1, 2, 5};
    double e0 = floor(log10(range / max_ticks)) - 1;
    for (int i = 0; i < 12; i++) {
        double step = mant[i % 3] * pow(10, e0 + i / 3);
        /* the tolerance keeps a tick that lands on an end despite rounding */
        double k0 = ceil(a->lo / step - 1e-9), k1 = floor(a->hi / step + 1e-9);
        if (k1 - k0 + 1 > max_ticks)
            continue;
        a->step = step;
        a->n_ticks = k1 >= k0 ? (int)(k1 - k0) + 1 : 0;
        for (int t = 0; t < a->n_ticks; t++) {
            double v = (k0 + t) * step;
            a->ticks[t] = fabs(v) < step * 1e-6 ? 0 : v;
        }
        return;
    }
}

/* Counts (and with store, records) the ticks m * 10^k inside a log axis: m in {1, 2, 5} when all125, else
 * m = 1 on every stride-th decade. */
static int log_ticks(axis *a, int all125, int stride, int store)
{
    static const double mant[3] = {1, 2, 5};
    int n = 0;
    for (int k = (int)floor(a->lo); k <= (int)ceil(a->hi); k++) {
        if (((k % stride) + stride) % stride != 0)
            continue;
        for (int m = 0; m < (all125 ? 3 : 1); m++) {
            double v = mant[m] * pow(10, k);
            double l = log10(v);
            if (l < a->lo || l > a->hi)
                continue;
            if (store && n < MAX_TICKS * 3)
                a->ticks[n] = v;
            n++;
        }
    }
    return n;
}

/* A log axis over [vmin, vmax] (both > 0) with a little room at the ends. */
static void axis_log(axis *a, double vmin, double vmax)
{
    memset(a, 0, sizeof *a);
    double l0 = log10(vmin), l1 = log10(vmax), pad = 0.03 * (l1 - l0);
    a->log = 1;
    a->lo = l0 - pad;
    a->hi = l1 + pad;
    if (log_ticks(a, 1, 1, 0) <= MAX_TICKS) {
        a->n_ticks = log_ticks(a, 1, 1, 1);
        return;
    }
    for (int stride = 1; stride < 1000; stride++) {
        if (log_ticks(a, 0, stride, 0) <= MAX_TICKS) {
            a->n_ticks = log_ticks(a, 0, stride, 1);
            return;
        }
    }
}

/* Position of v along the axis, 0 at lo and 1 at hi. */
static double axis_frac(const axis *a, double v)
{
    double t = a->log ? log10(v) : v;
    return (t - a->lo) / (a->hi - a->lo);
}

static void format_tick(const axis *a, int i, char *buf, size_t n)
{
    if (a->log)
        format_log_tick(buf, n, a->ticks[i]);
    else
        format_linear_tick(buf, n, a->ticks[i], a->step, fmax(fabs(a->lo), fabs(a->hi)));
}

/* The names that ask for a log axis: losses span decades as training goes on. */
static int wants_log(const char *name)
{
    static const char *const keys[] = {"loss", "recon", "stft"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        size_t kl = strlen(keys[k]);
        for (const char *p = name; *p; p++) {
            size_t i = 0;
            while (i < kl && p[i] && (p[i] | 0x20) == keys[k][i])
                i++;
            if (i == kl)
                return 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- antialiased lines */

/* A coverage mask over one plot area: each stroke keeps the larger coverage per pixel, so joints and
 * overlapping segments do not darken, then the mask is painted once in the line's colour. */
typedef struct {
    int w, h;
    float *a;
} layer;

static double dist_to_segment(double px, double py, double x0, double y0, double dx, double dy, double len2)
{
    double t = len2 > 0 ? ((px - x0) * dx + (py - y0) * dy) / len2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return hypot(px - (x0 + t * dx), py - (y0 + t * dy));
}

/* A segment of half-width hw with round caps; pixel centres are at integer coordinates. */
static void layer_segment(layer *l, double x0, double y0, double x1, double y1, double hw)
{
    double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    int xmajor = fabs(dx) >= fabs(dy);
    double a0 = xmajor ? fmin(x0, x1) : fmin(y0, y1), a1 = xmajor ? fmax(x0, x1) : fmax(y0, y1);
    double slope = xmajor ? (dx != 0 ? dy / dx : 0) : dx / dy;
    double reach = hw + 1;
    int n_major = xmajor ? l->w : l->h, n_minor = xmajor ? l->h : l->w;
    /* Walk the major axis; across it only the pixels that can be within reach of the segment are visited
     * (|slope| <= 1, so reach * sqrt(2) bounds the distance across). */
    int i0 = (int)floor(a0 - reach), i1 = (int)ceil(a1 + reach);
    i0 = i0 < 0 ? 0 : i0;
    i1 = i1 > n_major - 1 ? n_major - 1 : i1;
    for (int i = i0; i <= i1; i++) {
        double t = fmin(fmax((double)i, a0), a1);
        double c = xmajor ? y0 + (t - x0) * slope : x0 + (t - y0) * slope;
        int j0 = (int)floor(c - reach * 1.5 - 1), j1 = (int)ceil(c + reach * 1.5 + 1);
        j0 = j0 < 0 ? 0 : j0;
        j1 = j1 > n_minor - 1 ? n_minor - 1 : j1;
        for (int j = j0; j <= j1; j++) {
            int px = xmajor ? i : j, py = xmajor ? j : i;
            double cov = hw + 0.5 - dist_to_segment(px, py, x0, y0, dx, dy, len2);
            if (cov <= 0)
                continue;
            float f = cov > 1 ? 1.0f : (float)cov;
            float *dst = &l->a[(size_t)py * (size_t)l->w + (size_t)px];
            if (f > *dst)
                *dst = f;
        }
    }
}

static void layer_polyline(layer *l, const double *x, const double *y, int64_t n, double hw)
{
    if (n == 1)
        layer_segment(l, x[0], y[0], x[0], y[0], hw);
    for (int64_t i = 1; i < n; i++)
        layer_segment(l, x[i - 1], y[i - 1], x[i], y[i], hw);
}

/* Blends the colour rgb into the canvas through the mask, whose (0, 0) lies at canvas pixel (ox, oy). */
static void layer_paint(layer *l, canvas *cv, int ox, int oy, const uint8_t rgb[3])
{
    for (int y = 0; y < l->h; y++) {
        for (int x = 0; x < l->w; x++) {
            float f = l->a[(size_t)y * (size_t)l->w + (size_t)x];
            if (f <= 0)
                continue;
            uint8_t *p = cv->rgb + ((size_t)(oy + y) * (size_t)cv->w + (size_t)(ox + x)) * 3;
            for (int c = 0; c < 3; c++)
                p[c] = (uint8_t)lrintf((float)p[c] * (1 - f) + (float)rgb[c] * f);
        }
    }
    memset(l->a, 0, (size_t)l->w * (size_t)l->h * sizeof *l->a);
}

/* ---------------------------------------------------------------- the CSV log */

typedef struct {
    const char *path;
    char *text; /* the whole file, NUL-terminated; names and cells are cut out of it in place */
    size_t len;
    int n_cols;
    char **names; /* header cells */
    int step_col;
    int n_panels;
    int *panel_col; /* column plotted by each panel */
    int64_t n_rows;
    double **val; /* per column: its n_rows values (NaN for a gap) when it is plotted or is "step", else NULL */
} plot_log;

static void log_free(plot_log *lg)
{
    if (lg->val)
        for (int c = 0; c < lg->n_cols; c++)
            free(lg->val[c]);
    free(lg->val);
    free(lg->panel_col);
    free(lg->names);
    free(lg->text);
}

static vqz_status read_text(plot_log *lg)
{
    FILE *f = fopen(lg->path, "rb");
    VQZ_FAIL_IF(!f, VQZ_ERR_IO, "%s: cannot open: %s", lg->path, strerror(errno));
    struct stat st;
    vqz_status s = VQZ_OK;
    if (fstat(fileno(f), &st) != 0)
        s = vqz_fail(VQZ_ERR_IO, "%s: cannot stat: %s", lg->path, strerror(errno));
    else if (S_ISDIR(st.st_mode))
        s = vqz_fail(VQZ_ERR_IO, "%s: is a folder, not a CSV file", lg->path);
    else if ((int64_t)st.st_size > PLOT_MAX_FILE_BYTES)
        s = vqz_fail(VQZ_ERR_LIMIT, "%s: %lld bytes, more than the %lld a training log may have", lg->path,
                     (long long)st.st_size, (long long)PLOT_MAX_FILE_BYTES);
    if (s == VQZ_OK) {
        /* A log still being written may have grown since the stat: what is read is a snapshot of its start. */
        lg->text = (char *)malloc((size_t)st.st_size + 1);
        if (!lg->text)
            s = vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory for %lld bytes", lg->path, (long long)st.st_size);
    }
    if (s == VQZ_OK) {
        lg->len = fread(lg->text, 1, (size_t)st.st_size, f);
        if (ferror(f))
            s = vqz_fail(VQZ_ERR_IO, "%s: read failed", lg->path);
        else
            lg->text[lg->len] = '\0';
    }
    fclose(f);
    if (s == VQZ_OK) {
        const char *nul = (const char *)memchr(lg->text, '\0', lg->len);
        if (nul)
            s = vqz_fail(VQZ_ERR_FORMAT, "%s: a NUL byte at offset %zu: not a text file", lg->path,
                         (size_t)(nul - lg->text));
    }
    return s;
}

/* Cuts the next line out of the text at *pos, without its newline; NULL at the end. *terminated says whether
 * a newline ended it (the last line of a log still being written may be incomplete). */
static char *next_line(plot_log *lg, size_t *pos, int *terminated)
{
    if (*pos >= lg->len)
        return NULL;
    char *s = lg->text + *pos;
    char *nl = (char *)memchr(s, '\n', lg->len - *pos);
    *terminated = nl != NULL;
    if (nl) {
        *nl = '\0';
        *pos = (size_t)(nl - lg->text) + 1;
    } else {
        *pos = lg->len;
    }
    return s;
}

/* Trims spaces, tabs and a CR (Windows line ends) from both ends, in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* Cuts a line at its commas into trimmed cells, storing at most max of them; returns how many there are. */
static int split_cells(char *line, char **cells, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (n < max)
            cells[n] = trim(p);
        n++;
        if (!comma)
            return n;
        p = comma + 1;
    }
}

static int find_column(const plot_log *lg, const char *name)
{
    for (int c = 0; c < lg->n_cols; c++)
        if (strcmp(lg->names[c], name) == 0)
            return c;
    return -1;
}

static vqz_status parse_header(plot_log *lg, char *line)
{
    int64_t n = 1;
    for (const char *p = line; *p; p++)
        n += *p == ',';
    VQZ_FAIL_IF(n > PLOT_MAX_COLUMNS, VQZ_ERR_LIMIT, "%s: line 1 names %lld columns, at most %d are read",
                lg->path, (long long)n, PLOT_MAX_COLUMNS);
    lg->names = (char **)malloc((size_t)n * sizeof *lg->names);
    VQZ_FAIL_IF(!lg->names, VQZ_ERR_NOMEM, "%s: out of memory", lg->path);
    lg->n_cols = split_cells(line, lg->names, (int)n);
    for (int c = 0; c < lg->n_cols; c++) {
        char *s = lg->names[c];
        size_t len = strlen(s);
        if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
            s[len - 1] = '\0';
            lg->names[c] = s + 1;
        }
        VQZ_FAIL_IF(lg->names[c][0] == '\0', VQZ_ERR_FORMAT, "%s: line 1, column %d: empty column name",
                    lg->path, c + 1);
        for (int d = 0; d < c; d++)
            VQZ_FAIL_IF(strcmp(lg->names[d], lg->names[c]) == 0, VQZ_ERR_FORMAT,
                        "%s: line 1: column name \"%s\" appears twice (columns %d and %d)", lg->path,
                        lg->names[c], d + 1, c + 1);
    }
    return VQZ_OK;
}

/* "step, time_s, lr, loss" (shortened with "..." when long), for the message naming an unknown column. */
static void list_columns(const plot_log *lg, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int c = 0; c < lg->n_cols; c++) {
        size_t need = strlen(lg->names[c]) + (c ? 2 : 0);
        if (used + need + 5 >= n) {
            snprintf(buf + used, n - used, "%s...", c ? ", " : "");
            return;
        }
        used += (size_t)snprintf(buf + used, n - used, "%s%s", c ? ", " : "", lg->names[c]);
    }
}

static vqz_status pick_columns(plot_log *lg, const char *const *columns, int n_columns)
{
    char avail[256];
    lg->step_col = find_column(lg, "step");
    if (lg->step_col < 0) {
        list_columns(lg, avail, sizeof avail);
        return vqz_fail(VQZ_ERR_NOT_FOUND, "%s: no column named \"step\" for the x axis (columns: %s)", lg->path,
                        avail);
    }
    int n = n_columns;
    if (n_columns == 0)
        for (int c = 0; c < lg->n_cols; c++) {
            int skip = 0;
            for (size_t k = 0; k < sizeof k_skipped / sizeof k_skipped[0]; k++)
                skip |= strcmp(lg->names[c], k_skipped[k]) == 0;
            n += !skip;
        }
    VQZ_FAIL_IF(n == 0, VQZ_ERR_NOT_FOUND, "%s: nothing to plot: no column besides step, time_s and lr", lg->path);
    VQZ_FAIL_IF(n > PLOT_MAX_PANELS, VQZ_ERR_LIMIT, "%s: %d columns to plot, at most %d: name the ones wanted",
                lg->path, n, PLOT_MAX_PANELS);
    lg->panel_col = (int *)malloc((size_t)n * sizeof *lg->panel_col);
    VQZ_FAIL_IF(!lg->panel_col, VQZ_ERR_NOMEM, "%s: out of memory", lg->path);
    lg->n_panels = 0;
    for (int c = 0; c < lg->n_cols && n_columns == 0; c++) {
        int skip = 0;
        for (size_t k = 0; k < sizeof k_skipped / sizeof k_skipped[0]; k++)
            skip |= strcmp(lg->names[c], k_skipped[k]) == 0;
        if (!skip)
            lg->panel_col[lg->n_panels++] = c;
    }
    for (int i = 0; i < n_columns; i++) {
        int c = find_column(lg, columns[i]);
        if (c < 0) {
            list_columns(lg, avail, sizeof avail);
            return vqz_fail(VQZ_ERR_NOT_FOUND, "%s: no column named \"%s\" (columns: %s)", lg->path, columns[i],
                            avail);
        }
        lg->panel_col[lg->n_panels++] = c;
    }
    return VQZ_OK;
}

/* Parses one data row into row[n_cols]. Returns 1 when the row is good, 0 when it is the unterminated last
 * line of a log being written and is cut short (it is skipped), and sets *s to the error otherwise. */
static int parse_row(const plot_log *lg, char *line, int terminated, int64_t line_no, char **cells, double *row,
                     vqz_status *s)
{
    int n = split_cells(line, cells, lg->n_cols);
    if (n != lg->n_cols) {
        if (terminated)
            *s = vqz_fail(VQZ_ERR_FORMAT, "%s: line %lld has %d cells, the header has %d", lg->path,
                          (long long)line_no, n, lg->n_cols);
        return 0;
    }
    for (int c = 0; c < n; c++) {
        const char *cell = cells[c];
        if (cell[0] == '\0') {
            row[c] = NAN;
            continue;
        }
        char *end = NULL;
        row[c] = strtod(cell, &end); /* "nan" and "inf" parse too; both end up as gaps */
        if (end == cell || *end != '\0') {
            if (terminated)
                *s = vqz_fail(VQZ_ERR_FORMAT, "%s: line %lld, column %d (%s): \"%.40s\" is not a number", lg->path,
                              (long long)line_no, c + 1, lg->names[c], cell);
            return 0;
        }
    }
    return 1;
}

static vqz_status read_rows(plot_log *lg, size_t pos)
{
    /* Every remaining line may be a row: the count bounds the rows, so each column is allocated once. */
    int64_t max_rows = 1;
    for (size_t i = pos; i < lg->len; i++)
        max_rows += lg->text[i] == '\n';
    max_rows = max_rows < PLOT_MAX_ROWS ? max_rows : PLOT_MAX_ROWS;
    lg->val = (double **)calloc((size_t)lg->n_cols, sizeof *lg->val);
    VQZ_FAIL_IF(!lg->val, VQZ_ERR_NOMEM, "%s: out of memory", lg->path);
    int n_kept = 0;
    for (int c = 0; c < lg->n_cols; c++) {
        int kept = c == lg->step_col;
        for (int p = 0; p < lg->n_panels; p++)
            kept |= lg->panel_col[p] == c;
        if (!kept)
            continue;
        VQZ_FAIL_IF(max_rows * (n_kept + 1) > PLOT_MAX_VALUES, VQZ_ERR_LIMIT,
                    "%s: up to %lld rows of %d plotted columns: more than the %lld values read", lg->path,
                    (long long)max_rows, n_kept + 1, (long long)PLOT_MAX_VALUES);
        lg->val[c] = (double *)malloc((size_t)max_rows * sizeof(double));
        VQZ_FAIL_IF(!lg->val[c], VQZ_ERR_NOMEM, "%s: out of memory for %lld rows", lg->path, (long long)max_rows);
        n_kept++;
    }
    char **cells = (char **)malloc((size_t)lg->n_cols * sizeof *cells);
    double *row = (double *)malloc((size_t)lg->n_cols * sizeof *row);
    vqz_status s = VQZ_OK;
    if (!cells || !row)
        s = vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory", lg->path);
    int64_t line_no = 1;
    int terminated = 0;
    char *line;
    while (s == VQZ_OK && (line = next_line(lg, &pos, &terminated)) != NULL) {
        line_no++;
        line = trim(line);
        if (line[0] == '\0')
            continue;
        if (!parse_row(lg, line, terminated, line_no, cells, row, &s))
            continue;
        if (lg->n_rows == max_rows) {
            s = vqz_fail(VQZ_ERR_LIMIT, "%s: line %lld: more than %lld rows", lg->path, (long long)line_no,
                         (long long)max_rows);
            break;
        }
        for (int c = 0; c < lg->n_cols; c++)
            if (lg->val[c])
                lg->val[c][lg->n_rows] = row[c];
        lg->n_rows++;
    }
    free(cells);
    free(row);
    return s;
}

static vqz_status log_read(plot_log *lg, const char *const *columns, int n_columns)
{
    VQZ_TRY(read_text(lg));
    size_t pos = lg->len >= 3 && memcmp(lg->text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0; /* a UTF-8 byte-order mark */
    int terminated = 0;
    char *header = next_line(lg, &pos, &terminated);
    header = header ? trim(header) : NULL;
    VQZ_FAIL_IF(!header || header[0] == '\0', VQZ_ERR_FORMAT, "%s: line 1: no header row of column names",
                lg->path);
    VQZ_TRY(parse_header(lg, header));
    VQZ_TRY(pick_columns(lg, columns, n_columns));
    return read_rows(lg, pos);
}

/* ---------------------------------------------------------------- panels */

/* Working memory for one panel: its points and per-pixel-column summaries of them. */
typedef struct {
    double *x, *y;   /* the points, then their positions in the plot area */
    double *prefix;  /* running sums of y for the moving average */
    int has[AREA_W]; /* points that fell into each pixel column */
    double first[AREA_W], last[AREA_W], lo[AREA_W], hi[AREA_W], sum[AREA_W];
} scratch;

static int usable(double v)
{
    return isfinite(v) && fabs(v) <= PLOT_MAX_ABS;
}

static double x_pixel(const axis *a, double v)
{
    return INSET + axis_frac(a, v) * (AREA_W - 1 - 2 * INSET);
}

static double y_pixel(const axis *a, double v)
{
    return (AREA_H - 1 - INSET) - axis_frac(a, v) * (AREA_H - 1 - 2 * INSET);
}

/* The shared x axis, with as many ticks (at most MAX_TICKS) as leave room between their labels. */
static void axis_for_steps(axis *a, double lo, double hi)
{
    for (int max = MAX_TICKS; max >= 3; max--) {
        axis_linear(a, lo, hi, 0, max);
        int widest = 0;
        for (int i = 0; i < a->n_ticks; i++) {
            char buf[32];
            format_tick(a, i, buf, sizeof buf);
            widest = text_width(buf) > widest ? text_width(buf) : widest;
        }
        if (a->n_ticks < 2 || widest + CHAR_W <= (AREA_W - 2 * INSET) / (a->n_ticks - 1))
            return;
    }
}

static void draw_axes(canvas *cv, int ax0, int ay0, const axis *ax, const axis *ay)
{
    char buf[32];
    for (int i = 0; i < ay->n_ticks; i++) {
        int row = ay0 + (int)lrint(y_pixel(ay, ay->ticks[i]));
        fill_rect(cv, ax0, row, AREA_W, 1, GREY_GRID);
        format_tick(ay, i, buf, sizeof buf);
        draw_text(cv, ax0 - 8 - text_width(buf), row - CHAR_H / 2, buf, GREY_LABEL);
    }
    for (int i = 0; i < ax->n_ticks; i++) {
        int col = ax0 + (int)lrint(x_pixel(ax, ax->ticks[i]));
        fill_rect(cv, col, ay0, 1, AREA_H, GREY_GRID);
        format_tick(ax, i, buf, sizeof buf);
        /* Centred under the tick, but kept within the panel and half the margin beyond it. */
        int x = col - text_width(buf) / 2, x_max = ax0 - AREA_L + PANEL_W + MARGIN / 2 - text_width(buf);
        draw_text(cv, x < x_max ? x : x_max, ay0 + AREA_H + 6, buf, GREY_LABEL);
    }
    fill_rect(cv, ax0 - 1, ay0 - 1, AREA_W + 2, 1, GREY_FRAME);
    fill_rect(cv, ax0 - 1, ay0 + AREA_H, AREA_W + 2, 1, GREY_FRAME);
    fill_rect(cv, ax0 - 1, ay0, 1, AREA_H, GREY_FRAME);
    fill_rect(cv, ax0 + AREA_W, ay0, 1, AREA_H, GREY_FRAME);
}

/* The column name (shortened to fit), "(log)" for a log axis, and the last value at the right. */
static void draw_title(canvas *cv, int ax0, int top, const char *name, int log, int has_last, double last)
{
    const char *suffix = log ? " (log)" : "";
    int max_chars = (AREA_W + FONT_SCALE - text_width(suffix)) / CHAR_W;
    char title[128];
    size_t len = strlen(name);
    if ((int)len > max_chars)
        snprintf(title, sizeof title, "%.*s..%s", max_chars - 2, name, suffix);
    else
        snprintf(title, sizeof title, "%s%s", name, suffix);
    draw_text(cv, ax0, top + 6, title, GREY_TEXT);
    if (!has_last)
        return;
    char value[32], note[48];
    format_short(value, sizeof value, last);
    snprintf(note, sizeof note, "last %s", value);
    if (text_width(title) + 2 * CHAR_W + text_width(note) <= AREA_W)
        draw_text(cv, ax0 + AREA_W - text_width(note), top + 6, note, GREY_NOTE);
}

/* A line with more points than pixel columns, drawn exactly at column resolution: each column's span from
 * its lowest to its highest point, joined to the next column from its last point to that one's first. */
static void stroke_dense(layer *l, scratch *w, int64_t n, double hw)
{
    memset(w->has, 0, sizeof w->has);
    for (int64_t i = 0; i < n; i++) {
        int c = (int)lrint(w->x[i]);
        c = c < 0 ? 0 : c > AREA_W - 1 ? AREA_W - 1 : c;
        double y = w->y[i];
        if (!w->has[c]) {
            w->first[c] = w->lo[c] = w->hi[c] = y;
        } else {
            w->lo[c] = fmin(w->lo[c], y);
            w->hi[c] = fmax(w->hi[c], y);
        }
        w->last[c] = y;
        w->has[c]++;
    }
    int prev = -1;
    for (int c = 0; c < AREA_W; c++) {
        if (!w->has[c])
            continue;
        if (prev >= 0)
            layer_segment(l, prev, w->last[prev], c, w->first[c], hw);
        layer_segment(l, c, w->lo[c], c, w->hi[c], hw);
        prev = c;
    }
}

/* Replaces y by its centred moving average over a window of about n / 50 points, in plot coordinates (so
 * on a log axis it is a geometric mean), then draws it through one point per pixel column. */
static void stroke_average(layer *l, scratch *w, int64_t n, double hw)
{
    int64_t half = n / 100 > 1 ? n / 100 : 1;
    w->prefix[0] = 0;
    for (int64_t i = 0; i < n; i++)
        w->prefix[i + 1] = w->prefix[i] + w->y[i];
    for (int64_t i = 0; i < n; i++) {
        int64_t a = i - half < 0 ? 0 : i - half, b = i + half > n - 1 ? n - 1 : i + half;
        w->y[i] = (w->prefix[b + 1] - w->prefix[a]) / (double)(b - a + 1);
    }
    memset(w->has, 0, sizeof w->has);
    memset(w->sum, 0, sizeof w->sum);
    for (int64_t i = 0; i < n; i++) {
        int c = (int)lrint(w->x[i]);
        c = c < 0 ? 0 : c > AREA_W - 1 ? AREA_W - 1 : c;
        w->sum[c] += w->y[i];
        w->has[c]++;
    }
    int prev = -1;
    for (int c = 0; c < AREA_W; c++) {
        if (!w->has[c])
            continue;
        double y = w->sum[c] / w->has[c];
        if (prev >= 0)
            layer_segment(l, prev, w->sum[prev] / w->has[prev], c, y, hw);
        else
            layer_segment(l, c, y, c, y, hw);
        prev = c;
    }
}

static void draw_panel(canvas *cv, layer *l, scratch *w, const plot_log *lg, int index, const axis *ax)
{
    int col = lg->panel_col[index];
    const char *name = lg->names[col];
    int left = MARGIN + PITCH_X * (index % 2), top = MARGIN + PITCH_Y * (index / 2);
    int ax0 = left + AREA_L, ay0 = top + AREA_T;

    int64_t n = 0;
    double vmin = INFINITY, vmax = -INFINITY;
    for (int64_t r = 0; r < lg->n_rows; r++) {
        double s = lg->val[lg->step_col][r], v = lg->val[col][r];
        if (!usable(s) || !usable(v))
            continue;
        w->x[n] = s;
        w->y[n] = v;
        vmin = fmin(vmin, v);
        vmax = fmax(vmax, v);
        n++;
    }
    axis ay;
    if (n > 0 && wants_log(name) && vmin > 0 && vmax / vmin > 20)
        axis_log(&ay, vmin, vmax);
    else if (n > 0)
        axis_linear(&ay, vmin, vmax, 0.04, MAX_TICKS);
    else
        axis_linear(&ay, 0, 1, 0, MAX_TICKS);
    draw_axes(cv, ax0, ay0, ax, &ay);
    draw_title(cv, ax0, top, name, ay.log, n > 0, n > 0 ? w->y[n - 1] : 0);
    if (n == 0) {
        const char *note = "no data";
        draw_text(cv, ax0 + (AREA_W - text_width(note)) / 2, ay0 + (AREA_H - CHAR_H) / 2, note, GREY_NOTE);
        return;
    }

    for (int64_t i = 0; i < n; i++) {
        w->x[i] = x_pixel(ax, w->x[i]);
        w->y[i] = y_pixel(&ay, w->y[i]);
    }
    const uint8_t *rgb = k_colors[index % 8];
    if (n > AREA_W) {
        /* Noisy losses: the raw values light, their moving average dark on top. */
        uint8_t light[3];
        for (int c = 0; c < 3; c++)
            light[c] = (uint8_t)lrint(255 - 0.35 * (255 - rgb[c]));
        stroke_dense(l, w, n, 0.6);
        layer_paint(l, cv, ax0, ay0, light);
        stroke_average(l, w, n, 1.1);
    } else {
        layer_polyline(l, w->x, w->y, n, 1.0);
        for (int64_t i = 0; i < n && n <= 20; i++) /* few points: mark each */
            layer_segment(l, w->x[i], w->y[i], w->x[i], w->y[i], 2.5);
    }
    layer_paint(l, cv, ax0, ay0, rgb);
}

static vqz_status render(const plot_log *lg, const char *png_path)
{
    int grid_rows = (lg->n_panels + 1) / 2;
    canvas cv = {IMG_W, MARGIN + PITCH_Y * grid_rows, NULL};
    layer l = {AREA_W, AREA_H, NULL};
    scratch *w = (scratch *)calloc(1, sizeof *w);
    cv.rgb = (uint8_t *)malloc((size_t)cv.w * (size_t)cv.h * 3);
    l.a = (float *)calloc((size_t)AREA_W * AREA_H, sizeof *l.a);
    if (w) {
        w->x = (double *)malloc(((size_t)lg->n_rows + 1) * sizeof(double));
        w->y = (double *)malloc(((size_t)lg->n_rows + 1) * sizeof(double));
        w->prefix = (double *)malloc(((size_t)lg->n_rows + 1) * sizeof(double));
    }
    vqz_status s = VQZ_OK;
    if (!w || !cv.rgb || !l.a || !w->x || !w->y || !w->prefix)
        s = vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory for a %dx%d chart", png_path, cv.w, cv.h);

    if (s == VQZ_OK) {
        memset(cv.rgb, 255, (size_t)cv.w * (size_t)cv.h * 3);
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t r = 0; r < lg->n_rows; r++) {
            double v = lg->val[lg->step_col][r];
            if (usable(v)) {
                lo = fmin(lo, v);
                hi = fmax(hi, v);
            }
        }
        axis ax;
        axis_for_steps(&ax, lo <= hi ? lo : 0, lo <= hi ? hi : 1);
        for (int p = 0; p < lg->n_panels; p++)
            draw_panel(&cv, &l, w, lg, p, &ax);
    }
    if (w) {
        free(w->x);
        free(w->y);
        free(w->prefix);
    }
    free(w);
    free(l.a);

    vqz_image *img = NULL;
    if (s == VQZ_OK)
        s = vqz_image_create(cv.w, cv.h, 3, 8, &img);
    if (s == VQZ_OK) {
        for (size_t i = 0; i < (size_t)cv.w * (size_t)cv.h * 3; i++)
            img->samples[i] = cv.rgb[i];
        s = vqz_image_write_png(img, png_path);
    }
    vqz_image_free(img);
    free(cv.rgb);
    return s;
}

vqz_status vqz_plot_log(const char *csv_path, const char *png_path, const char *const *columns, int n_columns)
{
    vqz_error_clear();
    VQZ_FAIL_IF(!csv_path || !png_path, VQZ_ERR_INVALID_ARG, "plot_log: NULL path");
    VQZ_FAIL_IF(n_columns < 0 || (n_columns > 0 && !columns), VQZ_ERR_INVALID_ARG,
                "plot_log: %d columns at %p", n_columns, (const void *)columns);
    for (int i = 0; i < n_columns; i++)
        VQZ_FAIL_IF(!columns[i], VQZ_ERR_INVALID_ARG, "plot_log: column name %d is NULL", i);
    plot_log lg;
    memset(&lg, 0, sizeof lg);
    lg.path = csv_path;
    vqz_status s = log_read(&lg, columns, n_columns);
    if (s == VQZ_OK)
        s = render(&lg, png_path);
    log_free(&lg);
    return s;
}
