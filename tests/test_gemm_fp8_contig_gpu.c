/* gpu suite: kiln_gemm_fp8_contig (MoE prefill, contiguous groups) with both layouts, the
 * DeepEP v2 prefix sums and an expert id per row, against the FP64 CPU reference of the
 * dequantized inputs: fresh random data, padding rows of A NaN, d poisoned (with 64 guard
 * rows past M_total), every element checked (rows of a group against the reference, every
 * other row still poisoned), two runs bitwise equal, and the two layouts bitwise equal to
 * each other; row ids in any order; bad layouts write nothing outside what they own; bad
 * arguments launch nothing; a cache prewarmed without a GPU serves both layouts with
 * KILN_JIT=0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#include <cmocka.h>

#include "../src/runtime/internal.h"
#include "contig_layout.h"
#include "gemm_fp8_data.h"

static kiln_ctx *ctx;
static uint64_t seed;

/* G groups of counts[g] rows, group g starting at the next multiple of align. */
typedef struct contig_problem {
    contig_base base; /* the layout, d and the sizes (contig_layout.h) */
    uint8_t *a, *b;   /* host [M_total][K] (padding rows NaN), [G][N][K] */
    float *sa, *sb;   /* host [M_total][K/128], [G][N/128][K/128] */
    void *da, *db, *dsfa, *dsfb;
} contig_problem;

static void contig_make(contig_problem *p, int64_t g, int64_t n, int64_t k, int64_t align,
                        const int32_t *counts)
{
    *p = (contig_problem){
        .base = {.g = g, .n = n, .k = k, .align = align, .counts = counts, .elem = 2}};
    contig_base *c = &p->base;
    int64_t kb = k / 128, nb = (n + 127) / 128;
    c->start = malloc((size_t)g * sizeof *c->start);
    int64_t m = c->m = contig_starts(g, align, counts, c->start), s = kiln_sf_mn_stride(m);
    p->a = malloc((size_t)(m * k));
    p->b = malloc((size_t)(g * n * k));
    p->sa = malloc((size_t)(m * kb) * 4);
    p->sb = malloc((size_t)(g * nb * kb) * 4);
    memset(p->a, 0x7f, (size_t)(m * k)); /* E4M3 NaN: a stored padding row shows */
    for (int64_t i = 0; i < g; i++)
        for (int64_t r = c->start[i] * k; r < (c->start[i] + counts[i]) * k; r++)
            p->a[r] = float_to_e4m3((float)(rng_normal(&seed) * 100.0));
    for (int64_t i = 0; i < g * n * k; i++)
        p->b[i] = float_to_e4m3((float)(rng_normal(&seed) * 100.0));
    for (int64_t i = 0; i < m * kb; i++)
        p->sa[i] = (float)(1e-3 * (1.0 + 9.0 * rng_uniform(&seed)));
    for (int64_t i = 0; i < g * nb * kb; i++)
        p->sb[i] = (float)(1e-3 * (1.0 + 9.0 * rng_uniform(&seed)));
    float *sfa = calloc((size_t)(kb * s), 4);
    for (int64_t r = 0; r < m; r++)
        for (int64_t bk = 0; bk < kb; bk++)
            sfa[bk * s + r] = p->sa[r * kb + bk];
    p->da = gpu_alloc((size_t)(m * k));
    p->db = gpu_alloc((size_t)(g * n * k));
    p->dsfa = gpu_alloc((size_t)(kb * s) * 4);
    p->dsfb = gpu_alloc((size_t)(g * nb * kb) * 4);
    c->dlayout = gpu_alloc((size_t)(m > g ? m : g) * 4);
    c->d_bytes = (size_t)((m + CONTIG_GUARD_ROWS) * n) * 2;
    c->dd = gpu_alloc(c->d_bytes);
    gpu_upload(p->da, p->a, (size_t)(m * k));
    gpu_upload(p->db, p->b, (size_t)(g * n * k));
    gpu_upload(p->dsfa, sfa, (size_t)(kb * s) * 4);
    gpu_upload(p->dsfb, p->sb, (size_t)(g * nb * kb) * 4);
    free(sfa);
}

