/* The FP8 GEMM's producer warpgroup: the TMA warp streaming each tile's K blocks into
 * the ring, and the warp loading the B scales (per 128 x 128 block, or per column in FP32
 * mode) into each slot.
 *
 * Part of gemm_fp8.cuh, included INSIDE its namespace kiln_fp8 after the tile and
 * shared-memory constants, gemm_sched.cuh and trace_mark; it includes nothing
 * itself. */

/* The first row of the A tile that K block loads bring for tile tl: dense multicast pairs
 * past M load the last m block. */
__device__ __forceinline__ int tile_a_row(const sched &sc, const tile &tl)
{
    if constexpr (GROUPING == 0)
        return (tl.mb < sc.num_mb ? tl.mb : sc.num_mb - 1) * BM;
    return tl.row0 + tl.mb * BM;
}

/* A dense tile that M ends inside (the only m block, or the last), or a masked one that
 * M_max ends inside, loads its rows rounded up to 8 through tm_a_last (its box: the host's
 * kiln__gemm_fp8_a_box_rows), not a box the TMA fills with zeros past them. Tall tiles do so
 * only as a dense problem's only m block: per tile, 256-row producers (24 registers) spilled
 * 20-48 bytes at some K (4096 x 7168; masked 1024 x 4096 x 7168 even per launch), and 192-row
 * tiles, whose last block at M = 4096 holds 64 rows, gained nothing (stop 64, profiler, main
 * -> per tile: 4096x2112x7168 96.14 -> 97.16 us, 4000x2112x7168 94.30 -> 95.85,
 * 4096x24576x1536 231.36 -> 229.09, 4096x32768x512 127.30 -> 127.34). */
__device__ __forceinline__ bool short_a_tile(int m, int a_row)
{
    if constexpr (BM > 128)
        return GROUPING == 0 && MCA == 1 && m < BM;
    return GROUPING <= 1 && MCA == 1 && m - a_row < BM;
}

/* Bytes that each K block's loads bring for tile tl. */
__device__ __forceinline__ u32 stage_tx(const sched &sc, const tile &tl)
{
    const int a_row = tile_a_row(sc, tl);
    if (short_a_tile(sc.m, a_row))
        return STAGE_TX - A_STAGE_BYTES + short_box_rows(sc.m - a_row) * BK;
    return STAGE_TX;
}

/* Dense kernels: the B tile of K block kb of tile tl into slot s, counted on `full`. */
__device__ __forceinline__ void load_dense_b(const tmap *tm_b, const sched &sc, const tile &tl,
                                             u32 base, int s, u32 full, int kb)
{
    const int nb = tl.nb;
    if constexpr (MCA > 1) /* a cluster's n blocks past N load the last one */
        tma_load_2d(base + OFF_B + s * B_STAGE_BYTES, tm_b, full, kb * BK,
                    (nb < NUM_NB ? nb : NUM_NB - 1) * BN);
    else if constexpr (MC == 1)
        tma_load_2d(base + OFF_B + s * B_STAGE_BYTES, tm_b, full, kb * BK, nb * BN);
    else /* each CTA loads its half of the B tile into both */
        tma_load_2d_multicast(base + OFF_B + s * B_STAGE_BYTES + sc.rank * (B_STAGE_BYTES / 2),
                              tm_b, full, kb * BK, nb * BN + sc.rank * (BN / 2), (u16)3);
}

/* Dense kernels: the A tile of K block kb into slot s, then B's (unless load_b_early
 * loaded it: with_b false), then A's scales. A before B as before b_ready: B first measured
 * 1.3-2.5% slower at 64x7168x2048 and 128x24576x1536 (stop 42). */
