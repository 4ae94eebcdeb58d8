// Per-token FP8 quantization (kp::k = K).
// kiln_quant_per_token (activations, 1x128 groups):
//   x  BF16 [M, K], row stride ld_x elements (multiple of 8)
//   q  E4M3 [M, K], contiguous
//   sf F32  [K/128, sf_stride] MN-major: the scale of row m, K-block b at sf[b*sf_stride + m]
//   Grid (ceil(M/32), K/128), 256 threads. A CTA quantizes 32 rows of one K-block: a
//   half-warp per group of 128 (16 bytes a lane), so the scales a CTA writes are 32
//   consecutive floats.
#pragma once
#include "quant_common.cuh"

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
