/* kiln-bench-gemm-bf16: kiln_gemm_bf16 (NT, or KILN_BENCH_LAYOUT) against cuBLASLt BF16 in
 * the same layout, in one process on the same random inputs.
 *
 * Timing: CUDA events around batches of 20 launches that rotate over enough operand sets
 * to exceed the 60 MB L2; median batch over 15 batches, after warm-up (--single: lone
 * launches on one set, for a profiler that flushes the caches; see bench_common.h). Both
 * libraries are timed the same way; kiln runs with its defaults (PDL on). Both outputs are
 * checked against the FP64 reference on sampled rows.
 * --sweep: for each shape, the heuristic's configuration and its alternatives (decode: a
 * K split over clusters of 1, 2, 4, 8 CTAs with the tile width that fills the SMs, 8 and
 * 16 columns wider and half as wide; an N-major B every width it takes, 64 to 256;
 * prefill: 128-row tiles of widths 128..256), each timed the same way.
 * KILN_BENCH_SWEEP_STEP=S: the decode sweep takes every width that is a multiple of S (16
 * to 256) at every split instead (an N-major B's default is S = 64; 0: the widths around
 * the pick's). KILN_BENCH_SWEEP_BLOCK_M=64|128: decode tiles of that height (default: the
 * pick's, 64 rows up to M = 64).
 * KILN_BENCH_B_READY=S: kiln's GEMM with B early, up to S ring slots of B loaded before the
 * PDL wait (default 0: none; kiln_gemm_bf16's b_ready loads KILN__GEMM_B_EARLY_SLOTS).
 * KILN_BENCH_LAYOUT=NT|TT|NN|TN: the operands' layout (kiln_gemm_layout; default NT): A is
 * stored [K][M] for TT and TN, B [K][N] for NN and TN, for both libraries.
 * Usage: kiln-bench-gemm-bf16 [--json] [--quick] [--single] [--sweep] [MxNxK ...] */
#include <time.h>

#include "../src/runtime/gemm_bf16.h"
#include "../tests/gemm_bf16_data.h"
#include "bench_common.h"

static kiln_ctx *ctx;
static const kiln__gemm_bf16_config *forced; /* --sweep: the configuration kiln runs */
static int b_ready; /* KILN_BENCH_B_READY (B is the weights: the serving case) */
static kiln_gemm_layout layout; /* KILN_BENCH_LAYOUT */
static int sweep_step;          /* KILN_BENCH_SWEEP_STEP; 0: the widths around the pick's */
static int sweep_block_m;       /* KILN_BENCH_SWEEP_BLOCK_M; 0: the pick's tile height */

static bool a_m_major(void) { return (layout & 1) != 0; }
static bool b_n_major(void) { return (layout & 2) != 0; }

typedef struct operand_set {
    void *da, *db, *dd; /* A [M][K] ([K][M]: M-major), B [N][K] ([K][N]), D [M][N], bf16 */
} operand_set;

/* cuBLASLt is column-major: our row-major D [M, N] is its D' [N, M] (ld N) = B'' A'' with
 * B'' = our B as [N, K]: K-major B is column-major [K, N] (ld K) transposed, N-major B
 * column-major [N, K] (ld N) as it is; A'' = our A as [K, M]: K-major A is column-major
 * [K, M] (ld K) as it is, M-major A column-major [M, K] (ld M) transposed. So it writes our
 * layout directly, at any M. */
static bool lt_plan_make(lt_plan *p, int64_t m, int64_t n, int64_t k)
{
    memset(p, 0, sizeof *p);
    LT_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = b_n_major() ? CUBLAS_OP_N : CUBLAS_OP_T;
    cublasOperation_t tb = a_m_major() ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (b_n_major())
        LT_CHECK(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_16BF, (uint64_t)n, (uint64_t)k, n));
    else
        LT_CHECK(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_16BF, (uint64_t)k, (uint64_t)n, k));
    if (a_m_major())
        LT_CHECK(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_16BF, (uint64_t)m, (uint64_t)k, m));
    else
        LT_CHECK(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_16BF, (uint64_t)k, (uint64_t)m, k));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->ld, CUDA_R_16BF, (uint64_t)n, (uint64_t)m, n));
    return lt_plan_pick(p);
}

