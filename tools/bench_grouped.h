/* What the GEMM benchmarks' grouped modes share: the --contig groupings (KILN_BENCH_CONTIG),
 * kiln's two layouts of them, and the plans of the cuBLASLt loop (one GEMM per group) they
 * are measured against. Included once, after bench_common.h. */
#ifndef KILN_TOOLS_BENCH_GROUPED_H
#define KILN_TOOLS_BENCH_GROUPED_H

#include <stdarg.h>

#include "bench_common.h"

/* MoE prefill's layout (--contig): G groups of rows one after another in A, each starting at
 * a multiple of 128 (the DeepEP v2 layout, m_alignment 128; the rows from a group's end to
 * the next group's start are padding). */
enum { CONTIG_MAX_GROUPS = 256, CONTIG_MAX_ROWS = 1 << 20, CONTIG_ALIGN = 128 };

/* A grouping: each group's rows (equal, or uneven as routing makes them) and where they lie. */
typedef struct contig_grouping {
    const char *kind; /* NULL: equal groups; "rand", "list": uneven (KILN_BENCH_CONTIG) */
    int64_t groups;
    int64_t rows;  /* the counts' sum: the rows the GEMM computes */
    int64_t m;     /* M_total: the last group's end (its own block is not padded) */
    int64_t m_pad; /* M_total rounded up to 128: the rows allocated for A, its scales and D */
    int64_t count[CONTIG_MAX_GROUPS], start[CONTIG_MAX_GROUPS];
} contig_grouping;

/* Each group's first row: group 0 at row 0, each next one at the previous group's end
 * rounded up to 128 (an empty group takes no room), as the kernel places them from the
 * prefix sums. */
static void contig_place(contig_grouping *gr)
{
    int64_t next = 0;
    gr->rows = gr->m = 0;
    for (int64_t g = 0; g < gr->groups; g++) {
        gr->start[g] = next;
        gr->m = next + gr->count[g];
        gr->rows += gr->count[g];
        next = (gr->m + CONTIG_ALIGN - 1) / CONTIG_ALIGN * CONTIG_ALIGN;
    }
    gr->m_pad = next;
}

/* The counts of `groups` groups of `rows` rows each (a multiple of 128: no padding). */
static void contig_equal(contig_grouping *gr, int64_t groups, int64_t rows)
{
    *gr = (contig_grouping){.groups = groups};
    for (int64_t g = 0; g < groups; g++)
        gr->count[g] = rows;
}

/* kiln's two layouts of gr: group_end, the inclusive prefix sums of the counts (not the
 * groups' ends in A: the kernel places the groups from the counts, as contig_place does),
 * and row_expert, each row's group or -1 for padding. */
static void contig_layouts(const contig_grouping *gr, int32_t *ends, int32_t *ids)
{
    int64_t sum = 0;
    for (int64_t r = 0; r < gr->m; r++)
        ids[r] = -1;
    for (int64_t g = 0; g < gr->groups; g++) {
        ends[g] = (int32_t)(sum += gr->count[g]);
        for (int64_t r = gr->start[g]; r < gr->start[g] + gr->count[g]; r++)
            ids[r] = (int32_t)g;
    }
}

/* The grouping as the result lines name it. Equal groups as before ("4 x  8192 rows", JSON
 * "rows"): scripts/ncu_durations.py and vs_reference.py read them back, and their figures
 * per grouping take equal groups. Uneven ones by a summary of their counts, which those
 * scripts' patterns pass over. */
