/* cli.h — what vqz-enc, vqz-dec and vqz-info share: exit codes, one-line error messages, strict option
 * values, output names, the model cache, signals and the terminal progress line. Header-only because
 * each tool is built from its one source file; every function is static inline. Public API only. */
#ifndef VQZ_TOOLS_CLI_H
#define VQZ_TOOLS_CLI_H

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vqz.h"

/* Exit codes (DESIGN.md §7). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_INPUT = 1,    /* bad input data or usage */
    CLI_EXIT_IO = 2,       /* reading or writing a file failed */
    CLI_EXIT_MODEL = 3,    /* the model is missing or is not the one the data needs */
    CLI_EXIT_INTERNAL = 4  /* a bug, an unexpected library failure, or out of memory */
};

/* The one place a library status becomes an exit code:
 *   0  VQZ_OK
 *   1  INVALID_ARG, FORMAT, SIGNATURE, VERSION, TRUNCATED, CHECKSUM, LIMIT, INDEX_RANGE, SHAPE,
 *      NONFINITE, NO_CUDA, UNSUPPORTED, CANCELLED, MISSING  (the input or the request is at fault)
 *   2  IO
 *   3  MODEL_MISMATCH, NOT_FOUND  (wrong model for the data, or no bundle of that name and hash)
 *   4  NOMEM, CUDA, INTERNAL, any unknown code */
static inline int cli_exit_code(vqz_status s)
{
    switch (s) {
    case VQZ_OK:
        return CLI_EXIT_OK;
    case VQZ_ERR_INVALID_ARG:
    case VQZ_ERR_FORMAT:
    case VQZ_ERR_SIGNATURE:
    case VQZ_ERR_VERSION:
    case VQZ_ERR_TRUNCATED:
    case VQZ_ERR_CHECKSUM:
    case VQZ_ERR_LIMIT:
    case VQZ_ERR_INDEX_RANGE:
    case VQZ_ERR_SHAPE:
    case VQZ_ERR_NONFINITE:
    case VQZ_ERR_NO_CUDA:
    case VQZ_ERR_UNSUPPORTED:
    case VQZ_ERR_CANCELLED:
    case VQZ_ERR_MISSING:
        return CLI_EXIT_INPUT;
    case VQZ_ERR_IO:
        return CLI_EXIT_IO;
    case VQZ_ERR_MODEL_MISMATCH:
    case VQZ_ERR_NOT_FOUND:
        return CLI_EXIT_MODEL;
    case VQZ_ERR_NOMEM:
    case VQZ_ERR_CUDA:
    case VQZ_ERR_INTERNAL:
        return CLI_EXIT_INTERNAL;
    }
    return CLI_EXIT_INTERNAL;
}

static const char *cli_prog = "vqz";
static int cli_progress_shown = 0;

/* Erases the progress line, so that a message never lands in the middle of it. */
static inline void cli_progress_clear(void)
{
    if (cli_progress_shown) {
        fputs("\r\033[K", stderr);
        cli_progress_shown = 0;
    }
}