/* One launch of kiln (plan NULL) or cuBLASLt on operand set s. */
static bool run_once(lt_plan *plan, const operand_set *s, int64_t m, int64_t n, int64_t k,
                     CUstream stream)
{
    if (plan != NULL) {
        float alpha = 1.0f, beta = 0.0f;
        LT_CHECK(cublasLtMatmul(lt, plan->op, &alpha, s->db, plan->la, s->da, plan->lb, &beta,
                                s->dd, plan->ld, s->dd, plan->ld, &plan->algo, lt_workspace,
                                lt_workspace_bytes, (cudaStream_t)stream));
        return true;
    }
    kiln_gemm_bf16_args args = {.a = a_m_major() ? tensor2d(s->da, KILN_DTYPE_BF16, k, m, m)
                                              : tensor2d(s->da, KILN_DTYPE_BF16, m, k, k),
                                .b = b_n_major() ? tensor2d(s->db, KILN_DTYPE_BF16, k, n, n)
                                              : tensor2d(s->db, KILN_DTYPE_BF16, n, k, k),
                                .d = tensor2d(s->dd, KILN_DTYPE_BF16, m, n, n),
                                .layout = layout,
                                .b_ready = b_ready};
    if (kiln__gemm_bf16_with(ctx, &args, forced, (kiln_stream)stream) != KILN_OK) {
        fprintf(stderr, "kiln_gemm_bf16: %s\n", kiln_ctx_errmsg(ctx));
        return false;
    }
    return true;
}

typedef struct runner_job {
    lt_plan *plan; /* NULL: kiln */
    operand_set *sets;
    int num_sets;
    int64_t m, n, k;
} runner_job;

static bool runner_launch(void *user, int index, CUstream stream)
{
    runner_job *j = user;
    return run_once(j->plan, &j->sets[index % j->num_sets], j->m, j->n, j->k, stream);
}

/* Median microseconds per launch, or -1 when the runner fails. */
static double time_runner(lt_plan *plan, operand_set *sets, int num_sets, int64_t m, int64_t n,
                          int64_t k, CUstream stream)
{
    runner_job job = {plan, sets, num_sets, m, n, k};
    return time_batches(runner_launch, &job, stream);
}

/* diff of set 0's D against the FP64 reference on 8 rows spread over M. */
static double check_output(const operand_set *s, const float *af, const float *bf, int64_t m,
                           int64_t n, int64_t k)
{
    int64_t rows[8];
    for (int i = 0; i < 8; i++)
        rows[i] = (int64_t)(i * (m - 1) / 7);
    double *ref = malloc((size_t)(8 * n) * sizeof(double));
    bf16_reference(af, k, bf, n, k, rows, 8, ref);
    uint16_t *d = malloc((size_t)(m * n) * 2);
    gpu_download(d, s->dd, (size_t)(m * n) * 2);
    double sxy = 0, sxx = 0;
    for (int i = 0; i < 8; i++)
        for (int64_t c = 0; c < n; c++) {
            double x = bf16_to_float(d[rows[i] * n + c]), y = ref[i * n + c];
            sxy += x * y;
            sxx += x * x + y * y;
        }
    free(ref);
    free(d);
    return isfinite(sxy) ? 1.0 - 2.0 * sxy / sxx : 1.0;
}

static double geo_sum[2], geo_count[2]; /* [0]: M <= 128, [1]: prefill */

/* x [rows][cols] as [cols][rows] (in place: a new array replaces it). */
static uint16_t *transposed(uint16_t *x, int64_t rows, int64_t cols)
{
    uint16_t *t = malloc((size_t)(rows * cols) * 2);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            t[c * rows + r] = x[r * cols + c];
    free(x);
    return t;
}

/* Random operand sets (bench_operand_sets: at least 2 to exceed ~200 MB, one with --single),
 * stored in the layout's order; the first set's A [M][K] and B [N][K] also as floats in *af,
 * *bf when those are non-NULL. Returns the number of sets. */
static int sets_make(operand_set *sets, int64_t m, int64_t n, int64_t k, float **af, float **bf)
{
    uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)(m * 31 + n * 17 + k);
    double set_bytes = 2.0 * ((double)m * k + (double)n * k + (double)m * n);
    int num_sets = bench_operand_sets(set_bytes, 2);
    for (int i = 0; i < num_sets; i++) {
        uint16_t *a = bf16_random(m * k, &seed, true, i == 0 ? af : NULL);
        uint16_t *b = bf16_random(n * k, &seed, true, i == 0 ? bf : NULL);
        if (a_m_major())
            a = transposed(a, m, k);
        if (b_n_major())
            b = transposed(b, n, k);
        sets[i].da = gpu_alloc((size_t)(m * k) * 2);
        sets[i].db = gpu_alloc((size_t)(n * k) * 2);
        sets[i].dd = gpu_alloc((size_t)(m * n) * 2);
        gpu_upload(sets[i].da, a, (size_t)(m * k) * 2);
        gpu_upload(sets[i].db, b, (size_t)(n * k) * 2);
        free(a);
        free(b);
    }
    return num_sets;
}

