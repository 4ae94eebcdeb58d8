// Calibrates compute-sanitizer's racecheck against the handoff kiln's GEMM kernels use
// between warps (docs/sanitizer.md): a warp reads shared memory, __syncwarp, and one lane
// arrives on an mbarrier for the warp; another warp waits on it, then writes. Under the
// PTX memory model that is race-free (bar.warp.sync orders the warp's accesses; the arrive
// releases, the wait acquires), but racecheck reports it.
//   mode 0: the kernels' pattern (lane 0 arrives after __syncwarp)
//   mode 1: every lane arrives (barrier count 32): what racecheck can follow
//   mode 2: a real race (the writer does not wait): what racecheck must report
// Build here (nvcc -arch=sm_90a -o .carry/handoff scripts/racecheck_handoff.cu), carry .carry,
// and run on the GPU machine: compute-sanitizer --tool racecheck .carry/handoff MODE.
#include <cstdio>
#include <cstdlib>
__global__ void handoff(float *out, int mode)
{
    __shared__ float buf;
    __shared__ unsigned long long bar;
    unsigned b = (unsigned)__cvta_generic_to_shared(&bar);
    unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (threadIdx.x == 0) {
        buf = 1.0f;
        asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(b), "r"(mode == 1 ? 32 : 1));
    }
    __syncthreads();
    if (warp == 0) {
        float v = buf;
        out[lane] = v;
        __syncwarp();
        if (mode == 1 || lane == 0)
            asm volatile("{ .reg .b64 st; mbarrier.arrive.shared::cta.b64 st, [%0]; }" ::"r"(b) : "memory");
    } else {
        if (mode != 2) {
            unsigned done = 0;
            while (!done)
                asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;"
                             " selp.u32 %0, 1, 0, p; }" : "=r"(done) : "r"(b) : "memory");
        }
        if (lane == 0)
            buf = 2.0f;
    }
}
int main(int argc, char **argv)
{
    int mode = argc > 1 ? atoi(argv[1]) : 0;
    float *out;
    cudaMalloc(&out, 32 * sizeof(float));
    handoff<<<1, 64>>>(out, mode);
    cudaError_t e = cudaDeviceSynchronize();
    printf("mode %d: %s\n", mode, cudaGetErrorString(e));
    return e != cudaSuccess;
}