__device__ __forceinline__ void load_dense_stage(const tmap *tm_a, const tmap *tm_b,
                                                 const tmap *tm_sfa, const sched &sc,
                                                 const tile &tl, u32 base, int s, u32 full,
                                                 int kb, int a_row, bool with_b)
{
    if constexpr (MCA == 1)
        tma_load_2d(base + OFF_A + s * A_STAGE_BYTES, tm_a, full, kb * BK, a_row);
    else /* each CTA loads its 1/MCA of the A tile into all of them */
        tma_load_2d_multicast(base + OFF_A + s * A_STAGE_BYTES + sc.rank * (A_STAGE_BYTES / MCA),
                              tm_a, full, kb * BK, a_row + sc.rank * (BM / MCA),
                              (u16)((1u << MCA) - 1));
    if (with_b)
        load_dense_b(tm_b, sc, tl, base, s, full, kb);
    tma_load_2d(base + OFF_SFA + s * SFA_STAGE_BYTES, tm_sfa, full, a_row, kb);
}

/* Masked kernels: the A tile of K block kb of tile tl into slot s, then B's (unless
 * load_b_guess loaded it: with_b false), then A's scales. */
__device__ __forceinline__ void load_masked_stage(const tmap *tm_a, const tmap *tm_b,
                                                  const tmap *tm_sfa, const tile &tl, u32 base,
                                                  int s, u32 full, int kb, int a_row, bool with_b)
{
    tma_load_3d(base + OFF_A + s * A_STAGE_BYTES, tm_a, full, kb * BK, a_row, tl.g);
    if (with_b)
        tma_load_3d(base + OFF_B + s * B_STAGE_BYTES, tm_b, full, kb * BK, tl.nb * BN, tl.g);
    tma_load_3d(base + OFF_SFA + s * SFA_STAGE_BYTES, tm_sfa, full, a_row, kb, tl.g);
}

/* The TMA loads of K block kb of tile tl into slot s, counted on its full barrier. */
__device__ __forceinline__ void load_stage(const tmap *tm_a, const tmap *tm_b, const tmap *tm_sfa,
                                           const sched &sc, const tile &tl, u32 base, int s,
                                           u32 full, int kb, int a_row)
{
    mbar_arrive_expect_tx(full, stage_tx(sc, tl));
    if constexpr (GROUPING == 1) {
        load_masked_stage(tm_a, tm_b, tm_sfa, tl, base, s, full, kb, a_row, true);
    } else if constexpr (GROUPING >= 2) { /* A and its scales 2-D, B per group */
        tma_load_2d(base + OFF_A + s * A_STAGE_BYTES, tm_a, full, kb * BK, a_row);
        tma_load_3d(base + OFF_B + s * B_STAGE_BYTES, tm_b, full, kb * BK, tl.nb * BN, tl.g);
        tma_load_2d(base + OFF_SFA + s * SFA_STAGE_BYTES, tm_sfa, full, a_row, kb);
    } else {
        load_dense_stage(tm_a, tm_b, tm_sfa, sc, tl, base, s, full, kb, a_row, true);
    }
}

#include "common/load_b_early.cuh"

/* B on a guess (masked kernels whose B the caller declared ready before the launch):
 * masked_m may still be written by the kernel before, so the first tile is guessed as if
 * every group held guess_rows rows (the host's expected rows; 0: M_max), which is right
 * wherever the groups before this CTA's first unit hold as many row tiles as that. The B
 * tiles of its first K blocks, up to one per slot and max_slots, are loaded before the grid
 * dependency wait on the guess barrier (OFF_GBAR), not on the slots' full barriers:
 * producer_tma waits for them there and then either keeps them (the guess was right) or
 * loads the slots again. Returns how many slots were so loaded; the guessed tile's group
 * and column block go to *g, *nb. */