/* Writes s with line breaks and other control characters replaced, keeping every message one line. */
static inline void cli_put_flat(const char *s)
{
    for (; *s; s++)
        fputc((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s, stderr);
}

/* "PROG: FILE: message" on one line (FILE omitted when NULL). */
static inline void cli_errorf(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void cli_errorf(const char *file, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_progress_clear();
    fprintf(stderr, "%s: ", cli_prog);
    if (file) {
        cli_put_flat(file);
        fputs(": ", stderr);
    }
    cli_put_flat(msg);
    fputc('\n', stderr);
}

/* "PROG: FILE: fault: detail" for a failed library call, and its exit code. The detail is the
 * library's message for the calling thread; its leading "FILE: " is dropped since FILE already leads.
 * fault NULL means vqz_strerror(s), "" no fault word (when the detail says it all). Call it right after
 * the failing call: the detail belongs to the last call. */
static inline int cli_fail(const char *file, vqz_status s, const char *fault)
{
    char detail[2048];
    snprintf(detail, sizeof detail, "%s", vqz_last_error());
    const char *d = detail;
    size_t n = file ? strlen(file) : 0;
    if (n && strncmp(d, file, n) == 0 && d[n] == ':' && d[n + 1] == ' ')
        d += n + 2;
    if (!fault) {
        /* "bad signature: not a vqz file" needs no "bad signature (...)" label before it */
        fault = vqz_strerror(s);
        size_t seg = strcspn(d, ":");
        if (d[seg] == ':' && seg > 0 && strncmp(fault, d, seg) == 0)
            fault = "";
    }
    if (!*fault && !*d)
        fault = vqz_strerror(s);
    cli_errorf(file, "%s%s%s", fault, *fault && *d ? ": " : "", d);
    return cli_exit_code(s);
}

/* ------------------------------------------------------------------------ option values */

/* Parses a whole decimal integer in [lo, hi]; on failure prints "PROG: OPT: ..." and returns 0. */
static inline int cli_parse_int(const char *opt, const char *arg, long lo, long hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < lo || v > hi) {
        cli_errorf(NULL, "%s: expected an integer in %ld..%ld, got '%s'", opt, lo, hi, arg);
        return 0;
    }
    *out = (int)v;
    return 1;
}

/* Parses a whole finite number > 0 and <= hi. */
static inline int cli_parse_positive(const char *opt, const char *arg, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !isfinite(v) || v <= 0 || v > hi) {
        cli_errorf(NULL, "%s: expected a number above 0 and at most %g, got '%s'", opt, hi, arg);
        return 0;
    }
    *out = v;
    return 1;
}

static inline int cli_parse_device(const char *arg, vqz_device_kind *out)
{
    if (strcmp(arg, "cpu") == 0)
        *out = VQZ_DEVICE_CPU;
    else if (strcmp(arg, "cuda") == 0)
        *out = VQZ_DEVICE_CUDA;
    else if (strcmp(arg, "auto") == 0)
        *out = VQZ_DEVICE_AUTO;
    else {
        cli_errorf(NULL, "--device: expected cpu, cuda or auto, got '%s'", arg);
        return 0;
    }
    return 1;
}

static inline const char *cli_device_name(vqz_device_kind d)
{
    if (d == VQZ_DEVICE_CPU)
        return "cpu";
    if (d == VQZ_DEVICE_CUDA)
        return "cuda";
    return vqz_cuda_available() ? "auto (cuda)" : "auto (cpu)";
}

/* ------------------------------------------------------------------------ files and names */

static inline int cli_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* 1 when both names reach the same existing file (a.vqz and ./a.vqz, or two hard links). */
static inline int cli_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Size of a file in bytes, or -1. */
static inline long long cli_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* The extension of the last path component including its dot ("" when none; a leading dot as in
 * ".hidden" does not start an extension). */
static inline const char *cli_extension(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    return dot && dot != base ? dot : path + strlen(path);
}

/* path with its extension replaced by ext (malloc'd; NULL when out of memory). */
static inline char *cli_replace_extension(const char *path, const char *ext)
{
    size_t stem = (size_t)(cli_extension(path) - path);
    char *out = malloc(stem + strlen(ext) + 1);
    if (out) {
        memcpy(out, path, stem);
        strcpy(out + stem, ext);
    }
    return out;
}

/* ------------------------------------------------------------------------ models */

/* Models loaded so far by this run, kept by bundle path: several inputs usually share one model. */
#define CLI_MAX_MODELS 8
typedef struct {
    int n;
    char *path[CLI_MAX_MODELS];
    vqz_model *model[CLI_MAX_MODELS];
} cli_models;

static inline void cli_models_free(cli_models *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->path[i]);
        vqz_model_free(c->model[i]);
    }
    c->n = 0;
}

