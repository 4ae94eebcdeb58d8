/* The FP8 GEMM's epilogue: FP32 output from registers, BF16 output packed, staged in
 * swizzled shared memory and stored with TMA, and the deferred store of 256-row tiles.
 *
 * Part of gemm_fp8.cuh, included INSIDE its namespace kiln_fp8 after the tile and
 * shared-memory constants, gemm_sched.cuh and gemm_fp8_kblock.cuh; it includes nothing
 * itself. */

/* FP32 mode epilogue: D = C + out, straight from registers (C may alias D: each element is
 * read and then written by the same thread). */
__device__ __forceinline__ void store_f32(const float (&out)[BN / 2], const sched &sc, const tile &tl,
                                          u32 rg, u32 row_in_wg, u32 lane, const float *c,
                                          u16 *d_ptr, long long ld_d)
{
    float *d = reinterpret_cast<float *>(d_ptr);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int row = tl.mb * BM + (int)rg * 64 + (int)row_in_wg + 8 * h;
        if (row >= sc.m)
            continue;
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) {
            const int col = tl.nb * BN + 8 * i + 2 * (int)(lane & 3);
            if (col >= N)
                continue;
            const long long at = (long long)row * ld_d + col;
            float x = out[4 * i + 2 * h], y = out[4 * i + 2 * h + 1];
            if (c != nullptr) {
                float cx, cy;
                asm volatile("ld.global.v2.f32 {%0, %1}, [%2];" : "=f"(cx), "=f"(cy) : "l"(c + at) : "memory");
                x += cx;
                y += cy;
            }
            asm volatile("st.global.v2.f32 [%0], {%1, %2};" ::"l"(d + at), "f"(x), "f"(y) : "memory");
        }
    }
}

/* One 64-row wave's sums as BF16 pairs, in the order stage_wave writes them. */
__device__ __forceinline__ void pack_wave(u32 (&pk)[BN / 4], const float (&out)[BN / 2])
{
#pragma unroll
    for (int i = 0; i < BN / 4; ++i)
        pk[i] = pack_bf16x2(out[2 * i], out[2 * i + 1]);
}

/* Writes one wave's packed sums into this warpgroup's staging buffer dsm (swizzled slabs of
 * D_SLAB columns), once the previous TMA store has read it; the buffer is then ready for
 * the TMA store (fenced, every thread of the warpgroup past the barrier). Each warp stores
 * its 16 rows as 8x8 matrices (stmatrix), two 8-column groups at a time: matrix j of an x4
 * is column group i + j / 2, rows + 8 * (j % 2), whose pairs are pk[2 * i + j]. Four times
 * fewer store instructions than 32-bit stores, on the path every math warp runs between two
 * tiles while the tensor cores wait. Profiler, lone launches, against 32-bit stores
 * (session 24): 4096x32768x512 136.9 -> 135.5 us, 64x32768x512 9.25 -> 9.09, 128x32768x512
 * 10.21 -> 9.98, 128x24576x1536 15.36 -> 15.14, other dense shapes within 0.7%. Dense
 * kernels without deferred stores only: in the others the K loop came out with other
 * registers (the same instructions) and ran slower (4096x7168x16384 709.7 -> 723.1 us,
 * contiguous 4 x 8192 rows (4096, 7168) 1424.2 -> 1449.4). */
__device__ __forceinline__ void stage_wave(u32 dsm, const u32 (&pk)[BN / 4], u32 wg, u32 t,
                                           u32 row_in_wg, u32 lane)
{
    constexpr int GROUPS = BN / 8;
    if (t == 0)
        bulk_wait_read<0>();
    named_bar_sync(1 + wg, 128);
    if constexpr (GROUPING != 0 || DEFER) {
#pragma unroll
        for (int i = 0; i < GROUPS; ++i) {
            const int col = 8 * i + 2 * (int)(lane & 3);
            const int slab = col / D_SLAB;
            const int c = col % D_SLAB;
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                u32 off = (row_in_wg + 8 * h) * D_SLAB_BYTES + c * 2;
                if constexpr (D_SWZ_BITS > 0)
                    off ^= ((off >> 7) & ((1u << D_SWZ_BITS) - 1)) << 4;
                st_shared_u32(dsm + slab * (64 * D_SLAB_BYTES) + off, pk[2 * i + h]);
            }
        }
    } else {
        /* The row and column group (+ 0 or 1) this lane addresses: lanes 0-7 and 16-23 the
         * warp's first 8 rows, 8-15 and 24-31 the next 8; lanes 16-31 the second group. */
        const u32 row = (t / 32) * 16 + (lane & 15);
        const u32 next = lane >> 4;
#pragma unroll
        for (int i = 0; i < GROUPS; i += 2) {
            const int slab = 8 * i / D_SLAB; /* groups i and i + 1 share it: D_SLAB % 16 == 0
                                                or one slab */
            const bool pair = i + 1 < GROUPS;
            u32 off = row * D_SLAB_BYTES + ((8 * i) % D_SLAB) * 2 + (pair ? next * 16 : 0);
            if constexpr (D_SWZ_BITS > 0)
                off ^= ((off >> 7) & ((1u << D_SWZ_BITS) - 1)) << 4;
            const u32 at = dsm + slab * (64 * D_SLAB_BYTES) + off;
            if (pair)
                stmatrix_x4(at, pk[2 * i], pk[2 * i + 1], pk[2 * i + 2], pk[2 * i + 3]);
            else
                stmatrix_x2(at, pk[2 * i], pk[2 * i + 1]);
        }
    }
    fence_proxy_async_smem();
    named_bar_sync(1 + wg, 128);
}

/* The 2-D TMA store of a staged wave: columns from col, rows from row. */
__device__ __forceinline__ void store_wave_2d(const tmap *tm_d, u32 dsm, int col, int row)
{
#pragma unroll
    for (int sl = 0; sl < D_NSLAB; ++sl)
        tma_store_2d(tm_d, dsm + sl * (64 * D_SLAB_BYTES), col + sl * D_SLAB, row);
    bulk_commit();
}

/* A tile whose store is deferred (DEFER): its waves' packed sums and where they go. */
struct deferred_tile {
    u32 pk[WAVES][BN / 4];
    int col, row;  /* the tile's first column and row */
    int rows_left; /* rows of D from row on (0: nothing to store, e.g. past N) */
};

/* Stores wave v of a deferred tile (row group rgv = rg + v * WG_RG). */
__device__ __forceinline__ void store_deferred(const tmap *tm_d, u32 dsm, const deferred_tile &dt,
                                               int v, u32 rg, u32 wg, u32 t, u32 row_in_wg,
                                               u32 lane)
{
    stage_wave(dsm, dt.pk[v], wg, t, row_in_wg, lane);
    const int rgv = (int)rg + v * WG_RG;
    if (t == 0 && dt.rows_left - rgv * 64 > 0)
        store_wave_2d(tm_d, dsm, dt.col, dt.row + rgv * 64);
}
