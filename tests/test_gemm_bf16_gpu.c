/* gpu suite: kiln_gemm_bf16 (every layout, BF16 and FP32 output) and its masked grouped
 * form against the FP64 CPU reference, on fresh random data, output poisoned with NaN,
 * every element checked for being written and finite, two runs bitwise equal; bad
 * arguments launch nothing. Rows checked against the reference: all of the first 1000,
 * plus 192 random rows beyond (M = 4096). The contiguous grouped form has its own program
 * (test_gemm_bf16_contig_gpu.c). Every test name holds "bf16", so KILN_TEST_FILTER='*bf16*'
 * selects exactly these. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#include <cmocka.h>

#include "../src/runtime/gemm_bf16.h"
#include "gemm_bf16_check.h"

static kiln_ctx *ctx;
static uint64_t seed;

/* ------------------------------------------------------------------ dense */

/* A is drawn from a normal distribution, B (the large operand) from random bits
 * (gemm_bf16_data.h): both fresh every run, never zero. */

typedef struct dense_problem {
    int64_t m_max, n, k;
    uint16_t *a, *b; /* host [m_max][k], [n][k] */
    float *af, *bf;
} dense_problem;

/* The rows checked against the reference: the first 1000, then 192 sampled. */
enum { DENSE_ROWS = 1000, SAMPLED_ROWS = 192 };

/* M rows of p in `layout` to a d of `out` dtype, twice (the second time with b_ready: B
 * loaded early, the same bits); every element finite, runs bitwise equal, the checked rows
 * against ref. */
static void check_dense(const dense_problem *p, int64_t m, int layout, bool f32,
                        const int64_t *rows, int64_t num_rows, const double *ref)
{
    int64_t n = p->n, k = p->k;
    bool a_mn = layout & 1, b_mn = layout & 2;
    /* MN-major operands get a padded row stride (a multiple of 8 elements). */
    int64_t lda = a_mn ? (m + 7) / 8 * 8 + 8 : k, ldb = b_mn ? n + 8 : k;
    void *da = bf16_upload(p->a, m, k, a_mn, lda), *db = bf16_upload(p->b, n, k, b_mn, ldb);
    size_t es = f32 ? 4 : 2, d_bytes = (size_t)(m * n) * es;
    void *dd[2] = {gpu_alloc(d_bytes), gpu_alloc(d_bytes)};
    void *d[2] = {malloc(d_bytes), malloc(d_bytes)};
    char what[128];
    snprintf(what, sizeof what, "%lldx%lldx%lld layout %d %s", (long long)m, (long long)n,
             (long long)k, layout, f32 ? "f32" : "bf16");
    kiln_gemm_bf16_args args = {
        .a = a_mn ? tensor2d(da, KILN_DTYPE_BF16, k, m, lda)
                  : tensor2d(da, KILN_DTYPE_BF16, m, k, lda),
        .b = b_mn ? tensor2d(db, KILN_DTYPE_BF16, k, n, ldb)
                  : tensor2d(db, KILN_DTYPE_BF16, n, k, ldb),
        .layout = layout,
    };
    for (int run = 0; run < 2; run++) {
        gpu_poison(dd[run], d_bytes, 0xffffffffu);
        args.d = tensor2d(dd[run], f32 ? KILN_DTYPE_F32 : KILN_DTYPE_BF16, m, n, n);
        args.b_ready = run;
        if (kiln_gemm_bf16(ctx, &args, NULL) != KILN_OK)
            fail_msg("%s: %s", what, kiln_ctx_errmsg(ctx));
        gpu_sync();
        gpu_download(d[run], dd[run], d_bytes);
    }
    for (int64_t i = 0; i < m * n; i++)
        if (!isfinite(out_value(d[0], i, f32)))
            fail_msg("%s: D[%lld][%lld] not written or not finite", what, (long long)(i / n),
                     (long long)(i % n));
    if (memcmp(d[0], d[1], d_bytes) != 0)
        fail_msg("%s: two runs differ", what);
    int64_t in_range = 0;
    while (in_range < num_rows && rows[in_range] < m)
        in_range++;
    double diff = compare(what, d[0], n, f32, rows, in_range, n, ref);
    print_message("  %-40s diff %.2e  (%lld rows vs FP64)\n", what, diff, (long long)in_range);
    gpu_free(da);
    gpu_free(db);
    gpu_free(dd[0]);
    gpu_free(dd[1]);
    free(d[0]);
    free(d[1]);
}

