/*
 * Model descriptions for `kiln prewarm --model FILE`: the shapes of one model's layers and
 * the batch sizes a server runs, expanded into the spec lines of every kernel they need.
 *
 * Format: one `key value...` per line, `#` comments. Keys:
 *   model NAME               a label
 *   hidden H                 hidden size (K of the expert GEMM 1, N of GEMM 2)
 *   moe_intermediate I       expert intermediate size
 *   experts E, top_k T       routed experts and experts per token
 *   ep_ranks R               GPUs the experts are spread over (default 1): E/R local experts
 *   dense_fp8 NxK ...        dense FP8 projections (128x128-block scaled weights)
 *   batch B ...              token counts per step and GPU the server runs (M buckets)
 *   decode_max B             largest batch served by the masked (decode) expert GEMMs
 *                            (default 256); larger batches are prefill, served by the
 *                            contiguous grouped expert GEMMs
 *   prefill_align A          row alignment of each expert's block in the prefill layout
 *                            (the DeepEP v2 m alignment; default 128, a multiple of 64)
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct model {
    char name[64];
    int64_t hidden, moe_intermediate, experts, top_k, ep_ranks, decode_max, prefill_align;
    int64_t dense[64][2];
    int num_dense;
    int64_t batch[64];
    int num_batch;
} model;

void cli_lines_free(cli_lines *lines)
{
    for (size_t i = 0; i < lines->count; i++)
        free(lines->items[i]);
    free(lines->items);
    memset(lines, 0, sizeof *lines);
}

static int add_line(cli_lines *lines, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_line(cli_lines *lines, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < lines->count; i++) /* one line per kernel request */
        if (strcmp(lines->items[i], text) == 0)
            return CLI_OK;
    if (lines->count == lines->cap) {
        size_t cap = lines->cap ? lines->cap * 2 : 64;
        char **items = realloc(lines->items, cap * sizeof *items);
        if (items == NULL)
            return cli_fail("prewarm: out of memory");
        lines->items = items;
        lines->cap = cap;
    }
    if ((lines->items[lines->count] = strdup(text)) == NULL)
        return cli_fail("prewarm: out of memory");
    lines->count++;
    return CLI_OK;
}

static int parse_count(const char *path, long line_no, const char *word, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(word, &end, 10);
    if (errno != 0 || end == word || *end != '\0' || v <= 0 || v > (1LL << 31))
        return cli_fail("%s:%ld: \"%s\" is not a positive integer", path, line_no, word);
    *out = v;
    return CLI_OK;
}

static int parse_line(const char *path, long line_no, char *text, model *m)
{
    char *save = NULL;
    char *key = strtok_r(text, " \t\r\n", &save);
    if (key == NULL)
        return CLI_OK;
    int64_t *scalar = strcmp(key, "hidden") == 0             ? &m->hidden
                      : strcmp(key, "moe_intermediate") == 0 ? &m->moe_intermediate
                      : strcmp(key, "experts") == 0          ? &m->experts
                      : strcmp(key, "top_k") == 0            ? &m->top_k
                      : strcmp(key, "ep_ranks") == 0         ? &m->ep_ranks
                      : strcmp(key, "decode_max") == 0       ? &m->decode_max
                      : strcmp(key, "prefill_align") == 0    ? &m->prefill_align
                                                             : NULL;
    char *word = strtok_r(NULL, " \t\r\n", &save);
    if (word == NULL)
        return cli_fail("%s:%ld: %s needs a value", path, line_no, key);
    if (strcmp(key, "model") == 0 || scalar != NULL) {
        char *extra = strtok_r(NULL, " \t\r\n", &save);
        if (extra != NULL)
            return cli_fail("%s:%ld: %s takes one value, not also \"%s\"", path, line_no, key,
                            extra);
    }
    if (strcmp(key, "model") == 0) {
        snprintf(m->name, sizeof m->name, "%s", word);
        return CLI_OK;
    }
    if (scalar != NULL)
        return parse_count(path, line_no, word, scalar);
    for (; word != NULL; word = strtok_r(NULL, " \t\r\n", &save)) {
        if (strcmp(key, "batch") == 0) {
            if (m->num_batch == 64)
                return cli_fail("%s:%ld: more than 64 batch sizes", path, line_no);
            if (parse_count(path, line_no, word, &m->batch[m->num_batch++]) != CLI_OK)
                return CLI_FAIL;
        } else if (strcmp(key, "dense_fp8") == 0) {
            long long n, k;
            char tail;
            if (sscanf(word, "%lldx%lld%c", &n, &k, &tail) != 2 || n <= 0 || k <= 0)
                return cli_fail("%s:%ld: \"%s\" is not NxK", path, line_no, word);
            if (m->num_dense == 64)
                return cli_fail("%s:%ld: more than 64 dense shapes", path, line_no);
            m->dense[m->num_dense][0] = n;
            m->dense[m->num_dense++][1] = k;
        } else {
            return cli_fail("%s:%ld: unknown key \"%s\"", path, line_no, key);
        }
    }
    return CLI_OK;
}

