/* gpu suite: the FP32-output mode of kiln_gemm_fp8, D (f32) = C + A·B^T with 1x128 scales
 * on both sides, against an FP64 CPU reference of the dequantized inputs plus C. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "gemm_fp8_data.h"

static kiln_ctx *ctx;
static uint64_t seed;

/* p with 1x128 B scales [k/128][n] (host) and their device copy in kiln's layout
 * [k/128][kiln_sf_mn_stride(n)]; returns the device copy. */
static void *make_column_scales(fp8_problem *p)
{
    int64_t kb = p->k / 128, n = p->n, stride = kiln_sf_mn_stride(n);
    p->sb_col = malloc((size_t)(kb * n) * 4);
    float *padded = calloc((size_t)(kb * stride), 4);
    for (int64_t b = 0; b < kb; b++)
        for (int64_t c = 0; c < n; c++)
            padded[b * stride + c] = p->sb_col[b * n + c] = (float)(1e-3 * (1.0 + 9.0 * rng_uniform(&seed)));
    void *dsfb = gpu_alloc((size_t)(kb * stride) * 4);
    gpu_upload(dsfb, padded, (size_t)(kb * stride) * 4);
    free(padded);
    return dsfb;
}

typedef enum { C_NONE, C_SEPARATE, C_ALIASES_D } c_mode;

static kiln_gemm_fp8_args f32_args(const fp8_problem *p, int64_t m, void *dsfa, void *dsfb,
                                   void *dc, void *dd)
{
    int64_t kb = p->k / 128;
    kiln_gemm_fp8_args args = {
        .a = tensor2d(p->da, KILN_DTYPE_E4M3, m, p->k, p->k),
        .sfa = tensor2d(dsfa, KILN_DTYPE_F32, kb, m, kiln_sf_mn_stride(m)),
        .b = tensor2d(p->db, KILN_DTYPE_E4M3, p->n, p->k, p->k),
        .sfb = tensor2d(dsfb, KILN_DTYPE_F32, kb, p->n, kiln_sf_mn_stride(p->n)),
        .d = tensor2d(dd, KILN_DTYPE_F32, m, p->n, p->n),
    };
    if (dc != NULL)
        args.c = tensor2d(dc, KILN_DTYPE_F32, m, p->n, p->n);
    return args;
}

static void check_f32(int64_t m, int64_t n, int64_t k, c_mode mode)
{
    fp8_problem p;
    fp8_problem_make(&p, m, n, k, &seed);
    void *dsfb = make_column_scales(&p);
    float *sfa = fp8_problem_sfa(&p, m);
    size_t sfa_bytes = (size_t)(k / 128 * kiln_sf_mn_stride(m)) * 4;
    void *dsfa = gpu_alloc(sfa_bytes);
    gpu_upload(dsfa, sfa, sfa_bytes);

    size_t d_bytes = (size_t)(m * n) * 4;
    float *c = malloc(d_bytes);
    for (int64_t i = 0; i < m * n; i++)
        c[i] = mode == C_NONE ? 0.0f : (float)(rng_normal(&seed) * 50.0);
    void *dc = mode == C_SEPARATE ? gpu_alloc(d_bytes) : NULL;
    if (dc)
        gpu_upload(dc, c, d_bytes);
    void *dd[2] = {gpu_alloc(d_bytes), gpu_alloc(d_bytes)};
    float *d[2] = {malloc(d_bytes), malloc(d_bytes)};
    for (int run = 0; run < 2; run++) {
        if (mode == C_ALIASES_D)
            gpu_upload(dd[run], c, d_bytes); /* D = D + A·B^T in place */
        else
            gpu_poison(dd[run], d_bytes, 0xffffffffu); /* NaN */
        void *cin = mode == C_SEPARATE ? dc : mode == C_ALIASES_D ? dd[run] : NULL;
        kiln_gemm_fp8_args args = f32_args(&p, m, dsfa, dsfb, cin, dd[run]);
        if (kiln_gemm_fp8(ctx, &args, NULL) != KILN_OK)
            fail_msg("f32 %lldx%lldx%lld: %s", (long long)m, (long long)n, (long long)k,
                     kiln_ctx_errmsg(ctx));
        gpu_sync();
        gpu_download(d[run], dd[run], d_bytes);
    }
    if (memcmp(d[0], d[1], d_bytes) != 0)
        fail_msg("f32 %lldx%lldx%lld: two runs differ", (long long)m, (long long)n, (long long)k);

    int64_t *rows = malloc((size_t)m * sizeof *rows);
    for (int64_t r = 0; r < m; r++)
        rows[r] = r;
    double *ref = malloc((size_t)(m * n) * sizeof(double));
    fp8_reference(&p, rows, m, ref);
    double sxy = 0, sxx_yy = 0, sref2 = 0, worst = 0;
    for (int64_t i = 0; i < m * n; i++) {
        ref[i] += c[i];
        sref2 += ref[i] * ref[i];
    }
    double rms = sqrt(sref2 / (double)(m * n));
    int64_t misses = 0, tight_misses = 0;
    for (int64_t i = 0; i < m * n; i++) {
        double x = d[0][i], y = ref[i];
        if (!isfinite(x))
            fail_msg("f32 %lldx%lldx%lld: D[%lld][%lld] not written or not finite", (long long)m,
                     (long long)n, (long long)k, (long long)(i / n), (long long)(i % n));
        double err = fabs(x - y);
        sxy += x * y;
        sxx_yy += x * x + y * y;
        worst = err / rms > worst ? err / rms : worst;
        /* FP32 output: what rounds is the tensor core's accumulation inside each K block
         * (fewer bits than FP32), so a rare element may miss the tight bound; none may miss
         * the loose one (a wrong scale, row, column or C misses it by far). */
        tight_misses += err > fabs(y) / 256 + 1e-3 * rms;
        if (err > fabs(y) / 32 + 5e-3 * rms && misses++ == 0)
            print_message("  f32 %lldx%lldx%lld: D[%lld][%lld] = %g, reference %g\n", (long long)m,
                          (long long)n, (long long)k, (long long)(i / n), (long long)(i % n), x, y);
    }
    double diff = 1.0 - 2.0 * sxy / sxx_yy;
    print_message("  f32 %5lld x %5lld x %5lld  c %-9s diff %.2e  worst |err|/rms %.1e  (%lld past "
                  "the tight bound)\n",
                  (long long)m, (long long)n, (long long)k,
                  mode == C_NONE ? "none" : mode == C_SEPARATE ? "separate" : "aliases-d", diff,
                  worst, (long long)tight_misses);
    assert_int_equal(misses, 0);
    assert_true(tight_misses <= 1 + m * n / 10000);
    assert_true(diff < 1e-3);
    free(ref);
    free(rows);
    free(c);
    free(d[0]);
    free(d[1]);
    free(sfa);
    gpu_free(dc);
    gpu_free(dd[0]);
    gpu_free(dd[1]);
    gpu_free(dsfa);
    gpu_free(dsfb);
    fp8_problem_free(&p);
}

