// BF16 -> FP8 E4M3 quantization in groups of 128 along K (the DeepSeek recipe): the
// helpers both quantizers share. One kernel per file keeps each NVRTC compile small.
//
// kp::k     row length K (multiple of 128)
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