static int read_model(const char *path, model *m)
{
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return cli_fail("prewarm: cannot open model file '%s': %s", path, strerror(errno));
    char *buffer = NULL;
    size_t size = 0;
    long line_no = 0;
    int rc = CLI_OK;
    while (rc == CLI_OK && getline(&buffer, &size, file) >= 0) {
        line_no++;
        char *hash = strchr(buffer, '#');
        if (hash != NULL)
            *hash = '\0';
        rc = parse_line(path, line_no, buffer, m);
    }
    free(buffer);
    fclose(file);
    if (rc != CLI_OK)
        return rc;
    if (m->hidden == 0 || m->moe_intermediate == 0 || m->experts == 0 || m->top_k == 0 ||
        m->num_batch == 0)
        return cli_fail("%s: a model needs hidden, moe_intermediate, experts, top_k and batch",
                        path);
    return CLI_OK;
}

int cli_model_expand(const char *path, cli_lines *out)
{
    model m;
    memset(&m, 0, sizeof m);
    m.ep_ranks = 1;
    m.decode_max = 256;
    m.prefill_align = 128;
    if (read_model(path, &m) != CLI_OK)
        return CLI_FAIL;
    if (m.prefill_align % 64 != 0)
        return cli_fail("%s: prefill_align (%lld) must be a multiple of 64", path,
                        (long long)m.prefill_align);
    if (m.experts % m.ep_ranks != 0)
        return cli_fail("%s: experts (%lld) must divide by ep_ranks (%lld)", path,
                        (long long)m.experts, (long long)m.ep_ranks);
    int rc = CLI_OK;
    /* Activations are quantized per token before every FP8 GEMM: one kernel per K. */
    rc |= add_line(out, "quant_fp8_per_token k=%lld", (long long)m.hidden);
    rc |= add_line(out, "quant_fp8_per_token k=%lld", (long long)m.moe_intermediate);
    for (int d = 0; d < m.num_dense; d++)
        rc |= add_line(out, "quant_fp8_per_token k=%lld", (long long)m.dense[d][1]);
    rc |= add_line(out, "sf_transpose");
    /* Dense FP8 projections: the tile configuration depends on M, so every bucket. */
    for (int d = 0; d < m.num_dense; d++)
        for (int b = 0; b < m.num_batch; b++)
            rc |= add_line(out, "gemm_fp8 m=%lld n=%lld k=%lld", (long long)m.batch[b],
                           (long long)m.dense[d][0], (long long)m.dense[d][1]);
    /* Expert GEMMs at decode: masked groups, one per local expert. Every GPU sends its
     * tokens' top-k choices over all ranks, so a local expert expects about
     * batch * ranks * top_k / experts rows. GEMM 1 fuses gate and up (N = 2I). */
    int64_t local = m.experts / m.ep_ranks;
    for (int b = 0; b < m.num_batch; b++) {
        if (m.batch[b] > m.decode_max)
            continue;
        int64_t rows = (m.batch[b] * m.ep_ranks * m.top_k + m.experts - 1) / m.experts;
        rc |= add_line(out, "gemm_fp8_masked g=%lld m=%lld n=%lld k=%lld", (long long)local,
                       (long long)rows, (long long)(2 * m.moe_intermediate), (long long)m.hidden);
        rc |= add_line(out, "gemm_fp8_masked g=%lld m=%lld n=%lld k=%lld", (long long)local,
                       (long long)rows, (long long)m.hidden, (long long)m.moe_intermediate);
    }
    /* Expert GEMMs at prefill: contiguous groups. A GPU receives top_k rows per token of
     * the batch (its ranks' tokens spread over all ranks), so M_total ~ batch * top_k, in
     * one group per local expert. */
    for (int b = 0; b < m.num_batch; b++) {
        if (m.batch[b] <= m.decode_max)
            continue;
        long long rows = (long long)(m.batch[b] * m.top_k), align = (long long)m.prefill_align;
        rc |= add_line(out, "gemm_fp8_contig m=%lld n=%lld k=%lld align=%lld g=%lld", rows,
                       (long long)(2 * m.moe_intermediate), (long long)m.hidden, align,
                       (long long)local);
        rc |= add_line(out, "gemm_fp8_contig m=%lld n=%lld k=%lld align=%lld g=%lld", rows,
                       (long long)m.hidden, (long long)m.moe_intermediate, align,
                       (long long)local);
    }
    return rc == CLI_OK ? CLI_OK : CLI_FAIL;
}
