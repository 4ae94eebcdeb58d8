/* kiln-bench-gemm-fp8: kiln_gemm_fp8 against cuBLASLt block-scaled FP8 (VEC128 x
 * BLK128x128) and cuBLASLt BF16, in one process on the same random inputs.
 *
 * Timing: CUDA events around batches of 20 launches that rotate over enough operand sets
 * to exceed the 60 MB L2; median batch over 15 batches, after warm-up (--single: lone
 * launches on one set, for a profiler that flushes the caches; see bench_common.h). Both
 * libraries are timed the same way. kiln runs with its defaults (PDL on). Outputs of both
 * FP8 paths are checked against the FP64 reference on sampled rows. Dense rows and --sweep
 * rows end with the median SM clock over the batches (NVML, bench_clock.h; 0 when unknown).
 * --masked: the masked grouped GEMM on the MoE decode shapes instead.
 * --contig: the contiguous grouped GEMM on the MoE prefill shapes instead, against a loop of
 * cuBLASLt block-scaled GEMMs (one per group, same stream, same inputs).
 * --sweep: after each dense shape, every configuration kiln__gemm_fp8_alternatives lists for
 * it (the heuristic's first), each timed the same way and checked against FP64; with
 * --masked, each masked alternative timed (test_masked_alternatives checks them).
 * --trace: after each dense shape, one launch of each of those configurations in the
 * template's trace mode, and where its CTAs spent their time (SM clock cycles).
 * --loads-only (with --sweep or --trace): each configuration also in the template's
 * loads-only mode (no math, no output): how much of its time moving its operands takes.
 * --math-only (with --sweep or --trace): each configuration also in the template's math-only
 * mode (no loads: the ring's slots handed over as they are): how much of its time the math
 * takes. The sweep prints each batch's SM clock and its share of the FP8 peak at that clock
 * (NVML's clock lags: trust it for batches over ~15 ms); the trace counts SM clock cycles.
 * KILN_BENCH_SETS=N: rotate over N operand sets instead (1: operands stay in L2).
 * KILN_BENCH_WORKSPACE=0: the dense GEMM without its workspace (no split last round).
 * KILN_BENCH_B_READY=S: the dense and masked GEMMs with B early, up to S ring slots of B
 * loaded before the PDL wait (default 0: none; kiln_gemm_fp8's b_ready loads
 * KILN__GEMM_B_EARLY_SLOTS).
 * KILN_BENCH_MASKED_CAPACITY=C (--masked): groups of the same valid rows in buffers of C rows
 * each (M_max; default: the valid rows), as a serving engine allocates them.
 * KILN_BENCH_CHAIN=1 (dense): every timed GEMM, kiln's and cuBLASLt's, follows a per-token
 * FP8 quantization of its A's BF16 copy into a scratch buffer (kiln's quantizer, PDL): the
 * times are then of the pair, as in a decode layer where a GEMM follows its quantizer.
 * KILN_SWEEP_ROUNDS=R (--sweep, dense): time the configurations R times round-robin and print
 * the median of the R medians with their range: clock and power drift then hits every
 * configuration alike (one configuration moved by 7% between two places in one process in
 * stop 13).
 * KILN_BENCH_TRACE_COLD=1 (--trace): L2 written over before each traced launch (operands
 * from DRAM, as under the profiler; without it they are mostly in L2 from the timing runs).
 * KILN_SWEEP_STAGES=S1,S2,... (--sweep and --trace, dense): instead of the alternatives, the
 * heuristic's configuration with each of these ring depths (those that fit and divide by its
 * k_split; 0: its own).
 * KILN_SWEEP_WIDTHS=W1,W2,... (--sweep and --trace, dense; --sweep --masked): likewise, the
 * heuristic's configuration with each of these tile widths (multiples of 8, its ring depth
 * fitted again).
 * KILN_SWEEP_CLUSTER_K=C1,C2,... (--sweep and --trace, dense): likewise, the heuristic's
 * configuration with each tile's K blocks split over a cluster of that many CTAs (1, 2, 4
 * or 8; tiles up to 128 rows without multicast).
 * With more than one of these lists, every combination of their values (STAGES, then
 * CLUSTER_K, then WIDTHS; at most 48 configurations).
 * KILN_BENCH_CONTIG (--contig): one grouping instead of the two DeepSeek ones (4x8192, 8x4096).
 * GxROWS: G groups of ROWS rows, a multiple of 128 (1x32768: one group, where both layouts
 * walk the same tiles in the same order). Uneven, as routing makes them: GxROWS:rand, G x ROWS
 * rows each in a group drawn uniformly at random (the seed is G and ROWS: the same counts in
 * every run), or c0,c1,... each group's rows (0 allowed). Each group starts at a multiple of
 * 128; G <= 256, M_total <= 2^20 rows with padding. Uneven lines name the grouping by its
 * counts ("contig 32 groups (rand: ...)"), not "G x ROWS rows": the profiler scripts' figures
 * per grouping take equal groups.
 * Usage: kiln-bench-gemm-fp8 [--json] [--quick] [--single] [--masked | --contig]
 *        [--sweep] [--trace] [--loads-only] [--math-only] [MxNxK ...] */
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "../src/runtime/gemm_config.h"
#include "../tests/gemm_fp8_data.h"
#include "bench_grouped.h"

typedef struct operand_set {
    fp8_problem p;
    void *dsfa, *dsfa_lt, *dd, *da16, *db16;
    void *chain_q, *chain_sq; /* KILN_BENCH_CHAIN: the quantizer's output (dense only) */
} operand_set;

/* cuBLASLt in column-major terms: D'[M,N] (= D^T, same bytes) = A'^T B' with A' = our A as
 * [K, M] and B' = our B as [K, N]. Hopper's block-scaled kernels take VEC128 on A and
 * BLK128x128 on B. */
static bool lt_plan_make(lt_plan *p, int64_t m, int64_t n, int64_t k, bool fp8, void *sa, void *sb)
{
    memset(p, 0, sizeof *p);
    cudaDataType_t in = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
    LT_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (fp8) {
        int32_t ma = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
        int32_t mb = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
        LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &ma, sizeof ma));
        LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mb, sizeof mb));
        LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa, sizeof sa));
        LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb, sizeof sb));
    }
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->la, in, (uint64_t)k, (uint64_t)m, k));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->lb, in, (uint64_t)k, (uint64_t)n, k));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->ld, CUDA_R_16BF, (uint64_t)m, (uint64_t)n, m));
    return lt_plan_pick(p);
}

/* One cuBLASLt GEMM of plan p; sa and sb (the scales of an FP8 plan) may be NULL. */
static bool lt_matmul(lt_plan *p, const void *a, const void *b, const void *sa, const void *sb,
                      void *d, CUstream stream)
{
    float alpha = 1.0f, beta = 0.0f;
    if (sa != NULL) {
        LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
                                                &sa, sizeof sa));
        LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER,
                                                &sb, sizeof sb));
    }
    LT_CHECK(cublasLtMatmul(lt, p->op, &alpha, a, p->la, b, p->lb, &beta, d, p->ld, d, p->ld,
                            &p->algo, lt_workspace, lt_workspace_bytes, (cudaStream_t)stream));
    return true;
}

static bool lt_run(lt_plan *p, bool fp8, const operand_set *s, CUstream stream)
{
    if (fp8)
        return lt_matmul(p, s->p.da, s->p.db, s->dsfa_lt, s->p.dsfb, s->dd, stream);
    return lt_matmul(p, s->da16, s->db16, NULL, NULL, s->dd, stream);
}

typedef enum { RUN_KILN, RUN_LT_FP8, RUN_LT_BF16 } runner;

static kiln_ctx *ctx;
static const kiln__gemm_config *forced; /* --sweep, --trace: the configuration kiln runs */
/* --sweep's parts timed apart, each in its template mode: --loads-only, --math-only. */
enum { PART_LOADS, PART_MATH, NUM_PARTS };
static bool part_too[NUM_PARTS];
static const char *const part_label[NUM_PARTS] = {"loads-only", "math-only "};

