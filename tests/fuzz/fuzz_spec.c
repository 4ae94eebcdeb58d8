/* libFuzzer target: kiln_prewarm spec lines, built from the fuzz bytes as an operator and
 * key=value words with edge values (0, -1, powers of two, INT64_MAX, ...), on compile-only
 * contexts of 0 (132), 1, 7, 78, 132 and 1024 SMs with KILN_JIT=0 and no cache: every line
 * is parsed, checked and picked, none compiled. A line must succeed or fail with
 * INVALID_ARG or MISS and a message. Run by scripts/fuzz.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_common.h"

static const char *const ops[] = {
    "quant_fp8_per_token", "quant_fp8_per_block", "sf_transpose", "gemm_fp8",
    "gemm_fp8_masked",     "gemm_fp8_contig",     "gemm_bf16",    "gemm_bf16_masked",
    "gemm_bf16_contig"};
static const char *const keys[] = {"m", "n", "k", "g", "f32", "align", "layout"};

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static const int sms[] = {0, 1, 7, 78, 132, 1024};
    static kiln_ctx *ctxs[6];
    if (ctxs[0] == NULL)
        for (int i = 0; i < 6; i++)
            ctxs[i] = fuzz_ctx(sms[i]);
    fuzz_bytes in = {data, size};
    kiln_ctx *ctx = ctxs[fuzz_byte(&in) % 6];
    char line[1024];
    int len = snprintf(line, sizeof line, "%s", ops[fuzz_byte(&in) % 9]);
    while (in.left > 0 && len < 900)
        len += snprintf(line + len, sizeof line - (size_t)len, " %s=%lld", keys[fuzz_byte(&in) % 7],
                        fuzz_value(&in));
    kiln_status s = kiln_prewarm(ctx, line, NULL);
    if (s != KILN_OK && s != KILN_ERR_INVALID_ARG && s != KILN_ERR_MISS)
        fuzz_fail(ctx, line, s);
    if (s != KILN_OK && kiln_ctx_errmsg(ctx)[0] == '\0')
        fuzz_fail(ctx, line, s);
    fuzz_forget_error(ctx);
    return 0;
}