static void contig_free(contig_problem *p)
{
    void *dev[] = {p->da, p->db, p->dsfa, p->dsfb, p->base.dlayout, p->base.dd};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        gpu_free(dev[i]);
    void *host[] = {p->a, p->b, p->sa, p->sb, p->base.start};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        free(host[i]);
}

/* The arguments over p, the layout in p->dlayout: G prefix sums, or M_total row ids. */
static kiln_gemm_fp8_contig_args contig_args(const contig_problem *p, bool by_row)
{
    const contig_base *c = &p->base;
    int64_t kb = c->k / 128;
    kiln_tensor layout = {.data = c->dlayout, .dtype = KILN_DTYPE_I32, .ndim = 1,
                          .shape = {by_row ? c->m : c->g}};
    kiln_gemm_fp8_contig_args args = {
        .a = tensor2d(p->da, KILN_DTYPE_E4M3, c->m, c->k, c->k),
        .sfa = tensor2d(p->dsfa, KILN_DTYPE_F32, kb, c->m, kiln_sf_mn_stride(c->m)),
        .b = tensor3d(p->db, KILN_DTYPE_E4M3, c->g, c->n, c->k),
        .sfb = tensor3d(p->dsfb, KILN_DTYPE_F32, c->g, (c->n + 127) / 128, kb),
        .d = tensor2d(c->dd, KILN_DTYPE_BF16, c->m, c->n, c->n),
        .m_alignment = c->align,
    };
    if (by_row)
        args.row_expert = layout;
    else
        args.group_end = layout;
    return args;
}

static kiln_status launch_contig(const contig_base *base, bool by_row)
{
    kiln_gemm_fp8_contig_args args = contig_args((const contig_problem *)base, by_row);
    return kiln_gemm_fp8_contig(ctx, &args, NULL);
}

/* owner[r] for r < M_total: the group whose product row r of d must hold, or -1 where d
 * must still be poisoned (padding, rows of a bad layout); rows past M_total: poisoned. */
static void contig_check(const contig_base *base, const int32_t *owner, const void *out,
                         const char *what)
{
    const contig_problem *p = (const contig_problem *)base;
    const uint16_t *d = out;
    int64_t n = base->n, k = base->k, kb = k / 128, nb = (n + 127) / 128;
    contig_check_unowned(base, owner, d, what);
    int64_t *rows = malloc((size_t)base->m * sizeof *rows);
    for (int64_t gi = 0; gi < base->g; gi++) {
        int64_t count = contig_owned_rows(owner, base->m, gi, rows);
        if (count == 0)
            continue;
        fp8_problem view = {.m_max = base->m, .n = n, .k = k, .a = p->a,
                            .b = p->b + gi * n * k, .sa = p->sa, .sb = p->sb + gi * nb * kb};
        double *ref = malloc((size_t)(count * n) * sizeof(double));
        fp8_reference(&view, rows, count, ref);
        double sxy = 0, sxx = 0, sref2 = 0;
        for (int64_t j = 0; j < count * n; j++)
            sref2 += ref[j] * ref[j];
        double rms = sqrt(sref2 / (double)(count * n));
        for (int64_t j = 0; j < count * n; j++) {
            double x = bf16_to_float(d[rows[j / n] * n + j % n]), y = ref[j];
            /* the dense test's loose bound: a wrong scale, row, column or group misses it */
            if (!isfinite(x) || fabs(x - y) > fabs(y) / 16 + 1e-2 * rms)
                fail_msg("%s group %lld: D[%lld][%lld] = %g, reference %g", what, (long long)gi,
                         (long long)rows[j / n], (long long)(j % n), x, y);
            sxy += x * y;
            sxx += x * x + y * y;
        }
        if (!(1.0 - 2.0 * sxy / sxx < 1e-3))
            fail_msg("%s group %lld: diff %.3e", what, (long long)gi, 1.0 - 2.0 * sxy / sxx);
        free(ref);
    }
    free(rows);
}

static const contig_suite suite = {.launch = launch_contig, .check = contig_check, .ctx = &ctx};

static void check_contig_layouts(int64_t g, int64_t n, int64_t k, int64_t align,
                                 const int32_t *counts)
{
    contig_problem p;
    contig_make(&p, g, n, k, align, counts);
    contig_check_layouts(&suite, &p.base);
    contig_free(&p);
}

