/* The contiguous grouped GEMMs' layouts for the gpu suite (FP8 and BF16 programs alike):
 * where G groups of rows lie in A (each starting at the next multiple of the alignment), the
 * two ways to tell the kernel (DeepEP v2 prefix sums, an expert id per row), row ids in no
 * order, and row ids the kernel cannot trust; the checks both programs make of a run (two
 * runs bitwise equal, rows no group owns still poisoned); and the test bodies they share,
 * over a program's problem (contig_base) and GEMM (contig_suite). Include after cmocka.h. */
#ifndef KILN_TEST_CONTIG_LAYOUT_H
#define KILN_TEST_CONTIG_LAYOUT_H

#include "gpu_util.h"

/* start[i] = group i's first row: group 0 at row 0, each next at the previous group's end
 * rounded up to align. Returns M_total (the last group's end). */
static inline int64_t contig_starts(int64_t g, int64_t align, const int32_t *counts,
                                    int64_t *start)
{
    int64_t m = 0, next = 0;
    for (int64_t i = 0; i < g; i++) {
        start[i] = next;
        m = start[i] + counts[i];
        next = (m + align - 1) / align * align;
    }
    return m;
}

/* The part of a program's contiguous problem that the shared runs and checks read: the
 * first member of its problem struct. */
typedef struct contig_base {
    int64_t g, n, k, align, m; /* m = M_total: the last group's end */
    int64_t *start;            /* each group's first row (contig_starts) */
    const int32_t *counts;
    void *dlayout, *dd;   /* on the device: the layout, d with CONTIG_GUARD_ROWS past M_total */
    size_t d_bytes, elem; /* d's bytes; bytes per element of d */
} contig_base;

enum { CONTIG_GUARD_ROWS = 64 };

/* A program's contiguous GEMM: launch over p (its layout already in p->dlayout; by_row: row
 * ids, else prefix sums); check d of a run against the FP64 reference (owner[r]: the group
 * whose product row r must hold, -1 where d must still be poisoned); the context it launches
 * on (a program may point its context elsewhere for a test). */
typedef struct contig_suite {
    kiln_status (*launch)(const contig_base *p, bool by_row);
    void (*check)(const contig_base *p, const int32_t *owner, const void *d, const char *what);
    kiln_ctx *const *ctx;
} contig_suite;

/* p's layout as the caller would build it: the inclusive prefix sums of the counts, [G]
 * (caller frees). */
static inline int32_t *contig_prefix_sums(const contig_base *p)
{
    int32_t *ends = malloc((size_t)p->g * 4);
    for (int64_t i = 0, sum = 0; i < p->g; i++)
        ends[i] = (int32_t)(sum += p->counts[i]);
    return ends;
}

/* ... and as row ids: each row's group, -1 for padding, [M_total] (caller frees). */
static inline int32_t *contig_row_ids(const contig_base *p)
{
    int32_t *ids = malloc((size_t)p->m * 4);
    for (int64_t r = 0; r < p->m; r++)
        ids[r] = -1;
    for (int64_t i = 0; i < p->g; i++)
        for (int64_t r = p->start[i]; r < p->start[i] + p->counts[i]; r++)
            ids[r] = (int32_t)i;
    return ids;
}

/* Row ids in no order at all: each row of a group (ids[r] >= 0: real data, where padding
 * rows of A are NaN) gets a random group or -1, so most tiles hold rows of several groups. */
static inline void contig_scramble_ids(int32_t *ids, int64_t m, int64_t g, uint64_t *seed)
{
    for (int64_t r = 0; r < m; r++)
        if (ids[r] >= 0)
            ids[r] = (int32_t)(rng_next(seed) % (uint64_t)(g + 1)) - 1;
}