/* Configuration c in part p's template mode. */
static kiln__gemm_config part_config(const kiln__gemm_config *c, int p)
{
    kiln__gemm_config part = *c;
    part.loads_only = p == PART_LOADS;
    part.math_only = p == PART_MATH;
    return part;
}
static void *trace_buffer;               /* --trace: the kernel's clock readings */
/* kiln_gemm_fp8's workspace (zero-filled once), unless KILN_BENCH_WORKSPACE=0. */
static void *workspace;
static int64_t workspace_bytes;
/* KILN_BENCH_B_READY: b_ready on kiln's dense and masked launches (B is the weights: the
 * serving case). Shows only where launches follow each other (batches, PDL). */
static int b_ready = 0;
/* KILN_BENCH_CHAIN=1: a quantization before each dense GEMM (run_once). */
static bool chain;

/* KILN_BENCH_CHAIN: A's BF16 copy quantized per token into the set's scratch buffers. */
static bool run_quantizer(operand_set *s, int64_t m, CUstream stream)
{
    int64_t k = s->p.k;
    kiln_quant_fp8_args q = {
        .x = tensor2d(s->da16, KILN_DTYPE_BF16, m, k, k),
        .q = tensor2d(s->chain_q, KILN_DTYPE_E4M3, m, k, k),
        .scales = tensor2d(s->chain_sq, KILN_DTYPE_F32, k / 128, m, kiln_sf_mn_stride(m)),
    };
    if (kiln_quant_fp8_per_token(ctx, &q, (kiln_stream)stream) != KILN_OK) {
        fprintf(stderr, "kiln_quant_fp8_per_token: %s\n", kiln_ctx_errmsg(ctx));
        return false;
    }
    return true;
}

static bool run_once(runner who, lt_plan *plan, operand_set *s, int64_t m, CUstream stream)
{
    if (chain && s->chain_q != NULL && !run_quantizer(s, m, stream))
        return false;
    if (who != RUN_KILN)
        return lt_run(plan, who == RUN_LT_FP8, s, stream);
    int64_t n = s->p.n, k = s->p.k, kb = k / 128;
    kiln_gemm_fp8_args args = {
        .a = tensor2d(s->p.da, KILN_DTYPE_E4M3, m, k, k),
        .sfa = tensor2d(s->dsfa, KILN_DTYPE_F32, kb, m, kiln_sf_mn_stride(m)),
        .b = tensor2d(s->p.db, KILN_DTYPE_E4M3, n, k, k),
        .sfb = tensor2d(s->p.dsfb, KILN_DTYPE_F32, (n + 127) / 128, kb, kb),
        .d = tensor2d(s->dd, KILN_DTYPE_BF16, m, n, n),
        .workspace = workspace,
        .workspace_bytes = workspace_bytes,
        .b_ready = b_ready,
    };
    if (kiln__gemm_fp8_with(ctx, &args, forced, trace_buffer, (kiln_stream)stream) != KILN_OK) {
        fprintf(stderr, "kiln_gemm_fp8: %s\n", kiln_ctx_errmsg(ctx));
        return false;
    }
    return true;
}

typedef struct runner_job {
    runner who;
    lt_plan *plan;
    operand_set *sets;
    int num_sets;
    int64_t m;
} runner_job;

static bool runner_launch(void *user, int index, CUstream stream)
{
    runner_job *j = user;
    return run_once(j->who, j->plan, &j->sets[index % j->num_sets], j->m, stream);
}

/* Median microseconds per launch, or -1 when the runner cannot run this shape. */
static double time_runner(runner who, lt_plan *plan, operand_set *sets, int num_sets, int64_t m,
                          CUstream stream)
{
    runner_job job = {who, plan, sets, num_sets, m};
    return time_batches(runner_launch, &job, stream);
}

/* diff of D (row-major [m][n], or its transpose when transposed) on sampled rows. */
static double check_output(const operand_set *s, int64_t m, bool transposed)
{
    int64_t n = s->p.n;
    int64_t rows[8];
    for (int i = 0; i < 8; i++)
        rows[i] = (int64_t)(i * (m - 1) / 7);
    double *ref = malloc((size_t)(8 * n) * sizeof(double));
    fp8_reference(&s->p, rows, 8, ref);
    uint16_t *d = malloc((size_t)(m * n) * 2);
    gpu_download(d, s->dd, (size_t)(m * n) * 2);
    double sxy = 0, sxx = 0;
    for (int i = 0; i < 8; i++)
        for (int64_t c = 0; c < n; c++) {
            double x = bf16_to_float(transposed ? d[c * m + rows[i]] : d[rows[i] * n + c]);
            double y = ref[i * n + c];
            sxy += x * y;
            sxx += x * x + y * y;
        }
    free(ref);
    free(d);
    return 1.0 - 2.0 * sxy / sxx;
}

static void *to_bf16_device(const uint8_t *fp8, int64_t rows, int64_t k)
{
    /* Every E4M3 code converts exactly, so by table: through double per element it took
     * ~2 s per 200 M elements on the dev machine, for every shape's operand sets. */
    uint16_t bf16_of[256];
    for (int v = 0; v < 256; v++)
        bf16_of[v] = float_to_bf16((float)e4m3_to_double((uint8_t)v));
    void *dst = gpu_alloc((size_t)(rows * k) * 2);
    uint16_t *h = malloc((size_t)(rows * k) * 2);
    for (int64_t i = 0; i < rows * k; i++)
        h[i] = bf16_of[fp8[i]];
    gpu_upload(dst, h, (size_t)(rows * k) * 2);
    free(h);
    return dst;
}

static double geo_sum, geo_count;

/* Operand sets to rotate over (bench_operand_sets), or KILN_BENCH_SETS of them: 1 keeps a
 * decode GEMM's operands in L2 (a diagnostic: how fast the kernel runs when DRAM is out of
 * the way); with --single, several under a profiler that leaves the caches alone time
 * launches whose operands the L2 has dropped but whose code the SMs still hold. */
static int forced_sets; /* KILN_BENCH_SETS, clamped to 1..MAX_SETS in main; 0: not forced */

static int operand_sets(double bytes_per_set)
{
    return forced_sets > 0 ? forced_sets : bench_operand_sets(bytes_per_set, 1);
}

/* A configuration as --sweep and --trace print it, e.g. "128x32  s9  ks1 ck2 mc1 ma1 ov1 u1 t0"
 * (nine words: scripts/ncu_durations.py reads them back). */
static const char *config_label(const kiln__gemm_config *c)
{
    static char label[80];
    snprintf(label, sizeof label, "%3dx%-3d s%-2d ks%d ck%d mc%d ma%d ov%d u%d t%d", c->block_m,
             c->block_n, c->stages, c->k_split, c->cluster_k, c->multicast,
             kiln__gemm_fp8_multicast_a(c), kiln__gemm_fp8_overlaps(c, ctx),
             kiln__gemm_fp8_unroll(c), kiln__gemm_fp8_turns(c, ctx));
    return label;
}

/* --sweep and --trace compile up to KILN_GEMM_FP8_MAX_ALTERNATIVES kernels per shape, each
 * NVRTC run single-threaded for 0.2-1.5 s; compiled on every CPU at once first (the kernel
 * cache is thread-safe: kiln prewarm does the same), they cost the GPU machine's lease a
 * fraction of that. A compile error shows up again, with its message, at the first launch. */
typedef struct precompile_pool {
    kj_spec specs[KILN_GEMM_FP8_MAX_ALTERNATIVES];
    int count;
    int next; /* guarded by lock */
    pthread_mutex_t lock;
} precompile_pool;

static void *precompile_worker(void *user)
{
    precompile_pool *pool = user;
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        int i = pool->next++;
        pthread_mutex_unlock(&pool->lock);
        if (i >= pool->count)
            return NULL;
        bool cached = false;
        kiln__err err = {0};
        (void)kiln__cubin_ensure(ctx, &pool->specs[i], &cached, &err);
    }
}

