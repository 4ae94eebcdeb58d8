/* kiln-bench-ingest: how fast TMA boxes from L2 land in the SMs' shared memory.
 *
 * The GEMMs' loads-only runs (docs/gemm_bf16_notes.md "Stop 69") found every BF16 kernel as
 * slow as its loads, with one SM taking in ~45-53 bytes a clock where cuBLASLt's kernel
 * takes ~59. This program times loads alone, to say what caps them: each CTA (one per SM)
 * walks STEPS K blocks, each a stage of BOXES TMA boxes of ROWS x 128 bytes (the 128-byte
 * swizzle, as the GEMMs' maps), through a ring of STAGES slots; ISSUERS threads (one per
 * warp) take the stages in turn and issue them, one more thread waits for each slot and hands
 * it back. The operand is L2-resident (a few MB, read once before the timed runs). Each
 * workload is compiled on its own with its numbers as constants, so the issuing thread runs
 * about the code a GEMM's producer would (stop 70: with them as kernel arguments its
 * per-stage code took 650-1100 cycles and set the rate, whatever the ring's depth).
 *   MC > 1: clusters of MC CTAs share every box (TMA multicast): each CTA loads 1/MC of its
 *           rows into all of them, so the L2 serves a box once per cluster.
 *   SAME 1: every cluster reads the same rows (as every n tile reads A); 0: each its own.
 * Each CTA times itself with clock64 (cycles between its first issue and its last slot)
 * and %globaltimer; printed per workload, the median of three launches: bytes per SM clock
 * (mean, min and max over the CTAs), the SM clock, and the chip's rate into the SMs (each
 * CTA's bytes over its own time, summed) and out of the L2 (that / MC).
 * Usage: kiln-bench-ingest [SMS:ROWS:BOXES:STAGES:MC:SAME:ISSUERS ...]; no argument: a set
 * that varies one thing at a time from the BF16 64 x 64 tile's loads (64:2:13).
 * KILN_INGEST_K_BLOCKS=N: K blocks of 128 bytes per row (default 4; the row pitch). At 1024
 * (= the K blocks each CTA walks) nothing is read twice: GBs of operand, read from DRAM.
 * KILN_INGEST_CUBIN=FILE: the last workload's cubin is written there (for its SASS). */
#include "../tests/gpu_util.h"
#include "bench_nvrtc.h"

enum { STEPS = 1024, RUNS = 3, SMEM_MAX = 226 * 1024, MIN_SMEM = 120 * 1024 };

/* In pieces (C11 compilers need not take string literals over 4095 bytes); the workload's
 * constants SHARE_ROWS, BOXES, STAGES, MC, SAME, ISSUERS, STEPS and K_BLOCKS come first. */