static void test_f32_output(void **state)
{
    (void)state;
    check_f32(300, 272, 384, C_SEPARATE);
    check_f32(1, 4096, 7168, C_NONE);
    check_f32(64, 2112, 7168, C_NONE);
    check_f32(129, 576, 1536, C_SEPARATE);
    check_f32(64, 576, 7168, C_NONE); /* BF16 output: unrolled over clusters of 8; here: rolled */
    check_f32(1000, 7168, 2048, C_ALIASES_D);
    check_f32(77, 1552, 640, C_ALIASES_D);
}

/* Layout mistakes of the FP32 mode are argument errors, and nothing is written. */
static void test_f32_bad_arguments(void **state)
{
    (void)state;
    int64_t m = 64, n = 256, k = 256;
    fp8_problem p;
    fp8_problem_make_with(&p, m, n, k, &seed, true);
    void *dsfb = make_column_scales(&p);
    void *dsfa = gpu_alloc((size_t)(k / 128 * kiln_sf_mn_stride(m)) * 4);
    void *dd = gpu_alloc((size_t)(m * n) * 4), *dc = gpu_alloc((size_t)(m * n) * 4);
    gpu_poison(dd, (size_t)(m * n) * 4, 0x7fc00001u);

    kiln_gemm_fp8_args args = f32_args(&p, m, dsfa, dsfb, dc, dd);
    /* block scales instead of 1x128 ones */
    args.sfb = tensor2d(p.dsfb, KILN_DTYPE_F32, (n + 127) / 128, k / 128, k / 128);
    assert_int_equal(kiln_gemm_fp8(ctx, &args, NULL), KILN_ERR_INVALID_ARG);
    assert_non_null(strstr(kiln_ctx_errmsg(ctx), "sfb"));
    assert_int_equal(kiln_cache_prune(ctx, INT64_MAX, NULL), KILN_OK); /* clears the error */

    args = f32_args(&p, m, dsfa, dsfb, dc, dd);
    args.c = tensor2d(dc, KILN_DTYPE_F32, m, n, n + 16); /* c's stride is not d's */
    assert_int_equal(kiln_gemm_fp8(ctx, &args, NULL), KILN_ERR_INVALID_ARG);
    assert_non_null(strstr(kiln_ctx_errmsg(ctx), "c must be"));
    assert_int_equal(kiln_cache_prune(ctx, INT64_MAX, NULL), KILN_OK);

    args = f32_args(&p, m, dsfa, dsfb, dc, dd);
    args.c.dtype = KILN_DTYPE_BF16;
    assert_int_equal(kiln_gemm_fp8(ctx, &args, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_cache_prune(ctx, INT64_MAX, NULL), KILN_OK);

    args = f32_args(&p, m, dsfa, dsfb, dc, dd);
    args.d.dtype = KILN_DTYPE_BF16; /* c is only read in the FP32 mode */
    assert_int_equal(kiln_gemm_fp8(ctx, &args, NULL), KILN_ERR_INVALID_ARG);
    assert_non_null(strstr(kiln_ctx_errmsg(ctx), "FP32"));

    gpu_sync();
    uint32_t *d = malloc((size_t)(m * n) * 4);
    gpu_download(d, dd, (size_t)(m * n) * 4);
    for (int64_t i = 0; i < m * n; i++)
        assert_int_equal(d[i], 0x7fc00001u);
    free(d);
    gpu_free(dd);
    gpu_free(dc);
    gpu_free(dsfa);
    gpu_free(dsfb);
    fp8_problem_free(&p);
}

int main(void)
{
    ctx = gpu_ctx_or_skip();
    seed = rng_fresh_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32_bad_arguments),
        cmocka_unit_test(test_f32_output),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    kiln_ctx_destroy(ctx);
    return failed;
}
