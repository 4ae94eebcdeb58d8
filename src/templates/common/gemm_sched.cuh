/* Tile scheduling shared by the GEMM templates (persistent grids, grouped problems).
 *
 * Included INSIDE a kernel's namespace, after it has defined these constexpr ints:
 *   BM, BN, NUM_NB      tile rows and columns, number of column blocks (ceil(N / BN))
 *   N                   problem columns (long long)
 *   KB                  K blocks of the whole problem
 *   GROUP_N             tile-order swizzle (column blocks per L2 group)
 *   MC, CK, MCA, CLUSTER  B multicast (1 or 2), cluster split-K (1..8), A multicast (1, 2
 *                       or 4), MC * CK * MCA
 *   GROUPING, M_ALIGN   0 dense, 1 masked groups, 2 contiguous groups (prefix sums), 3
 *                       contiguous groups (an expert id per row), and the row alignment
 *                       of contiguous groups (2 only)
 *   TAIL_SPLIT, RG      whether the last round's tiles may be split in 2 or RG pieces along
 *                       K (dense 192-row tiles; see make_sched), and the tile's 64-row groups
 * It has no includes of its own, so one copy can serve several kernels' namespaces.
 */

/* Work distribution. A work unit is one output tile, or (multicast 2) two vertically
 * adjacent tiles sharing their B tile, or (multicast_a) MCA horizontally adjacent tiles
 * sharing their A tile; clusters take units round-robin, so every CTA of a cluster walks
 * the same unit sequence (the cluster's barriers rely on it). */
constexpr int NUM_NBU = (NUM_NB + MCA - 1) / MCA; /* units along N */

/* Tall tiles (dense and contiguous groups) walk many tiles per CTA: their tile coordinates
 * divide by a float reciprocal and by the constant GROUP_N instead of two run-time integer
 * divisions (~75 instructions per tile, issued while the tensor cores wait; stop 25,
 * profiler: 4096x32768x512 134.4 -> 132.1 us, 4096x24576x1536 240.5 -> 236.4, contiguous 4 x
 * 8192 rows (4096, 7168) 1389.5 -> 1367.3). Per-row experts too, whose every warp divides
 * for each unit it scans (with PEEL_FIRST, stop 31: 0.2-0.6% on the four DeepSeek
 * groupings). Decode kernels (one tile per CTA) keep the integer code: they measured 1-3%
 * slower with it (stop 24). */
constexpr bool FAST_TILE_DIV = GROUPING != 1 && BM >= 192;

/* TAIL_SPLIT: the workspace's flags (gemm_fp8_tail.cuh), RG per split tile. */
constexpr int TAIL_FLAGS = 1024;

struct sched {
    int rank;         /* CTA rank in the cluster */
    int first, step;  /* first unit, units between two of this cluster's units */
    int num_units, num_mb, num_mbu; /* dense and per-row experts only */
    int kb_begin, kb_count; /* this CTA's K blocks of every tile */
    int m;                  /* M, or M_max of every group */
    const int *group_rows;  /* grouped: valid rows of each group (device memory); per-row
                               experts: the expert of each row, -1 for padding */
    int num_groups;
    float inv_group_units; /* FAST_TILE_DIV: 1 / (GROUP_N * num_mbu) */
    int tail_first;        /* TAIL_SPLIT: the first split tile (the units end there) */
    int pieces;            /* TAIL_SPLIT: pieces of the split tiles, one per CTA from CTA 0 */
    int tail_parts;        /* TAIL_SPLIT: pieces per split tile (2 or RG) */
};

