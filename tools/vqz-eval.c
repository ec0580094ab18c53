/* vqz-eval.c — full-reference quality of a decoded file against its original: PSNR, PSNR-Y and MS-SSIM for
 * images; SI-SDR, SNR, log-mel and multi-resolution STFT distances for audio; as text or one JSON object. */
#include <getopt.h>

#include <cjson/cJSON.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: vqz-eval [--json] REFERENCE TEST\n"
            "Compare a decoded image or sound (TEST) with its original (REFERENCE).\n"
            "Images (PNG, JPEG; same size): PSNR over RGB and of BT.601 luma, MS-SSIM of RGB and luma\n"
            "(single-scale SSIM below 161 px a side). Audio (anything libsndfile reads; same channels): TEST\n"
            "is resampled to REFERENCE's rate and both cut to the shorter; SI-SDR, SNR, log-mel distance\n"
            "(2048/512, 80 bands), DAC's multi-scale mel distance, multi-resolution STFT distance.\n"
            "\n"
            "  -j, --json      print one JSON object instead of one line per metric\n"
            "  -h, --help      this help\n"
            "  -V, --version   library version\n"
            "\n"
            "Exit status: 0 ok, 1 bad input or usage, 2 I/O error, 4 internal error. See vqz-eval(1).\n");
}

/* A failed library call: its detail message (which names the file) on one line, and the exit code. */
static int fail(vqz_status s, const char *file)
{
    const char *d = vqz_last_error();
    if (*d)
        cli_errorf(NULL, "%s", d);
    else
        cli_errorf(file, "%s", vqz_strerror(s));
    return cli_exit_code(s);
}

/* 1 image, 0 audio (anything that is not PNG or JPEG), -1 unreadable (errno set). */
static int sniff_image(const char *path)
{
    if (strcmp(path, "-") == 0)
        return 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    unsigned char b[8];
    size_t n = fread(b, 1, sizeof b, f);
    int err = ferror(f);
    fclose(f);
    if (err) {
        errno = EIO;
        return -1;
    }
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    return (n == 8 && memcmp(b, png, 8) == 0) || (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff);
}

static void print_db(const char *key, double v)
{
    if (isinf(v))
        printf("%-17s %sinf dB%s\n", key, v < 0 ? "-" : "", v > 0 ? " (identical)" : "");
    else
        printf("%-17s %.4f dB\n", key, v);
}

static void print_num(const char *key, double v, const char *note)
{
    if (isnan(v))
        printf("%-17s n/a%s\n", key, note);
    else
        printf("%-17s %.6f\n", key, v);
}

static int emit_json(cJSON *o)
{
    char *t = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!t) {
        cli_errorf(NULL, "internal error: out of memory for the JSON output");
        return CLI_EXIT_INTERNAL;
    }
    printf("%s\n", t); /* NaN and infinity print as null */
    free(t);
    return CLI_EXIT_OK;
}

static int report_image(const char *ref, const char *test, const vqz_image_metrics *m, int json)
{
    const char *ms = m->msssim_scales == 1 ? "ssim" : "ms_ssim", *ms_y = m->msssim_scales == 1 ? "ssim_y" : "ms_ssim_y";
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", "image");
        cJSON_AddStringToObject(o, "reference", ref);
        cJSON_AddStringToObject(o, "test", test);
        cJSON_AddNumberToObject(o, "width", m->width);
        cJSON_AddNumberToObject(o, "height", m->height);
        cJSON_AddNumberToObject(o, "channels", m->channels);
        cJSON_AddNumberToObject(o, "bit_depth_reference", m->bit_depth_ref);
        cJSON_AddNumberToObject(o, "bit_depth_test", m->bit_depth_test);
        cJSON_AddNumberToObject(o, "mse", m->mse);
        cJSON_AddNumberToObject(o, "psnr", m->psnr);
        cJSON_AddNumberToObject(o, "psnr_y", m->psnr_y);
        cJSON_AddNumberToObject(o, ms, m->msssim);
        cJSON_AddNumberToObject(o, ms_y, m->msssim_y);
        cJSON_AddNumberToObject(o, "ssim_scales", m->msssim_scales);
        return emit_json(o);
    }
    printf("%-17s %s\n%-17s %s\n", "reference", ref, "test", test);
    printf("%-17s %ux%u, %s, %d-bit vs %d-bit\n", "size", (unsigned)m->width, (unsigned)m->height,
           m->channels == 1 ? "grey" : "RGB", m->bit_depth_ref, m->bit_depth_test);
    print_db(m->channels == 1 ? "psnr (grey)" : "psnr (RGB)", m->psnr);
    print_db("psnr_y (BT.601)", m->psnr_y);
    const char *tiny = " (a side is below 11 px)";
    print_num(m->msssim_scales == 1 ? "ssim" : "ms_ssim", m->msssim, tiny);
    print_num(m->msssim_scales == 1 ? "ssim_y" : "ms_ssim_y", m->msssim_y, tiny);
    if (m->msssim_scales == 1)
        printf("%-17s single-scale SSIM: %ux%u is below 161 px a side, too small for MS-SSIM\n", "note",
               (unsigned)m->width, (unsigned)m->height);
    return CLI_EXIT_OK;
}

