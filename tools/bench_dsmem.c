/* kiln-bench-dsmem: how fast the CTAs of a cluster move bytes into each other's shared memory.
 *
 * The GEMMs' K split over a cluster (common/cluster_reduce.cuh) ends each tile with a
 * reduce-scatter: every CTA sends (CK - 1) / CK of its FP32 partial sums to its partners
 * (st.async from registers, counted on the partner's mbarrier) and adds what it receives.
 * Traces put it at ~6 bytes per SM clock each way when every SM reduces at once (~1.2-1.4 us
 * at the decode shapes, ~4 us for a 128 x 128 tile in clusters of 4). This program times that
 * exchange alone, each workload compiled with its numbers as constants: every CTA (one per
 * SM) sends BYTES / CK to each partner per round, ROUNDS times, and waits for what it
 * receives; rounds are separated by a cluster barrier.
 *   METHOD 0: st.async of 16 bytes per thread (THREADS threads), as the GEMMs do;
 *   METHOD 1: cp.async.bulk shared::cta -> shared::cluster, chunks of CHUNK bytes, one
 *             thread issuing (the bytes staged in the sender's shared memory first).
 * Printed per workload, the median of three launches: bytes sent per SM clock (mean over the
 * CTAs; each receives as many) and the cycles one round takes.
 * Usage: kiln-bench-dsmem [SMS:CK:KB:METHOD:THREADS:CHUNK ...] (KB: each CTA's partial sums,
 * KB; CHUNK: bulk copies' bytes); no argument: a default set. */
#include "../tests/gpu_util.h"
#include "bench_nvrtc.h"

enum { ROUNDS = 64, RUNS = 3, SMEM_MAX = 226 * 1024 };

/* In pieces (C11 compilers need not take string literals over 4095 bytes); the workload's
 * constants CK, BYTES, METHOD, THREADS, CHUNK and ROUNDS come first. */
static const char *const dsmem_source[] = {
    "constexpr unsigned PART = BYTES / CK; /* bytes for each rank */\n"
    "__device__ __forceinline__ void cluster_sync() {\n"
    "    asm volatile(\"barrier.cluster.arrive.release;\\nbarrier.cluster.wait.acquire;\"\n"
    "                 ::: \"memory\");\n"
    "}\n"
    "__device__ __forceinline__ unsigned map_rank(unsigned addr, unsigned rank) {\n"
    "    unsigned r;\n"
    "    asm volatile(\"mapa.shared::cluster.u32 %0, %1, %2;\" : \"=r\"(r)\n"
    "                 : \"r\"(addr), \"r\"(rank));\n"
    "    return r;\n"
    "}\n"
    "__device__ __forceinline__ void wait_parity(unsigned bar, unsigned parity) {\n"
    "    unsigned done = 0;\n"
    "    while (!done)\n"
    "        asm volatile(\"{ .reg .pred p; mbarrier.try_wait.parity.acquire.cluster\"\n"
    "                     \".shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }\"\n"
    "                     : \"=r\"(done)\n"
    "                     : \"r\"(bar), \"r\"(parity) : \"memory\");\n"
    "}\n",
    /* send: the staged partial sums (bulk) or registers' values (st.async); recv: (CK - 1)
     * slots of PART bytes, one per partner; out: per CTA its start and end clock64 */
    "extern \"C\" __global__ void __launch_bounds__(THREADS) exchange(unsigned long long *out) {\n"
    "    extern __shared__ __align__(1024) unsigned char smem[];\n"
    "    __shared__ __align__(8) unsigned long long ready;\n"
    "    const unsigned send = ((unsigned)__cvta_generic_to_shared(smem) + 1023) & ~1023u;\n"
    "    const unsigned recv = send + BYTES;\n"
    "    const unsigned bar = (unsigned)__cvta_generic_to_shared(&ready);\n"
    "    unsigned rank;\n"
    "    asm volatile(\"mov.u32 %0, %%cluster_ctarank;\" : \"=r\"(rank));\n"
    "    if (threadIdx.x == 0) {\n"
    "        asm volatile(\"mbarrier.init.shared::cta.b64 [%0], 1;\" :: \"r\"(bar));\n"
    "        asm volatile(\"fence.mbarrier_init.release.cluster;\" ::: \"memory\");\n"
    "    }\n"
    "    for (unsigned i = threadIdx.x * 4; i < BYTES; i += THREADS * 4)\n"
    "        asm volatile(\"st.shared.u32 [%0], %1;\" :: \"r\"(send + i),\n"
    "                     \"r\"(i * 2654435761u));\n"
    "    asm volatile(\"fence.proxy.async.shared::cta;\" ::: \"memory\");\n"
    "    __syncthreads();\n"
    "    cluster_sync();\n"
    "    const unsigned long long t0 = clock64();\n"
    "    float x = (float)threadIdx.x;\n"
    "    for (int round = 0; round < ROUNDS; ++round) {\n"
    "        if (threadIdx.x == 0)\n"
    "            asm volatile(\"mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\"\n"
    "                         :: \"r\"(bar), \"r\"((CK - 1) * PART) : \"memory\");\n"
    /* the expect_tx must be set before any partner's bytes arrive: a cluster barrier */
    "        cluster_sync();\n"
    "        for (unsigned p = 1; p < CK; ++p) {\n"
    "            const unsigned to = (rank + p) % CK;\n"
    "            const unsigned slot = recv + (p - 1) * PART; /* where `to` keeps our part */\n"
    "            const unsigned dst = map_rank(slot, to), rbar = map_rank(bar, to);\n"
    "            if constexpr (METHOD == 0) {\n"
    "                for (unsigned i = threadIdx.x * 16; i < PART; i += THREADS * 16)\n"
    "                    asm volatile(\"st.async.shared::cluster.mbarrier::complete_tx::bytes\"\n"
    "                                 \".v4.f32 [%0], {%1, %2, %3, %4}, [%5];\"\n"
    "                                 :: \"r\"(dst + i), \"f\"(x), \"f\"(x + 1.f),\n"
    "                                    \"f\"(x + 2.f), \"f\"(x + 3.f), \"r\"(rbar)\n"
    "                                 : \"memory\");\n"
    "            } else if (threadIdx.x == 0) {\n"
    "                for (unsigned i = 0; i < PART; i += CHUNK)\n"
    "                    asm volatile(\"cp.async.bulk.shared::cluster.shared::cta\"\n"
    "                                 \".mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\"\n"
    "                                 :: \"r\"(dst + i), \"r\"(send + to * PART + i),\n"
    "                                    \"r\"(PART - i < CHUNK ? PART - i : CHUNK), \"r\"(rbar)\n"
    "                                 : \"memory\");\n"
    "            }\n"
    "        }\n"
    "        wait_parity(bar, (unsigned)(round & 1));\n"
    "        x += 1.0f;\n"
    "    }\n"
    "    const unsigned long long t1 = clock64();\n"
    "    cluster_sync(); /* no CTA leaves while a partner may still send to it */\n"
    "    if (threadIdx.x == 0) {\n"
    "        out[2 * blockIdx.x] = t0;\n"
    "        out[2 * blockIdx.x + 1] = t1;\n"
    "    }\n"
    "}\n",
};