__device__ __forceinline__ sched make_sched(int m, const int *group_rows, int num_groups,
                                            unsigned *tail_ws)
{
    sched sc;
    sc.m = m;
    sc.group_rows = group_rows;
    sc.num_groups = num_groups;
    sc.rank = CLUSTER > 1 ? (int)cluster_ctarank() : 0;
    sc.first = (int)blockIdx.x / CLUSTER;
    sc.step = (int)gridDim.x / CLUSTER;
    sc.num_mb = (m + BM - 1) / BM;
    sc.num_mbu = MC == 2 ? (sc.num_mb + 1) / 2 : sc.num_mb;
    sc.num_units = sc.num_mbu * NUM_NBU;
    sc.inv_group_units = FAST_TILE_DIV && (GROUPING == 0 || GROUPING == 3)
                             ? 1.0f / (float)(GROUP_N * sc.num_mbu)
                             : 0.0f;
    const int r = CK > 1 ? sc.rank : 0;
    sc.kb_begin = r * KB / CK;
    sc.kb_count = (r + 1) * KB / CK - sc.kb_begin;
    /* The last round of tiles, when it fills at most half of the CTAs, runs as P pieces per
     * tile (P = RG where that round fills at most a third of them, else 2), each piece about
     * 1 / P of the tile's K blocks on its own CTA, so that the round keeps the CTAs busy
     * (gemm_fp8_tail.cuh). The unit loop then ends where that round begins (tail_first), and
     * CTA c < pieces takes piece c after it. The host's kiln__gemm_fp8_tail_parts is this
     * rule. */
    sc.tail_first = sc.num_units;
    sc.pieces = 0;
    sc.tail_parts = 0;
    if constexpr (TAIL_SPLIT) {
        const int ctas = (int)gridDim.x, left = sc.num_units % ctas;
        const int parts = left > 0 && RG * left <= ctas ? RG : 2;
        if (tail_ws != nullptr && KB >= parts && sc.num_units > ctas && left > 0 &&
            parts * left <= ctas && RG * left <= TAIL_FLAGS) {
            sc.tail_first = sc.num_units - left;
            sc.num_units = sc.tail_first;
            sc.pieces = parts * left;
            sc.tail_parts = parts;
        }
    }
    return sc;
}

/* One output tile: problem (group) g, m block, n block, the rows of its problem, and the
 * problem's first row in A and D (contiguous groups; 0 otherwise). Per-row experts: keep
 * has bit r of word j set when row 32j + r of the tile belongs to expert g. Pieces of a
 * split tile (TAIL_SPLIT, for_each_tile): which of the tile's pieces, its K blocks, and
 * the tile's place among the split ones (unset for whole tiles). */
struct tile {
    int g, mb, nb, rows, row0;
    u32 keep[BM / 32];
    int piece, kb_begin, kb_count, split_index;
};

/* An int known at compile time: for_each_tile's bodies tell whole tiles from pieces. */
template <int V> struct kconst {
    static constexpr int value = V;
    __device__ __forceinline__ constexpr operator int() const { return V; }
};

/* Where a CTA is in the unit sequence. Grouped: units are numbered group after group,
 * group g contributing ceil(rows_g / BM) * NUM_NBU; every role of every CTA walks its units
 * in increasing order, so the cursor only moves forward. */
struct cursor {
    int g, base, count, rows, num_mb;
    int start, next_start; /* contiguous: this group's first row, the next group's */
    u32 keep[BM / 32];     /* per-row experts: the current tile's rows of expert g */
    int unit;              /* per-row experts: the unit of expert g's tile (-1: none yet) */
    bool more;             /* per-row experts: a larger expert has rows in that unit too */
    float inv_group_units; /* contiguous FAST_TILE_DIV: 1 / (GROUP_N * num_mb) */
};

__device__ __forceinline__ void cursor_init(const sched &sc, cursor &c)
{
    c.g = GROUPING == 0 ? 0 : -1;
    c.base = 0;
    c.count = GROUPING == 0 ? sc.num_units : 0;
    c.rows = sc.m;
    c.num_mb = sc.num_mbu;
    c.start = c.next_start = 0;
    c.unit = -1;
    c.more = false;
    c.inv_group_units = 0.0f;
}

__device__ __forceinline__ bool seek_row_expert(const sched &sc, cursor &c, int unit);

