/* BF16 GEMM, sm_90a.
 *
 * Computes D[M,N] = A[M,K] . B[K,N] with BF16 operands and FP32 accumulation, held in the
 * wgmma accumulator over all of K (no promotion step: the registers it would take go to
 * wider tiles), and BF16 or FP32 output.
 *
 * Operands (row-major, element offsets; `layout` bit 0 = A M-major, bit 1 = B N-major):
 *   A    bf16 [M][K] K-major (layout bit 0 clear) or [K][M] M-major (set)
 *   B    bf16 [N][K] K-major (bit 1 clear: D = A . B^T as stored, "NT") or [K][N] N-major
 *   D    bf16 or f32 (out_f32) [M][N]
 * K % 8 == 0 (16-byte rows; the last K block is zero-filled by TMA), N % 8 == 0, M >= 1 a
 * run-time argument (M-major A: its row pitch a multiple of 8 elements).
 *
 * Compile-time parameters (namespace kp, defined by the including translation unit):
 *   n, k        problem N and K
 *   block_m     rows per tile: 64 (one math warpgroup) or 128 (two)
 *   block_n     columns per tile: multiple of 8 up to 256 (a multiple of 64 when B is
 *               N-major); the accumulator takes block_n / 2 registers per thread
 *   stages      depth of the shared-memory ring (one 64-deep K block per slot)
 *   group_n     tile-order swizzle: tiles walk M inside groups of group_n column blocks
 *   cluster_k   0 or 1: each CTA does all K blocks of its tile. C in 2..8: a cluster of C
 *               CTAs shares one tile, rank r taking K blocks [r*KB/C, (r+1)*KB/C); the
 *               FP32 partial sums are reduce-scattered over DSMEM (rank r finishes and
 *               stores the 8-column groups i with i % C == r, from registers). For decode:
 *               wide tiles that still fill the SMs.
 *   layout      bit 0: A M-major; bit 1: B N-major (kiln_gemm_layout: 0 NT, 1 TT, 2 NN,
 *               3 TN)
 *   out_f32     0: D bf16. 1: D f32.
 *   grouping    0: one problem. 1: masked groups (MoE decode): A [G][M_max][K], B [G][N][K],
 *               D [G][M_max][N] through 3-D tensor maps (dims {K, M_max, G}, {K, N, G},
 *               {N, M_max, G}); group g has group_rows[g] valid rows (read on the device,
 *               clamped to [0, M_max]); rows past it are neither stored nor, beyond whole
 *               tiles, computed.
 *               2: contiguous groups (MoE prefill): A [M_total][K] and D [M_total][N] 2-D as
 *               the dense GEMM, B per group as in 1; group g's rows begin at the next
 *               multiple of m_align after group g-1's and group_rows holds the inclusive
 *               prefix sums of the rows per group (the DeepEP v2 layout). Padding rows are
 *               not stored; tiles of padding only are not computed. Grouped: layout 0 only.
 *               3: contiguous groups given by an expert id per row (group_rows [M_total],
 *               -1 for padding): the tiles of M_total rows, each computed once for every
 *               expert with rows in it (gemm_sched.cuh), storing only that expert's rows.
 *   m_align     grouping 2: the row alignment of each group's start, a multiple of block_m
 *   no_b_early  1: a dense kernel without the early-B path (launches without b_ready)
 *   defer_store 1: each tile is stored during the next tile's first K block (dense BF16
 *               output without cluster_k; the host sets it for prefill tiles)
 *
 * Launch: CLUSTER = max(cluster_k, 1); #units = ceil(M/block_m) * ceil(N/block_n); grid =
 * CLUSTER * min(#units, co-resident clusters) (persistent; without a cluster min(#units,
 * #SMs)); block = THREADS = (block_m/64 + 1) * 128; dynamic shared memory = SMEM_BYTES
 * (kiln_gemm_bf16_smem_bytes; the host mirrors the formula), PDL allowed.
 * Tensor maps (cuTensorMapEncodeTiled, dims innermost first, all 128B swizzle but D's):
 *   tm_a   bf16 K-major dims {K, M} box {64, block_m}; M-major dims {M, K} box {64, 64}
 *   tm_a_last    dense K-major and masked: the same over the last m block, box {64, its
 *                rows rounded up to 8} where M (masked: M_max) ends inside it
 *   tm_b   bf16 K-major dims {K, N} box {64, block_n}; N-major dims {N, K} box {64, 64}
 *   tm_d   bf16/f32 dims {N, M} box {D_SLAB, 64}, swizzle by the slab's width in bytes
 *          (D_SLAB = the widest of 128, 64, 32 bytes of columns dividing block_n, else
 *           block_n; 128B/64B/32B swizzle, none otherwise)
 *
 * Warp roles: warpgroups 0 .. RG-1 are math (warpgroup w owns rows 64w of the tile and
 * issues m64n{block_n}k16 wgmma, or block_n/64 m64n64k16 when B is N-major), the last
 * warpgroup is the producer (its first warp streams tiles with TMA; registers lowered to
 * 40 with setmaxnreg, math raised to what is left).
 *
 * Pipeline: a ring of `stages` slots of one 64-deep K block of A and B; a full barrier per
 * slot (TMA arrive + bytes) and an empty barrier per slot (one arrive per math warp). The
 * math warpgroups keep one K block of wgmma in flight (wait_group 1) and release a slot
 * when the wgmma that read it have completed. The epilogue packs the accumulator into
 * swizzled shared memory, one column slab at a time through two staging buffers, and
 * stores each slab with TMA, overlapping the next tile's loads and the next slab's packing;
 * with defer_store it runs after the next tile's first K block is issued.
 * PDL: griddepcontrol.wait after barrier init and descriptor prefetch (dense kernels with
 * B ready: after the first tile's first B loads); launch_dependents after the main loop.
 */