static void precompile(const kiln__gemm_config *cfgs, int count, int64_t n, int64_t k, bool trace)
{
    if (count > KILN_GEMM_FP8_MAX_ALTERNATIVES) { /* the pool's size: the rest after */
        precompile(cfgs + KILN_GEMM_FP8_MAX_ALTERNATIVES, count - KILN_GEMM_FP8_MAX_ALTERNATIVES,
                   n, k, trace);
        count = KILN_GEMM_FP8_MAX_ALTERNATIVES;
    }
    precompile_pool pool = {.count = count, .lock = PTHREAD_MUTEX_INITIALIZER};
    for (int i = 0; i < count; i++) {
        kiln__gemm_config c = cfgs[i];
        c.trace = trace;
        c.no_b_early = kiln__gemm_fp8_no_b_early(&c, b_ready); /* as kiln__gemm_fp8_with */
        kiln__gemm_fp8_spec(&pool.specs[i], ctx, n, k, &c);
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int num_threads = cpus < 1 ? 1 : cpus > count ? count : (int)cpus, started = 0;
    pthread_t threads[KILN_GEMM_FP8_MAX_ALTERNATIVES];
    while (started < num_threads &&
           pthread_create(&threads[started], NULL, precompile_worker, &pool) == 0)
        started++;
    precompile_worker(&pool); /* the calling thread helps (and finishes alone if none started) */
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
}

enum { SWEEP_MAX_ROUNDS = 9 };
static int sweep_rounds = 1; /* KILN_SWEEP_ROUNDS, clamped to 1..SWEEP_MAX_ROUNDS in main */

/* One --sweep row: configuration i of the shape, its time (the median of `rounds` rounds'
 * medians, and their range), its check against FP64 and its parts' times (-1: not timed). */
typedef struct sweep_row {
    const kiln__gemm_config *cfg;
    int index, rounds;
    double us, us_min, us_max, diff, us_part[NUM_PARTS];
    unsigned mhz, mhz_part[NUM_PARTS];
} sweep_row;

/* The share of the FP8 dense peak at the clock a batch ran at (8192 FLOP per SM per clock):
 * what compares kernels whose clocks differ under the power cap. 0 when the clock is
 * unknown. */
static double peak_share(double flops, double us, unsigned mhz)
{
    return us > 0 && mhz > 0 ? 100.0 * flops / (us * 1e-6) / (ctx->num_sms * 8192.0 * mhz * 1e6)
                             : 0;
}

static void print_sweep_row(int64_t m, int64_t n, int64_t k, const sweep_row *r, double us_lt,
                            bool json)
{
    const kiln__gemm_config *c = r->cfg;
    double us = r->us, flops = 2.0 * (double)m * n * k,
           ratio = us > 0 && us_lt > 0 ? us_lt / us : 0;
    if (json) {
        printf("{\"sweep\":{\"m\":%lld,\"n\":%lld,\"k\":%lld,\"block_m\":%d,\"block_n\":%d,"
               "\"stages\":%d,\"k_split\":%d,\"cluster_k\":%d,\"multicast\":%d,"
               "\"multicast_a\":%d,\"overlap\":%d,\"unroll\":%d,\"turns\":%d,\"heuristic\":%s},"
               "\"kiln_us\":%.3f,\"kiln_us_min\":%.3f,\"kiln_us_max\":%.3f,\"rounds\":%d,"
               "\"kiln_diff\":%.2e,\"ratio_fp8\":%.3f,\"loads_only_us\":%.3f,\"math_only_us\":%.3f,"
               "\"sm_mhz\":%u,\"loads_only_sm_mhz\":%u,\"math_only_sm_mhz\":%u}\n",
               (long long)m, (long long)n, (long long)k, c->block_m, c->block_n, c->stages,
               c->k_split, c->cluster_k, c->multicast, kiln__gemm_fp8_multicast_a(c),
               kiln__gemm_fp8_overlaps(c, ctx), kiln__gemm_fp8_unroll(c),
               kiln__gemm_fp8_turns(c, ctx), r->index == 0 ? "true" : "false", us, r->us_min, r->us_max, r->rounds, r->diff,
               ratio, r->us_part[PART_LOADS], r->us_part[PART_MATH], r->mhz,
               r->mhz_part[PART_LOADS], r->mhz_part[PART_MATH]);
    } else {
        printf("sweep %5lld x %5lld x %5lld  %s  %8.2f us %7.1f TFLOP/s (diff %.1e) | "
               "cuBLASLt fp8 x%.2f | SM %u MHz, %.1f%% of peak%s",
               (long long)m, (long long)n, (long long)k, config_label(c), us,
               us > 0 ? flops / us / 1e6 : 0, r->diff, ratio, r->mhz,
               peak_share(flops, us, r->mhz),
               r->index == 0 ? "  <- heuristic (before the knobs)" : "");
        if (r->rounds > 1)
            printf("  [%d rounds: %.2f - %.2f us]", r->rounds, r->us_min, r->us_max);
        printf("\n");
        for (int p = 0; p < NUM_PARTS; p++) {
            double t = r->us_part[p];
            if (t >= 0)
                printf("%s %5lld x %5lld x %5lld  %s  %8.2f us (%.0f%% of the kernel's) | "
                       "SM %u MHz, kernel-FLOP %.1f%% of peak\n",
                       part_label[p], (long long)m, (long long)n, (long long)k, config_label(c),
                       t, us > 0 && t > 0 ? 100.0 * t / us : 0, r->mhz_part[p],
                       peak_share(flops, t, r->mhz_part[p]));
        }
    }
    fflush(stdout);
}

/* The numbers of a comma-separated list in environment variable `name`, at most max of
 * them; 0 when it is unset or empty. */
static int env_numbers(const char *name, long *out, int max)
{
    const char *list = getenv(name);
    int count = 0;
    for (char *end; list != NULL && *list != '\0' && count < max; list = end) {
        out[count] = strtol(list, &end, 10);
        if (end == list)
            break;
        count++;
        if (*end == ',')
            end++;
    }
    return count;
}

/* KILN_SWEEP_STAGES: the ring depth, if it fits (at most the fitted depth; 0: that depth)
 * and divides by k_split. */
static bool vary_stages(kiln__gemm_config *c, long stages)
{
    stages = stages == 0 ? c->stages : stages;
    if (stages < 2 || stages > c->stages || stages % c->k_split != 0)
        return false;
    c->stages = (int)stages;
    return true;
}

/* KILN_SWEEP_CLUSTER_K: each tile's K blocks split over a cluster of 2, 4 or 8 CTAs (1: none),
 * stages fitted again; tiles up to 128 rows without multicast or a K split inside the CTA,
 * as decode takes them (prefill shapes with fewer tiles than SMs: stop 61). */
static bool vary_cluster_k(kiln__gemm_config *c, long ck)
{
    if ((ck != 1 && ck != 2 && ck != 4 && ck != 8) || c->block_m > 128 || c->multicast > 1 ||
        c->k_split != 1 || kiln__gemm_fp8_multicast_a(c) > 1)
        return false;
    c->cluster_k = ck > 1 ? (int)ck : 0;
    kiln__gemm_fp8_fit(c);
    return c->stages >= 2;
}

/* KILN_SWEEP_WIDTHS: the tile width (a multiple of 8 up to 256), stages fitted again. */
static bool vary_width(kiln__gemm_config *c, long width)
{
    if (width < 8 || width > 256 || width % 8 != 0)
        return false;
    c->block_n = (int)width;
    kiln__gemm_fp8_fit(c);
    return c->stages >= 2;
}

/* alt[0] (the heuristic's configuration) changed by vary to each value listed in variable
 * env, in place of the alternatives; after an earlier list (*varied), each of alt's
 * configurations so changed (every combination of the lists, up to the room in alt).
 * Returns the new count (count as it was without the variable or with no value kept). */
static int listed_variants(kiln__gemm_config *alt, int count, const char *env,
                           bool (*vary)(kiln__gemm_config *, long), bool *varied)
{
    long values[KILN_GEMM_FP8_MAX_ALTERNATIVES];
    int listed = env_numbers(env, values, KILN_GEMM_FP8_MAX_ALTERNATIVES);
    if (listed == 0 || count < 1)
        return count;
    kiln__gemm_config base[KILN_GEMM_FP8_MAX_ALTERNATIVES];
    const int bases = *varied ? count : 1;
    memcpy(base, alt, (size_t)bases * sizeof *alt);
    int kept = 0;
    for (int b = 0; b < bases; b++) {
        for (int i = 0; i < listed && kept < KILN_GEMM_FP8_MAX_ALTERNATIVES; i++) {
            alt[kept] = base[b];
            kept += vary(&alt[kept], values[i]);
        }
    }
    if (kept == 0) { /* nothing kept: the configurations as they were */
        memcpy(alt, base, (size_t)bases * sizeof *alt);
        return count;
    }
    *varied = true;
    return kept;
}

static int sweep_variants(kiln__gemm_config *alt, int count)
{
    bool varied = false;
    count = listed_variants(alt, count, "KILN_SWEEP_STAGES", vary_stages, &varied);
    count = listed_variants(alt, count, "KILN_SWEEP_CLUSTER_K", vary_cluster_k, &varied);
    return listed_variants(alt, count, "KILN_SWEEP_WIDTHS", vary_width, &varied);
}

/* --sweep: each configuration kiln__gemm_fp8_alternatives lists for the shape, on the same
 * operand sets, timed like the heuristic's and checked against FP64 (set 0's D poisoned
 * with NaN first, so a configuration that writes nothing cannot pass). With one round each
 * row is printed as soon as it is timed (a sweep cut short by a timeout keeps its rows). */
static void sweep_shape(operand_set *sets, int num_sets, int64_t m, int64_t n, int64_t k,
                        double us_lt, bool json, CUstream stream)
{
    kiln__gemm_config alt[KILN_GEMM_FP8_MAX_ALTERNATIVES];
    int count =
        kiln__gemm_fp8_alternatives(m, n, k, ctx->num_sms, alt, KILN_GEMM_FP8_MAX_ALTERNATIVES);
    count = sweep_variants(alt, count);
    precompile(alt, count, n, k, false);
    kiln__gemm_config part[NUM_PARTS][KILN_GEMM_FP8_MAX_ALTERNATIVES];
    for (int p = 0; p < NUM_PARTS; p++) {
        if (!part_too[p])
            continue;
        for (int i = 0; i < count; i++)
            part[p][i] = part_config(&alt[i], p);
        precompile(part[p], count, n, k, false);
    }
    const int rounds = sweep_rounds;
    sweep_row rows[KILN_GEMM_FP8_MAX_ALTERNATIVES];
    double us_round[KILN_GEMM_FP8_MAX_ALTERNATIVES][SWEEP_MAX_ROUNDS];
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < count; i++) {
            sweep_row *row = &rows[i];
            if (r == 0) { /* the output is checked in the first round */
                *row = (sweep_row){.cfg = &alt[i], .index = i, .rounds = rounds,
                                   .us_part = {-1, -1}};
                gpu_poison(sets[0].dd, (size_t)(m * n) * 2, 0xffffffffu);
            }
            forced = &alt[i];
            us_round[i][r] = time_runner(RUN_KILN, NULL, sets, num_sets, m, stream);
            forced = NULL;
            CU_CHECK(gpu_drv()->cuStreamSynchronize(stream));
            if (r == 0) {
                row->mhz = bench_batch_mhz;
                row->diff = us_round[i][0] > 0 ? check_output(&sets[0], m, false) : -1;
                for (int p = 0; p < NUM_PARTS; p++) {
                    if (!part_too[p])
                        continue;
                    forced = &part[p][i];
                    row->us_part[p] = time_runner(RUN_KILN, NULL, sets, num_sets, m, stream);
                    row->mhz_part[p] = bench_batch_mhz;
                    forced = NULL;
                }
            }
            if (r == rounds - 1) {
                qsort(us_round[i], (size_t)rounds, sizeof us_round[i][0], cmp_double);
                row->us = us_round[i][rounds / 2];
                row->us_min = us_round[i][0];
                row->us_max = us_round[i][rounds - 1];
                print_sweep_row(m, n, k, row, us_lt, json);
            }
        }
}