/* cursor_seek for groups given by their row counts (masked) or prefix sums (contiguous). */
__device__ __forceinline__ bool seek_counted_group(const sched &sc, cursor &c, int unit)
{
    while (unit >= c.base + c.count) {
        c.base += c.count;
        if (++c.g >= sc.num_groups)
            return false;
        int rows;
        if constexpr (GROUPING == 2) {
            /* A decreasing prefix sum is an empty group; rows past M_total are not ours. */
            const int end = __ldg(sc.group_rows + c.g);
            const int begin = c.g > 0 ? __ldg(sc.group_rows + c.g - 1) : 0;
            rows = end > begin ? end - begin : 0;
            c.start = c.next_start;
            const long long next = ((long long)c.start + rows + M_ALIGN - 1) / M_ALIGN * M_ALIGN;
            c.next_start = next < sc.m ? (int)next : sc.m; /* huge counts cannot wrap around */
            rows = c.start >= sc.m ? 0 : rows > sc.m - c.start ? sc.m - c.start : rows;
        } else {
            rows = __ldg(sc.group_rows + c.g);
        }
        c.rows = rows < 0 ? 0 : rows > sc.m ? sc.m : rows; /* a bad count stays in the group */
        c.num_mb = (c.rows + BM - 1) / BM;
        c.count = c.num_mb * NUM_NBU;
        if (FAST_TILE_DIV && c.num_mb > 0)
            c.inv_group_units = 1.0f / (float)(GROUP_N * c.num_mb);
    }
    return true;
}

/* Moves c to the group holding `unit`; false when there is no such unit. One call per
 * grouping, so that no kernel compiles code it cannot reach (NVRTC warned of it). */
__device__ __forceinline__ bool cursor_seek(const sched &sc, cursor &c, int unit)
{
    if constexpr (GROUPING == 0)
        return unit < sc.num_units;
    else if constexpr (GROUPING == 3)
        return seek_row_expert(sc, c, unit);
    else
        return seek_counted_group(sc, c, unit);
}

/* Whether this cluster has a unit after `unit` (cur: the cursor at unit, left as it is). */
__device__ __forceinline__ bool has_next_unit(const sched &sc, const cursor &cur, int unit)
{
    cursor peek = cur;
    return cursor_seek(sc, peek, unit + sc.step);
}

/* a / b for a >= 0, b >= 1 through inv_b = 1.0f / b: the estimate, corrected by the remainder. */
__device__ __forceinline__ int div_by_reciprocal(int a, int b, float inv_b)
{
    if (a >= (1 << 22)) /* below 2^22 the float estimate is off by less than one */
        return a / b;
    int q = (int)((float)a * inv_b);
    const int r = a - q * b;
    q += r >= b ? 1 : r < 0 ? -1 : 0;
    return q;
}

/* Unit index -> tile: walk M fastest inside groups of GROUP_N column blocks, so CTAs
 * running together share the B tiles of the group and a band of A rows in L2. With
 * multicast the pair's second CTA takes the next m block (which may lie past M: it then
 * loads clamped rows and stores nothing). */
__device__ __forceinline__ void tile_coords(const sched &sc, const cursor &c, int unit, tile &tl)
{
    int local = unit - c.base;
    int group_units = GROUP_N * c.num_mb;
    const float inv = GROUPING == 2 ? c.inv_group_units : sc.inv_group_units;
    int gi = FAST_TILE_DIV ? div_by_reciprocal(local, group_units, inv) : local / group_units;
    int first_n = gi * GROUP_N;
    int width = NUM_NBU - first_n < GROUP_N ? NUM_NBU - first_n : GROUP_N;
    int r = local - gi * group_units;
    if (FAST_TILE_DIV && width == GROUP_N) { /* by a constant: a multiply and a shift */
        tl.mb = r / GROUP_N;
        tl.nb = first_n + r % GROUP_N;
    } else {
        tl.mb = r / width;
        tl.nb = first_n + r % width;
    }
    if constexpr (MC == 2)
        tl.mb = 2 * tl.mb + sc.rank;
    if constexpr (MCA > 1) /* the last unit's n blocks may run past N: see NUM_NB's users */
        tl.nb = tl.nb * MCA + sc.rank;
    tl.g = GROUPING == 0 ? 0 : c.g;
    tl.rows = c.rows;
    tl.row0 = GROUPING == 2 ? c.start : 0;
    if constexpr (GROUPING == 3) {
#pragma unroll
        for (int j = 0; j < BM / 32; ++j)
            tl.keep[j] = c.keep[j];
    }
}