static int report_audio(const char *ref, const char *test, const vqz_audio_metrics *m, int json)
{
    if (m->length_mismatch) {
        int64_t longer = m->frames_ref > m->frames_test ? m->frames_ref : m->frames_test;
        fflush(stdout);
        cli_errorf(NULL, "warning: %s has %lld frames at %d Hz, the reference %s %lld (%.1f%% apart); compared the "
                   "first %lld", test, (long long)m->frames_test, m->sample_rate, ref, (long long)m->frames_ref,
                   100.0 * (double)(longer - m->frames) / (double)longer, (long long)m->frames);
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", "audio");
        cJSON_AddStringToObject(o, "reference", ref);
        cJSON_AddStringToObject(o, "test", test);
        cJSON_AddNumberToObject(o, "sample_rate", m->sample_rate);
        cJSON_AddNumberToObject(o, "test_sample_rate", m->test_sample_rate);
        cJSON_AddNumberToObject(o, "channels", m->channels);
        cJSON_AddNumberToObject(o, "frames", (double)m->frames);
        cJSON_AddNumberToObject(o, "frames_reference", (double)m->frames_ref);
        cJSON_AddNumberToObject(o, "frames_test", (double)m->frames_test);
        cJSON_AddBoolToObject(o, "length_mismatch", m->length_mismatch);
        cJSON_AddNumberToObject(o, "si_sdr", m->si_sdr);
        cJSON_AddNumberToObject(o, "snr", m->snr);
        cJSON_AddNumberToObject(o, "mel_distance", m->mel_distance);
        cJSON_AddNumberToObject(o, "mel_distance_dac", m->mel_distance_dac);
        cJSON_AddNumberToObject(o, "stft_distance", m->stft_distance);
        return emit_json(o);
    }
    printf("%-17s %s\n%-17s %s\n", "reference", ref, "test", test);
    if (m->test_sample_rate != m->sample_rate)
        printf("%-17s %d Hz (test resampled from %d Hz)\n", "sample_rate", m->sample_rate, m->test_sample_rate);
    else
        printf("%-17s %d Hz\n", "sample_rate", m->sample_rate);
    printf("%-17s %d\n", "channels", m->channels);
    printf("%-17s %lld (reference %lld, test %lld%s)\n", "frames", (long long)m->frames, (long long)m->frames_ref,
           (long long)m->frames_test, m->length_mismatch ? ": lengths differ by more than 1%" : "");
    print_db("si_sdr", m->si_sdr);
    print_db("snr", m->snr);
    print_num("mel_distance", m->mel_distance, " (shorter than 1025 frames)");
    print_num("mel_distance_dac", m->mel_distance_dac, " (shorter than 1025 frames)");
    print_num("stft_distance", m->stft_distance, " (shorter than 2048 frames)");
    return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
    cli_prog = "vqz-eval";
    static const struct option longs[] = {{"json", no_argument, NULL, 'j'},
                                          {"help", no_argument, NULL, 'h'},
                                          {"version", no_argument, NULL, 'V'},
                                          {NULL, 0, NULL, 0}};
    int json = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":jhV", longs, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        case 'V': printf("vqz-eval %s\n", vqz_version()); return CLI_EXIT_OK;
        default: cli_errorf(NULL, "unknown option %s (see --help)", argv[optind - 1]); return CLI_EXIT_INPUT;
        }
    }
    if (argc - optind != 2) {
        cli_errorf(NULL, "expected two files, REFERENCE and TEST, got %d (see --help)", argc - optind);
        return CLI_EXIT_INPUT;
    }
    const char *ref = argv[optind], *test = argv[optind + 1];
    int is_image = sniff_image(ref);
    if (is_image < 0) {
        cli_errorf(ref, "cannot open: %s", strerror(errno));
        return CLI_EXIT_IO;
    }
    int rc;
    if (is_image) {
        vqz_image_metrics m;
        vqz_status s = vqz_eval_images(ref, test, &m);
        rc = s == VQZ_OK ? report_image(ref, test, &m, json) : fail(s, ref);
    } else {
        vqz_audio_metrics m;
        vqz_status s = vqz_eval_audio(ref, test, &m);
        rc = s == VQZ_OK ? report_audio(ref, test, &m, json) : fail(s, ref);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_errorf(NULL, "standard output: %s", strerror(errno));
        return CLI_EXIT_IO;
    }
    return rc;
}