/* --trace: one lone launch of each configuration of the shape in the template's trace mode,
 * and where its CTAs spent their time (SM clock cycles since each CTA's entry, median and
 * maximum over the CTAs; the slots are the template's trace_slot). */
enum { TRACE_SLOTS = KILN_GEMM_FP8_TRACE_SLOTS, TRACE_CTAS = 1024 };

/* Median/max of slot `to` minus slot `from` over the CTAs i with i % every == 0 (every > 1:
 * rank 0 of each cluster, whose CTAs are consecutive). */
static void print_phase(const char *name, const uint64_t *t, int ctas, int every, int from, int to)
{
    float v[TRACE_CTAS]; /* cycles: exact in a float up to 2^24 */
    int count = 0;
    for (int i = 0; i < ctas; i += every)
        if (t[i * TRACE_SLOTS + from] != 0 && t[i * TRACE_SLOTS + to] != 0)
            v[count++] = (float)(int64_t)(t[i * TRACE_SLOTS + to] - t[i * TRACE_SLOTS + from]);
    if (count == 0) {
        printf(" %s -", name);
        return;
    }
    qsort(v, (size_t)count, sizeof v[0], cmp_float);
    printf(" %s %.0f/%.0f", name, v[count / 2], v[count - 1]);
}

static void trace_shape(operand_set *sets, int num_sets, int64_t m, int64_t n, int64_t k,
                        CUstream stream)
{
    kiln__gemm_config alt[KILN_GEMM_FP8_MAX_ALTERNATIVES];
    int count =
        kiln__gemm_fp8_alternatives(m, n, k, ctx->num_sms, alt, KILN_GEMM_FP8_MAX_ALTERNATIVES);
    count = sweep_variants(alt, count);
    /* With --loads-only / --math-only, each configuration's parts are traced after it. */
    kiln__gemm_config runs[KILN_GEMM_FP8_MAX_ALTERNATIVES * (1 + NUM_PARTS)];
    const char *run_label[KILN_GEMM_FP8_MAX_ALTERNATIVES * (1 + NUM_PARTS)];
    int num_runs = 0;
    for (int i = 0; i < count; i++) {
        run_label[num_runs] = "trace";
        runs[num_runs++] = alt[i];
        for (int p = 0; p < NUM_PARTS; p++) {
            if (!part_too[p])
                continue;
            run_label[num_runs] = part_label[p];
            runs[num_runs++] = part_config(&alt[i], p);
        }
    }
    precompile(runs, num_runs, n, k, true);
    size_t bytes = (size_t)TRACE_CTAS * TRACE_SLOTS * 8;
    void *buffer = gpu_alloc(bytes);
    uint64_t *t = malloc(bytes);
    /* KILN_BENCH_TRACE_COLD=1: before each traced launch, a write over twice the 60 MB L2 on
     * the same stream, so that the operands come from DRAM as under the profiler. */
    const char *cold_env = getenv("KILN_BENCH_TRACE_COLD");
    const size_t flush_bytes = (size_t)128 << 20;
    void *flush = cold_env != NULL && strcmp(cold_env, "0") != 0 ? gpu_alloc(flush_bytes) : NULL;
    for (int i = 0; i < num_runs; i++) {
        kiln__gemm_config c = runs[i];
        c.trace = 1;
        forced = &c;
        trace_buffer = buffer;
        bool ok = run_once(RUN_KILN, NULL, &sets[0], m, stream); /* compiles; warms up */
        CU_CHECK(gpu_drv()->cuStreamSynchronize(stream));
        gpu_poison(buffer, bytes, 0);
        if (flush != NULL)
            CU_CHECK(gpu_drv()->cuMemsetD32Async((CUdeviceptr)(uintptr_t)flush, 0,
                                                 flush_bytes / 4, stream));
        ok = ok && run_once(RUN_KILN, NULL, &sets[num_sets > 1 ? 1 : 0], m, stream);
        CU_CHECK(gpu_drv()->cuStreamSynchronize(stream));
        forced = NULL;
        trace_buffer = NULL;
        if (!ok)
            continue;
        gpu_download(t, buffer, bytes);
        /* Wall clock (%globaltimer, ns) at each CTA's entry and math end: the entries'
         * spread, the span from the first entry to the last end, and the SM clock (cycles
         * over ns between the same two points, the median over the CTAs). */
        int ctas = 0;
        uint64_t first_ns = UINT64_MAX, last_ns = 0, last_end_ns = 0;
        float ghz[TRACE_CTAS];
        for (int b = 0; b < TRACE_CTAS && t[b * TRACE_SLOTS + KILN_TR_START] != 0; b++, ctas++) {
            const uint64_t *r = t + b * TRACE_SLOTS;
            const uint64_t start = r[KILN_TR_START_NS], end = r[KILN_TR_END_NS];
            first_ns = start < first_ns ? start : first_ns;
            last_ns = start > last_ns ? start : last_ns;
            last_end_ns = end > last_end_ns ? end : last_end_ns;
            ghz[b] = end > start
                         ? (float)(r[KILN_TR_MATH_END] - r[KILN_TR_START]) / (float)(end - start)
                         : 0.0f;
        }
        qsort(ghz, (size_t)ctas, sizeof ghz[0], cmp_float);
        int ck = c.cluster_k > 1 ? c.cluster_k : 1;
        printf("%s %5lld x %5lld x %5lld  %s  %d CTAs, entries spread %.2f us, span %.2f us "
               "at %.2f GHz, %lld K blocks per tile and CTA; cycles median/max:",
               run_label[i], (long long)m, (long long)n, (long long)k, config_label(&c), ctas,
               (double)(last_ns - first_ns) / 1e3, (double)(last_end_ns - first_ns) / 1e3,
               ctas > 0 ? ghz[ctas / 2] : 0.0f, (long long)(k / 128 / ck));
        print_phase("ready", t, ctas, 1, KILN_TR_START, KILN_TR_READY);
        print_phase("loop0-start", t, ctas, 1, KILN_TR_START, KILN_TR_LOOP0_BEGIN);
        print_phase("loop0", t, ctas, 1, KILN_TR_LOOP0_BEGIN, KILN_TR_LOOP0_END);
        print_phase("last-loop-end", t, ctas, 1, KILN_TR_START, KILN_TR_LAST_LOOP_END);
        print_phase("math-end", t, ctas, 1, KILN_TR_START, KILN_TR_MATH_END);
        if (ck > 1) /* the reduction's tail falls on whichever rank waits for the others */
            print_phase("math-end(rank0)", t, ctas, kiln__gemm_fp8_cluster(&c), KILN_TR_START,
                        KILN_TR_MATH_END);
        print_phase("last-load", t, ctas, 1, KILN_TR_START, KILN_TR_LAST_LOAD);
        printf("\n");
        fflush(stdout);
    }
    free(t);
    gpu_free(buffer);
    gpu_free(flush);
}

