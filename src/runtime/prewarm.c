/* kiln_prewarm: one spec line ("op key=value ...") -> the kernels it needs, compiled into
 * the cache without a device. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_bf16.h"
#include "internal.h"

static const kiln__prewarm_op ops[] = {
    {"quant_fp8_per_token", kiln__quant_prewarm},
    {"quant_fp8_per_block", kiln__quant_block_prewarm},
    {"sf_transpose", kiln__sf_transpose_prewarm},
    {"gemm_fp8", kiln__gemm_fp8_prewarm},
    {"gemm_fp8_masked", kiln__gemm_fp8_masked_prewarm},
    {"gemm_fp8_contig", kiln__gemm_fp8_contig_prewarm},
    {"gemm_bf16", kiln__gemm_bf16_prewarm},
    {"gemm_bf16_masked", kiln__gemm_bf16_masked_prewarm},
    {"gemm_bf16_contig", kiln__gemm_bf16_contig_prewarm},
};

int kiln__spec_word(kiln_ctx *ctx, kiln__spec_words *words, const char *key, bool required,
                    int64_t fallback, int64_t *value)
{
    for (int i = 0; i < words->count; i++) {
        if (strcmp(words->keys[i], key) == 0) {
            words->used[i] = true;
            *value = words->values[i];
            return KILN_OK;
        }
    }
    if (required)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG, "spec line: missing %s=...", key);
    *value = fallback;
    return KILN_OK;
}

/* Split "op a=1 b=2" in place (line is a private copy). */
static int parse_line(kiln_ctx *ctx, char *line, const char **op, kiln__spec_words *words)
{
    char *save = NULL;
    *op = strtok_r(line, " \t\r\n", &save);
    words->count = 0;
    for (char *word = strtok_r(NULL, " \t\r\n", &save); word != NULL;
         word = strtok_r(NULL, " \t\r\n", &save)) {
        char *eq = strchr(word, '=');
        if (eq == NULL || eq == word)
            return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                                   "spec line: \"%s\" is not key=value", word);
        if (words->count == 16)
            return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG, "spec line: too many words");
        *eq = '\0';
        char *end;
        errno = 0;
        long long v = strtoll(eq + 1, &end, 10);
        if (errno != 0 || end == eq + 1 || *end != '\0')
            return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                                   "spec line: %s=%s is not an integer", word, eq + 1);
        words->keys[words->count] = word;
        words->values[words->count] = v;
        words->used[words->count] = false;
        words->count++;
    }
    return KILN_OK;
}

kiln_status kiln_prewarm(kiln_ctx *ctx, const char *spec_line, int *was_cached)
{
    if (ctx == NULL) {
        kiln__err err = {0};
        kiln__err_set(&err, KILN_ERR_INVALID_ARG, "kiln_prewarm: ctx is NULL");
        kiln__set_last_error(&err);
        return KILN_ERR_INVALID_ARG;
    }
    if (spec_line == NULL)
        return (kiln_status)kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                                            "kiln_prewarm: spec_line is NULL");
    char *line = strdup(spec_line);
    if (line == NULL)
        return (kiln_status)kiln__ctx_failf(ctx, KILN_ERR_OUT_OF_MEMORY, "kiln_prewarm: out of memory");
    const char *op = NULL;
    kiln__spec_words words;
    kj_spec specs[16];
    int num_specs = 0, status = parse_line(ctx, line, &op, &words);
    const kiln__prewarm_op *found = NULL;
    for (size_t i = 0; status == KILN_OK && op != NULL && i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(ops[i].name, op) == 0)
            found = &ops[i];
    if (status == KILN_OK && found == NULL)
        status = kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG, "spec line: unknown operator \"%s\"",
                                 op ? op : "");
    if (status == KILN_OK)
        status = found->specs(ctx, &words, specs, &num_specs);
    for (int i = 0; status == KILN_OK && i < words.count; i++)
        if (!words.used[i])
            status = kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                                     "spec line: %s does not take %s=", op, words.keys[i]);
    int all_cached = 1;
    for (int i = 0; status == KILN_OK && i < num_specs; i++) {
        bool cached = false;
        kiln__err err = {0};
        status = kiln__cubin_ensure(ctx, &specs[i], &cached, &err);
        if (status != KILN_OK)
            kiln__ctx_fail(ctx, &err);
        all_cached &= cached;
    }
    free(line);
    if (was_cached != NULL)
        *was_cached = status == KILN_OK && all_cached;
    return status == KILN_OK ? kiln__ctx_ok(ctx) : (kiln_status)status;
}
