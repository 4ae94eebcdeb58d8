/* What the GEMM benchmarks share: the cuBLASLt baseline's handle, workspace and plan, and
 * the timing loop (CUDA events around BATCHES batches of BATCH launches, median batch,
 * after one warm-up batch; with --single, lone launches for a profiler). Each benchmark is
 * one translation unit that includes this once, after its data header (which brings
 * gpu_util.h); bench_grouped.h adds what the grouped modes share. */
#ifndef KILN_TOOLS_BENCH_COMMON_H
#define KILN_TOOLS_BENCH_COMMON_H

#include <cublasLt.h>
#include <limits.h>

#include "bench_clock.h"

enum { BATCH = 20, BATCHES = 15, MAX_SETS = 12, MAX_SHAPES = 32 };

/* --single: BATCHES + 2 launches per measurement on one operand set, each one alone on the
 * stream (synchronized before and after), for a profiler that flushes the caches to time
 * (scripts/profile-single.sh: REFERENCE.md's anchors are the profiler's kernel times of
 * lone launches). The event times this mode prints include the host's launch call, so they
 * are upper bounds, not kernel times (far above them for decode sizes); the profiler's are. */
static bool bench_single;

/* Launches before the timed ones with --single: 2, or as many as there are operand sets
 * when more than one is forced (each set's first read in the process is slower; stop 38). */
static int bench_single_warm_up = 2;

/* The integer in environment variable `name` (fallback when unset); false, with a message
 * naming it, when it is not one. The benchmarks' knobs go through it, so that a typo stops
 * the run instead of measuring something else. */
static bool bench_env_int(const char *name, int fallback, int *out)
{
    const char *text = getenv(name);
    char *end = NULL;
    long value = text != NULL ? strtol(text, &end, 10) : fallback;
    if (text != NULL && (end == text || *end != '\0' || value < INT_MIN || value > INT_MAX)) {
        fprintf(stderr, "%s=%s: not an integer\n", name, text);
        return false;
    }
    *out = (int)value;
    return true;
}

/* Operand sets for the launches to rotate over: enough to pass 200 MB (at least `minimum`,
 * at most MAX_SETS), so the 60 MB L2 cannot serve repeats. With --single, one: the profiler
 * flushes the caches before each launch itself, and with rotating sets the first run in the
 * process made the first reads of most sets, which cost it (stop 38, ncu, five decode
 * shapes: medians 0.7-3.6% slower, ranges wider than on one set the warm-up had read). */
static inline int bench_clamp_sets(int sets, int minimum)
{
    return sets < minimum ? minimum : sets > MAX_SETS ? MAX_SETS : sets;
}

static inline int bench_operand_sets(double bytes_per_set, int minimum)
{
    return bench_single ? 1 : bench_clamp_sets((int)(200e6 / bytes_per_set + 1), minimum);
}

static inline void bench_single_banner(bool json)
{
    if (bench_single && !json)
        printf("# --single: lone launches; the times below include the host's launch call, not "
               "kernel times (scripts/profile-single.sh gives the profiler's)\n");
}

/* The benchmarks' command line: --json, --quick, --single, the benchmark's own flags (names
 * in flags[], NULL-terminated, each setting set[i]) and up to MAX_SHAPES MxNxK shapes. False
 * on anything else (the caller prints its usage). */
typedef struct bench_cli {
    bool json, quick;
    int64_t shapes[MAX_SHAPES][3];
    int num_shapes;
} bench_cli;

static bool bench_parse(int argc, char **argv, const char *const *flags, bool *set, bench_cli *cli)
{
    *cli = (bench_cli){0};
    for (int i = 1; i < argc; i++) {
        long long m, n, k;
        int f = 0;
        while (flags[f] != NULL && strcmp(argv[i], flags[f]) != 0)
            f++;
        if (flags[f] != NULL)
            set[f] = true;
        else if (strcmp(argv[i], "--json") == 0)
            cli->json = true;
        else if (strcmp(argv[i], "--quick") == 0)
            cli->quick = true;
        else if (strcmp(argv[i], "--single") == 0)
            bench_single = true;
        else if (sscanf(argv[i], "%lldx%lldx%lld", &m, &n, &k) == 3 &&
                 cli->num_shapes < MAX_SHAPES) {
            int64_t *s = cli->shapes[cli->num_shapes++];
            s[0] = m, s[1] = n, s[2] = k;
        } else {
            return false;
        }
    }
    return true;
}

static cublasLtHandle_t lt;
static void *lt_workspace;
static const size_t lt_workspace_bytes = 64u << 20;