static void bench_shape(int64_t m, int64_t n, int64_t k, bool json, bool target, bool sweep,
                        bool trace)
{
    uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)(m * 31 + n * 17 + k);
    double bytes_b = (double)(n * k);
    int num_sets = operand_sets(bytes_b + (double)m * k + 2.0 * m * n);
    operand_set sets[MAX_SETS];
    for (int i = 0; i < num_sets; i++) {
        operand_set *s = &sets[i];
        fp8_problem_make_with(&s->p, m, n, k, &seed, true);
        float *sfa = fp8_problem_sfa(&s->p, m);
        int64_t kb = k / 128;
        s->dsfa = gpu_alloc((size_t)(kb * kiln_sf_mn_stride(m)) * 4);
        gpu_upload(s->dsfa, sfa, (size_t)(kb * kiln_sf_mn_stride(m)) * 4);
        /* cuBLASLt's VEC128 scales of A: [K/128][M], M contiguous, unpadded. */
        float *sfa_lt = malloc((size_t)(kb * m) * 4);
        for (int64_t b = 0; b < kb; b++)
            for (int64_t r = 0; r < m; r++)
                sfa_lt[b * m + r] = s->p.sa[r * kb + b];
        s->dsfa_lt = gpu_alloc((size_t)(kb * m) * 4);
        gpu_upload(s->dsfa_lt, sfa_lt, (size_t)(kb * m) * 4);
        free(sfa);
        free(sfa_lt);
        s->dd = gpu_alloc((size_t)(m * n) * 2);
        /* The BF16 baseline multiplies the same values, unscaled (the same work). */
        s->da16 = to_bf16_device(s->p.a, m, k);
        s->db16 = to_bf16_device(s->p.b, n, k);
        s->chain_q = chain ? gpu_alloc((size_t)(m * k)) : NULL;
        s->chain_sq = chain ? gpu_alloc((size_t)(kb * kiln_sf_mn_stride(m)) * 4) : NULL;
    }

    CUstream stream;
    CU_CHECK(gpu_drv()->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    double us_kiln = time_runner(RUN_KILN, NULL, sets, num_sets, m, stream);
    unsigned mhz_kiln = bench_batch_mhz, mhz_lt = 0;
    CU_CHECK(gpu_drv()->cuStreamSynchronize(stream));
    double diff_kiln = check_output(&sets[0], m, false);
    lt_plan fp8_plan = {0}, bf16_plan = {0};
    double us_lt = -1, us_bf16 = -1, diff_lt = -1;
    bool lt_ok = m % 8 == 0; /* cuBLASLt wants 16-byte leading dimensions of D' */
    if (lt_ok && lt_plan_make(&fp8_plan, m, n, k, true, sets[0].dsfa_lt, sets[0].p.dsfb)) {
        us_lt = time_runner(RUN_LT_FP8, &fp8_plan, sets, num_sets, m, stream);
        mhz_lt = bench_batch_mhz;
        CU_CHECK(gpu_drv()->cuStreamSynchronize(stream));
        diff_lt = check_output(&sets[0], m, true);
    }
    if (lt_ok && lt_plan_make(&bf16_plan, m, n, k, false, NULL, NULL))
        us_bf16 = time_runner(RUN_LT_BF16, &bf16_plan, sets, num_sets, m, stream);
    CU_CHECK(gpu_drv()->cuStreamSynchronize(stream));
    lt_plan_free(&fp8_plan);
    lt_plan_free(&bf16_plan);

    double flops = 2.0 * (double)m * n * k;
    double bytes = (double)m * k + bytes_b + (double)(m * (k / 128)) * 4 +
                   (double)((n + 127) / 128 * (k / 128)) * 4 + 2.0 * m * n;
    double ratio = us_lt > 0 ? us_lt / us_kiln : 0, ratio16 = us_bf16 > 0 ? us_bf16 / us_kiln : 0;
    if (target && ratio > 0) {
        geo_sum += log(ratio);
        geo_count += 1;
    }
    if (json)
        printf("{\"m\":%lld,\"n\":%lld,\"k\":%lld,\"kiln_us\":%.3f,\"kiln_tflops\":%.1f,"
               "\"kiln_gbs\":%.0f,\"kiln_diff\":%.2e,\"cublaslt_fp8_us\":%.3f,"
               "\"cublaslt_fp8_diff\":%.2e,\"cublaslt_bf16_us\":%.3f,\"ratio_fp8\":%.3f,"
               "\"ratio_bf16\":%.3f,\"kiln_sm_mhz\":%u,\"cublaslt_fp8_sm_mhz\":%u}\n",
               (long long)m, (long long)n, (long long)k, us_kiln, flops / us_kiln / 1e6,
               bytes / us_kiln / 1e3, diff_kiln, us_lt, diff_lt, us_bf16, ratio, ratio16, mhz_kiln,
               mhz_lt);
    else
        printf("gemm %5lld x %5lld x %5lld  kiln %8.2f us %7.1f TFLOP/s %6.0f GB/s (diff %.1e) | "
               "cuBLASLt fp8 %8.2f us x%.2f (diff %.1e) | bf16 %8.2f us x%.2f | SM MHz kiln %u "
               "cuBLASLt %u\n",
               (long long)m, (long long)n, (long long)k, us_kiln, flops / us_kiln / 1e6,
               bytes / us_kiln / 1e3, diff_kiln, us_lt, ratio, diff_lt, us_bf16, ratio16, mhz_kiln,
               mhz_lt);
    fflush(stdout);
    if (sweep)
        sweep_shape(sets, num_sets, m, n, k, us_lt, json, stream);
    if (trace)
        trace_shape(sets, num_sets, m, n, k, stream);
    CU_CHECK(gpu_drv()->cuStreamDestroy(stream));
    for (int i = 0; i < num_sets; i++) {
        gpu_free(sets[i].da16);
        gpu_free(sets[i].db16);
        gpu_free(sets[i].dsfa);
        gpu_free(sets[i].dsfa_lt);
        gpu_free(sets[i].dd);
        if (sets[i].chain_q != NULL) {
            gpu_free(sets[i].chain_q);
            gpu_free(sets[i].chain_sq);
        }
        fp8_problem_free(&sets[i].p);
    }
}