/* Row ids the kernel cannot trust, for groups of CONTIG_BAD_IDS_COUNTS rows at an alignment
 * of 128 (start: their first rows): a group whose id is >= G, a block of ids < -1, a stray
 * bad id inside a group, and a tile whose first row is a bad id. ids and owner (both the
 * row ids to begin with) get the ids to launch with and the group each row's product
 * belongs to (-1: the row must stay as it was). */
#define CONTIG_BAD_IDS_COUNTS {300, 130, 0, 64}
static inline void contig_bad_ids(const int64_t *start, int32_t *ids, int32_t *owner)
{
    for (int64_t r = start[1]; r < start[1] + 130; r++)
        ids[r] = 4, owner[r] = -1; /* id == G */
    for (int64_t r = start[3]; r < start[3] + 64; r++)
        ids[r] = -7, owner[r] = -1; /* below -1 */
    ids[150] = -5, owner[150] = -1;   /* a stray id inside group 0's second 128-row tile */
    ids[256] = 1000, owner[256] = -1; /* the first row of group 0's third 128-row tile */
}

/* Uploads the layout, then runs s's GEMM over p twice, each time on d filled with 0xff
 * bytes first (NaN in BF16 and FP32); returns d (with its guard rows) after the first run
 * (caller frees). The two runs must be bitwise equal; a launch that fails shows the
 * context's message. */
static inline void *contig_run(const contig_suite *s, const contig_base *p, bool by_row,
                               const int32_t *layout)
{
    const char *what = by_row ? "row ids" : "prefix sums";
    gpu_upload(p->dlayout, layout, (size_t)(by_row ? p->m : p->g) * 4);
    void *d[2] = {malloc(p->d_bytes), malloc(p->d_bytes)};
    for (int run = 0; run < 2; run++) {
        gpu_poison(p->dd, p->d_bytes, 0xffffffffu);
        if (s->launch(p, by_row) != KILN_OK)
            fail_msg("contig (%s): %s", what, kiln_ctx_errmsg(*s->ctx));
        gpu_sync();
        gpu_download(d[run], p->dd, p->d_bytes);
    }
    if (memcmp(d[0], d[1], p->d_bytes) != 0)
        fail_msg("contig (%s): two runs differ", what);
    free(d[1]);
    return d[0];
}

/* d's rows that no group owns must still be poisoned (all bytes 0xff): rows r < M_total
 * with owner[r] < 0 (padding, rows of a bad layout) and the guard rows past M_total. */
static inline void contig_check_unowned(const contig_base *p, const int32_t *owner, const void *d,
                                        const char *what)
{
    const size_t row_bytes = (size_t)p->n * p->elem;
    const int64_t m = p->m;
    for (int64_t r = 0; r < m + CONTIG_GUARD_ROWS; r++) {
        if (r < m && owner[r] >= 0)
            continue;
        const unsigned char *row = (const unsigned char *)d + (size_t)r * row_bytes;
        for (size_t i = 0; i < row_bytes; i++)
            if (row[i] != 0xff)
                fail_msg("%s: row %lld (%s) was written", what, (long long)r,
                         r < m ? "not a group's" : "past M_total");
    }
}

/* The rows r < m whose owner is `group`, into rows; returns how many. */
static inline int64_t contig_owned_rows(const int32_t *owner, int64_t m, int64_t group,
                                        int64_t *rows)
{
    int64_t count = 0;
    for (int64_t r = 0; r < m; r++)
        if (owner[r] == group)
            rows[count++] = r;
    return count;
}

/* Both layouts of one valid problem: the prefix sums against the reference, the row ids
 * bit for bit the same (the two kernels walk the same tiles in the same K order). */
