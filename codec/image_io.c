/* image_io.c — PNG and JPEG readers, the PNG writer that mirrors the source, and conversion to and from the
 * model's planar RGB (codec/image_io.h). */
#include "codec/image_io.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
/* jpeglib.h needs FILE and size_t declared before it. */
#include <jpeglib.h>
#include <jerror.h>

#include "format/fileio.h"

/* libpng and libjpeg report errors by longjmp. Each setjmp lives in a small function whose only state is a
 * struct owned by its caller (never a local of the setjmp function, whose values would be indeterminate
 * after the jump), so the caller frees everything on every path. */

static const uint8_t k_png_sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
static const uint8_t k_jpeg_sig[3] = {0xFF, 0xD8, 0xFF};

/* ---------------------------------------------------------------- images */

static int channels_of_color_type(int ct)
{
    switch (ct) {
    case VQZ_PNG_GREY: return 1;
    case VQZ_PNG_GREY_ALPHA: return 2;
    case VQZ_PNG_RGB: return 3;
    case VQZ_PNG_PALETTE: return 3;
    case VQZ_PNG_RGBA: return 4;
    }
    return 0;
}

static vqz_status check_limits(const char *name, uint64_t w, uint64_t h)
{
    VQZ_FAIL_IF(w == 0 || h == 0, VQZ_ERR_FORMAT, "%s: image has no pixels (%llux%llu)", name,
                (unsigned long long)w, (unsigned long long)h);
    VQZ_FAIL_IF(w > VQZ_IMAGE_MAX_SIDE || h > VQZ_IMAGE_MAX_SIDE, VQZ_ERR_LIMIT,
                "%s: image is %llux%llu, a side exceeds the limit of %d pixels", name, (unsigned long long)w,
                (unsigned long long)h, VQZ_IMAGE_MAX_SIDE);
    VQZ_FAIL_IF(w * h > VQZ_IMAGE_MAX_PIXELS, VQZ_ERR_LIMIT,
                "%s: image is %llux%llu = %llu pixels, more than the limit of %llu", name, (unsigned long long)w,
                (unsigned long long)h, (unsigned long long)(w * h), (unsigned long long)VQZ_IMAGE_MAX_PIXELS);
    return VQZ_OK;
}

/* A zeroed image struct with a plain PNG description; no samples yet. */
static vqz_image *image_new(int width, int height, int channels, int bit_depth)
{
    vqz_image *img = (vqz_image *)calloc(1, sizeof *img);
    if (!img)
        return NULL;
    img->width = width;
    img->height = height;
    img->channels = channels;
    img->bit_depth = bit_depth;
    img->source = VQZ_IMAGE_SRC_PNG;
    static const int ct_of_channels[5] = {0, VQZ_PNG_GREY, VQZ_PNG_GREY_ALPHA, VQZ_PNG_RGB, VQZ_PNG_RGBA};
    img->color_type = ct_of_channels[channels >= 1 && channels <= 4 ? channels : 0];
    img->source_bit_depth = bit_depth;
    img->srgb_intent = -1;
    return img;
}

static size_t sample_count(const vqz_image *img)
{
    return (size_t)img->width * (size_t)img->height * (size_t)img->channels;
}

static vqz_status image_alloc_samples(vqz_image *img, const char *name)
{
    img->samples = (uint16_t *)calloc(sample_count(img), sizeof(uint16_t));
    VQZ_FAIL_IF(!img->samples, VQZ_ERR_NOMEM, "%s: out of memory for %dx%d pixels", name, img->width, img->height);
    return VQZ_OK;
}

vqz_status vqz_image_create(int width, int height, int channels, int bit_depth, vqz_image **out)
{
    VQZ_FAIL_IF(!out, VQZ_ERR_INVALID_ARG, "image_create: out is NULL");
    *out = NULL;
    VQZ_FAIL_IF(channels < 1 || channels > 4, VQZ_ERR_INVALID_ARG, "image_create: %d channels, expected 1..4",
                channels);
    VQZ_FAIL_IF(bit_depth != 8 && bit_depth != 16, VQZ_ERR_INVALID_ARG, "image_create: bit depth %d, expected 8 or 16",
                bit_depth);
    VQZ_FAIL_IF(width < 1 || height < 1, VQZ_ERR_INVALID_ARG, "image_create: size %dx%d", width, height);
    VQZ_TRY(check_limits("image_create", (uint64_t)width, (uint64_t)height));
    vqz_image *img = image_new(width, height, channels, bit_depth);
    VQZ_FAIL_IF(!img, VQZ_ERR_NOMEM, "image_create: out of memory");
    vqz_status s = image_alloc_samples(img, "image_create");
    if (s != VQZ_OK) {
        vqz_image_free(img);
        return s;
    }
    *out = img;
    return VQZ_OK;
}

vqz_status vqz_image_create_like(const vqz_image *src, vqz_image **out)
{
    VQZ_FAIL_IF(!out, VQZ_ERR_INVALID_ARG, "image_create_like: out is NULL");
    *out = NULL;
    VQZ_FAIL_IF(!src, VQZ_ERR_INVALID_ARG, "image_create_like: src is NULL");
    VQZ_FAIL_IF(src->channels < 1 || src->channels > 4 || (src->bit_depth != 8 && src->bit_depth != 16) ||
                    src->width < 1 || src->height < 1,
                VQZ_ERR_INVALID_ARG, "image_create_like: invalid source image %dx%d, %d channels, %d-bit",
                src->width, src->height, src->channels, src->bit_depth);
    VQZ_TRY(check_limits("image_create_like", (uint64_t)src->width, (uint64_t)src->height));
    vqz_image *img = (vqz_image *)malloc(sizeof *img);
    VQZ_FAIL_IF(!img, VQZ_ERR_NOMEM, "image_create_like: out of memory");
    *img = *src;
    img->samples = NULL;
    img->icc_profile = NULL;
    img->icc_size = 0;
    vqz_status s = image_alloc_samples(img, "image_create_like");
    if (s == VQZ_OK && src->icc_profile && src->icc_size > 0) {
        img->icc_profile = (uint8_t *)malloc(src->icc_size);
        if (!img->icc_profile) {
            s = vqz_fail(VQZ_ERR_NOMEM, "image_create_like: out of memory for a %zu-byte ICC profile", src->icc_size);
        } else {
            memcpy(img->icc_profile, src->icc_profile, src->icc_size);
            img->icc_size = src->icc_size;
        }
    }
    if (s != VQZ_OK) {
        vqz_image_free(img);
        return s;
    }
    *out = img;
    return VQZ_OK;
}