typedef struct masked_job {
    kiln_gemm_fp8_masked_args *sets;
    int num_sets;
} masked_job;

static bool masked_launch(void *user, int index, CUstream stream)
{
    masked_job *j = user;
    if (kiln__gemm_fp8_masked_with(ctx, &j->sets[index % j->num_sets], forced,
                                   (kiln_stream)stream) == KILN_OK)
        return true;
    fprintf(stderr, "masked: %s\n", kiln_ctx_errmsg(ctx));
    return false;
}

/* Masked grouped decode: G groups of `rows` valid rows each (masked_m = expected_m = rows)
 * in buffers of M_max = max(rows, KILN_BENCH_MASKED_CAPACITY) rows per group (default: rows;
 * a serving engine's buffers hold more rows than a group receives). Effective bytes: A's
 * valid rows, every group's B, the scales, D's valid rows. */
static void bench_masked(int64_t groups, int64_t rows, int64_t n, int64_t k, bool json,
                         bool sweep)
{
    const char *cap_env = getenv("KILN_BENCH_MASKED_CAPACITY");
    int64_t m_max = cap_env != NULL ? atoll(cap_env) : rows;
    m_max = m_max > rows ? m_max : rows;
    int64_t kb = k / 128, nb = (n + 127) / 128, s = kiln_sf_mn_stride(m_max);
    uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)(groups * 131 + rows);
    size_t a_bytes = (size_t)(groups * m_max * k), b_bytes = (size_t)(groups * n * k);
    int num_sets = operand_sets((double)(a_bytes + b_bytes));
    kiln_gemm_fp8_masked_args sets[MAX_SETS];
    void *buffers[MAX_SETS][6];
    uint8_t *host = malloc(b_bytes > a_bytes ? b_bytes : a_bytes);
    float *scales = malloc((size_t)(groups * (kb * s > nb * kb ? kb * s : nb * kb)) * 4);
    for (int i = 0; i < num_sets; i++) {
        void **buf = buffers[i];
        random_e4m3_bytes(host, (int64_t)a_bytes, &seed);
        gpu_upload(buf[0] = gpu_alloc(a_bytes), host, a_bytes);
        random_e4m3_bytes(host, (int64_t)b_bytes, &seed);
        gpu_upload(buf[1] = gpu_alloc(b_bytes), host, b_bytes);
        for (int64_t j = 0; j < groups * kb * s; j++)
            scales[j] = (float)(1e-3 * (1.0 + 9.0 * rng_uniform(&seed)));
        gpu_upload(buf[2] = gpu_alloc((size_t)(groups * kb * s) * 4), scales, (size_t)(groups * kb * s) * 4);
        gpu_upload(buf[3] = gpu_alloc((size_t)(groups * nb * kb) * 4), scales, (size_t)(groups * nb * kb) * 4);
        buf[4] = gpu_alloc((size_t)(groups * m_max * n) * 2);
        int32_t *masked = malloc((size_t)groups * 4);
        for (int64_t j = 0; j < groups; j++)
            masked[j] = (int32_t)rows;
        gpu_upload(buf[5] = gpu_alloc((size_t)groups * 4), masked, (size_t)groups * 4);
        free(masked);
        kiln_gemm_fp8_masked_args *a = &sets[i];
        *a = (kiln_gemm_fp8_masked_args){
            .a = {.data = buf[0], .dtype = KILN_DTYPE_E4M3, .ndim = 3,
                  .shape = {groups, m_max, k}},
            .sfa = {.data = buf[2], .dtype = KILN_DTYPE_F32, .ndim = 3,
                    .shape = {groups, kb, m_max},
                    .strides = {kb * s, s, 1}},
            .b = {.data = buf[1], .dtype = KILN_DTYPE_E4M3, .ndim = 3, .shape = {groups, n, k}},
            .sfb = {.data = buf[3], .dtype = KILN_DTYPE_F32, .ndim = 3, .shape = {groups, nb, kb}},
            .d = {.data = buf[4], .dtype = KILN_DTYPE_BF16, .ndim = 3,
                  .shape = {groups, m_max, n}},
            .masked_m = {.data = buf[5], .dtype = KILN_DTYPE_I32, .ndim = 1, .shape = {groups}},
            .expected_m = rows,
            .b_ready = b_ready, /* its guess (groups of expected_m rows) is right here */
        };
    }
    CUstream stream;
    CU_CHECK(gpu_drv()->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    masked_job job = {sets, num_sets};
    double us = time_batches(masked_launch, &job, stream);
    if (us < 0)
        exit(1);
    double flops = 2.0 * (double)(groups * rows) * n * k;
    double bytes = (double)(groups * rows * k) + (double)b_bytes +
                   (double)(groups * (kb * rows + nb * kb)) * 4 + 2.0 * (double)(groups * rows * n);
    if (json)
        printf("{\"masked_groups\":%lld,\"rows\":%lld,\"n\":%lld,\"k\":%lld,\"kiln_us\":%.3f,"
               "\"tflops\":%.1f,\"gbs\":%.0f}\n",
               (long long)groups, (long long)rows, (long long)n, (long long)k, us, flops / us / 1e6,
               bytes / us / 1e3);
    else
        printf("masked %2lld x %4lld rows, N %5lld K %5lld: kiln %8.2f us %7.1f TFLOP/s %6.0f "
               "GB/s%s\n",
               (long long)groups, (long long)rows, (long long)n, (long long)k, us, flops / us / 1e6,
               bytes / us / 1e3, m_max > rows ? " (M_max: KILN_BENCH_MASKED_CAPACITY)" : "");
    fflush(stdout);
    if (sweep) { /* timing only: the gpu suite checks every masked alternative's output */
        kiln__gemm_config alt[KILN_GEMM_FP8_MAX_ALTERNATIVES];
        int count = kiln__gemm_fp8_masked_alternatives(groups, rows, m_max, n, k, ctx->num_sms,
                                                       alt, KILN_GEMM_FP8_MAX_ALTERNATIVES);
        bool varied = false;
        count = listed_variants(alt, count, "KILN_SWEEP_WIDTHS", vary_width, &varied);
        precompile(alt, count, n, k, false);
        for (int i = 0; i < count; i++) {
            const kiln__gemm_config *c = &alt[i];
            forced = c;
            double t = time_batches(masked_launch, &job, stream);
            forced = NULL;
            printf("sweep masked %2lld x %4lld rows, N %5lld K %5lld  %s  %8.2f us %6.0f GB/s%s\n",
                   (long long)groups, (long long)rows, (long long)n, (long long)k, config_label(c),
                   t, t > 0 ? bytes / t / 1e3 : 0, i == 0 ? "  <- heuristic" : "");
            fflush(stdout);
        }
    }
    CU_CHECK(gpu_drv()->cuStreamDestroy(stream));
    for (int i = 0; i < num_sets; i++)
        for (int j = 0; j < 6; j++)
            gpu_free(buffers[i][j]);
    free(host);
    free(scales);
}

/* MoE prefill: G groups of rows one after another in A, each starting at a multiple of 128
 * (the DeepEP v2 layout, m_alignment 128; the rows from a group's end to the next group's
 * start are padding). One operand set: A and B are 59-235 MB each, so L2 cannot serve
 * repeats. kiln takes the layout as prefix sums and as row ids; the baseline is one
 * cuBLASLt block-scaled GEMM per group, in a loop on the same stream. The groupings, their
 * layouts and the loop's plans are bench_grouped.h's (the BF16 benchmark has the same). */
enum { LT_ALIGN = 16 };