static void test_contig_layouts(void **state)
{
    (void)state;
    static const int32_t c1[] = {300, 0, 1, 515}, c2[] = {129, 64, 200}, c4[] = {10, 70, 5};
    check_contig_layouts(4, 4096, 7168, 128, c1); /* an empty group, M_total off the alignment */
    check_contig_layouts(3, 576, 1536, 128, c2);
    int32_t c3[8];
    for (int i = 0; i < 8; i++)
        c3[i] = (int32_t)(rng_next(&seed) % 600);
    c3[rng_next(&seed) % 8] = 0;
    check_contig_layouts(8, 7168, 2048, 256, c3);
    check_contig_layouts(3, 1024, 512, 64, c4); /* 64-row tiles */
}

static void check_row_ids_any_order(int64_t g, int64_t n, int64_t k, const int32_t *counts)
{
    contig_problem p;
    contig_make(&p, g, n, k, 128, counts);
    contig_check_any_order(&suite, &p.base, &seed);
    contig_free(&p);
}

/* KILN_GEMM_TALL_TILES 2 and 3: both layouts in 192- and 256-row tiles. Prefix sums: a
 * group's last tile runs into the next group's rows. Row ids: a tile that holds two groups
 * (group starts at multiples of 128 inside a tile) is computed once for each; the two
 * layouts still give the same bits. */
static void test_contig_tall_tiles(void **state)
{
    (void)state;
    for (int knob = 2; knob <= 3; knob++) {
        kiln_options opts;
        assert_int_equal(kiln_options_init(&opts), KILN_OK);
        opts.gemm_tall_tiles = knob;
        kiln_ctx *tall = NULL, *shared = ctx;
        assert_int_equal(kiln_ctx_create(&tall, &opts), KILN_OK);
        ctx = tall; /* the suite launches on ctx */
        static const int32_t c1[] = {300, 0, 1, 515}, c2[] = {129, 64, 200, 193, 191};
        check_contig_layouts(4, 4096, 7168, 128, c1);
        check_contig_layouts(5, 7168, 2048, 128, c2);
        int32_t c3[6];
        for (int i = 0; i < 6; i++)
            c3[i] = (int32_t)(rng_next(&seed) % 900);
        check_contig_layouts(6, 2112, 1024, 256, c3);
        check_row_ids_any_order(5, 1024, 1024, c2);
        /* Groups of whole 256-row tiles, 224 tiles on 132 SMs: most CTAs run two, so with
         * prefix sums a 256-row tile is stored while the next one runs (the deferred store). */
        static const int32_t whole[] = {1024, 768, 1280, 512};
        check_contig_layouts(4, 2048, 512, 256, whole);
        ctx = shared;
        kiln_ctx_destroy(tall);
    }
}

/* The same with the default tiles (128 rows at this size), and 64-row ones. */
static void test_contig_row_ids_any_order(void **state)
{
    (void)state;
    static const int32_t c1[] = {300, 0, 1, 515}, c2[] = {40, 3, 17};
    check_row_ids_any_order(4, 2048, 2048, c1);
    check_row_ids_any_order(3, 256, 512, c2);
}

static void test_contig_bad_prefix_sums(void **state)
{
    (void)state;
    static const int32_t counts[] = {300, 0, 1, 515};
    contig_problem p;
    contig_make(&p, 4, 1024, 512, 128, counts);
    contig_check_bad_prefix_sums(&suite, &p.base);
    contig_free(&p);
}

static void test_contig_bad_row_ids(void **state)
{
    (void)state;
    static const int32_t counts[] = CONTIG_BAD_IDS_COUNTS;
    contig_problem p;
    contig_make(&p, 4, 1024, 512, 128, counts);
    contig_check_bad_row_ids(&suite, &p.base);
    contig_free(&p);
}

