/* vqz-dec.c — the decoder command: .vqz files back to PNG (images) or WAV / FLAC (audio), the model
 * found from each file's header, several inputs at once, no clobbering, exit codes from cli.h. */
#include <ctype.h>
#include <getopt.h>

#include "cli.h"

typedef struct {
    vqz_options o;
    const char *model_arg; /* -m */
    char model_path[PATH_MAX];
    const char *output;    /* -o */
    int force, remove_inputs, verbose, quiet;
} dec_args;

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: vqz-dec [OPTIONS] FILE.vqz...\n"
            "Decompress .vqz files: images to FILE.png, audio to FILE.wav (or FLAC with -o x.flac).\n"
            "The model is the one named in each file's header, found by its SHA-256; inputs are kept.\n"
            "\n"
            "  -o OUT          write to OUT (one input only; '-' = standard output: PNG, or a WAV stream)\n"
            "  -f, --force     overwrite existing outputs (and write to a terminal)\n"
            "  -k, --keep      keep the inputs (the default)\n"
            "      --rm        delete each input once its output is complete\n"
            "  -m MODEL        use this model (a .safetensors path or a name) instead of the header's;\n"
            "                  it must be the model the file was made with\n"
            "      --levels K  decode only the first K RVQ levels (lower quality, same size)\n"
            "      --rate HZ   audio: output sample rate (default: the original rate)\n"
            "      --device D  cpu, cuda or auto (default auto)\n"
            "      --threads N CPU threads (default $VQZ_THREADS, else every core)\n"
            "  -v, --verbose   model, device, timings and sizes\n"
            "  -Q, --quiet     no summary lines, only errors\n"
            "  -h, --help      this help\n"
            "  -V, --version   library version and whether CUDA is built in\n"
            "\n"
            "Models are searched in $VQZ_MODEL_PATH, the installed share folder, beside the program and in\n"
            "./samples/models. Exit status: 0 ok, 1 bad input or usage, 2 I/O error, 3 model not found or\n"
            "wrong model, 4 internal error. See vqz-dec(1).\n");
}

static int has_extension(const char *path, const char *ext)
{
    const char *e = cli_extension(path);
    if (strlen(e) != strlen(ext))
        return 0;
    for (; *e; e++, ext++)
        if (tolower((unsigned char)*e) != *ext)
            return 0;
    return 1;
}