/* The rows of a group's cuBLASLt GEMM: its count rounded up to 16, as a caller of the loop
 * would pad it: cuBLASLt wants 16-byte leading dimensions (D' is [N][rows] BF16, and
 * M = 1 crashed it, gemm_fp8_notes.md). The extra rows are the group's padding, or A's
 * spare rows past M_total (below m_pad) for the last group; 0 for an empty group. */
static int64_t lt_rows(int64_t count)
{
    return (count + LT_ALIGN - 1) / LT_ALIGN * LT_ALIGN;
}

/* cuBLASLt's A scales: group g's [K/128][lt_rows(c_g)] (its GEMM's VEC128 layout) from
 * row start_g on, zeros between the blocks. */
static float *contig_sfa_lt(const contig_grouping *gr, const fp8_problem *host)
{
    int64_t kb = host->k / 128;
    float *sfa_lt = calloc((size_t)(gr->m_pad * kb), 4);
    for (int64_t g = 0; g < gr->groups; g++) {
        int64_t first = gr->start[g], rows = lt_rows(gr->count[g]);
        for (int64_t b = 0; b < kb; b++)
            for (int64_t i = 0; i < rows; i++)
                sfa_lt[first * kb + b * rows + i] = host->sa[(first + i) * kb + b];
    }
    return sfa_lt;
}

typedef struct contig_job {
    kiln_gemm_fp8_contig_args args[2]; /* prefix sums, row ids */
    int layout;
    const contig_grouping *gr;
    int64_t n, k;
    lt_loop loop; /* a plan per distinct lt_rows */
    uint8_t *da, *db;
    float *dsfa_lt, *dsfb;
    uint16_t *dd;
} contig_job;

static bool contig_kiln(void *user, int index, CUstream stream)
{
    contig_job *j = user;
    (void)index;
    if (kiln_gemm_fp8_contig(ctx, &j->args[j->layout], (kiln_stream)stream) == KILN_OK)
        return true;
    fprintf(stderr, "kiln_gemm_fp8_contig: %s\n", kiln_ctx_errmsg(ctx));
    return false;
}

/* Group g's GEMM: lt_rows(c_g) rows of A from row start_g, its block of D transposed
 * ([N][lt_rows(c_g)]) from D's row start_g on. */
static bool contig_cublaslt(void *user, int index, CUstream stream)
{
    contig_job *j = user;
    int64_t n = j->n, k = j->k, kb = k / 128, nb = (n + 127) / 128;
    (void)index;
    for (int64_t g = 0; g < j->gr->groups; g++) {
        int64_t first = j->gr->start[g];
        if (j->loop.plan_of[g] >= 0 &&
            !lt_matmul(&j->loop.plans[j->loop.plan_of[g]], j->da + first * k, j->db + g * n * k,
                       j->dsfa_lt + first * kb, j->dsfb + g * nb * kb, j->dd + first * n,
                       stream))
            return false;
    }
    return true;
}

static bool contig_plan_make(lt_plan *p, int64_t rows, void *user)
{
    contig_job *j = user;
    return lt_plan_make(p, rows, j->n, j->k, true, j->dsfa_lt, j->dsfb);
}

/* The loop's plans, for each group's lt_rows (lt_loop_make). */
static bool contig_plans_make(contig_job *j)
{
    int64_t rows[CONTIG_MAX_GROUPS];
    for (int64_t g = 0; g < j->gr->groups; g++)
        rows[g] = lt_rows(j->gr->count[g]);
    return lt_loop_make(&j->loop, rows, j->gr->groups, contig_plan_make, j);
}

/* diff against the FP64 reference on the first, an inner and the last row of every group
 * with rows (padding rows are not compared); cuBLASLt writes each group's block transposed
 * (see contig_cublaslt). */
static double contig_diff(const contig_job *j, const fp8_problem *host, bool transposed)
{
    const contig_grouping *gr = j->gr;
    int64_t n = j->n, kb = j->k / 128, nb = (n + 127) / 128;
    size_t d_bytes = (size_t)(gr->m_pad * n) * 2;
    uint16_t *d = malloc(d_bytes);
    gpu_download(d, j->dd, d_bytes);
    double *ref = malloc((size_t)(3 * n) * sizeof(double)), sxy = 0, sxx = 0;
    for (int64_t g = 0; g < gr->groups; g++) {
        int64_t first = gr->start[g], count = gr->count[g], ld = lt_rows(count), rows[3];
        int num = 0;
        if (count == 0)
            continue;
        rows[num++] = first;
        if (count >= 3)
            rows[num++] = first + count / 3;
        if (count >= 2)
            rows[num++] = first + count - 1;
        fp8_problem view = *host;
        view.b = host->b + g * n * j->k;
        view.sb = host->sb + g * nb * kb;
        fp8_reference(&view, rows, num, ref);
        for (int i = 0; i < num; i++)
            for (int64_t c = 0; c < n; c++) {
                int64_t at = transposed ? first * n + c * ld + (rows[i] - first) : rows[i] * n + c;
                double x = bf16_to_float(d[at]), y = ref[i * n + c];
                sxy += x * y;
                sxx += x * x + y * y;
            }
    }
    free(ref);
    free(d);
    return 1.0 - 2.0 * sxy / sxx;
}

