/* Cross-CTA reduction of a cluster_k split (a cluster of CK CTAs shares one output tile,
 * each over 1/CK of K), shared by the GEMM templates. Reduce-scatter: rank r finishes a
 * contiguous range of the 8-column groups of every 64-row group (group_owner), so that the
 * rows it stores are whole 32-byte sectors, not halves shared with another SM.
 *
 * Included INSIDE a kernel's namespace, after gemm_sched.cuh and these definitions:
 *   BN, CK, RG, OUT_F32, N  tile columns, cluster size, 64-row groups, FP32 output
 *   CK_CHUNK                reduce_scatter_chunk(BN, CK) (sm90.cuh)
 *   OFF_CRED                (CK - 1) * RG chunks of CK_CHUNK bytes: per row group, the
 *                           partners' sums of this rank's groups, one chunk per partner
 *   OFF_CBAR                mbarriers ready[RG] (count 1, plus the received bytes) and
 *                           freed[RG] (count CK - 1: every partner has read what we sent)
 */

/* The rank finishing 8-column group i of BN / 8: ranks take contiguous ranges of equal
 * size, give or take one (so at most reduce_scatter_chunk's ceil(groups / CK)); the first
 * group of rank r. Before (stop 28), ranks took every CK-th group, and each stored row was
 * 16-byte pieces whose 32-byte sectors another SM completed; profiler, two rounds:
 * 64x4096x7168 13.18 / 13.06 -> 12.80 / 12.74 us, 64x2112x7168 10.37 -> 10.29, the other
 * cluster_k shapes (128 rows, 64x7168x16384) within 0.5%. */
constexpr int group_owner(int i) { return i * CK / (BN / 8); }
constexpr int owner_first_group(int r) { return (r * (BN / 8) + CK - 1) / CK; }

/* Where, in the receive slots `recv` of the rank owning column group i, the sums of that
 * group from rank `from` land for thread t: the owner keeps one slot per partner, in rank
 * order without itself, and one 16-byte vector per thread for each of its groups. */
__device__ __forceinline__ u32 reduce_slot(u32 recv, int from, int owner, int i, u32 t)
{
    constexpr int VECTORS_BYTES = 128 * 16; /* a warpgroup's vectors of one column group */
    return recv + (from < owner ? from : from - 1) * CK_CHUNK +
           (i - owner_first_group(owner)) * VECTORS_BYTES + t * 16;
}

/* Adds the partners' partial sums of this rank's column groups to acc (64-row group rg,
 * wgmma accumulator layout, thread t of its warpgroup; the other groups of acc are left as
 * they are). Each thread writes its sums of every partner's groups straight into that
 * partner's shared memory with st.async, which counts the bytes on the partner's ready
 * barrier (no fences, no staging); the sums come out in rank order, the same bits as one
 * rank adding all of them. A rank sends the next tile's sums once every partner has read
 * the last ones (freed; more: the cluster has another tile); the caller's final
 * cluster_sync keeps each CTA alive until its partners are done with it.
 * DSMEM bandwidth sets the cost: ~6 bytes per SM clock each way when every SM reduces at
 * once (--trace, 64x2112x7168: ~2200 cycles at cluster_k 4, ~5200 at 8), whether the bytes
 * go by bulk copy or st.async. Through L2 instead (global stores, one cluster-scope fence
 * per warpgroup, relaxed remote arrives on the owner's barriers, the owner reading them
 * back) every cluster_k alternative timed was 0.6-19% slower, most 4-8% (stop 32, profiler). */
__device__ __forceinline__ void cluster_reduce_scatter(float (&acc)[BN / 2], const sched &sc,
                                                       u32 base, u32 rg, u32 t, u32 &parity,
                                                       bool first, bool more)
{
    constexpr int GROUPS = BN / 8;
    const u32 wg = threadIdx.x / 128;
    const int rank = sc.rank;
    const u32 ready = base + OFF_CBAR + rg * 8;
    const u32 freed = base + OFF_CBAR + (RG + rg) * 8;
    const u32 recv = base + OFF_CRED + rg * (CK - 1) * CK_CHUNK;
    if (!first)
        mbar_wait_cluster(freed, parity ^ 1);
    if (t == 0)
        mbar_arrive_expect_tx(ready, (u32)((CK - 1) *
                                           (owner_first_group(rank + 1) - owner_first_group(rank)) *
                                           2048));
#pragma unroll
    for (int i = 0; i < GROUPS; ++i) {
        const int owner = group_owner(i);
        if (owner == rank)
            continue;
        const u32 dst = reduce_slot(recv, rank, owner, i, t);
        st_async_v4f32(map_shared_rank(dst, (u32)owner), acc[4 * i], acc[4 * i + 1],
                       acc[4 * i + 2], acc[4 * i + 3], map_shared_rank(ready, (u32)owner));
    }
    mbar_wait_cluster(ready, parity);
    parity ^= 1;
#pragma unroll
    for (int i = 0; i < GROUPS; ++i) {
        if (group_owner(i) != rank)
            continue;
        float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
        for (int q = 0; q < CK; ++q) {
            float4 v = make_float4(acc[4 * i], acc[4 * i + 1], acc[4 * i + 2], acc[4 * i + 3]);
            if (q != rank)
                v = ld_shared_v4f32(reduce_slot(recv, q, rank, i, t));
            if (q == 0) {
                sum = v;
            } else {
                sum.x += v.x;
                sum.y += v.y;
                sum.z += v.z;
                sum.w += v.w;
            }
        }
        acc[4 * i] = sum.x;
        acc[4 * i + 1] = sum.y;
        acc[4 * i + 2] = sum.z;
        acc[4 * i + 3] = sum.w;
    }
    /* Every thread has read its vectors: one release arrive per partner, only where the
     * cluster has another tile (more): each release arrive waits for this thread's memory
     * operations to be visible cluster-wide (a GPU-wide memory barrier, ~1000 cycles per
     * partner in --trace), and at decode a cluster's first tile is its last. */
    if (!more)
        return;
    named_bar_sync(1 + wg, 128);
    if (t == 0) {
#pragma unroll
        for (int p = 0; p < CK; ++p)
            if (p != rank)
                mbar_arrive_cluster(freed, (u32)p);
    }
}

/* This rank's column groups of a 64-row group, stored from registers (rows past the tile's
 * problem and columns past N are not stored). */
__device__ __forceinline__ void store_owned(const float *acc, const sched &sc, const tile &tl,
                                            u32 rg, u32 row_in_wg, u32 lane, int rows_left,
                                            void *__restrict__ d_ptr, long long ld_d)
{
    const long long first_row =
        (GROUPING == 1 ? (long long)tl.g * sc.m : (long long)tl.row0) + tl.mb * BM + (int)rg * 64;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int r = (int)row_in_wg + 8 * h;
        if (r >= rows_left)
            continue;
        const long long row = (first_row + r) * ld_d;
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) {
            const int col = tl.nb * BN + 8 * i + 2 * (int)(lane & 3);
            if (group_owner(i) != sc.rank || col >= N)
                continue;
            if constexpr (OUT_F32)
                asm volatile("st.global.v2.f32 [%0], {%1, %2};" ::"l"((float *)d_ptr + row + col),
                             "f"(acc[4 * i + 2 * h]), "f"(acc[4 * i + 2 * h + 1])
                             : "memory");
            else
                st_global_u32((u16 *)d_ptr + row + col,
                              pack_bf16x2(acc[4 * i + 2 * h], acc[4 * i + 2 * h + 1]));
        }
    }
}
