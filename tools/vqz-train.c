/* vqz-train.c — train or adapt a vqz model on folders of images or audio (vqz_train), and render a training
 * log as curves (vqz_train_plot). Progress goes to stderr; Ctrl-C checkpoints and exits. */
#include <getopt.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: vqz-train image|audio --data DIR [--data DIR...] --out MODEL.safetensors [options]\n"
            "       vqz-train plot LOG.csv [-o OUT.png] [--columns NAME,NAME...]\n"
            "Train a vqz model on your own images or sounds (every format vqz-enc reads, folders searched\n"
            "recursively), resume a run, or adapt a shipped model to a new domain.\n"
            "\n"
            "  -d, --data DIR         training folder (repeatable; positional folders are taken too)\n"
            "  -o, --out FILE         the model bundle to write (checkpoint: FILE.ckpt)\n"
            "      --val DIR          validation folder, never trained on (repeatable)\n"
            "  -c, --config NAME      small (default), base, a preset such as image-base, or a JSON file\n"
            "      --levels L         RVQ levels (overrides the config)\n"
            "      --codebook-size K  codewords per level (overrides the config)\n"
            "      --steps N          total steps of the run (default 20000; with --resume: extend to N)\n"
            "      --batch N          crops per step (default 16)\n"
            "      --crop X           crop side in pixels (images, default 128) or clip seconds (audio, default 1)\n"
            "      --lr X             peak learning rate (default 0.001), warm-up then cosine to a tenth\n"
            "      --msssim X         images: add X * (1 - MS-SSIM) to the MSE loss (default 0)\n"
            "      --stft X           audio: weight of the multi-resolution STFT loss next to L1 (default 1)\n"
            "      --dropout P        probability of a random number of levels per step (default 0.5)\n"
            "      --gan-from N       audio: add the adversarial stage (STFT discriminator) from step N\n"
            "      --gan-weight X     weight of its adversarial term (default 1)\n"
            "      --feat-weight X    weight of its feature-matching term (default 2)\n"
            "      --device D         cpu, cuda or auto (default auto)\n"
            "  -t, --threads N        threads (default: all cores)\n"
            "      --seed N           random seed (default 1); same seed and threads give the same model\n"
            "      --resume CKPT      continue the run saved in CKPT (its settings are kept); without --data,\n"
            "                         or with the run complete, just write its model (e.g. with --store f16)\n"
            "      --init MODEL       start from MODEL's weights (fine-tuning on new data)\n"
            "      --codebook-only    with --init: keep the encoder and decoder, fit new codebooks\n"
            "      --decoder-steps N  after the codebook fit's --steps, fine-tune the decoder alone on the new\n"
            "                         codebooks for N steps (default 0)\n"
            "      --prior-only       with --init: change no weight; count the codewords the model chooses on\n"
            "                         the data and write it with that entropy-coding prior\n"
            "      --name NAME        model name stored in the bundle (default: the output's file name)\n"
            "      --store T          the bundle's tensors as f32 (default), f16 or bf16 (half the size)\n"
            "      --log FILE.csv     append one row per report to a CSV log\n"
            "      --log-every N      steps between progress reports and log rows (default 10)\n"
            "      --val-every N      steps between validations (default 500)\n"
            "      --ckpt-every N     steps between checkpoints (default 500; also every 10 minutes)\n"
            "      --cache-mb N       memory for decoded training data (default 2048)\n"
            "  -q, --quiet            report only errors\n"
            "  -h, --help             this help\n"
            "  -V, --version          library version\n"
            "\n"
            "Exit status: 0 ok, 1 bad input or usage, 2 I/O error, 3 model error, 4 internal error;\n"
            "an interrupted run writes its checkpoint, then dies of the signal. See vqz-train(1).\n");
}

typedef struct {
    int quiet;
    int tty;
    double last_line;
} progress_state;

