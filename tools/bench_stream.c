/* kiln-bench-stream: the DRAM read ceiling, the "speed of light" of a decode GEMM.
 *
 * At M <= 128 a GEMM's time is reading B (and A, its scales) from DRAM plus a launch's fixed
 * costs. This program times kernels that do nothing but read the same byte counts, so a
 * GEMM's figure can be set against what reading its bytes alone takes on this GPU:
 *   ldg   every thread streams 16-byte loads (ld.global.nc), four in flight per thread
 *   bulk  one thread per CTA (one CTA per SM) streams 1-D bulk copies (cp.async.bulk; by
 *         default 32 KB, six in flight) into a ring of shared-memory slots
 *   tile  B as a GEMM loads it: TMA boxes of a tile's rows x one K block (128 bytes) through
 *         a tensor map with the 128-byte swizzle, or several K blocks per box
 *   async the same tiles copied by the CTA's threads with 16-byte cp.async (no TMA), their
 *         completions counted on the slots' mbarriers
 * The bulk and tile reads read one word of each copy as it lands.
 * Per read: lone launches after an L2 flush (events, so the host's launch call is in them)
 * and 20 launches back to back over places 256 MB apart in all (events around the batch).
 * With --single each read is launched 17 times alone for a profiler (ncu flushes the caches
 * before each launch): scripts/stream-profile.sh reads its kernel times.
 * Usage: kiln-bench-stream [--single] [MB | bulk:MB:CHUNK:SLOTS:SLICED |
 *                                      NxK:ROWS:PARTS:STAGES[:DEPTH] |
 *                                      async:NxK:ROWS:PARTS:STAGES:THREADS ...]
 *   MB: the default ldg and bulk reads of that many MB; bulk:...: parse_bulk; NxK:...: a tile
 *   read (parse_tile); async:...: parse_async. Default: the B sizes of the DeepSeek decode
 *   shapes in FP8 and BF16 and larger streams, then B read as kiln's M = 64 decode picks
 *   read it.
 * KILN_STREAM_L2_PROMOTION=0|64|128|256: the tile reads' tensor-map L2 promotion (256, as
 * kiln's maps). docs/gemm_fp8_notes.md "Stop 52" has what it measured (the async reads:
 * "Stop 56"). */
#include "../tests/gpu_util.h"
#include "bench_nvrtc.h"

/* RING x CHUNK: the default bulk read's copies in flight and their size */
enum { LONE_RUNS = 30, BATCH_RUNS = 20, SINGLE_RUNS = 17, RING = 6, CHUNK = 32768 };
/* a tile read's ring with its 1024-byte alignment slack, beside the static barriers */
enum { TILE_SMEM_MAX = 226 * 1024 };