/* Loads the bundle at path, or returns the copy already loaded. verbose prints its name and load time. */
static inline vqz_status cli_models_get(cli_models *c, const char *path, int verbose, vqz_model **out)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->path[i], path) == 0) {
            *out = c->model[i];
            return VQZ_OK;
        }
    if (c->n == CLI_MAX_MODELS) { /* more distinct models than any real run uses: drop the oldest */
        free(c->path[0]);
        vqz_model_free(c->model[0]);
        memmove(c->path, c->path + 1, (CLI_MAX_MODELS - 1) * sizeof c->path[0]);
        memmove(c->model, c->model + 1, (CLI_MAX_MODELS - 1) * sizeof c->model[0]);
        c->n--;
    }
    char *copy = strdup(path);
    if (!copy)
        return VQZ_ERR_NOMEM;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vqz_model *m = NULL;
    vqz_status s = vqz_model_load(path, &m);
    if (s != VQZ_OK) {
        free(copy);
        return s;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (verbose) {
        vqz_model_info info;
        if (vqz_model_describe(m, &info) == VQZ_OK) {
            cli_progress_clear();
            fprintf(stderr, "%s: model %s (%s, %d levels of %d codewords, %lld parameters) from %s, loaded in %.2f s\n",
                    cli_prog, info.name, info.kind == VQZ_KIND_AUDIO ? "audio" : "image", info.levels,
                    info.codebook_size, (long long)info.parameters, path,
                    (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
        }
    }
    c->path[c->n] = copy;
    c->model[c->n] = m;
    c->n++;
    *out = m;
    return VQZ_OK;
}

/* Turns the argument of -m into a bundle path: an existing file, or anything that looks like a path
 * (holds '/' or ends in .safetensors), is taken as it is; any other word is a model name looked up on
 * the search path. On failure prints "PROG: model ARG: ..." and returns the exit code (3), else 0. */
static inline int cli_model_path(const char *arg, char *path, size_t cap)
{
    struct stat st;
    size_t n = strlen(arg);
    int pathlike = strchr(arg, '/') != NULL || (n > 12 && strcmp(arg + n - 12, ".safetensors") == 0);
    if ((stat(arg, &st) == 0 && S_ISREG(st.st_mode)) || pathlike) {
        if (stat(arg, &st) != 0) {
            cli_errorf(NULL, "model %s: not found: %s", arg, strerror(errno));
            return CLI_EXIT_MODEL;
        }
        if (n + 1 > cap) {
            cli_errorf(NULL, "model %s: path too long", arg);
            return CLI_EXIT_INPUT;
        }
        memcpy(path, arg, n + 1);
        return CLI_EXIT_OK;
    }
    vqz_status s = vqz_model_locate(arg, NULL, path, cap);
    if (s != VQZ_OK) {
        /* the library's message names the model and every folder searched */
        char detail[2048];
        snprintf(detail, sizeof detail, "%s", vqz_last_error());
        cli_errorf(NULL, "%s", *detail ? detail : vqz_strerror(s));
        return cli_exit_code(s);
    }
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ signals and progress */

/* Set by SIGINT/SIGTERM/SIGHUP; passed to the library as vqz_options.cancel so that an interrupted run
 * stops cleanly, leaving no partial output, and then dies of the same signal. */
static volatile int cli_cancel_flag = 0;
static volatile sig_atomic_t cli_signal = 0;

static inline void cli_on_signal(int sig)
{
    cli_signal = sig;
    cli_cancel_flag = 1;
}

static inline void cli_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cli_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* After a cancelled call: die of the signal that asked for it, as the shell expects. */
static inline void cli_die_if_signalled(void)
{
    if (!cli_signal)
        return;
    cli_progress_clear();
    int sig = (int)cli_signal;
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Progress goes to stderr only when stderr is a terminal and the run is not quiet. The API reports no
 * fraction done, so the line says which file is being worked on and is erased before the summary. */
static inline void cli_progress(int quiet, const char *verb, const char *file)
{
    if (quiet || !isatty(STDERR_FILENO))
        return;
    fprintf(stderr, "\r\033[K%s: %s ", cli_prog, verb);
    cli_put_flat(file);
    fputs(" ...", stderr);
    fflush(stderr);
    cli_progress_shown = 1;
}

#endif
