/* The contiguous grouped GEMMs' layouts for the gpu suite (FP8 and BF16 programs alike):
 * where G groups of rows lie in A (each starting at the next multiple of the alignment), the
 * two ways to tell the kernel (DeepEP v2 prefix sums, an expert id per row), row ids in no
 * order, and row ids the kernel cannot trust. */
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

#endif