/* Every M of ms (ascending) for one (N, K), in the given layouts and output dtypes. */
static void check_shapes(int64_t n, int64_t k, const int64_t *ms, int count, const int *layouts,
                         int num_layouts, bool both_outputs)
{
    int64_t m_max = ms[count - 1];
    dense_problem p = {.m_max = m_max, .n = n, .k = k};
    p.a = bf16_random(m_max * k, &seed, false, &p.af);
    p.b = bf16_random(n * k, &seed, true, &p.bf);
    int64_t rows[DENSE_ROWS + SAMPLED_ROWS], num_rows = 0;
    for (int64_t r = 0; r < m_max && r < DENSE_ROWS; r++)
        rows[num_rows++] = r;
    /* sampled rows ascending, so every M checks a prefix of the list */
    for (int i = 0; i < SAMPLED_ROWS && m_max > DENSE_ROWS; i++)
        rows[num_rows++] = DENSE_ROWS + (int64_t)i * (m_max - DENSE_ROWS) / SAMPLED_ROWS +
                           (int64_t)(rng_next(&seed) % (uint64_t)((m_max - DENSE_ROWS) / SAMPLED_ROWS + 1));
    for (int64_t i = DENSE_ROWS + 1; i < num_rows; i++)
        if (rows[i] <= rows[i - 1] || rows[i] >= m_max)
            rows[i] = rows[i - 1] + 1 < m_max ? rows[i - 1] + 1 : m_max - 1;
    double *ref = malloc((size_t)(num_rows * n) * sizeof(double));
    bf16_reference(p.af, k, p.bf, n, k, rows, num_rows, ref);
    for (int i = 0; i < count; i++)
        for (int l = 0; l < num_layouts; l++)
            for (int out = 0; out < (both_outputs ? 2 : 1); out++)
                check_dense(&p, ms[i], layouts[l], out == 1, rows, num_rows, ref);
    free(ref);
    free(p.a);
    free(p.b);
    free(p.af);
    free(p.bf);
}

static const int nt_only[] = {KILN_GEMM_NT};
static const int all_layouts[] = {KILN_GEMM_NT, KILN_GEMM_TT, KILN_GEMM_NN, KILN_GEMM_TN};

static void test_bf16_deepseek_shapes(void **state)
{
    (void)state;
    static const int64_t nk[][2] = {{2112, 7168}, {24576, 1536}, {7168, 2048}, {4096, 7168},
                                    {576, 7168}};
    static const int64_t ms[] = {1, 64, 128, 1000, 4096};
    for (size_t i = 0; i < sizeof nk / sizeof nk[0]; i++)
        check_shapes(nk[i][0], nk[i][1], ms, 5, nt_only, 1, false);
}

/* The decode shapes whose picks stop 51's sweep moved (two tiles per CTA at (32768, 512),
 * cluster_k 2 at (7168, 16384), one 128-column tile per SM at (16384, 7168)), both outputs. */
static void test_bf16_decode_long_and_wide(void **state)
{
    (void)state;
    static const int64_t m_wide[] = {1, 64, 128}, m_deep[] = {1, 32, 64}, m_one[] = {64};
    check_shapes(32768, 512, m_wide, 3, nt_only, 1, true);
    check_shapes(7168, 16384, m_deep, 3, nt_only, 1, true);
    check_shapes(16384, 7168, m_one, 1, nt_only, 1, true);
}

/* N-major B at the decode shapes whose picks the N-major weights moved (stops 52-53): 64x128
 * over clusters of 4 at (2112, 7168) M <= 64, 64x128 over 2 at (7168, 16384), one 64x64
 * tile per CTA at (4096, 512) M <= 64. */
static void test_bf16_n_major_decode(void **state)
{
    (void)state;
    static const int n_major[] = {KILN_GEMM_NN, KILN_GEMM_TN};
    static const int64_t m_short[] = {1, 64}, m_deep[] = {64};
    check_shapes(2112, 7168, m_short, 2, n_major, 2, true);
    check_shapes(7168, 16384, m_deep, 1, n_major, 1, false);
    check_shapes(4096, 512, m_short, 2, n_major, 2, true);
}

