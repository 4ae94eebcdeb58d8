/*
 * kiln: the command-line tool. `kiln info`, `kiln prewarm`, `kiln cache ...`, `kiln bench`.
 * Uses only the public API. Output goes to stdout, messages to stderr; exit status 0 on
 * success, 1 on failure, 2 on a usage error.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- usage and help */

static const struct {
    const char *name;
    const char *usage;
} command_usage[] = {
    {"info", "kiln info [--json]\n"
             "    Library, NVRTC and driver versions, the device (or \"no GPU\"), its arch\n"
             "    and SM count, the settings in force and the cache roots with their sizes.\n"},
    {"prewarm",
     "kiln prewarm --spec FILE | --model FILE [--arch ARCH] [-j N] [--quiet]\n"
     "    Compile every specialization listed in FILE (one per line, \"op key=value ...\")\n"
     "    or needed by a model description (examples/deepseek-v3.model)\n"
     "    into the kernel cache, on N threads (default: the online CPUs). --arch compiles\n"
     "    for ARCH (e.g. sm_90a) without using a GPU. --quiet drops the progress bar and,\n"
     "    when nothing failed, the summary. Exits 1 if any line failed.\n"},
    {"cache", "kiln cache ls [--json]            one line (JSON: one object) per entry\n"
              "kiln cache stats [--json]         entries and sizes per cache root\n"
              "kiln cache verify [--json]        check the writable root's file (a damaged\n"
              "                                  one is moved aside), key texts and cubin\n"
              "                                  checksums; bad entries are quarantined\n"
              "                                  and listed; exits 1 if any was bad\n"
              "kiln cache prune --max-mb N [--json]\n"
              "                                  evict least-recently-used entries of the\n"
              "                                  writable root until it holds <= N MiB\n"
              "kiln cache clear [--json]         remove every entry of the writable root\n"},
    {"bench", "kiln bench NAME [ARGS...]\n"
              "    Run the benchmark program kiln-bench-NAME installed next to kiln, with ARGS.\n"},
};

/* text, every line prefixed by indent spaces. */
static void print_indented(FILE *out, const char *text, int indent)
{
    while (*text != '\0') {
        size_t len = strcspn(text, "\n");
        fprintf(out, "%*s%.*s\n", indent, "", (int)len, text);
        text += len + (text[len] == '\n');
    }
}

void cli_print_usage(FILE *out, const char *command)
{
    for (size_t i = 0; i < sizeof command_usage / sizeof command_usage[0]; i++) {
        if (command == NULL)
            print_indented(out, command_usage[i].usage, 2);
        else if (strcmp(command, command_usage[i].name) == 0)
            fputs(command_usage[i].usage, out);
    }
}

/* Print text wrapped at width columns, every line indented by indent spaces. */
static void print_wrapped(FILE *out, const char *text, int indent, int width)
{
    int column = 0;
    while (*text != '\0') {
        while (*text == ' ')
            text++;
        size_t word = strcspn(text, " ");
        if (word == 0)
            break;
        if (column > indent && column + 1 + (int)word > width) {
            fputc('\n', out);
            column = 0;
        }
        if (column == 0) {
            fprintf(out, "%*s", indent, "");
            column = indent;
        } else {
            fputc(' ', out);
            column++;
        }
        fwrite(text, 1, word, out);
        column += (int)word;
        text += word;
    }
    if (column > 0)
        fputc('\n', out);
}

/* The knob table comes from the library (kiln_knob), the one table that also drives the
 * defaults and the environment parsing. */