static void fmt_time(double s, char *buf, size_t cap)
{
    if (!(s >= 0) || s > 1e8)
        snprintf(buf, cap, "?");
    else if (s >= 3600)
        snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else
        snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

static int on_progress(const vqz_train_progress *p, void *user)
{
    progress_state *ps = user;
    if (ps->quiet)
        return cli_cancel_flag;
    if (p->event == VQZ_TRAIN_MESSAGE) {
        cli_progress_clear();
        fprintf(stderr, "%s: ", cli_prog);
        cli_put_flat(p->message);
        fputc('\n', stderr);
        return cli_cancel_flag;
    }
    char eta[32], el[32];
    fmt_time(p->eta_s, eta, sizeof eta);
    fmt_time(p->elapsed_s, el, sizeof el);
    if (p->event == VQZ_TRAIN_VALIDATION) {
        double pmin = INFINITY;
        int dmax = 0;
        for (int l = 0; l < p->levels; l++) {
            pmin = fmin(pmin, p->perplexity[l]);
            dmax = p->dead[l] > dmax ? p->dead[l] : dmax;
        }
        cli_progress_clear();
        if (!isnan(p->val_psnr))
            fprintf(stderr, "%s: step %lld validation: PSNR %.2f dB, perplexity min %.0f, unused codes max %d\n",
                    cli_prog, (long long)p->step, p->val_psnr, pmin, dmax);
        else
            fprintf(stderr, "%s: step %lld validation: mel distance %.3f, SI-SDR %.2f dB, perplexity min %.0f, "
                            "unused codes max %d\n",
                    cli_prog, (long long)p->step, p->val_mel, p->val_sisdr, pmin, dmax);
        return cli_cancel_flag;
    }
    char ppl[160] = "";
    size_t n = 0;
    for (int l = 0; l < p->levels && l < 8 && n < sizeof ppl; l++)
        if (!isnan(p->perplexity[l]))
            n += (size_t)snprintf(ppl + n, sizeof ppl - n, "%s%.0f", n ? "/" : "", p->perplexity[l]);
    int restarts = 0;
    for (int l = 0; l < p->levels; l++)
        restarts += p->dead[l];
    char gan[96] = "";
    if (!isnan(p->gan_d))
        snprintf(gan, sizeof gan, "  gan D %.3g adv %.3g feat %.3g", p->gan_d, p->gan_adv, p->gan_feat);
    char line[640];
    snprintf(line, sizeof line,
             "step %lld/%lld  %.2f st/s  %.1f samples/s  loss %.4g (recon %.4g commit %.3g aux %.3g)%s  ppl %s  "
             "restarts %d  lr %.2g  %s elapsed, ETA %s",
             (long long)p->step, (long long)p->steps, p->steps_per_s, p->samples_per_s, p->loss, p->recon, p->commit,
             p->aux, gan, ppl, restarts, p->lr, el, eta);
    if (ps->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        cli_progress_shown = 1;
    } else {
        fprintf(stderr, "%s: %s\n", cli_prog, line);
    }
    return cli_cancel_flag;
}

static int parse_ll(const char *opt, const char *arg, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || v < lo || v > hi) {
        cli_errorf(NULL, "%s: expected an integer in %lld..%lld, got '%s'", opt, lo, hi, arg);
        return 0;
    }
    *out = v;
    return 1;
}

static int parse_double(const char *opt, const char *arg, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !(v >= lo && v <= hi)) {
        cli_errorf(NULL, "%s: expected a number in %g..%g, got '%s'", opt, lo, hi, arg);
        return 0;
    }
    *out = v;
    return 1;
}

