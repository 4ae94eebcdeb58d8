/* One K block of the FP8 GEMM's math warpgroups: the slot's scales, the wgmma, the
 * promotion of the accumulator into the FP32 sums (sa * sb per row and column block), the
 * slot's release, one wave of the plain K loop (plain_wave) and the overlapped K loop (two
 * accumulator sets, 128-row tiles).
 *
 * Part of gemm_fp8.cuh, included INSIDE its namespace kiln_fp8 after the tile and
 * shared-memory constants, gemm_sched.cuh and gemm_fp8_producer.cuh; it includes nothing
 * itself. */

__device__ __forceinline__ float2 ld_shared_v2f32(u32 addr)
{
    float2 v;
    asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];" : "=f"(v.x), "=f"(v.y) : "r"(addr) : "memory");
    return v;
}

/* The scales one K block needs from its ring slot: A's for this thread's two rows, B's for
 * the tile's NSB column blocks. */
struct kscales {
    float sa0, sa1;
    float sb[NSB];
    u32 sfb_slot; /* FP32 mode: the slot's column scales, read while promoting */
};

__device__ __forceinline__ kscales load_scales(u32 base, int s, u32 rg, u32 row_in_wg)
{
    kscales ks;
    const u32 sfa = base + OFF_SFA + s * SFA_STAGE_BYTES + (rg * 64 + row_in_wg) * 4;
    ks.sa0 = ld_shared_f32(sfa);
    ks.sa1 = ld_shared_f32(sfa + 32);
#pragma unroll
    for (int j = 0; j < NSB; ++j)
        ks.sb[j] = OUT_F32 ? 0.0f : ld_shared_f32(base + OFF_SFB + (s * NSB + j) * 4);
    ks.sfb_slot = base + OFF_SFB + s * SFB_SLOT * 4;
    return ks;
}

/* Orders the accumulator's registers before the wgmma that read and write them. */
__device__ __forceinline__ void wgmma_fence_acc(float (&acc)[BN / 2])
{
#pragma unroll
    for (int i = 0; i < BN / 2; ++i)
        reg_fence(acc[i]);
    wgmma_fence();
}

/* How issue_kblock builds a slot's wgmma descriptors: one 32-bit add on the base's
 * descriptor (offsets in its 16-byte units), or from each tile's shared address. Which pays
 * goes with the tile height more than the grouping (profiler, two rounds each):
 * - the add (stops 39-40): dense 192-row tiles 0.4-1.7% faster, decode tiles 0.7% on
 *   average, masked kernels (256 rows too) 0.2-0.8%, contiguous row-id 192-row tiles
 *   0.2-1.4% (stop 40); the prefix sums' 192-row tiles went both ways (stop 39: 0.4-0.65%
 *   slower; stop 40, another machine: 0.3-0.6% faster at K = 7168, 0.5% slower at 2048);
 * - the shared address: non-masked 256-row tiles, dense (0.2-0.45% faster on two of three
 *   shapes in both stops) and contiguous (row ids at K = 7168 1.0-1.1%, stop 39). */
constexpr bool DESC_ONE_ADD = BM != 256 || GROUPING == 1;

/* Issues (and commits) the 4 wgmma of the K block in slot s into acc; does not wait. */
__device__ __forceinline__ void issue_kblock(float (&acc)[BN / 2], u32 base, int s, u32 rg)
{
    if constexpr (DESC_ONE_ADD) {
        const u32 desc_lo = wgmma_desc_lo_k128b(base);
        const u32 a_units = OFF_A / 16 + s * (A_STAGE_BYTES / 16) + rg * (64 * BK / 16);
        const u32 b_units = OFF_B / 16 + s * (B_STAGE_BYTES / 16);
        wgmma_fence_acc(acc);
#pragma unroll
        for (int kk = 0; kk < BK / 32; ++kk)
            wgmma_fp8<BN>::run(acc, wgmma_desc_k128b_at(desc_lo, a_units + kk * 2),
                               wgmma_desc_k128b_at(desc_lo, b_units + kk * 2), kk);
    } else {
        const u64 da = wgmma_desc_k128b(base + OFF_A + s * A_STAGE_BYTES + rg * 64 * BK);
        const u64 db = wgmma_desc_k128b(base + OFF_B + s * B_STAGE_BYTES);
        wgmma_fence_acc(acc);
#pragma unroll
        for (int kk = 0; kk < BK / 32; ++kk)
            wgmma_fp8<BN>::run(acc, da + (u64)(kk * 32 >> 4), db + (u64)(kk * 32 >> 4), kk);
    }
    wgmma_commit();
}