static const char *const ingest_source[] = {
    "struct __align__(64) tmap { unsigned long long v[16]; };\n"
    "constexpr unsigned BOX_BYTES = SHARE_ROWS * MC * 128, SLOT = BOX_BYTES * BOXES;\n"
    "__device__ __forceinline__ unsigned long long gtimer() {\n"
    "    unsigned long long t;\n"
    "    asm volatile(\"mov.u64 %0, %%globaltimer;\" : \"=l\"(t));\n"
    "    return t;\n"
    "}\n"
    "__device__ __forceinline__ void cluster_sync() {\n"
    "    asm volatile(\"barrier.cluster.arrive.release;\\nbarrier.cluster.wait.acquire;\"\n"
    "                 ::: \"memory\");\n"
    "}\n"
    "__device__ __forceinline__ void wait_parity(unsigned bar, unsigned parity) {\n"
    "    unsigned done = 0;\n"
    "    while (!done)\n"
    "        asm volatile(\"{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1],\"\n"
    "                     \" %2; selp.u32 %0, 1, 0, p; }\" : \"=r\"(done) : \"r\"(bar),\n"
    "                     \"r\"(parity) : \"memory\");\n"
    "}\n"
    "__device__ __forceinline__ void issue(const tmap *tm, unsigned dst, int kc, int row,\n"
    "                                      unsigned bar) {\n"
    "    if constexpr (MC > 1)\n"
    "        asm volatile(\"cp.async.bulk.tensor.2d.shared::cluster.global\"\n"
    "                     \".mbarrier::complete_tx::bytes.multicast::cluster\"\n"
    "                     \" [%0], [%1, {%2, %3}], [%4], %5;\"\n"
    "                     :: \"r\"(dst), \"l\"(tm), \"r\"(kc), \"r\"(row), \"r\"(bar),\n"
    "                        \"h\"((unsigned short)((1u << MC) - 1)) : \"memory\");\n"
    "    else\n"
    "        asm volatile(\"cp.async.bulk.tensor.2d.shared::cluster.global\"\n"
    "                     \".mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\"\n"
    "                     :: \"r\"(dst), \"l\"(tm), \"r\"(kc), \"r\"(row), \"r\"(bar)\n"
    "                     : \"memory\");\n"
    "}\n",
    /* out: per CTA its start and end clock64, then its start and end %globaltimer */
    "extern \"C\" __global__ void __launch_bounds__(32 * (ISSUERS + 1))\n"
    "ingest(const __grid_constant__ tmap tm, unsigned long long *out, unsigned *sink) {\n"
    "    extern __shared__ __align__(1024) unsigned char ring[];\n"
    "    __shared__ __align__(8) unsigned long long bar[2 * STAGES];\n"
    "    const unsigned ring0 = ((unsigned)__cvta_generic_to_shared(ring) + 1023) & ~1023u;\n"
    "    const unsigned full0 = (unsigned)__cvta_generic_to_shared(bar);\n"
    "    const unsigned empty0 = full0 + 8 * STAGES;\n"
    "    unsigned rank = 0;\n"
    "    if constexpr (MC > 1) asm volatile(\"mov.u32 %0, %%cluster_ctarank;\" : \"=r\"(rank));\n"
    "    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;\n"
    "    if (threadIdx.x == 0) {\n"
    "        for (int s = 0; s < STAGES; ++s) {\n"
    "            asm volatile(\"mbarrier.init.shared::cta.b64 [%0], 1;\"\n"
    "                         :: \"r\"(full0 + 8 * s));\n"
    "            asm volatile(\"mbarrier.init.shared::cta.b64 [%0], %1;\"\n"
    "                         :: \"r\"(empty0 + 8 * s), \"r\"(MC));\n"
    "        }\n"
    "        asm volatile(\"fence.mbarrier_init.release.cluster;\" ::: \"memory\");\n"
    "        asm volatile(\"prefetch.tensormap [%0];\" :: \"l\"(&tm) : \"memory\");\n"
    "    }\n"
    "    __syncthreads();\n"
    "    cluster_sync(); /* every CTA's barriers are set before any multicast lands */\n"
    "    const int row0 = SAME ? 0 : (int)(blockIdx.x / MC) * BOXES * SHARE_ROWS * MC;\n"
    "    if (warp >= 1 && lane == 0) { /* issuer warp - 1 takes every ISSUERS-th stage */\n"
    "#pragma unroll 1\n"
    "        for (int k = warp - 1; k < STEPS; k += ISSUERS) {\n"
    "            const unsigned s = (unsigned)(k % STAGES), full = full0 + 8 * s;\n"
    "            if (k >= STAGES) wait_parity(empty0 + 8 * s, (unsigned)((k / STAGES - 1) & 1));\n"
    "            asm volatile(\"mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\"\n"
    "                         :: \"r\"(full), \"r\"(SLOT) : \"memory\");\n"
    "            const int kc = k % K_BLOCKS * 128;\n"
    "#pragma unroll\n"
    "            for (int j = 0; j < BOXES; ++j)\n"
    "                issue(&tm, ring0 + s * SLOT + j * BOX_BYTES + rank * SHARE_ROWS * 128, kc,\n"
    "                      row0 + (j * MC + (int)rank) * SHARE_ROWS, full);\n"
    "        }\n",
    "    } else if (warp == 0 && lane == 0) {\n"
    "        const unsigned long long t0 = clock64(), g0 = gtimer();\n"
    "        unsigned acc = 0;\n"
    "#pragma unroll 1\n"
    "        for (int k = 0; k < STEPS; ++k) {\n"
    "            const unsigned s = (unsigned)(k % STAGES);\n"
    "            wait_parity(full0 + 8 * s, (unsigned)((k / STAGES) & 1));\n"
    "            unsigned v;\n"
    "            asm volatile(\"ld.shared.u32 %0, [%1];\" : \"=r\"(v) : \"r\"(ring0 + s * SLOT)\n"
    "                         : \"memory\");\n"
    "            acc ^= v;\n"
    /* the slot is free again once every CTA that writes into it (all of the cluster's,
     * under multicast) has read it */
    "            asm volatile(\"mbarrier.arrive.shared::cta.b64 _, [%0];\"\n"
    "                         :: \"r\"(empty0 + 8 * s) : \"memory\");\n"
    "            for (int r = 1; r < MC; ++r)\n"
    "                asm volatile(\"{\\n.reg .b32 ra;\\nmapa.shared::cluster.u32 ra, %0, %1;\\n\"\n"
    "                             \"mbarrier.arrive.shared::cluster.b64 _, [ra];\\n}\\n\"\n"
    "                             :: \"r\"(empty0 + 8 * s), \"r\"((rank + r) % MC) : \"memory\");\n"
    "        }\n"
    "        const unsigned long long t1 = clock64(), g1 = gtimer();\n"
    "        unsigned long long *o = out + 4 * blockIdx.x;\n"
    "        o[0] = t0; o[1] = t1; o[2] = g0; o[3] = g1;\n"
    "        if (acc == 0x9e3779b9u) sink[0] = acc;\n"
    "    }\n"
    "    __syncwarp();\n"
    "    cluster_sync(); /* no CTA leaves while a peer may still arrive on its barriers */\n"
    "}\n",
};