static void print_contig_grouping(const contig_grouping *gr, bool json)
{
    long long groups = (long long)gr->groups;
    if (gr->kind == NULL) {
        printf(json ? "\"contig_groups\":%lld,\"rows\":%lld" : "contig %lld x %5lld rows", groups,
               (long long)gr->count[0]);
        return;
    }
    int64_t lo = gr->count[0], hi = gr->count[0];
    for (int64_t g = 1; g < gr->groups; g++) {
        lo = gr->count[g] < lo ? gr->count[g] : lo;
        hi = gr->count[g] > hi ? gr->count[g] : hi;
    }
    if (!json) {
        printf("contig %lld groups (%s: %lld rows, %.0f avg, min %lld max %lld, %lld with padding)",
               groups, gr->kind, (long long)gr->rows, (double)gr->rows / (double)gr->groups,
               (long long)lo, (long long)hi, (long long)gr->m);
        return;
    }
    printf("\"contig_groups\":%lld,\"grouping\":\"%s\",\"rows_total\":%lld,\"rows_min\":%lld,"
           "\"rows_max\":%lld,\"rows_with_padding\":%lld,\"counts\":[",
           groups, gr->kind, (long long)gr->rows, (long long)lo, (long long)hi, (long long)gr->m);
    for (int64_t g = 0; g < gr->groups; g++)
        printf(g > 0 ? ",%lld" : "%lld", (long long)gr->count[g]);
    printf("]");
}

/* G x ROWS rows, each in a group drawn uniformly at random: uneven counts as routing makes
 * them (some may be 0). The seed is G and ROWS alone, so the counts are the same in every
 * run and build (A/B comparisons see one grouping). */
static void contig_random_counts(contig_grouping *gr, int64_t rows)
{
    uint64_t seed = ((uint64_t)gr->groups << 32 | (uint64_t)rows) * 0x9e3779b97f4a7c15ull;
    for (int64_t r = 0; r < gr->groups * rows; r++)
        gr->count[rng_next(&seed) % (uint64_t)gr->groups]++;
}

/* A decimal count at *s, digits only, at most CONTIG_MAX_ROWS; *s moves past the digits. */
static bool parse_count(const char **s, int64_t *v)
{
    const char *p = *s;
    *v = 0;
    while (*p >= '0' && *p <= '9' && *v <= CONTIG_MAX_ROWS)
        *v = *v * 10 + (*p++ - '0');
    bool ok = p != *s && *v <= CONTIG_MAX_ROWS;
    *s = p;
    return ok;
}