__device__ __forceinline__ int load_b_guess(const tmap *tm_b, const sched &sc, u32 base, u32 lane,
                                            int max_slots, int guess_rows, int *g, int *nb)
{
    cursor cur;
    cursor_init(sc, cur);
    cur.rows = guess_rows > 0 && guess_rows < sc.m ? guess_rows : sc.m;
    cur.num_mb = (cur.rows + BM - 1) / BM;
    cur.count = cur.num_mb * NUM_NBU;
    cur.g = cur.count > 0 ? sc.first / cur.count : sc.num_groups;
    if (cur.g >= sc.num_groups)
        return 0;
    cur.base = cur.g * cur.count;
    tile tl;
    tile_coords(sc, cur, sc.first, tl);
    *g = tl.g;
    *nb = tl.nb;
    int early = sc.kb_count < STAGES ? sc.kb_count : STAGES;
    early = early < max_slots ? early : max_slots;
    if (lane == 0) {
        const u32 gbar = base + OFF_GBAR;
        mbar_arrive_expect_tx(gbar, (u32)early * B_STAGE_BYTES);
        for (int i = 0; i < early; ++i)
            tma_load_3d(base + OFF_B + i * B_STAGE_BYTES, tm_b, gbar, (sc.kb_begin + i) * BK,
                        tl.nb * BN, tl.g);
    }
    return early;
}

/* Producer warp 0: A, B and A-scale tiles by TMA. With multicast, each CTA of the pair loads
 * half of the shared B tile into both (the empty barriers count both CTAs' consumers). */
