// BF16 -> FP8 E4M3 quantization in groups of 128 along K (the DeepSeek recipe).
//
// kp::k     row length K (multiple of 128)
//
// kiln_quant_per_token (activations, 1x128 groups):
//   x  BF16 [M, K], row stride ld_x elements (multiple of 8)
//   q  E4M3 [M, K], contiguous
//   sf F32  [K/128, sf_stride] MN-major: the scale of row m, K-block b at sf[b*sf_stride + m]
//   Grid (ceil(M/32), K/128), 256 threads. A CTA quantizes 32 rows of one K-block: a
//   half-warp per group of 128 (16 bytes a lane), so the scales a CTA writes are 32
//   consecutive floats.
// kiln_quant_per_block (weights, 128x128 blocks):
//   x  BF16 [N, K], row stride ld_x; q E4M3 [N, K] contiguous
//   sf F32  [ceil(N/128), K/128] row-major
//   Grid (ceil(N/128), K/128), 256 threads; a thread holds 8 rows x 8 values in registers,
//   so the block is read once.
//
// scale = max(amax, 1e-4) / 448 and q = e4m3_rn_satfinite(x * (448 / max(amax, 1e-4))).
#pragma once
#include "common/ptx.cuh"

namespace quant {
constexpr int kGroup = 128;
constexpr float kE4m3Max = 448.0f;
constexpr float kMinAmax = 1e-4f;

__device__ __forceinline__ float abs_max8(u32x4 v)
{
    float m = fmaxf(fabsf(bf16_lo(v.x)), fabsf(bf16_hi(v.x)));
    m = fmaxf(m, fmaxf(fabsf(bf16_lo(v.y)), fabsf(bf16_hi(v.y))));
    m = fmaxf(m, fmaxf(fabsf(bf16_lo(v.z)), fabsf(bf16_hi(v.z))));
    return fmaxf(m, fmaxf(fabsf(bf16_lo(v.w)), fabsf(bf16_hi(v.w))));
}

__device__ __forceinline__ u32 quant4(u32 a, u32 b, float inv)
{
    u32 lo = e4m3x2(mul_rn(bf16_lo(a), inv), mul_rn(bf16_hi(a), inv));
    u32 hi = e4m3x2(mul_rn(bf16_lo(b), inv), mul_rn(bf16_hi(b), inv));
    return lo | hi << 16;
}

// 8 BF16 values -> 8 E4M3 bytes stored at dst (8-byte aligned).
__device__ __forceinline__ void store_quant8(u8 *dst, u32x4 v, float inv)
{
    u32 lo = quant4(v.x, v.y, inv), hi = quant4(v.z, v.w, inv);
    asm volatile("st.global.v2.u32 [%0], {%1, %2};" ::"l"(dst), "r"(lo), "r"(hi) : "memory");
}
} // namespace quant

extern "C" __global__ void __launch_bounds__(256)
    kiln_quant_per_token(const u16 *__restrict__ x, u8 *__restrict__ q, float *__restrict__ sf,
                         int m, long long ld_x, long long sf_stride)
{
    constexpr int kRowsPerCta = 32, kRowsPerPass = 16;
    const int lane16 = threadIdx.x % 16;
    const int row0 = blockIdx.x * kRowsPerCta + threadIdx.x / 16;
    const int kblock = blockIdx.y;
    const long long col = (long long)kblock * quant::kGroup + lane16 * 8;
    pdl_wait();

    u32x4 v[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int row = row0 + i * kRowsPerPass;
        v[i] = row < m ? load_global_nc(x + row * ld_x + col) : u32x4{0, 0, 0, 0};
    }
    pdl_launch_dependents();
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int row = row0 + i * kRowsPerPass;
        float amax = fmaxf(warp_max<16>(quant::abs_max8(v[i])), quant::kMinAmax);
        if (row >= m)
            continue;
        float inv = div_rn(quant::kE4m3Max, amax);
        quant::store_quant8(q + row * (long long)kp::k + col, v[i], inv);
        if (lane16 == 0)
            sf[kblock * sf_stride + row] = div_rn(amax, quant::kE4m3Max);
    }
}

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
