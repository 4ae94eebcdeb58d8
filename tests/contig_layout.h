/* The contiguous grouped GEMMs' layouts for the gpu suite (FP8 and BF16 programs alike):
 * where G groups of rows lie in A (each starting at the next multiple of the alignment), the
 * two ways to tell the kernel (DeepEP v2 prefix sums, an expert id per row), row ids in no
 * order, and row ids the kernel cannot trust; and the checks both programs make of a run
 * (two runs bitwise equal, rows no group owns still poisoned). Include after cmocka.h. */
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

/* The inclusive prefix sums of the counts, [G] (caller frees). */
static inline int32_t *contig_prefix_sums(int64_t g, const int32_t *counts)
{
    int32_t *ends = malloc((size_t)g * 4);
    for (int64_t i = 0, sum = 0; i < g; i++)
        ends[i] = (int32_t)(sum += counts[i]);
    return ends;
}

/* Each row's group, -1 for padding, [M_total] (caller frees). */
static inline int32_t *contig_row_ids(int64_t m, int64_t g, const int64_t *start,
                                      const int32_t *counts)
{
    int32_t *ids = malloc((size_t)m * 4);
    for (int64_t r = 0; r < m; r++)
        ids[r] = -1;
    for (int64_t i = 0; i < g; i++)
        for (int64_t r = start[i]; r < start[i] + counts[i]; r++)
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

/* One launch of a program's contiguous GEMM over its problem, the layout already in device
 * memory (by_row: row ids, else prefix sums). */
typedef kiln_status (*contig_launch_fn)(const void *problem, bool by_row);

/* Runs launch twice, each time on d (dd, d_bytes) filled with 0xff bytes first (NaN in BF16
 * and FP32); returns d after the first run (caller frees). The two runs must be bitwise
 * equal; a launch that fails shows ctx's message. */
static inline void *contig_run_twice(contig_launch_fn launch, const void *problem, bool by_row,
                                     void *dd, size_t d_bytes, kiln_ctx *ctx)
{
    const char *layout = by_row ? "row ids" : "prefix sums";
    void *d[2] = {malloc(d_bytes), malloc(d_bytes)};
    for (int run = 0; run < 2; run++) {
        gpu_poison(dd, d_bytes, 0xffffffffu);
        if (launch(problem, by_row) != KILN_OK)
            fail_msg("contig (%s): %s", layout, kiln_ctx_errmsg(ctx));
        gpu_sync();
        gpu_download(d[run], dd, d_bytes);
    }
    if (memcmp(d[0], d[1], d_bytes) != 0)
        fail_msg("contig (%s): two runs differ", layout);
    free(d[1]);
    return d[0];
}

/* d's rows that no group owns must still be poisoned (all bytes 0xff): rows r < m with
 * owner[r] < 0 (padding, rows of a bad layout) and the `guard` rows past m; n elements of
 * elem bytes per row. */
static inline void contig_check_unowned(const int32_t *owner, int64_t m, int64_t guard, int64_t n,
                                        size_t elem, const void *d, const char *what)
{
    const size_t row_bytes = (size_t)n * elem;
    for (int64_t r = 0; r < m + guard; r++) {
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

#endif