/* The slot is no longer read (its wgmma done, scales in registers): release it, in every
 * CTA of a multicast cluster (the partners' producers write our slot too). */
__device__ __forceinline__ void release_slot(u32 base, int s, const sched &sc, u32 lane)
{
    __syncwarp();
    if (lane == 0) {
        const u32 empty = base + OFF_BAR + (STAGES + s) * 8;
        mbar_arrive(empty);
        if constexpr (MC == 2)
            mbar_arrive_remote(empty, (u32)sc.rank ^ 1u);
#pragma unroll
        for (int r = 1; r < MCA; ++r)
            mbar_arrive_remote(empty, (u32)((sc.rank + r) % MCA));
    }
}

/* out += a * s, or (FIRST: a tile's first K block) out = a * s: the sums then need no
 * zeroing before the K loop. */
template <bool FIRST> __device__ __forceinline__ void scale_into(float &out, float a, float s)
{
    if constexpr (FIRST)
        out = a * s;
    else
        out += a * s;
}

/* sa * sb for this thread's two rows (s0, s1) and each of the tile's scale blocks. */
__device__ __forceinline__ void block_products(const kscales &ks, float (&s0)[NSB], float (&s1)[NSB])
{
#pragma unroll
    for (int j = 0; j < NSB; ++j) {
        s0[j] = ks.sa0 * ks.sb[j];
        s1[j] = ks.sa1 * ks.sb[j];
    }
}

/* promote for a tile starting N_OFF columns into a 128-column scale block: column group i
 * (8 columns, never across a block boundary: N_OFF is a multiple of 8) takes block
 * (N_OFF + 8 i) / 128. The same products as promote's run-time selection, so the same sums. */
template <int N_OFF, bool FIRST>
__device__ __forceinline__ void promote_at(float (&out)[BN / 2], const float (&acc)[BN / 2],
                                           const kscales &ks)
{
    static_assert(N_OFF >= 0 && N_OFF < 128 && N_OFF % 8 == 0, "an offset inside one scale block");
    float s0[NSB], s1[NSB];
    block_products(ks, s0, s1);
#pragma unroll
    for (int i = 0; i < BN / 8; ++i) {
        const int blk = (N_OFF + 8 * i) / 128;
        scale_into<FIRST>(out[4 * i + 0], acc[4 * i + 0], s0[blk]);
        scale_into<FIRST>(out[4 * i + 1], acc[4 * i + 1], s0[blk]);
        scale_into<FIRST>(out[4 * i + 2], acc[4 * i + 2], s1[blk]);
        scale_into<FIRST>(out[4 * i + 3], acc[4 * i + 3], s1[blk]);
    }
}

/* Picks promote_at's copy for n_off (uniform across the warp: one branch per promotion). */
template <bool FIRST, int PHASE = 0>
__device__ __forceinline__ void promote_phase(float (&out)[BN / 2], const float (&acc)[BN / 2],
                                              const kscales &ks, int n_off)
{
    if constexpr (PHASE + 1 < SB_PHASES) {
        if (n_off != PHASE * SB_STEP) {
            promote_phase<FIRST, PHASE + 1>(out, acc, ks, n_off);
            return;
        }
    }
    promote_at<PHASE * SB_STEP, FIRST>(out, acc, ks);
}

/* out += acc * sa * sb (second level of the two-level accumulation); FIRST: out = ... */
template <bool FIRST = false>
__device__ __forceinline__ void promote(float (&out)[BN / 2], const float (&acc)[BN / 2],
                                        const kscales &ks, int n_off, u32 lane)
{
    if constexpr (OUT_F32) {
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) {
            const float2 sb = ld_shared_v2f32(ks.sfb_slot + (8 * i + 2 * (lane & 3)) * 4);
            scale_into<FIRST>(out[4 * i + 0], acc[4 * i + 0], (ks.sa0 * sb.x));
            scale_into<FIRST>(out[4 * i + 1], acc[4 * i + 1], (ks.sa0 * sb.y));
            scale_into<FIRST>(out[4 * i + 2], acc[4 * i + 2], (ks.sa1 * sb.x));
            scale_into<FIRST>(out[4 * i + 3], acc[4 * i + 3], (ks.sa1 * sb.y));
        }
        return;
    }
    if constexpr (SB_PER_PHASE) {
        promote_phase<FIRST>(out, acc, ks, n_off);
        return;
    }
    if constexpr (SB_ALIGNED) {
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) {
            const float sbc = ks.sb[(8 * i) / 128];
            const float s0 = ks.sa0 * sbc, s1 = ks.sa1 * sbc;
            scale_into<FIRST>(out[4 * i + 0], acc[4 * i + 0], s0);
            scale_into<FIRST>(out[4 * i + 1], acc[4 * i + 1], s0);
            scale_into<FIRST>(out[4 * i + 2], acc[4 * i + 2], s1);
            scale_into<FIRST>(out[4 * i + 3], acc[4 * i + 3], s1);
        }
        return;
    }
    /* Many possible offsets (widths such as 56, 72, 112): the products of each scale block
     * once per promotion, and per column group a choice between them by the group's place
     * against the tile's block boundaries (uniform across the warp: n_off is). Group i lies
     * in block 1 from c1 = (128 - n_off) / 8 on, in block 2 from c1 + 16 on. */
    float s0[NSB], s1[NSB];
    block_products(ks, s0, s1);
    const int c1 = (128 - n_off) / 8;