static const char *const stream_source[] = {
    "struct v4 { unsigned x, y, z, w; };\n"
    "__device__ __forceinline__ v4 load_nc(const v4 *p) {\n"
    "    v4 v;\n"
    "    asm volatile(\"ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\"\n"
    "                 : \"=r\"(v.x), \"=r\"(v.y), \"=r\"(v.z), \"=r\"(v.w) : \"l\"(p));\n"
    "    return v;\n"
    "}\n"
    /* The XOR of everything read goes to sink only if it equals a value random data will
     * not give, so the loads cannot be dropped and nothing is written in practice. */
    "extern \"C\" __global__ void __launch_bounds__(512) read_ldg(const v4 *p,\n"
    "        unsigned long long n, unsigned *sink) {\n"
    "    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;\n"
    "    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    unsigned acc = 0;\n"
    "    for (; i + 3 * stride < n; i += 4 * stride) {\n"
    "        const v4 a = load_nc(p + i), b = load_nc(p + i + stride);\n"
    "        const v4 c = load_nc(p + i + 2 * stride), d = load_nc(p + i + 3 * stride);\n"
    "        acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w;\n"
    "        acc ^= c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;\n"
    "    }\n"
    "    for (; i < n; i += stride) {\n"
    "        const v4 a = load_nc(p + i);\n"
    "        acc ^= a.x ^ a.y ^ a.z ^ a.w;\n"
    "    }\n"
    "    if (acc == 0x9e3779b9u) sink[0] = acc;\n"
    "}\n",
    /* Chunks of `chunk` bytes, chunk j to CTA j % gridDim.x (or, sliced, each CTA a run of
     * neighbouring chunks); thread 0 keeps `slots` copies in flight, each completing on its
     * slot's mbarrier (expect_tx, complete_tx). */
    "extern \"C\" __global__ void __launch_bounds__(32) read_bulk(const char *p,\n"
    "        unsigned long long bytes, unsigned chunk, int slots, int sliced, unsigned *sink) {\n"
    "    extern __shared__ __align__(128) unsigned char ring[];\n"
    "    __shared__ __align__(8) unsigned long long bar[32];\n"
    "    if (threadIdx.x != 0) return;\n"
    "    const unsigned ring0 = (unsigned)__cvta_generic_to_shared(ring);\n"
    "    const unsigned bar0 = (unsigned)__cvta_generic_to_shared(bar);\n"
    "    for (int s = 0; s < slots; ++s)\n"
    "        asm volatile(\"mbarrier.init.shared::cta.b64 [%0], 1;\" :: \"r\"(bar0 + 8 * s));\n"
    "    asm volatile(\"fence.mbarrier_init.release.cluster;\" ::: \"memory\");\n"
    "    const unsigned long long chunks = (bytes + chunk - 1) / chunk;\n"
    "    const unsigned long long per_cta = (chunks + gridDim.x - 1) / gridDim.x;\n"
    "    const unsigned long long first = sliced ? blockIdx.x * per_cta : blockIdx.x;\n"
    "    const unsigned long long step = sliced ? 1 : gridDim.x;\n"
    "    unsigned long long end = sliced ? first + per_cta : chunks;\n"
    "    end = end < chunks ? end : chunks;\n"
    "    unsigned long long k = 0;\n"
    "    unsigned acc = 0;\n"
    "    for (unsigned long long j = first; j < end; j += step, ++k) {\n"
    "        const unsigned s = (unsigned)(k % slots), b = bar0 + 8 * s;\n"
    "        if (k >= (unsigned)slots)\n"
    "            acc ^= arrived(ring0 + s * chunk, b, (unsigned)((k / slots - 1) & 1));\n"
    "        const unsigned long long off = j * chunk;\n"
    "        const unsigned len = (unsigned)(bytes - off < chunk ? bytes - off : chunk);\n"
    "        asm volatile(\"mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\"\n"
    "                     :: \"r\"(b), \"r\"(len) : \"memory\");\n"
    "        asm volatile(\"cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes\"\n"
    "                     \" [%0], [%1], %2, [%3];\"\n"
    "                     :: \"r\"(ring0 + s * chunk), \"l\"(p + off), \"r\"(len), \"r\"(b)\n"
    "                     : \"memory\");\n"
    "    }\n"
    /* the last copies (up to one per slot) are still in flight: wait for each */
    "    for (unsigned long long r = k > (unsigned)slots ? k - slots : 0; r < k; ++r)\n"
    "        acc ^= arrived(ring0 + (unsigned)(r % slots) * chunk, bar0 + 8 * (unsigned)(r % slots),\n"
    "                       (unsigned)((r / slots) & 1));\n"
    "    if (acc == 0x9e3779b9u) sink[0] = acc;\n"
    "}\n",
    /* B as the GEMM loads it: boxes of `rows` rows x 128 bytes (one K block) through a
     * tensor map with the 128-byte swizzle, unit u = (n tile, K part) walking its K blocks
     * through a ring of `stages` slots; units go round the CTAs (grid <= SMs). A box may
     * take `depth` K blocks at once (a 3-D map: 128 bytes, rows, K blocks), which the slot
     * then holds one after the other. */
    "struct __align__(64) tmap { unsigned long long v[16]; };\n"
    "extern \"C\" __global__ void __launch_bounds__(32) read_tile(const __grid_constant__ tmap tm,\n"
    "        int n_tiles, int k_blocks, int k_parts, int rows, int stages, int depth,\n"
    "        unsigned *sink) {\n"
    "    extern __shared__ __align__(1024) unsigned char ring[];\n"
    "    __shared__ __align__(8) unsigned long long bar[32];\n"
    "    if (threadIdx.x != 0) return;\n"
    "    const unsigned ring0 = ((unsigned)__cvta_generic_to_shared(ring) + 1023) & ~1023u;\n"
    "    const unsigned bar0 = (unsigned)__cvta_generic_to_shared(bar);\n"
    "    for (int s = 0; s < stages; ++s)\n"
    "        asm volatile(\"mbarrier.init.shared::cta.b64 [%0], 1;\" :: \"r\"(bar0 + 8 * s));\n"
    "    asm volatile(\"fence.mbarrier_init.release.cluster;\" ::: \"memory\");\n"
    "    const unsigned slot = (unsigned)(rows * 128 * depth);\n"
    "    const int per_part = k_blocks / k_parts;\n"
    "    unsigned long long k = 0;\n"
    "    unsigned acc = 0;\n"
    "    for (int u = blockIdx.x; u < n_tiles * k_parts; u += gridDim.x) {\n"
    "        const int nt = u / k_parts, kb0 = u % k_parts * per_part;\n"
    "        for (int kb = 0; kb < per_part; kb += depth, ++k) {\n"
    "            const unsigned s = (unsigned)(k % stages), b = bar0 + 8 * s;\n"
    "            if (k >= (unsigned)stages)\n"
    "                acc ^= arrived(ring0 + s * slot, b, (unsigned)((k / stages - 1) & 1));\n"
    "            asm volatile(\"mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\"\n"
    "                         :: \"r\"(b), \"r\"(slot) : \"memory\");\n"
    "            asm volatile(\"cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes\"\n"
    "                         \" [%0], [%1, {%2, %3, %4}], [%5];\"\n"
    "                         :: \"r\"(ring0 + s * slot), \"l\"(&tm), \"r\"(0), \"r\"(nt * rows),\n"
    "                            \"r\"(kb0 + kb), \"r\"(b) : \"memory\");\n"
    "        }\n"
    "    }\n"
    "    for (unsigned long long r = k > (unsigned)stages ? k - stages : 0; r < k; ++r)\n"
    "        acc ^= arrived(ring0 + (unsigned)(r % stages) * slot, bar0 + 8 * (unsigned)(r % stages),\n"
    "                       (unsigned)((r / stages) & 1));\n"
    "    if (acc == 0x9e3779b9u) sink[0] = acc;\n"
    "}\n",
    /* The same tiles read by the CTA's threads with 16-byte cp.async (LDGSTS, no TMA):
     * each thread copies its share of a slot's rows x 8 chunks into the slot (128-byte
     * swizzle, as a GEMM would want it) and hands its completions to the slot's mbarrier
     * (cp.async.mbarrier.arrive.noinc; the barrier counts every thread). */
    "extern \"C\" __global__ void __launch_bounds__(256) read_async(const char *b,\n"
    "        int n, int k, int n_tiles, int k_parts, int rows, int stages, unsigned *sink) {\n"
    "    extern __shared__ __align__(1024) unsigned char ring[];\n"
    "    __shared__ __align__(8) unsigned long long bar[32];\n"
    "    const unsigned ring0 = ((unsigned)__cvta_generic_to_shared(ring) + 1023) & ~1023u;\n"
    "    const unsigned bar0 = (unsigned)__cvta_generic_to_shared(bar);\n"
    "    if (threadIdx.x == 0) {\n"
    "        for (int s = 0; s < stages; ++s)\n"
    "            asm volatile(\"mbarrier.init.shared::cta.b64 [%0], %1;\"\n"
    "                         :: \"r\"(bar0 + 8 * s), \"r\"(blockDim.x));\n"
    "        asm volatile(\"fence.mbarrier_init.release.cluster;\" ::: \"memory\");\n"
    "    }\n"
    "    __syncthreads();\n"
    "    const unsigned slot = (unsigned)(rows * 128);\n"
    "    const int per_part = k / 128 / k_parts, chunks = rows * 8;\n"
    "    unsigned long long kk = 0;\n"
    "    unsigned acc = 0;\n"
    "    for (int u = blockIdx.x; u < n_tiles * k_parts; u += gridDim.x) {\n"
    "        const int nt = u / k_parts, kb0 = u % k_parts * per_part;\n"
    "        for (int kb = 0; kb < per_part; ++kb, ++kk) {\n"
    "            const unsigned s = (unsigned)(kk % stages), bb = bar0 + 8 * s;\n"
    "            if (kk >= (unsigned)stages)\n"
    "                acc ^= arrived(ring0 + s * slot, bb, (unsigned)((kk / stages - 1) & 1));\n"
    "            for (int c = threadIdx.x; c < chunks; c += blockDim.x) {\n"
    "                const int r = c / 8, q = c % 8, row = nt * rows + r;\n"
    "                if (row >= n) continue;\n"
    "                const char *src = b + (unsigned long long)row * k\n"
    "                                  + (unsigned long long)(kb0 + kb) * 128 + q * 16;\n"
    "                const unsigned dst = ring0 + s * slot + r * 128 + ((q ^ (r % 8)) * 16);\n"
    "                asm volatile(\"cp.async.cg.shared.global [%0], [%1], 16;\"\n"
    "                             :: \"r\"(dst), \"l\"(src) : \"memory\");\n"
    "            }\n"
    "            asm volatile(\"cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\"\n"
    "                         :: \"r\"(bb) : \"memory\");\n"
    "        }\n"
    "    }\n"
    "    for (unsigned long long r = kk > (unsigned)stages ? kk - stages : 0; r < kk; ++r)\n"
    "        acc ^= arrived(ring0 + (unsigned)(r % stages) * slot, bar0 + 8 * (unsigned)(r % stages),\n"
    "                       (unsigned)((r / stages) & 1));\n"
    "    if (acc == 0x9e3779b9u) sink[0] = acc;\n"
    "}\n",
};

