/* FP8 GEMM with DeepSeek fine-grained scaling, sm_90a.
 *
 * Computes D[M,N] (bf16) = (A[M,K] * sa) . (B[N,K] * sb)^T with FP32 accumulation.
 *
 * Operands (row-major, element offsets):
 *   A    e4m3 [M][K]            K-major, row pitch K bytes
 *   B    e4m3 [N][K]            K-major, row pitch K bytes
 *   sfa  f32  [K/128][align(M,4)]  one scale per row per 128 of K, MN-major (TMA-loaded)
 *   sfb  f32  [ceil(N/128)][K/128] one scale per 128x128 block of B, row-major (plain loads)
 *   D    bf16 [M][N]            row pitch N elements
 * K % 128 == 0, N % 16 == 0 (N % 8 suffices for the kernel), M >= 1 is a run-time argument.
 *
 * Compile-time parameters (namespace kp, defined by the including translation unit):
 *   n, k        problem N and K
 *   block_m     rows per tile: 64 (one math warpgroup), 128 (two), 192 (three) or 256 (two,
 *               each taking two 64-row groups in two waves); 192 and 256 for prefill only
 *               (256 also for masked groups of many rows)
 *   block_n     columns per tile: multiple of 8, 8..256 (register bound: block_n/2 wgmma
 *               accumulators + block_n/2 promoted FP32 accumulators per thread)
 *   stages      depth of the shared-memory ring
 *   group_n     tile-order swizzle: tiles walk M inside groups of group_n column blocks
 *   k_split     math warpgroups per 64-row group, splitting K blocks round-robin inside the
 *               CTA (1, 2 or 4; K/128 and stages multiples of it); partial sums are reduced
 *               through shared memory. Shortens the serial per-K-block chain for decode.
 *   multicast   1 (or 0): no cluster. 2: 2-CTA cluster along M; the pair takes m blocks
 *               2i and 2i+1 of one n block, and rank 0 multicasts the shared B tile to both
 *               CTAs (the empty barriers collect both CTAs' consumers).
 *   cluster_k   0 or 1: each CTA does all K blocks of its tile. C in 2..8: a cluster of C
 *               CTAs shares one tile, rank r taking K blocks [r*KB/C, (r+1)*KB/C); the
 *               ranks swap FP32 partial sums over DSMEM and each finishes and stores 1/C of
 *               the tile's columns (common/cluster_reduce.cuh). For decode: fewer, wider
 *               tiles (less of A re-read per CTA) that still fill the SMs. With k_split > 1,
 *               K/128 must divide by C * k_split. Not combined with multicast 2.
 *   out_f32     0: D bf16, B scaled per 128x128 block. 1: D f32 = C + A.B^T, B scaled
 *               1x128 (sfb f32 [K/128][align(N,4)], MN-major, one scale per column per K
 *               block), stored from registers; dense only (no multicast/cluster_k/k_split).
 *   overlap     1: two accumulator sets, the next K block's wgmma issued before the last
 *               one is promoted (no k_split; 3*block_n/2 + ~40 registers per math thread)
 *   turns       1: with the plain K loop (overlap 0) and 128, 192 or 256 rows, the math
 *               warpgroups issue each K block's wgmma in turn (named barriers)
 *   grouping    0: one problem. 1: masked groups (MoE decode): A [G][M_max][K], B [G][N][K],
 *               D [G][M_max][N] and A's scales [G][K/128][align(M_max,4)] through 3-D
 *               tensor maps (dims {K, M_max, G}, {K, N, G}, {N, M_max, G},
 *               {align(M_max,4), K/128, G}; same boxes with a depth of 1), B's scales
 *               [G][ceil(N/128)][K/128]; group g has group_rows[g] valid rows (read on the
 *               device, clamped to [0, M_max]); rows past it are neither stored nor, beyond
 *               whole tiles, computed. No multicast.
 *               2: contiguous groups (MoE prefill): A [M_total][K] and D [M_total][N] (2-D
 *               maps as the dense GEMM), B and its scales per group as in 1; group g's rows
 *               begin at the next multiple of m_align after group g-1's and group_rows holds
 *               the inclusive prefix sums of the rows per group (the DeepEP v2 layout).
 *               Padding rows are not stored; tiles of padding only are not computed.
 *   m_align     grouping 2: the row alignment of each group's start, a multiple of block_m
 *   tail        1: dense 192 x 128 tiles whose last round of tiles, when it would fill at
 *               most half of the CTAs, runs as three pieces per tile along K (two where it
 *               fills more than a third), one per CTA, their FP32 partial sums added
 *               through the workspace tail_ws (gemm_fp8_tail.cuh; a null tail_ws: no
 *               split)
 *
 * Launch: CLUSTER = multicast(2 or 1) * max(cluster_k, 1) * max(multicast_a, 1)
 * (kiln_gemm_fp8_cluster); #units = ceil(num_mb / multicast) * ceil(ceil(N/block_n) /
 * multicast_a), num_mb = ceil(M/block_m); grid =
 * CLUSTER * min(#units, co-resident clusters) (persistent; any grid that is a multiple of
 * CLUSTER is correct; without a cluster: min(#tiles, #SMs)); when CLUSTER > 1 launch with
 * the cluster-dimension attribute (CLUSTER, 1, 1) and size the grid with
 * cuOccupancyMaxActiveClusters (a cluster of 4 or 8 does not fit on every SM). block =
 * THREADS = (WG_RG * k_split + 1) * 128, dynamic shared memory = SMEM_BYTES (constexpr
 * kiln_gemm_fp8_smem_bytes below, also in the cubin as kiln_gemm_fp8_smem_layout; the host
 * formula: align1024(cluster_k > 1 ? 0 : WG_RG*64*block_n*2) + align1024((k_split-1)*RG*64*
 * block_n*4) + align1024(cluster_k > 1 ? (cluster_k-1)*RG*reduce_scatter_chunk(block_n,
 * cluster_k) : 0)
 * + stages*(block_m*128 + block_n*128 + block_m*4) + align16(stages*NSB*4) + stages*16
 * + (cluster_k > 1 ? RG*16 : 0) + 1024, RG = block_m/64, WG_RG = RG, or RG/2 for 256-row
 * tiles (two waves)), PDL allowed.
 * Tensor maps (cuTensorMapEncodeTiled, dims innermost first):
 *   tm_a   u8   dims {K, M}            box {128, block_m / max(multicast_a, 1)} swizzle 128B
 *   tm_a_last    the same over the last m block: box {128, its rows rounded up to 8} where
 *                M (masked: M_max) ends inside it (dense with multicast_a 1, and masked;
 *                kiln__gemm_fp8_a_box_rows)
 *   tm_b   u8   dims {K, N}            box {128, block_n}   swizzle 128B
 *   tm_sfa f32  dims {align(M,4), K/128} box {block_m, 1}   no swizzle
 *   tm_d   bf16 dims {N, M}            box {D_SLAB, 64}     swizzle D_SWIZZLE
 *          (D_SLAB = the largest of 64, 32, 16 dividing block_n, else block_n; D_SWIZZLE =
 *           128B/64B/32B when D_SLAB*2 is 128/64/32 bytes, none otherwise)
 *
 * Warp roles: warpgroups 0 .. MATH_WG-1 are math (warpgroup w owns rows 64*(w % WG_RG) of
 * the tile, and with 256-row tiles 64*(w + 2) too, and the K blocks kb with kb % k_split ==
 * w / WG_RG, issuing m64n{block_n}k32 wgmma), the
 * last warpgroup is the producer (its first warp streams tiles with TMA, its second loads
 * the B scales into the slot; registers lowered to 40 with setmaxnreg, math raised to what
 * is left). Slot s of the ring only ever holds K
 * blocks with kb % k_split == s % k_split, so each slot has exactly one consuming row set.
 *
 * Pipeline: a ring of `stages` slots, each holding one 128-deep K block of A and B (128B
 * swizzle), the A scales of that K block and the B scales it needs; a full barrier per slot
 * (TMA-warp arrive + bytes, scale-warp arrive) and an empty barrier per slot (one arrive
 * per math warp, of both CTAs with multicast).
 * Two-level accumulation: the 4 wgmma of a K block accumulate in the tensor-core
 * accumulator, which is then folded into FP32 registers times sa*sb. The epilogue packs to
 * bf16 into swizzled shared memory and stores with TMA, overlapping the next tile's loads;
 * dense and prefix-sum contiguous 256-row tiles keep the packed sums in registers and store
 * them while the next tile's first K block runs (DEFER).
 * PDL: griddepcontrol.wait after barrier init and descriptor prefetch (dense and masked
 * kernels with B ready: after the first tile's B loads, masked ones on a guess of that
 * tile); launch_dependents after the main loop.
 * Files: this one holds the math warpgroups' tile loop and the kernel; gemm_fp8_config.cuh
 * the compile-time constants, their checks and the shared-memory layout;
 * gemm_fp8_producer.cuh the producer warpgroup, gemm_fp8_kblock.cuh one K block of math
 * (scales, wgmma, promotion, the overlapped loop), gemm_fp8_epilogue.cuh the stores,
 * gemm_fp8_tail.cuh the split last round's pieces.
 */