#pragma unroll
    for (int i = 0; i < BN / 8; ++i) {
        float x0 = s0[0], x1 = s1[0];
#pragma unroll
        for (int j = 1; j < NSB; ++j) {
            const bool later = i >= c1 + 16 * (j - 1);
            x0 = later ? s0[j] : x0;
            x1 = later ? s1[j] : x1;
        }
        scale_into<FIRST>(out[4 * i + 0], acc[4 * i + 0], x0);
        scale_into<FIRST>(out[4 * i + 1], acc[4 * i + 1], x0);
        scale_into<FIRST>(out[4 * i + 2], acc[4 * i + 2], x1);
        scale_into<FIRST>(out[4 * i + 3], acc[4 * i + 3], x1);
    }
}

/* A K block's wgmma has completed: promote it and give its slot back (in the FP32 mode the
 * column scales are read from the slot while promoting, so the slot is released after). */
template <bool FIRST = false>
__device__ __forceinline__ void retire(float (&out)[BN / 2], const float (&acc)[BN / 2],
                                       const kscales &ks, int slot, const sched &sc, u32 base,
                                       int n_off, u32 lane)
{
    if constexpr (OUT_F32) {
        promote<FIRST>(out, acc, ks, n_off, lane);
        release_slot(base, slot, sc, lane);
    } else {
        release_slot(base, slot, sc, lane);
        promote<FIRST>(out, acc, ks, n_off, lane);
    }
}

/* Wave v's promotion; the last wave is the slot's last reader and releases it (retire). */
template <bool FIRST = false>
__device__ __forceinline__ void promote_wave(int v, float (&out)[BN / 2],
                                             const float (&acc)[BN / 2], const kscales &ks,
                                             int slot, const sched &sc, u32 base, int n_off,
                                             u32 lane)
{
    if (v == WAVES - 1)
        retire<FIRST>(out, acc, ks, slot, sc, base, n_off, lane);
    else
        promote<FIRST>(out, acc, ks, n_off, lane);
}

__device__ __forceinline__ void ring_next(int &s, u32 &phase, int by)
{
    s += by;
    if (s >= STAGES) {
        s -= STAGES;
        phase ^= 1;
    }
}

template <int W> __device__ __forceinline__ void wait_acc(float (&acc)[BN / 2])
{
    wgmma_wait<W>();
#pragma unroll
    for (int i = 0; i < BN / 2; ++i)
        reg_fence(acc[i]);
}

/* Wave v of one K block in the plain loop (slot s): its scales, its wgmma (in the row groups'
 * turn with TURNS), then `meanwhile` while they run, then the promotion into out (FIRST: the
 * sums start from it). */
template <bool FIRST, typename Meanwhile>
__device__ __forceinline__ void plain_wave(int v, float (&out)[BN / 2], float (&acc)[BN / 2],
                                           int s, u32 rg, u32 row_in_wg, const sched &sc,
                                           u32 base, int n_off, u32 lane, Meanwhile &&meanwhile)
{
    const u32 rgv = rg + v * WG_RG;
    const kscales ks = load_scales(base, s, rgv, row_in_wg);
    if constexpr (TURNS)
        named_bar_sync(BAR_TURN + rg, 256);
    issue_kblock(acc, base, s, rgv);
    if constexpr (TURNS)
        named_bar_arrive(BAR_TURN + (rg + 1) % WG_RG, 256);
    meanwhile();
    wait_acc<0>(acc);
    promote_wave<FIRST>(v, out, acc, ks, s, sc, base, n_off, lane);
}