/* Decodes one input; returns its exit code. */
static int decode_one(dec_args *a, cli_models *models, const char *in)
{
    if (strcmp(in, "-") == 0) {
        cli_errorf("-", "decoding from standard input is not supported; name the .vqz file");
        return CLI_EXIT_INPUT;
    }
    vqz_file_info info;
    vqz_status s = vqz_file_probe(in, &info);
    if (s != VQZ_OK)
        return cli_fail(in, s, NULL);
    int image = info.kind == VQZ_KIND_IMAGE;

    char *owned = NULL;
    const char *out = a->output;
    if (!out) {
        if (!has_extension(in, ".vqz")) {
            cli_errorf(in, "unknown suffix (.vqz expected): name the output with -o");
            return CLI_EXIT_INPUT;
        }
        owned = cli_replace_extension(in, image ? ".png" : ".wav");
        if (!owned) {
            cli_errorf(in, "out of memory");
            return CLI_EXIT_INTERNAL;
        }
        out = owned;
    }
    int rc = CLI_EXIT_OK;
    int to_stdout = strcmp(out, "-") == 0;
    if (to_stdout) {
        if (isatty(STDOUT_FILENO) && !a->force) {
            cli_errorf(in, "refusing to write %s to a terminal (redirect it, or use -f)", image ? "a PNG" : "WAV data");
            rc = CLI_EXIT_INPUT;
        }
    } else if (image && !has_extension(out, ".png")) {
        cli_errorf(out, "images decode to PNG: name the output .png");
        rc = CLI_EXIT_INPUT;
    } else if (!image && !has_extension(out, ".wav") && !has_extension(out, ".flac")) {
        cli_errorf(out, "audio decodes to WAV or FLAC: name the output .wav or .flac");
        rc = CLI_EXIT_INPUT;
    } else if (strcmp(in, out) == 0 || cli_same_file(in, out)) {
        cli_errorf(in, "the output %s would be the input itself; skipped", out);
        rc = CLI_EXIT_INPUT;
    } else if (cli_exists(out) && !a->force) {
        cli_errorf(out, "already exists; not overwritten (use -f to overwrite)");
        rc = CLI_EXIT_INPUT;
    }

    /* the model: -m (the library checks it is the file's), else the header's name and hash */
    char located[PATH_MAX];
    const char *model_path = a->model_arg ? a->model_path : NULL;
    if (rc == CLI_EXIT_OK && !model_path) {
        s = vqz_model_locate(info.model_name, info.model_sha256, located, sizeof located);
        if (s == VQZ_OK)
            model_path = located;
        else
            rc = cli_fail(in, s, "");
    }
    vqz_model *m = NULL;
    if (rc == CLI_EXIT_OK) {
        s = cli_models_get(models, model_path, a->verbose, &m);
        if (s != VQZ_OK)
            rc = cli_fail(in, s, NULL);
    }

    if (rc == CLI_EXIT_OK) {
        vqz_report rep;
        memset(&rep, 0, sizeof rep);
        cli_progress(a->quiet, "decoding", in);
        s = vqz_decode_file(m, &a->o, in, out, &rep);
        if (s == VQZ_ERR_CANCELLED)
            cli_die_if_signalled();
        if (s != VQZ_OK) {
            rc = cli_fail(in, s, NULL);
        } else {
            cli_progress_clear();
            if (!a->quiet) {
                fprintf(stderr, "%s -> %s: ", in, to_stdout ? "(stdout)" : out);
                if (image)
                    fprintf(stderr, "%ux%u, %d channel%s", rep.width, rep.height, rep.channels,
                            rep.channels == 1 ? "" : "s");
                else
                    fprintf(stderr, "%.2f s, %d channel%s at %d Hz",
                            rep.sample_rate ? (double)rep.frames / rep.sample_rate : 0.0, rep.channels,
                            rep.channels == 1 ? "" : "s", rep.sample_rate);
                fprintf(stderr, ", %d of %d levels, %.2f s\n", rep.levels, info.levels, rep.seconds);
            }
            if (a->verbose) {
                long long out_bytes = to_stdout ? -1 : cli_file_size(out);
                fprintf(stderr, "%s:   %llu bytes in", cli_prog, (unsigned long long)rep.in_bytes);
                if (image)
                    fprintf(stderr, " (%.3f bpp), %.2f Mpixel/s", rep.bpp,
                            rep.seconds > 0 ? (double)rep.width * rep.height / rep.seconds / 1e6 : 0.0);
                else
                    fprintf(stderr, " (%.2f kbps), %.1fx real time", rep.kbps,
                            rep.seconds > 0 && rep.sample_rate ? (double)rep.frames / rep.sample_rate / rep.seconds
                                                               : 0.0);
                if (out_bytes >= 0)
                    fprintf(stderr, ", %lld bytes out", out_bytes);
                if (info.levels_available < info.levels)
                    fprintf(stderr, ", file cut after level %d", info.levels_available);
                fputc('\n', stderr);
            }
            if (a->remove_inputs && unlink(in) != 0) {
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
    cli_prog = "vqz-dec";
    dec_args a;
    memset(&a, 0, sizeof a);
    vqz_options_init(&a.o);
    enum { OPT_LEVELS = 256, OPT_RATE, OPT_DEVICE, OPT_THREADS, OPT_RM };
    static const struct option longs[] = {
        {"force", no_argument, NULL, 'f'},         {"keep", no_argument, NULL, 'k'},
        {"rm", no_argument, NULL, OPT_RM},         {"levels", required_argument, NULL, OPT_LEVELS},
        {"rate", required_argument, NULL, OPT_RATE}, {"device", required_argument, NULL, OPT_DEVICE},
        {"threads", required_argument, NULL, OPT_THREADS}, {"model", required_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'},  {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'Q'},         {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},       {NULL, 0, NULL, 0}};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:fkm:vQhV", longs, NULL)) != -1) {
        int ok = 1;
        switch (c) {
        case 'o': a.output = optarg; break;
        case 'f': a.force = 1; break;
        case 'k': a.remove_inputs = 0; break;
        case OPT_RM: a.remove_inputs = 1; break;
        case 'm': a.model_arg = optarg; break;
        case OPT_LEVELS: ok = cli_parse_int("--levels", optarg, 1, 4096, &a.o.levels); break;
        case OPT_RATE: ok = cli_parse_int("--rate", optarg, 1000, 1000000, &a.o.output_rate); break;
        case OPT_DEVICE: ok = cli_parse_device(optarg, &a.o.device); break;
        case OPT_THREADS: ok = cli_parse_int("--threads", optarg, 1, 4096, &a.o.threads); break;
        case 'v': a.verbose = 1; break;
        case 'Q': a.quiet = 1; break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        case 'V': printf("vqz-dec %s\n", vqz_version()); return CLI_EXIT_OK;
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
    int first = CLI_EXIT_OK;
    for (int i = optind; i < argc && !cli_signal; i++) {
        int rc = decode_one(&a, &models, argv[i]);
        if (rc != CLI_EXIT_OK && first == CLI_EXIT_OK)
            first = rc;
    }
    cli_models_free(&models);
    cli_die_if_signalled();
    return first;
}
