/* The FP8 GEMM's split last round (TAIL_SPLIT, dense 192-row tiles; gemm_sched.cuh's
 * make_sched decides when): a tile of that round runs as P = sc.tail_parts pieces (2 or RG)
 * on P CTAs, piece p taking about 1 / P of the K blocks. Each warpgroup of each piece writes
 * the FP32 partial sums of its 64 rows to the workspace and counts them on the rows' flag;
 * the warpgroup that brings the count to P adds the P partials in piece order (the same sums
 * whichever CTA adds them, so two runs agree bitwise), stores the rows and resets the flag.
 * Nobody waits for anybody, so the pieces need not run at the same time.
 *
 * Workspace (the host's kiln__gemm_fp8_tail_ws_bytes): TAIL_FLAGS u32 flags (gemm_sched.cuh),
 * flag RG * i + r for row group r of the round's i-th split tile, zero between launches;
 * then for every flag the P partials, 64 x BN FP32 each, laid out so that a warp's 16-byte
 * accesses cover 512 contiguous bytes (float4 j of thread t at 4 * (128 j + t)). P pieces
 * of RG row groups on at most one CTA each: RG partials per CTA at most.
 *
 * Where it pays (stop 33, profiler, without -> with the split): 6144x2112x7168 163.7 ->
 * 149.2 us, 12288x2112x7168 293.0 -> 277.8, 14336x4096x7168 628.5 -> 607.1, 8192x7168x16384
 * 1436.9 -> 1409.7; below K = 7168 it lost (the host's kiln__gemm_fp8_tail_fits).
 *
 * Part of gemm_fp8.cuh, included INSIDE its namespace kiln_fp8 after the tile constants,
 * gemm_sched.cuh and the epilogue; it includes nothing itself. */

constexpr int TAIL_PART_FLOATS = 64 * BN;

/* Piece p's partial of row group r of split tile i, of `parts` pieces per tile. */
__device__ __forceinline__ float *tail_partial(unsigned *ws, int parts, int i, int r, int p)
{
    return reinterpret_cast<float *>(ws + TAIL_FLAGS) +
           (long long)((i * RG + r) * parts + p) * TAIL_PART_FLOATS;
}

/* The last of the partials of a row group: sums them in piece order and stores the rows
 * below M (BF16, from registers). Four float4 of each partial in flight per step. */
__device__ __forceinline__ void tail_reduce_store(unsigned *ws, const sched &sc, const tile &tl,
                                                  int r, u32 t, u32 row_in_wg, u32 lane,
                                                  u16 *__restrict__ d_ptr, long long ld_d)
{
    const int i = tl.split_index;
    const int row = tl.mb * BM + r * 64 + (int)row_in_wg;
    u16 *d_row = d_ptr + (long long)row * ld_d;
#pragma unroll 4
    for (int j = 0; j < BN / 8; ++j) {
        float sum[4];
#pragma unroll
        for (int p = 0; p < RG; ++p) {
            /* 2 or RG pieces: a piece past the tile's adds zeros (a predicated load, so
             * that the code stays one straight line) */
            float x[4];
            asm volatile("{\n\t.reg .pred present;\n\t"
                         "setp.lt.s32 present, %5, %6;\n\t"
                         "mov.b32 %0, 0;\n\tmov.b32 %1, 0;\n\tmov.b32 %2, 0;\n\tmov.b32 %3, 0;\n\t"
                         "@present ld.global.cg.v4.f32 {%0, %1, %2, %3}, [%4];\n\t}"
                         : "=f"(x[0]), "=f"(x[1]), "=f"(x[2]), "=f"(x[3])
                         : "l"(tail_partial(ws, sc.tail_parts, i, r, p) +
                               4 * (128 * j + (int)t)),
                           "r"(p), "r"(sc.tail_parts));
#pragma unroll
            for (int e = 0; e < 4; ++e)
                sum[e] = p == 0 ? x[e] : sum[e] + x[e];
        }
        const int col = tl.nb * BN + 8 * j + 2 * (int)(lane & 3);
        if (col < N) {
            if (row < sc.m)
                st_global_u32(d_row + col, pack_bf16x2(sum[0], sum[1]));
            if (row + 8 < sc.m)
                st_global_u32(d_row + 8 * ld_d + col, pack_bf16x2(sum[2], sum[3]));
        }
    }
}

/* A piece's end for this warpgroup: its partial written and counted, and the rows stored by
 * whoever counts last. */
__device__ __forceinline__ void tail_piece_done(const float (&out)[BN / 2], const sched &sc,
                                                const tile &tl, u32 rg, u32 wg, u32 t,
                                                u32 row_in_wg, u32 lane, unsigned *ws,
                                                u16 *__restrict__ d_ptr, long long ld_d)
{
    const int r = (int)rg;
    float *dst = tail_partial(ws, sc.tail_parts, tl.split_index, r, tl.piece) + 4 * t;
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
        asm volatile("st.global.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(dst + 512 * j),
                     "f"(out[4 * j]), "f"(out[4 * j + 1]), "f"(out[4 * j + 2]), "f"(out[4 * j + 3])
                     : "memory");
    /* The warpgroup's stores, then one release-acquire count for all of them; the
     * barrier's reduction tells every thread whether the count was the last. */
    named_bar_sync(1 + wg, 128);
    bool last = false;
    if (t == 0) {
        unsigned *flag = ws + RG * tl.split_index + r;
        u32 before;
        asm volatile("fence.acq_rel.gpu;\n\tatom.relaxed.gpu.global.add.u32 %0, [%1], 1;"
                     : "=r"(before) : "l"(flag) : "memory");
        last = before == (u32)sc.tail_parts - 1;
        if (last) /* the others' partials are visible from here on; the flag is free again */
            asm volatile("fence.acq_rel.gpu;\n\tst.relaxed.gpu.global.u32 [%0], 0;" ::"l"(flag)
                         : "memory");
    }
    /* the same in every lane, which the compiler learns from the broadcast: a branch it must
     * treat as divergent takes the tile loop's values out of the uniform registers */
    if (__shfl_sync(0xffffffffu, (int)named_bar_any(1 + wg, 128, last), 0) != 0)
        tail_reduce_store(ws, sc, tl, r, t, row_in_wg, lane, d_ptr, ld_d);
}