static void test_bf16_odd_shapes(void **state)
{
    (void)state;
    static const int64_t m1[] = {3}, m2[] = {65, 300}, m3[] = {77, 2000}, m4[] = {1, 33};
    check_shapes(8, 64, m1, 1, nt_only, 1, true);
    check_shapes(272, 200, m2, 2, nt_only, 1, true); /* K not a multiple of 64 */
    check_shapes(1552, 640, m3, 2, nt_only, 1, false);
    check_shapes(4104, 2056, m4, 2, nt_only, 1, false);
}

/* A dense row the launch's rule (kiln__gemm_bf16_pick_dense on 132 SMs) must take with these
 * tiles, else it tests nothing new: block_n (0: any width) and cluster_k (0: no split). */
typedef struct launch_row {
    int64_t m, n, k;
    int layout, block_n, cluster_k;
    bool both_outputs;
} launch_row;

static void check_launch_rows(const launch_row *rows, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const launch_row *r = &rows[i];
        kiln__gemm_bf16_config c =
            kiln__gemm_bf16_pick_dense(r->m, r->n, r->k, r->layout, 0, 132, true);
        const int split = c.cluster_k > 1 ? c.cluster_k : 0;
        if ((r->block_n != 0 && c.block_n != r->block_n) || split != r->cluster_k)
            fail_msg("%lldx%lldx%lld: %d columns, cluster_k %d; want %d, %d", (long long)r->m,
                     (long long)r->n, (long long)r->k, c.block_n, c.cluster_k, r->block_n,
                     r->cluster_k);
        check_shapes(r->n, r->k, &r->m, 1, &r->layout, 1, r->both_outputs);
    }
}

/* Prefill in fewer tiles than SMs, each tile's K split over a cluster (the
 * KILN_GEMM_PREFILL_K_SPLIT rule, which the launch takes where M > 384), rows ending inside the
 * last m block, in every layout: clusters of 4 (500 x 576 x 7168, 20 tiles, both outputs;
 * 500 x 576 x 2048; 520 x 576 x 7168 with A M-major), of 2 (1000 x 576 x 2048 and 450 x 1024 x
 * 4096 with an N-major B; 400 x 1008 x 4096 with both operands MN-major, its last n block cut;
 * NT and TT there take split-issue tiles) and of 8 (400 x 256 x 7168,
 * both operands MN-major). */
static void test_bf16_prefill_k_split_partial_rows(void **state)
{
    (void)state;
    static const launch_row rows[] = {
        {500, 576, 7168, KILN_GEMM_NT, 0, 4, true},  {500, 576, 2048, KILN_GEMM_NT, 0, 4, false},
        {520, 576, 7168, KILN_GEMM_TT, 0, 4, false}, {1000, 576, 2048, KILN_GEMM_NN, 0, 2, false},
        {450, 1024, 4096, KILN_GEMM_NN, 0, 2, false}, {400, 1008, 4096, KILN_GEMM_TN, 0, 2, false},
        {400, 256, 7168, KILN_GEMM_TN, 0, 8, false},
    };
    check_launch_rows(rows, sizeof rows / sizeof rows[0]);
}

/* Prefill in one round of narrower tiles where 128 x 128 ones leave SMs idle (the launch's
 * rule), rows ending inside the last m block: 64 columns with a deferred store (500 x 2112 x
 * 2048, NT with both outputs, NN), 96 columns storing from registers (600 x 2112 x 7168 with
 * A M-major, 257 x 4000 x 7168 whose last n block is cut), 112 filling the SMs in two m blocks
 * (200 x 7168 x 2048). */
static void test_bf16_prefill_narrow_rows(void **state)
{
    (void)state;
    static const launch_row rows[] = {
        {500, 2112, 2048, KILN_GEMM_NT, 64, 0, true},
        {500, 2112, 2048, KILN_GEMM_NN, 64, 0, false},
        {600, 2112, 7168, KILN_GEMM_TT, 96, 0, false},
        {257, 4000, 7168, KILN_GEMM_NT, 96, 0, false},
        {200, 7168, 2048, KILN_GEMM_NT, 112, 0, false},
    };
    check_launch_rows(rows, sizeof rows / sizeof rows[0]);
}