typedef struct workload {
    int sms, ck, kb, method, threads, chunk;
} workload;

static int smem_bytes(const workload *w)
{
    return 2 * w->kb * 1024 + 1024; /* send + receive slots (at most (CK - 1) / CK of it) */
}

static bool parse_workload(const char *arg, workload *w)
{
    if (sscanf(arg, "%d:%d:%d:%d:%d:%d", &w->sms, &w->ck, &w->kb, &w->method, &w->threads,
               &w->chunk) != 6)
        return false;
    return (w->ck == 2 || w->ck == 4 || w->ck == 8) && w->sms >= w->ck && w->sms % w->ck == 0 &&
           w->sms <= 1024 && w->kb >= 1 && (w->kb * 1024) % (16 * w->ck) == 0 &&
           smem_bytes(w) <= SMEM_MAX && (w->method == 0 || w->method == 1) &&
           w->threads >= 32 && w->threads <= 1024 && w->threads % 32 == 0 && w->chunk >= 16 &&
           w->chunk % 16 == 0;
}

static char *compile_exchange(const workload *w)
{
    char defines[256];
    snprintf(defines, sizeof defines,
             "#define CK %du\n#define BYTES %du\n#define METHOD %d\n#define THREADS %d\n"
             "#define CHUNK %du\n#define ROUNDS %d\n",
             w->ck, w->kb * 1024, w->method, w->threads, w->chunk, ROUNDS);
    char *src = bench_join(defines, dsmem_source, sizeof dsmem_source / sizeof dsmem_source[0]);
    char *cubin = bench_nvrtc_cubin(src, "DSMEM exchange kernel", NULL);
    free(src);
    return cubin;
}

