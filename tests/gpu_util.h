/* Helpers shared by the gpu suite and the benchmarks: device buffers through kiln's own
 * driver table, random data, host references of the number formats. */
#ifndef KILN_TEST_GPU_UTIL_H
#define KILN_TEST_GPU_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../src/runtime/driver.h"
#include "kiln/kiln.h"

#define GPU_SKIP 77

/* Abort the test program with a message when a driver call fails. */
#define CU_CHECK(call)                                                                         \
    do {                                                                                       \
        CUresult rc_ = (call);                                                                 \
        if (rc_ != CUDA_SUCCESS) {                                                             \
            const char *name_ = "?";                                                           \
            gpu_drv()->cuGetErrorName(rc_, &name_);                                            \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, name_);              \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

static inline const kiln__driver *gpu_drv(void)
{
    return kiln__driver_get(NULL);
}

/* The SM count of device 0, as the hardware has it (no KILN_NUM_SMS): for the programs that
 * measure the hardware itself. Call after gpu_ctx_or_skip. */
static inline int gpu_sm_count(void)
{
    CUdevice dev;
    int sms = 0;
    CU_CHECK(gpu_drv()->cuDeviceGet(&dev, 0));
    CU_CHECK(gpu_drv()->cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev));
    return sms;
}

/* Views of device memory: 2-D with a row stride (elements), 3-D contiguous. */
static inline kiln_tensor tensor2d(void *data, kiln_dtype dtype, int64_t d0, int64_t d1,
                                   int64_t stride0)
{
    kiln_tensor t = {.data = data, .dtype = dtype, .ndim = 2, .shape = {d0, d1}};
    t.strides[0] = stride0;
    t.strides[1] = 1;
    return t;
}

static inline kiln_tensor tensor3d(void *data, kiln_dtype dtype, int64_t d0, int64_t d1, int64_t d2)
{
    return (kiln_tensor){.data = data, .dtype = dtype, .ndim = 3, .shape = {d0, d1, d2}};
}

/* A device context for the tests, or exit 77 (skip) when there is no GPU. */
static inline kiln_ctx *gpu_ctx_or_skip(void)
{
    /* KILN_TEST_FILTER=pattern (cmocka wildcards) runs only the matching tests, and
     * KILN_TEST_SKIP=pattern all but those: device time is scarce, and a call that checks
     * one new operator (or a host-only change) need not rerun the rest. */
#ifdef cmocka_unit_test /* test programs only; the benchmarks share this header */
    const char *filter = getenv("KILN_TEST_FILTER"), *skip = getenv("KILN_TEST_SKIP");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    if (skip && *skip)
        cmocka_set_skip_filter(skip);
#endif
    int count = 0;
    kiln_device_count(&count);
    if (count == 0) {
        printf("no CUDA device: skipping\n");
        exit(GPU_SKIP);
    }
    kiln_options opts;
    if (kiln_options_init(&opts) != KILN_OK) {
        fprintf(stderr, "%s\n", kiln_last_errmsg());
        exit(1);
    }
    opts.device = 0;
    kiln_ctx *ctx = NULL;
    if (kiln_ctx_create(&ctx, &opts) != KILN_OK) {
        fprintf(stderr, "kiln_ctx_create: %s\n", kiln_last_errmsg());
        exit(1);
    }
    CUdevice dev;
    CUcontext primary;
    CU_CHECK(gpu_drv()->cuDeviceGet(&dev, 0));
    CU_CHECK(gpu_drv()->cuDevicePrimaryCtxRetain(&primary, dev));
    CU_CHECK(gpu_drv()->cuCtxSetCurrent(primary));
    return ctx;
}

static inline int gpu_remove_dir(const char *dir)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

/* Serving-mode tests: a fresh cache directory (its path written into dir) prewarmed with
 * spec_line by a compile-only context, and a KILN_JIT=0 context on device 0 over it;
 * NULL, with a message and the directory removed, if a step fails. After
 * kiln_ctx_destroy, gpu_remove_dir(dir). */
static inline kiln_ctx *gpu_jit_off_ctx(char dir[32], const char *spec_line)
{
    snprintf(dir, 32, "/tmp/kiln-serve-XXXXXX");
    kiln_options opts;
    kiln_ctx *offline = NULL, *server = NULL;
    if (mkdtemp(dir) == NULL || kiln_options_init(&opts) != KILN_OK)
        return NULL;
    opts.cache_path = dir;
    opts.device = KILN_DEVICE_NONE;
    kiln_status status = kiln_ctx_create(&offline, &opts);
    if (status == KILN_OK && (status = kiln_prewarm(offline, spec_line, NULL)) != KILN_OK)
        fprintf(stderr, "prewarm %s: %s\n", spec_line, kiln_ctx_errmsg(offline));
    kiln_ctx_destroy(offline);
    opts.device = 0;
    opts.jit = 0;
    if (status == KILN_OK)
        status = kiln_ctx_create(&server, &opts);
    if (status != KILN_OK)
        gpu_remove_dir(dir);
    return status == KILN_OK ? server : NULL;
}