static int plot_main(int argc, char **argv)
{
    static const struct option longs[] = {{"out", required_argument, NULL, 'o'},
                                          {"columns", required_argument, NULL, 'C'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *out = NULL, *cols = NULL;
    int c;
    opterr = 0;
    optind = 2;
    while ((c = getopt_long(argc, argv, ":o:h", longs, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'C': cols = optarg; break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        case ':': cli_errorf(NULL, "option %s needs a value", argv[optind - 1]); return CLI_EXIT_INPUT;
        default: cli_errorf(NULL, "unknown option %s (see --help)", argv[optind - 1]); return CLI_EXIT_INPUT;
        }
    }
    if (argc - optind != 1) {
        cli_errorf(NULL, "plot: expected one LOG.csv (see --help)");
        return CLI_EXIT_INPUT;
    }
    const char *csv = argv[optind];
    char *def = NULL;
    if (!out) {
        def = cli_replace_extension(csv, ".png");
        if (!def) {
            cli_errorf(csv, "out of memory");
            return CLI_EXIT_INTERNAL;
        }
        out = def;
    }
    const char *names[64];
    int n = 0;
    char *copy = cols ? strdup(cols) : NULL;
    for (char *tok = copy ? strtok(copy, ",") : NULL; tok && n < 64; tok = strtok(NULL, ","))
        names[n++] = tok;
    vqz_status s = vqz_train_plot(csv, out, n ? names : NULL, n);
    int rc = s == VQZ_OK ? CLI_EXIT_OK : cli_fail(csv, s, NULL);
    if (s == VQZ_OK)
        printf("%s\n", out);
    free(copy);
    free(def);
    return rc;
}

int main(int argc, char **argv)
{
    cli_prog = "vqz-train";
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (argc >= 2 && (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0)) {
        printf("vqz-train %s\n", vqz_version());
        return CLI_EXIT_OK;
    }
    if (argc < 2) {
        cli_errorf(NULL, "expected image, audio or plot first (see --help)");
        return CLI_EXIT_INPUT;
    }
    if (strcmp(argv[1], "plot") == 0)
        return plot_main(argc, argv);
    vqz_train_options o;
    vqz_train_options_init(&o);
    if (strcmp(argv[1], "image") == 0)
        o.kind = VQZ_KIND_IMAGE;
    else if (strcmp(argv[1], "audio") == 0)
        o.kind = VQZ_KIND_AUDIO;
    else {
        cli_errorf(NULL, "expected image, audio or plot first, got '%s' (see --help)", argv[1]);
        return CLI_EXIT_INPUT;
    }
    enum {
        O_VAL = 256, O_LEVELS, O_K, O_STEPS, O_BATCH, O_CROP, O_LR, O_MSSSIM, O_STFT, O_DROPOUT, O_DEVICE, O_SEED,
        O_RESUME, O_INIT, O_CBONLY, O_PRIOR, O_NAME, O_LOG, O_LOGEVERY, O_VALEVERY, O_CKPTEVERY, O_CACHE, O_GANFROM, O_GANW, O_FEATW, O_STORE,
        O_DECSTEPS
    };
    static const struct option longs[] = {
        {"data", required_argument, NULL, 'd'},      {"out", required_argument, NULL, 'o'},
        {"val", required_argument, NULL, O_VAL},     {"config", required_argument, NULL, 'c'},
        {"levels", required_argument, NULL, O_LEVELS}, {"codebook-size", required_argument, NULL, O_K},
        {"steps", required_argument, NULL, O_STEPS}, {"batch", required_argument, NULL, O_BATCH},
        {"crop", required_argument, NULL, O_CROP},   {"lr", required_argument, NULL, O_LR},
        {"msssim", required_argument, NULL, O_MSSSIM}, {"stft", required_argument, NULL, O_STFT},
        {"dropout", required_argument, NULL, O_DROPOUT}, {"device", required_argument, NULL, O_DEVICE},
        {"threads", required_argument, NULL, 't'},   {"seed", required_argument, NULL, O_SEED},
        {"resume", required_argument, NULL, O_RESUME}, {"init", required_argument, NULL, O_INIT},
        {"codebook-only", no_argument, NULL, O_CBONLY}, {"name", required_argument, NULL, O_NAME},
        {"prior-only", no_argument, NULL, O_PRIOR}, {"decoder-steps", required_argument, NULL, O_DECSTEPS},
        {"log", required_argument, NULL, O_LOG},     {"log-every", required_argument, NULL, O_LOGEVERY},
        {"val-every", required_argument, NULL, O_VALEVERY}, {"ckpt-every", required_argument, NULL, O_CKPTEVERY},
        {"cache-mb", required_argument, NULL, O_CACHE}, {"quiet", no_argument, NULL, 'q'},
        {"gan-from", required_argument, NULL, O_GANFROM}, {"gan-weight", required_argument, NULL, O_GANW},
        {"feat-weight", required_argument, NULL, O_FEATW}, {"store", required_argument, NULL, O_STORE},
        {"help", no_argument, NULL, 'h'},            {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    const char **data = calloc((size_t)argc, sizeof *data), **val = calloc((size_t)argc, sizeof *val);
    if (!data || !val) {
        cli_errorf(NULL, "out of memory");
        return CLI_EXIT_INTERNAL;
    }
    int n_data = 0, n_val = 0, quiet = 0, ok = 1, c;
    long long ll;
    opterr = 0;
    optind = 2;
    while (ok && (c = getopt_long(argc, argv, ":d:o:c:t:qhV", longs, NULL)) != -1) {
        switch (c) {
        case 'd': data[n_data++] = optarg; break;
        case 'o': o.out_path = optarg; break;
        case O_VAL: val[n_val++] = optarg; break;
        case 'c': o.config = optarg; break;
        case O_LEVELS: ok = cli_parse_int("--levels", optarg, 1, 32, &o.levels); break;
        case O_K: ok = cli_parse_int("--codebook-size", optarg, 2, 65536, &o.codebook_size); break;
        case O_STEPS: ok = parse_ll("--steps", optarg, 1, 1000000000, &ll); o.steps = ll; break;
        case O_BATCH: ok = cli_parse_int("--batch", optarg, 1, 4096, &o.batch); break;
        case O_CROP: ok = parse_double("--crop", optarg, 1e-3, 65536, &o.crop); break;
        case O_LR: ok = parse_double("--lr", optarg, 1e-9, 0.999, &o.lr); break;
        case O_MSSSIM: ok = parse_double("--msssim", optarg, 0, 1000, &o.msssim_weight); break;
        case O_STFT: ok = parse_double("--stft", optarg, 0, 1000, &o.stft_weight); break;
        case O_DROPOUT: ok = parse_double("--dropout", optarg, 0, 1, &o.dropout); break;
        case O_DEVICE: ok = cli_parse_device(optarg, &o.device); break;
        case 't': ok = cli_parse_int("--threads", optarg, 1, 1024, &o.threads); break;
        case O_SEED: ok = parse_ll("--seed", optarg, 0, LLONG_MAX, &ll); o.seed = (uint64_t)ll; break;
        case O_RESUME: o.resume_path = optarg; break;
        case O_INIT: o.init_path = optarg; break;
        case O_CBONLY: o.codebook_only = 1; break;
        case O_PRIOR: o.prior_only = 1; break;
        case O_DECSTEPS: ok = parse_ll("--decoder-steps", optarg, 0, 1000000000, &ll); o.decoder_steps = ll; break;
        case O_NAME: o.name = optarg; break;
        case O_LOG: o.log_csv = optarg; break;
        case O_LOGEVERY: ok = parse_ll("--log-every", optarg, 1, 1000000000, &ll); o.log_every = ll; break;
        case O_VALEVERY: ok = parse_ll("--val-every", optarg, 1, 1000000000, &ll); o.val_every = ll; break;
        case O_CKPTEVERY: ok = parse_ll("--ckpt-every", optarg, 1, 1000000000, &ll); o.ckpt_every = ll; break;
        case O_CACHE: ok = parse_ll("--cache-mb", optarg, 16, 1 << 30, &ll); o.cache_mb = ll; break;
        case O_GANFROM: ok = parse_ll("--gan-from", optarg, 1, 1000000000, &ll); o.gan_from = ll; break;
        case O_GANW: ok = parse_double("--gan-weight", optarg, 0, 1000, &o.gan_weight); break;
        case O_FEATW: ok = parse_double("--feat-weight", optarg, 0, 1000, &o.feat_weight); break;
        case O_STORE: o.store = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); free(data); free(val); return CLI_EXIT_OK;
        case 'V': printf("vqz-train %s\n", vqz_version()); free(data); free(val); return CLI_EXIT_OK;
        case ':': cli_errorf(NULL, "option %s needs a value", argv[optind - 1]); ok = 0; break;
        default: cli_errorf(NULL, "unknown option %s (see --help)", argv[optind - 1]); ok = 0; break;
        }
    }
    for (int i = optind; ok && i < argc; i++)
        data[n_data++] = argv[i];
    if (ok && n_data == 0 && !o.resume_path) {
        cli_errorf(NULL, "no training folder (--data DIR)");
        ok = 0;
    }
    if (ok && !o.out_path) {
        cli_errorf(NULL, "no output model (--out MODEL.safetensors)");
        ok = 0;
    }
    if (ok && o.codebook_only && !o.init_path && !o.resume_path) {
        cli_errorf(NULL, "--codebook-only adapts an existing model: give it with --init MODEL");
        ok = 0;
    }
    if (ok && o.prior_only && (!o.init_path || o.resume_path || o.codebook_only)) {
        cli_errorf(NULL, "--prior-only measures an existing model: give it with --init MODEL (and no --resume "
                         "or --codebook-only)");
        ok = 0;
    }
    if (!ok) {
        free(data);
        free(val);
        return CLI_EXIT_INPUT;
    }
    o.data_dirs = data;
    o.n_data_dirs = n_data;
    o.val_dirs = val;
    o.n_val_dirs = n_val;
    o.cancel = &cli_cancel_flag;
    progress_state ps = {quiet, isatty(STDERR_FILENO), 0};
    cli_catch_signals();
    vqz_status s = vqz_train(&o, on_progress, &ps);
    cli_progress_clear();
    int rc;
    if (s == VQZ_OK) {
        if (!quiet)
            fprintf(stderr, "%s: wrote %s\n", cli_prog, o.out_path);
        rc = CLI_EXIT_OK;
    } else if (s == VQZ_ERR_CANCELLED) {
        fprintf(stderr, "%s: %s\n", cli_prog, vqz_last_error());
        free(data);
        free(val);
        cli_die_if_signalled();
        rc = CLI_EXIT_INPUT;
        return rc;
    } else {
        rc = cli_fail(NULL, s, NULL);
    }
    free(data);
    free(val);
    return rc;
}
