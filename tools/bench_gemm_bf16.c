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
 * prefill: 128-row tiles of widths 64, 96 and 128..256), each timed the same way and checked
 * against the FP64 reference on 8 rows spread over M (D poisoned with NaN first).
 * KILN_BENCH_SWEEP_CLUSTER_K=C1,C2,... (--sweep, prefill): instead of the widths, the
 * pick's width and 128 with each tile's K blocks split over a cluster of that many CTAs (1,
 * 2, 4 or 8; 1: no split), as decode splits them: for prefill shapes with fewer tiles than
 * SMs (the FP8 GEMM's KILN_SWEEP_CLUSTER_K, stop 62). KILN_BENCH_SWEEP_WIDTHS=W1,W2,...
 * (--sweep, prefill): those tile widths instead of 64, 96 and 128..256 (multiples of 8, at
 * most 16; one an N-major B cannot take is left out).
 * KILN_BENCH_SWEEP_STEP=S: the decode sweep takes every width that is a multiple of S (16
 * to 256) at every split instead (an N-major B's default is S = 64; 0: the widths around
 * the pick's). KILN_BENCH_SWEEP_BLOCK_M=64|128: decode tiles of that height (default: the
 * pick's, 64 rows up to M = 64); 128 with M = 129-384 sweeps decode's tiles in two or three
 * m blocks, each over its share of the SMs, instead of the prefill widths; 64 with M > 128
 * sweeps the prefill widths in 64-row tiles.
 * KILN_BENCH_B_READY=S: kiln's GEMM with B early, up to S ring slots of B loaded before the
 * PDL wait (default 0: none; kiln_gemm_bf16's b_ready loads KILN__GEMM_B_EARLY_SLOTS).
 * KILN_BENCH_LAYOUT=NT|TT|NN|TN: the operands' layout (kiln_gemm_layout; default NT): A is
 * stored [K][M] for TT and TN, B [K][N] for NN and TN, for both libraries.
 * KILN_BENCH_A_ROW_PAD=E: A's row stride (over M for TT and TN, over K otherwise) rounded up
 * to a multiple of E elements (8 to 4096; default 8: unpadded), for both libraries; an M-major
 * A at M not a multiple of 64 starts its rows off the 128-byte lines unless padded.
 * --contig: the contiguous grouped GEMM (kiln_gemm_bf16_contig) on the MoE prefill groupings
 * of the FP8 benchmark's --contig (4 x 8192 and 8 x 4096 rows, or KILN_BENCH_CONTIG's: see
 * kiln-bench-gemm-fp8) at (N, K) = (4096, 7168) and (7168, 2048), with the layout as prefix
 * sums and as row ids, against a loop of cuBLASLt BF16 GEMMs (one per group, same stream).
 * --masked: the masked grouped GEMM (kiln_gemm_bf16_masked) on the FP8 benchmark's decode
 * groupings (1 x 1024 ... 32 x 20 rows, same N and K) against a loop of cuBLASLt GEMMs over
 * each group's valid rows; KILN_BENCH_MASKED_CAPACITY=C: buffers of C rows per group (M_max;
 * default: the valid rows). Both grouped modes check every run's output against the FP64
 * reference on three rows of each group, print time, TFLOP/s (and effective TB/s for
 * --masked) and the ratio to the loop, and exit 1 after the last grouping when a kiln launch
 * failed. They are NT only, and take no shapes, --sweep, KILN_BENCH_LAYOUT or
 * KILN_BENCH_B_READY (the grouped calls have no layout or b_ready).
 * Usage: kiln-bench-gemm-bf16 [--json] [--quick] [--single] [--masked | --contig | [--sweep]
 *        [MxNxK ...]] */
#include <time.h>

#include "../src/runtime/gemm_bf16.h"
#include "../tests/gemm_bf16_data.h"
#include "bench_grouped.h"

static kiln_ctx *ctx;
static const kiln__gemm_bf16_config *forced; /* --sweep: the configuration kiln runs */
static int b_ready; /* KILN_BENCH_B_READY (B is the weights: the serving case) */
static kiln_gemm_layout layout; /* KILN_BENCH_LAYOUT */
static int a_row_pad = 8;       /* KILN_BENCH_A_ROW_PAD, elements */
static int sweep_step;          /* KILN_BENCH_SWEEP_STEP; 0: the widths around the pick's */
static int sweep_block_m;       /* KILN_BENCH_SWEEP_BLOCK_M; 0: the pick's tile height */
static int sweep_splits[4];     /* KILN_BENCH_SWEEP_CLUSTER_K's values */
static int num_sweep_splits;
static int sweep_widths[16];    /* KILN_BENCH_SWEEP_WIDTHS' values */
static int num_sweep_widths;

static bool a_m_major(void) { return (layout & 1) != 0; }
static bool b_n_major(void) { return (layout & 2) != 0; }

/* A's row stride in elements: its contiguous dimension padded to KILN_BENCH_A_ROW_PAD. */
static int64_t a_stride(int64_t m, int64_t k)
{
    int64_t inner = a_m_major() ? m : k;
    return (inner + a_row_pad - 1) / a_row_pad * a_row_pad;
}

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
    int64_t lda = a_stride(m, k);
    if (a_m_major())
        LT_CHECK(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_16BF, (uint64_t)m, (uint64_t)k, lda));
    else
        LT_CHECK(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_16BF, (uint64_t)k, (uint64_t)m, lda));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->ld, CUDA_R_16BF, (uint64_t)n, (uint64_t)m, n));
    return lt_plan_pick(p);
}

