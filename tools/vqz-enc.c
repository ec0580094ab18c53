/* vqz-enc.c — the encoder command: PNG / JPEG images and audio files (or audio on stdin) to .vqz files,
 * several inputs at once, with gzip-like naming, no clobbering, and exit codes from cli.h. */
#include <getopt.h>

#include "cli.h"

typedef struct {
    vqz_options o;
    const char *model_arg; /* -m */
    char model_path[PATH_MAX];
    const char *output;    /* -o */
    int force, remove_inputs, verbose, quiet;
} enc_args;

enum { KIND_UNKNOWN = 0 }; /* besides VQZ_KIND_IMAGE and VQZ_KIND_AUDIO */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: vqz-enc [OPTIONS] FILE...\n"
            "Compress images (PNG, JPEG) and audio (WAV, FLAC, OGG, ... or '-' for stdin) into .vqz files.\n"
            "Each FILE becomes FILE.vqz (its extension replaced); inputs are kept.\n"
            "\n"
            "  -o OUT          write to OUT (one input only; '-' = standard output)\n"
            "  -f, --force     overwrite existing outputs (and write to a terminal)\n"
            "  -k, --keep      keep the inputs (the default)\n"
            "      --rm        delete each input once its output is complete\n"
            "  -m MODEL        model bundle: a .safetensors path or a model name on the search path\n"
            "                  (default: vqz-image-v1 for images, vqz-audio-v1 for audio)\n"
            "  -q, --levels N  RVQ levels to write (1..L; default all)\n"
            "      --bpp X     images: the most levels whose file stays within X bits per pixel\n"
            "  -b KBPS         audio: the most levels whose file stays within KBPS kbit/s\n"
            "      --tile N    images: tile side in pixels (default 256; does not change the file)\n"
            "      --zstd N    zstd level 1..22 (default: the format's)\n"
            "      --format V  .vqz version to write: 1.1 (default: modelled frames where they are smaller)\n"
            "                  or 1.0 (zstd frames only, for decoders older than 1.1)\n"
            "      --device D  cpu, cuda or auto (default auto)\n"
            "      --threads N CPU threads (default $VQZ_THREADS, else every core)\n"
            "  -v, --verbose   model, device, timings and sizes\n"
            "  -Q, --quiet     no summary lines, only errors\n"
            "  -h, --help      this help\n"
            "  -V, --version   library version and whether CUDA is built in\n"
            "\n"
            "Models are searched in $VQZ_MODEL_PATH, the installed share folder, beside the program and in\n"
            "./samples/models. Exit status: 0 ok, 1 bad input or usage, 2 I/O error, 3 model not found or\n"
            "wrong model, 4 internal error. See vqz-enc(1).\n");
}

/* What the first bytes say: an image the library reads, audio in a container libsndfile knows, or
 * unknown (still handed to libsndfile when an audio model is at hand). -1 with errno when unreadable. */
static int input_kind(const char *path)
{
    unsigned char b[12] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t n = fread(b, 1, sizeof b, f);
    int err = ferror(f);
    fclose(f);
    if (err) {
        errno = EIO;
        return -1;
    }
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    if ((n >= 8 && memcmp(b, png, 8) == 0) || (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff))
        return VQZ_KIND_IMAGE;
    static const char *const audio[] = {"RIFF", "RIFX", "RF64", "BW64", "riff", "FORM", "fLaC", "OggS",
                                        "ID3",  ".snd", "dns.", "caff", "Crea", "NIST", "MATL", "wvpk"};
    for (size_t i = 0; i < sizeof audio / sizeof audio[0]; i++)
        if (n >= strlen(audio[i]) && memcmp(b, audio[i], strlen(audio[i])) == 0)
            return VQZ_KIND_AUDIO;
    if (n >= 2 && b[0] == 0xff && (b[1] & 0xe0) == 0xe0) /* an MPEG audio frame without an ID3 tag */
        return VQZ_KIND_AUDIO;
    return KIND_UNKNOWN;
}