/* Prefill in one round of 64 x 96 tiles whose A and B loads two producer warps issue (the
 * launch's rule, kiln__gemm_bf16_prefill_split_issue): 768 x 576 x 7168 with both outputs (FP32
 * takes another kernel), 900 x 576 x 2048 (its last m block 4 rows: A's short box), 450 x 1000 x
 * 4096 (the last n block cut to 40 columns, the last m block 2 rows), 1000 x 576 x 7168 with an
 * M-major A (TT; its last m block 40 rows). */
static void test_bf16_prefill_split_issue_rows(void **state)
{
    (void)state;
    static const struct {
        int64_t m, n, k;
        int layout;
    } rows[] = {
        {768, 576, 7168, KILN_GEMM_NT},
        {900, 576, 2048, KILN_GEMM_NT},
        {450, 1000, 4096, KILN_GEMM_NT},
        {1000, 576, 7168, KILN_GEMM_TT},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const int64_t m = rows[i].m, n = rows[i].n, k = rows[i].k;
        kiln__gemm_bf16_config c =
            kiln__gemm_bf16_pick_dense(m, n, k, rows[i].layout, 0, 132, true);
        if (!c.split_issue || c.block_m != 64 || c.block_n != 96)
            fail_msg("%lldx%lldx%lld layout %d: %dx%d split issue %d; want 64x96 split",
                     (long long)m, (long long)n, (long long)k, rows[i].layout, c.block_m,
                     c.block_n, c.split_issue);
        check_shapes(n, k, &m, 1, &rows[i].layout, 1, i == 0);
    }
}

/* 129-384 rows in two or three m blocks of decode's tiles, K over clusters, or of 128-row tiles
 * unsplit where as many fit (the launch's rule; A K-major 200 and 256 x 4096: 64 columns), the last
 * block partial or whole, in every layout (an N-major B takes 64-column tiles), both outputs on
 * the first. */