/* One cuBLASLt GEMM of plan p: D = A·B in the layout's terms (lt_plan_make). */
static bool lt_matmul(const lt_plan *p, const void *a, const void *b, void *d, CUstream stream)
{
    float alpha = 1.0f, beta = 0.0f;
    LT_CHECK(cublasLtMatmul(lt, p->op, &alpha, b, p->la, a, p->lb, &beta, d, p->ld, d, p->ld,
                            &p->algo, lt_workspace, lt_workspace_bytes, (cudaStream_t)stream));
    return true;
}

/* One launch of kiln (plan NULL) or cuBLASLt on operand set s. */
static bool run_once(lt_plan *plan, const operand_set *s, int64_t m, int64_t n, int64_t k,
                     CUstream stream)
{
    if (plan != NULL)
        return lt_matmul(plan, s->da, s->db, s->dd, stream);
    int64_t lda = a_stride(m, k);
    kiln_gemm_bf16_args args = {.a = a_m_major() ? tensor2d(s->da, KILN_DTYPE_BF16, k, m, lda)
                                              : tensor2d(s->da, KILN_DTYPE_BF16, m, k, lda),
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

/* The rows of D a run is checked on and their FP64 reference, made once for the runs
 * checked against it. D is seen as 2-D, [rows][N] (a masked [G][M_max] is G x M_max rows).
 * Dense: 8 rows spread over M; grouped: the first, an inner and the last row of each group
 * with rows (padding is not compared). */
typedef struct checked_rows {
    int64_t n;
    int num_rows;
    int64_t rows[3 * CONTIG_MAX_GROUPS];
    double *ref; /* [num_rows][n] */
} checked_rows;

/* diff of D's checked rows (dd: the device's [rows][n] BF16) against the reference; 1 when
 * one holds NaN (poison: a row the run did not write). */
static double checked_diff(const checked_rows *r, const uint16_t *dd)
{
    const int64_t n = r->n;
    uint16_t *row = malloc((size_t)n * 2);
    double sxy = 0, sxx = 0;
    for (int i = 0; i < r->num_rows; i++) {
        gpu_download(row, dd + r->rows[i] * n, (size_t)n * 2);
        for (int64_t c = 0; c < n; c++) {
            double x = bf16_to_float(row[c]), y = r->ref[i * n + c];
            sxy += x * y;
            sxx += x * x + y * y;
        }
    }
    free(row);
    return isfinite(sxy) ? 1.0 - 2.0 * sxy / sxx : 1.0;
}

/* diff of set 0's D against the FP64 reference on 8 rows spread over M. */
static double check_output(const operand_set *s, const float *af, const float *bf, int64_t m,
                           int64_t n, int64_t k)
{
    checked_rows r = {.n = n, .num_rows = 8};
    for (int i = 0; i < 8; i++)
        r.rows[i] = (int64_t)(i * (m - 1) / 7);
    r.ref = malloc((size_t)(8 * n) * sizeof(double));
    bf16_reference(af, k, bf, n, k, r.rows, 8, r.ref);
    double diff = checked_diff(&r, s->dd);
    free(r.ref);
    return diff;
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

/* x [rows][cols] copied into rows of stride elements (the padding zeroed); frees x. */
static uint16_t *row_padded(uint16_t *x, int64_t rows, int64_t cols, int64_t stride)
{
    if (stride == cols)
        return x;
    uint16_t *p = calloc((size_t)(rows * stride), 2);
    for (int64_t r = 0; r < rows; r++)
        memcpy(p + r * stride, x + r * cols, (size_t)cols * 2);
    free(x);
    return p;
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
        int64_t a_rows = a_m_major() ? k : m;
        a = row_padded(a, a_rows, a_m_major() ? m : k, a_stride(m, k));
        size_t a_bytes = (size_t)(a_rows * a_stride(m, k)) * 2;
        sets[i].da = gpu_alloc(a_bytes);
        sets[i].db = gpu_alloc((size_t)(n * k) * 2);
        sets[i].dd = gpu_alloc((size_t)(m * n) * 2);
        gpu_upload(sets[i].da, a, a_bytes);
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

static bool is_cluster_size(long v) { return v == 1 || v == 2 || v == 4 || v == 8; }
static bool is_tile_width(long v) { return v >= 16 && v <= 256 && v % 8 == 0; }

/* The environment variable `name`: a comma-separated list of at most max values that `ok`
 * takes, into out (*count of them); false, with a message naming `expected`, for anything
 * else. Unset or empty: no list. */
static bool parse_sweep_list(const char *name, int *out, int max, int *count,
                             bool (*ok)(long), const char *expected)
{
    const char *list = getenv(name);
    *count = 0;
    for (const char *p = list; p != NULL && *p != '\0';) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || !ok(v) || *count == max || (*end != ',' && *end != '\0')) {
            fprintf(stderr, "%s=%s: expected %s\n", name, list, expected);
            return false;
        }
        out[(*count)++] = (int)v;
        p = *end == ',' ? end + 1 : end;
    }
    return true;
}

/* kiln's median microseconds (forced's configuration, or the pick's) with set 0's D poisoned
 * first; *diff: D's diff against the FP64 reference (check_output; 1 for a failed run). */
static double checked_run(operand_set *sets, int num_sets, const float *af, const float *bf,
                          int64_t m, int64_t n, int64_t k, CUstream stream, double *diff)
{
    gpu_poison(sets[0].dd, (size_t)(m * n) * 2, 0xffffffffu);
    double us = time_runner(NULL, sets, num_sets, m, n, k, stream);
    CU_CHECK(gpu_drv()->cuStreamSynchronize(stream));
    *diff = us > 0 ? check_output(&sets[0], af, bf, m, n, k) : 1.0;
    return us;
}

/* The configurations --sweep tries for an M x N x K problem; returns how many. */
static int sweep_configs(int64_t m, int64_t n, int64_t k, kiln__gemm_bf16_config *out, int max)
{
    int count = 0;
    kiln__gemm_bf16_config base = {.block_m = 128, .group_n = 8, .layout = layout};
    /* 129-384 rows with KILN_BENCH_SWEEP_BLOCK_M=128: decode's tiles in two or three m blocks,
     * each over its share of the SMs (kiln__gemm_bf16_m_blocks_decode) */
    const bool m_blocks = m > 128 && m <= 384 && sweep_block_m == 128;
    if (m <= 128 || m_blocks) {
        static const int splits[] = {1, 2, 4, 8};
        const int sms = m_blocks ? ctx->num_sms / (int)((m + 127) / 128) : ctx->num_sms;
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
                int64_t clusters = kiln__resident_clusters(sms, splits[i]);
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
    } else if (num_sweep_splits > 0) {
        kiln__gemm_bf16_config pick = kiln__gemm_bf16_pick(m, n, k, layout, 0, ctx->num_sms);
        const int widths[] = {pick.block_n, 128};
        for (int j = 0; j < (pick.block_n != 128 ? 2 : 1); j++) {
            for (int i = 0; i < num_sweep_splits && count < max; i++) {
                kiln__gemm_bf16_config c = base;
                c.block_n = widths[j];
                c.cluster_k = sweep_splits[i] > 1 ? sweep_splits[i] : 0;
                c.defer_store = c.cluster_k == 0 && kiln__gemm_bf16_defers_store(&c);
                kiln__gemm_bf16_fit(&c);
                if (c.stages >= 2 && (c.cluster_k == 0 || (k + 63) / 64 >= c.cluster_k))
                    out[count++] = c;
            }
        }
    } else {
        /* 96 and 64: narrower tiles that fill the SMs in one round (the FP8 GEMM's
         * kiln__gemm_fp8_prefill_narrow, stop 67) */
        static const int default_widths[] = {256, 224, 192, 176, 160, 144, 128, 96, 64};
        const int *widths = num_sweep_widths > 0 ? sweep_widths : default_widths;
        const int num_widths = num_sweep_widths > 0
                                   ? num_sweep_widths
                                   : (int)(sizeof default_widths / sizeof default_widths[0]);
        base.block_m = sweep_block_m == 64 ? 64 : 128; /* KILN_BENCH_SWEEP_BLOCK_M=64 */
        for (int i = 0; i < num_widths && count < max; i++) {
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
    float *af = NULL, *bf = NULL;
    int num_sets = sets_make(sets, m, n, k, &af, &bf);
    CUstream stream;
    CU_CHECK(gpu_drv()->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    lt_plan plan = {0};
    double us_lt = lt_plan_make(&plan, m, n, k) ? time_runner(&plan, sets, num_sets, m, n, k, stream) : -1;
    lt_plan_free(&plan);
    kiln__gemm_bf16_config cfgs[64], pick = kiln__gemm_bf16_pick_dense( /* as the launch picks */
        m, n, k, layout, 0, ctx->num_sms, ctx->opts.gemm_prefill_k_split);
    int count = sweep_configs(m, n, k, cfgs, 32);
    /* KILN_BENCH_SWEEP_SPLIT_ISSUE=1: each configuration, then the same with its A and B
     * loads issued by two producer warps (split_issue) */
    const char *split = getenv("KILN_BENCH_SWEEP_SPLIT_ISSUE");
    if (split && atoi(split) == 1) {
        for (int i = count - 1; i >= 0; i--) {
            cfgs[2 * i] = cfgs[i];
            cfgs[2 * i + 1] = cfgs[i];
            cfgs[2 * i + 1].split_issue = 1;
        }
        count *= 2;
    }
    double flops = 2.0 * (double)m * n * k;
    /* The pick first, as kiln runs it (scripts/ncu_durations.py labels the runs after it with
     * the configurations printed below, in order). */
    double diff = 0;
    double us_pick = checked_run(sets, num_sets, af, bf, m, n, k, stream, &diff);
    printf("pick  %5lld x %5lld x %5lld  %3dx%-3d s%-2d ck%d%s  %8.2f us (diff %.1e)\n",
           (long long)m, (long long)n, (long long)k, pick.block_m, pick.block_n, pick.stages,
           pick.cluster_k, pick.split_issue ? "si" : "", us_pick, diff);
    for (int i = 0; i < count; i++) {
        forced = &cfgs[i];
        double us = checked_run(sets, num_sets, af, bf, m, n, k, stream, &diff);
        forced = NULL;
        bool chosen = cfgs[i].block_m == pick.block_m && cfgs[i].block_n == pick.block_n &&
                      cfgs[i].cluster_k == pick.cluster_k &&
                      cfgs[i].split_issue == pick.split_issue;
        printf("sweep %5lld x %5lld x %5lld  %3dx%-3d s%-2d ck%d%s  %8.2f us %6.1f TFLOP/s "
               "%5.0f GB/s (diff %.1e) | cuBLASLt %8.2f us | x%.2f%s\n",
               (long long)m, (long long)n, (long long)k, cfgs[i].block_m, cfgs[i].block_n,
               cfgs[i].stages, cfgs[i].cluster_k, cfgs[i].split_issue ? "si" : "", us,
               flops / us / 1e6, set_bytes / us / 1e3, diff,
               us_lt, us > 0 && us_lt > 0 ? us_lt / us : 0, chosen ? "  <- heuristic" : "");
        fflush(stdout);
    }
    CU_CHECK(gpu_drv()->cuStreamSynchronize(stream));
    CU_CHECK(gpu_drv()->cuStreamDestroy(stream));
    sets_free(sets, num_sets);
    free(af);
    free(bf);
}

/* ---------------------------------------------------------------- grouped modes */

/* --contig and --masked. Every run's D is poisoned with NaN first and checked after, so a run
 * that writes nothing cannot pass. A kiln launch that fails gives -1 for its run and the other
 * runs and groupings still go (the prefix sums and the row ids are separate kernels: one
 * failing says nothing of the other); main then exits 1. */
static bool grouped_failed;

/* A grouped kiln launch's status: true when it launched; else its message, and the run
 * marked failed. */
static bool check_launch(kiln_status status, const char *call)
{
    if (status == KILN_OK)
        return true;
    fprintf(stderr, "%s: %s\n", call, kiln_ctx_errmsg(ctx));
    grouped_failed = true;
    return false;
}

/* The cuBLASLt loop: group g's GEMM multiplies B[g] by A's rows first[g]... into the same rows
 * of D (A and D as 2-D, [rows][K] and [rows][N]), with its plan in loop (none: no rows).
 * lt_plan_make writes our row-major D at any M, so no rows are padded (unlike the FP8
 * benchmark's loop). */
static bool lt_loop_launch(const lt_loop *loop, const int64_t *first, int64_t groups,
                           const uint16_t *a, const uint16_t *b, uint16_t *d, int64_t n, int64_t k,
                           CUstream stream)
{
    for (int64_t g = 0; g < groups; g++) {
        int plan = loop->plan_of[g];
        if (plan >= 0 && !lt_matmul(&loop->plans[plan], a + first[g] * k, b + g * n * k,
                                    d + first[g] * n, stream))
            return false;
    }
    return true;
}

/* The loop's plan for `rows` rows at the (N, K) in user, an int64_t[2]. */
static bool lt_rows_plan(lt_plan *p, int64_t rows, void *user)
{
    const int64_t *nk = user;
    return lt_plan_make(p, rows, nk[0], nk[1]);
}

/* count BF16 values of device memory at src, as floats into dst. */
static void download_floats(float *dst, const uint16_t *src, int64_t count)
{
    uint16_t *h = malloc((size_t)count * 2);
    gpu_download(h, src, (size_t)count * 2);
    for (int64_t i = 0; i < count; i++)
        dst[i] = bf16_to_float(h[i]);
    free(h);
}

/* count random BF16 values (bf16_random's fast ones) in a new device buffer. */
static uint16_t *random_device(int64_t count, uint64_t *seed)
{
    uint16_t *h = bf16_random(count, seed, true, NULL);
    uint16_t *d = gpu_alloc((size_t)count * 2);
    gpu_upload(d, h, (size_t)count * 2);
    free(h);
    return d;
}

/* A grouped GEMM's checked rows: group g's are count[g] rows from row first[g] on, times
 * B[g] [N][K]. The reference reads the operands back from the device (B one group at a time:
 * as floats all at once it would take 3.8 GB at --masked 32 x 20, N 4096). */
static void checked_rows_make(checked_rows *r, const uint16_t *da, const uint16_t *db,
                              int64_t groups, const int64_t *first, const int64_t *count,
                              int64_t n, int64_t k)
{
    static const int64_t local[3] = {0, 1, 2}; /* the group's rows in af */
    float *af = malloc((size_t)(3 * k) * 4), *bf = malloc((size_t)(n * k) * 4);
    r->n = n;
    r->num_rows = 0;
    r->ref = malloc((size_t)(3 * groups * n) * sizeof(double));
    for (int64_t g = 0; g < groups; g++) {
        int64_t *rows = r->rows + r->num_rows;
        int num = 0;
        if (count[g] == 0)
            continue;
        rows[num++] = first[g];
        if (count[g] >= 3)
            rows[num++] = first[g] + count[g] / 3;
        if (count[g] >= 2)
            rows[num++] = first[g] + count[g] - 1;
        for (int i = 0; i < num; i++)
            download_floats(af + i * k, da + rows[i] * k, k);
        download_floats(bf, db + g * n * k, n * k);
        bf16_reference(af, k, bf, n, k, local, num, r->ref + r->num_rows * n);
        r->num_rows += num;
    }
    free(af);
    free(bf);
}

/* One grouped run: dd (d_bytes) poisoned, the launches timed, dd checked. Microseconds per
 * launch, -1 when a launch failed (*diff then -1 too). */
static double time_checked(launch_fn launch, void *job, uint16_t *dd, size_t d_bytes,
                           const checked_rows *ref, CUstream stream, double *diff)
{
    gpu_poison(dd, d_bytes, 0xffffffffu);
    double us = time_batches(launch, job, stream);
    *diff = us > 0 ? checked_diff(ref, dd) : -1;
    return us;
}

/* MoE prefill (--contig): bench_grouped.h's groupings, in one operand set (A and B are
 * 235-470 MB each: L2 cannot serve repeats). kiln takes the layout as prefix sums and as row
 * ids. */
typedef struct contig_job {
    const contig_grouping *gr;
    int64_t nk[2];
    uint16_t *da, *db, *dd;
    kiln_gemm_bf16_contig_args by_sums, by_ids;
    const kiln_gemm_bf16_contig_args *timed; /* by_sums or by_ids */
    lt_loop loop;                            /* a plan per distinct group size */
} contig_job;

static bool contig_kiln(void *user, int index, CUstream stream)
{
    const contig_job *j = user;
    (void)index;
    return check_launch(kiln_gemm_bf16_contig(ctx, j->timed, (kiln_stream)stream),
                        j->timed == &j->by_ids ? "kiln_gemm_bf16_contig (row ids)"
                                               : "kiln_gemm_bf16_contig (prefix sums)");
}

static bool contig_cublaslt(void *user, int index, CUstream stream)
{
    const contig_job *j = user;
    (void)index;
    return lt_loop_launch(&j->loop, j->gr->start, j->gr->groups, j->da, j->db, j->dd, j->nk[0],
                          j->nk[1], stream);
}

/* kiln's arguments, one per layout; the layouts' device copies in ends ([G]) and ids
 * ([M_total]). */
static void contig_args_make(contig_job *j, void *ends, void *ids)
{
    const int64_t groups = j->gr->groups, m = j->gr->m, n = j->nk[0], k = j->nk[1];
    const kiln_gemm_bf16_contig_args common = {
        .a = tensor2d(j->da, KILN_DTYPE_BF16, m, k, k),
        .b = tensor3d(j->db, KILN_DTYPE_BF16, groups, n, k),
        .d = tensor2d(j->dd, KILN_DTYPE_BF16, m, n, n),
        .m_alignment = CONTIG_ALIGN,
    };
    j->by_sums = j->by_ids = common;
    j->by_sums.group_end =
        (kiln_tensor){.data = ends, .dtype = KILN_DTYPE_I32, .ndim = 1, .shape = {groups}};
    j->by_ids.row_expert =
        (kiln_tensor){.data = ids, .dtype = KILN_DTYPE_I32, .ndim = 1, .shape = {m}};
}

/* One --contig line: us and diff of kiln's prefix sums, its row ids and the loop. The text
 * keeps the FP8 benchmark's shape ("contig G x ROWS rows, N n K k: kiln T us ... cuBLASLt
 * loop T us"): scripts/ncu_durations.py and ab-knob.sh read it back. */
static void print_contig(const contig_grouping *gr, int64_t n, int64_t k, const double us[3],
                         const double diff[3], bool json)
{
    /* Padding rows are no work: the rows the groups hold count, not M_total. */
    double tflop = 2.0 * (double)gr->rows * n * k / 1e12, tflops[3], ratio[2];
    for (int i = 0; i < 3; i++)
        tflops[i] = us[i] > 0 ? tflop / us[i] * 1e6 : 0;
    for (int i = 0; i < 2; i++)
        ratio[i] = us[i] > 0 && us[2] > 0 ? us[2] / us[i] : 0;
    if (json) {
        printf("{");
        print_contig_grouping(gr, true);
        printf(",\"n\":%lld,\"k\":%lld,\"kiln_us\":%.2f,\"kiln_tflops\":%.1f,\"kiln_diff\":%.2e,"
               "\"kiln_row_ids_us\":%.2f,\"kiln_row_ids_tflops\":%.1f,"
               "\"kiln_row_ids_diff\":%.2e,\"cublaslt_loop_us\":%.2f,"
               "\"cublaslt_loop_tflops\":%.1f,\"cublaslt_loop_diff\":%.2e,\"ratio\":%.3f,"
               "\"ratio_row_ids\":%.3f}\n",
               (long long)n, (long long)k, us[0], tflops[0], diff[0], us[1], tflops[1], diff[1],
               us[2], tflops[2], diff[2], ratio[0], ratio[1]);
    } else {
        print_contig_grouping(gr, false);
        printf(", N %5lld K %5lld: kiln %8.1f us %6.1f TFLOP/s (diff %.1e), row ids %8.1f us "
               "%6.1f TFLOP/s (diff %.1e) | cuBLASLt loop %8.1f us %6.1f TFLOP/s (diff %.1e) | "
               "x%.2f, row ids x%.2f\n",
               (long long)n, (long long)k, us[0], tflops[0], diff[0], us[1], tflops[1], diff[1],
               us[2], tflops[2], diff[2], ratio[0], ratio[1]);
    }
    fflush(stdout);
}

static void bench_contig(const contig_grouping *gr, int64_t n, int64_t k, bool json)
{
    const int64_t groups = gr->groups, m = gr->m;
    const size_t d_bytes = (size_t)(m * n) * 2;
    uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)(groups * 977 + n + k);
    contig_job j = {.gr = gr, .nk = {n, k}};
    j.da = random_device(m * k, &seed);
    j.db = random_device(groups * n * k, &seed);
    j.dd = gpu_alloc(d_bytes);
    int32_t *ends = malloc((size_t)groups * 4), *ids = malloc((size_t)m * 4);
    contig_layouts(gr, ends, ids);
    void *dends = gpu_alloc((size_t)groups * 4), *dids = gpu_alloc((size_t)m * 4);
    gpu_upload(dends, ends, (size_t)groups * 4);
    gpu_upload(dids, ids, (size_t)m * 4);
    contig_args_make(&j, dends, dids);
    checked_rows ref;
    checked_rows_make(&ref, j.da, j.db, groups, gr->start, gr->count, n, k);

    CUstream stream;
    CU_CHECK(gpu_drv()->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    double us[3] = {-1, -1, -1}, diff[3] = {-1, -1, -1}; /* kiln sums, kiln ids, cuBLASLt */
    for (int i = 0; i < 2; i++) {
        j.timed = i == 0 ? &j.by_sums : &j.by_ids;
        us[i] = time_checked(contig_kiln, &j, j.dd, d_bytes, &ref, stream, &diff[i]);
    }
    if (lt_loop_make(&j.loop, gr->count, groups, lt_rows_plan, j.nk))
        us[2] = time_checked(contig_cublaslt, &j, j.dd, d_bytes, &ref, stream, &diff[2]);
    lt_loop_free(&j.loop);
    print_contig(gr, n, k, us, diff, json);

    CU_CHECK(gpu_drv()->cuStreamDestroy(stream));
    gpu_free(j.da);
    gpu_free(j.db);
    gpu_free(j.dd);
    gpu_free(dends);
    gpu_free(dids);
    free(ends);
    free(ids);
    free(ref.ref);
}

/* MoE decode (--masked): G groups of `rows` valid rows each (masked_m = expected_m = rows) in
 * buffers of M_max = max(rows, KILN_BENCH_MASKED_CAPACITY) rows per group, in operand sets
 * that rotate as the dense ones do. The loop multiplies each group's valid rows only: the host
 * knows them here, where kiln reads them from device memory. */
static int masked_capacity; /* KILN_BENCH_MASKED_CAPACITY; 0: M_max = rows */

enum { MASKED_MAX_GROUPS = 32 }; /* bench_masked_all's most */

typedef struct masked_set {
    kiln_gemm_bf16_masked_args args;
    uint16_t *da, *db, *dd; /* A [G][M_max][K], B [G][N][K], D [G][M_max][N] */
    void *masked_m;
} masked_set;

typedef struct masked_job {
    masked_set sets[MAX_SETS];
    int num_sets;
    int64_t groups, m_max, rows, n, k;
    int64_t first[MASKED_MAX_GROUPS], count[MASKED_MAX_GROUPS]; /* g x M_max, rows */
    lt_loop loop; /* one plan: every group has `rows` rows */
} masked_job;

static void masked_set_make(masked_set *s, const masked_job *j, const int32_t *masked_m,
                            uint64_t *seed)
{
    const int64_t groups = j->groups, m_max = j->m_max, n = j->n, k = j->k;
    s->da = random_device(groups * m_max * k, seed);
    s->db = random_device(groups * n * k, seed);
    s->dd = gpu_alloc((size_t)(groups * m_max * n) * 2);
    s->masked_m = gpu_alloc((size_t)groups * 4);
    gpu_upload(s->masked_m, masked_m, (size_t)groups * 4);
    s->args = (kiln_gemm_bf16_masked_args){
        .a = tensor3d(s->da, KILN_DTYPE_BF16, groups, m_max, k),
        .b = tensor3d(s->db, KILN_DTYPE_BF16, groups, n, k),
        .d = tensor3d(s->dd, KILN_DTYPE_BF16, groups, m_max, n),
        .masked_m = {.data = s->masked_m, .dtype = KILN_DTYPE_I32, .ndim = 1, .shape = {groups}},
        .expected_m = j->rows,
    };
}

static bool masked_kiln(void *user, int index, CUstream stream)
{
    const masked_job *j = user;
    return check_launch(
        kiln_gemm_bf16_masked(ctx, &j->sets[index % j->num_sets].args, (kiln_stream)stream),
        "kiln_gemm_bf16_masked");
}

static bool masked_cublaslt(void *user, int index, CUstream stream)
{
    const masked_job *j = user;
    const masked_set *s = &j->sets[index % j->num_sets];
    return lt_loop_launch(&j->loop, j->first, j->groups, s->da, s->db, s->dd, j->n, j->k, stream);
}

/* One --masked line: us and diff of kiln [0] and the loop [1]. Effective bytes: A's valid
 * rows, every group's B, D's valid rows. */
static void print_masked(const masked_job *j, const double us[2], const double diff[2], bool json)
{
    const int64_t groups = j->groups, rows = j->rows, n = j->n, k = j->k;
    double flop = 2.0 * (double)(groups * rows) * n * k,
           bytes = 2.0 * ((double)(groups * rows) * k + (double)(groups * n) * k +
                          (double)(groups * rows) * n);
    double tflops[2], tbs[2], ratio = us[0] > 0 && us[1] > 0 ? us[1] / us[0] : 0;
    for (int i = 0; i < 2; i++) {
        tflops[i] = us[i] > 0 ? flop / us[i] / 1e6 : 0;
        tbs[i] = us[i] > 0 ? bytes / us[i] / 1e6 : 0;
    }
    if (json)
        printf("{\"masked_groups\":%lld,\"rows\":%lld,\"m_max\":%lld,\"n\":%lld,\"k\":%lld,"
               "\"kiln_us\":%.3f,\"kiln_tflops\":%.1f,\"kiln_tbs\":%.3f,\"kiln_diff\":%.2e,"
               "\"cublaslt_loop_us\":%.3f,\"cublaslt_loop_tflops\":%.1f,"
               "\"cublaslt_loop_tbs\":%.3f,\"cublaslt_loop_diff\":%.2e,\"ratio\":%.3f}\n",
               (long long)groups, (long long)rows, (long long)j->m_max, (long long)n, (long long)k,
               us[0], tflops[0], tbs[0], diff[0], us[1], tflops[1], tbs[1], diff[1], ratio);
    else
        printf("masked %2lld x %4lld rows, N %5lld K %5lld: kiln %8.2f us %6.1f TFLOP/s %5.2f "
               "TB/s (diff %.1e) | cuBLASLt loop %8.2f us %6.1f TFLOP/s %5.2f TB/s (diff %.1e) "
               "| x%.2f%s\n",
               (long long)groups, (long long)rows, (long long)n, (long long)k, us[0], tflops[0],
               tbs[0], diff[0], us[1], tflops[1], tbs[1], diff[1], ratio,
               j->m_max > rows ? " (M_max: KILN_BENCH_MASKED_CAPACITY)" : "");
    fflush(stdout);
}

static void bench_masked(int64_t groups, int64_t rows, int64_t n, int64_t k, bool json)
{
    masked_job j = {.groups = groups, .rows = rows, .n = n, .k = k};
    j.m_max = masked_capacity > rows ? masked_capacity : rows;
    const size_t d_bytes = (size_t)(groups * j.m_max * n) * 2;
    uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)(groups * 131 + rows);
    j.num_sets = bench_operand_sets(2.0 * (double)(groups * (j.m_max + n)) * k, 1);
    int32_t masked_m[MASKED_MAX_GROUPS];
    for (int64_t g = 0; g < groups; g++) {
        masked_m[g] = (int32_t)rows;
        j.first[g] = g * j.m_max;
        j.count[g] = rows;
    }
    for (int i = 0; i < j.num_sets; i++)
        masked_set_make(&j.sets[i], &j, masked_m, &seed);
    checked_rows ref; /* set 0's: the one checked */
    checked_rows_make(&ref, j.sets[0].da, j.sets[0].db, groups, j.first, j.count, n, k);

    CUstream stream;
    CU_CHECK(gpu_drv()->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    double us[2] = {-1, -1}, diff[2] = {-1, -1}; /* kiln, cuBLASLt loop */
    us[0] = time_checked(masked_kiln, &j, j.sets[0].dd, d_bytes, &ref, stream, &diff[0]);
    if (lt_loop_make(&j.loop, j.count, groups, lt_rows_plan, (int64_t[2]){n, k}))
        us[1] = time_checked(masked_cublaslt, &j, j.sets[0].dd, d_bytes, &ref, stream, &diff[1]);
    lt_loop_free(&j.loop);
    print_masked(&j, us, diff, json);

    CU_CHECK(gpu_drv()->cuStreamDestroy(stream));
    for (int i = 0; i < j.num_sets; i++) {
        masked_set *s = &j.sets[i];
        gpu_free(s->da);
        gpu_free(s->db);
        gpu_free(s->dd);
        gpu_free(s->masked_m);
    }
    free(ref.ref);
}

/* The grouped modes' (N, K): DeepSeek-V3's MoE GEMMs, as in the FP8 benchmark. */
static const int64_t grouped_nk[][2] = {{4096, 7168}, {7168, 2048}};

/* --masked: the FP8 benchmark's decode groupings (groups, valid rows per group). */
static void bench_masked_all(bool json)
{
    static const int64_t shapes[][2] = {{1, 1024}, {2, 512}, {4, 256}, {8, 64}, {32, 20}};
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 5; i++)
            bench_masked(shapes[i][0], shapes[i][1], grouped_nk[j][0], grouped_nk[j][1], json);
}

/* --contig: each of the count groupings (contig_groupings) at each (N, K). */
static void bench_contig_all(const contig_grouping *groupings, int count, bool json)
{
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < count; i++)
            bench_contig(&groupings[i], grouped_nk[j][0], grouped_nk[j][1], json);
}

/* The grouped modes' knobs, checked before any device work so that a bad value stops the run
 * with the variable named: KILN_BENCH_MASKED_CAPACITY, and with --contig KILN_BENCH_CONTIG's
 * groupings into groupings (*count of them). The dense GEMM's layout, b_ready and A padding
 * are refused: the grouped calls take none of them, and a knob they ignored would mislabel
 * the figures. */
static bool grouped_setup(bool contig, contig_grouping groupings[2], int *count)
{
    if (layout != KILN_GEMM_NT || b_ready != 0 || a_row_pad != 8) {
        fprintf(stderr, "KILN_BENCH_LAYOUT, KILN_BENCH_B_READY and KILN_BENCH_A_ROW_PAD: dense "
                        "only (the grouped GEMMs are NT with packed A and have no b_ready)\n");
        return false;
    }
    if (!bench_env_int("KILN_BENCH_MASKED_CAPACITY", 0, &masked_capacity))
        return false;
    if (masked_capacity < 0) {
        fprintf(stderr, "KILN_BENCH_MASKED_CAPACITY=%d: expected rows >= 0\n", masked_capacity);
        return false;
    }
    *count = contig ? contig_groupings(groupings) : 0;
    return *count >= 0;
}

int main(int argc, char **argv)
{
    static const char *const flags[] = {"--sweep", "--contig", "--masked", NULL};
    bool set[3] = {false, false, false};
    bench_cli cli;
    bool parsed = bench_parse(argc, argv, flags, set, &cli);
    const bool contig = set[1], masked = set[2];
    /* A grouped mode runs its own groupings: shapes, --sweep or the other mode with it would
     * be ignored. */
    if (!parsed || (contig && masked) || ((contig || masked) && (set[0] || cli.num_shapes > 0))) {
        fprintf(stderr,
                "usage: %s [--json] [--quick] [--single] [--masked | --contig | [--sweep] "
                "[MxNxK ...]]\n",
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
    if (layout != KILN_GEMM_NT && !json && !contig && !masked) /* grouped: refused below */
        printf("layout %s (KILN_BENCH_LAYOUT): A %s, B %s\n", layout_names[layout],
               a_m_major() ? "[K][M]" : "[M][K]", b_n_major() ? "[K][N]" : "[N][K]");
    if (!bench_env_int("KILN_BENCH_B_READY", 0, &b_ready) ||
        !bench_env_int("KILN_BENCH_A_ROW_PAD", 8, &a_row_pad) ||
        !bench_env_int("KILN_BENCH_SWEEP_BLOCK_M", 0, &sweep_block_m) ||
        !bench_env_int("KILN_BENCH_SWEEP_STEP", b_n_major() ? 64 : 0, &sweep_step))
        return 2;
    if (!parse_sweep_list("KILN_BENCH_SWEEP_CLUSTER_K", sweep_splits, 4, &num_sweep_splits,
                          is_cluster_size, "up to four of 1, 2, 4, 8") ||
        !parse_sweep_list("KILN_BENCH_SWEEP_WIDTHS", sweep_widths, 16, &num_sweep_widths,
                          is_tile_width, "up to 16 widths, multiples of 8 from 16 to 256"))
        return 2;
    if (a_row_pad < 8 || a_row_pad > 4096 || a_row_pad % 8 != 0) {
        fprintf(stderr, "KILN_BENCH_A_ROW_PAD=%d: expected a multiple of 8 from 8 to 4096\n",
                a_row_pad);
        return 2;
    }
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
    static contig_grouping groupings[2];
    int num_groupings = 0;
    if ((contig || masked) && !grouped_setup(contig, groupings, &num_groupings))
        return 2;
    ctx = gpu_ctx_or_skip();
    bench_single_banner(json);
    if (b_ready != 0 && !json)
        printf("kiln with b_ready %d (KILN_BENCH_B_READY)\n", b_ready);
    if (!lt_open())
        return 1;
    if (masked) {
        bench_masked_all(json);
    } else if (contig) {
        bench_contig_all(groupings, num_groupings, json);
    } else if (sweep) {
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
    return grouped_failed ? 1 : 0;
}