#include "common/sm90.cuh"

#ifndef KILN_GEMM_FP8_ENTRY
#define KILN_GEMM_FP8_ENTRY kiln_gemm_fp8
#endif

namespace kiln_fp8 {

using namespace kiln;

#include "gemm_fp8_config.cuh"

#include "common/gemm_sched.cuh"
#include "common/cluster_reduce.cuh"

/* B scales from a second producer warp (1, the default) or from the TMA warp itself before
 * a tile's first load (0, the v2 scheme; kept for measurement). */
#ifndef KILN_GEMM_FP8_SCALE_WARP
#define KILN_GEMM_FP8_SCALE_WARP 1
#endif
constexpr bool SCALE_WARP = KILN_GEMM_FP8_SCALE_WARP != 0 || OUT_F32;

/* Trace mode: TRACE_SLOTS u64 per CTA, written by one thread each. TR_START_NS and TR_END_NS
 * are the global timer (ns, common to all SMs, coarse); the rest are this SM's clock64. Host
 * side: kiln-bench-gemm-fp8 --trace, with the slots mirrored in gemm_config.h
 * (kiln__gemm_fp8_trace_slot). */
enum trace_slot {
    TR_START_NS,     /* kernel entry, %globaltimer */
    TR_START,        /* kernel entry */
    TR_READY,        /* barriers set up, griddepcontrol.wait passed */
    TR_LOOP0_BEGIN,  /* math warpgroup 0 starts its first tile's K loop */
    TR_LOOP0_END,    /* ... and leaves it (its last promotion done) */
    TR_LAST_LOOP_END,/* ... leaves its last tile's K loop */
    TR_MATH_END,     /* ... has stored its last tile */
    TR_LAST_LOAD,    /* the producer has issued its last TMA load */
    TR_END_NS,       /* = TR_MATH_END, %globaltimer: with TR_START_NS, the SM clock's rate */
    TRACE_SLOTS
};

__device__ __forceinline__ void trace_mark(const float *trace, int slot)
{
    if constexpr (TRACE) {
        unsigned long long t;
        if (slot == TR_START_NS || slot == TR_END_NS)
            asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
        else
            asm volatile("mov.u64 %0, %%clock64;" : "=l"(t));
        reinterpret_cast<unsigned long long *>(const_cast<float *>(trace))[blockIdx.x * TRACE_SLOTS +
                                                                          slot] = t;
    }
}

#include "gemm_fp8_producer.cuh"
#include "gemm_fp8_kblock.cuh"
#include "gemm_fp8_epilogue.cuh"
#include "gemm_fp8_tail.cuh"

__device__ __forceinline__ void math(const tmap *tm_d, const sched &sc, u32 base, const float *c,
                                     u16 *__restrict__ d_ptr, long long ld_d, unsigned *tail_ws)
{
    /* Broadcast from lane 0 so that the compiler knows the warpgroup index (and what is
     * derived from it: row group, K phase, the wgmma descriptors) is uniform across the warp
     * and keeps it in uniform registers instead of moving each descriptor there per wgmma. */
    const u32 wg = __shfl_sync(0xffffffffu, threadIdx.x / 128, 0);
    const u32 rg = wg % WG_RG; /* row group (of the first wave: rg + v * WG_RG in wave v) */
    const int q = (int)(wg / WG_RG); /* K phase: this warpgroup takes local kb % KSPLIT == q */
    const u32 t = threadIdx.x % 128;
    const u32 warp = t / 32;
    const u32 lane = t % 32;
    const u32 row_in_wg = warp * 16 + lane / 4; /* and +8 */
    const u32 dsm = base + OFF_D + rg * D_WG_BYTES;
    bool first_tile = true;
    u32 tile_parity = 0; /* cluster_k handshake phase */

    float acc[BN / 2];
    float acc1[BN / 2]; /* the second accumulator set (overlap; unused registers otherwise) */
    float outs[WAVES][BN / 2]; /* promoted sums, one set per wave */
    float (&out)[BN / 2] = outs[0];
    int s = 0;
    u32 phase = 0;
    deferred_tile dt; /* DEFER: the previous tile, stored during this one's first K block */
    bool pending = false;

    /* turns: row group 0 goes first; the last one hands it the first turn. */
    if (TURNS && rg == WG_RG - 1)
        named_bar_arrive(BAR_TURN, 256);

    for_each_tile(sc, [&](const tile &tl, const cursor &cur, int unit, auto piece) {
        constexpr bool PIECE = decltype(piece)::value != 0;
        const int mb = tl.mb, nb = tl.nb;
        const int n_off = (nb * BN) % 128;
        /* every row, but with per-row experts; only this warpgroup's 64-row groups' bits stay
         * live through the K loop (the whole tile's do not fit beside a 192-row tile's sums) */
        u64 kept[WAVES];
#pragma unroll
        for (int v = 0; v < WAVES; ++v)
            kept[v] = tile_rows_kept(tl, rg + v * WG_RG);
        /* PEEL_FIRST: set by the first K block; pieces (a last round's split tiles) do without
         * the peel, which would be one more copy of the K block's code to compile */
        if constexpr (!PEEL_FIRST || PIECE)
#pragma unroll
            for (int v = 0; v < WAVES; ++v)
#pragma unroll
                for (int i = 0; i < BN / 2; ++i)
                    outs[v][i] = 0.0f;
        if (threadIdx.x == 0 && first_tile)
            trace_mark(c, TR_LOOP0_BEGIN);

        if constexpr (OVERLAP && !LOADS_ONLY) {
            kloop_overlapped(out, acc, acc1, sc, base, s, phase, rg, row_in_wg, n_off, lane);
        } else {
            /* This warpgroup's K blocks sit in slots s, s+KSPLIT, ... of the ring. */
            ring_next(s, phase, q);
            int kl = q;
            if constexpr (PEEL_FIRST && !PIECE) {
                /* The first K block on its own: each wave's wgmma is issued, then (DEFER)
                 * the previous tile's wave stored while it runs, then the sums start from
                 * it (a loop-carried copy would keep zeroed sums live beside dt). */
                mbar_wait(base + OFF_BAR + s * 8, phase);
#pragma unroll
                for (int v = 0; v < WAVES; ++v)
                    plain_wave<true>(v, outs[v], acc, s, rg, row_in_wg, sc, base, n_off, lane,
                                     [&] {
                                         if (DEFER && pending)
                                             store_deferred(tm_d, dsm, dt, v, rg, wg, t,
                                                            row_in_wg, lane);
                                     });
                ring_next(s, phase, 1);
                kl = 1;
            }
            const int kb_count = PIECE ? tl.kb_count : sc.kb_count;
#pragma unroll UNROLL
            for (; kl < kb_count; kl += KSPLIT) {
                mbar_wait(base + OFF_BAR + s * 8, phase);
                if constexpr (LOADS_ONLY) {
                    release_slot(base, s, sc, lane);
                } else {
#pragma unroll
                    for (int v = 0; v < WAVES; ++v)
                        plain_wave<false>(v, outs[v], acc, s, rg, row_in_wg, sc, base, n_off,
                                          lane, [] {});
                }
                ring_next(s, phase, KSPLIT);
            }
            /* Back to the slot after this tile's last K block (kb_count % KSPLIT == 0). */
            s -= q;
            if (s < 0) {
                s += STAGES;
                phase ^= 1;
            }
        }
        if (threadIdx.x == 0) {
            if (first_tile)
                trace_mark(c, TR_LOOP0_END);
            trace_mark(c, TR_LAST_LOOP_END);
        }
        if constexpr (LOADS_ONLY) {
            first_tile = false;
            return;
        }

        if constexpr (KSPLIT > 1) {
            const bool more = has_next_unit(sc, cur, unit);
            const u32 red = base + OFF_RED;
            if (q > 0) {
                /* Hand the partial sums to the q == 0 warpgroup of this row group. */
                if (!first_tile)
                    named_bar_sync(BAR_FREE + rg, KSPLIT * 128);
                const u32 mine = red + ((q - 1) * RG + rg) * RED_WG_BYTES + t * 4;
#pragma unroll
                for (int i = 0; i < BN / 2; ++i)
                    asm volatile("st.shared.f32 [%0], %1;" ::"r"(mine + i * 512), "f"(out[i])
                                 : "memory");
                named_bar_arrive(BAR_READY + rg, KSPLIT * 128);
                first_tile = false;
                return;
            }
            named_bar_sync(BAR_READY + rg, KSPLIT * 128);
#pragma unroll
            for (int p = 1; p < KSPLIT; ++p) {
                const u32 theirs = red + ((p - 1) * RG + rg) * RED_WG_BYTES + t * 4;
#pragma unroll
                for (int i = 0; i < BN / 2; ++i)
                    out[i] += ld_shared_f32(theirs + i * 512);
            }
            if (more)
                named_bar_arrive(BAR_FREE + rg, KSPLIT * 128);
        }

        if constexpr (CK > 1) {
            cluster_reduce_scatter(out, sc, base, rg, t, tile_parity, first_tile,
                                   has_next_unit(sc, cur, unit));
            first_tile = false;
            store_owned(out, sc, tl, rg, row_in_wg, lane, tl.rows - (mb * BM + (int)rg * 64),
                        d_ptr, ld_d);
            return;
        }
        first_tile = false;
        if constexpr (PIECE) { /* summed and stored by whoever counts last */
            tail_piece_done(out, sc, tl, rg, wg, t, row_in_wg, lane, tail_ws, d_ptr, ld_d);
            return;
        }

        if constexpr (OUT_F32) {
            store_f32(out, sc, tl, rg, row_in_wg, lane, c, d_ptr, ld_d);
            return;
        }

        /* multicast_a: a cluster's n blocks past N only load their share of A */
        const int tile_rows_left = nb < NUM_NB ? tl.rows - mb * BM : 0;
        if constexpr (DEFER) {
#pragma unroll
            for (int v = 0; v < WAVES; ++v)
                pack_wave(dt.pk[v], outs[v]);
            dt.col = nb * BN;
            dt.row = tl.row0 + mb * BM;
            dt.rows_left = tile_rows_left;
            /* Contiguous groups: a wave that a group's end cuts is stored row by row from
             * the FP32 sums (store_partial), so such a tile is stored now (the previous one
             * went out during this one's first K block). dt is set either way: kept from
             * an earlier tile, it would stay live through the K loop and spill. */
            bool cut = false;
#pragma unroll
            for (int v = 0; v < WAVES; ++v) {
                const int left = tile_rows_left - (int)(rg + v * WG_RG) * 64;
                cut |= GROUPING == 2 && left > 0 && left < 64;
            }
            pending = !cut;
            if (!cut)
                return;
        }

        /* Epilogue, one wave (row group rgv) at a time through this warpgroup's staging
         * buffer: the previous TMA store must have finished reading it before it is
         * overwritten. */
#pragma unroll
        for (int v = 0; v < WAVES; ++v) {
            const u32 rgv = rg + v * WG_RG;
            u32 pk[BN / 4];
            pack_wave(pk, outs[v]);
            stage_wave(dsm, pk, wg, t, row_in_wg, lane);
            const int rows_left = tile_rows_left - (int)rgv * 64;
            if (GROUPING == 3 && kept[v] != ~0ull) {
                store_expert_rows(outs[v], tl, rgv, row_in_wg, lane, kept[v], d_ptr, ld_d);
            } else if (GROUPING != 0 && rows_left > 0 && rows_left < 64) {
                store_partial(outs[v], sc, tl, rgv, row_in_wg, lane, rows_left, d_ptr, ld_d);
            } else if (t == 0 && rows_left > 0) {
                if constexpr (GROUPING == 1) {
#pragma unroll
                    for (int sl = 0; sl < D_NSLAB; ++sl)
                        tma_store_3d(tm_d, dsm + sl * (64 * D_SLAB_BYTES), nb * BN + sl * D_SLAB,
                                     mb * BM + rgv * 64, tl.g);
                    bulk_commit();
                } else {
                    store_wave_2d(tm_d, dsm, nb * BN, tl.row0 + mb * BM + rgv * 64);
                }
            }
        }
    });
    if constexpr (DEFER) { /* the last tile's store: no K block left to hide it behind */
        if (pending)
#pragma unroll
            for (int v = 0; v < WAVES; ++v)
                store_deferred(tm_d, dsm, dt, v, rg, wg, t, row_in_wg, lane);
    }
    if (t == 0 && q == 0)
        bulk_wait<0>();
    /* turns: take the turn the last row group handed on after its last K block, so that no
     * arrival is left pending on a named barrier at exit. */
    if (TURNS && rg == 0)
        named_bar_sync(BAR_TURN, 256);
    if (threadIdx.x == 0) {
        trace_mark(c, TR_MATH_END);
        trace_mark(c, TR_END_NS);
    }
}

} // namespace kiln_fp8

