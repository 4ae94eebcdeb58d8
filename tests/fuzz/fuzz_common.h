/* Shared by the libFuzzer targets (scripts/fuzz.sh): reading values from the fuzz bytes,
 * compile-only contexts, and failing with the input's meaning spelled out. */
#ifndef KILN_FUZZ_COMMON_H
#define KILN_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kiln/kiln.h"

typedef struct fuzz_bytes {
    const unsigned char *next;
    size_t left;
} fuzz_bytes;

static inline unsigned fuzz_byte(fuzz_bytes *in)
{
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->next++;
}

/* Mostly edge values (sizes the operators meet, their limits and past them), else a
 * multiple of 16 up to ~1M. */
static inline long long fuzz_value(fuzz_bytes *in)
{
    /* clang-format off */
    static const long long edges[] = {
        0, 1, -1, 2, 3, 4, 7, 8, 15, 16, 17, 32, 56, 63, 64, 65, 127, 128, 129, 192, 256, 512,
        576, 1000, 1024, 1536, 2048, 2112, 4096, 7168, 8192, 16384, 24576, 32768, 57344, 65536,
        65537, 100000, 1LL << 20, 1LL << 24, (1LL << 24) + 1, (1LL << 31) - 256, (1LL << 31) - 1,
        1LL << 31, 1LL << 32, 1LL << 40, (1LL << 40) + 1, 1LL << 62, INT64_MAX, INT64_MIN};
    /* clang-format on */
    unsigned b = fuzz_byte(in);
    if (b < 224)
        return edges[b % (sizeof edges / sizeof edges[0])];
    return (long long)fuzz_byte(in) * 16 * (b - 223);
}

/* A compile-only context for sm_90a with num_sms SMs, KILN_JIT=0, no cache, no log. */
static inline kiln_ctx *fuzz_ctx(int num_sms)
{
    kiln_options o;
    if (kiln_options_init(&o) != KILN_OK)
        abort();
    o.device = KILN_DEVICE_NONE;
    o.arch = "sm_90a";
    o.jit = 0;
    o.cache_path = "";
    o.log_level = 0;
    o.num_sms = num_sms;
    kiln_ctx *ctx = NULL;
    if (kiln_ctx_create(&ctx, &o) != KILN_OK) {
        fprintf(stderr, "kiln_ctx_create: %s\n", kiln_last_errmsg());
        abort();
    }
    return ctx;
}

/* The context keeps its first error until a call succeeds: one that does, so the next
 * input's message is its own. */
static inline void fuzz_forget_error(kiln_ctx *ctx)
{
    kiln_ctx_info info;
    if (kiln_ctx_get_info(ctx, &info) != KILN_OK)
        abort();
}

static inline void fuzz_fail(kiln_ctx *ctx, const char *what, kiln_status s)
{
    fprintf(stderr, "%s -> %s: \"%s\"\n", what, kiln_status_str(s), kiln_ctx_errmsg(ctx));
    abort();
}

#endif