/* Each bad argument: the right status, a message naming the problem, nothing launched. */
static void test_contig_bad_arguments(void **state)
{
    (void)state;
    static const int32_t counts[] = {100, 28};
    contig_problem p;
    contig_make(&p, 2, 256, 512, 128, counts);
    int32_t *ids = contig_row_ids(&p.base);
    gpu_upload(p.base.dlayout, ids, (size_t)p.base.m * 4);
    gpu_poison(p.base.dd, p.base.d_bytes, 0xffffffffu);
    kiln_gemm_fp8_contig_args good = contig_args(&p, true);
    enum { CASES = 7 };
    kiln_gemm_fp8_contig_args c[CASES];
    const char *named[CASES];
    for (int i = 0; i < CASES; i++)
        c[i] = good;
    c[0].group_end = good.row_expert, named[0] = "got both";
    c[1].row_expert.data = NULL, named[1] = "got neither";
    c[2].row_expert.shape[0] = p.base.m - 1, named[2] = "row_expert must be I32 [M_total";
    c[3].row_expert.dtype = KILN_DTYPE_F32, named[3] = "row_expert has dtype";
    c[4].m_alignment = 96, named[4] = "m_alignment = 96";
    c[5] = contig_args(&p, false), c[5].group_end.shape[0] = 3, named[5] = "group_end must be";
    c[6].sfb.shape[0] = 1, named[6] = "sfb";
    for (int i = 0; i < CASES; i++) {
        assert_int_equal(kiln_gemm_fp8_contig(ctx, &c[i], NULL), KILN_ERR_INVALID_ARG);
        if (strstr(kiln_ctx_errmsg(ctx), named[i]) == NULL)
            fail_msg("case %d: \"%s\" does not say \"%s\"", i, kiln_ctx_errmsg(ctx), named[i]);
        assert_int_equal(kiln_cache_prune(ctx, INT64_MAX, NULL), KILN_OK); /* clear the error */
    }
    contig_check_nothing_written(&p.base, "contig bad arguments");
    print_message("  contig bad arguments: %d cases refused, nothing launched\n", CASES);
    free(ids);
    contig_free(&p);
}

/* Serving mode: the spec line `kiln prewarm --model` writes for a prefill batch, prewarmed
 * without a GPU, serves both layouts in a KILN_JIT=0 context; a shape not prewarmed is
 * KILN_ERR_MISS. The line names the batch launched (M_total 333 rows in 3 groups): tile
 * height and width follow the rows, as they do for the dense GEMM. */
static void test_contig_prewarmed_serves_jit_off(void **state)
{
    (void)state;
    char dir[32];
    kiln_ctx *server = gpu_jit_off_ctx(dir, "gemm_fp8_contig m=333 n=1024 k=1024 align=128 g=3");
    assert_non_null(server);
    kiln_ctx *shared = ctx;
    ctx = server; /* the suite launches on ctx */
    static const int32_t counts[] = {200, 0, 77};
    contig_problem p;
    contig_make(&p, 3, 1024, 1024, 128, counts);
    contig_check_each_layout(&suite, &p.base, "contig KILN_JIT=0");
    contig_free(&p);
    contig_make(&p, 3, 2048, 1024, 128, counts); /* N not prewarmed */
    kiln_gemm_fp8_contig_args args = contig_args(&p, false);
    int32_t *ends = contig_prefix_sums(&p.base);
    gpu_upload(p.base.dlayout, ends, 3 * 4);
    assert_int_equal(kiln_gemm_fp8_contig(server, &args, NULL), KILN_ERR_MISS);
    assert_non_null(strstr(kiln_ctx_errmsg(server), "KILN_JIT=0"));
    ctx = shared;
    print_message("  contig KILN_JIT=0: both layouts served from the prewarmed cache\n");
    free(ends);
    contig_free(&p);
    kiln_ctx_destroy(server);
    assert_int_equal(gpu_remove_dir(dir), 0);
}

int main(void)
{
    ctx = gpu_ctx_or_skip();
    seed = rng_fresh_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contig_bad_arguments),
        cmocka_unit_test(test_contig_layouts),
        cmocka_unit_test(test_contig_tall_tiles),
        cmocka_unit_test(test_contig_row_ids_any_order),
        cmocka_unit_test(test_contig_bad_prefix_sums),
        cmocka_unit_test(test_contig_bad_row_ids),
        cmocka_unit_test(test_contig_prewarmed_serves_jit_off),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    kiln_ctx_destroy(ctx);
    return failed;
}