/* One step of the overlapped loop. With `more`: wait for slot s, issue its wgmma into
 * `next`, and wait until only that group is in flight (so `prev`'s has completed).
 * Without: the tile's last K block is in `prev` and nothing is issued behind it, so wait
 * for all. Either way `prev` is then retired (released, promoted) by one copy of that code,
 * unless no block was issued before this one (have_prev false: the tile's first step).
 * Issue and promote are inlined twice per kernel instead of three and four times (NVRTC
 * time, stop 8). */
__device__ __forceinline__ void kstep_overlapped(float (&out)[BN / 2], float (&next)[BN / 2],
                                                 float (&prev)[BN / 2], kscales &prev_scales,
                                                 const sched &sc, u32 base, int &s, u32 &phase,
                                                 int &s_prev, u32 rg, u32 row_in_wg, int n_off,
                                                 u32 lane, bool more, bool have_prev)
{
    kscales cur = prev_scales;
    if (more) {
        mbar_wait(base + OFF_BAR + s * 8, phase);
        cur = load_scales(base, s, rg, row_in_wg);
        issue_kblock(next, base, s, rg);
        wait_acc<1>(prev);
    } else {
        wait_acc<0>(prev);
    }
    if (have_prev)
        retire(out, prev, prev_scales, s_prev, sc, base, n_off, lane);
    if (more) {
        prev_scales = cur;
        s_prev = s;
        ring_next(s, phase, 1);
    }
}

/* One tile's K blocks with two accumulator sets: block kl+1 is issued before block kl is
 * promoted, so one wgmma group is in flight while the CUDA cores promote. Even local K
 * blocks go to acc0, odd ones to acc1; the loop is unrolled by two so that which set is
 * in flight is a compile-time fact at every point (ptxas otherwise serializes the wgmma).
 * Each half either goes on or ends the tile; the first step only issues. At the end
 * nothing is in flight, but ptxas
 * cannot tell which half ended it (on its merged paths the other set may still be in
 * flight, and it then serializes every wgmma: C7514), so an explicit wait<0> says so.
 * With exactly two K blocks per CTA (K = 256) ptxas 13.0 still reports C7514 for this
 * loop, so those kernels take the plain loop (OVERLAP is false there). */
__device__ __forceinline__ void kloop_overlapped(float (&out)[BN / 2], float (&acc0)[BN / 2],
                                                 float (&acc1)[BN / 2], const sched &sc, u32 base,
                                                 int &s, u32 &phase, u32 rg, u32 row_in_wg,
                                                 int n_off, u32 lane)
{
    kscales prev = {}; /* read only once a block is in flight (have_prev) */
    int s_prev = s;
    if constexpr (UNROLL > 1 && GROUPING == 0 && KB % CK == 0) {
        /* Unrolled: a dense tile's K-block count is the constant KB / CK, so the loop runs
         * to it and every step's `more` and `have_prev` are compile-time facts. */
        constexpr int COUNT = KB / CK;
#pragma unroll
        for (int kl = 0; kl < COUNT + 1; ++kl) {
            if (kl % 2 == 0)
                kstep_overlapped(out, acc0, acc1, prev, sc, base, s, phase, s_prev, rg, row_in_wg,
                                 n_off, lane, kl < COUNT, kl > 0);
            else
                kstep_overlapped(out, acc1, acc0, prev, sc, base, s, phase, s_prev, rg, row_in_wg,
                                 n_off, lane, kl < COUNT, true);
        }
        wgmma_wait<0>();
        return;
    }
#pragma unroll UNROLL
    for (int kl = 0;; kl += 2) {
        bool more = kl < sc.kb_count; /* block kl goes to acc0 */
        kstep_overlapped(out, acc0, acc1, prev, sc, base, s, phase, s_prev, rg, row_in_wg, n_off,
                         lane, more, kl > 0);
        if (!more) {
            wgmma_wait<0>(); /* nothing is in flight here; this tells ptxas so */
            return;
        }
        more = kl + 1 < sc.kb_count; /* block kl + 1 goes to acc1 */
        kstep_overlapped(out, acc1, acc0, prev, sc, base, s, phase, s_prev, rg, row_in_wg, n_off,
                         lane, more, true);
        if (!more) {
            wgmma_wait<0>(); /* nothing is in flight here; this tells ptxas so */
            return;
        }
    }
}