/* Calls body(tl, cur, unit, kconst<0>()) for each of this CTA's tiles in order: the tile,
 * and the cursor and unit it came from (for has_next_unit; the producer warps need only the
 * tile). TAIL_SPLIT: then body(tl, cur, unit, kconst<1>()) for this CTA's piece of the split
 * last round, if it has one (its K blocks in tl). The tag lets one body serve both with the
 * whole tiles' code as it would be without pieces: a run-time test for pieces inside the
 * loop cost whole tiles 2-7% at short K (stop 33). */
template <typename Body>
__device__ __forceinline__ void for_each_tile(const sched &sc, Body &&body)
{
    cursor cur;
    cursor_init(sc, cur);
#pragma unroll 1
    for (int unit = sc.first; cursor_seek(sc, cur, unit); unit += sc.step) {
        tile tl;
        tile_coords(sc, cur, unit, tl);
        body(tl, cur, unit, kconst<0>{});
    }
    if constexpr (TAIL_SPLIT) {
        const int c = (int)blockIdx.x;
        if (c < sc.pieces) {
            tile tl;
            const int parts = sc.tail_parts;
            tile_coords(sc, cur, sc.tail_first + c / parts, tl);
            tl.piece = c % parts;
            tl.split_index = c / parts;
            tl.kb_begin = tl.piece * KB / parts;
            tl.kb_count = (tl.piece + 1) * KB / parts - tl.kb_begin;
            body(tl, cur, sc.tail_first + c / parts, kconst<1>{});
        }
    }
}

/* Per-row experts: the tile of m block mb for the smallest expert above `after` with rows
 * in it (ids in [0, G); padding (-1) and bad ids are nobody's, so their rows are never
 * stored); c.keep gets that expert's rows, c.more whether a larger expert has rows there
 * too. False when no expert is left. Warp-collective: a lane per row, one min and one max
 * reduction over the warp. */
__device__ __forceinline__ bool row_expert_tile(const sched &sc, int mb, int after, cursor &c)
{
    constexpr int CHUNKS = BM / 32;
    constexpr int NONE = 0x7fffffff;
    const int lane = (int)(threadIdx.x % 32);
    /* The ids are read twice (the second read meant to hit L1) rather than held: the
     * producer warps of a 192- or 256-row tile have 24 registers. */
    const int *ids = sc.group_rows + mb * BM + lane;
    const int rows = sc.m - mb * BM - lane; /* this lane's rows in the tile: 32 j < rows */
    int lo = NONE, hi = -1;
#pragma unroll
    for (int j = 0; j < CHUNKS; ++j) {
        const int id = 32 * j < rows ? __ldg(ids + 32 * j) : -1;
        const bool wanted = id > after && id < sc.num_groups;
        lo = wanted && id < lo ? id : lo;
        hi = wanted && id > hi ? id : hi;
    }
    int expert, top;
    asm volatile("redux.sync.min.s32 %0, %1, 0xffffffff;" : "=r"(expert) : "r"(lo));
    asm volatile("redux.sync.max.s32 %0, %1, 0xffffffff;" : "=r"(top) : "r"(hi));
    if (expert == NONE)
        return false;
#pragma unroll
    for (int j = 0; j < CHUNKS; ++j)
        c.keep[j] = __ballot_sync(0xffffffffu, 32 * j < rows && __ldg(ids + 32 * j) == expert);
    c.g = expert;
    c.more = top > expert;
    return true;
}