__device__ __forceinline__ void producer_tma(const tmap *tm_a, const tmap *tm_a_last,
                                             const tmap *tm_b, const tmap *tm_sfa,
                                             const float *__restrict__ sfb, const sched &sc,
                                             u32 base, u32 lane,
                                             const float *trace, int b_early, int guess_rows)
{
    int s = 0;
    u32 phase = 0;
    int early = 0; /* slots of the first tile whose B is loaded already (load_b_early) */
    int guess_g = -1, guess_nb = -1; /* masked: the tile load_b_guess loaded B for */
    bool guessed = false;            /* masked: its loads are not yet waited for */
    if constexpr (B_EARLY_OK) { /* the kernel waited for all threads otherwise */
        if (b_early)
            early = load_b_early(sc, base, lane, b_early,
                                 [&](const tile &tl, int slot, u32 full, int kb) {
                                     load_dense_b(tm_b, sc, tl, base, slot, full, kb);
                                 });
        grid_dependency_wait();
    } else if constexpr (B_GUESS_OK) {
        if (b_early)
            early = load_b_guess(tm_b, sc, base, lane, b_early, guess_rows, &guess_g, &guess_nb);
        guessed = early > 0;
        grid_dependency_wait();
    }
    for_each_tile(sc, [&](const tile &tl, const cursor &, int, auto piece) {
        if (B_GUESS_OK && guessed) { /* the first tile: keep the guessed B if it is this one's */
            mbar_wait(base + OFF_GBAR, 0);
            guessed = false;
            if (tl.g != guess_g || tl.nb != guess_nb)
                early = 0;
        }
        const int kb_begin = decltype(piece)::value ? tl.kb_begin : sc.kb_begin;
        const int kb_count = decltype(piece)::value ? tl.kb_count : sc.kb_count;
        const int nb = tl.nb;
        const int a_row = tile_a_row(sc, tl);
        const tmap *a_map = short_a_tile(sc.m, a_row) ? tm_a_last : tm_a;
        const float *__restrict__ sfb_g = sfb + (long long)tl.g * SFB_ROWS * KB;
        /* fused scheme only: lane l holds the B scales of local K blocks l, l+32, ... */
        constexpr int CHUNKS = SCALE_WARP ? 1 : (KB_CTA + 31) / 32;
        float sbr[NSB][CHUNKS];
        if constexpr (!SCALE_WARP) {
#pragma unroll
            for (int j = 0; j < NSB; ++j) {
                int row = nb * BN / 128 + j;
                row = row < SFB_ROWS ? row : SFB_ROWS - 1;
#pragma unroll
                for (int c = 0; c < CHUNKS; ++c) {
                    int kl = c * 32 + (int)lane;
                    sbr[j][c] = kl < kb_count
                                    ? __ldg(sfb_g + (long long)row * KB + kb_begin + kl) : 0.0f;
                }
            }
        }
#pragma unroll 1
        for (int kb = kb_begin; kb < kb_begin + kb_count; ++kb) {
            float v[NSB];
            if constexpr (!SCALE_WARP) {
                const int kl = kb - kb_begin;
#pragma unroll
                for (int j = 0; j < NSB; ++j) {
                    float x = 0.0f;
#pragma unroll
                    for (int c = 0; c < CHUNKS; ++c) {
                        float y = __shfl_sync(0xffffffffu, sbr[j][c], kl & 31);
                        x = (kl >> 5) == c ? y : x;
                    }
                    v[j] = x;
                }
            }
            mbar_wait(base + OFF_BAR + (STAGES + s) * 8, phase ^ 1);
            if (lane == 0) {
                const u32 full = base + OFF_BAR + s * 8;
                if constexpr (!SCALE_WARP) {
#pragma unroll
                    for (int j = 0; j < NSB; ++j)
                        asm volatile("st.shared.f32 [%0], %1;"
                                     ::"r"(base + OFF_SFB + (s * NSB + j) * 4), "f"(v[j])
                                     : "memory");
                }
                if constexpr (MATH_ONLY) {
                    mbar_arrive(full); /* no loads: the slot is handed over as it is */
                } else if (B_EARLY_OK && early > 0) {
                    mbar_arrive(full); /* its bytes were expected with B's loads */
                    load_dense_stage(a_map, tm_b, tm_sfa, sc, tl, base, s, full, kb, a_row, false);
                } else if (B_GUESS_OK && early > 0) { /* B is in the slot (OFF_GBAR) */
                    mbar_arrive_expect_tx(full, stage_tx(sc, tl) - B_STAGE_BYTES);
                    load_masked_stage(a_map, tm_b, tm_sfa, tl, base, s, full, kb, a_row, false);
                } else {
                    load_stage(a_map, tm_b, tm_sfa, sc, tl, base, s, full, kb, a_row);
                }
            }
            __syncwarp();
            early -= early > 0;
            if (++s == STAGES) {
                s = 0;
                phase ^= 1;
            }
        }
    });
    /* No tile after all (the groups hold fewer rows than guessed): the guessed loads must
     * land before the CTA exits. */
    if (B_GUESS_OK && guessed)
        mbar_wait(base + OFF_GBAR, 0);
    if (lane == 0)
        trace_mark(trace, TR_LAST_LOAD);
    /* Multicast: the partners' consumers arrive on our empty barriers (release_slot). Wait
     * for each slot's last release, as if to fill it again, so that no such arrive is still
     * on its way when the CTA exits (cluster_sync_before_exit's arrive is relaxed). */
    if constexpr (MC > 1 || MCA > 1) {
        for (int i = 0; i < STAGES; ++i) {
            mbar_wait(base + OFF_BAR + (STAGES + s) * 8, phase ^ 1);
            if (++s == STAGES) {
                s = 0;
                phase ^= 1;
            }
        }
    }
}

/* Producer warp 1: B scales, read from global memory by its lanes (each lane holds K blocks
 * lane, lane+32, ... of the tile's NSB scale rows), stored into the slot, then one arrive on
 * the full barrier. A separate warp, so the scales' memory latency at the start of a tile
 * does not hold back the first TMA loads. */
