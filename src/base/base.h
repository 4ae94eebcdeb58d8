/* Small helpers every layer shares: error records, logging, growable strings, hex. */
#ifndef KILN_BASE_H
#define KILN_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An error record threaded through internal calls. The first error wins: later calls to
 * kiln__err_set on a record that already holds one keep the first message. */
typedef struct kiln__err {
    int status; /* kiln_status; 0 = none */
    char msg[4096];
} kiln__err;

/* Returns status, so a caller can write `return kiln__err_set(err, ...)`. err may be NULL. */
int kiln__err_set(kiln__err *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kiln__err_clear(kiln__err *err);

/* Logging through the KILN_LOG knob; writes to stderr, one line each, prefixed "kiln: ". */
extern int kiln__log_level;
void kiln__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define KILN__LOG_ERROR 1
#define KILN__LOG_WARN 2
#define KILN__LOG_INFO 3
#define KILN__LOG_DEBUG 4

/* A growable NUL-terminated string. An allocation failure sets `failed` and keeps the
 * string as it was; check it once at the end. */
typedef struct kiln__str {
    char *data;
    size_t len, cap;
    bool failed;
} kiln__str;
void kiln__str_append(kiln__str *s, const char *text, size_t len);
void kiln__str_printf(kiln__str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kiln__str_free(kiln__str *s);

/* 16 bytes -> 32 lowercase hex digits + NUL. */
void kiln__hex16(const uint8_t bytes[16], char out[33]);
/* 32 hex digits -> 16 bytes; false on a bad string. */
bool kiln__unhex16(const char *hex, uint8_t out[16]);

/* Monotonic milliseconds. */
double kiln__now_ms(void);

#endif