static const char *const stream_prelude =
    "__device__ __forceinline__ void wait_parity(unsigned bar, unsigned parity) {\n"
    "    unsigned done = 0;\n"
    "    while (!done)\n"
    "        asm volatile(\"{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\"\n"
    "                     \" selp.u32 %0, 1, 0, p; }\" : \"=r\"(done) : \"r\"(bar), \"r\"(parity)\n"
    "                     : \"memory\");\n"
    "}\n"
    /* waits for a slot's copy and reads its first word (the data did arrive) */
    "__device__ __forceinline__ unsigned arrived(unsigned slot, unsigned bar, unsigned parity) {\n"
    "    wait_parity(bar, parity);\n"
    "    unsigned v;\n"
    "    asm volatile(\"ld.shared.u32 %0, [%1];\" : \"=r\"(v) : \"r\"(slot) : \"memory\");\n"
    "    return v;\n"
    "}\n";

/* The kernels' cubin (compiled before any GPU is touched, so a machine without one still
 * checks that they compile). */
static char *compile_stream_kernels(void)
{
    char *src = bench_join(stream_prelude, stream_source,
                           sizeof stream_source / sizeof stream_source[0]);
    char *cubin = bench_nvrtc_cubin(src, "stream kernels", NULL);
    free(src);
    return cubin;
}

