/* vqz-info.c — prints what a .vqz file holds: every header field, the source description, and per
 * level the bytes spent beside the empirical entropy of the indices; as text, or as the library's JSON. */
#include <getopt.h>

#include <cjson/cJSON.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: vqz-info [--json] FILE.vqz...\n"
            "Print the header of each .vqz file, its per-level sizes and the empirical entropy of the\n"
            "indices of each level beside the bytes spent on them.\n"
            "\n"
            "  -j, --json      print the JSON document (one object; an array of them for several files)\n"
            "  -h, --help      this help\n"
            "  -V, --version   library version\n"
            "\n"
            "Exit status: 0 ok, 1 bad input or usage, 2 I/O error, 4 internal error. See vqz-info(1).\n");
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "?";
}

/* One line per leaf of the metadata object, "prefix.key  value"; long strings (ICC profiles in hex)
 * are summarised by their length. */
static void print_meta(const cJSON *v, const char *prefix)
{
    if (cJSON_IsObject(v)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, v)
        {
            char path[256];
            snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", e->string ? e->string : "?");
            print_meta(e, path);
        }
        return;
    }
    printf("    %-26s ", prefix);
    if (cJSON_IsString(v)) {
        size_t n = strlen(v->valuestring);
        if (n > 64)
            printf("(%zu characters)\n", n);
        else
            printf("%s\n", v->valuestring);
    } else {
        char *t = cJSON_PrintUnformatted(v);
        printf("%s\n", t ? t : "?");
        free(t);
    }
}

/* The text rendering of one document; returns 0 when it is not what vqz_file_describe_json makes. */
static int print_text(const char *json)
{
    cJSON *o = cJSON_Parse(json);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return 0;
    }
    double file_bytes = num(o, "file_bytes"), complete = num(o, "complete_bytes");
    int levels = (int)num(o, "levels"), avail = (int)num(o, "levels_available");
    const char *kind = str(o, "kind");
    printf("%s\n", str(o, "file"));
    printf("  %-18s %s\n", "format version", str(o, "format_version"));
    printf("  %-18s %s\n", "kind", kind);
    printf("  %-18s %s\n", "model", str(o, "model"));
    printf("  %-18s %s\n", "model SHA-256", str(o, "model_sha256"));
    const cJSON *im = cJSON_GetObjectItemCaseSensitive(o, "image");
    const cJSON *au = cJSON_GetObjectItemCaseSensitive(o, "audio");
    if (cJSON_IsObject(im))
        printf("  %-18s %.0f x %.0f, %.0f channel%s, %.0f-bit, colour space %s\n", "image", num(im, "width"),
               num(im, "height"), num(im, "channels"), num(im, "channels") == 1 ? "" : "s", num(im, "bit_depth"),
               str(im, "colour_space"));
    if (cJSON_IsObject(au)) {
        double rate = num(au, "sample_rate"), frames = num(au, "frames");
        printf("  %-18s %.0f Hz (model %.0f Hz), %.0f channel%s, %.0f-bit, %.0f frames (%.3f s)\n", "audio", rate,
               num(au, "model_rate"), num(au, "channels"), num(au, "channels") == 1 ? "" : "s",
               num(au, "bit_depth"), frames, rate > 0 ? frames / rate : 0.0);
    }
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "grid");
    if (cJSON_IsObject(g) && cJSON_IsObject(au))
        printf("  %-18s %.0f frames x %.0f plane%s (one per channel), stride %.0f, %.0f chunk%s of %.0f frames\n",
               "latent grid", num(g, "width"), num(g, "planes"), num(g, "planes") == 1 ? "" : "s", num(g, "stride"),
               num(g, "chunks"), num(g, "chunks") == 1 ? "" : "s", num(g, "chunk_width"));
    else if (cJSON_IsObject(g))
        printf("  %-18s %.0f x %.0f cells x %.0f plane%s, stride %.0f, %.0f chunk%s of %.0f x %.0f\n", "latent grid",
               num(g, "width"), num(g, "height"), num(g, "planes"), num(g, "planes") == 1 ? "" : "s",
               num(g, "stride"), num(g, "chunks"), num(g, "chunks") == 1 ? "" : "s", num(g, "chunk_width"),
               num(g, "chunk_height"));
    printf("  %-18s %d of %d present%s\n", "levels", avail, levels, avail < levels ? " (the file was cut)" : "");
    printf("  %-18s %.0f bytes", "size", file_bytes);
    if (complete != file_bytes)
        printf(" (%.0f when complete)", complete);
    if (cJSON_GetObjectItemCaseSensitive(o, "bpp"))
        printf(", %.4f bpp", num(o, "bpp"));
    if (cJSON_GetObjectItemCaseSensitive(o, "kbps"))
        printf(", %.3f kbps", num(o, "kbps"));
    printf("\n");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "alpha")))
        printf("  %-18s yes, %.0f bytes (lossless)\n", "alpha", num(o, "alpha_bytes"));
    else
        printf("  %-18s no\n", "alpha");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(o, "metadata");
    if (cJSON_IsString(meta)) {
        cJSON *mo = cJSON_Parse(meta->valuestring);
        printf("  metadata\n");
        if (mo)
            print_meta(mo, "");
        else
            printf("    %s\n", meta->valuestring);
        cJSON_Delete(mo);
    }

    /* per level: the bytes spent beside what an ideal order-0 coder of the indices would need */
    printf("\n  %5s %6s %9s %10s %9s %10s %10s %10s %8s %9s\n", "level", "K", "indices", "bytes", "bits/idx",
           "H bits/idx", "H bytes", "packed", "distinct", "modelled");
    double sum_bytes = 0, sum_entropy = 0, sum_indices = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "level_stats"))
    {
        char mod[32];
        snprintf(mod, sizeof mod, "%.0f/%.0f", num(e, "modelled_chunks"), num(e, "chunks"));
        printf("  %5.0f %6.0f %9.0f %10.0f %9.3f %10.3f %10.0f %10.0f %8.0f %9s\n", num(e, "level"), num(e, "K"),
               num(e, "indices"), num(e, "bytes"), num(e, "bits_per_index"), num(e, "entropy_bits_per_index"),
               num(e, "entropy_bytes"), num(e, "packed_bytes"), num(e, "distinct"), mod);
        sum_bytes += num(e, "bytes");
        sum_entropy += num(e, "entropy_bytes");
        sum_indices += num(e, "indices");
    }
    printf("  %5s %6s %9.0f %10.0f %9.3f %10.3f %10.0f\n", "all", "", sum_indices, sum_bytes,
           sum_indices > 0 ? sum_bytes * 8 / sum_indices : 0.0, sum_indices > 0 ? sum_entropy * 8 / sum_indices : 0.0,
           sum_entropy);
    double alpha = num(o, "alpha_bytes");
    printf("  H: the empirical (order-0) entropy of the level's indices; packed: before zstd; modelled: chunks\n"
           "  coded with the adaptive model (spec §6.5) rather than zstd\n");
    const cJSON *miss = cJSON_GetObjectItemCaseSensitive(o, "level_stats_missing");
    if (cJSON_IsString(miss))
        printf("  levels not shown: %s\n", miss->valuestring);
    printf("  %-18s %.0f bytes (header, tables, metadata%s)\n", "other", file_bytes - sum_bytes - alpha,
           alpha > 0 ? "; alpha counted above" : "");
    cJSON_Delete(o);
    return 1;
}