constexpr int kiln_gemm_fp8_threads = kiln_fp8::THREADS;
constexpr int kiln_gemm_fp8_smem_bytes = kiln_fp8::SMEM_BYTES;
constexpr int kiln_gemm_fp8_cluster = kiln_fp8::CLUSTER;
/* The layout's size in the cubin (and its PTX), where a test holds the host's formula
 * (kiln__gemm_fp8_smem) to it without a GPU. */
extern "C" __device__ const int kiln_gemm_fp8_smem_layout = kiln_gemm_fp8_smem_bytes;

/* sfb: B scales (see above); c: the FP32 mode's C [M][N] with D's row stride (may be null:
 * zero; may alias D; ignored in the BF16 mode);
 * m: rows of A and D (grouped: M_max of every group); group_rows: grouped, the valid rows
 * of each of the num_groups groups (device memory; ignored when dense); d_ptr, ld_d: D
 * again as a pointer with its row stride (elements), for row-by-row stores of partial
 * tiles; tail_ws: the workspace of the split last round (gemm_fp8_tail.cuh; null: no
 * split); b_ready: the ring slots of B a dense or masked BF16-output kernel may load before
 * griddepcontrol.wait, a dense kernel's scale warp then reading sfb before it too (B and sfb
 * ready before the launch: weights; 0: none; load_b_early, load_b_guess); for a masked
 * kernel the slots are its low 8 bits and the rows per group its guess assumes the rest
 * (0: M_max). */
