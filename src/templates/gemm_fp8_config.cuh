/* The FP8 GEMM's compile-time configuration: the tile, the warpgroups and their registers,
 * the modes kp:: selects (grouping, overlap, turns, the deferred store, the peel, the split
 * last round), the checks on their combinations, the B scales' blocks, the epilogue's
 * staging, the shared-memory layout and the bytes each stage's loads bring.
 *
 * Part of gemm_fp8.cuh, included INSIDE its namespace kiln_fp8 first, after
 * common/sm90.cuh; it includes nothing itself. */
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
/* Never 0, so that the group walk's prefix-sum branch (gemm_sched.cuh), compiled in every
 * kernel though only prefix-sum kernels run it, divides by no zero (NVRTC warned of it). */
constexpr int M_ALIGN = kp::m_align > 0 ? (int)kp::m_align : 1;
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
/* Kernels that may load B before the grid dependency wait when the launch says B is ready
 * (b_ready; load_b_early): dense BF16-output ones. Grouped kernels find their tiles from
 * counts that the kernel before may write; the others keep one wait for all threads.
 * no_b_early 1: a dense kernel without that path, which the host launches when b_ready is 0.
 * The path costs launches that do not take it: stop 47, profiler (lone launches, caches
 * flushed), b_ready 0, two rounds: 64x7168x2048 8.56 -> 8.08 us, 1x7168x2048 8.37 -> 8.10,
 * 128x7168x2048 9.13 -> 8.72, 128x24576x1536 15.36 -> 14.93, 64x4096x7168 12.35 -> 12.05. */
constexpr bool B_EARLY_OK = GROUPING == 0 && !OUT_F32 && !MATH_ONLY && kp::no_b_early == 0;
/* Masked kernels may load B early too (load_b_guess), but their tiles come from masked_m,
 * which the kernel before may write: the first tile's B is loaded for a guess (every group
 * holds the host's expected rows), counted on a barrier of its own (OFF_GBAR), and loaded
 * again when the guess was wrong. */
constexpr bool B_GUESS_OK = GROUPING == 1 && !OUT_F32 && !MATH_ONLY;
/* Kernels whose roles take the grid dependency wait each (B early) rather than all at once. */
constexpr bool B_EARLY_ANY = B_EARLY_OK || B_GUESS_OK;
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
 * takes the math from 240 to 232, which paid at K = 7168 only. Stop 37, profiler, two
 * rounds (us): 192 rows (forced) 4 x 8192 rows (4096, 7168) 1597.8 / 1602.1 -> 1547.4 /
 * 1547.8, 8 x 4096 1706.5 / 1702.7 -> 1646.8 / 1643.9, (7168, 2048) 827.7 / 827.4 -> 817.1 /
 * 817.4, 857.4 / 858.2 -> 842.3 / 842.1; 256 rows (4096, 7168) 1465.7 / 1465.7 -> 1457.0 /
 * 1456.3, 1477.3 / 1477.8 -> 1468.8 / 1468.7, but (7168, 2048) 784.2 / 785.1 -> 787.2 /
 * 786.8, 790.0 / 788.2 -> 791.8 / 790.8. */
constexpr int PRODUCER_REGS =
    GROUPING == 3 && (RG == 3 || (WAVES > 1 && KB >= 32)) ? 32 : RG == 3 || WAVES > 1 ? 24 : 40;
/* Registers per math thread after setmaxnreg. setmaxnreg.inc blocks until the CTA's pool
 * has the registers, and the pool is only what the launch allocated (THREADS x the entry
 * count, capped by __launch_bounds__ at 65536 / THREADS), so the math warpgroups can only
 * take what the producer gives back. */
constexpr int ENTRY_REGS_RAW = (65536 / THREADS) / 8 * 8;
constexpr int ENTRY_REGS = ENTRY_REGS_RAW > 248 ? 248 : ENTRY_REGS_RAW;
constexpr int MATH_REGS_RAW =
    ((ENTRY_REGS * THREADS - 128 * PRODUCER_REGS) / (128 * MATH_WG)) / 8 * 8;
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
static_assert(GROUPING != 2 || (kp::m_align > 0 && (M_ALIGN % BM == 0 || BM >= 192)),
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
 * 192 columns: 4 and 2), or up to 8 in the plain K loop, the promotion is compiled once per
 * offset, so that each column group's scale block is a compile-time fact there too (a
 * run-time selection per column group tripled a 160-column promotion's instructions: 200
 * against 86); ptxas merges the copies into one FFMA body. In the overlapped loop it does
 * not (64 x 72: 584 FFMA against 72), and in the plain loop not at 16 offsets (widths an odd
 * multiple of 8: its K loop moved every accumulator register between the copies, 128 x 168
 * 723 instructions per K block, 128 x 72 419; with the run-time choice 299 and 130, stop 59),
 * so those take promote's run-time choice. */
constexpr int SB_STEP = gcd_int(BN, 128);
constexpr int SB_PHASES = SB_ALIGNED ? 1 : 128 / SB_STEP;
constexpr bool SB_PER_PHASE = !SB_ALIGNED && (SB_PHASES <= 4 || (!OVERLAP && SB_PHASES <= 8));

/* Epilogue staging: the tile is split into column slabs of D_SLAB bf16, each slab of one
 * math warpgroup (64 rows) stored by one TMA store. */
constexpr int D_SLAB = BN % 64 == 0 ? 64 : BN % 32 == 0 ? 32 : BN % 16 == 0 ? 16 : BN;
constexpr int D_SLAB_BYTES = D_SLAB * 2;
constexpr int D_NSLAB = BN / D_SLAB;
constexpr int D_SWZ_BITS =
    D_SLAB_BYTES == 128 ? 3 : D_SLAB_BYTES == 64 ? 2 : D_SLAB_BYTES == 32 ? 1 : 0;
constexpr int D_WG_BYTES = 64 * BN * 2;
constexpr int RED_WG_BYTES = 64 * BN * 4; /* FP32 partial sums of one 64-row warpgroup */

/* Shared-memory layout, offsets from a 1024-aligned base. */
constexpr int A_STAGE_BYTES = BM * BK;
constexpr int B_STAGE_BYTES = BN * BK;
constexpr int SFA_STAGE_BYTES = BM * 4;
constexpr int OFF_D = 0;
/* cluster_k stores its tiles from registers (cluster_reduce_scatter): no staging. */
constexpr int OFF_RED =
    OFF_D + (OUT_F32 || CK > 1 ? 0 : ((WG_RG * D_WG_BYTES + 1023) / 1024) * 1024);
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
/* Masked kernels: the guessed B loads' barrier (B_GUESS_OK), 16 bytes as the host counts. */
constexpr int OFF_GBAR = OFF_CBAR + (CK > 1 ? 2 * RG * 8 : 0);
constexpr int SMEM_USED = OFF_GBAR + (GROUPING == 1 ? 16 : 0);
constexpr int SMEM_BYTES = SMEM_USED + 1024; /* slack to align the dynamic base */
static_assert(SMEM_BYTES <= 232448, "shared memory over the 227 KiB limit: fewer stages");
static_assert(B_STAGE_BYTES % 1024 == 0, "B stage must stay 1024-aligned (block_n % 8)");

constexpr u32 STAGE_TX = A_STAGE_BYTES + B_STAGE_BYTES + SFA_STAGE_BYTES;