static void sets_free(operand_set *sets, int num_sets)
{
    for (int i = 0; i < num_sets; i++) {
        gpu_free(sets[i].da);
        gpu_free(sets[i].db);
        gpu_free(sets[i].dd);
    }
}

static void bench_shape(int64_t m, int64_t n, int64_t k, bool json, bool target)
{
    double set_bytes = 2.0 * ((double)m * k + (double)n * k + (double)m * n);
    operand_set sets[MAX_SETS];
    float *af = NULL, *bf = NULL;
    int num_sets = sets_make(sets, m, n, k, &af, &bf);
    CUstream stream;
    CU_CHECK(gpu_drv()->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    gpu_poison(sets[0].dd, (size_t)(m * n) * 2, 0xffffffffu);
    double us_kiln = time_runner(NULL, sets, num_sets, m, n, k, stream);
    CU_CHECK(gpu_drv()->cuStreamSynchronize(stream));
    double diff_kiln = check_output(&sets[0], af, bf, m, n, k);
    lt_plan plan = {0};
    double us_lt = -1, diff_lt = -1;
    if (lt_plan_make(&plan, m, n, k)) {
        gpu_poison(sets[0].dd, (size_t)(m * n) * 2, 0xffffffffu);
        us_lt = time_runner(&plan, sets, num_sets, m, n, k, stream);
        CU_CHECK(gpu_drv()->cuStreamSynchronize(stream));
        diff_lt = check_output(&sets[0], af, bf, m, n, k);
    }
    lt_plan_free(&plan);

    double flops = 2.0 * (double)m * n * k, bytes = set_bytes;
    double ratio = us_lt > 0 && us_kiln > 0 ? us_lt / us_kiln : 0;
    if (target && ratio > 0) {
        geo_sum[m > 128] += log(ratio);
        geo_count[m > 128] += 1;
    }
    if (json)
        printf("{\"m\":%lld,\"n\":%lld,\"k\":%lld,\"kiln_us\":%.3f,\"kiln_tflops\":%.1f,"
               "\"kiln_gbs\":%.0f,\"kiln_diff\":%.2e,\"cublaslt_us\":%.3f,\"cublaslt_diff\":%.2e,"
               "\"ratio\":%.3f}\n",
               (long long)m, (long long)n, (long long)k, us_kiln, flops / us_kiln / 1e6,
               bytes / us_kiln / 1e3, diff_kiln, us_lt, diff_lt, ratio);
    else
        printf("gemm %5lld x %5lld x %5lld  kiln %8.2f us %6.1f TFLOP/s %5.0f GB/s (diff %.1e) | "
               "cuBLASLt %8.2f us %6.1f TFLOP/s (diff %.1e) | x%.2f\n",
               (long long)m, (long long)n, (long long)k, us_kiln, flops / us_kiln / 1e6,
               bytes / us_kiln / 1e3, diff_kiln, us_lt, us_lt > 0 ? flops / us_lt / 1e6 : 0,
               diff_lt, ratio);
    fflush(stdout);
    CU_CHECK(gpu_drv()->cuStreamDestroy(stream));
    sets_free(sets, num_sets);
    free(af);
    free(bf);
}

static int clamp_width(int64_t w)
{
    return w < 16 ? 16 : w > 256 ? 256 : (int)w;
}

/* The configurations --sweep tries for an M x N x K problem; returns how many. */
static int sweep_configs(int64_t m, int64_t n, int64_t k, kiln__gemm_bf16_config *out, int max)
{
    int count = 0;
    kiln__gemm_bf16_config base = {.block_m = 128, .group_n = 8, .layout = layout};
    if (m <= 128) {
        static const int splits[] = {1, 2, 4, 8};
        base.block_m = sweep_block_m > 0 ? sweep_block_m : m <= 64 ? 64 : 128;
        base.group_n = 1000;
        /* Each K split at the width that gives every cluster one tile (the pick's candidates),
         * one and two width steps wider (8 columns), and half as wide (two tiles per cluster:
         * the first one's store overlaps the second one's loads); with a sweep step, every
         * width that is a multiple of it. */
        const int step = kiln__gemm_bf16_width_step(layout);
        for (int i = 0; i < 4; i++) {
            if (splits[i] > 1 && (k + 63) / 64 < 4 * splits[i])
                continue;
            int widths[16], num_widths = 0;
            if (sweep_step > 0) {
                for (int w = sweep_step; w <= 256; w += sweep_step)
                    widths[num_widths++] = w;
            } else {
                int64_t clusters = kiln__resident_clusters(ctx->num_sms, splits[i]);
                int fill = clamp_width(((n + clusters - 1) / clusters + step - 1) / step * step);
                widths[num_widths++] = fill;
                widths[num_widths++] = clamp_width(fill + step);
                widths[num_widths++] = clamp_width(fill + 2 * step);
                widths[num_widths++] = clamp_width((fill / 2 + step - 1) / step * step);
            }
            for (int j = 0; j < num_widths && count < max; j++) {
                bool seen = false;
                for (int e = 0; e < j; e++)
                    seen |= widths[e] == widths[j];
                kiln__gemm_bf16_config c = base;
                c.block_n = widths[j];
                c.cluster_k = splits[i] > 1 ? splits[i] : 0;
                kiln__gemm_bf16_fit(&c);
                if (!seen && c.stages >= 2)
                    out[count++] = c;
            }
        }
    } else {
        static const int widths[] = {256, 224, 192, 176, 160, 144, 128};
        for (int i = 0; i < 7 && count < max; i++) {
            if (widths[i] % kiln__gemm_bf16_width_step(layout) != 0)
                continue; /* not a width an N-major B comes in */
            kiln__gemm_bf16_config c = base;
            c.block_n = widths[i];
            c.defer_store = kiln__gemm_bf16_defers_store(&c); /* as the prefill pick */
            kiln__gemm_bf16_fit(&c);
            out[count++] = c;
        }
    }
    return count;
}

static void sweep_shape(int64_t m, int64_t n, int64_t k)
{
    double set_bytes = 2.0 * ((double)m * k + (double)n * k + (double)m * n);
    operand_set sets[MAX_SETS];
    int num_sets = sets_make(sets, m, n, k, NULL, NULL);
    CUstream stream;
    CU_CHECK(gpu_drv()->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    lt_plan plan = {0};
    double us_lt = lt_plan_make(&plan, m, n, k) ? time_runner(&plan, sets, num_sets, m, n, k, stream) : -1;
    lt_plan_free(&plan);
    kiln__gemm_bf16_config pick = kiln__gemm_bf16_pick(m, n, k, layout, 0, ctx->num_sms), cfgs[64];
    int count = sweep_configs(m, n, k, cfgs, 64);
    double flops = 2.0 * (double)m * n * k;
    /* The pick first, as kiln runs it (scripts/ncu_durations.py labels the runs after it with
     * the configurations printed below, in order). */
    double us_pick = time_runner(NULL, sets, num_sets, m, n, k, stream);
    printf("pick  %5lld x %5lld x %5lld  %3dx%-3d s%-2d ck%d  %8.2f us\n", (long long)m,
           (long long)n, (long long)k, pick.block_m, pick.block_n, pick.stages, pick.cluster_k,
           us_pick);
    for (int i = 0; i < count; i++) {
        forced = &cfgs[i];
        double us = time_runner(NULL, sets, num_sets, m, n, k, stream);
        forced = NULL;
        bool chosen = cfgs[i].block_m == pick.block_m && cfgs[i].block_n == pick.block_n &&
                      cfgs[i].cluster_k == pick.cluster_k;
        printf("sweep %5lld x %5lld x %5lld  %3dx%-3d s%-2d ck%d  %8.2f us %6.1f TFLOP/s %5.0f GB/s "
               "| cuBLASLt %8.2f us | x%.2f%s\n",
               (long long)m, (long long)n, (long long)k, cfgs[i].block_m, cfgs[i].block_n,
               cfgs[i].stages, cfgs[i].cluster_k, us, flops / us / 1e6, set_bytes / us / 1e3, us_lt,
               us > 0 && us_lt > 0 ? us_lt / us : 0, chosen ? "  <- heuristic" : "");
        fflush(stdout);
    }
    CU_CHECK(gpu_drv()->cuStreamSynchronize(stream));
    CU_CHECK(gpu_drv()->cuStreamDestroy(stream));
    sets_free(sets, num_sets);
}

int main(int argc, char **argv)
{
    static const char *const flags[] = {"--sweep", NULL};
    bool set[1] = {false};
    bench_cli cli;
    if (!bench_parse(argc, argv, flags, set, &cli)) {
        fprintf(stderr, "usage: %s [--json] [--quick] [--single] [--sweep] [MxNxK ...]\n",
                argv[0]);
        return 2;
    }
    const bool json = cli.json, quick = cli.quick, sweep = set[0];
    const int num_custom = cli.num_shapes;
    int64_t(*custom)[3] = cli.shapes;
    static const char *const layout_names[] = {"NT", "TT", "NN", "TN"};
    const char *layout_env = getenv("KILN_BENCH_LAYOUT");
    for (int i = 0; layout_env != NULL && i <= 4; i++) {
        if (i == 4) {
            fprintf(stderr, "KILN_BENCH_LAYOUT=%s: expected NT, TT, NN or TN\n", layout_env);
            return 2;
        }
        if (strcmp(layout_env, layout_names[i]) == 0) {
            layout = (kiln_gemm_layout)i;
            break;
        }
    }
    if (layout != KILN_GEMM_NT && !json)
        printf("layout %s (KILN_BENCH_LAYOUT): A %s, B %s\n", layout_names[layout],
               a_m_major() ? "[K][M]" : "[M][K]", b_n_major() ? "[K][N]" : "[N][K]");
    if (!bench_env_int("KILN_BENCH_B_READY", 0, &b_ready) ||
        !bench_env_int("KILN_BENCH_SWEEP_BLOCK_M", 0, &sweep_block_m) ||
        !bench_env_int("KILN_BENCH_SWEEP_STEP", b_n_major() ? 64 : 0, &sweep_step))
        return 2;
    if (sweep_block_m != 0 && sweep_block_m != 64 && sweep_block_m != 128) {
        fprintf(stderr, "KILN_BENCH_SWEEP_BLOCK_M=%d: expected 64 or 128\n", sweep_block_m);
        return 2;
    }
    if (sweep_step < 0 || sweep_step > 256 || (sweep_step > 0 && sweep_step < 16) ||
        sweep_step % kiln__gemm_bf16_width_step(layout) != 0) {
        fprintf(stderr, "KILN_BENCH_SWEEP_STEP=%d: expected 0, or 16..256 and a multiple of %d\n",
                sweep_step, kiln__gemm_bf16_width_step(layout));
        return 2;
    }
    ctx = gpu_ctx_or_skip();
    bench_single_banner(json);
    if (b_ready != 0 && !json)
        printf("kiln with b_ready %d (KILN_BENCH_B_READY)\n", b_ready);
    if (!lt_open())
        return 1;
    if (sweep) {
        static const int64_t nk[][2] = {{2112, 7168}, {24576, 1536}, {7168, 2048}, {4096, 7168},
                                        {576, 7168}};
        static const int64_t ms[] = {64, 128, 4096};
        for (int i = 0; i < (num_custom > 0 ? num_custom : 15); i++) {
            if (num_custom > 0)
                sweep_shape(custom[i][0], custom[i][1], custom[i][2]);
            else
                sweep_shape(ms[i / 5], nk[i % 5][0], nk[i % 5][1]);
        }
    } else if (num_custom > 0) {
        for (int i = 0; i < num_custom; i++)
            bench_shape(custom[i][0], custom[i][1], custom[i][2], json, false);
    } else {
        static const int64_t nk[][2] = {{2112, 7168}, {24576, 1536}, {7168, 2048}, {4096, 7168},
                                        {576, 7168}};
        static const int64_t ms[] = {64, 128, 4096, 1};
        for (int mi = 0; mi < (quick ? 3 : 4); mi++)
            for (int i = 0; i < 5; i++)
                bench_shape(ms[mi], nk[i][0], nk[i][1], json, ms[mi] != 1);
        for (int p = 0; p < 2; p++)
            if (geo_count[p] > 0)
                printf(json ? "{\"geomean_vs_cublaslt_%s\":%.3f,\"shapes\":%.0f}\n"
                            : "geomean speedup over cuBLASLt BF16, %s: x%.3f over %.0f shapes\n",
                       p ? "m4096" : "m_le_128", exp(geo_sum[p] / geo_count[p]), geo_count[p]);
        if (!json)
            printf("summary targets: M <= 128 >= x1.20 per shape, M = 4096 >= x0.95 per shape\n");
    }
    lt_close();
    kiln_ctx_destroy(ctx);
    return 0;
}
