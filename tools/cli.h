/*
 * The `kiln` command-line tool: helpers shared by the command files. The tool uses only
 * the public API (kiln/kiln.h). Exit status everywhere: 0 success, 1 failure, 2 usage.
 */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "kiln/kiln.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* "kiln: <message>" on stderr. Returns CLI_FAIL. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "kiln <command>: <message>" and a pointer to the command's help on stderr. Returns
 * CLI_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Option parsing over argv[*i]. Accepts "--name VALUE" and "--name=VALUE".
 * Returns 1 with *value set (and *i advanced past a separate value), 0 when argv[*i] is
 * not this option, -1 when the value is missing (a usage message has been printed). */
int cli_opt_value(const char *command, const char *name, int argc, char **argv, int *i,
                  const char **value);
/* A decimal integer in [min, max], or a usage message naming option. Returns 0 or -1. */
int cli_parse_int(const char *command, const char *option, const char *text, int64_t min,
                  int64_t max, int64_t *out);
/* 1 when arg is "-h" or "--help". */
int cli_is_help(const char *arg);

/* Create a context from the environment. want_device: use device opts.device when the
 * driver reports one (otherwise, and always when 0, a compile-only context). arch, when
 * non-NULL, sets opts.arch and forces a compile-only context. Prints the reason on
 * failure; returns CLI_OK or CLI_FAIL. *opts_out (may be NULL) receives the options used. */
int cli_ctx_open(kiln_ctx **out, int want_device, const char *arch, kiln_options *opts_out);

/* The context's message, else the thread-local one, else "no message". */
const char *cli_errmsg(const kiln_ctx *ctx);

/* JSON output: one object at a time, fields appended in order. Strings are escaped
 * (quotes, backslashes, control characters; invalid UTF-8 becomes U+FFFD). */
typedef struct cli_json {
    FILE *out;
    int fields;
} cli_json;
void cli_json_begin(cli_json *json, FILE *out);
void cli_json_end(cli_json *json); /* "}" without a newline */
void cli_json_key(cli_json *json, const char *key);
void cli_json_str(cli_json *json, const char *key, const char *value); /* NULL -> null */
void cli_json_int(cli_json *json, const char *key, int64_t value);
void cli_json_num(cli_json *json, const char *key, double value); /* non-finite -> null */
void cli_json_bool(cli_json *json, const char *key, int value);
void cli_json_write_string(FILE *out, const char *text);
/* One cache root's statistics as one object ("root", "writable", "entries", "bytes",
 * "file_bytes", "quarantined"), without a newline: `kiln info` and `kiln cache stats` agree. */
void cli_json_root_stats(FILE *out, const kiln_cache_stats *stats);

/* "12.3 KiB" into buf. */
const char *cli_format_bytes(int64_t bytes, char *buf, size_t size);

/* Spec lines expanded from a model description (tools/cli_model.c). */
typedef struct cli_lines {
    char **items;
    size_t count, cap;
} cli_lines;
/* Read a model file and append the spec line of every kernel its shapes need (deduplicated).
 * Returns CLI_OK, or CLI_FAIL with the problem printed (file:line). */
int cli_model_expand(const char *path, cli_lines *out);
void cli_lines_free(cli_lines *lines);

/* Commands: argv[0] is the command's name. */
int cli_cmd_info(int argc, char **argv);
int cli_cmd_prewarm(int argc, char **argv);
int cli_cmd_cache(int argc, char **argv);
int cli_cmd_bench(int argc, char **argv);

/* Usage text of one command ("info", "prewarm", "cache", "bench"), or of all when NULL. */
void cli_print_usage(FILE *out, const char *command);

#endif
