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
 * PDL: griddepcontrol.wait after barrier init and descriptor prefetch; launch_dependents
 * after the main loop.
 * Files: this one holds the constants, the shared-memory layout, the math warpgroups' tile
 * loop and the kernel; gemm_fp8_producer.cuh the producer warpgroup, gemm_fp8_kblock.cuh one
 * K block of math (scales, wgmma, promotion, the overlapped loop), gemm_fp8_epilogue.cuh the
 * stores.
 */
#include "common/sm90.cuh"

#ifndef KILN_GEMM_FP8_ENTRY
#define KILN_GEMM_FP8_ENTRY kiln_gemm_fp8
#endif

namespace kiln_fp8 {

using namespace kiln;

constexpr int BM = (int)kp::block_m;
constexpr int BN = (int)kp::block_n;
constexpr int BK = 128;
constexpr int STAGES = (int)kp::stages;
constexpr long long N = kp::n;
constexpr long long K = kp::k;
constexpr int KB = (int)(K / BK);
constexpr int GROUP_N = (int)kp::group_n;
constexpr int RG = BM / 64; /* 64-row groups */
/* 256-row tiles run as two waves of 128 rows: each of two math warpgroups takes row group
 * w and then w + 2 of every K block through one wgmma accumulator set, promoting each into
 * its own FP32 set (two). Half the B traffic per FLOP of 128-row tiles, in the registers
 * of two warpgroups. */
constexpr int WAVES = BM == 256 ? 2 : 1;
constexpr int WG_RG = RG / WAVES; /* math warpgroups per K phase: one row group each wave */
constexpr int KSPLIT = (int)kp::k_split;
/* multicast 0 (unset) is read as 1: no cluster. */
constexpr int MC = kp::multicast < 2 ? 1 : (int)kp::multicast;
/* cluster_k 0 (unset) or 1: the CTA does every K block of its tile. */
constexpr int CK = kp::cluster_k < 2 ? 1 : (int)kp::cluster_k;
/* multicast_a 0 (unset) or 1: each CTA loads its own A tile. 2 or 4: a cluster of that many
 * CTAs takes adjacent n blocks of one m block, and each loads 1/MCA of the shared A tile
 * for all of them. At decode A is re-read from L2 by every n block; halving or quartering
 * those reads gained nothing (stop 10), so only kiln-bench-gemm-fp8 --sweep uses it. */
constexpr int MCA = kp::multicast_a < 2 ? 1 : (int)kp::multicast_a;
constexpr int CLUSTER = MC * CK * MCA;
/* 0: one problem. 1: masked groups: A [G][M_max][K], B [G][N][K], D [G][M_max][N], the
 * rows of group g read on the device from group_rows[g] (clamped to [0, M_max]).
 * 2: contiguous groups: A [M_total][K] and D [M_total][N] hold the groups one after
 * another, group g's rows starting at the next multiple of M_ALIGN; group_rows holds the
 * inclusive prefix sums of the rows per group. 3: contiguous groups given by an expert id
 * per row (group_rows [M_total], -1 = padding); a tile is computed once for each expert
 * with rows in it and stores only that expert's rows (gemm_sched.cuh). */
constexpr int GROUPING = (int)kp::grouping;
constexpr int M_ALIGN = (int)kp::m_align;
/* 1: each math warpgroup issues K block kb+1's wgmma before it promotes K block kb (two
 * accumulator sets, wgmma.wait_group 1), so the tensor cores do not idle while the CUDA
 * cores promote. Costs BN/2 registers per thread; only without k_split. */
constexpr bool OVERLAP = kp::overlap != 0 && (KB + CK - 1) / CK != 2; /* see kloop_overlapped */
/* Copies of the K loop's body the compiler may make (1: none). More copies let it schedule
 * one K block's address and descriptor work ahead of the previous block's waits. The
 * overlapped loop unrolls fully for any value above 1 (dense tiles only: kloop_overlapped). */
constexpr int UNROLL = kp::unroll < 1 ? 1 : (int)kp::unroll;
/* 1: D (f32) = C + A.B^T with 1x128 scales on both sides: sfb is F32 [K/128][align(N,4)]
 * MN-major, one scale per column per K block (weight-gradient use). The output goes
 * straight from registers to global memory (C read there too), not through TMA. */
constexpr bool OUT_F32 = kp::out_f32 != 0;
/* 1: trace mode (kiln-bench-gemm-fp8 --trace): each CTA records the SM clock at a few points
 * of its run into the buffer that `c` then points to; compiled out otherwise. */
constexpr bool TRACE = kp::trace != 0;
/* 1: loads only (kiln-bench-gemm-fp8 --loads-only): the math warpgroups wait for each K
 * block and release its slot at once, with no wgmma, reduction or store, so the kernel's
 * time is what moving its operands takes; D is not written. */
constexpr bool LOADS_ONLY = kp::loads_only != 0;
/* 1: math only (kiln-bench-gemm-fp8 --math-only): the TMA warp hands each slot over as it
 * is, with no loads (the scales still arrive), so the kernel's time is the math, its
 * synchronisation and the epilogue without the operands' movement; D is garbage. */
constexpr bool MATH_ONLY = kp::math_only != 0;
static_assert(!(LOADS_ONLY && MATH_ONLY), "loads only and math only exclude each other");
/* 1: the row groups' warpgroups issue their K blocks' wgmma in turn (0, 1, .., 0, 1, ..;
 * plain K loop, 128-, 192- and 256-row tiles). Waiting on the same full barrier, they
 * otherwise issue together, their wgmma finish together and they promote together while
 * the tensor cores idle; in turn, one promotes while the next one's wgmma run. */
constexpr bool TURNS = kp::turns != 0 && WG_RG > 1 && KSPLIT == 1 && !OVERLAP && !LOADS_ONLY;
constexpr int MATH_WG = WG_RG * KSPLIT;
/* Dense 256-row tiles store a tile's sums while the next tile's first K block runs: their
 * two warpgroups issue together (no turns) and finish together, so otherwise the tensor
 * cores idle while both stage their two waves one after the other. The sums wait as BF16
 * pairs (block_n / 4 registers per wave, of the 240 a 256-row tile's math threads have).
 * Stop 23's trace, cycles of the busiest CTA: 4096x32768x512 237k -> 218k, 4096x24576x1536
 * 405k -> 382k, 4096x7168x2048 154k -> 147k. 192-row tiles lost 3-4% with it (their K
 * loop 3-9% slower at 160 registers per thread), so they store as before. Contiguous groups
 * (prefix sums) too, where a tile whose wave a group's end cuts is stored at once (stop 29,
 * profiler, 256-row tiles forced, two calls: 4 x 8192 rows (4096, 7168) 1456.1 -> 1437.3 us,
 * 8 x 4096 1466.3 -> 1443.7; (7168, 2048) 742.2 / 742.4 -> 742.4 / 741.9). */
constexpr bool DEFER = (GROUPING == 0 || GROUPING == 2) && BM == 256 && KSPLIT == 1 &&
                       CK == 1 && !OVERLAP && !TURNS && !OUT_F32 && !LOADS_ONLY;
/* The plain K loop's first K block runs on its own (peeled) and sets the sums from the
 * accumulator (FMUL) instead of adding to zeroed ones. Dense 192-row tiles: 31 CS2R per
 * tile fewer between two tiles' K loops, where the tensor cores wait (with FAST_TILE_DIV,
 * stop 25, profiler: 4096x32768x512 134.4 -> 131.2 us, 4096x24576x1536 240.5 -> 235.0).
 * DEFER needs the peel anyway. With turns the peeled block takes its turn like the others
 * (stop 27, profiler: 4096x2112x7168 100.2 -> 99.2 us; at short K, where 192-row tiles now
 * issue in turn too, 4096x32768x512 128.2 / 127.7 -> 127.2 / 127.0 against turns without the
 * peel), and the contiguous prefix-sum kernel gains from it too now that it issues in turn
 * (stop 27, two rounds: (7168, 2048) 4 x 8192 rows 726.8 -> 721.0 us, 8 x 4096 748.9 ->
 * 741.8; (4096, 7168) 0.2%; stop 25, in lockstep, it lost up to 1%). The row-id kernels'
 * tall tiles take it with FAST_TILE_DIV (stop 31, profiler, two rounds, 256 rows: 4 x 8192
 * rows (4096, 7168) 1452.4 / 1452.2 -> 1449.2 / 1449.3 us, 8 x 4096 1460.5 / 1459.7 -> 1455.9 /
 * 1456.5, (7168, 2048) 807.8 / 807.8 -> 803.5 / 801.8, 809.6 / 810.0 -> 806.6 / 806.3). */
constexpr bool PEEL_FIRST = DEFER || ((GROUPING == 0 || GROUPING == 2) && RG == 3 &&
                                      KSPLIT == 1 && CK == 1 && !OVERLAP && !OUT_F32 &&
                                      !LOADS_ONLY) ||
                             (GROUPING == 3 && BM >= 192 && !LOADS_ONLY);
/* tail 1: the last round of tiles split two or three ways along K, when it would leave half
 * of the CTAs idle or more (gemm_fp8_tail.cuh; the host asks for it where that pays and a workspace
 * is given). A kernel of its own: in the same kernel the pieces' code made whole tiles
 * 2-7% slower at short K, split or not (stop 33). */
constexpr bool TAIL_SPLIT = kp::tail != 0;
constexpr int THREADS = (MATH_WG + 1) * 128;
/* The producer warpgroup's registers after setmaxnreg: 40, or the minimum 24 for tall tiles
 * (192 rows: three math warpgroups; 256 rows: two waves), whose accumulators need every
 * register left. Row ids (grouping 3) take 32: at 24 their producers spilled 16-60 bytes,
 * all in their per-tile path (none in the K loops). For 192-row tiles that is free, as
 * 128 x 32 + 384 x 160 = 65536 leaves the math its 160 registers; for 256-row tiles it
 * takes the math from 240 to 232, which paid at K = 7168 only. Stop 37, profiler, two rounds (us): 192 rows
 * (forced) 4 x 8192 rows (4096, 7168) 1597.8 / 1602.1 -> 1547.4 / 1547.8, 8 x 4096 1706.5 /
 * 1702.7 -> 1646.8 / 1643.9, (7168, 2048) 827.7 / 827.4 -> 817.1 / 817.4, 857.4 / 858.2 ->
 * 842.3 / 842.1; 256 rows (4096, 7168) 1465.7 / 1465.7 -> 1457.0 / 1456.3, 1477.3 / 1477.8
 * -> 1468.8 / 1468.7, but (7168, 2048) 784.2 / 785.1 -> 787.2 / 786.8, 790.0 / 788.2 ->
 * 791.8 / 790.8. */
constexpr int PRODUCER_REGS =
    GROUPING == 3 && (RG == 3 || (WAVES > 1 && KB >= 32)) ? 32 : RG == 3 || WAVES > 1 ? 24 : 40;
/* Registers per math thread after setmaxnreg. setmaxnreg.inc blocks until the CTA's pool
 * has the registers, and the pool is only what the launch allocated (THREADS x the entry
 * count, capped by __launch_bounds__ at 65536 / THREADS), so the math warpgroups can only
 * take what the producer gives back. */
constexpr int ENTRY_REGS_RAW = (65536 / THREADS) / 8 * 8;
constexpr int ENTRY_REGS = ENTRY_REGS_RAW > 248 ? 248 : ENTRY_REGS_RAW;
constexpr int MATH_REGS_RAW = ((ENTRY_REGS * THREADS - 128 * PRODUCER_REGS) / (128 * MATH_WG)) / 8 * 8;
constexpr int MATH_REGS = MATH_REGS_RAW > 240 ? 240 : MATH_REGS_RAW;
constexpr int NUM_NB = (int)((N + BN - 1) / BN);
constexpr int SFB_ROWS = (int)((N + 127) / 128);
/* Most K blocks one CTA walks per tile (cluster_k splits KB into contiguous ranges). */
constexpr int KB_CTA = (KB + CK - 1) / CK;

static_assert(MC == 1 || MC == 2, "multicast must be 1 (none) or 2 (2-CTA cluster)");
static_assert(MC == 1 || BN % 16 == 0, "multicast halves of B must be whole 8-row swizzle atoms");
static_assert(CK >= 1 && CK <= 8 && CK <= KB, "cluster_k must be 0..8 and <= K/128");
static_assert(MC == 1 || CK == 1, "multicast and cluster_k cannot be combined");
static_assert(CK == 1 || GROUPING <= 1, "cluster_k is for dense and masked decode tiles");
static_assert(MCA == 1 || MCA == 2 || MCA == 4, "multicast_a must be 1 (none), 2 or 4");
static_assert(MCA == 1 || (MC == 1 && CK == 1 && GROUPING == 0 && !kp::out_f32),
              "multicast_a is for the dense BF16-output GEMM without multicast or cluster_k");
static_assert(GROUPING >= 0 && GROUPING <= 3,
              "grouping must be 0 (dense), 1 (masked), 2 or 3 (contiguous: prefix sums, row ids)");
/* A 192- or 256-row tile may run past its group's end into the next group's rows: it loads
 * them but stores only its own group's rows (the epilogue's rows_left, per 64-row group). */
static_assert(GROUPING != 2 || (M_ALIGN > 0 && (M_ALIGN % BM == 0 || BM >= 192)),
              "contiguous groups start at multiples of m_align, a multiple of block_m");
static_assert(GROUPING == 0 || MC == 1, "grouped GEMMs do not multicast");
static_assert(!OVERLAP || KSPLIT == 1, "overlap needs k_split 1");
static_assert(!OUT_F32 || (GROUPING == 0 && MC == 1 && CK == 1 && KSPLIT == 1),
              "the FP32 output mode is dense, without multicast, cluster_k or k_split");
static_assert(BM == 64 || BM == 128 || BM == 192 || BM == 256,
              "block_m must be 64, 128, 192 or 256");
static_assert(BM != 256 || (KSPLIT == 1 && CK == 1 && MC == 1 && !OVERLAP && !OUT_F32),
              "256-row tiles are BF16-output prefill tiles: no k_split, cluster_k, B multicast "
              "or overlap");
static_assert(!TRACE || !OUT_F32, "trace mode uses c, which the FP32 mode reads");
static_assert(BM != 192 || (GROUPING != 1 && KSPLIT == 1 && CK == 1 && MC == 1 && MCA == 1 &&
                            !OVERLAP),
              "192-row tiles are dense or contiguous-group prefill tiles: no k_split, "
              "cluster_k, multicast or overlap");
static_assert(BN % 8 == 0 && BN >= 8 && BN <= 256, "block_n must be a multiple of 8 in 8..256");
static_assert(!TAIL_SPLIT || (GROUPING == 0 && BM == 192 && CK == 1 && MC == 1 && MCA == 1 &&
                              !OUT_F32 && !LOADS_ONLY && !MATH_ONLY),
              "tail is for dense 192-row BF16-output tiles without a cluster");
static_assert(K % BK == 0 && K > 0, "K must be a multiple of 128");
static_assert(N % 8 == 0 && N > 0, "N must be a multiple of 8");
static_assert(STAGES >= 2 && STAGES <= 32, "stages out of range");
static_assert(KSPLIT == 1 || KSPLIT == 2 || KSPLIT == 4, "k_split must be 1, 2 or 4");
static_assert(STAGES % KSPLIT == 0, "stages must divide by k_split");
static_assert(KSPLIT == 1 || (KB % CK == 0 && (KB / CK) % KSPLIT == 0),
              "with k_split > 1, K/128 must divide by cluster_k * k_split");

/* B scales: a tile's columns [n0, n0+BN) touch NSB scale blocks of 128 columns. When the
 * tile is aligned to them (BN divides 128 or 128 divides BN) the block of each column is a
 * compile-time fact; otherwise it depends on n0 % 128 (promote_at, promote). */
constexpr bool SB_ALIGNED = (BN % 128 == 0) || (128 % BN == 0);
constexpr int NSB = SB_ALIGNED ? (BN + 127) / 128 : BN / 128 + 2;
constexpr int gcd_int(int a, int b) { return b == 0 ? a : gcd_int(b, a % b); }
/* Unaligned tiles start at n0 % 128 = a multiple of SB_STEP. With few such offsets (160 and
 * 192 columns: 4 and 2), or any number in the plain K loop, the promotion is compiled once per
 * offset, so that each column group's scale block is a compile-time fact there too (a
 * run-time selection per column group tripled a 160-column promotion's instructions: 200
 * against 86); ptxas merges the copies into one FFMA body. In the overlapped loop it does
 * not (64 x 72: 584 FFMA against 72), so there many offsets take promote's run-time choice. */
constexpr int SB_STEP = gcd_int(BN, 128);
constexpr int SB_PHASES = SB_ALIGNED ? 1 : 128 / SB_STEP;
constexpr bool SB_PER_PHASE = !SB_ALIGNED && (SB_PHASES <= 4 || !OVERLAP);

/* Epilogue staging: the tile is split into column slabs of D_SLAB bf16, each slab of one
 * math warpgroup (64 rows) stored by one TMA store. */
constexpr int D_SLAB = BN % 64 == 0 ? 64 : BN % 32 == 0 ? 32 : BN % 16 == 0 ? 16 : BN;
constexpr int D_SLAB_BYTES = D_SLAB * 2;
constexpr int D_NSLAB = BN / D_SLAB;
constexpr int D_SWZ_BITS = D_SLAB_BYTES == 128 ? 3 : D_SLAB_BYTES == 64 ? 2 : D_SLAB_BYTES == 32 ? 1 : 0;
constexpr int D_WG_BYTES = 64 * BN * 2;
constexpr int RED_WG_BYTES = 64 * BN * 4; /* FP32 partial sums of one 64-row warpgroup */

/* Shared-memory layout, offsets from a 1024-aligned base. */
constexpr int A_STAGE_BYTES = BM * BK;
constexpr int B_STAGE_BYTES = BN * BK;
constexpr int SFA_STAGE_BYTES = BM * 4;
constexpr int OFF_D = 0;
/* cluster_k stores its tiles from registers (cluster_reduce_scatter): no staging. */
constexpr int OFF_RED = OFF_D + (OUT_F32 || CK > 1 ? 0 : ((WG_RG * D_WG_BYTES + 1023) / 1024) * 1024);
constexpr int OFF_CRED = OFF_RED + (((KSPLIT - 1) * RG * RED_WG_BYTES + 1023) / 1024) * 1024;
/* cluster_k: per row group, the CK - 1 chunks the partners send this rank (the
 * reduce-scatter of common/cluster_reduce.cuh). */
constexpr int CK_CHUNK = reduce_scatter_chunk(BN, CK);
constexpr int OFF_A = OFF_CRED + ((CK > 1 ? (CK - 1) * RG * CK_CHUNK : 0) + 1023) / 1024 * 1024;
constexpr int OFF_B = OFF_A + STAGES * A_STAGE_BYTES;
constexpr int OFF_SFA = OFF_B + STAGES * B_STAGE_BYTES;
constexpr int OFF_SFB = OFF_SFA + STAGES * SFA_STAGE_BYTES;
/* B scales per slot: NSB block scales, or (FP32 mode) one per tile column. */
constexpr int SFB_SLOT = OUT_F32 ? BN : NSB;
constexpr long long SFB_LD = (N + 3) / 4 * 4; /* FP32 mode: row stride of sfb */
constexpr int OFF_BAR = OFF_SFB + ((STAGES * SFB_SLOT * 4 + 15) / 16) * 16;
/* mbarriers: full[STAGES], empty[STAGES], then (cluster_k > 1) ready[RG] (the partners'
 * sums of this rank's groups have arrived) and free[RG] (every partner has read what this
 * rank sent it: the next tile's may go). */
constexpr int OFF_CBAR = OFF_BAR + STAGES * 2 * 8;
/* Named barriers: 1..MATH_WG per-warpgroup epilogue, then per row group "partials ready"
 * and "partials consumed". */
constexpr int BAR_READY = 1 + MATH_WG;
constexpr int BAR_FREE = BAR_READY + RG;
/* turns: BAR_TURN + rg completes when row group rg may issue its next K block. */
constexpr int BAR_TURN = BAR_FREE + RG;
static_assert(BAR_TURN + RG <= 16, "out of named barriers");
constexpr int SMEM_USED = OFF_CBAR + (CK > 1 ? 2 * RG * 8 : 0);
constexpr int SMEM_BYTES = SMEM_USED + 1024; /* slack to align the dynamic base */
static_assert(SMEM_BYTES <= 232448, "shared memory over the 227 KiB limit: fewer stages");
static_assert(B_STAGE_BYTES % 1024 == 0, "B stage must stay 1024-aligned (block_n % 8)");

constexpr u32 STAGE_TX = A_STAGE_BYTES + B_STAGE_BYTES + SFA_STAGE_BYTES;

/* Rows of A's TMA box (the host's kiln__gemm_fp8_a_box_rows): a dense problem shorter
 * than one tile loads its rows rounded up to 8, not a box mostly filled with zeros. */
__device__ __forceinline__ u32 stage_tx(int m)
{
    if constexpr (GROUPING == 0 && MCA == 1)
        if (m < BM)
            return STAGE_TX - A_STAGE_BYTES + short_box_rows(m) * BK;
    return STAGE_TX;
}

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
 * split). */