#define LT_CHECK(call)                                                                         \
    do {                                                                                       \
        cublasStatus_t st_ = (call);                                                           \
        if (st_ != CUBLAS_STATUS_SUCCESS) {                                                    \
            fprintf(stderr, "%s:%d: %s: status %d\n", __FILE__, __LINE__, #call, (int)st_);   \
            return false;                                                                      \
        }                                                                                      \
    } while (0)

typedef struct lt_plan {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
    bool ok;
} lt_plan;

/* With p's descriptor and layouts made: cuBLASLt's first heuristic pick for them. */
static inline bool lt_plan_pick(lt_plan *p)
{
    cublasLtMatmulPreference_t pref;
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                  &lt_workspace_bytes, sizeof lt_workspace_bytes));
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, p->op, p->la, p->lb, p->ld, p->ld, pref,
                                                       1, &h, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0) {
        p->algo = h.algo;
        p->ok = true;
    }
    return p->ok;
}

static inline void lt_plan_free(lt_plan *p)
{
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->la) cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
    if (p->ld) cublasLtMatrixLayoutDestroy(p->ld);
}

/* cuBLASLt's handle and workspace for the whole run. */
static inline bool lt_open(void)
{
    if (cublasLtCreate(&lt) != CUBLAS_STATUS_SUCCESS)
        return false;
    lt_workspace = gpu_alloc(lt_workspace_bytes);
    return true;
}

static inline void lt_close(void)
{
    gpu_free(lt_workspace);
    cublasLtDestroy(lt);
}

/* qsort comparators, ascending: cmp_float, cmp_double, cmp_unsigned. */
#define BENCH_ASCENDING(name, type)                                                           \
    static inline int name(const void *a, const void *b)                                      \
    {                                                                                         \
        type x = *(const type *)a, y = *(const type *)b;                                      \
        return (x > y) - (x < y);                                                             \
    }
BENCH_ASCENDING(cmp_float, float)
BENCH_ASCENDING(cmp_double, double)
BENCH_ASCENDING(cmp_unsigned, unsigned)

/* Launch number `index` of a timed sequence; false when it cannot run. */
typedef bool (*launch_fn)(void *user, int index, CUstream stream);

/* The median SM clock (MHz; 0: unknown) over the batches of the last time_batches, each
 * read once the batch is queued, while it runs (bench_clock.h). NVML's reading lags the
 * load: on the H200 (stop 12) batches of 2-5 ms still read the idle boost clock (1965-1980
 * MHz) and only the ~19 ms batches of 4096x7168x16384 read the capped one (1350-1440); for
 * the clock under load use KILN_SAMPLE_CLOCKS=1 (scripts/device-check.sh). The call costs
 * host time while the queued batch runs, not GPU time. */
static unsigned bench_batch_mhz;

/* Median microseconds per launch: CUDA events around BATCHES batches of BATCH launches,
 * after one warm-up batch; with --single, batches of one launch after two warm-up launches
 * (each batch starts on a drained stream either way); -1 when a launch fails. */
static inline double time_batches(launch_fn launch, void *user, CUstream stream)
{
    const kiln__driver *drv = gpu_drv();
    const int per_batch = bench_single ? 1 : BATCH;
    const int warm_up = bench_single ? bench_single_warm_up : 1;
    CUevent start, stop;
    CU_CHECK(drv->cuEventCreate(&start, 0));
    CU_CHECK(drv->cuEventCreate(&stop, 0));
    float ms[BATCHES];
    unsigned mhz[BATCHES];
    double us = -1;
    bench_batch_mhz = 0;
    for (int b = -warm_up; b < BATCHES; b++) {
        CU_CHECK(drv->cuEventRecord(start, stream));
        for (int i = 0; i < per_batch; i++)
            if (!launch(user, (b + warm_up) * per_batch + i, stream))
                goto done;
        CU_CHECK(drv->cuEventRecord(stop, stream));
        if (b >= 0)
            mhz[b] = bench_sm_clock_mhz();
        CU_CHECK(drv->cuEventSynchronize(stop));
        if (b >= 0)
            CU_CHECK(drv->cuEventElapsedTime(&ms[b], start, stop));
    }
    qsort(ms, BATCHES, sizeof ms[0], cmp_float);
    us = ms[BATCHES / 2] * 1e3 / per_batch;
    qsort(mhz, BATCHES, sizeof mhz[0], cmp_unsigned);
    bench_batch_mhz = mhz[BATCHES / 2];
done:
    CU_CHECK(drv->cuStreamSynchronize(stream));
    CU_CHECK(drv->cuEventDestroy(start));
    CU_CHECK(drv->cuEventDestroy(stop));
    return us;
}

#endif
