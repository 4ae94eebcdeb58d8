/* NVRTC for the benchmarks' own kernels (kiln-bench-stream, -ingest, -dsmem): their source
 * joined, compiled to an sm_90a cubin (or the compiler's log and exit(1)) and loaded. */
#ifndef KILN_BENCH_NVRTC_H
#define KILN_BENCH_NVRTC_H

#include <nvrtc.h>
#include <stdio.h>
#include <stdlib.h>

#include "../tests/gpu_util.h"

/* head (e.g. a workload's #defines) and then count pieces, in one malloc'd string. */
static inline char *bench_join(const char *head, const char *const *pieces, size_t count)
{
    size_t len = strlen(head) + 1;
    for (size_t i = 0; i < count; i++)
        len += strlen(pieces[i]);
    char *src = malloc(len);
    snprintf(src, len, "%s", head);
    for (size_t i = 0; i < count; i++)
        strcat(src, pieces[i]);
    return src;
}

/* The cubin of src (malloc'd; its size in *size when size is not null); what names the
 * kernels in the error message. */
static inline char *bench_nvrtc_cubin(const char *src, const char *what, size_t *size)
{
    nvrtcProgram prog;
    const char *opts[] = {"--gpu-architecture=sm_90a", "--std=c++17"};
    if (nvrtcCreateProgram(&prog, src, "bench.cu", 0, NULL, NULL) != NVRTC_SUCCESS) {
        fprintf(stderr, "%s: nvrtcCreateProgram failed\n", what);
        exit(1);
    }
    if (nvrtcCompileProgram(prog, 2, opts) != NVRTC_SUCCESS) {
        size_t log_size = 0;
        nvrtcGetProgramLogSize(prog, &log_size);
        char *log = malloc(log_size + 1);
        nvrtcGetProgramLog(prog, log);
        fprintf(stderr, "%s: NVRTC failed:\n%s\n", what, log);
        exit(1);
    }
    size_t bytes = 0;
    nvrtcGetCUBINSize(prog, &bytes);
    char *cubin = malloc(bytes);
    nvrtcGetCUBIN(prog, cubin);
    nvrtcDestroyProgram(&prog);
    if (size)
        *size = bytes;
    return cubin;
}

/* Kernel `name` of cubin (freed here) loaded into *module, allowed smem_max bytes of dynamic
 * shared memory. */
static inline CUfunction bench_load(char *cubin, const char *name, int smem_max,
                                    CUmodule *module)
{
    CUfunction f;
    CU_CHECK(gpu_drv()->cuModuleLoadData(module, cubin));
    free(cubin);
    CU_CHECK(gpu_drv()->cuModuleGetFunction(&f, *module, name));
    CU_CHECK(gpu_drv()->cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                           smem_max));
    return f;
}

#endif