extern "C" __global__ void __launch_bounds__(kiln_fp8::THREADS, 1)
KILN_GEMM_FP8_ENTRY(const __grid_constant__ kiln::tmap tm_a, const __grid_constant__ kiln::tmap tm_b,
                    const __grid_constant__ kiln::tmap tm_sfa, const __grid_constant__ kiln::tmap tm_d,
                    const float *__restrict__ sfb, const float *c, int m,
                    const int *__restrict__ group_rows, int num_groups,
                    unsigned short *__restrict__ d_ptr, long long ld_d,
                    unsigned *__restrict__ tail_ws)
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
        fence_barrier_init();
        tma_prefetch_desc(&tm_a);
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
    grid_dependency_wait();
    if (threadIdx.x == 0)
        trace_mark(c, TR_READY);

    const sched sc = make_sched(m, group_rows, num_groups, tail_ws);

    if (warp >= MATH_WG * 4) {
        setmaxnreg_dec<PRODUCER_REGS>();
        if (warp == MATH_WG * 4)
            producer_tma(&tm_a, &tm_b, &tm_sfa, sfb, sc, base, lane, c);
        else if (OUT_F32 && warp == MATH_WG * 4 + 1)
            producer_col_scales(sfb, sc, base, lane);
        else if (SCALE_WARP && warp == MATH_WG * 4 + 1)
            producer_scales(sfb, sc, base, lane);
    } else {
        setmaxnreg_inc<MATH_REGS>();
        math(&tm_d, sc, base, c, d_ptr, ld_d, tail_ws);
    }
    grid_launch_dependents();
    /* No CTA of a cluster may exit while a partner can still write its shared memory or
     * arrive on its barriers. */
    if constexpr (CLUSTER > 1)
        cluster_sync();
}