static inline void *gpu_alloc(size_t bytes)
{
    CUdeviceptr p = 0;
    CU_CHECK(gpu_drv()->cuMemAlloc(&p, bytes ? bytes : 1));
    return (void *)(uintptr_t)p;
}
static inline void gpu_free(void *p)
{
    if (p != NULL)
        CU_CHECK(gpu_drv()->cuMemFree((CUdeviceptr)(uintptr_t)p));
}
/* gpu_upload and gpu_poison wait until their bytes are in device memory: cuMemcpyHtoD from
 * pageable memory may return before its DMA lands and cuMemsetD32 runs asynchronously, both on
 * the legacy stream, which work on a CU_STREAM_NON_BLOCKING stream does not wait for (stop 46:
 * a graph replayed on such a stream right after gpu_poison found poison in rows it had
 * written). */
static inline void gpu_upload(void *dst, const void *src, size_t bytes)
{
    CU_CHECK(gpu_drv()->cuMemcpyHtoD((CUdeviceptr)(uintptr_t)dst, src, bytes));
    CU_CHECK(gpu_drv()->cuCtxSynchronize());
}
static inline void gpu_download(void *dst, const void *src, size_t bytes)
{
    CU_CHECK(gpu_drv()->cuMemcpyDtoH(dst, (CUdeviceptr)(uintptr_t)src, bytes));
}
/* Fill with a 32-bit pattern (0x7fc00000: a NaN for f32; 0xffffffff: NaN for e4m3/bf16). */
static inline void gpu_poison(void *p, size_t bytes, uint32_t pattern)
{
    CU_CHECK(gpu_drv()->cuMemsetD32((CUdeviceptr)(uintptr_t)p, pattern, bytes / 4));
    CU_CHECK(gpu_drv()->cuCtxSynchronize());
}
static inline void gpu_sync(void)
{
    CU_CHECK(gpu_drv()->cuCtxSynchronize());
}

/* Worker threads for the host-side loops of the tests (data, references): one per CPU, at
 * most 64. */
static inline long host_threads(void)
{
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    return threads < 1 ? 1 : threads > 64 ? 64 : threads;
}

/* A fresh seed per run (time and pid), printed so a failing run can be replayed. */
static inline uint64_t rng_fresh_seed(void)
{
    uint64_t seed = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
    printf("seed %llu\n", (unsigned long long)seed);
    return seed;
}

/* xorshift64*: fresh streams per run come from the seed the caller picks. */
static inline uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}
static inline double rng_uniform(uint64_t *s) /* [0, 1) */
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}
static inline double rng_normal(uint64_t *s)
{
    double u = rng_uniform(s) + 1e-300, v = rng_uniform(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static inline float bf16_to_float(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t float_to_bf16(float f) /* round to nearest even; finite inputs */
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* E4M3 (fn: no infinities, 0x7f/0xff NaN, max 448), round to nearest even, saturating. */
static inline uint8_t float_to_e4m3(float x)
{
    uint8_t sign = signbit(x) ? 0x80 : 0;
    float a = fabsf(x);
    if (isnan(x))
        return sign | 0x7f;
    if (a >= 464.0f)
        return sign | 0x7e;
    if (a < 0.015625f) /* below 2^-6: subnormals in steps of 2^-9 (8 of them = 2^-6) */
        return sign | (uint8_t)nearbyintf(a * 512.0f);
    int e;
    frexpf(a, &e);
    int exponent = e - 1; /* a = 1.m * 2^exponent */
    float mantissa = ldexpf(a, -exponent) - 1.0f;
    int m = (int)nearbyintf(mantissa * 8.0f);
    if (m == 8) {
        m = 0;
        exponent++;
    }
    int code = ((exponent + 7) << 3) | m;
    return sign | (uint8_t)(code > 0x7e ? 0x7e : code);
}
static inline double e4m3_to_double(uint8_t v)
{
    int sign = v >> 7, exponent = (v >> 3) & 15, m = v & 7;
    if (exponent == 15 && m == 7)
        return NAN;
    double mag = exponent == 0 ? ldexp(m, -9) : ldexp(8 + m, exponent - 10);
    return sign ? -mag : mag;
}

#endif
