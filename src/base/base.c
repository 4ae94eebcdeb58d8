#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int kiln__log_level = KILN__LOG_WARN;

int kiln__err_set(kiln__err *err, int status, const char *fmt, ...)
{
    if (err == NULL || err->status != 0)
        return status;
    err->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return status;
}

void kiln__err_clear(kiln__err *err)
{
    if (err != NULL) {
        err->status = 0;
        err->msg[0] = '\0';
    }
}

void kiln__log(int level, const char *fmt, ...)
{
    if (level > kiln__log_level)
        return;
    static const char *names[] = {"", "error", "warning", "info", "debug"};
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "kiln: %s: %s\n", names[level < 0 || level > 4 ? 0 : level], line);
}

static bool str_reserve(kiln__str *s, size_t extra)
{
    if (s->failed)
        return false;
    if (s->len + extra + 1 <= s->cap)
        return true;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < s->len + extra + 1)
        cap *= 2;
    char *data = realloc(s->data, cap);
    if (data == NULL) {
        s->failed = true;
        return false;
    }
    s->data = data;
    s->cap = cap;
    return true;
}

void kiln__str_append(kiln__str *s, const char *text, size_t len)
{
    if (!str_reserve(s, len))
        return;
    memcpy(s->data + s->len, text, len);
    s->len += len;
    s->data[s->len] = '\0';
}

void kiln__str_printf(kiln__str *s, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0 || !str_reserve(s, (size_t)need)) {
        s->failed = true;
        va_end(ap2);
        return;
    }
    vsnprintf(s->data + s->len, (size_t)need + 1, fmt, ap2);
    va_end(ap2);
    s->len += (size_t)need;
}

void kiln__str_free(kiln__str *s)
{
    free(s->data);
    *s = (kiln__str){0};
}

void kiln__hex16(const uint8_t bytes[16], char out[33])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[32] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool kiln__unhex16(const char *hex, uint8_t out[16])
{
    if (hex == NULL || strlen(hex) != 32)
        return false;
    for (int i = 0; i < 16; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

double kiln__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
