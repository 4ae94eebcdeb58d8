// Small PTX wrappers shared by the element-wise kernels (quantization, layout). No CUDA
// headers: NVRTC compiles these in a few tens of milliseconds.
#pragma once

typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned short u16;
typedef unsigned char u8;

struct alignas(16) u32x4 {
    u32 x, y, z, w;
};

// Programmatic dependent launch: wait until the grids this one depends on have finished
// and their writes are visible; a no-op when launched without the PDL attribute.
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
// Let the next kernel in the stream start its prologue.
__device__ __forceinline__ void pdl_launch_dependents()
{
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

__device__ __forceinline__ u32x4 load_global_nc(const void *ptr)
{
    u32x4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(ptr));
    return v;
}

__device__ __forceinline__ float bf16_lo(u32 pair) { return __int_as_float(pair << 16); }
__device__ __forceinline__ float bf16_hi(u32 pair) { return __int_as_float(pair & 0xffff0000u); }

// IEEE single-precision ops with explicit rounding, so the CPU reference can reproduce
// them bit for bit (no contraction into FMA, no approximate division).
__device__ __forceinline__ float div_rn(float a, float b)
{
    float r;
    asm("div.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}
__device__ __forceinline__ float mul_rn(float a, float b)
{
    float r;
    asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}

// Two floats -> two E4M3 bytes, round to nearest even, saturating to +-448; lo lands in
// the low byte.
__device__ __forceinline__ u16 e4m3x2(float lo, float hi)
{
    u16 r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
    return r;
}

template <int WIDTH> __device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int offset = WIDTH / 2; offset > 0; offset /= 2)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}