static void test_bf16_m_blocks_decode_rows(void **state)
{
    (void)state;
    static const struct {
        int64_t m, n, k;
        int layout;
    } cases[] = {
        {129, 576, 7168, KILN_GEMM_NT}, {200, 2112, 7168, KILN_GEMM_TT},
        {256, 576, 7168, KILN_GEMM_NN}, {150, 1024, 2048, KILN_GEMM_TN},
        {300, 2112, 7168, KILN_GEMM_NT}, {384, 576, 2048, KILN_GEMM_NN},
        {200, 4096, 7168, KILN_GEMM_NT}, {256, 4096, 7168, KILN_GEMM_NN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kiln__gemm_bf16_config c = kiln__gemm_bf16_pick(cases[i].m, cases[i].n, cases[i].k,
                                                        cases[i].layout, 0, 132);
        if (!kiln__gemm_bf16_m_blocks_decode(&c, cases[i].m, cases[i].n, cases[i].k, 132))
            fail_msg("%lldx%lldx%lld: the rule takes no m-block decode tiles",
                     (long long)cases[i].m, (long long)cases[i].n, (long long)cases[i].k);
        check_shapes(cases[i].n, cases[i].k, &cases[i].m, 1, &cases[i].layout, 1, i == 0);
    }
}

/* Every layout, BF16 and FP32 output, at decode and prefill sizes. */
static void test_bf16_layouts(void **state)
{
    (void)state;
    static const int64_t m1[] = {1, 64, 77, 128, 300}, m2[] = {64, 1000};
    check_shapes(1024, 512, m1, 5, all_layouts, 4, true);
    check_shapes(4096, 7168, m2, 2, all_layouts, 4, false);
}

static void test_bf16_f32_output(void **state)
{
    (void)state;
    static const int64_t ms[] = {64, 128, 4096};
    check_shapes(7168, 2048, ms, 3, nt_only, 1, true);
}

/* Each bad argument: the right status, a message naming the problem, nothing launched. */
static void test_bf16_bad_arguments(void **state)
{
    (void)state;
    const int64_t m = 64, n = 256, k = 512;
    void *da = gpu_alloc(m * k * 2), *db = gpu_alloc(n * k * 2), *dd = gpu_alloc(m * n * 4);
    gpu_poison(dd, m * n * 4, 0xffffffffu);
    kiln_gemm_bf16_args good = {
        .a = tensor2d(da, KILN_DTYPE_BF16, m, k, k),
        .b = tensor2d(db, KILN_DTYPE_BF16, n, k, k),
        .d = tensor2d(dd, KILN_DTYPE_BF16, m, n, n),
        .layout = KILN_GEMM_NT,
    };
    enum { CASES = 9 };
    kiln_gemm_bf16_args c[CASES];
    const char *named[CASES];
    for (int i = 0; i < CASES; i++)
        c[i] = good;
    c[0].a.shape[1] = c[0].b.shape[1] = 500, named[0] = "K = 500";
    c[1].b.shape[0] = 252, c[1].d.shape[1] = 252, named[1] = "N = 252";
    c[2].a.data = (char *)da + 8, named[2] = "not 16-byte aligned";
    c[3].d.strides[0] = 260, named[3] = "multiple of 16 bytes";
    c[4].b.shape[1] = 256, named[4] = "not a's K";
    c[5].d.shape[0] = 32, named[5] = "expected [M = 64";
    c[6].d.dtype = KILN_DTYPE_E4M3, named[6] = "expected bf16 or f32";
    c[7].b.dtype = KILN_DTYPE_F16, named[7] = "dtype f16";
    c[8].layout = 4, named[8] = "layout = 4";
    for (int i = 0; i < CASES; i++) {
        assert_int_equal(kiln_gemm_bf16(ctx, &c[i], NULL), KILN_ERR_INVALID_ARG);
        if (strstr(kiln_ctx_errmsg(ctx), named[i]) == NULL)
            fail_msg("case %d: \"%s\" does not say \"%s\"", i, kiln_ctx_errmsg(ctx), named[i]);
        assert_int_equal(kiln_cache_prune(ctx, INT64_MAX, NULL), KILN_OK); /* clear the error */
    }
    assert_int_equal(kiln_gemm_bf16(ctx, NULL, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_gemm_bf16(NULL, &good, NULL), KILN_ERR_INVALID_ARG);
    gpu_sync();
    uint8_t *d = malloc(m * n * 4);
    gpu_download(d, dd, m * n * 4);
    for (int i = 0; i < m * n * 4; i++)
        assert_int_equal(d[i], 0xff);
    /* M = 0 is a valid empty product. */
    kiln_gemm_bf16_args empty = good;
    empty.a.shape[0] = empty.d.shape[0] = 0;
    assert_int_equal(kiln_gemm_bf16(ctx, &empty, NULL), KILN_OK);
    free(d);
    gpu_free(da);
    gpu_free(db);
    gpu_free(dd);
}

/* ------------------------------------------------------------------ masked groups */

typedef struct masked_problem {
    int64_t g, m_max, n, k;
    uint16_t *a, *b; /* host [G][M_max][K], [G][N][K] */
    float *af, *bf;
    void *da, *db, *dmask;
} masked_problem;

static void masked_make(masked_problem *p, int64_t g, int64_t m_max, int64_t n, int64_t k)
{
    *p = (masked_problem){.g = g, .m_max = m_max, .n = n, .k = k};
    p->a = bf16_random(g * m_max * k, &seed, false, &p->af);
    p->b = bf16_random(g * n * k, &seed, true, &p->bf);
    p->da = gpu_alloc((size_t)(g * m_max * k) * 2);
    p->db = gpu_alloc((size_t)(g * n * k) * 2);
    p->dmask = gpu_alloc((size_t)g * 4);
    gpu_upload(p->da, p->a, (size_t)(g * m_max * k) * 2);
    gpu_upload(p->db, p->b, (size_t)(g * n * k) * 2);
}

static void masked_free(masked_problem *p)
{
    gpu_free(p->da);
    gpu_free(p->db);
    gpu_free(p->dmask);
    free(p->a);
    free(p->b);
    free(p->af);
    free(p->bf);
}

static kiln_gemm_bf16_masked_args masked_args(const masked_problem *p, void *dd, bool f32,
                                              int64_t expected)
{
    return (kiln_gemm_bf16_masked_args){
        .a = tensor3d(p->da, KILN_DTYPE_BF16, p->g, p->m_max, p->k),
        .b = tensor3d(p->db, KILN_DTYPE_BF16, p->g, p->n, p->k),
        .d = tensor3d(dd, f32 ? KILN_DTYPE_F32 : KILN_DTYPE_BF16, p->g, p->m_max, p->n),
        .masked_m = {.data = p->dmask, .dtype = KILN_DTYPE_I32, .ndim = 1, .shape = {p->g}},
        .expected_m = expected,
    };
}

/* Rows below masked_m[g] against the FP64 reference; every row past it still poisoned. */
static void masked_check(const masked_problem *p, const int32_t *masked, const void *d, bool f32)
{
    int64_t n = p->n, k = p->k;
    for (int64_t gi = 0; gi < p->g; gi++) {
        int64_t rows = masked[gi] < 0 ? 0 : masked[gi] > p->m_max ? p->m_max : masked[gi];
        int64_t first = gi * p->m_max * n;
        for (int64_t i = rows * n; i < p->m_max * n; i++)
            if (!out_poisoned(d, first + i, f32))
                fail_msg("masked G=%lld: group %lld row %lld (past masked_m %d) was written",
                         (long long)p->g, (long long)gi, (long long)(i / n), masked[gi]);
        if (rows == 0)
            continue;
        int64_t *ids = malloc((size_t)rows * sizeof *ids), *out_rows = malloc((size_t)rows * sizeof *ids);
        for (int64_t r = 0; r < rows; r++)
            ids[r] = r, out_rows[r] = gi * p->m_max + r;
        double *ref = malloc((size_t)(rows * n) * sizeof(double));
        bf16_reference(p->af + gi * p->m_max * k, k, p->bf + gi * n * k, n, k, ids, rows, ref);
        char what[64];
        snprintf(what, sizeof what, "masked group %lld", (long long)gi);
        compare(what, d, n, f32, out_rows, rows, n, ref);
        free(ids);
        free(out_rows);
        free(ref);
    }
}

static void check_masked(int64_t g, int64_t m_max, int64_t n, int64_t k, int64_t expected, bool f32)
{
    masked_problem p;
    masked_make(&p, g, m_max, n, k);
    int32_t *masked = malloc((size_t)g * 4);
    for (int64_t i = 0; i < g; i++) /* 0 and M_max among them */
        masked[i] = i == 0 ? 0 : i == 1 ? (int32_t)m_max : (int32_t)(rng_next(&seed) % (uint64_t)(m_max + 1));
    gpu_upload(p.dmask, masked, (size_t)g * 4);
    size_t d_bytes = (size_t)(g * m_max * n) * (f32 ? 4 : 2);
    void *dd = gpu_alloc(d_bytes);
    void *d[2] = {malloc(d_bytes), malloc(d_bytes)};
    for (int run = 0; run < 2; run++) {
        gpu_poison(dd, d_bytes, 0xffffffffu);
        kiln_gemm_bf16_masked_args args = masked_args(&p, dd, f32, expected);
        if (kiln_gemm_bf16_masked(ctx, &args, NULL) != KILN_OK)
            fail_msg("masked %lldx%lldx%lldx%lld: %s", (long long)g, (long long)m_max,
                     (long long)n, (long long)k, kiln_ctx_errmsg(ctx));
        gpu_sync();
        gpu_download(d[run], dd, d_bytes);
    }
    if (memcmp(d[0], d[1], d_bytes) != 0)
        fail_msg("masked: two runs differ");
    masked_check(&p, masked, d[0], f32);
    print_message("  masked %3lld groups x %4lld rows (expected %lld) x %5lld x %5lld %s: ok\n",
                  (long long)g, (long long)m_max, (long long)expected, (long long)n, (long long)k,
                  f32 ? "f32" : "bf16");
    free(masked);
    free(d[0]);
    free(d[1]);
    gpu_free(dd);
    masked_free(&p);
}

static void test_bf16_masked_groups(void **state)
{
    (void)state;
    check_masked(4, 256, 4096, 1024, 200, false);
    check_masked(8, 64, 7168, 2048, 40, false);
    check_masked(32, 24, 1024, 1024, 20, false);
    check_masked(3, 200, 272, 384, 150, true); /* M_max not a multiple of the tile, odd N */
    check_masked(2, 1024, 2112, 1536, 900, true);
}

/* One graph, captured once, replayed over new masked_m contents: right every time. */
static void test_bf16_masked_graph_replay(void **state)
{
    (void)state;
    const kiln__driver *drv = gpu_drv();
    masked_problem p;
    masked_make(&p, 6, 96, 1024, 1024);
    size_t d_bytes = (size_t)(p.g * p.m_max * p.n) * 2;
    void *dd = gpu_alloc(d_bytes);
    uint16_t *d = malloc(d_bytes);
    int32_t masked[6] = {96, 96, 96, 96, 96, 96};
    gpu_upload(p.dmask, masked, sizeof masked);
    CUstream stream;
    CU_CHECK(drv->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    kiln_gemm_bf16_masked_args args = masked_args(&p, dd, false, 48);
    assert_int_equal(kiln_gemm_bf16_masked(ctx, &args, (kiln_stream)stream), KILN_OK);
    CU_CHECK(drv->cuStreamSynchronize(stream));
    CUgraph graph;
    CUgraphExec exec;
    CU_CHECK(drv->cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_GLOBAL));
    assert_int_equal(kiln_gemm_bf16_masked(ctx, &args, (kiln_stream)stream), KILN_OK);
    CU_CHECK(drv->cuStreamEndCapture(stream, &graph));
    CU_CHECK(drv->cuGraphInstantiateWithFlags(&exec, graph, 0));
    for (int replay = 0; replay < 4; replay++) {
        for (int i = 0; i < 6; i++)
            masked[i] = (int32_t)(rng_next(&seed) % 97);
        masked[replay % 6] = replay % 2 ? 0 : 96;
        gpu_upload(p.dmask, masked, sizeof masked);
        gpu_poison(dd, d_bytes, 0xffffffffu);
        CU_CHECK(drv->cuGraphLaunch(exec, stream));
        CU_CHECK(drv->cuStreamSynchronize(stream));
        gpu_download(d, dd, d_bytes);
        masked_check(&p, masked, d, false);
    }
    CU_CHECK(drv->cuGraphExecDestroy(exec));
    CU_CHECK(drv->cuGraphDestroy(graph));
    CU_CHECK(drv->cuStreamDestroy(stream));
    free(d);
    gpu_free(dd);
    masked_free(&p);
}

/* Masked bad arguments: status, message, nothing launched (the contiguous form's are in
 * test_gemm_bf16_contig_gpu.c). */
static void test_bf16_masked_bad_arguments(void **state)
{
    (void)state;
    void *da = gpu_alloc(2 * 64 * 256 * 2), *db = gpu_alloc(2 * 128 * 256 * 2);
    void *dd = gpu_alloc(2 * 64 * 128 * 2), *dm = gpu_alloc(16);
    gpu_poison(dd, 2 * 64 * 128 * 2, 0xffffffffu);
    kiln_gemm_bf16_masked_args mgood = {
        .a = tensor3d(da, KILN_DTYPE_BF16, 2, 64, 256),
        .b = tensor3d(db, KILN_DTYPE_BF16, 2, 128, 256),
        .d = tensor3d(dd, KILN_DTYPE_BF16, 2, 64, 128),
        .masked_m = {.data = dm, .dtype = KILN_DTYPE_I32, .ndim = 1, .shape = {2}},
        .expected_m = 32,
    };
    kiln_gemm_bf16_masked_args m1 = mgood, m2 = mgood, m3 = mgood;
    m1.b.shape[0] = 3, m2.masked_m.shape[0] = 3, m3.expected_m = -1;
    const kiln_gemm_bf16_masked_args *mc[] = {&m1, &m2, &m3};
    const char *mnamed[] = {"b must be a contiguous [2, 128, 256]", "masked_m", "expected_m"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kiln_gemm_bf16_masked(ctx, mc[i], NULL), KILN_ERR_INVALID_ARG);
        if (strstr(kiln_ctx_errmsg(ctx), mnamed[i]) == NULL)
            fail_msg("masked case %d: \"%s\" does not say \"%s\"", i, kiln_ctx_errmsg(ctx), mnamed[i]);
        assert_int_equal(kiln_cache_prune(ctx, INT64_MAX, NULL), KILN_OK);
    }
    gpu_sync();
    uint8_t *d = malloc(2 * 64 * 128 * 2);
    gpu_download(d, dd, 2 * 64 * 128 * 2);
    for (int i = 0; i < 2 * 64 * 128 * 2; i++)
        assert_int_equal(d[i], 0xff);
    free(d);
    gpu_free(da);
    gpu_free(db);
    gpu_free(dd);
    gpu_free(dm);
}

/* Serving mode: a cache prewarmed without a GPU serves a KILN_JIT=0 context, launches
 * with and without b_ready alike (a kernel each); an N not prewarmed is KILN_ERR_MISS. */
static void test_bf16_prewarmed_cache_serves_jit_off(void **state)
{
    (void)state;
    char dir[32];
    kiln_ctx *server = gpu_jit_off_ctx(dir, "gemm_bf16 m=64 n=256 k=512");
    assert_non_null(server);
    const int64_t m = 64, warm_n = 256, n = 512, k = 512; /* n: an N that was not prewarmed */
    void *da = gpu_alloc(m * k * 2), *db = gpu_alloc(n * k * 2), *dd = gpu_alloc(m * n * 2);
    gpu_poison(da, m * k * 2, 0x3f803f80u); /* ones */
    gpu_poison(db, n * k * 2, 0x3f803f80u);
    uint16_t *d = malloc(m * warm_n * 2);
    kiln_gemm_bf16_args args = {
        .a = tensor2d(da, KILN_DTYPE_BF16, m, k, k),
        .b = tensor2d(db, KILN_DTYPE_BF16, warm_n, k, k),
        .d = tensor2d(dd, KILN_DTYPE_BF16, m, warm_n, warm_n),
        .layout = KILN_GEMM_NT,
    };
    for (args.b_ready = 0; args.b_ready <= 1; args.b_ready++) {
        gpu_poison(dd, m * warm_n * 2, 0xffffffffu);
        if (kiln_gemm_bf16(server, &args, NULL) != KILN_OK)
            fail_msg("KILN_JIT=0, b_ready %d: %s", args.b_ready, kiln_ctx_errmsg(server));
        gpu_sync();
        gpu_download(d, dd, m * warm_n * 2);
        for (int64_t i = 0; i < m * warm_n; i++) /* K ones times ones: 512, exact in BF16 */
            if (bf16_to_float(d[i]) != (float)k)
                fail_msg("KILN_JIT=0, b_ready %d: D[%lld] = %g, want %lld", args.b_ready,
                         (long long)i, bf16_to_float(d[i]), (long long)k);
    }
    args.b = tensor2d(db, KILN_DTYPE_BF16, n, k, k);
    args.d = tensor2d(dd, KILN_DTYPE_BF16, m, n, n);
    assert_int_equal(kiln_gemm_bf16(server, &args, NULL), KILN_ERR_MISS);
    assert_non_null(strstr(kiln_ctx_errmsg(server), "KILN_JIT=0"));
    free(d);
    gpu_free(da);
    gpu_free(db);
    gpu_free(dd);
    kiln_ctx_destroy(server);
    assert_int_equal(gpu_remove_dir(dir), 0);
}

int main(void)
{
    ctx = gpu_ctx_or_skip();
    seed = rng_fresh_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_bad_arguments),
        cmocka_unit_test(test_bf16_masked_bad_arguments),
        cmocka_unit_test(test_bf16_odd_shapes),
        cmocka_unit_test(test_bf16_layouts),
        cmocka_unit_test(test_bf16_prefill_k_split_partial_rows),
        cmocka_unit_test(test_bf16_prefill_narrow_rows),
        cmocka_unit_test(test_bf16_prefill_split_issue_rows),
        cmocka_unit_test(test_bf16_m_blocks_decode_rows),
        cmocka_unit_test(test_bf16_f32_output),
        cmocka_unit_test(test_bf16_deepseek_shapes),
        cmocka_unit_test(test_bf16_decode_long_and_wide),
        cmocka_unit_test(test_bf16_n_major_decode),
        cmocka_unit_test(test_bf16_masked_groups),
        cmocka_unit_test(test_bf16_masked_graph_replay),
        cmocka_unit_test(test_bf16_prewarmed_cache_serves_jit_off),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    kiln_ctx_destroy(ctx);
    return failed;
}
