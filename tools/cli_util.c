/* Helpers of the kiln CLI: messages, option parsing, context set-up, JSON output. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kiln: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_FAIL;
}

int cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kiln %s: ", command);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'kiln %s --help'.\n", command);
    va_end(ap);
    return CLI_USAGE;
}

int cli_opt_value(const char *command, const char *name, int argc, char **argv, int *i,
                  const char **value)
{
    const char *arg = argv[*i];
    size_t len = strlen(name);
    if (strncmp(arg, name, len) != 0)
        return 0;
    if (arg[len] == '=') {
        *value = arg + len + 1;
        return 1;
    }
    if (arg[len] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        cli_usage_error(command, "option %s needs a value", name);
        return -1;
    }
    *i += 1;
    *value = argv[*i];
    return 1;
}

int cli_parse_int(const char *command, const char *option, const char *text, int64_t min,
                  int64_t max, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (text[0] == '\0' || *end != '\0' || errno == ERANGE || value < min || value > max) {
        cli_usage_error(command, "%s wants an integer in [%" PRId64 ", %" PRId64 "], not '%s'",
                        option, min, max, text);
        return -1;
    }
    *out = value;
    return 0;
}

int cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

const char *cli_errmsg(const kiln_ctx *ctx)
{
    const char *msg = ctx != NULL ? kiln_ctx_errmsg(ctx) : "";
    if (msg == NULL || msg[0] == '\0')
        msg = kiln_last_errmsg();
    if (msg == NULL || msg[0] == '\0')
        msg = "no message";
    return msg;
}

int cli_ctx_open(kiln_ctx **out, int want_device, const char *arch, kiln_options *opts_out)
{
    *out = NULL;
    kiln_options opts;
    kiln_status status = kiln_options_init(&opts);
    if (status != KILN_OK)
        return cli_fail("%s: %s", kiln_status_str(status), cli_errmsg(NULL));

    int num_devices = 0;
    if (want_device && arch == NULL) {
        status = kiln_device_count(&num_devices);
        if (status != KILN_OK) {
            fprintf(stderr, "kiln: warning: no device (%s: %s)\n", kiln_status_str(status),
                    cli_errmsg(NULL));
            num_devices = 0;
        }
    }
    if (arch != NULL)
        opts.arch = arch;
    if (num_devices == 0)
        opts.device = KILN_DEVICE_NONE;

    status = kiln_ctx_create(out, &opts);
    if (status != KILN_OK && opts.device != KILN_DEVICE_NONE) {
        /* A driver that reports devices but cannot open one: a compile-only context
         * still serves prewarm, info and cache. */
        fprintf(stderr, "kiln: warning: device %d unusable (%s: %s); continuing without it\n",
                opts.device, kiln_status_str(status), cli_errmsg(NULL));
        opts.device = KILN_DEVICE_NONE;
        status = kiln_ctx_create(out, &opts);
    }
    if (status != KILN_OK) {
        *out = NULL;
        return cli_fail("cannot create a context: %s: %s", kiln_status_str(status),
                        cli_errmsg(NULL));
    }
    if (opts_out != NULL)
        *opts_out = opts;
    return CLI_OK;
}

/* ---------------------------------------------------------------- JSON */

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates,
 * nothing past U+10FFFF), 0 if invalid. p[0] >= 0x80. */
static size_t utf8_sequence_length(const unsigned char *p)
{
    size_t len;
    unsigned min;
    unsigned code;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2;
        min = 0x80;
        code = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3;
        min = 0x800;
        code = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4;
        min = 0x10000;
        code = p[0] & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        code = (code << 6) | (p[i] & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
        return 0;
    return len;
}

void cli_json_write_string(FILE *out, const char *text)
{
    if (text == NULL) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    const unsigned char *p = (const unsigned char *)text;
    while (*p != '\0') {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
            p++;
        } else if (c < 0x20) {
            const char *named = c == '\n'   ? "\\n"
                                : c == '\t' ? "\\t"
                                : c == '\r' ? "\\r"
                                : c == '\b' ? "\\b"
                                : c == '\f' ? "\\f"
                                            : NULL;
            if (named != NULL)
                fputs(named, out);
            else
                fprintf(out, "\\u%04x", c);
            p++;
        } else if (c < 0x80) {
            fputc(c, out);
            p++;
        } else {
            size_t len = utf8_sequence_length(p);
            if (len == 0) {
                fputs("\\ufffd", out);
                p++;
            } else {
                fwrite(p, 1, len, out);
                p += len;
            }
        }
    }
    fputc('"', out);
}

void cli_json_begin(cli_json *json, FILE *out)
{
    json->out = out;
    json->fields = 0;
    fputc('{', out);
}

void cli_json_end(cli_json *json)
{
    fputc('}', json->out);
}

void cli_json_root_stats(FILE *out, const kiln_cache_stats *stats)
{
    cli_json json;
    cli_json_begin(&json, out);
    cli_json_str(&json, "root", stats->root);
    cli_json_bool(&json, "writable", stats->writable);
    cli_json_int(&json, "entries", stats->entries);
    cli_json_int(&json, "bytes", stats->bytes);
    cli_json_int(&json, "file_bytes", stats->file_bytes);
    cli_json_int(&json, "quarantined", stats->quarantined);
    cli_json_end(&json);
}

void cli_json_key(cli_json *json, const char *key)
{
    if (json->fields++ > 0)
        fputc(',', json->out);
    cli_json_write_string(json->out, key);
    fputc(':', json->out);
}

void cli_json_str(cli_json *json, const char *key, const char *value)
{
    cli_json_key(json, key);
    cli_json_write_string(json->out, value);
}

void cli_json_int(cli_json *json, const char *key, int64_t value)
{
    cli_json_key(json, key);
    fprintf(json->out, "%" PRId64, value);
}

void cli_json_num(cli_json *json, const char *key, double value)
{
    cli_json_key(json, key);
    if (isfinite(value))
        fprintf(json->out, "%.3f", value);
    else
        fputs("null", json->out);
}

void cli_json_bool(cli_json *json, const char *key, int value)
{
    cli_json_key(json, key);
    fputs(value ? "true" : "false", json->out);
}

const char *cli_format_bytes(int64_t bytes, char *buf, size_t size)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = (double)bytes;
    int unit = 0;
    while (value >= 1024.0 && unit < 4) {
        value /= 1024.0;
        unit++;
    }
    if (unit == 0)
        snprintf(buf, size, "%" PRId64 " B", bytes);
    else
        snprintf(buf, size, "%.1f %s", value, units[unit]);
    return buf;
}