void vqz_image_free(vqz_image *img)
{
    if (!img)
        return;
    free(img->samples);
    free(img->icc_profile);
    free(img);
}

/* ---------------------------------------------------------------- PNG reading */

typedef struct {
    const char *name;
    const uint8_t *data;
    size_t size, pos;
    int truncated; /* the read callback ran out of data */
    char msg[256]; /* libpng's message */
    vqz_image *img;
    uint8_t *bytes; /* one decoded row, or the whole image when interlaced */
} png_reader;

static void png_error_cb(png_structp png, png_const_charp msg)
{
    png_reader *r = (png_reader *)png_get_error_ptr(png);
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

/* The library never prints: libpng's warnings (bad ancillary chunks it skips) are dropped. */
static void png_warning_cb(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_read_cb(png_structp png, png_bytep out, size_t n)
{
    png_reader *r = (png_reader *)png_get_io_ptr(png);
    if (n > r->size - r->pos) {
        r->truncated = 1;
        png_error(png, "unexpected end of data");
    }
    memcpy(out, r->data + r->pos, n);
    r->pos += n;
}

static int contains_nocase(const char *s, const char *word)
{
    size_t n = strlen(word);
    for (; *s; s++) {
        size_t i = 0;
        while (i < n && s[i] && (s[i] | 0x20) == (word[i] | 0x20))
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

static vqz_status png_reader_status(const png_reader *r)
{
    if (r->truncated)
        return vqz_fail(VQZ_ERR_TRUNCATED, "%s: truncated PNG data (libpng: %s)", r->name, r->msg);
    if (contains_nocase(r->msg, "CRC"))
        return vqz_fail(VQZ_ERR_CHECKSUM, "%s: PNG checksum mismatch (libpng: %s)", r->name, r->msg);
    if (contains_nocase(r->msg, "out of memory"))
        return vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory while decoding PNG (libpng: %s)", r->name, r->msg);
    return vqz_fail(VQZ_ERR_FORMAT, "%s: malformed PNG data (libpng: %s)", r->name, r->msg);
}

static void png_row_to_samples(const uint8_t *b, uint16_t *dst, size_t n, int depth)
{
    if (depth == 8) {
        for (size_t i = 0; i < n; i++)
            dst[i] = b[i];
    } else {
        for (size_t i = 0; i < n; i++)
            dst[i] = (uint16_t)((b[2 * i] << 8) | b[2 * i + 1]);
    }
}

static vqz_status png_decode(png_reader *r, png_structp png, png_infop info)
{
    if (setjmp(png_jmpbuf(png)))
        return png_reader_status(r);

    /* Our own limits are checked right after the header; libpng's defaults would refuse first, and with a
     * less precise status. */
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_set_read_fn(png, r, png_read_cb);
    png_read_info(png, info);

    png_uint_32 w = 0, h = 0;
    int depth = 0, ct = 0, il = 0;
    png_get_IHDR(png, info, &w, &h, &depth, &ct, &il, NULL, NULL);
    VQZ_TRY(check_limits(r->name, w, h));

    vqz_image *img = image_new((int)w, (int)h, 0, 0);
    VQZ_FAIL_IF(!img, VQZ_ERR_NOMEM, "%s: out of memory", r->name);
    r->img = img;
    img->source = VQZ_IMAGE_SRC_PNG;
    img->color_type = ct;
    img->source_bit_depth = depth;
    img->interlaced = il != PNG_INTERLACE_NONE;

    /* The source description is read before png_read_update_info, which rewrites palette and tRNS fields
     * to describe the expanded rows. */
    int expect_alpha = (ct & PNG_COLOR_MASK_ALPHA) != 0;
    if (ct == PNG_COLOR_TYPE_PALETTE) {
        png_colorp pal = NULL;
        int npal = 0;
        if (!png_get_PLTE(png, info, &pal, &npal) || npal < 1 || npal > 256)
            return vqz_fail(VQZ_ERR_FORMAT, "%s: palette PNG without a usable PLTE chunk", r->name);
        img->palette_size = npal;
        for (int i = 0; i < npal; i++) {
            img->palette[i][0] = pal[i].red;
            img->palette[i][1] = pal[i].green;
            img->palette[i][2] = pal[i].blue;
            img->palette[i][3] = 255;
        }
        png_bytep alpha = NULL;
        int nalpha = 0;
        if (png_get_tRNS(png, info, &alpha, &nalpha, NULL) && alpha && nalpha > 0) {
            if (nalpha > npal)
                nalpha = npal;
            img->palette_alpha_size = nalpha;
            for (int i = 0; i < nalpha; i++)
                img->palette[i][3] = alpha[i];
            expect_alpha = 1;
        }
    } else if (!(ct & PNG_COLOR_MASK_ALPHA)) {
        png_color_16p key = NULL;
        if (png_get_tRNS(png, info, NULL, NULL, &key) && key) {
            img->has_color_key = 1;
            if (ct == PNG_COLOR_TYPE_GRAY) {
                img->color_key[0] = key->gray;
            } else {
                img->color_key[0] = key->red;
                img->color_key[1] = key->green;
                img->color_key[2] = key->blue;
            }
            expect_alpha = 1;
        }
    }
    /* libpng reports sRGB (and its gamma) for an iCCP profile it recognises as sRGB, and gAMA for an sRGB
     * chunk: only the chunk that was really there is kept, so the output carries the same one. */
    png_charp icc_name = NULL;
    int icc_comp = 0;
    png_bytep icc = NULL;
    png_uint_32 icc_len = 0;
    int intent = 0;
    png_fixed_point gamma = 0;
    if (png_get_iCCP(png, info, &icc_name, &icc_comp, &icc, &icc_len) && icc && icc_len > 0) {
        img->icc_profile = (uint8_t *)malloc(icc_len);
        VQZ_FAIL_IF(!img->icc_profile, VQZ_ERR_NOMEM, "%s: out of memory for the ICC profile", r->name);
        memcpy(img->icc_profile, icc, icc_len);
        img->icc_size = icc_len;
        snprintf(img->icc_name, sizeof img->icc_name, "%s", icc_name ? icc_name : "");
    } else if (png_get_sRGB(png, info, &intent)) {
        img->srgb_intent = intent;
    } else if (png_get_gAMA_fixed(png, info, &gamma) && gamma > 0) {
        img->gamma = gamma;
    }

    /* Palette to RGB(A), grey below 8 bits to 8 bits, tRNS to an alpha channel; 16 bits stay 16. */
    png_set_expand(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    int bd = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    int want_channels = channels_of_color_type(ct) + (expect_alpha && !(ct & PNG_COLOR_MASK_ALPHA) ? 1 : 0);
    size_t want_rowbytes = (size_t)w * (size_t)channels * (size_t)(bd / 8);
    if (channels != want_channels || (bd != 8 && bd != 16) || rowbytes != want_rowbytes)
        return vqz_fail(VQZ_ERR_INTERNAL,
                        "%s: libpng expanded a colour type %d, %d-bit image to %d channels of %d bits "
                        "(%zu bytes a row), expected %d channels",
                        r->name, ct, depth, channels, bd, rowbytes, want_channels);
    img->channels = channels;
    img->bit_depth = bd;
    VQZ_TRY(image_alloc_samples(img, r->name));

    size_t row_samples = (size_t)w * (size_t)channels;
    if (img->interlaced) {
        /* Adam7 passes fill each row in several visits, so the whole image is kept in bytes. */
        r->bytes = (uint8_t *)malloc(rowbytes * h);
        VQZ_FAIL_IF(!r->bytes, VQZ_ERR_NOMEM, "%s: out of memory for %ux%u pixels", r->name, (unsigned)w, (unsigned)h);
        memset(r->bytes, 0, rowbytes * h);
        for (int p = 0; p < passes; p++)
            for (png_uint_32 y = 0; y < h; y++)
                png_read_row(png, r->bytes + (size_t)y * rowbytes, NULL);
        for (png_uint_32 y = 0; y < h; y++)
            png_row_to_samples(r->bytes + (size_t)y * rowbytes, img->samples + (size_t)y * row_samples,
                               row_samples, bd);
    } else {
        r->bytes = (uint8_t *)malloc(rowbytes);
        VQZ_FAIL_IF(!r->bytes, VQZ_ERR_NOMEM, "%s: out of memory", r->name);
        for (png_uint_32 y = 0; y < h; y++) {
            png_read_row(png, r->bytes, NULL);
            png_row_to_samples(r->bytes, img->samples + (size_t)y * row_samples, row_samples, bd);
        }
    }
    /* Reads up to IEND, so a file cut after its pixel data is still reported as truncated. */
    png_read_end(png, NULL);
    return VQZ_OK;
}

static vqz_status read_png(const uint8_t *data, size_t size, const char *name, vqz_image **out)
{
    png_reader r;
    memset(&r, 0, sizeof r);
    r.name = name;
    r.data = data;
    r.size = size;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, png_error_cb, png_warning_cb);
    VQZ_FAIL_IF(!png, VQZ_ERR_NOMEM, "%s: cannot create a PNG decoder", name);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return vqz_fail(VQZ_ERR_NOMEM, "%s: cannot create a PNG decoder", name);
    }
    vqz_status s = png_decode(&r, png, info);
    png_destroy_read_struct(&png, &info, NULL);
    free(r.bytes);
    if (s != VQZ_OK) {
        vqz_image_free(r.img);
        return s;
    }
    *out = r.img;
    return VQZ_OK;
}

/* ---------------------------------------------------------------- JPEG reading */

typedef struct {
    struct jpeg_error_mgr pub; /* first, so libjpeg's err pointer is this struct */
    jmp_buf jump;
    int eof; /* the data ended before the image did */
    char msg[JMSG_LENGTH_MAX];
} jpeg_error;

typedef struct {
    const char *name;
    jpeg_error err;
    struct jpeg_decompress_struct cinfo;
    vqz_image *img;
    uint8_t *row;
    JOCTET *icc; /* from jpeg_read_icc_profile, malloc'd by libjpeg */
    unsigned int icc_len;
} jpeg_reader;

static void jpeg_error_exit_cb(j_common_ptr c)
{
    jpeg_error *e = (jpeg_error *)c->err;
    (*c->err->format_message)(c, e->msg);
    longjmp(e->jump, 1);
}

/* Warnings are dropped (the library never prints), except running out of data: libjpeg would pad the
 * image with grey and carry on, and a truncated input must be reported. */
static void jpeg_emit_message_cb(j_common_ptr c, int level)
{
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) {
        jpeg_error *e = (jpeg_error *)c->err;
        e->eof = 1;
        (*c->err->format_message)(c, e->msg);
        longjmp(e->jump, 1);
    }
}

static void jpeg_output_message_cb(j_common_ptr c)
{
    (void)c;
}

static vqz_status jpeg_reader_status(const jpeg_reader *r)
{
    if (r->err.eof)
        return vqz_fail(VQZ_ERR_TRUNCATED, "%s: truncated JPEG data (libjpeg: %s)", r->name, r->err.msg);
    switch (r->err.pub.msg_code) {
    case JERR_BAD_PRECISION:
        return vqz_fail(VQZ_ERR_UNSUPPORTED, "%s: unsupported JPEG (libjpeg: %s)", r->name, r->err.msg);
    case JERR_IMAGE_TOO_BIG:
    case JERR_WIDTH_OVERFLOW:
        return vqz_fail(VQZ_ERR_LIMIT, "%s: JPEG image too large (libjpeg: %s)", r->name, r->err.msg);
    case JERR_OUT_OF_MEMORY:
        return vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory while decoding JPEG (libjpeg: %s)", r->name, r->err.msg);
    case JERR_INPUT_EMPTY:
    case JERR_INPUT_EOF:
        return vqz_fail(VQZ_ERR_TRUNCATED, "%s: truncated JPEG data (libjpeg: %s)", r->name, r->err.msg);
    default:
        return vqz_fail(VQZ_ERR_FORMAT, "%s: malformed JPEG data (libjpeg: %s)", r->name, r->err.msg);
    }
}

static vqz_status jpeg_decode(jpeg_reader *r, const uint8_t *data, size_t size)
{
    struct jpeg_decompress_struct *c = &r->cinfo;
    c->err = jpeg_std_error(&r->err.pub);
    r->err.pub.error_exit = jpeg_error_exit_cb;
    r->err.pub.emit_message = jpeg_emit_message_cb;
    r->err.pub.output_message = jpeg_output_message_cb;
    if (setjmp(r->err.jump))
        return jpeg_reader_status(r);

    jpeg_create_decompress(c);
    jpeg_mem_src(c, data, (unsigned long)size);
    jpeg_save_markers(c, JPEG_APP0 + 2, 0xFFFF); /* APP2 carries the ICC profile */
    jpeg_read_header(c, TRUE);
    VQZ_TRY(check_limits(r->name, c->image_width, c->image_height));

    int channels;
    switch (c->jpeg_color_space) {
    case JCS_GRAYSCALE:
        c->out_color_space = JCS_GRAYSCALE;
        channels = 1;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        c->out_color_space = JCS_RGB;
        channels = 3;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        return vqz_fail(VQZ_ERR_UNSUPPORTED, "%s: CMYK/YCCK JPEG is not supported (convert it to RGB first)",
                        r->name);
    default:
        return vqz_fail(VQZ_ERR_UNSUPPORTED, "%s: JPEG with an unknown colour space (%d components) is not supported",
                        r->name, c->num_components);
    }
    vqz_image *img = image_new((int)c->image_width, (int)c->image_height, channels, 8);
    VQZ_FAIL_IF(!img, VQZ_ERR_NOMEM, "%s: out of memory", r->name);
    r->img = img;
    img->source = VQZ_IMAGE_SRC_JPEG;
    img->color_type = channels == 1 ? VQZ_PNG_GREY : VQZ_PNG_RGB;
    img->source_bit_depth = 8;

    if (jpeg_read_icc_profile(c, &r->icc, &r->icc_len) && r->icc && r->icc_len > 0) {
        img->icc_profile = (uint8_t *)malloc(r->icc_len);
        VQZ_FAIL_IF(!img->icc_profile, VQZ_ERR_NOMEM, "%s: out of memory for the ICC profile", r->name);
        memcpy(img->icc_profile, r->icc, r->icc_len);
        img->icc_size = r->icc_len;
        snprintf(img->icc_name, sizeof img->icc_name, "ICC profile");
    }

    jpeg_start_decompress(c);
    if (c->output_components != channels || c->output_width != c->image_width ||
        c->output_height != c->image_height)
        return vqz_fail(VQZ_ERR_INTERNAL, "%s: libjpeg produced %ux%u with %d components, expected %ux%u with %d",
                        r->name, (unsigned)c->output_width, (unsigned)c->output_height, c->output_components,
                        (unsigned)c->image_width, (unsigned)c->image_height, channels);
    VQZ_TRY(image_alloc_samples(img, r->name));
    size_t row_samples = (size_t)c->output_width * (size_t)channels;
    r->row = (uint8_t *)malloc(row_samples);
    VQZ_FAIL_IF(!r->row, VQZ_ERR_NOMEM, "%s: out of memory", r->name);
    while (c->output_scanline < c->output_height) {
        size_t y = c->output_scanline;
        JSAMPROW rows[1] = {r->row};
        if (jpeg_read_scanlines(c, rows, 1) != 1)
            return vqz_fail(VQZ_ERR_TRUNCATED, "%s: truncated JPEG data at row %zu", r->name, y);
        uint16_t *dst = img->samples + y * row_samples;
        for (size_t i = 0; i < row_samples; i++)
            dst[i] = r->row[i];
    }
    jpeg_finish_decompress(c);
    return VQZ_OK;
}

static vqz_status read_jpeg(const uint8_t *data, size_t size, const char *name, vqz_image **out)
{
    /* Big (the libjpeg structs), so on the heap; zeroed so jpeg_destroy is safe whatever happened. */
    jpeg_reader *r = (jpeg_reader *)calloc(1, sizeof *r);
    VQZ_FAIL_IF(!r, VQZ_ERR_NOMEM, "%s: out of memory", name);
    r->name = name;
    vqz_status s = jpeg_decode(r, data, size);
    jpeg_destroy_decompress(&r->cinfo);
    free(r->icc);
    free(r->row);
    vqz_image *img = r->img;
    free(r);
    if (s != VQZ_OK) {
        vqz_image_free(img);
        return s;
    }
    *out = img;
    return VQZ_OK;
}

/* ---------------------------------------------------------------- reading entry points */

vqz_status vqz_image_read_memory_named(const uint8_t *data, size_t size, const char *name, vqz_image **out)
{
    if (!name)
        name = "(memory)";
    VQZ_FAIL_IF(!out, VQZ_ERR_INVALID_ARG, "%s: out is NULL", name);
    *out = NULL;
    VQZ_FAIL_IF(!data && size > 0, VQZ_ERR_INVALID_ARG, "%s: data is NULL", name);
    VQZ_FAIL_IF(size == 0, VQZ_ERR_TRUNCATED, "%s: empty file", name);
    if (size >= sizeof k_png_sig && memcmp(data, k_png_sig, sizeof k_png_sig) == 0)
        return read_png(data, size, name, out);
    if (size >= sizeof k_jpeg_sig && memcmp(data, k_jpeg_sig, sizeof k_jpeg_sig) == 0)
        return read_jpeg(data, size, name, out);
    VQZ_FAIL_IF(size < sizeof k_png_sig && memcmp(data, k_png_sig, size) == 0, VQZ_ERR_TRUNCATED,
                "%s: truncated PNG data (%zu bytes, shorter than the signature)", name, size);
    VQZ_FAIL_IF(size < sizeof k_jpeg_sig && memcmp(data, k_jpeg_sig, size) == 0, VQZ_ERR_TRUNCATED,
                "%s: truncated JPEG data (%zu bytes)", name, size);
    return vqz_fail(VQZ_ERR_FORMAT, "%s: not a PNG or JPEG file", name);
}

vqz_status vqz_image_read_memory(const uint8_t *data, size_t size, vqz_image **out)
{
    return vqz_image_read_memory_named(data, size, NULL, out);
}

vqz_status vqz_image_read_file(const char *path, vqz_image **out)
{
    VQZ_FAIL_IF(!out, VQZ_ERR_INVALID_ARG, "image_read_file: out is NULL");
    *out = NULL;
    VQZ_FAIL_IF(!path, VQZ_ERR_INVALID_ARG, "image_read_file: path is NULL");
    FILE *f = fopen(path, "rb");
    VQZ_FAIL_IF(!f, VQZ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    /* The whole file is read first (it is compressed, so small next to the pixels); growing reads also
     * serve pipes and devices whose size is unknown. */
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = (uint8_t *)malloc(cap);
    vqz_status s = buf ? VQZ_OK : vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory", path);
    while (s == VQZ_OK) {
        if (len == cap) {
            uint8_t *nb = cap <= SIZE_MAX / 2 ? (uint8_t *)realloc(buf, cap * 2) : NULL;
            if (!nb) {
                s = vqz_fail(VQZ_ERR_NOMEM, "%s: out of memory after reading %zu bytes", path, len);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                s = vqz_fail(VQZ_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (s == VQZ_OK)
        s = vqz_image_read_memory_named(buf, len, path, out);
    free(buf);
    return s;
}

/* ---------------------------------------------------------------- planar conversion */

static uint32_t max_of_depth(int bit_depth)
{
    return (1u << bit_depth) - 1u;
}

static int image_is_valid(const vqz_image *img)
{
    return img && img->samples && img->width >= 1 && img->height >= 1 && img->channels >= 1 &&
           img->channels <= 4 && (img->bit_depth == 8 || img->bit_depth == 16);
}

vqz_status vqz_image_to_rgb_planar(const vqz_image *img, float *rgb)
{
    VQZ_FAIL_IF(!image_is_valid(img) || !rgb, VQZ_ERR_INVALID_ARG, "image_to_rgb_planar: invalid image or NULL output");
    size_t np = (size_t)img->width * (size_t)img->height;
    int ch = img->channels;
    int grey = ch <= 2;
    float scale = 2.0f / (float)max_of_depth(img->bit_depth);
    for (size_t i = 0; i < np; i++) {
        const uint16_t *px = img->samples + i * (size_t)ch;
        for (int c = 0; c < 3; c++)
            rgb[(size_t)c * np + i] = (float)px[grey ? 0 : c] * scale - 1.0f;
    }
    return VQZ_OK;
}

/* [-1, 1] → nearest level of [0, max]; values outside are clamped. */
static uint16_t unit_to_level(double v, double max)
{
    if (v < -1.0)
        v = -1.0;
    if (v > 1.0)
        v = 1.0;
    return (uint16_t)floor((v + 1.0) * 0.5 * max + 0.5);
}

vqz_status vqz_image_from_rgb_planar(vqz_image *img, const float *rgb)
{
    VQZ_FAIL_IF(!image_is_valid(img) || !rgb, VQZ_ERR_INVALID_ARG,
                "image_from_rgb_planar: invalid image or NULL input");
    size_t np = (size_t)img->width * (size_t)img->height;
    for (size_t i = 0; i < 3 * np; i++)
        VQZ_FAIL_IF(isnan(rgb[i]), VQZ_ERR_NONFINITE, "image_from_rgb_planar: NaN in plane %zu at pixel (%zu, %zu)",
                    i / np, (i % np) % (size_t)img->width, (i % np) / (size_t)img->width);
    int ch = img->channels;
    double max = (double)max_of_depth(img->bit_depth);
    for (size_t i = 0; i < np; i++) {
        uint16_t *px = img->samples + i * (size_t)ch;
        double r = rgb[i], g = rgb[np + i], b = rgb[2 * np + i];
        if (ch <= 2) {
            px[0] = unit_to_level((r + g + b) / 3.0, max);
        } else {
            px[0] = unit_to_level(r, max);
            px[1] = unit_to_level(g, max);
            px[2] = unit_to_level(b, max);
        }
    }
    return VQZ_OK;
}

/* ---------------------------------------------------------------- alpha */

int vqz_image_has_alpha(const vqz_image *img)
{
    return img && (img->channels == 2 || img->channels == 4);
}

vqz_status vqz_image_get_alpha(const vqz_image *img, uint16_t *plane)
{
    VQZ_FAIL_IF(!image_is_valid(img) || !plane, VQZ_ERR_INVALID_ARG, "image_get_alpha: invalid image or NULL plane");
    VQZ_FAIL_IF(!vqz_image_has_alpha(img), VQZ_ERR_INVALID_ARG,
                "image_get_alpha: the image has no alpha channel (%d channels)", img->channels);
    size_t np = (size_t)img->width * (size_t)img->height;
    int ch = img->channels;
    for (size_t i = 0; i < np; i++)
        plane[i] = img->samples[i * (size_t)ch + (size_t)(ch - 1)];
    return VQZ_OK;
}

vqz_status vqz_image_set_alpha(vqz_image *img, const uint16_t *plane)
{
    VQZ_FAIL_IF(!image_is_valid(img) || !plane, VQZ_ERR_INVALID_ARG, "image_set_alpha: invalid image or NULL plane");
    VQZ_FAIL_IF(!vqz_image_has_alpha(img), VQZ_ERR_INVALID_ARG,
                "image_set_alpha: the image has no alpha channel (%d channels)", img->channels);
    size_t np = (size_t)img->width * (size_t)img->height;
    uint32_t max = max_of_depth(img->bit_depth);
    for (size_t i = 0; i < np; i++)
        VQZ_FAIL_IF(plane[i] > max, VQZ_ERR_INVALID_ARG,
                    "image_set_alpha: value %u at pixel %zu exceeds the %d-bit maximum %u", (unsigned)plane[i], i,
                    img->bit_depth, (unsigned)max);
    int ch = img->channels;
    for (size_t i = 0; i < np; i++)
        img->samples[i * (size_t)ch + (size_t)(ch - 1)] = plane[i];
    return VQZ_OK;
}

/* ---------------------------------------------------------------- description */

void vqz_image_describe(const vqz_image *img, char *buf, size_t n)
{
    if (!buf || n == 0)
        return;
    if (!img) {
        snprintf(buf, n, "(no image)");
        return;
    }
    const char *layout = "?";
    switch (img->color_type) {
    case VQZ_PNG_GREY: layout = "grey"; break;
    case VQZ_PNG_GREY_ALPHA: layout = "grey+alpha"; break;
    case VQZ_PNG_RGB: layout = "RGB"; break;
    case VQZ_PNG_PALETTE: layout = "palette"; break;
    case VQZ_PNG_RGBA: layout = "RGBA"; break;
    }
    int k = snprintf(buf, n, "%s %dx%d %s %d-bit", img->source == VQZ_IMAGE_SRC_JPEG ? "JPEG" : "PNG", img->width,
                     img->height, layout, img->source_bit_depth);
    size_t used = k < 0 ? 0 : (size_t)k;
    if (used < n && img->color_type == VQZ_PNG_PALETTE) {
        if (img->palette_alpha_size > 0)
            k = snprintf(buf + used, n - used, " (%d colours, %d with alpha)", img->palette_size,
                         img->palette_alpha_size);
        else
            k = snprintf(buf + used, n - used, " (%d colours)", img->palette_size);
        used += k < 0 ? 0 : (size_t)k;
    }
    if (used < n && img->has_color_key) {
        k = snprintf(buf + used, n - used, ", colour-key transparency");
        used += k < 0 ? 0 : (size_t)k;
    }
    if (used < n && img->interlaced) {
        k = snprintf(buf + used, n - used, ", interlaced");
        used += k < 0 ? 0 : (size_t)k;
    }
    if (used < n && img->srgb_intent >= 0) {
        k = snprintf(buf + used, n - used, ", sRGB");
        used += k < 0 ? 0 : (size_t)k;
    }
    if (used < n && img->icc_profile)
        snprintf(buf + used, n - used, ", ICC profile");
}

/* ---------------------------------------------------------------- PNG writing */

#define PAL_CACHE_BITS 14

typedef struct {
    const char *name;
    const vqz_image *img;
    uint8_t *buf; /* the encoded PNG */
    size_t len, cap;
    int nomem;
    char msg[256];
    uint8_t *bytes; /* one packed row, or the whole image when interlaced */
    png_bytep *rows;
    /* nearest-palette-entry cache, keyed by RGBA */
    uint32_t cache_key[1 << PAL_CACHE_BITS];
    int16_t cache_idx[1 << PAL_CACHE_BITS];
} png_writer;

static void png_write_error_cb(png_structp png, png_const_charp msg)
{
    png_writer *w = (png_writer *)png_get_error_ptr(png);
    snprintf(w->msg, sizeof w->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

static void png_write_cb(png_structp png, png_bytep data, size_t n)
{
    png_writer *w = (png_writer *)png_get_io_ptr(png);
    if (n > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 1 << 16;
        while (cap - w->len < n) {
            if (cap > SIZE_MAX / 2) {
                w->nomem = 1;
                png_error(png, "output too large");
            }
            cap *= 2;
        }
        uint8_t *nb = (uint8_t *)realloc(w->buf, cap);
        if (!nb) {
            w->nomem = 1;
            png_error(png, "out of memory for the output");
        }
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, data, n);
    w->len += n;
}

static void png_flush_cb(png_structp png)
{
    (void)png;
}

/* Every inconsistency a caller could put in the description is caught here, before libpng is called. */
static vqz_status check_for_png(const vqz_image *img, const char *name)
{
    VQZ_FAIL_IF(!image_is_valid(img), VQZ_ERR_INVALID_ARG, "%s: invalid image", name);
    VQZ_TRY(check_limits(name, (uint64_t)img->width, (uint64_t)img->height));
    int ct = img->color_type, d = img->source_bit_depth;
    int depth_ok = 0;
    switch (ct) {
    case VQZ_PNG_GREY: depth_ok = d == 1 || d == 2 || d == 4 || d == 8 || d == 16; break;
    case VQZ_PNG_PALETTE: depth_ok = d == 1 || d == 2 || d == 4 || d == 8; break;
    case VQZ_PNG_RGB:
    case VQZ_PNG_GREY_ALPHA:
    case VQZ_PNG_RGBA: depth_ok = d == 8 || d == 16; break;
    default:
        return vqz_fail(VQZ_ERR_INVALID_ARG, "%s: invalid PNG colour type %d", name, ct);
    }
    VQZ_FAIL_IF(!depth_ok, VQZ_ERR_INVALID_ARG, "%s: bit depth %d is not allowed for PNG colour type %d", name, d, ct);
    VQZ_FAIL_IF(img->bit_depth != (d == 16 ? 16 : 8), VQZ_ERR_INVALID_ARG,
                "%s: samples are %d-bit but the source was %d-bit", name, img->bit_depth, d);
    int alpha = 0;
    if (ct == VQZ_PNG_PALETTE) {
        VQZ_FAIL_IF(img->palette_size < 1 || img->palette_size > (1 << d), VQZ_ERR_INVALID_ARG,
                    "%s: %d palette entries for a %d-bit palette image", name, img->palette_size, d);
        VQZ_FAIL_IF(img->palette_alpha_size < 0 || img->palette_alpha_size > img->palette_size, VQZ_ERR_INVALID_ARG,
                    "%s: %d palette alpha entries for %d colours", name, img->palette_alpha_size, img->palette_size);
        alpha = img->palette_alpha_size > 0;
    } else if (img->has_color_key) {
        VQZ_FAIL_IF(ct != VQZ_PNG_GREY && ct != VQZ_PNG_RGB, VQZ_ERR_INVALID_ARG,
                    "%s: a colour key needs a grey or RGB image (colour type %d)", name, ct);
        int nk = ct == VQZ_PNG_GREY ? 1 : 3;
        for (int i = 0; i < nk; i++)
            VQZ_FAIL_IF(img->color_key[i] > max_of_depth(d), VQZ_ERR_INVALID_ARG,
                        "%s: colour key %u exceeds the %d-bit range", name, (unsigned)img->color_key[i], d);
        alpha = 1;
    }
    int want = channels_of_color_type(ct) + (alpha && !(ct & PNG_COLOR_MASK_ALPHA) ? 1 : 0);
    VQZ_FAIL_IF(img->channels != want, VQZ_ERR_INVALID_ARG,
                "%s: %d channels do not fit PNG colour type %d%s (expected %d)", name, img->channels, ct,
                alpha ? " with transparency" : "", want);
    uint32_t max = max_of_depth(img->bit_depth);
    size_t n = sample_count(img);
    for (size_t i = 0; i < n; i++)
        VQZ_FAIL_IF(img->samples[i] > max, VQZ_ERR_INVALID_ARG, "%s: sample %zu is %u, above the %d-bit maximum %u",
                    name, i, (unsigned)img->samples[i], img->bit_depth, (unsigned)max);
    return VQZ_OK;
}

static int palette_nearest(png_writer *w, int r, int g, int b, int a)
{
    const vqz_image *img = w->img;
    uint32_t key = (uint32_t)r | (uint32_t)g << 8 | (uint32_t)b << 16 | (uint32_t)a << 24;
    uint32_t slot = (key * 2654435761u) >> (32 - PAL_CACHE_BITS);
    if (w->cache_idx[slot] >= 0 && w->cache_key[slot] == key)
        return w->cache_idx[slot];
    int best = 0;
    long best_d = -1;
    for (int i = 0; i < img->palette_size; i++) {
        long dr = r - img->palette[i][0], dg = g - img->palette[i][1], db = b - img->palette[i][2];
        long da = a - img->palette[i][3];
        long dist = dr * dr + dg * dg + db * db + da * da;
        if (best_d < 0 || dist < best_d) {
            best_d = dist;
            best = i;
            if (dist == 0)
                break;
        }
    }
    w->cache_key[slot] = key;
    w->cache_idx[slot] = (int16_t)best;
    return best;
}

/* A value that must not equal the key moves one level away from it. */
static uint32_t avoid_key(uint32_t v, uint32_t key)
{
    if (v != key)
        return v;
    return key > 0 ? key - 1 : key + 1;
}

/* Row y in the byte layout libpng takes: one byte per sample below 8 bits (png_set_packing packs them),
 * big-endian pairs at 16 bits. */
static void png_fill_row(png_writer *w, int y, uint8_t *out)
{
    const vqz_image *img = w->img;
    int ct = img->color_type, d = img->source_bit_depth, ch = img->channels;
    uint32_t max = max_of_depth(img->bit_depth);
    uint32_t dmax = max_of_depth(d);
    const uint16_t *px = img->samples + (size_t)y * (size_t)img->width * (size_t)ch;
    size_t o = 0;
    for (int x = 0; x < img->width; x++, px += ch) {
        uint32_t v[4];
        int nv = 0;
        if (ct == VQZ_PNG_PALETTE) {
            int a = ch == 4 ? px[3] : 255;
            v[nv++] = (uint32_t)palette_nearest(w, px[0], px[1], px[2], a);
        } else if (ct == VQZ_PNG_GREY || ct == VQZ_PNG_RGB) {
            int nc = ct == VQZ_PNG_GREY ? 1 : 3;
            for (int c = 0; c < nc; c++)
                v[nv++] = d < 8 ? (px[c] * dmax + 127) / 255 : px[c];
            if (img->has_color_key) {
                int transparent = 2u * px[ch - 1] < max;
                if (transparent) {
                    for (int c = 0; c < nc; c++)
                        v[c] = img->color_key[c];
                } else if (nc == 1) {
                    v[0] = avoid_key(v[0], img->color_key[0]);
                } else if (v[0] == img->color_key[0] && v[1] == img->color_key[1] && v[2] == img->color_key[2]) {
                    v[2] = avoid_key(v[2], img->color_key[2]);
                }
            }
        } else {
            for (int c = 0; c < ch; c++)
                v[nv++] = px[c];
        }
        for (int c = 0; c < nv; c++) {
            if (d == 16) {
                out[o++] = (uint8_t)(v[c] >> 8);
                out[o++] = (uint8_t)(v[c] & 0xFF);
            } else {
                out[o++] = (uint8_t)v[c];
            }
        }
    }
}

static size_t png_unpacked_row_bytes(const vqz_image *img)
{
    int ct = img->color_type;
    size_t per = ct == VQZ_PNG_PALETTE ? 1 : (size_t)channels_of_color_type(ct);
    return (size_t)img->width * per * (img->source_bit_depth == 16 ? 2 : 1);
}

static vqz_status png_encode(png_writer *w, png_structp png, png_infop info)
{
    if (setjmp(png_jmpbuf(png))) {
        if (w->nomem)
            return vqz_fail(VQZ_ERR_NOMEM, "%s: %s", w->name, w->msg);
        return vqz_fail(VQZ_ERR_INTERNAL, "%s: PNG encoding failed (libpng: %s)", w->name, w->msg);
    }
    const vqz_image *img = w->img;
    int ct = img->color_type, d = img->source_bit_depth;
    png_set_write_fn(png, w, png_write_cb, png_flush_cb);
    /* Metadata that libpng itself accepted on reading (e.g. an ICC profile it knows to be a slightly wrong
     * sRGB profile) is copied as it is: libpng's checks on it must not fail the write. */
    png_set_option(png, PNG_SKIP_sRGB_CHECK_PROFILE, PNG_OPTION_ON);
    png_set_benign_errors(png, 1);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, d, ct,
                 img->interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (ct == VQZ_PNG_PALETTE) {
        png_color pal[256];
        png_byte alpha[256];
        for (int i = 0; i < img->palette_size; i++) {
            pal[i].red = img->palette[i][0];
            pal[i].green = img->palette[i][1];
            pal[i].blue = img->palette[i][2];
            alpha[i] = img->palette[i][3];
        }
        png_set_PLTE(png, info, pal, img->palette_size);
        if (img->palette_alpha_size > 0)
            png_set_tRNS(png, info, alpha, img->palette_alpha_size, NULL);
    } else if (img->has_color_key) {
        png_color_16 key;
        memset(&key, 0, sizeof key);
        if (ct == VQZ_PNG_GREY) {
            key.gray = img->color_key[0];
        } else {
            key.red = img->color_key[0];
            key.green = img->color_key[1];
            key.blue = img->color_key[2];
        }
        png_set_tRNS(png, info, NULL, 1, &key);
    }
    if (img->srgb_intent >= 0 && img->srgb_intent <= 3)
        png_set_sRGB(png, info, img->srgb_intent);
    else if (img->gamma > 0)
        png_set_gAMA_fixed(png, info, img->gamma);
    if (img->icc_profile && img->icc_size > 0 && img->icc_size <= 0x7fffffff)
        png_set_iCCP(png, info, img->icc_name[0] ? img->icc_name : "ICC profile", PNG_COMPRESSION_TYPE_BASE,
                     img->icc_profile, (png_uint_32)img->icc_size);
    png_write_info(png, info);
    if (d < 8)
        png_set_packing(png);

    size_t rowbytes = png_unpacked_row_bytes(img);
    if (img->interlaced) {
        /* Adam7 visits every row once per pass, so all rows are prepared first. */
        w->bytes = (uint8_t *)malloc(rowbytes * (size_t)img->height);
        w->rows = (png_bytep *)malloc(sizeof(png_bytep) * (size_t)img->height);
        VQZ_FAIL_IF(!w->bytes || !w->rows, VQZ_ERR_NOMEM, "%s: out of memory for %dx%d pixels", w->name, img->width,
                    img->height);
        for (int y = 0; y < img->height; y++) {
            w->rows[y] = w->bytes + (size_t)y * rowbytes;
            png_fill_row(w, y, w->rows[y]);
        }
        png_write_image(png, w->rows);
    } else {
        w->bytes = (uint8_t *)malloc(rowbytes);
        VQZ_FAIL_IF(!w->bytes, VQZ_ERR_NOMEM, "%s: out of memory", w->name);
        for (int y = 0; y < img->height; y++) {
            png_fill_row(w, y, w->bytes);
            png_write_row(png, w->bytes);
        }
    }
    png_write_end(png, NULL);
    return VQZ_OK;
}

static vqz_status encode_png(const vqz_image *img, const char *name, uint8_t **buf, size_t *len)
{
    VQZ_TRY(check_for_png(img, name));
    /* Holds the palette cache, so on the heap. */
    png_writer *w = (png_writer *)calloc(1, sizeof *w);
    VQZ_FAIL_IF(!w, VQZ_ERR_NOMEM, "%s: out of memory", name);
    w->name = name;
    w->img = img;
    for (size_t i = 0; i < (size_t)1 << PAL_CACHE_BITS; i++)
        w->cache_idx[i] = -1;
    vqz_status s;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, w, png_write_error_cb, png_warning_cb);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info)
        s = vqz_fail(VQZ_ERR_NOMEM, "%s: cannot create a PNG encoder", name);
    else
        s = png_encode(w, png, info);
    if (png)
        png_destroy_write_struct(&png, info ? &info : NULL);
    free(w->bytes);
    free(w->rows);
    if (s == VQZ_OK) {
        *buf = w->buf;
        *len = w->len;
    } else {
        free(w->buf);
    }
    free(w);
    return s;
}

vqz_status vqz_image_write_png_memory(const vqz_image *img, uint8_t **buf, size_t *len)
{
    VQZ_FAIL_IF(!buf || !len, VQZ_ERR_INVALID_ARG, "image_write_png_memory: NULL output");
    *buf = NULL;
    *len = 0;
    return encode_png(img, "(memory)", buf, len);
}

vqz_status vqz_image_write_png(const vqz_image *img, const char *path)
{
    VQZ_FAIL_IF(!path, VQZ_ERR_INVALID_ARG, "image_write_png: path is NULL");
    uint8_t *buf = NULL;
    size_t len = 0;
    VQZ_TRY(encode_png(img, path, &buf, &len));
    vqz_status s = vqz_write_file_atomic(path, buf, len);
    free(buf);
    return s;
}
