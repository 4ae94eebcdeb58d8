// FP32 scale factors [M, KB] (row stride ld_in) -> MN-major [KB, out_stride], the layout
// the FP8 GEMM's TMA loads (out_stride = align(M, 4), so each K-block row is 16-byte
// aligned). Tiles of kp::tile x kp::tile through shared memory keep both sides coalesced.
// Grid (ceil(M/tile), ceil(KB/tile)), tile x 8 threads.
#pragma once
#include "common/ptx.cuh"

extern "C" __global__ void __launch_bounds__(kp::tile * 8)
    kiln_sf_transpose(const float *__restrict__ in, float *__restrict__ out, int m, int kb,
                      long long ld_in, long long out_stride)
{
    constexpr int kTile = (int)kp::tile;
    __shared__ float tile[kTile][kTile + 1];
    const int m0 = blockIdx.x * kTile, k0 = blockIdx.y * kTile;
    pdl_wait();
    for (int r = threadIdx.y; r < kTile; r += 8) {
        int row = m0 + r, col = k0 + threadIdx.x;
        if (row < m && col < kb)
            tile[r][threadIdx.x] = in[row * ld_in + col];
    }
    __syncthreads();
    pdl_launch_dependents();
    for (int r = threadIdx.y; r < kTile; r += 8) {
        int krow = k0 + r, mcol = m0 + threadIdx.x;
        if (krow < kb && mcol < m)
            out[krow * out_stride + mcol] = tile[threadIdx.x][r];
    }
}