/* What is wrong with KILN_BENCH_CONTIG, in words (one message at a time). */
static const char *contig_why(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *contig_why(const char *fmt, ...)
{
    static char why[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return why;
}

/* GxROWS (equal groups) or GxROWS:rand into gr's counts: NULL, or what is wrong. */
static const char *contig_parse_gxrows(const char *s, contig_grouping *gr)
{
    int64_t rows;
    if (!parse_count(&s, &gr->groups) || *s++ != 'x' || !parse_count(&s, &rows))
        return "G and ROWS must be decimal numbers of at most 2^20, joined by 'x'";
    bool drawn = strcmp(s, ":rand") == 0;
    if (!drawn && *s != '\0')
        return contig_why("\"%.20s\" after ROWS (only \":rand\" may follow)", s);
    if (gr->groups < 1 || gr->groups > CONTIG_MAX_GROUPS)
        return contig_why("G = %lld groups, want 1 to %d", (long long)gr->groups,
                          CONTIG_MAX_GROUPS);
    if (rows < 1 || (!drawn && rows % CONTIG_ALIGN != 0))
        return contig_why("ROWS = %lld, want a positive multiple of %d (:rand takes any ROWS)",
                          (long long)rows, CONTIG_ALIGN);
    if (gr->groups * rows > CONTIG_MAX_ROWS)
        return contig_why("G x ROWS = %lld rows, more than 2^20", (long long)(gr->groups * rows));
    if (drawn) {
        gr->kind = "rand";
        contig_random_counts(gr, rows);
    } else {
        contig_equal(gr, gr->groups, rows);
    }
    return NULL;
}

/* c0,c1,... (each group's rows) into gr's counts: NULL, or what is wrong. */
static const char *contig_parse_list(const char *s, contig_grouping *gr)
{
    for (;;) {
        if (gr->groups == CONTIG_MAX_GROUPS)
            return "more than 256 groups";
        if (!parse_count(&s, &gr->count[gr->groups]))
            return contig_why("c%lld is not a decimal number of at most 2^20",
                              (long long)gr->groups);
        gr->groups++;
        if (*s == '\0')
            break;
        if (*s++ != ',')
            return contig_why("'%c' after c%lld (the counts are separated by commas)", s[-1],
                              (long long)(gr->groups - 1));
    }
    gr->kind = "list";
    return NULL;
}

/* KILN_BENCH_CONTIG's value into gr, placed: NULL, or what is wrong with it. */
static const char *contig_parse(const char *text, contig_grouping *gr)
{
    *gr = (contig_grouping){.groups = 0};
    const char *why =
        strchr(text, 'x') != NULL ? contig_parse_gxrows(text, gr) : contig_parse_list(text, gr);
    if (why != NULL)
        return why;
    contig_place(gr);
    if (gr->rows == 0)
        return "no rows in any group";
    if (gr->m > CONTIG_MAX_ROWS)
        return contig_why("M_total = %lld rows with padding, more than 2^20", (long long)gr->m);
    return NULL;
}

/* The --contig groupings: the two DeepSeek ones (2), or KILN_BENCH_CONTIG's (1); -1 with a
 * message when that is not a grouping the benchmark can build. */
static int contig_groupings(contig_grouping out[2])
{
    const char *other = getenv("KILN_BENCH_CONTIG");
    if (other == NULL) {
        contig_equal(&out[0], 4, 8192);
        contig_equal(&out[1], 8, 4096);
        contig_place(&out[0]);
        contig_place(&out[1]);
        return 2;
    }
    const char *why = contig_parse(other, &out[0]);
    if (why == NULL)
        return 1;
    fprintf(stderr,
            "KILN_BENCH_CONTIG=%s: %s. Want GxROWS (G groups of ROWS rows, a multiple of 128), "
            "GxROWS:rand (G x ROWS rows, each in a random group) or c0,c1,... (each group's "
            "rows); G <= 256, M_total <= 2^20 rows with padding\n",
            other, why);
    return -1;
}

/* The baseline of the grouped modes: one cuBLASLt GEMM per group, in a loop on one stream.
 * A plan's layouts fix M, so there is one plan per distinct row count. */
typedef struct lt_loop {
    lt_plan plans[CONTIG_MAX_GROUPS];
    int plan_of[CONTIG_MAX_GROUPS]; /* each group's plan; -1: no rows, no GEMM */
    int num_plans;
} lt_loop;

/* Makes plan p for GEMMs of `rows` rows (the benchmark's lt_plan_make, with its operands). */
typedef bool (*lt_rows_plan_fn)(lt_plan *p, int64_t rows, void *user);

/* The plans for groups of rows[g] rows each; false when cuBLASLt has none for one (the
 * plans made so far, that one included, are lt_loop_free's to free either way). */
static inline bool lt_loop_make(lt_loop *loop, const int64_t *rows, int64_t groups,
                                lt_rows_plan_fn make, void *user)
{
    loop->num_plans = 0;
    for (int64_t g = 0; g < groups; g++) {
        loop->plan_of[g] = -1;
        for (int64_t h = 0; h < g && rows[g] > 0 && loop->plan_of[g] < 0; h++)
            if (rows[h] == rows[g])
                loop->plan_of[g] = loop->plan_of[h];
        if (rows[g] == 0 || loop->plan_of[g] >= 0)
            continue;
        loop->plan_of[g] = loop->num_plans++;
        if (!make(&loop->plans[loop->plan_of[g]], rows[g], user))
            return false;
    }
    return true;
}

static inline void lt_loop_free(lt_loop *loop)
{
    for (int i = 0; i < loop->num_plans; i++)
        lt_plan_free(&loop->plans[i]);
    loop->num_plans = 0;
}

#endif