static void print_knobs(FILE *out)
{
    int env_width = 8;
    int type_width = 4;
    for (int i = 0; kiln_knob(i) != NULL; i++) {
        const kiln_knob_info *knob = kiln_knob(i);
        int env_len = knob->env ? (int)strlen(knob->env) : 0;
        int type_len = knob->type ? (int)strlen(knob->type) : 0;
        env_width = env_len > env_width ? env_len : env_width;
        type_width = type_len > type_width ? type_len : type_width;
    }
    fputs("Environment (read when a context is created; explicit option > environment >\n"
          "default; a bad value is an error naming the variable):\n",
          out);
    fprintf(out, "  %-*s  %-*s  %s\n", env_width, "VARIABLE", type_width, "TYPE", "DEFAULT");
    for (int i = 0; kiln_knob(i) != NULL; i++) {
        const kiln_knob_info *knob = kiln_knob(i);
        const char *def = knob->default_value;
        fprintf(out, "  %-*s  %-*s  %s\n", env_width, knob->env ? knob->env : "?", type_width,
                knob->type ? knob->type : "", def != NULL && def[0] != '\0' ? def : "(empty)");
        if (knob->doc != NULL && knob->doc[0] != '\0')
            print_wrapped(out, knob->doc, 6, 100);
    }
}

static void print_help(FILE *out)
{
    fputs("usage: kiln <command> [options]\n"
          "\n"
          "kiln specializes CUDA kernels at run time and keeps them in a kernel cache.\n"
          "\n"
          "Commands:\n",
          out);
    cli_print_usage(out, NULL);
    fputs("  kiln help [COMMAND], kiln --help  this text, or one command's\n"
          "  kiln --version                    the version of kiln\n"
          "\n"
          "Exit status: 0 success, 1 failure, 2 usage error.\n"
          "\n",
          out);
    print_knobs(out);
}

static int is_command(const char *name)
{
    for (size_t i = 0; i < sizeof command_usage / sizeof command_usage[0]; i++) {
        if (strcmp(name, command_usage[i].name) == 0)
            return 1;
    }
    return 0;
}

static int cmd_help(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && !is_command(argv[1]))) {
        fprintf(stderr, "kiln help: %s\nTry 'kiln --help'.\n",
                argc > 2 ? "expected at most one command name" : "unknown command");
        return CLI_USAGE;
    }
    if (argc == 2)
        cli_print_usage(stdout, argv[1]);
    else
        print_help(stdout);
    return CLI_OK;
}

static int cmd_version(void)
{
    const char *library = kiln_version_string();
    printf("kiln %s\n", library);
    if (kiln_version_number() != KILN_VERSION_NUMBER)
        fprintf(stderr, "kiln: warning: built against kiln %d.%d.%d, running with %s\n",
                KILN_VERSION_MAJOR, KILN_VERSION_MINOR, KILN_VERSION_PATCH, library);
    return CLI_OK;
}

/* ---------------------------------------------------------------- info */

typedef struct info_roots {
    int json;
    int count;
} info_roots;

static int info_root(const kiln_cache_stats *stats, void *user)
{
    info_roots *roots = user;
    if (roots->json) {
        if (roots->count > 0)
            fputc(',', stdout);
        cli_json_root_stats(stdout, stats);
    } else {
        char bytes[32], file_bytes[32];
        printf("%-10s %s (%s): %lld entries, %s, file %s, %lld quarantined\n",
               roots->count == 0 ? "cache" : "", stats->root,
               stats->writable ? "writable" : "read-only", (long long)stats->entries,
               cli_format_bytes(stats->bytes, bytes, sizeof bytes),
               cli_format_bytes(stats->file_bytes, file_bytes, sizeof file_bytes),
               (long long)stats->quarantined);
    }
    roots->count++;
    return 0;
}