extern "C" __global__ void __launch_bounds__(kiln_fp8::THREADS, 1)
KILN_GEMM_FP8_ENTRY(const __grid_constant__ kiln::tmap tm_a,
                    const __grid_constant__ kiln::tmap tm_a_last,
                    const __grid_constant__ kiln::tmap tm_b,
                    const __grid_constant__ kiln::tmap tm_sfa, const __grid_constant__ kiln::tmap tm_d,
                    const float *__restrict__ sfb, const float *c, int m,
                    const int *__restrict__ group_rows, int num_groups,
                    unsigned short *__restrict__ d_ptr, long long ld_d,
                    unsigned *__restrict__ tail_ws, int b_ready)
{
    using namespace kiln_fp8;
    extern __shared__ unsigned char smem_raw[];
    const u32 base = (smem_addr(smem_raw) + 1023) & ~1023u;
    const u32 warp = threadIdx.x / 32;
    const u32 lane = threadIdx.x % 32;
    if (threadIdx.x == 0) {
        trace_mark(c, TR_START_NS);
        trace_mark(c, TR_START);
    }

    if (threadIdx.x == MATH_WG * 128) {
        for (int s = 0; s < STAGES; ++s) {
            /* full: the TMA warp's arrive (+ bytes) and the scale warp's arrive */
            mbar_init(base + OFF_BAR + s * 8, SCALE_WARP ? 2 : 1);
            mbar_init(base + OFF_BAR + (STAGES + s) * 8, MC * MCA * WG_RG * 4);
        }
        if constexpr (CK > 1) {
            for (int r = 0; r < RG; ++r) {
                mbar_init(base + OFF_CBAR + r * 8, 1); /* + the partners' bytes */
                mbar_init(base + OFF_CBAR + (RG + r) * 8, CK - 1);
            }
        }
        if constexpr (B_GUESS_OK)
            mbar_init(base + OFF_GBAR, 1); /* the TMA warp's arrive + the guessed B's bytes */
        fence_barrier_init();
        tma_prefetch_desc(&tm_a);
        if constexpr (GROUPING <= 1 && MCA == 1)
            tma_prefetch_desc(&tm_a_last);
        tma_prefetch_desc(&tm_b);
        tma_prefetch_desc(&tm_sfa);
        tma_prefetch_desc(&tm_d);
    }
    /* Cluster modes: the partner's barriers must be initialised before anything reaches
     * them (multicast bytes, remote arrives). */
    if constexpr (CLUSTER > 1)
        cluster_sync_after_init();
    else
        __syncthreads();
    /* The grid dependency wait (PDL): for all threads here, or (B_EARLY_ANY) in each role,
     * so that with B ready the producers read B (dense: and its scales) before it. */
    if constexpr (!B_EARLY_ANY) {
        grid_dependency_wait();
        if (threadIdx.x == 0)
            trace_mark(c, TR_READY);
    }
    const sched sc = make_sched(m, group_rows, num_groups, tail_ws); /* reads no memory */
    /* slots of B early, at most; a masked kernel's b_ready also carries its guess's rows */
    const int b_early = B_GUESS_OK ? b_ready & 0xff : B_EARLY_ANY && b_ready > 0 ? b_ready : 0;

    if (warp >= MATH_WG * 4) {
        setmaxnreg_dec<PRODUCER_REGS>();
        if (warp == MATH_WG * 4) {
            producer_tma(&tm_a, &tm_a_last, &tm_b, &tm_sfa, sfb, sc, base, lane, c, b_early,
                         B_GUESS_OK ? b_ready >> 8 : 0);
        } else {
            /* the scale warp of a masked kernel finds its tiles from masked_m */
            if (B_EARLY_ANY && (!b_early || GROUPING != 0))
                grid_dependency_wait();
            if (OUT_F32 && warp == MATH_WG * 4 + 1)
                producer_col_scales(sfb, sc, base, lane);
            else if (SCALE_WARP && warp == MATH_WG * 4 + 1)
                producer_scales(sfb, sc, base, lane);
        }
    } else {
        if constexpr (B_EARLY_ANY) {
            grid_dependency_wait();
            if (threadIdx.x == 0)
                trace_mark(c, TR_READY);
        }
        setmaxnreg_inc<MATH_REGS>();
        math(&tm_d, sc, base, c, d_ptr, ld_d, tail_ws);
    }
    grid_launch_dependents();
    if constexpr (CLUSTER > 1)
        cluster_sync_before_exit();
}