int main(int argc, char **argv)
{
    cli_prog = "vqz-info";
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
        case 'V': printf("vqz-info %s\n", vqz_version()); return CLI_EXIT_OK;
        default: cli_errorf(NULL, "unknown option %s (see --help)", argv[optind - 1]); return CLI_EXIT_INPUT;
        }
    }
    int n_in = argc - optind;
    if (n_in == 0) {
        cli_errorf(NULL, "no input files (see --help)");
        return CLI_EXIT_INPUT;
    }
    int first = CLI_EXIT_OK, printed = 0;
    if (json && n_in > 1)
        printf("[");
    for (int i = optind; i < argc; i++) {
        char *doc = NULL;
        vqz_status s = vqz_file_describe_json(argv[i], &doc);
        int rc = CLI_EXIT_OK;
        if (s != VQZ_OK) {
            fflush(stdout); /* keep stdout and stderr in order on a terminal */
            rc = cli_fail(argv[i], s, NULL);
        } else if (json) {
            printf("%s%s", printed ? ",\n" : "", doc);
            printed++;
        } else {
            if (printed)
                printf("\n");
            if (print_text(doc))
                printed++;
            else
                rc = cli_exit_code(VQZ_ERR_INTERNAL), cli_errorf(argv[i], "internal error: unreadable description");
        }
        vqz_free(doc);
        if (rc != CLI_EXIT_OK && first == CLI_EXIT_OK)
            first = rc;
    }
    if (json)
        printf(n_in > 1 ? "]\n" : (printed ? "\n" : ""));
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_errorf(NULL, "standard output: %s", strerror(errno));
        return CLI_EXIT_IO;
    }
    return first;
}