static void info_text(const kiln_ctx_info *info, const kiln_options *opts)
{
    printf("%-10s %s (version number %u)\n", "kiln", kiln_version_string(), kiln_version_number());
    printf("%-10s %d.%d\n", "nvrtc", info->nvrtc_major, info->nvrtc_minor);
    if (info->driver_version > 0)
        printf("%-10s %d.%d (%d)\n", "driver", info->driver_version / 1000,
               info->driver_version % 1000 / 10, info->driver_version);
    else
        printf("%-10s none\n", "driver");
    if (info->has_device)
        printf("%-10s %d: %s\n", "device", info->device, info->device_name);
    else
        printf("%-10s no GPU (compile-only)\n", "device");
    printf("%-10s %s\n", "arch", info->arch);
    printf("%-10s %d%s\n", "sms", info->num_sms, info->has_device ? "" : " (assumed)");
    if (info->has_device)
        printf("%-10s %d bytes per block\n", "smem", info->max_smem_per_block);
    printf("%-10s KILN_JIT=%d KILN_PDL=%d KILN_CACHE_MAX_MB=%lld KILN_LOG=%d\n", "settings",
           opts->jit, opts->pdl, (long long)opts->cache_max_mb, opts->log_level);
    /* These pick the GEMM kernels, so a cache prewarmed under other values misses. */
    printf("%-10s KILN_GEMM_OVERLAP=%d KILN_GEMM_MULTICAST=%d KILN_GEMM_TALL_TILES=%d "
           "KILN_GEMM_PREFILL_K_SPLIT=%d\n",
           "", opts->gemm_overlap, opts->gemm_multicast, opts->gemm_tall_tiles,
           opts->gemm_prefill_k_split);
}

static void info_json_begin(cli_json *json, const kiln_ctx_info *info, const kiln_options *opts)
{
    char nvrtc[32];
    snprintf(nvrtc, sizeof nvrtc, "%d.%d", info->nvrtc_major, info->nvrtc_minor);
    cli_json_begin(json, stdout);
    cli_json_str(json, "version", kiln_version_string());
    cli_json_int(json, "version_number", kiln_version_number());
    cli_json_str(json, "nvrtc", nvrtc);
    cli_json_int(json, "driver_version", info->driver_version);
    cli_json_bool(json, "has_device", info->has_device);
    if (info->has_device) {
        cli_json_int(json, "device", info->device);
        cli_json_str(json, "device_name", info->device_name);
        cli_json_int(json, "max_smem_per_block", info->max_smem_per_block);
    }
    cli_json_str(json, "arch", info->arch);
    cli_json_int(json, "num_sms", info->num_sms);
    cli_json_bool(json, "jit", opts->jit);
    cli_json_bool(json, "pdl", opts->pdl);
    cli_json_int(json, "cache_max_mb", opts->cache_max_mb);
    cli_json_int(json, "log_level", opts->log_level);
    cli_json_bool(json, "gemm_overlap", opts->gemm_overlap);
    cli_json_bool(json, "gemm_multicast", opts->gemm_multicast);
    cli_json_int(json, "gemm_tall_tiles", opts->gemm_tall_tiles);
    cli_json_bool(json, "gemm_prefill_k_split", opts->gemm_prefill_k_split);
}

int cli_cmd_info(int argc, char **argv)
{
    int json_output = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            cli_print_usage(stdout, "info");
            return CLI_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json_output = 1;
        } else {
            return cli_usage_error("info", "unexpected argument '%s'", argv[i]);
        }
    }

    kiln_ctx *ctx = NULL;
    kiln_options opts;
    int rc = cli_ctx_open(&ctx, 1, NULL, &opts);
    if (rc != CLI_OK)
        return rc;
    kiln_ctx_info info;
    memset(&info, 0, sizeof info);
    kiln_status status = kiln_ctx_get_info(ctx, &info);
    if (status != KILN_OK) {
        rc = cli_fail("kiln_ctx_get_info: %s: %s", kiln_status_str(status), cli_errmsg(ctx));
        goto done;
    }

    info_roots roots = {.json = json_output, .count = 0};
    cli_json json;
    if (json_output) {
        info_json_begin(&json, &info, &opts);
        cli_json_key(&json, "cache");
        fputc('[', stdout);
    } else {
        info_text(&info, &opts);
    }
    status = kiln_cache_stats_each(ctx, info_root, &roots);
    if (json_output) {
        fputc(']', stdout);
        cli_json_end(&json);
        fputc('\n', stdout);
    } else if (roots.count == 0 && status == KILN_OK) {
        printf("%-10s none (KILN_CACHE_PATH is empty or none of its roots could be opened)\n", "cache");
    }
    if (status != KILN_OK)
        rc = cli_fail("kiln_cache_stats_each: %s: %s", kiln_status_str(status), cli_errmsg(ctx));