static void launch(CUfunction f, const workload *w, CUdeviceptr out)
{
    void *args[] = {&out};
    CUlaunchAttribute cluster = {.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION};
    cluster.value.clusterDim.x = (unsigned)w->ck;
    cluster.value.clusterDim.y = cluster.value.clusterDim.z = 1;
    const int smem = smem_bytes(w) > 120 * 1024 ? smem_bytes(w) : 120 * 1024; /* 1 CTA / SM */
    CUlaunchConfig cfg = {.gridDimX = (unsigned)w->sms, .gridDimY = 1, .gridDimZ = 1,
                          .blockDimX = (unsigned)w->threads, .blockDimY = 1, .blockDimZ = 1,
                          .sharedMemBytes = (unsigned)smem, .attrs = &cluster, .numAttrs = 1};
    CU_CHECK(gpu_drv()->cuLaunchKernelEx(&cfg, f, args, NULL));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int default_set(workload *work, int sms)
{
    /* the decode reductions (64 x 72 FP32 at clusters of 4: 18 KB; 64 x 112 at 2: 28 KB),
     * then a 128 x 128 prefill tile (64 KB) at 4, each by st.async and by bulk copies */
    static const int shapes[][2] = {{4, 18}, {2, 28}, {8, 36}, {4, 64}};
    int n = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int ck = shapes[i][0], kb = shapes[i][1], all = sms / 8 * 8;
        work[n++] = (workload){all, ck, kb, 0, 256, 16};
        work[n++] = (workload){all, ck, kb, 1, 256, 4096};
        work[n++] = (workload){all, ck, kb, 1, 256, 16384};
        work[n++] = (workload){8, ck, kb, 0, 256, 16};
        work[n++] = (workload){8, ck, kb, 1, 256, 16384};
    }
    return n;
}

int main(int argc, char **argv)
{
    workload work[64];
    int num_work = 0;
    for (int i = 1; i < argc && num_work < 64; i++)
        if (!parse_workload(argv[i], &work[num_work++])) {
            fprintf(stderr, "usage: kiln-bench-dsmem [SMS:CK:KB:METHOD:THREADS:CHUNK ...]\n"
                            "  (CK 2, 4 or 8 dividing SMS; KB x 1024 a multiple of 16 x CK; "
                            "METHOD 0 st.async, 1 bulk copies of CHUNK bytes)\n");
            return 2;
        }
    /* the kernel compiles before any GPU is touched, so a machine without one checks it */
    const workload check = {8, 4, 64, 1, 256, 4096};
    free(compile_exchange(num_work > 0 ? &work[0] : &check));
    kiln_ctx *ctx = gpu_ctx_or_skip();
    const int sms = gpu_sm_count();
    if (num_work == 0)
        num_work = default_set(work, sms);
    CUdeviceptr out = (CUdeviceptr)(uintptr_t)gpu_alloc(1024 * 2 * sizeof(uint64_t));
    uint64_t *times = malloc(1024 * 2 * sizeof(uint64_t));
    printf("# %d SMs; %d rounds per launch; median of %d launches after a warm-up\n", sms,
           ROUNDS, RUNS);
    printf("%-26s %12s %12s\n", "sms:ck:KB:method:thr:chunk", "B/clk sent", "clk/round");
    for (int i = 0; i < num_work; i++) {
        const workload *w = &work[i];
        char label[64];
        snprintf(label, sizeof label, "%d:%d:%d:%d:%d:%d", w->sms, w->ck, w->kb, w->method,
                 w->threads, w->chunk);
        if (w->sms > sms) {
            printf("%-26s needs more SMs than the GPU has\n", label);
            continue;
        }
        CUmodule module;
        CUfunction f = bench_load(compile_exchange(w), "exchange", SMEM_MAX, &module);
        launch(f, w, out); /* warm-up */
        CU_CHECK(gpu_drv()->cuCtxSynchronize());
        double rate[RUNS], cycles[RUNS];
        const double sent = (double)ROUNDS * (w->ck - 1) * (w->kb * 1024 / w->ck);
        for (int r = 0; r < RUNS; r++) {
            launch(f, w, out);
            CU_CHECK(gpu_drv()->cuCtxSynchronize());
            gpu_download(times, (void *)(uintptr_t)out, (size_t)w->sms * 2 * sizeof(uint64_t));
            double c = 0;
            for (int b = 0; b < w->sms; b++)
                c += (double)(times[2 * b + 1] - times[2 * b]) / w->sms;
            cycles[r] = c / ROUNDS;
            rate[r] = sent / c;
        }
        CU_CHECK(gpu_drv()->cuModuleUnload(module));
        qsort(rate, RUNS, sizeof rate[0], cmp_double);
        qsort(cycles, RUNS, sizeof cycles[0], cmp_double);
        printf("%-26s %12.1f %12.0f\n", label, rate[RUNS / 2], cycles[RUNS / 2]);
        fflush(stdout);
    }
    free(times);
    gpu_free((void *)(uintptr_t)out);
    kiln_ctx_destroy(ctx);
    return 0;
}
