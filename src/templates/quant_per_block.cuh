// Per-block FP8 quantization (kp::k = K).
// kiln_quant_per_block (weights, 128x128 blocks):
//   x  BF16 [N, K], row stride ld_x; q E4M3 [N, K] contiguous
//   sf F32  [ceil(N/128), K/128] row-major
//   Grid (ceil(N/128), K/128), 256 threads; a thread holds 8 rows x 8 values in registers,
//   so the block is read once.
//
#pragma once
#include "quant_common.cuh"

extern "C" __global__ void __launch_bounds__(256)
    kiln_quant_per_block(const u16 *__restrict__ x, u8 *__restrict__ q, float *__restrict__ sf,
                         int n, long long ld_x)
{
    constexpr int kRowsPerPass = 16, kPasses = 8;
    __shared__ float warp_amax[8];
    const int lane16 = threadIdx.x % 16;
    const int row0 = blockIdx.x * quant::kGroup + threadIdx.x / 16;
    const int kblock = blockIdx.y;
    const long long col = (long long)kblock * quant::kGroup + lane16 * 8;
    pdl_wait();

    u32x4 v[kPasses];
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < kPasses; i++) {
        int row = row0 + i * kRowsPerPass;
        v[i] = row < n ? load_global_nc(x + row * ld_x + col) : u32x4{0, 0, 0, 0};
    }
    pdl_launch_dependents();
#pragma unroll
    for (int i = 0; i < kPasses; i++)
        amax = fmaxf(amax, quant::abs_max8(v[i]));
    amax = warp_max<32>(amax);
    if (threadIdx.x % 32 == 0)
        warp_amax[threadIdx.x / 32] = amax;
    __syncthreads();
#pragma unroll
    for (int w = 0; w < 8; w++)
        amax = fmaxf(amax, warp_amax[w]);
    amax = fmaxf(amax, quant::kMinAmax);
    const float inv = div_rn(quant::kE4m3Max, amax);
#pragma unroll
    for (int i = 0; i < kPasses; i++) {
        int row = row0 + i * kRowsPerPass;
        if (row < n)
            quant::store_quant8(q + row * (long long)kp::k + col, v[i], inv);
    }
    if (threadIdx.x == 0)
        sf[blockIdx.x * (long long)(kp::k / quant::kGroup) + kblock] =
            div_rn(amax, quant::kE4m3Max);
}