done:
    kiln_ctx_destroy(ctx);
    return rc;
}

/* ---------------------------------------------------------------- bench */

#define BENCH_PREFIX "kiln-bench-"

/* The directory of the running executable, into dir. Returns 0 or -1. */
static int self_directory(char *dir, size_t size)
{
    ssize_t len = readlink("/proc/self/exe", dir, size - 1);
    if (len <= 0 || (size_t)len >= size - 1)
        return -1;
    dir[len] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        return -1;
    *slash = '\0';
    if (dir[0] == '\0')
        strcpy(dir, "/");
    return 0;
}

static void list_benches(FILE *out, const char *dir)
{
    DIR *listing = opendir(dir);
    if (listing == NULL)
        return;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(listing)) != NULL) {
        size_t prefix = strlen(BENCH_PREFIX);
        if (strncmp(entry->d_name, BENCH_PREFIX, prefix) != 0 || entry->d_name[prefix] == 0)
            continue;
        fprintf(out, "%s %s", count++ == 0 ? "available:" : "", entry->d_name + prefix);
    }
    if (count > 0)
        fputc('\n', out);
    closedir(listing);
}

int cli_cmd_bench(int argc, char **argv)
{
    char dir[PATH_MAX];
    int have_dir = self_directory(dir, sizeof dir) == 0;
    int dir_errno = errno;
    if (argc < 2) {
        cli_usage_error("bench", "which benchmark? (kiln bench NAME [ARGS...])");
        if (have_dir)
            list_benches(stderr, dir);
        return CLI_USAGE;
    }
    if (cli_is_help(argv[1])) {
        cli_print_usage(stdout, "bench");
        return CLI_OK;
    }
    const char *name = argv[1];
    if (name[0] == '\0' || name[0] == '-' || strchr(name, '/') != NULL)
        return cli_usage_error("bench", "bad benchmark name '%s'", name);

    if (!have_dir)
        return cli_fail("bench: cannot find the kiln executable (/proc/self/exe): %s",
                        strerror(dir_errno));
    char path[PATH_MAX + 64];
    int len = snprintf(path, sizeof path, "%s/%s%s", dir, BENCH_PREFIX, name);
    if (len < 0 || (size_t)len >= sizeof path)
        return cli_usage_error("bench", "benchmark name too long");
    if (access(path, X_OK) != 0) {
        cli_fail("bench: no benchmark '%s': %s: %s", name, path, strerror(errno));
        list_benches(stderr, dir);
        return CLI_FAIL;
    }

    /* argv[argc] is NULL, so argv + 1 is a ready argument vector once [0] is the path. */
    char **bench_argv = argv + 1;
    bench_argv[0] = path;
    fflush(stdout);
    execv(path, bench_argv);
    return cli_fail("bench: cannot run %s: %s", path, strerror(errno));
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("usage: kiln <command> [options]   (kiln --help lists the commands)\n", stderr);
        return CLI_USAGE;
    }
    const char *command = argv[1];
    int rc;
    if (cli_is_help(command) || strcmp(command, "help") == 0)
        rc = cmd_help(argc - 1, argv + 1);
    else if (strcmp(command, "--version") == 0 || strcmp(command, "version") == 0)
        rc = cmd_version();
    else if (strcmp(command, "info") == 0)
        rc = cli_cmd_info(argc - 1, argv + 1);
    else if (strcmp(command, "prewarm") == 0)
        rc = cli_cmd_prewarm(argc - 1, argv + 1);
    else if (strcmp(command, "cache") == 0)
        rc = cli_cmd_cache(argc - 1, argv + 1);
    else if (strcmp(command, "bench") == 0)
        rc = cli_cmd_bench(argc - 1, argv + 1);
    else {
        fprintf(stderr, "kiln: unknown command '%s'\nTry 'kiln --help'.\n", command);
        return CLI_USAGE;
    }

    /* A full disk or a closed pipe must not look like success. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "kiln: cannot write the output: %s\n", strerror(errno));
        if (rc == CLI_OK)
            rc = CLI_FAIL;
    }
    return rc;
}
