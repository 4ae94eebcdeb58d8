/*
 * kiln prewarm: compile every specialization of a spec file into the kernel cache, on a
 * pool of threads sharing one context (kiln_prewarm is thread-safe).
 *
 * The context keeps one error message for all threads (the first since its last
 * successful call), so a message read by a worker may belong to another line. Workers
 * therefore keep only the status; once the pool has finished, every failed line is run
 * once more on the main thread alone, right after a successful call, and the message
 * printed is that run's. (A failure that does not repeat is reported as a warning.)
 */
#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct spec_line {
    char *text; /* comment and surrounding blanks stripped; never empty */
    long line_no;
    kiln_status status;
    int was_cached;
} spec_line;

typedef struct spec_file {
    spec_line *lines;
    size_t count, cap;
} spec_file;

typedef struct prewarm_pool {
    kiln_ctx *ctx;
    spec_file *spec;
    atomic_size_t next;
    atomic_size_t done, compiled, cached, failed;
} prewarm_pool;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Strip a '#' comment (at the start or after a blank) and the blanks around the rest. */
static char *strip_line(char *line)
{
    for (char *p = line; *p != '\0'; p++) {
        if (*p == '#' && (p == line || p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            break;
        }
    }
    while (*line == ' ' || *line == '\t')
        line++;
    size_t len = strlen(line);
    while (len > 0 && strchr(" \t\r\n\v\f", line[len - 1]) != NULL)
        line[--len] = '\0';
    return line;
}

static void spec_file_free(spec_file *spec)
{
    for (size_t i = 0; i < spec->count; i++)
        free(spec->lines[i].text);
    free(spec->lines);
    memset(spec, 0, sizeof *spec);
}

/* Read the non-blank, non-comment lines of path. Returns CLI_OK or CLI_FAIL (printed). */
static int spec_file_read(const char *path, spec_file *spec)
{
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return cli_fail("prewarm: cannot open spec file '%s': %s", path, strerror(errno));
    int rc = CLI_OK;
    char *buffer = NULL;
    size_t buffer_size = 0;
    long line_no = 0;
    while (getline(&buffer, &buffer_size, file) >= 0) {
        line_no++;
        char *text = strip_line(buffer);
        if (text[0] == '\0')
            continue;
        if (spec->count == spec->cap) {
            size_t cap = spec->cap ? spec->cap * 2 : 64;
            spec_line *lines = realloc(spec->lines, cap * sizeof *lines);
            if (lines == NULL) {
                rc = cli_fail("prewarm: out of memory reading '%s'", path);
                goto done;
            }
            spec->lines = lines;
            spec->cap = cap;
        }
        spec_line *line = &spec->lines[spec->count];
        memset(line, 0, sizeof *line);
        line->text = strdup(text);
        line->line_no = line_no;
        if (line->text == NULL) {
            rc = cli_fail("prewarm: out of memory reading '%s'", path);
            goto done;
        }
        spec->count++;
    }
    if (ferror(file))
        rc = cli_fail("prewarm: cannot read spec file '%s': %s", path, strerror(errno));
done:
    free(buffer);
    fclose(file);
    return rc;
}

/* The spec lines a model description expands to; line numbers count expanded lines. */
static int model_read(const char *path, spec_file *spec)
{
    cli_lines lines = {0};
    int rc = cli_model_expand(path, &lines);
    if (rc == CLI_OK && (spec->lines = calloc(lines.count ? lines.count : 1, sizeof *spec->lines)) == NULL)
        rc = cli_fail("prewarm: out of memory");
    for (size_t i = 0; rc == CLI_OK && i < lines.count; i++) {
        spec->lines[i].text = lines.items[i];
        spec->lines[i].line_no = (long)i + 1;
        lines.items[i] = NULL;
        spec->count = spec->cap = i + 1;
    }
    cli_lines_free(&lines);
    return rc;
}

static void *prewarm_worker(void *arg)
{
    prewarm_pool *pool = arg;
    for (;;) {
        size_t index = atomic_fetch_add(&pool->next, 1);
        if (index >= pool->spec->count)
            break;
        spec_line *line = &pool->spec->lines[index];
        int was_cached = 0;
        line->status = kiln_prewarm(pool->ctx, line->text, &was_cached);
        line->was_cached = was_cached;
        if (line->status != KILN_OK)
            atomic_fetch_add(&pool->failed, 1);
        else if (was_cached)
            atomic_fetch_add(&pool->cached, 1);
        else
            atomic_fetch_add(&pool->compiled, 1);
        atomic_fetch_add(&pool->done, 1);
    }
    return NULL;
}

static void draw_progress(prewarm_pool *pool, double start)
{
    enum { BAR = 30 };
    size_t total = pool->spec->count;
    size_t done = atomic_load(&pool->done);
    size_t filled = total ? done * BAR / total : BAR;
    char bar[BAR + 1];
    for (size_t i = 0; i < BAR; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[BAR] = '\0';
    fprintf(stderr, "\r\033[K[%s] %zu/%zu  compiled %zu  cached %zu  failed %zu  %.1f s", bar, done,
            total, atomic_load(&pool->compiled), atomic_load(&pool->cached),
            atomic_load(&pool->failed), now_seconds() - start);
    fflush(stderr);
}

/* Run the pool on num_threads threads (fewer if some cannot start; the calling thread
 * works alone if none can). */
static void run_pool(prewarm_pool *pool, int num_threads, int progress, double start)
{
    pthread_t *threads = calloc((size_t)num_threads, sizeof *threads);
    int started = 0;
    for (int i = 0; threads != NULL && i < num_threads; i++) {
        if (pthread_create(&threads[i], NULL, prewarm_worker, pool) != 0)
            break;
        started++;
    }
    if (started == 0) {
        prewarm_worker(pool);
    } else if (progress) {
        while (atomic_load(&pool->done) < pool->spec->count) {
            draw_progress(pool, start);
            nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
        }
    }
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    if (progress) {
        draw_progress(pool, start);
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    free(threads);
}

/* Report every failed line in file order, with a message from a run on this thread alone.
 * Returns the number of lines that still fail. */
static size_t report_failures(prewarm_pool *pool, const char *path)
{
    size_t failed = 0;
    for (size_t i = 0; i < pool->spec->count; i++) {
        spec_line *line = &pool->spec->lines[i];
        if (line->status == KILN_OK)
            continue;
        /* The context keeps the first error since its last successful call: make one, so
         * the message read below is this line's. */
        kiln_ctx_info info;
        kiln_ctx_get_info(pool->ctx, &info);
        int was_cached = 0;
        kiln_status again = kiln_prewarm(pool->ctx, line->text, &was_cached);
        if (again == KILN_OK) {
            fprintf(stderr, "%s:%ld: warning: %s on the first try, succeeded on a retry: %s\n",
                    path, line->line_no, kiln_status_str(line->status), line->text);
            atomic_fetch_sub(&pool->failed, 1);
            atomic_fetch_add(was_cached ? &pool->cached : &pool->compiled, 1);
            line->status = KILN_OK;
            continue;
        }
        fprintf(stderr, "%s:%ld: %s: %s\n    in: %s\n", path, line->line_no, kiln_status_str(again),
                cli_errmsg(pool->ctx), line->text);
        failed++;
    }
    return failed;
}

static int add_writable_entries(const kiln_cache_stats *stats, void *user)
{
    if (stats->writable)
        *(int64_t *)user += stats->entries;
    return 0;
}

/* Kernels in the context's writable cache, or -1 when the cache cannot say. */
static int64_t cached_kernels(kiln_ctx *ctx)
{
    int64_t entries = 0;
    return kiln_cache_stats_each(ctx, add_writable_entries, &entries) == KILN_OK ? entries : -1;
}

typedef struct prewarm_args {
    const char *spec_path;
    const char *model_path;
    const char *arch;
    int64_t jobs;
    int quiet;
} prewarm_args;

/* Returns CLI_OK, CLI_USAGE, or -1 for --help (printed). */
static int parse_args(int argc, char **argv, prewarm_args *args)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    args->jobs = online > 0 ? online : 1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
        int match;
        if (cli_is_help(arg)) {
            cli_print_usage(stdout, "prewarm");
            return -1;
        } else if (strcmp(arg, "--quiet") == 0 || strcmp(arg, "-q") == 0) {
            args->quiet = 1;
        } else if ((match = cli_opt_value("prewarm", "--spec", argc, argv, &i, &value)) != 0) {
            if (match < 0)
                return CLI_USAGE;
            args->spec_path = value;
        } else if ((match = cli_opt_value("prewarm", "--model", argc, argv, &i, &value)) != 0) {
            if (match < 0)
                return CLI_USAGE;
            args->model_path = value;
        } else if ((match = cli_opt_value("prewarm", "--arch", argc, argv, &i, &value)) != 0) {
            if (match < 0)
                return CLI_USAGE;
            if (value[0] == '\0')
                return cli_usage_error("prewarm", "--arch needs a name such as sm_90a");
            args->arch = value;
        } else if ((match = cli_opt_value("prewarm", "--jobs", argc, argv, &i, &value)) != 0 ||
                   (match = cli_opt_value("prewarm", "-j", argc, argv, &i, &value)) != 0) {
            if (match < 0 || cli_parse_int("prewarm", "-j", value, 1, 4096, &args->jobs) != 0)
                return CLI_USAGE;
        } else if (strncmp(arg, "-j", 2) == 0) { /* -j8 */
            if (cli_parse_int("prewarm", "-j", arg + 2, 1, 4096, &args->jobs) != 0)
                return CLI_USAGE;
        } else if (arg[0] == '-') {
            return cli_usage_error("prewarm", "unknown option '%s'", arg);
        } else {
            return cli_usage_error("prewarm", "unexpected argument '%s'", arg);
        }
    }
    if ((args->spec_path == NULL) == (args->model_path == NULL))
        return cli_usage_error("prewarm", "give one of --spec FILE or --model FILE");
    return CLI_OK;
}

int cli_cmd_prewarm(int argc, char **argv)
{
    prewarm_args args = {0};
    int rc = parse_args(argc, argv, &args);
    if (rc != CLI_OK)
        return rc < 0 ? CLI_OK : rc;

    spec_file spec = {0};
    kiln_ctx *ctx = NULL;
    rc = args.spec_path ? spec_file_read(args.spec_path, &spec) : model_read(args.model_path, &spec);
    if (rc != CLI_OK)
        goto done;
    const char *source = args.spec_path ? args.spec_path : args.model_path;
    /* --arch: a compile-only context, so prewarming for a target needs no GPU. */
    rc = cli_ctx_open(&ctx, 1, args.arch, NULL);
    if (rc != CLI_OK)
        goto done;

    kiln_ctx_info info;
    memset(&info, 0, sizeof info);
    if (kiln_ctx_get_info(ctx, &info) != KILN_OK)
        snprintf(info.arch, sizeof info.arch, "%s", args.arch ? args.arch : "?");
    int num_threads = (int)args.jobs;
    if ((size_t)num_threads > spec.count)
        num_threads = spec.count > 0 ? (int)spec.count : 1;
    if (!args.quiet)
        fprintf(stderr, "kiln: prewarming %zu specialization%s from %s for %s on %d thread%s\n",
                spec.count, spec.count == 1 ? "" : "s", source, info.arch, num_threads,
                num_threads == 1 ? "" : "s");

    prewarm_pool pool = {.ctx = ctx, .spec = &spec};
    /* A line may need several kernels (e.g. a GEMM's with and without b_ready): the summary
     * counts lines, then the kernels the cache gained. */
    int64_t kernels_before = cached_kernels(ctx);
    double start = now_seconds();
    int progress = !args.quiet && isatty(STDERR_FILENO);
    run_pool(&pool, num_threads, progress, start);
    size_t failed = report_failures(&pool, source);
    double seconds = now_seconds() - start;

    if (!args.quiet || failed > 0) {
        printf("compiled %zu, already cached %zu, failed %zu (%.2f s)",
               atomic_load(&pool.compiled), atomic_load(&pool.cached), failed, seconds);
        int64_t kernels_after = cached_kernels(ctx);
        if (kernels_before >= 0 && kernels_after >= 0)
            printf("; kernels: %lld new, %lld in the cache",
                   (long long)(kernels_after - kernels_before), (long long)kernels_after);
        printf("\n");
    }
    rc = failed > 0 ? CLI_FAIL : CLI_OK;
done:
    kiln_ctx_destroy(ctx);
    spec_file_free(&spec);
    return rc;
}