/* One timed read: a kernel over `bytes` bytes of the buffer; tile reads view them as B,
 * n x k bytes, in boxes of `rows` rows over k_parts K ranges through `stages` slots. */
typedef struct workload {
    const char *kernel; /* "ldg", "bulk", "tile" or "async" */
    unsigned long long bytes;
    int n, k, rows, k_parts, stages;
    int depth;      /* tile reads: K blocks per box; async reads: threads per CTA */
    unsigned chunk; /* bulk reads: bytes per copy (slots: stages), each CTA a slice or not */
    int sliced;
} workload;

typedef struct gpu_kernels {
    CUfunction ldg, bulk, tile, async;
    int sms;
} gpu_kernels;

/* The tensor map of a tile read whose B starts at base (uint8, 128-byte swizzle, as the
 * GEMM's B map). */
static CUtensorMap tile_map(const workload *w, CUdeviceptr base)
{
    CUtensorMap map;
    /* B [n][k] as (128 bytes, rows, K blocks): a box of depth K blocks lands them one after
     * the other, each as the 2-D map's box would */
    cuuint64_t dims[3] = {128, (cuuint64_t)w->n, (cuuint64_t)(w->k / 128)};
    cuuint64_t strides[2] = {(cuuint64_t)w->k, 128};
    cuuint32_t box[3] = {128, (cuuint32_t)w->rows, (cuuint32_t)w->depth}, unit[3] = {1, 1, 1};
    /* KILN_STREAM_L2_PROMOTION=0/64/128/256 (bytes): the map's L2 promotion (kiln's: 256) */
    const char *promo = getenv("KILN_STREAM_L2_PROMOTION");
    int promo_bytes = promo ? atoi(promo) : 256;
    CUtensorMapL2promotion promotion = promo_bytes == 0     ? CU_TENSOR_MAP_L2_PROMOTION_NONE
                                       : promo_bytes == 64  ? CU_TENSOR_MAP_L2_PROMOTION_L2_64B
                                       : promo_bytes == 128 ? CU_TENSOR_MAP_L2_PROMOTION_L2_128B
                                                            : CU_TENSOR_MAP_L2_PROMOTION_L2_256B;
    CU_CHECK(gpu_drv()->cuTensorMapEncodeTiled(
        &map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 3, (void *)(uintptr_t)base, dims, strides, box, unit,
        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
        promotion, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
    return map;
}

static void launch(const gpu_kernels *g, const workload *w, CUdeviceptr base,
                   const CUtensorMap *map, CUdeviceptr sink, CUstream stream)
{
    CUlaunchConfig cfg = {.gridDimY = 1, .gridDimZ = 1, .blockDimY = 1, .blockDimZ = 1,
                          .hStream = stream};
    unsigned long long count = w->bytes / 16;
    int n_tiles = w->rows > 0 ? (w->n + w->rows - 1) / w->rows : 0, k_blocks = w->k / 128;
    void *ldg_args[] = {&base, &count, &sink};
    void *bulk_args[] = {&base, (void *)&w->bytes, (void *)&w->chunk, (void *)&w->stages,
                         (void *)&w->sliced, &sink};
    void *tile_args[] = {(void *)map, &n_tiles, &k_blocks, (void *)&w->k_parts,
                         (void *)&w->rows, (void *)&w->stages, (void *)&w->depth, &sink};
    void *async_args[] = {&base, (void *)&w->n, (void *)&w->k, &n_tiles, (void *)&w->k_parts,
                          (void *)&w->rows, (void *)&w->stages, &sink};
    if (strcmp(w->kernel, "ldg") == 0) {
        cfg.gridDimX = (unsigned)g->sms * 4;
        cfg.blockDimX = 512;
        CU_CHECK(gpu_drv()->cuLaunchKernelEx(&cfg, g->ldg, ldg_args, NULL));
    } else if (strcmp(w->kernel, "bulk") == 0) {
        cfg.gridDimX = (unsigned)g->sms;
        cfg.blockDimX = 32;
        cfg.sharedMemBytes = w->chunk * (unsigned)w->stages;
        CU_CHECK(gpu_drv()->cuLaunchKernelEx(&cfg, g->bulk, bulk_args, NULL));
    } else if (strcmp(w->kernel, "async") == 0) {
        int units = n_tiles * w->k_parts;
        cfg.gridDimX = (unsigned)(units < g->sms ? units : g->sms);
        cfg.blockDimX = (unsigned)w->depth;
        cfg.sharedMemBytes = (unsigned)(w->stages * w->rows * 128 + 1024);
        CU_CHECK(gpu_drv()->cuLaunchKernelEx(&cfg, g->async, async_args, NULL));
    } else {
        int units = n_tiles * w->k_parts;
        cfg.gridDimX = (unsigned)(units < g->sms ? units : g->sms);
        cfg.blockDimX = 32;
        cfg.sharedMemBytes = (unsigned)(w->stages * w->rows * 128 * w->depth + 1024);
        CU_CHECK(gpu_drv()->cuLaunchKernelEx(&cfg, g->tile, tile_args, NULL));
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static workload bulk_read(unsigned long long bytes, unsigned chunk, int slots, int sliced)
{
    return (workload){.kernel = "bulk", .bytes = bytes, .chunk = chunk, .stages = slots,
                      .sliced = sliced};
}

/* "bulk:MB:CHUNK:SLOTS:SLICED", e.g. bulk:117.44:14336:8:1 (14 KB copies, 8 in flight, each
 * CTA a slice of neighbouring chunks). */
static bool parse_bulk(const char *arg, workload *w)
{
    double mb = 0;
    unsigned chunk = 0;
    int slots = 0, sliced = 0;
    if (sscanf(arg, "bulk:%lf:%u:%d:%d", &mb, &chunk, &slots, &sliced) != 4 || mb <= 0 ||
        mb > 4096 || chunk < 16 || chunk % 16 != 0 || slots < 1 || slots > 32 ||
        (unsigned long long)chunk * (unsigned)slots > TILE_SMEM_MAX || sliced < 0 || sliced > 1)
        return false;
    *w = bulk_read((unsigned long long)(mb * 1e6) / 16 * 16, chunk, slots, sliced);
    return true;
}

/* "async:NxK:ROWS:PARTS:STAGES:THREADS": the tile read by cp.async instead of TMA. */
static bool parse_async(const char *arg, workload *w)
{
    *w = (workload){.kernel = "async"};
    if (sscanf(arg, "async:%dx%d:%d:%d:%d:%d", &w->n, &w->k, &w->rows, &w->k_parts, &w->stages,
               &w->depth) != 6)
        return false;
    if (w->n < 1 || w->k < 128 || w->k % 128 != 0 || w->rows < 8 || w->rows > 256 ||
        w->k_parts < 1 || (w->k / 128) % w->k_parts != 0 || w->stages < 1 || w->stages > 32 ||
        w->depth < 32 || w->depth > 256 || w->depth % 32 != 0 ||
        w->stages * w->rows * 128 + 1024 > TILE_SMEM_MAX)
        return false;
    w->bytes = (unsigned long long)w->n * (unsigned long long)w->k;
    return true;
}

/* "NxK:ROWS:PARTS:STAGES[:DEPTH]", e.g. 7168x16384:112:2:8 (kiln's 64x7168x16384 pick's B
 * tiles); DEPTH: K blocks per box (1). */
static bool parse_tile(const char *arg, workload *w)
{
    *w = (workload){.kernel = "tile", .depth = 1};
    if (sscanf(arg, "%dx%d:%d:%d:%d:%d", &w->n, &w->k, &w->rows, &w->k_parts, &w->stages,
               &w->depth) < 5)
        return false;
    if (w->n < 1 || w->k < 128 || w->k % 128 != 0 || w->rows < 8 || w->rows > 256 ||
        w->k_parts < 1 || (w->k / 128) % w->k_parts != 0 || w->stages < 1 || w->stages > 32 ||
        w->depth < 1 || w->depth > 8 || (w->k / 128 / w->k_parts) % w->depth != 0 ||
        w->stages * w->rows * 128 * w->depth + 1024 > TILE_SMEM_MAX)
        return false;
    w->bytes = (unsigned long long)w->n * (unsigned long long)w->k;
    return true;
}

int main(int argc, char **argv)
{
    bool single = false;
    workload work[64];
    int num_work = 0;
    for (int i = 1; i < argc && num_work < 62; i++) {
        char *end = NULL;
        double mb = strtod(argv[i], &end);
        if (strcmp(argv[i], "--single") == 0) {
            single = true;
        } else if (end != argv[i] && *end == '\0' && mb > 0 && mb <= 4096) {
            unsigned long long bytes = (unsigned long long)(mb * 1e6) / 16 * 16;
            work[num_work++] = (workload){.kernel = "ldg", .bytes = bytes};
            work[num_work++] = bulk_read(bytes, CHUNK, RING, 0);
        } else if (strncmp(argv[i], "bulk:", 5) == 0    ? !parse_bulk(argv[i], &work[num_work++])
                   : strncmp(argv[i], "async:", 6) == 0 ? !parse_async(argv[i], &work[num_work++])
                                                        : !parse_tile(argv[i], &work[num_work++])) {
            fprintf(stderr, "usage: kiln-bench-stream [--single] "
                            "[MB | bulk:MB:CHUNK:SLOTS:SLICED | NxK:ROWS:PARTS:STAGES[:DEPTH] |\n"
                            "  async:NxK:ROWS:PARTS:STAGES:THREADS ...]\n");
            return 2;
        }
    }
    if (num_work == 0) {
        /* B of 2112x7168, 7168x2048, 32768x512, 4096x7168, 24576x1536, 7168x16384 in FP8,
         * 7168x16384 in BF16, then larger streams (940 MB: 32 masked groups of (4096, 7168)) */
        static const double sizes_mb[] = {15.14, 14.68, 16.78, 29.36, 37.75, 117.44,
                                          234.88, 939.5, 2048};
        for (size_t i = 0; i < sizeof sizes_mb / sizeof sizes_mb[0]; i++) {
            unsigned long long bytes = (unsigned long long)(sizes_mb[i] * 1e6) / 16 * 16;
            work[num_work++] = (workload){.kernel = "ldg", .bytes = bytes};
            work[num_work++] = bulk_read(bytes, CHUNK, RING, 0);
        }
        /* the same B as kiln's M = 64 decode picks load it (tile rows, K parts, stages) */
        static const char *const picks[] = {"2112x7168:72:4:12", "7168x2048:56:1:14",
                                            "32768x512:128:1:8", "4096x7168:64:2:12",
                                            "24576x1536:192:1:6", "7168x16384:112:2:8"};
        for (size_t i = 0; i < sizeof picks / sizeof picks[0]; i++)
            parse_tile(picks[i], &work[num_work++]);
    }
    char *cubin = compile_stream_kernels();
    kiln_ctx *ctx = gpu_ctx_or_skip();
    gpu_kernels g = {0};
    g.sms = gpu_sm_count();
    CUmodule module;
    CU_CHECK(gpu_drv()->cuModuleLoadData(&module, cubin));
    free(cubin);
    CU_CHECK(gpu_drv()->cuModuleGetFunction(&g.ldg, module, "read_ldg"));
    CU_CHECK(gpu_drv()->cuModuleGetFunction(&g.bulk, module, "read_bulk"));
    CU_CHECK(gpu_drv()->cuModuleGetFunction(&g.tile, module, "read_tile"));
    CU_CHECK(gpu_drv()->cuModuleGetFunction(&g.async, module, "read_async"));
    CU_CHECK(gpu_drv()->cuFuncSetAttribute(g.async, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                           TILE_SMEM_MAX));
    CU_CHECK(gpu_drv()->cuFuncSetAttribute(g.bulk, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                           TILE_SMEM_MAX));
    CU_CHECK(gpu_drv()->cuFuncSetAttribute(g.tile, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                           TILE_SMEM_MAX));

    /* Batches rotate over places in the buffer 200 MB or more apart in all, so that the
     * L2 serves no repeat; the buffer holds the largest read that many times over. */
    unsigned long long largest = 0;
    for (int i = 0; i < num_work; i++)
        largest = work[i].bytes > largest ? work[i].bytes : largest;
    const unsigned long long rotation = 256ull << 20;
    size_t buf_bytes = (size_t)(largest + rotation + CHUNK);
    const size_t flush_bytes = 256u << 20; /* written before each lone launch: 4x the L2 */
    CUdeviceptr buf = (CUdeviceptr)(uintptr_t)gpu_alloc(buf_bytes);
    CUdeviceptr flush = (CUdeviceptr)(uintptr_t)gpu_alloc(flush_bytes);
    CUdeviceptr sink = (CUdeviceptr)(uintptr_t)gpu_alloc(64);
    /* random words, so the XOR guards cannot be predicted */
    uint64_t seed = rng_fresh_seed();
    size_t words = buf_bytes / 4;
    uint32_t *host = malloc(1u << 24);
    for (size_t done = 0; done < words;) {
        size_t n = words - done < (1u << 22) ? words - done : (1u << 22);
        for (size_t w = 0; w < n; w++)
            host[w] = (uint32_t)rng_next(&seed);
        gpu_upload((char *)(uintptr_t)buf + done * 4, host, n * 4);
        done += n;
    }
    free(host);

    CUstream stream;
    CUevent start, stop;
    CU_CHECK(gpu_drv()->cuStreamCreate(&stream, 0));
    CU_CHECK(gpu_drv()->cuEventCreate(&start, 0));
    CU_CHECK(gpu_drv()->cuEventCreate(&stop, 0));
    printf("# %d SMs; lone: median of %d launches, each after an L2 flush (events: the host's "
           "launch call included); batch: %d launches back to back, rotating over %llu MB\n",
           g.sms, LONE_RUNS, BATCH_RUNS, rotation >> 20);
    printf("%-6s %-22s %10s %10s %8s %10s %8s\n", "kernel", "B tiles", "MB", "lone us", "GB/s",
           "batch us", "GB/s");
    for (int i = 0; i < num_work; i++) {
        const workload *w = &work[i];
        char tiles[32] = "-";
        if (strcmp(w->kernel, "bulk") == 0)
            snprintf(tiles, sizeof tiles, "%u:%d:%d", w->chunk, w->stages, w->sliced);
        else if (strcmp(w->kernel, "tile") == 0 || strcmp(w->kernel, "async") == 0)
            snprintf(tiles, sizeof tiles, "%dx%d:%d:%d:%d:%d", w->n, w->k, w->rows, w->k_parts,
                     w->stages, w->depth);
        /* BATCH_RUNS places, each a step on from the last, so that the L2 never holds a
         * read's bytes from the one before */
        unsigned long long step = (w->bytes + (1u << 20) - 1) & ~((1ull << 20) - 1);
        CUtensorMap maps[BATCH_RUNS];
        CUdeviceptr places[BATCH_RUNS];
        for (int r = 0; r < BATCH_RUNS; r++) {
            places[r] = buf + (CUdeviceptr)((r * step) % rotation);
            if (strcmp(w->kernel, "tile") == 0)
                maps[r] = tile_map(w, places[r]);
        }
        if (single) {
            for (int r = 0; r < SINGLE_RUNS; r++) {
                launch(&g, w, buf, &maps[0], sink, stream);
                CU_CHECK(gpu_drv()->cuStreamSynchronize(stream));
            }
            printf("%-6s %-22s %10.2f (profiled: %d lone launches)\n", w->kernel, tiles,
                   w->bytes / 1e6, SINGLE_RUNS);
            continue;
        }
        float lone[LONE_RUNS], ms = 0;
        launch(&g, w, buf, &maps[0], sink, stream); /* warm-up */
        for (int r = 0; r < LONE_RUNS; r++) {
            CU_CHECK(gpu_drv()->cuMemsetD32Async(flush, (unsigned)r, flush_bytes / 4, stream));
            CU_CHECK(gpu_drv()->cuEventRecord(start, stream));
            launch(&g, w, buf, &maps[0], sink, stream);
            CU_CHECK(gpu_drv()->cuEventRecord(stop, stream));
            CU_CHECK(gpu_drv()->cuEventSynchronize(stop));
            CU_CHECK(gpu_drv()->cuEventElapsedTime(&lone[r], start, stop));
        }
        qsort(lone, LONE_RUNS, sizeof lone[0], cmp_float);
        double lone_us = 1e3 * lone[LONE_RUNS / 2];
        CU_CHECK(gpu_drv()->cuEventRecord(start, stream));
        for (int r = 0; r < BATCH_RUNS; r++)
            launch(&g, w, places[r], &maps[r], sink, stream);
        CU_CHECK(gpu_drv()->cuEventRecord(stop, stream));
        CU_CHECK(gpu_drv()->cuEventSynchronize(stop));
        CU_CHECK(gpu_drv()->cuEventElapsedTime(&ms, start, stop));
        double batch_us = 1e3 * ms / BATCH_RUNS;
        printf("%-6s %-22s %10.2f %10.2f %8.0f %10.2f %8.0f\n", w->kernel, tiles, w->bytes / 1e6,
               lone_us, w->bytes / (lone_us * 1e3), batch_us, w->bytes / (batch_us * 1e3));
    }
    gpu_free((void *)(uintptr_t)buf);
    gpu_free((void *)(uintptr_t)flush);
    gpu_free((void *)(uintptr_t)sink);
    gpu_drv()->cuModuleUnload(module);
    kiln_ctx_destroy(ctx);
    return 0;
}