#include "common/sm90.cuh"
#include "common/wgmma_bf16.cuh"

namespace kiln_bf16 {

using namespace kiln;

constexpr int BM = (int)kp::block_m;
constexpr int BN = (int)kp::block_n;
constexpr int BK = 64; /* bf16 elements: one 128-byte swizzle row */
constexpr int STAGES = (int)kp::stages;
constexpr long long N = kp::n;
constexpr long long K = kp::k;
constexpr int KB = (int)((K + BK - 1) / BK);
constexpr int GROUP_N = (int)kp::group_n;
constexpr int RG = BM / 64; /* 64-row groups = math warpgroups */
constexpr int MC = 1;       /* no multicast (gemm_sched.cuh supports it; unused here) */
constexpr int CK = kp::cluster_k < 2 ? 1 : (int)kp::cluster_k;
constexpr int MCA = 1;      /* no A multicast either */
constexpr int CLUSTER = CK;
constexpr int GROUPING = (int)kp::grouping;
constexpr int M_ALIGN = kp::m_align > 0 ? (int)kp::m_align : 1; /* never a divisor of 0 */
constexpr bool A_MN = (kp::layout & 1) != 0;
constexpr bool B_MN = (kp::layout & 2) != 0;
constexpr bool OUT_F32 = kp::out_f32 != 0;
/* Kernels that may load B before the grid dependency wait when the launch says B is ready
 * (b_ready; load_b_early): dense ones. Grouped kernels find their tiles from counts that
 * the kernel before may write. no_b_early 1: a dense kernel without that path, which the
 * host launches when b_ready is 0. The path costs launches that do not take it: stop 49,
 * profiler (lone launches, caches flushed), b_ready 0, two rounds, with it -> without:
 * 64x7168x2048 10.90 -> 10.66 us, 128x4096x7168 20.08 -> 19.71, 128x2112x7168 14.08 -> 13.88,
 * none of 12 decode shapes slower. */
/* split_issue 1: the producer warpgroup's first warp issues the A tiles, its second the B
 * tiles, each arriving on the full barrier with its own bytes (kiln-bench-ingest: one issuing
 * thread holds an SM near 63 B/clk with 16 KB stages). No b_ready path with it. */
constexpr bool SPLIT = kp::split_issue != 0;
constexpr bool B_EARLY_OK = GROUPING == 0 && kp::no_b_early == 0 && !SPLIT;
constexpr int THREADS = (RG + 1) * 128;
/* Registers per math thread after setmaxnreg: the launch allocates THREADS x the entry
 * count (capped by __launch_bounds__ at 65536 / THREADS); setmaxnreg.inc can only take
 * what the producer (down to 40) gives back. */
constexpr int ENTRY_REGS_RAW = (65536 / THREADS) / 8 * 8;
constexpr int ENTRY_REGS = ENTRY_REGS_RAW > 248 ? 248 : ENTRY_REGS_RAW;
constexpr int MATH_REGS_RAW = ((ENTRY_REGS * THREADS - 128 * 40) / (128 * RG)) / 8 * 8;
constexpr int MATH_REGS = MATH_REGS_RAW > 240 ? 240 : MATH_REGS_RAW;
constexpr int NUM_NB = (int)((N + BN - 1) / BN);
/* defer_store 1 (the host's dense BF16-output prefill tiles): a tile is stored while the
 * next tile's first K block runs. Its sums wait as BF16 pairs (block_n / 4 registers beside
 * the accumulator's block_n / 2) and are staged and stored once that block's wgmma are
 * issued, so the tensor cores work through the epilogue instead of idling while both math
 * warpgroups store (the FP8 GEMM's 256-row tiles do the same: gemm_fp8_config.cuh). */
constexpr bool DEFER = kp::defer_store != 0 && GROUPING == 0 && CK == 1 && !OUT_F32;

static_assert(CK >= 1 && CK <= 8 && CK <= KB, "cluster_k must be 0..8 and <= ceil(K/64)");
static_assert(GROUPING >= 0 && GROUPING <= 3,
              "grouping must be 0 (dense), 1 (masked), 2 (prefix sums) or 3 (row ids)");
/* Row ids: has_next_unit would rescan the ids of the next unit for the cluster's handshake;
 * prefill tiles never take cluster_k, so the kernel does not offer it. */
static_assert(GROUPING != 3 || CK == 1, "per-row experts take no cluster_k");
static_assert(GROUPING != 2 || (kp::m_align > 0 && M_ALIGN % BM == 0),
              "contiguous groups start at multiples of m_align, a multiple of block_m");
static_assert(GROUPING == 0 || kp::layout == 0, "grouped GEMMs take K-major A and B only");
static_assert(kp::layout >= 0 && kp::layout <= 3, "layout must be 0..3");
static_assert(BM == 64 || BM == 128, "block_m must be 64 or 128");
static_assert(BN % 8 == 0 && BN >= 8 && BN <= 256, "block_n must be a multiple of 8 in 8..256");
static_assert(!B_MN || BN % 64 == 0, "an N-major B needs block_n a multiple of 64");
static_assert(K % 8 == 0 && K > 0, "K must be a positive multiple of 8");
static_assert(N % 8 == 0 && N > 0, "N must be a positive multiple of 8");
static_assert(STAGES >= 2 && STAGES <= 32, "stages out of range");
static_assert(MATH_REGS >= BN / 2 + 40, "accumulator does not fit the math registers");
static_assert(!DEFER || MATH_REGS >= BN / 2 + BN / 4 + 40,
              "accumulator and deferred sums do not fit the math registers");

/* Epilogue: the tile is split into column slabs of D_SLAB elements (at most 128 bytes),
 * each slab of one math warpgroup (64 rows) stored by one TMA store from one of two
 * staging buffers per warpgroup. */
constexpr int ES = OUT_F32 ? 4 : 2;
constexpr int D_SLAB = BN % (128 / ES) == 0 ? 128 / ES
                     : BN % (64 / ES) == 0  ? 64 / ES
                     : BN % (32 / ES) == 0  ? 32 / ES
                                            : BN;
constexpr int D_SLAB_BYTES = D_SLAB * ES;
constexpr int D_NSLAB = BN / D_SLAB;
constexpr int D_SWZ_BITS = D_SLAB_BYTES == 128 ? 3 : D_SLAB_BYTES == 64 ? 2 : D_SLAB_BYTES == 32 ? 1 : 0;
constexpr int D_BUF_BYTES = ((64 * D_SLAB_BYTES + 1023) / 1024) * 1024;
constexpr int RED_WG_BYTES = 64 * BN * 4; /* FP32 partial sums of one 64-row warpgroup */

/* Shared-memory layout, offsets from a 1024-aligned base. */
constexpr int A_STAGE_BYTES = BM * BK * 2;
constexpr int B_STAGE_BYTES = BN * BK * 2;
constexpr int OFF_D = 0;
constexpr int OFF_CRED = OFF_D + RG * 2 * D_BUF_BYTES;
/* cluster_k: per row group, the CK - 1 chunks the partners send this rank (the
 * reduce-scatter of common/cluster_reduce.cuh). */
constexpr int CK_CHUNK = reduce_scatter_chunk(BN, CK);
constexpr int OFF_A = OFF_CRED + ((CK > 1 ? (CK - 1) * RG * CK_CHUNK : 0) + 1023) / 1024 * 1024;
constexpr int OFF_B = OFF_A + STAGES * A_STAGE_BYTES;
/* mbarriers: full[STAGES], empty[STAGES], then (cluster_k > 1) ready[RG] (the partners'
 * sums of this rank's groups have arrived) and free[RG] (every partner has read what this
 * rank sent it). */
constexpr int OFF_BAR = OFF_B + STAGES * B_STAGE_BYTES;
constexpr int OFF_CBAR = OFF_BAR + STAGES * 2 * 8;
constexpr int SMEM_USED = OFF_CBAR + (CK > 1 ? 2 * RG * 8 : 0);
constexpr int SMEM_BYTES = SMEM_USED + 1024; /* slack to align the dynamic base */
static_assert(SMEM_BYTES <= 232448, "shared memory over the 227 KiB limit: fewer stages");
static_assert(B_STAGE_BYTES % 1024 == 0, "B stage must stay 1024-aligned (block_n % 8)");

constexpr u32 STAGE_TX = A_STAGE_BYTES + B_STAGE_BYTES;

constexpr bool TAIL_SPLIT = false; /* gemm_sched.cuh: the FP8 GEMM's split last round */
#include "common/gemm_sched.cuh"
#include "common/cluster_reduce.cuh"

/* The first row of tile tl's A tile. */
__device__ __forceinline__ int tile_a_row(const tile &tl)
{
    return GROUPING == 2 ? tl.row0 + tl.mb * BM : tl.mb * BM;
}

/* A dense tile with K-major A that M ends inside (the only m block, or the last), or a
 * masked one that M_max ends inside, loads its rows rounded up to 8 through tm_a_last, not a
 * box mostly zero-filled by the TMA (the host's A boxes, gemm_bf16.c and gemm_bf16_grouped.c;
 * as in the FP8 GEMM). */
__device__ __forceinline__ bool short_a_tile(int m, int a_row)
{
    return GROUPING <= 1 && !A_MN && m - a_row < BM;
}

/* Bytes that each K block's loads bring for tile tl. */
__device__ __forceinline__ u32 stage_tx(const sched &sc, const tile &tl)
{
    const int a_row = tile_a_row(tl);
    if (short_a_tile(sc.m, a_row))
        return B_STAGE_BYTES + short_box_rows(sc.m - a_row) * BK * 2;
    return STAGE_TX;
}

/* The start of a 64-wide box along M or N, moved back inside [0, extent) when it lies
 * wholly past the end (the last tile of an MN-major operand): a box that starts inside is
 * zero-filled past the end by TMA; a moved one loads rows or columns that are never
 * stored. */
__device__ __forceinline__ int in_range(int start, int extent)
{
    return start < extent ? start : (extent - 1) / 64 * 64;
}

/* The A tile of K block kb into a_dst, counted on `full`. An MN-major operand comes as
 * boxes of 64 (M or N) x 64 (K), one per 64-wide slice of the tile. */
__device__ __forceinline__ void load_a(const tmap *tm_a, const sched &sc, const tile &tl,
                                       u32 a_dst, u32 full, int kb, int a_row)
{
    if constexpr (GROUPING == 1) {
        tma_load_3d(a_dst, tm_a, full, kb * BK, a_row, tl.g);
    } else if constexpr (A_MN) {
#pragma unroll
        for (int j = 0; j < RG; ++j)
            tma_load_2d(a_dst + j * 8192, tm_a, full, in_range(a_row + 64 * j, sc.m), kb * BK);
    } else {
        tma_load_2d(a_dst, tm_a, full, kb * BK, a_row);
    }
}

/* The B tile of K block kb into b_dst, counted on `full`. */
__device__ __forceinline__ void load_b(const tmap *tm_b, const tile &tl, u32 b_dst, u32 full,
                                       int kb)
{
    const int b_col = tl.nb * BN;
    if constexpr (GROUPING != 0) {
        tma_load_3d(b_dst, tm_b, full, kb * BK, b_col, tl.g);
    } else if constexpr (B_MN) {
#pragma unroll
        for (int j = 0; j < BN / 64; ++j)
            tma_load_2d(b_dst + j * 8192, tm_b, full, in_range(b_col + 64 * j, (int)N), kb * BK);
    } else {
        tma_load_2d(b_dst, tm_b, full, kb * BK, b_col);
    }
}

#include "common/load_b_early.cuh"

/* Producer warp: A and B tiles of every K block of this CTA's tiles by TMA. With b_early
 * (dense kernels only), B of the first tile's first slots before the grid dependency wait;
 * the other kernels waited with all threads. With SPLIT two warps run it, role 1 loading the
 * A tiles and role 2 the B tiles (without SPLIT the role is 1 and the warp loads both). */
__device__ __forceinline__ void producer(const tmap *tm_a, const tmap *tm_a_last,
                                         const tmap *tm_b, const sched &sc, u32 base, u32 lane,
                                         int b_early, int role)
{
    int s = 0;
    u32 phase = 0;
    int early = 0; /* slots of the first tile whose B is loaded already */
    if constexpr (B_EARLY_OK) {
        if (b_early)
            early = load_b_early(sc, base, lane, b_early,
                                 [&](const tile &tl, int slot, u32 full, int kb) {
                                     load_b(tm_b, tl, base + OFF_B + slot * B_STAGE_BYTES, full,
                                            kb);
                                 });
        grid_dependency_wait();
    }
    for_each_tile(sc, [&](const tile &tl, const cursor &, int, auto) {
        const int a_row = tile_a_row(tl);
        const tmap *a_map = short_a_tile(sc.m, a_row) ? tm_a_last : tm_a;
#pragma unroll 1
        for (int kb = sc.kb_begin; kb < sc.kb_begin + sc.kb_count; ++kb) {
            mbar_wait(base + OFF_BAR + (STAGES + s) * 8, phase ^ 1);
            if (lane == 0) {
                const u32 full = base + OFF_BAR + s * 8;
                const u32 a_dst = base + OFF_A + s * A_STAGE_BYTES;
                if (SPLIT && role == 1) { /* A's warp */
                    mbar_arrive_expect_tx(full, stage_tx(sc, tl) - B_STAGE_BYTES);
                    load_a(a_map, sc, tl, a_dst, full, kb, a_row);
                } else if (SPLIT) { /* B's warp */
                    mbar_arrive_expect_tx(full, B_STAGE_BYTES);
                    load_b(tm_b, tl, base + OFF_B + s * B_STAGE_BYTES, full, kb);
                } else if (B_EARLY_OK && early > 0) {
                    mbar_arrive(full); /* its bytes were expected with B's loads */
                    load_a(a_map, sc, tl, a_dst, full, kb, a_row);
                } else {
                    mbar_arrive_expect_tx(full, stage_tx(sc, tl));
                    load_a(a_map, sc, tl, a_dst, full, kb, a_row);
                    load_b(tm_b, tl, base + OFF_B + s * B_STAGE_BYTES, full, kb);
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
}

/* The four k16 steps of one K block. A K-major step is 32 bytes along the swizzled row
 * (descriptor units of 16 bytes); an MN-major step is 16 rows of 128 bytes. */
__device__ __forceinline__ void mma_block(float *acc, u32 a_tile, u32 b_tile, bool first)
{
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
        const u32 scale_d = first && kk == 0 ? 0u : 1u;
        const u64 da = A_MN ? wgmma_desc_mn128b(a_tile + kk * 2048) : wgmma_desc_k128b(a_tile) + (u64)(kk * 2);
        if constexpr (B_MN) {
#pragma unroll
            for (int j = 0; j < BN / 64; ++j)
                wgmma_bf16<64, A_MN, 1>::run(acc + 32 * j, da,
                                             wgmma_desc_mn128b(b_tile + j * 8192 + kk * 2048), scale_d);
        } else {
            wgmma_bf16<BN, A_MN, 0>::run(acc, da, wgmma_desc_k128b(b_tile) + (u64)(kk * 2), scale_d);
        }
    }
}

/* FP32 output, rows of a group that ends inside this 64-row group (the first rows_left) or,
 * per-row experts, the rows of the tile's expert (bit r of kept): stored from registers row
 * by row (the bf16 forms are store_partial and store_expert_rows of gemm_sched.cuh). */
__device__ __forceinline__ void store_partial_f32(const float *acc, const sched &sc, const tile &tl,
                                                  u32 rg, u32 row_in_wg, u32 lane, int rows_left,
                                                  u64 kept, float *__restrict__ d_ptr,
                                                  long long ld_d)
{
    float *group = d_ptr + (GROUPING == 1 ? (long long)tl.g * sc.m : (long long)tl.row0) * ld_d;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int r = (int)row_in_wg + 8 * h;
        if (r >= rows_left || ((kept >> r) & 1) == 0)
            continue;
        float *row = group + (long long)(tl.mb * BM + (int)rg * 64 + r) * ld_d;
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) {
            const int col = tl.nb * BN + 8 * i + 2 * (int)(lane & 3);
            if (col < N)
                asm volatile("st.global.v2.f32 [%0], {%1, %2};" ::"l"(row + col),
                             "f"(acc[4 * i + 2 * h]), "f"(acc[4 * i + 2 * h + 1])
                             : "memory");
        }
    }
}

/* The staging offset of this thread's pair of columns 8 i + 2 (lane % 4) in row
 * row_in_wg + 8 h of a column slab (swizzled as D's tensor map). */
__device__ __forceinline__ u32 slab_offset(int i, int h, u32 row_in_wg, u32 lane)
{
    const int c = (8 * i) % D_SLAB + 2 * (int)(lane & 3);
    u32 off = (row_in_wg + 8 * h) * D_SLAB_BYTES + c * ES;
    if constexpr (D_SWZ_BITS > 0)
        off ^= ((off >> 7) & ((1u << D_SWZ_BITS) - 1)) << 4;
    return off;
}

/* One column slab of a warpgroup's 64 rows into swizzled staging memory. */
__device__ __forceinline__ void pack_slab(const float *acc, u32 buf, int sl, u32 row_in_wg, u32 lane)
{
#pragma unroll
    for (int i = 0; i < BN / 8; ++i) {
        if ((8 * i) / D_SLAB != sl)
            continue; /* compile-time after unrolling both loops (D_SLAB % 8 == 0) */
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const u32 off = slab_offset(i, h, row_in_wg, lane);
            if constexpr (OUT_F32)
                st_shared_v2f32(buf + off, acc[4 * i + 2 * h], acc[4 * i + 2 * h + 1]);
            else
                st_shared_u32(buf + off, pack_bf16x2(acc[4 * i + 2 * h], acc[4 * i + 2 * h + 1]));
        }
    }
}

/* The same slab from sums packed as BF16 pairs (DEFER: pk[2 i + h] holds acc[4 i + 2 h] and
 * acc[4 i + 2 h + 1]). */
__device__ __forceinline__ void packed_slab(const u32 *pk, u32 buf, int sl, u32 row_in_wg, u32 lane)
{
#pragma unroll
    for (int i = 0; i < BN / 8; ++i) {
        if ((8 * i) / D_SLAB != sl)
            continue;
#pragma unroll
        for (int h = 0; h < 2; ++h)
            st_shared_u32(buf + slab_offset(i, h, row_in_wg, lane), pk[2 * i + h]);
    }
}

/* A warpgroup's 64 rows of a tile, slab by slab through its two staging buffers, each slab
 * stored by TMA from thread 0; `stage` writes slab sl into a buffer. */
template <typename Stage>
__device__ __forceinline__ void store_slabs(const tmap *tm_d, int col, int row, int g, u32 dsm,
                                            u32 rg, u32 t, u32 &slabs_stored, Stage &&stage)
{
#pragma unroll
    for (int sl = 0; sl < D_NSLAB; ++sl) {
        const u32 buf = dsm + (slabs_stored & 1) * D_BUF_BYTES;
        /* The store issued two slabs ago read this buffer: it must be done with it. */
        if (t == 0)
            bulk_wait_read<1>();
        named_bar_sync(1 + rg, 128);
        stage(buf, sl);
        fence_proxy_async_smem();
        named_bar_sync(1 + rg, 128);
        if (t == 0) {
            if constexpr (GROUPING == 1)
                tma_store_3d(tm_d, buf, col + sl * D_SLAB, row, g);
            else
                tma_store_2d(tm_d, buf, col + sl * D_SLAB, row);
            bulk_commit();
        }
        ++slabs_stored;
    }
}

/* A tile whose store waits for the next tile's first K block (DEFER): its sums packed as
 * BF16 pairs and where this warpgroup's 64 rows of it go. */
struct deferred_tile {
    u32 pk[DEFER ? BN / 4 : 1];
    int col, row;
};

__device__ __forceinline__ void math(const tmap *tm_d, const sched &sc, u32 base, void *d_ptr,
                                     long long ld_d)
{
    /* row group = warpgroup, broadcast so that it is known uniform (see gemm_fp8.cuh) */
    const u32 rg = __shfl_sync(0xffffffffu, threadIdx.x / 128, 0);
    const u32 t = threadIdx.x % 128;
    const u32 warp = t / 32;
    const u32 lane = t % 32;
    const u32 row_in_wg = warp * 16 + lane / 4; /* and +8 */
    const u32 dsm = base + OFF_D + rg * 2 * D_BUF_BYTES;
    u32 tile_parity = 0; /* cluster_k handshake phase */
    bool first_tile = true;
    u32 slabs_stored = 0; /* picks the staging buffer; runs across tiles */

    float acc[BN / 2];
    int s = 0;
    u32 phase = 0;
    deferred_tile dt; /* DEFER: the previous tile, stored during this one's first K block */
    bool pending = false;

    for_each_tile(sc, [&](const tile &tl, const cursor &cur, int unit, auto) {
        /* One K block of wgmma stays in flight: the slot of block kl-1 is released once
         * wait_group 1 says its wgmma have completed. */
        int prev = 0;
#pragma unroll 1
        for (int kl = 0; kl < sc.kb_count; ++kl) {
            mbar_wait(base + OFF_BAR + s * 8, phase);
            wgmma_fence();
            mma_block(acc, base + OFF_A + s * A_STAGE_BYTES + rg * 64 * BK * 2,
                      base + OFF_B + s * B_STAGE_BYTES, kl == 0);
            wgmma_commit();
            if (kl > 0) {
                wgmma_wait<1>();
                __syncwarp();
                if (lane == 0)
                    mbar_arrive(base + OFF_BAR + (STAGES + prev) * 8);
            } else if (DEFER && pending) {
                /* The previous tile's store, while this tile's first K block runs. Here in
                 * the loop, not on a peeled first block: the peel measured 7% slower at
                 * 4096x24576x1536 (stop 50, profiler, 442.4 against 402.7 us; ptxas spread
                 * the tile's index arithmetic between the peel's wgmma). */
                store_slabs(tm_d, dt.col, dt.row, 0, dsm, rg, t, slabs_stored,
                            [&](u32 buf, int sl) { packed_slab(dt.pk, buf, sl, row_in_wg, lane); });
                pending = false;
            }
            prev = s;
            if (++s == STAGES) {
                s = 0;
                phase ^= 1;
            }
        }
        wgmma_wait<0>();
#pragma unroll
        for (int i = 0; i < BN / 2; ++i)
            reg_fence(acc[i]);
        __syncwarp();
        if (lane == 0)
            mbar_arrive(base + OFF_BAR + (STAGES + prev) * 8);

        const int rows_left = tl.rows - (tl.mb * BM + (int)rg * 64);
        if constexpr (CK > 1) {
            cluster_reduce_scatter(acc, sc, base, rg, t, tile_parity, first_tile,
                                   has_next_unit(sc, cur, unit));
            first_tile = false;
            if (rows_left > 0)
                store_owned(acc, sc, tl, rg, row_in_wg, lane, rows_left, d_ptr, ld_d);
            return;
        }
        if (rows_left <= 0)
            return;
        if constexpr (GROUPING == 3) {
            /* Every bit set: 64 rows of this tile's expert (none past M), stored whole. */
            const u64 kept = tile_rows_kept(tl, rg);
            if (kept != ~0ull) {
                if constexpr (OUT_F32)
                    store_partial_f32(acc, sc, tl, rg, row_in_wg, lane, 64, kept,
                                      (float *)d_ptr, ld_d);
                else
                    store_expert_rows(acc, tl, rg, row_in_wg, lane, kept, (u16 *)d_ptr, ld_d);
                return;
            }
        }
        if (GROUPING != 0 && rows_left < 64) {
            if constexpr (OUT_F32)
                store_partial_f32(acc, sc, tl, rg, row_in_wg, lane, rows_left, ~0ull,
                                  (float *)d_ptr, ld_d);
            else
                store_partial(acc, sc, tl, rg, row_in_wg, lane, rows_left, (u16 *)d_ptr, ld_d);
            return;
        }
        const int row = (GROUPING == 2 ? tl.row0 : 0) + tl.mb * BM + (int)rg * 64;
        if constexpr (DEFER) {
#pragma unroll
            for (int i = 0; i < BN / 8; ++i)
#pragma unroll
                for (int h = 0; h < 2; ++h)
                    dt.pk[2 * i + h] = pack_bf16x2(acc[4 * i + 2 * h], acc[4 * i + 2 * h + 1]);
            dt.col = tl.nb * BN;
            dt.row = row;
            pending = true;
            return;
        }
        store_slabs(tm_d, tl.nb * BN, row, tl.g, dsm, rg, t, slabs_stored,
                    [&](u32 buf, int sl) { pack_slab(acc, buf, sl, row_in_wg, lane); });
    });
    if (DEFER && pending) /* the last tile's store: no K block left to hide it behind */
        store_slabs(tm_d, dt.col, dt.row, 0, dsm, rg, t, slabs_stored,
                    [&](u32 buf, int sl) { packed_slab(dt.pk, buf, sl, row_in_wg, lane); });
    if (t == 0)
        bulk_wait<0>();
}

} // namespace kiln_bf16

constexpr int kiln_gemm_bf16_threads = kiln_bf16::THREADS;
constexpr int kiln_gemm_bf16_smem_bytes = kiln_bf16::SMEM_BYTES;
constexpr int kiln_gemm_bf16_cluster = kiln_bf16::CLUSTER;
/* The layout's size in the cubin (and its PTX), where a test holds the host's formula
 * (kiln__gemm_bf16_smem) to it without a GPU. */
extern "C" __device__ const int kiln_gemm_bf16_smem_layout = kiln_gemm_bf16_smem_bytes;

/* m: rows of A and D (grouped: M_max of every group, or M_total); group_rows: grouped, the
 * valid rows (masked) or prefix sums (contiguous) of the num_groups groups, device memory
 * (ignored when dense); d_ptr, ld_d: D again as a pointer with its row stride (elements),
 * for the row-by-row stores of partial tiles; b_ready: the ring slots of B a dense kernel
 * may load before griddepcontrol.wait (B ready before the launch: weights; 0: none). */
extern "C" __global__ void __launch_bounds__(kiln_bf16::THREADS, 1)
kiln_gemm_bf16(const __grid_constant__ kiln::tmap tm_a,
               const __grid_constant__ kiln::tmap tm_a_last,
               const __grid_constant__ kiln::tmap tm_b,
               const __grid_constant__ kiln::tmap tm_d, int m, const int *__restrict__ group_rows,
               int num_groups, void *__restrict__ d_ptr, long long ld_d, int b_ready)
{
    using namespace kiln_bf16;
    extern __shared__ unsigned char smem_raw[];
    const u32 base = (smem_addr(smem_raw) + 1023) & ~1023u;
    const u32 warp = threadIdx.x / 32;
    const u32 lane = threadIdx.x % 32;

    if (threadIdx.x == RG * 128) {
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(base + OFF_BAR + s * 8, SPLIT ? 2 : 1); /* each issuing warp's arrive */
            mbar_init(base + OFF_BAR + (STAGES + s) * 8, RG * 4);
        }
        if constexpr (CK > 1) {
            for (int r = 0; r < RG; ++r) {
                /* ready: one arrive (+ the partners' bytes); freed: one per partner */
                mbar_init(base + OFF_CBAR + r * 8, 1);
                mbar_init(base + OFF_CBAR + (RG + r) * 8, CK - 1);
            }
        }
        fence_barrier_init();
        tma_prefetch_desc(&tm_a);
        if constexpr (GROUPING <= 1 && !A_MN)
            tma_prefetch_desc(&tm_a_last);
        tma_prefetch_desc(&tm_b);
        tma_prefetch_desc(&tm_d);
    }
    /* With a cluster, the partners' barriers must be initialised before any remote arrive. */
    if constexpr (CLUSTER > 1)
        cluster_sync_after_init();
    else
        __syncthreads();
    /* The grid dependency wait (PDL): for all threads here, or (B_EARLY_OK) in each role,
     * so that with B ready the producer loads B before it. */
    if constexpr (!B_EARLY_OK)
        grid_dependency_wait();
    const sched sc = make_sched(m, group_rows, num_groups, nullptr); /* reads no memory */

    if (warp >= RG * 4) {
        setmaxnreg_dec<40>();
        const int b_early = B_EARLY_OK && b_ready > 0 ? b_ready : 0; /* slots, at most */
        if (warp == RG * 4)
            producer(&tm_a, &tm_a_last, &tm_b, sc, base, lane, b_early, 1);
        else if (SPLIT && warp == RG * 4 + 1)
            producer(&tm_a, &tm_a_last, &tm_b, sc, base, lane, 0, 2);
        else if (B_EARLY_OK && !b_early)
            grid_dependency_wait(); /* the idle warps as without b_ready */
    } else {
        if constexpr (B_EARLY_OK)
            grid_dependency_wait();
        setmaxnreg_inc<MATH_REGS>();
        math(&tm_d, sc, base, d_ptr, ld_d);
    }
    grid_launch_dependents();
    if constexpr (CLUSTER > 1)
        cluster_sync_before_exit();
}