static void bench_contig(const contig_grouping *gr, int64_t n, int64_t k, bool json)
{
    int64_t groups = gr->groups, m = gr->m, m_pad = gr->m_pad, kb = k / 128,
            nb = (n + 127) / 128, s = kiln_sf_mn_stride(m);
    uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)(groups * 977 + n + k);
    /* A and its scales have m_pad rows, random throughout: the loop's last GEMM may read
     * past M_total (lt_rows). */
    fp8_problem host = {.m_max = m_pad, .n = n, .k = k};
    host.a = malloc((size_t)(m_pad * k));
    host.b = malloc((size_t)(groups * n * k));
    host.sa = malloc((size_t)(m_pad * kb) * 4);
    host.sb = malloc((size_t)(groups * nb * kb) * 4);
    random_e4m3_bytes(host.a, m_pad * k, &seed);
    random_e4m3_bytes(host.b, groups * n * k, &seed);
    for (int64_t i = 0; i < m_pad * kb; i++)
        host.sa[i] = (float)(1e-3 * (1.0 + 9.0 * rng_uniform(&seed)));
    for (int64_t i = 0; i < groups * nb * kb; i++)
        host.sb[i] = (float)(1e-3 * (1.0 + 9.0 * rng_uniform(&seed)));
    /* A's scales: kiln's MN-major [K/128][align(M_total)], cuBLASLt's per group. */
    float *sfa = fp8_problem_sfa(&host, m), *sfa_lt = contig_sfa_lt(gr, &host);
    int32_t *ends = malloc((size_t)groups * 4), *ids = malloc((size_t)m * 4);
    contig_layouts(gr, ends, ids);
    contig_job j = {.gr = gr, .n = n, .k = k};
    void *dsfa = gpu_alloc((size_t)(kb * s) * 4), *dends = gpu_alloc((size_t)groups * 4);
    void *dids = gpu_alloc((size_t)m * 4);
    gpu_upload(j.da = gpu_alloc((size_t)(m_pad * k)), host.a, (size_t)(m_pad * k));
    gpu_upload(j.db = gpu_alloc((size_t)(groups * n * k)), host.b, (size_t)(groups * n * k));
    gpu_upload(j.dsfb = gpu_alloc((size_t)(groups * nb * kb) * 4), host.sb,
               (size_t)(groups * nb * kb) * 4);
    gpu_upload(j.dsfa_lt = gpu_alloc((size_t)(m_pad * kb) * 4), sfa_lt, (size_t)(m_pad * kb) * 4);
    gpu_upload(dsfa, sfa, (size_t)(kb * s) * 4);
    gpu_upload(dends, ends, (size_t)groups * 4);
    gpu_upload(dids, ids, (size_t)m * 4);
    j.dd = gpu_alloc((size_t)(m_pad * n) * 2);
    for (int layout = 0; layout < 2; layout++) {
        kiln_gemm_fp8_contig_args *a = &j.args[layout];
        *a = (kiln_gemm_fp8_contig_args){
            .a = tensor2d(j.da, KILN_DTYPE_E4M3, m, k, k),
            .sfa = tensor2d(dsfa, KILN_DTYPE_F32, kb, m, s),
            .b = {.data = j.db, .dtype = KILN_DTYPE_E4M3, .ndim = 3, .shape = {groups, n, k}},
            .sfb = {.data = j.dsfb, .dtype = KILN_DTYPE_F32, .ndim = 3, .shape = {groups, nb, kb}},
            .d = tensor2d(j.dd, KILN_DTYPE_BF16, m, n, n),
            .m_alignment = CONTIG_ALIGN,
        };
        kiln_tensor layout_t = {.data = layout ? dids : dends, .dtype = KILN_DTYPE_I32,
                                .ndim = 1, .shape = {layout ? m : groups}};
        if (layout)
            a->row_expert = layout_t;
        else
            a->group_end = layout_t;
    }

    CUstream stream;
    CU_CHECK(gpu_drv()->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    double us[3] = {-1, -1, -1}, diff[3] = {-1, -1, -1}; /* kiln sums, kiln ids, cuBLASLt */
    for (j.layout = 0; j.layout < 2; j.layout++) {
        if ((us[j.layout] = time_batches(contig_kiln, &j, stream)) < 0)
            exit(1);
        diff[j.layout] = contig_diff(&j, &host, false);
    }
    if (contig_plans_make(&j)) {
        us[2] = time_batches(contig_cublaslt, &j, stream);
        diff[2] = us[2] > 0 ? contig_diff(&j, &host, true) : -1;
    }
    lt_loop_free(&j.loop);

    /* Padding rows are no work: the rows the groups hold count, not M_total. */
    double tflop = 2.0 * (double)gr->rows * n * k / 1e12, ratio = us[2] > 0 ? us[2] / us[0] : 0;
    if (json) {
        printf("{");
        print_contig_grouping(gr, true);
        printf(",\"n\":%lld,\"k\":%lld,\"kiln_us\":%.2f,"
               "\"kiln_tflops\":%.1f,\"kiln_diff\":%.2e,\"kiln_row_ids_us\":%.2f,"
               "\"kiln_row_ids_tflops\":%.1f,\"kiln_row_ids_diff\":%.2e,"
               "\"cublaslt_loop_us\":%.2f,\"cublaslt_loop_diff\":%.2e,\"ratio\":%.3f}\n",
               (long long)n, (long long)k, us[0], tflop / us[0] * 1e6, diff[0], us[1],
               tflop / us[1] * 1e6, diff[1], us[2], diff[2], ratio);
    } else {
        print_contig_grouping(gr, false);
        printf(", N %5lld K %5lld: kiln %8.1f us %7.1f TFLOP/s (diff "
               "%.1e), row ids %7.1f TFLOP/s (diff %.1e) | cuBLASLt loop %8.1f us %7.1f "
               "TFLOP/s (diff %.1e) x%.2f  [target 1450 TFLOP/s]\n",
               (long long)n, (long long)k, us[0], tflop / us[0] * 1e6, diff[0],
               tflop / us[1] * 1e6, diff[1], us[2], us[2] > 0 ? tflop / us[2] * 1e6 : 0, diff[2],
               ratio);
    }
    fflush(stdout);
    CU_CHECK(gpu_drv()->cuStreamDestroy(stream));
    void *dev[] = {j.da, j.db, j.dsfb, j.dsfa_lt, j.dd, dsfa, dends, dids};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        gpu_free(dev[i]);
    free(host.a);
    free(host.b);
    free(host.sa);
    free(host.sb);
    free(sfa);
    free(sfa_lt);
    free(ends);
    free(ids);
}

int main(int argc, char **argv)
{
    static const char *const flags[] = {"--masked", "--contig", "--sweep", "--trace",
                                        "--loads-only", "--math-only", NULL};
    bool set[6] = {false, false, false, false, false, false};
    bench_cli cli;
    if (!bench_parse(argc, argv, flags, set, &cli)) {
        fprintf(stderr,
                "usage: %s [--json] [--quick] [--single] [--masked | --contig] [--sweep] "
                "[--trace] [--loads-only] [--math-only] [MxNxK ...]\n",
                argv[0]);
        return 2;
    }
    const bool json = cli.json, quick = cli.quick, masked = set[0], contig = set[1], sweep = set[2],
               trace = set[3];
    part_too[PART_LOADS] = set[4];
    part_too[PART_MATH] = set[5];
    const int num_custom = cli.num_shapes;
    int64_t(*custom)[3] = cli.shapes;
    if (!bench_env_int("KILN_BENCH_B_READY", 0, &b_ready) ||
        !bench_env_int("KILN_BENCH_SETS", 0, &forced_sets) ||
        !bench_env_int("KILN_SWEEP_ROUNDS", 1, &sweep_rounds))
        return 2;
    if (forced_sets != 0) { /* each set's first read is then a warm-up launch of its own */
        forced_sets = bench_clamp_sets(forced_sets, 1);
        bench_single_warm_up = forced_sets > 2 ? forced_sets : 2;
    }
    sweep_rounds = sweep_rounds < 1                  ? 1
                   : sweep_rounds > SWEEP_MAX_ROUNDS ? SWEEP_MAX_ROUNDS
                                                     : sweep_rounds;
    ctx = gpu_ctx_or_skip();
    bench_single_banner(json);
    const char *chain_env = getenv("KILN_BENCH_CHAIN");
    chain = chain_env != NULL && strcmp(chain_env, "0") != 0;
    const char *ws_env = getenv("KILN_BENCH_WORKSPACE");
    if (ws_env == NULL || strcmp(ws_env, "0") != 0) {
        workspace_bytes = kiln_gemm_fp8_workspace_bytes(ctx);
        workspace = gpu_alloc((size_t)workspace_bytes);
        gpu_poison(workspace, (size_t)workspace_bytes, 0);
    }
    if (!json)
        printf("dense kiln_gemm_fp8 %s a workspace (KILN_BENCH_WORKSPACE=0: without), "
               "b_ready %d (KILN_BENCH_B_READY)%s\n",
               workspace != NULL ? "with" : "without", b_ready,
               chain ? ", each GEMM after a quantizer (KILN_BENCH_CHAIN)" : "");
    if (!lt_open())
        return 1;
    if (masked) {
        static const int64_t shapes[][2] = {{1, 1024}, {2, 512}, {4, 256}, {8, 64}, {32, 20}};
        static const int64_t nk[][2] = {{4096, 7168}, {7168, 2048}};
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < 5; i++)
                bench_masked(shapes[i][0], shapes[i][1], nk[j][0], nk[j][1], json, sweep);
    } else if (contig) {
        static contig_grouping groupings[2];
        static const int64_t nk[][2] = {{4096, 7168}, {7168, 2048}};
        int count = contig_groupings(groupings);
        if (count < 0)
            return 2;
        for (int jj = 0; jj < 2; jj++)
            for (int i = 0; i < count; i++)
                bench_contig(&groupings[i], nk[jj][0], nk[jj][1], json);
    } else if (num_custom > 0) {
        for (int i = 0; i < num_custom; i++)
            bench_shape(custom[i][0], custom[i][1], custom[i][2], json, false, sweep, trace);
    } else {
        static const int64_t nk[][2] = {{2112, 7168}, {24576, 1536}, {32768, 512}, {7168, 16384},
                                        {4096, 7168}, {7168, 2048},  {576, 7168}};
        static const int64_t ms[] = {64, 128, 4096, 1};
        for (int mi = 0; mi < (quick ? 3 : 4); mi++)
            for (int i = 0; i < 7; i++)
                bench_shape(ms[mi], nk[i][0], nk[i][1], json, ms[mi] != 1 && nk[i][0] != 576,
                            sweep, trace);
        if (geo_count > 0)
            printf(json ? "{\"geomean_speedup_vs_cublaslt_fp8\":%.3f,\"shapes\":%.0f}\n"
                        : "geomean speedup over cuBLASLt block-scaled FP8: x%.3f over %.0f shapes "
                          "(M in 64,128,4096; N != 576)  [target x1.5]\n",
                   exp(geo_sum / geo_count), geo_count);
    }
    lt_close();
    if (workspace != NULL)
        gpu_free(workspace);
    kiln_ctx_destroy(ctx);
    return 0;
}
