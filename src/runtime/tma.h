/* Tensor-memory-accelerator descriptors for 2-D row-major tiles. */
#ifndef KILN_RUNTIME_TMA_H
#define KILN_RUNTIME_TMA_H

#include "internal.h"

/* Encode a CUtensorMap over a row-major [rows, cols] tensor of `elem_bytes` elements with
 * row stride `row_stride` elements, loading boxes of [box_rows, box_cols]. Out-of-range
 * parts of a box read as zero. Fails into ctx with a message naming `what`. */
int kiln__tma_2d(kiln_ctx *ctx, CUtensorMap *map, const char *what, CUtensorMapDataType dtype,
                 int elem_bytes, const void *base, uint64_t rows, uint64_t cols,
                 uint64_t row_stride, uint32_t box_rows, uint32_t box_cols,
                 CUtensorMapSwizzle swizzle);

/* Rows of the box over the last tile of a 128-byte-swizzled K-major operand with `rows`
 * rows when a tile spans `tile_rows`: where the operand ends inside that tile, only its rows
 * rounded up to one swizzle atom (8 rows), not a box the TMA fills with zeros past them,
 * which costs more than loading real rows (stop 21). The templates' stage_tx counts the
 * same (short_box_rows). */
static inline int kiln__tma_last_box_rows(int64_t rows, int tile_rows)
{
    int64_t last = rows - (rows - 1) / tile_rows * tile_rows;
    return last < tile_rows ? (int)((last + 7) / 8 * 8) : tile_rows;
}

/* The same over a [depth, rows, cols] tensor (depth = groups, each `depth_stride` elements
 * apart); a box is [1, box_rows, box_cols], so it never crosses into the next group. */
int kiln__tma_3d(kiln_ctx *ctx, CUtensorMap *map, const char *what, CUtensorMapDataType dtype,
                 int elem_bytes, const void *base, uint64_t depth, uint64_t rows, uint64_t cols,
                 uint64_t row_stride, uint64_t depth_stride, uint32_t box_rows, uint32_t box_cols,
                 CUtensorMapSwizzle swizzle);

#endif