typedef struct workload {
    int sms, rows, boxes, stages, mc, same, issuers;
} workload;

static bool parse_workload(const char *arg, workload *w)
{
    if (sscanf(arg, "%d:%d:%d:%d:%d:%d:%d", &w->sms, &w->rows, &w->boxes, &w->stages, &w->mc,
               &w->same, &w->issuers) != 7)
        return false;
    return w->mc >= 1 && w->mc <= 8 && (w->mc & (w->mc - 1)) == 0 && w->sms >= w->mc &&
           w->sms % w->mc == 0 && w->sms <= 1024 && w->rows >= 8 && w->rows <= 256 &&
           w->rows % (8 * w->mc) == 0 && w->boxes >= 1 && w->boxes <= 8 && w->stages >= 1 &&
           w->stages <= 32 && w->stages * w->boxes * w->rows * 128 + 1024 <= SMEM_MAX &&
           (w->same == 0 || w->same == 1) && w->issuers >= 1 && w->issuers <= 4;
}

static int k_blocks(void)
{
    const char *v = getenv("KILN_INGEST_K_BLOCKS");
    int n = v ? atoi(v) : 4;
    return n >= 1 && n <= 1024 ? n : 4;
}

/* The kernel with w's numbers as constants. */
static char *compile_ingest(const workload *w)
{
    char defines[256];
    snprintf(defines, sizeof defines,
             "#define SHARE_ROWS %d\n#define BOXES %d\n#define STAGES %d\n"
             "#define MC %d\n#define SAME %d\n#define ISSUERS %d\n"
             "#define STEPS %d\n#define K_BLOCKS %d\n",
             w->rows / w->mc, w->boxes, w->stages, w->mc, w->same, w->issuers, STEPS,
             k_blocks());
    char *src = bench_join(defines, ingest_source, sizeof ingest_source / sizeof ingest_source[0]);
    size_t size = 0;
    char *cubin = bench_nvrtc_cubin(src, "ingest kernel", &size);
    const char *dump = getenv("KILN_INGEST_CUBIN");
    FILE *f = dump ? fopen(dump, "wb") : NULL;
    if (f) {
        fwrite(cubin, 1, size, f);
        fclose(f);
    }
    free(src);
    return cubin;
}

static int rows_total(const workload *w)
{
    return w->same ? w->boxes * w->rows : w->sms / w->mc * w->boxes * w->rows;
}