/* Outputs written by this run, so that a.png and a.wav never both become a.vqz. */
typedef struct {
    int n;
    char **name;
} written_list;

static int written_before(const written_list *w, const char *out)
{
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->name[i], out) == 0 || cli_same_file(w->name[i], out))
            return 1;
    return 0;
}

static void remember(written_list *w, const char *out)
{
    char **grown = realloc(w->name, (size_t)(w->n + 1) * sizeof *grown);
    if (!grown)
        return; /* only a safety check is lost */
    w->name = grown;
    w->name[w->n] = strdup(out);
    if (w->name[w->n])
        w->n++;
}

/* Encodes one input; returns its exit code. */
static int encode_one(enc_args *a, cli_models *models, written_list *written, const char *in)
{
    int from_stdin = strcmp(in, "-") == 0;
    int kind = VQZ_KIND_AUDIO;
    if (!from_stdin) {
        struct stat st;
        if (stat(in, &st) == 0 && S_ISDIR(st.st_mode)) {
            cli_errorf(in, "is a directory; skipped");
            return CLI_EXIT_INPUT;
        }
        kind = input_kind(in);
        if (kind < 0) {
            cli_errorf(in, "cannot open: %s", strerror(errno));
            return CLI_EXIT_IO;
        }
    } else if (isatty(STDIN_FILENO) && !a->force) {
        cli_errorf("-", "refusing to read audio from a terminal (use -f to insist)");
        return CLI_EXIT_INPUT;
    }

    char *owned = a->output ? NULL : cli_replace_extension(in, ".vqz");
    const char *out = a->output ? a->output : owned;
    if (!out) {
        cli_errorf(in, "out of memory");
        return CLI_EXIT_INTERNAL;
    }
    int rc = CLI_EXIT_OK;
    int to_stdout = strcmp(out, "-") == 0;
    if (to_stdout) {
        if (isatty(STDOUT_FILENO) && !a->force) {
            cli_errorf(in, "refusing to write compressed data to a terminal (redirect it, or use -f)");
            rc = CLI_EXIT_INPUT;
        }
    } else if (!from_stdin && (strcmp(in, out) == 0 || cli_same_file(in, out))) {
        cli_errorf(in, "the output %s would be the input itself; skipped", out);
        rc = CLI_EXIT_INPUT;
    } else if (written_before(written, out)) {
        cli_errorf(out, "already written by this run from another input; not overwritten");
        rc = CLI_EXIT_INPUT;
    } else if (cli_exists(out) && !a->force) {
        cli_errorf(out, "already exists; not overwritten (use -f to overwrite)");
        rc = CLI_EXIT_INPUT;
    }

    /* the model: -m, else the default for the input's kind */
    char located[PATH_MAX];
    const char *model_path = a->model_arg ? a->model_path : NULL;
    if (rc == CLI_EXIT_OK && !model_path) {
        const char *name = vqz_default_model_name(kind == VQZ_KIND_IMAGE ? VQZ_KIND_IMAGE : VQZ_KIND_AUDIO);
        vqz_status s = vqz_model_locate(name, NULL, located, sizeof located);
        if (s == VQZ_OK)
            model_path = located;
        else if (kind == KIND_UNKNOWN)
            /* no audio model to let libsndfile try it: say what the file is not */
            cli_errorf(in, "unsupported input: not a PNG or JPEG image nor a known audio format"), rc = CLI_EXIT_INPUT;
        else
            rc = cli_fail(in, s, "");
    }
    vqz_model *m = NULL;
    if (rc == CLI_EXIT_OK) {
        vqz_status s = cli_models_get(models, model_path, a->verbose, &m);
        if (s != VQZ_OK)
            rc = cli_fail(in, s, NULL);
    }
    if (rc == CLI_EXIT_OK && kind == KIND_UNKNOWN) {
        vqz_model_info info;
        if (vqz_model_describe(m, &info) == VQZ_OK && info.kind != VQZ_KIND_AUDIO) {
            cli_errorf(in, "unsupported input: not a PNG or JPEG image nor a known audio format");
            rc = CLI_EXIT_INPUT;
        }
    }

    if (rc == CLI_EXIT_OK) {
        vqz_report rep;
        memset(&rep, 0, sizeof rep);
        cli_progress(a->quiet, "encoding", in);
        vqz_status s = vqz_encode_file(m, &a->o, in, out, &rep);
        if (s == VQZ_ERR_CANCELLED)
            cli_die_if_signalled();
        if (s != VQZ_OK) {
            rc = cli_fail(in, s, NULL);
        } else {
            cli_progress_clear();
            if (!to_stdout)
                remember(written, out);
            if (!a->quiet) {
                fprintf(stderr, "%s -> %s: %llu bytes, ", from_stdin ? "(stdin)" : in, to_stdout ? "(stdout)" : out,
                        (unsigned long long)rep.out_bytes);
                if (rep.kind == VQZ_KIND_IMAGE)
                    fprintf(stderr, "%.3f bpp", rep.bpp);
                else
                    fprintf(stderr, "%.2f kbps", rep.kbps);
                fprintf(stderr, ", %d level%s, %.2f s\n", rep.levels, rep.levels == 1 ? "" : "s", rep.seconds);
            }
            if (a->verbose) {
                if (rep.kind == VQZ_KIND_IMAGE)
                    fprintf(stderr, "%s:   %ux%u, %d channel%s, %.2f Mpixel/s", cli_prog, rep.width, rep.height,
                            rep.channels, rep.channels == 1 ? "" : "s",
                            rep.seconds > 0 ? (double)rep.width * rep.height / rep.seconds / 1e6 : 0.0);
                else
                    fprintf(stderr, "%s:   %.2f s of audio, %d channel%s at %d Hz, %.1fx real time", cli_prog,
                            rep.sample_rate ? (double)rep.frames / rep.sample_rate : 0.0, rep.channels,
                            rep.channels == 1 ? "" : "s", rep.sample_rate,
                            rep.seconds > 0 && rep.sample_rate ? (double)rep.frames / rep.sample_rate / rep.seconds
                                                               : 0.0);
                if (rep.in_bytes > 0 && rep.out_bytes > 0)
                    fprintf(stderr, ", input %llu bytes (%.1f:1)", (unsigned long long)rep.in_bytes,
                            (double)rep.in_bytes / (double)rep.out_bytes);
                fputc('\n', stderr);
            }
            if (a->remove_inputs && !from_stdin && unlink(in) != 0) {
                cli_errorf(in, "cannot remove the input: %s", strerror(errno));
                rc = CLI_EXIT_IO;
            }
        }
    }
    free(owned);
    return rc;
}