/* Per-row experts: units are the dense tiles of M_total rows, and a unit is computed once
 * for each expert with rows in it, in increasing order (once when groups start at
 * multiples of the tile height; an expert boundary inside a tile costs one more pass of
 * it); a unit with no expert is passed over. Every warp of every role scans the ids
 * itself: they read the same memory, so all of them walk the same (unit, expert) pairs
 * without talking to each other. Each call moves to the pair after the cursor's, for
 * `unit` = the previous call's + sc.step; c.base holds unit minus the unit found, so
 * tile_coords finds it. */
__device__ __forceinline__ bool seek_row_expert(const sched &sc, cursor &c, int unit)
{
    int u = c.unit < 0 ? unit : c.more ? c.unit : c.unit + sc.step;
    int after = c.unit >= 0 && c.more ? c.g : -1;
#pragma unroll 1
    for (; u < sc.num_units; u += sc.step, after = -1) {
        c.base = unit - u;
        tile tl;
        tile_coords(sc, c, unit, tl);
        if (row_expert_tile(sc, tl.mb, after, c)) {
            c.unit = u;
            return true;
        }
    }
    return false;
}

/* Per-row experts: bit r set when row r of the tile's 64-row group rg is the tile's
 * expert's. All rows (every bit) in the other groupings. rg is known only at run time:
 * tl.keep[2 * rg] would put tl.keep in local memory (40 bytes of stack frame), so the
 * words are selected from registers. */
__device__ __forceinline__ u64 tile_rows_kept(const tile &tl, u32 rg)
{
    if constexpr (GROUPING == 3) {
        u64 kept = 0;
#pragma unroll
        for (int j = 0; j < BM / 64; ++j)
            if (rg == (u32)j)
                kept = (u64)tl.keep[2 * j] | (u64)tl.keep[2 * j + 1] << 32;
        return kept;
    }
    return ~0ull;
}

/* Store the rows r < rows_left of a 64-row group (m64nN wgmma accumulator layout, `out`
 * already in FP32) whose bit r is set in `kept`, from registers, row by row; first_row
 * points at row 0 of the group in D. */
__device__ __forceinline__ void store_rows(const float *out, u16 *__restrict__ first_row,
                                           long long ld_d, int nb, u32 row_in_wg, u32 lane,
                                           int rows_left, u64 kept)
{
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int r = (int)row_in_wg + 8 * h;
        if (r >= rows_left || ((kept >> r) & 1) == 0)
            continue;
        u16 *row = first_row + (long long)r * ld_d;
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) {
            const int col = nb * BN + 8 * i + 2 * (int)(lane & 3);
            if (col < N)
                st_global_u32(row + col, pack_bf16x2(out[4 * i + 2 * h], out[4 * i + 2 * h + 1]));
        }
    }
}

/* The epilogue of a 64-row group of a group that ends inside it: rows past the group's
 * count (padding, or past masked_m) are not the kernel's to write. */
__device__ __forceinline__ void store_partial(const float *out, const sched &sc, const tile &tl,
                                              u32 rg, u32 row_in_wg, u32 lane, int rows_left,
                                              u16 *__restrict__ d_ptr, long long ld_d)
{
    u16 *group = d_ptr + (GROUPING == 1 ? (long long)tl.g * sc.m : (long long)tl.row0) * ld_d;
    store_rows(out, group + (long long)(tl.mb * BM + (int)rg * 64) * ld_d, ld_d, tl.nb,
               row_in_wg, lane, rows_left, ~0ull);
}

/* Per-row experts: the rows of 64-row group rg that are not the tile's expert's (padding,
 * or a bad layout) keep what D held there. */
__device__ __forceinline__ void store_expert_rows(const float *out, const tile &tl, u32 rg,
                                                  u32 row_in_wg, u32 lane, u64 kept,
                                                  u16 *__restrict__ d_ptr, long long ld_d)
{
    store_rows(out, d_ptr + (long long)(tl.mb * BM + (int)rg * 64) * ld_d, ld_d, tl.nb,
               row_in_wg, lane, 64, kept);
}
