/* NVRTC for the benchmarks' own kernels (kiln-bench-stream, kiln-bench-ingest): source to
 * sm_90a cubin, or the compiler's log and exit(1). */
#ifndef KILN_BENCH_NVRTC_H
#define KILN_BENCH_NVRTC_H

#include <nvrtc.h>
#include <stdio.h>
#include <stdlib.h>

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

#endif