int main(int argc, char **argv)
{
    cli_prog = "vqz-enc";
    enc_args a;
    memset(&a, 0, sizeof a);
    vqz_options_init(&a.o);
    enum { OPT_BPP = 256, OPT_TILE, OPT_ZSTD, OPT_FORMAT, OPT_DEVICE, OPT_THREADS, OPT_RM };
    static const struct option longs[] = {
        {"force", no_argument, NULL, 'f'},       {"keep", no_argument, NULL, 'k'},
        {"rm", no_argument, NULL, OPT_RM},       {"levels", required_argument, NULL, 'q'},
        {"bpp", required_argument, NULL, OPT_BPP}, {"kbps", required_argument, NULL, 'b'},
        {"tile", required_argument, NULL, OPT_TILE}, {"zstd", required_argument, NULL, OPT_ZSTD},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"device", required_argument, NULL, OPT_DEVICE}, {"threads", required_argument, NULL, OPT_THREADS},
        {"model", required_argument, NULL, 'm'}, {"output", required_argument, NULL, 'o'},
        {"verbose", no_argument, NULL, 'v'},     {"quiet", no_argument, NULL, 'Q'},
        {"help", no_argument, NULL, 'h'},        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:fkm:q:b:vQhV", longs, NULL)) != -1) {
        int ok = 1;
        switch (c) {
        case 'o': a.output = optarg; break;
        case 'f': a.force = 1; break;
        case 'k': a.remove_inputs = 0; break;
        case OPT_RM: a.remove_inputs = 1; break;
        case 'm': a.model_arg = optarg; break;
        case 'q': ok = cli_parse_int("-q", optarg, 1, 4096, &a.o.levels); break;
        case OPT_BPP: ok = cli_parse_positive("--bpp", optarg, 1024, &a.o.bpp); break;
        case 'b': ok = cli_parse_positive("-b", optarg, 1e6, &a.o.kbps); break;
        case OPT_TILE: ok = cli_parse_int("--tile", optarg, 1, 1 << 20, &a.o.tile); break;
        case OPT_ZSTD: ok = cli_parse_int("--zstd", optarg, 1, 22, &a.o.zstd_level); break;
        case OPT_FORMAT:
            if (strcmp(optarg, "1.0") == 0 || strcmp(optarg, "1.1") == 0)
                a.o.zstd_only = strcmp(optarg, "1.0") == 0;
            else
                ok = 0, cli_errorf(NULL, "--format takes 1.0 or 1.1, not \"%s\"", optarg);
            break;
        case OPT_DEVICE: ok = cli_parse_device(optarg, &a.o.device); break;
        case OPT_THREADS: ok = cli_parse_int("--threads", optarg, 1, 4096, &a.o.threads); break;
        case 'v': a.verbose = 1; break;
        case 'Q': a.quiet = 1; break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        case 'V': printf("vqz-enc %s\n", vqz_version()); return CLI_EXIT_OK;
        case ':': cli_errorf(NULL, "option %s needs a value (see --help)", argv[optind - 1]); return CLI_EXIT_INPUT;
        default: cli_errorf(NULL, "unknown option %s (see --help)", argv[optind - 1]); return CLI_EXIT_INPUT;
        }
        if (!ok)
            return CLI_EXIT_INPUT;
    }
    int n_in = argc - optind;
    if (n_in == 0) {
        cli_errorf(NULL, "no input files (see --help)");
        return CLI_EXIT_INPUT;
    }
    if (a.output && n_in > 1) {
        cli_errorf(NULL, "-o names one output but %d inputs were given", n_in);
        return CLI_EXIT_INPUT;
    }
    for (int i = optind; i < argc; i++)
        if (strcmp(argv[i], "-") == 0 && !a.output) {
            cli_errorf("-", "standard input needs -o (a file name, or - for standard output)");
            return CLI_EXIT_INPUT;
        }
    if (a.quiet)
        a.verbose = 0;
    if (a.model_arg) {
        int rc = cli_model_path(a.model_arg, a.model_path, sizeof a.model_path);
        if (rc != CLI_EXIT_OK)
            return rc;
    }
    if (a.verbose) {
        int threads = a.o.threads > 0 ? a.o.threads : vqz_get_threads();
        fprintf(stderr, "%s: vqz %s, device %s, %d thread%s\n", cli_prog, vqz_version(), cli_device_name(a.o.device),
                threads, threads == 1 ? "" : "s");
    }
    cli_catch_signals();
    a.o.cancel = &cli_cancel_flag;

    cli_models models;
    memset(&models, 0, sizeof models);
    written_list written = {0, NULL};
    int first = CLI_EXIT_OK;
    for (int i = optind; i < argc && !cli_signal; i++) {
        int rc = encode_one(&a, &models, &written, argv[i]);
        if (rc != CLI_EXIT_OK && first == CLI_EXIT_OK)
            first = rc;
    }
    cli_models_free(&models);
    for (int i = 0; i < written.n; i++)
        free(written.name[i]);
    free(written.name);
    cli_die_if_signalled();
    return first;
}