__device__ __forceinline__ void producer_scales(const float *__restrict__ sfb, const sched &sc,
                                                u32 base, u32 lane)
{
    constexpr int CHUNKS = (KB_CTA + 31) / 32;
    int s = 0;
    u32 phase = 0;
    for_each_tile(sc, [&](const tile &tl, const cursor &, int, auto piece) {
        const int kb_begin = decltype(piece)::value ? tl.kb_begin : sc.kb_begin;
        const int kb_count = decltype(piece)::value ? tl.kb_count : sc.kb_count;
        const int n0 = tl.nb * BN;
        const float *__restrict__ sfb_g = sfb + (long long)tl.g * SFB_ROWS * KB;
        float sb[NSB][CHUNKS];
#pragma unroll
        for (int j = 0; j < NSB; ++j) {
            int row = n0 / 128 + j;
            row = row < SFB_ROWS ? row : SFB_ROWS - 1;
#pragma unroll
            for (int c = 0; c < CHUNKS; ++c) {
                int kl = c * 32 + (int)lane;
                sb[j][c] = kl < kb_count
                               ? __ldg(sfb_g + (long long)row * KB + kb_begin + kl) : 0.0f;
            }
        }
        /* Chunk loop unrolled so every register index is a compile-time constant. */
#pragma unroll
        for (int c = 0; c < CHUNKS; ++c) {
            const int kl_end = kb_count - c * 32 < 32 ? kb_count - c * 32 : 32;
#pragma unroll 1
            for (int kk = 0; kk < kl_end; ++kk) {
                float v[NSB];
#pragma unroll
                for (int j = 0; j < NSB; ++j)
                    v[j] = __shfl_sync(0xffffffffu, sb[j][c], kk);
                mbar_wait(base + OFF_BAR + (STAGES + s) * 8, phase ^ 1);
                if (lane == 0) {
#pragma unroll
                    for (int j = 0; j < NSB; ++j)
                        asm volatile("st.shared.f32 [%0], %1;"
                                     ::"r"(base + OFF_SFB + (s * NSB + j) * 4), "f"(v[j])
                                     : "memory");
                    mbar_arrive(base + OFF_BAR + s * 8);
                }
                __syncwarp();
                if (++s == STAGES) {
                    s = 0;
                    phase ^= 1;
                }
            }
        }
    });
}

/* FP32 mode: the scale warp copies each K block's BN column scales of B (row kb of the
 * MN-major sfb) into the slot, loading the next K block's while it waits for a free slot. */
constexpr int COL_CHUNKS = (BN + 31) / 32;

__device__ __forceinline__ void load_col_scales(float (&v)[COL_CHUNKS], const float *__restrict__ sfb,
                                                int kb, int n0, u32 lane)
{
#pragma unroll
    for (int c = 0; c < COL_CHUNKS; ++c) {
        const int j = c * 32 + (int)lane, col = n0 + j;
        v[c] = j < BN && col < N ? __ldg(sfb + (long long)kb * SFB_LD + col) : 0.0f;
    }
}

__device__ __forceinline__ void producer_col_scales(const float *__restrict__ sfb, const sched &sc,
                                                    u32 base, u32 lane)
{
    int s = 0;
    u32 phase = 0;
    for_each_tile(sc, [&](const tile &tl, const cursor &, int, auto) {
        const int n0 = tl.nb * BN;
        float v[COL_CHUNKS];
        load_col_scales(v, sfb, sc.kb_begin, n0, lane);
#pragma unroll 1
        for (int kl = 0; kl < sc.kb_count; ++kl) {
            float next[COL_CHUNKS];
            load_col_scales(next, sfb, sc.kb_begin + (kl + 1 < sc.kb_count ? kl + 1 : kl), n0, lane);
            mbar_wait(base + OFF_BAR + (STAGES + s) * 8, phase ^ 1);
#pragma unroll
            for (int c = 0; c < COL_CHUNKS; ++c)
                if (c * 32 + (int)lane < BN)
                    asm volatile("st.shared.f32 [%0], %1;"
                                 ::"r"(base + OFF_SFB + (s * BN + c * 32 + (int)lane) * 4), "f"(v[c])
                                 : "memory");
            __syncwarp(); /* every lane's scales are in the slot before lane 0 arrives */
            if (lane == 0)
                mbar_arrive(base + OFF_BAR + s * 8);
#pragma unroll
            for (int c = 0; c < COL_CHUNKS; ++c)
                v[c] = next[c];
            if (++s == STAGES) {
                s = 0;
                phase ^= 1;
            }
        }
    });
}