/* The rows x (k_blocks() x 128 bytes) operand at base, in boxes of one CTA's share of a box. */
static CUtensorMap ingest_map(const workload *w, CUdeviceptr base)
{
    CUtensorMap map;
    cuuint64_t dims[2] = {(cuuint64_t)k_blocks() * 128, (cuuint64_t)rows_total(w)};
    cuuint64_t strides[1] = {(cuuint64_t)k_blocks() * 128};
    cuuint32_t box[2] = {128, (cuuint32_t)(w->rows / w->mc)}, unit[2] = {1, 1};
    CU_CHECK(gpu_drv()->cuTensorMapEncodeTiled(
        &map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, (void *)(uintptr_t)base, dims, strides, box, unit,
        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
        CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
    return map;
}

static void launch(CUfunction f, const workload *w, const CUtensorMap *map, CUdeviceptr out,
                   CUdeviceptr sink)
{
    void *args[] = {(void *)map, &out, &sink};
    int ring = w->stages * w->boxes * w->rows * 128 + 1024;
    CUlaunchAttribute cluster = {.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION};
    cluster.value.clusterDim.x = (unsigned)w->mc;
    cluster.value.clusterDim.y = cluster.value.clusterDim.z = 1;
    CUlaunchConfig cfg = {.gridDimX = (unsigned)w->sms, .gridDimY = 1, .gridDimZ = 1,
                          .blockDimX = 32 * (unsigned)(w->issuers + 1),
                          .blockDimY = 1, .blockDimZ = 1,
                          /* one CTA per SM whatever the ring */
                          .sharedMemBytes = (unsigned)(ring > MIN_SMEM ? ring : MIN_SMEM),
                          .attrs = &cluster, .numAttrs = 1};
    CU_CHECK(gpu_drv()->cuLaunchKernelEx(&cfg, f, args, NULL));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct ingest_figures {
    double mean_bpc, min_bpc, max_bpc, mhz, into_sms_tbs, from_l2_tbs;
} ingest_figures;

static ingest_figures measure(const workload *w, const uint64_t *t)
{
    ingest_figures f = {.min_bpc = 1e30};
    double bytes = (double)STEPS * w->boxes * w->rows * 128, cycles = 0, ns = 0;
    for (int c = 0; c < w->sms; c++) {
        const uint64_t *o = t + 4 * c;
        double bpc = bytes / (double)(o[1] - o[0]);
        f.mean_bpc += bpc / w->sms;
        f.min_bpc = bpc < f.min_bpc ? bpc : f.min_bpc;
        f.max_bpc = bpc > f.max_bpc ? bpc : f.max_bpc;
        /* each CTA's own rate, summed: a cluster launch starts its CTAs over a span that
         * would understate the chip's rate */
        f.into_sms_tbs += bytes / (double)(o[3] - o[2]) / 1e3;
        cycles += (double)(o[1] - o[0]);
        ns += (double)(o[3] - o[2]);
    }
    f.mhz = 1e3 * cycles / ns;
    f.from_l2_tbs = f.into_sms_tbs / w->mc;
    return f;
}

/* The default set: the BF16 64 x 64 tile's loads (two 64-row boxes a K block, 13 stages),
 * then one thing changed at a time. */
static int default_set(workload *work, int sms)
{
    const workload base = {sms / 8 * 8 /* clusters of up to 8 fit */, 64, 2, 13, 1, 0, 1};
    int n = 0;
    const int counts[] = {1, 27, 54, 108};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        work[n] = base;
        work[n++].sms = counts[i];
    }
    work[n++] = base;
    work[n] = base;
    work[n++].same = 1;
    for (int mc = 2; mc <= 8; mc *= 2) {
        work[n] = base;
        work[n++].mc = mc;
    }
    for (int stages = 2; stages <= 8; stages *= 2) {
        work[n] = base;
        work[n++].stages = stages;
    }
    for (int issuers = 2; issuers <= 4; issuers *= 2) {
        work[n] = base;
        work[n++].issuers = issuers;
    }
    work[n] = base; /* two K blocks a stage */
    work[n].boxes = 4;
    work[n++].stages = 6;
    work[n] = base; /* the 128 x 128 tile's loads */
    work[n].rows = 128;
    work[n++].stages = 6;
    work[n] = work[n - 1];
    work[n++].issuers = 2;
    return n;
}

int main(int argc, char **argv)
{
    workload work[64];
    int num_work = 0;
    for (int i = 1; i < argc && num_work < 64; i++)
        if (!parse_workload(argv[i], &work[num_work++])) {
            fprintf(stderr, "usage: kiln-bench-ingest [SMS:ROWS:BOXES:STAGES:MC:SAME:ISSUERS ...]"
                            "\n  (MC 1, 2, 4 or 8 dividing SMS; ROWS a multiple of 8 x MC; "
                            "ISSUERS 1-4; the ring within %d KB)\n",
                    SMEM_MAX / 1024);
            return 2;
        }
    /* the kernel compiles before any GPU is touched, so a machine without one checks it */
    const workload check = {8, 64, 2, 13, 2, 0, 2};
    free(compile_ingest(num_work > 0 ? &work[0] : &check));
    kiln_ctx *ctx = gpu_ctx_or_skip();
    const int sms = gpu_sm_count();
    if (num_work == 0)
        num_work = default_set(work, sms);
    int max_rows = 0, max_sms = 0;
    for (int i = 0; i < num_work; i++) {
        max_rows = rows_total(&work[i]) > max_rows ? rows_total(&work[i]) : max_rows;
        max_sms = work[i].sms > max_sms ? work[i].sms : max_sms;
    }
    size_t buf_bytes = (size_t)max_rows * (size_t)k_blocks() * 128;
    CUdeviceptr buf = (CUdeviceptr)(uintptr_t)gpu_alloc(buf_bytes);
    CUdeviceptr out = (CUdeviceptr)(uintptr_t)gpu_alloc((size_t)max_sms * 4 * sizeof(uint64_t));
    CUdeviceptr sink = (CUdeviceptr)(uintptr_t)gpu_alloc(64);
    /* one random word everywhere: the rate does not depend on the bytes, and a large
     * operand (KILN_INGEST_K_BLOCKS=1024: GBs, read from DRAM) fills at once */
    uint64_t seed = rng_fresh_seed();
    CU_CHECK(gpu_drv()->cuMemsetD32(buf, (unsigned)rng_next(&seed), buf_bytes / 4));
    uint64_t *times = malloc((size_t)max_sms * 4 * sizeof(uint64_t));

    printf("# %d SMs; %d K blocks per CTA over rows of %d K blocks (%zu MB in all); median of %d "
           "launches after a warm-up; B/clk: bytes into one SM per SM clock\n", sms, STEPS,
           k_blocks(), buf_bytes >> 20, RUNS);
    printf("%-24s %8s %8s %8s %6s %9s %9s\n", "sms:rows:boxes:st:mc:same:iss", "B/clk", "min",
           "max", "MHz", "SMs TB/s", "L2 TB/s");
    for (int i = 0; i < num_work; i++) {
        const workload *w = &work[i];
        char label[48];
        snprintf(label, sizeof label, "%d:%d:%d:%d:%d:%d:%d", w->sms, w->rows, w->boxes,
                 w->stages, w->mc, w->same, w->issuers);
        if (w->sms > sms) {
            printf("%-24s needs more SMs than the GPU has\n", label);
            continue;
        }
        CUmodule module;
        CUfunction f = bench_load(compile_ingest(w), "ingest", SMEM_MAX, &module);
        CUtensorMap map = ingest_map(w, buf);
        launch(f, w, &map, out, sink); /* the warm-up also brings the operand into L2 */
        CU_CHECK(gpu_drv()->cuCtxSynchronize());
        ingest_figures runs[RUNS];
        double order[RUNS];
        for (int r = 0; r < RUNS; r++) {
            launch(f, w, &map, out, sink);
            CU_CHECK(gpu_drv()->cuCtxSynchronize());
            gpu_download(times, (void *)(uintptr_t)out, (size_t)w->sms * 4 * sizeof(uint64_t));
            runs[r] = measure(w, times);
            order[r] = runs[r].into_sms_tbs;
        }
        CU_CHECK(gpu_drv()->cuModuleUnload(module));
        qsort(order, RUNS, sizeof order[0], cmp_double);
        const ingest_figures *med = &runs[0];
        for (int r = 0; r < RUNS; r++)
            if (runs[r].into_sms_tbs == order[RUNS / 2])
                med = &runs[r];
        printf("%-24s %8.1f %8.1f %8.1f %6.0f %9.2f %9.2f\n", label, med->mean_bpc, med->min_bpc,
               med->max_bpc, med->mhz, med->into_sms_tbs, med->from_l2_tbs);
        fflush(stdout);
    }
    free(times);
    gpu_free((void *)(uintptr_t)buf);
    gpu_free((void *)(uintptr_t)out);
    gpu_free((void *)(uintptr_t)sink);
    kiln_ctx_destroy(ctx);
    return 0;
}