static inline void contig_check_layouts(const contig_suite *s, const contig_base *p)
{
    int32_t *ends = contig_prefix_sums(p), *ids = contig_row_ids(p);
    void *by_sums = contig_run(s, p, false, ends);
    s->check(p, ids, by_sums, "contig prefix sums");
    void *by_ids = contig_run(s, p, true, ids);
    if (memcmp(by_sums, by_ids, p->d_bytes) != 0)
        fail_msg("contig: the two layouts give different bits");
    print_message("  contig %lld groups, M_total %lld, N %lld, K %lld, align %lld%s: both "
                  "layouts ok\n",
                  (long long)p->g, (long long)p->m, (long long)p->n, (long long)p->k,
                  (long long)p->align, p->elem == 4 ? ", f32" : "");
    free(by_sums);
    free(by_ids);
    free(ends);
    free(ids);
}

/* Row ids in no order at all: each row of a group's rows gets a random expert (or -1), so
 * most tiles hold rows of several experts and are computed once per expert; every row must
 * get its own expert's product and padding rows stay poisoned. */
static inline void contig_check_any_order(const contig_suite *s, const contig_base *p,
                                          uint64_t *seed)
{
    int32_t *ids = contig_row_ids(p);
    contig_scramble_ids(ids, p->m, p->g, seed);
    void *d = contig_run(s, p, true, ids);
    s->check(p, ids, d, "contig row ids in any order");
    print_message("  contig row ids in any order, %lld groups, M_total %lld, align %lld%s: ok\n",
                  (long long)p->g, (long long)p->m, (long long)p->align,
                  p->elem == 4 ? ", f32" : "");
    free(d);
    free(ids);
}

/* Prefix sums that decrease and run past M_total: no write outside d, no hang. */
static inline void contig_check_bad_prefix_sums(const contig_suite *s, const contig_base *p)
{
    static const int32_t bad[] = {300, 100, 100000, 5};
    assert_int_equal(p->g, 4);
    unsigned char *d = contig_run(s, p, false, bad); /* rows inside d may be written */
    for (size_t i = (size_t)(p->m * p->n) * p->elem; i < p->d_bytes; i++)
        if (d[i] != 0xff)
            fail_msg("contig bad prefix sums: wrote past M_total (row %lld)",
                     (long long)(i / p->elem / (size_t)p->n));
    print_message("  contig bad prefix sums: nothing past M_total\n");
    free(d);
}

/* Row ids the kernel cannot trust (contig_bad_ids; p made of CONTIG_BAD_IDS_COUNTS at an
 * alignment of 128): nothing of theirs is stored; every other row still gets its group's
 * product. */
static inline void contig_check_bad_row_ids(const contig_suite *s, const contig_base *p)
{
    int32_t *ids = contig_row_ids(p), *owner = contig_row_ids(p);
    contig_bad_ids(p->start, ids, owner);
    void *d = contig_run(s, p, true, ids);
    s->check(p, owner, d, "contig bad row ids");
    print_message("  contig bad row ids (>= G, < -1, stray, first of a tile): only valid rows "
                  "stored\n");
    free(d);
    free(ids);
    free(owner);
}

/* Each layout of p in turn against the reference (a context serving from its cache). */
static inline void contig_check_each_layout(const contig_suite *s, const contig_base *p,
                                            const char *what)
{
    int32_t *ends = contig_prefix_sums(p), *ids = contig_row_ids(p);
    char label[128];
    for (int by_row = 0; by_row <= 1; by_row++) {
        void *d = contig_run(s, p, by_row, by_row ? ids : ends);
        snprintf(label, sizeof label, "%s %s", what, by_row ? "row ids" : "prefix sums");
        s->check(p, ids, d, label);
        free(d);
    }
    free(ends);
    free(ids);
}

/* After refused launches: d (poisoned before them) must be untouched. */
static inline void contig_check_nothing_written(const contig_base *p, const char *what)
{
    gpu_sync();
    unsigned char *d = malloc(p->d_bytes);
    gpu_download(d, p->dd, p->d_bytes);
    for (size_t i = 0; i < p->d_bytes; i++)
        if (d[i] != 0xff)
            fail_msg("%s: d byte %zu was written", what, i);
    free(d);
}

#endif
