/*
 * kiln cache ls | stats | verify | prune | clear [--json]
 *
 * The cache commands use a compile-only context: they touch only the cache files, so
 * they neither need nor initialise a GPU. With --json, ls and verify print one object
 * per line per entry (JSON Lines), stats one per root, prune and clear one summary.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct listing {
    int json;
    int64_t count;
    const char *status; /* verify: what happened to the entry */
} listing;

static void format_time(int64_t unix_seconds, char *buf, size_t size)
{
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    if (unix_seconds <= 0 || localtime_r(&t, &tm) == NULL ||
        strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(buf, size, "-");
}

static void entry_json(const kiln_cache_entry *entry, const char *status)
{
    cli_json json;
    cli_json_begin(&json, stdout);
    cli_json_str(&json, "key", entry->key);
    if (status != NULL)
        cli_json_str(&json, "status", status);
    cli_json_str(&json, "template", entry->template_name);
    cli_json_str(&json, "arch", entry->arch);
    cli_json_int(&json, "cubin_bytes", entry->cubin_bytes);
    cli_json_int(&json, "source_bytes", entry->source_bytes);
    cli_json_int(&json, "registers", entry->registers);
    cli_json_int(&json, "spills", entry->spills);
    cli_json_int(&json, "smem_bytes", entry->smem_bytes);
    cli_json_num(&json, "compile_ms", entry->compile_ms);
    cli_json_int(&json, "hits", entry->hits);
    cli_json_int(&json, "created", entry->created);
    cli_json_int(&json, "last_used", entry->last_used);
    cli_json_str(&json, "root", entry->root);
    cli_json_bool(&json, "writable", entry->writable);
    cli_json_str(&json, "key_text", entry->key_text);
    cli_json_end(&json);
    fputc('\n', stdout);
}

static int visit_entry(const kiln_cache_entry *entry, void *user)
{
    listing *list = user;
    if (list->json) {
        entry_json(entry, list->status);
    } else {
        if (list->count == 0)
            printf("%-32s  %-20s %-8s %9s %4s %6s %10s %6s  %-19s  %s\n",
                   list->status ? "BAD KEY" : "KEY", "TEMPLATE", "ARCH", "CUBIN", "REGS", "SPILLS",
                   "COMPILE_MS", "HITS", "LAST USED", "ROOT");
        char last_used[32];
        format_time(entry->last_used, last_used, sizeof last_used);
        printf("%-32s  %-20s %-8s %9lld %4d %6d %10.1f %6lld  %-19s  %s\n",
               entry->key ? entry->key : "?", entry->template_name ? entry->template_name : "?",
               entry->arch ? entry->arch : "?", (long long)entry->cubin_bytes, entry->registers,
               entry->spills, entry->compile_ms, (long long)entry->hits, last_used,
               entry->root ? entry->root : "?");
    }
    list->count++;
    return 0;
}

static int visit_root(const kiln_cache_stats *stats, void *user)
{
    listing *list = user;
    if (list->json) {
        cli_json_root_stats(stdout, stats);
        fputc('\n', stdout);
    } else {
        if (list->count == 0)
            printf("%-9s %8s %12s %12s %11s  %s\n", "MODE", "ENTRIES", "BYTES", "FILE_BYTES",
                   "QUARANTINED", "ROOT");
        printf("%-9s %8lld %12lld %12lld %11lld  %s\n", stats->writable ? "writable" : "read-only",
               (long long)stats->entries, (long long)stats->bytes, (long long)stats->file_bytes,
               (long long)stats->quarantined, stats->root ? stats->root : "?");
    }
    list->count++;
    return 0;
}

static int api_failed(const char *call, kiln_status status, const kiln_ctx *ctx)
{
    return cli_fail("cache: %s: %s: %s", call, kiln_status_str(status), cli_errmsg(ctx));
}

static int cache_verify(kiln_ctx *ctx, int json)
{
    listing list = {.json = json, .status = "quarantined"};
    int64_t checked = 0, bad = 0;
    kiln_status status = kiln_cache_verify(ctx, visit_entry, &list, &checked, &bad);
    if (status != KILN_OK)
        return api_failed("kiln_cache_verify", status, ctx);
    if (json) {
        /* The summary has no "key": a reader of entries skips it. */
        cli_json summary;
        cli_json_begin(&summary, stdout);
        cli_json_int(&summary, "checked", checked);
        cli_json_int(&summary, "bad", bad);
        cli_json_end(&summary);
        fputc('\n', stdout);
    } else {
        printf("checked %lld, bad %lld%s\n", (long long)checked, (long long)bad,
               bad > 0 ? " (quarantined; they will be rebuilt on next use)" : "");
    }
    return bad > 0 ? CLI_FAIL : CLI_OK;
}

static int print_removed(int json, int64_t removed, int64_t max_mb)
{
    if (json) {
        cli_json summary;
        cli_json_begin(&summary, stdout);
        cli_json_int(&summary, "removed", removed);
        if (max_mb >= 0)
            cli_json_int(&summary, "max_mb", max_mb);
        cli_json_end(&summary);
        fputc('\n', stdout);
    } else {
        printf("removed %lld entr%s\n", (long long)removed, removed == 1 ? "y" : "ies");
    }
    return CLI_OK;
}

/* argv[0] is "cache", argv[1] the subcommand. */
int cli_cmd_cache(int argc, char **argv)
{
    static const char *const subcommands[] = {"ls", "stats", "verify", "prune", "clear"};
    if (argc < 2)
        return cli_usage_error("cache", "which one? ls, stats, verify, prune or clear");
    const char *sub = argv[1];
    if (cli_is_help(sub)) {
        cli_print_usage(stdout, "cache");
        return CLI_OK;
    }
    int known = 0;
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        known |= strcmp(sub, subcommands[i]) == 0;
    if (!known)
        return cli_usage_error("cache", "unknown subcommand '%s'", sub);

    int json = 0;
    int64_t max_mb = -1;
    for (int i = 2; i < argc; i++) {
        const char *value = NULL;
        int match;
        if (cli_is_help(argv[i])) {
            cli_print_usage(stdout, "cache");
            return CLI_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(sub, "prune") == 0 &&
                   (match = cli_opt_value("cache", "--max-mb", argc, argv, &i, &value)) != 0) {
            if (match < 0 || cli_parse_int("cache", "--max-mb", value, 0, INT64_MAX / (1024 * 1024),
                                           &max_mb) != 0)
                return CLI_USAGE;
        } else {
            return cli_usage_error("cache", "unexpected argument '%s' for 'cache %s'", argv[i],
                                   sub);
        }
    }
    if (strcmp(sub, "prune") == 0 && max_mb < 0)
        return cli_usage_error("cache", "prune needs --max-mb N");

    kiln_ctx *ctx = NULL;
    int rc = cli_ctx_open(&ctx, 0, NULL, NULL);
    if (rc != CLI_OK)
        return rc;

    listing list = {.json = json};
    kiln_status status = KILN_OK;
    int64_t removed = 0;
    if (strcmp(sub, "ls") == 0) {
        status = kiln_cache_list(ctx, visit_entry, &list);
        if (status != KILN_OK)
            rc = api_failed("kiln_cache_list", status, ctx);
    } else if (strcmp(sub, "stats") == 0) {
        status = kiln_cache_stats_each(ctx, visit_root, &list);
        if (status != KILN_OK)
            rc = api_failed("kiln_cache_stats_each", status, ctx);
    } else if (strcmp(sub, "verify") == 0) {
        rc = cache_verify(ctx, json);
    } else if (strcmp(sub, "prune") == 0) {
        status = kiln_cache_prune(ctx, max_mb * 1024 * 1024, &removed);
        rc = status != KILN_OK ? api_failed("kiln_cache_prune", status, ctx)
                               : print_removed(json, removed, max_mb);
    } else {
        status = kiln_cache_clear(ctx, &removed);
        rc = status != KILN_OK ? api_failed("kiln_cache_clear", status, ctx)
                               : print_removed(json, removed, -1);
    }
    kiln_ctx_destroy(ctx);
    return rc;
}
