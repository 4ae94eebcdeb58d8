/* gpu suite: kiln_gemm_bf16_contig (MoE prefill, contiguous groups) with both layouts, the
 * DeepEP v2 prefix sums and an expert id per row, against the FP64 CPU reference: fresh
 * random data, padding rows of A NaN, d poisoned (with 64 guard rows past M_total), every
 * element checked (rows of a group against the reference, every other row still
 * poisoned), two runs bitwise equal, and the two layouts bitwise equal to each other; row
 * ids in any order; bad layouts write nothing outside what they own; bad arguments launch
 * nothing; a cache prewarmed without a GPU serves both layouts with KILN_JIT=0. Every test
 * name holds "bf16_contig". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#include <cmocka.h>

#include "../src/runtime/internal.h"
#include "contig_layout.h"
#include "gemm_bf16_check.h"

static kiln_ctx *ctx;
static uint64_t seed;

/* G groups of counts[g] rows, group g starting at the next multiple of align; D in BF16 or
 * (f32) FP32. */
typedef struct contig_problem {
    contig_base base; /* the layout, d and the sizes (contig_layout.h) */
    bool f32;
    uint16_t *a, *b; /* host [M_total][K] (padding rows NaN), [G][N][K] */
    float *af, *bf;  /* the same as floats, for the reference */
    void *da, *db;
} contig_problem;

static void contig_make(contig_problem *p, int64_t g, int64_t n, int64_t k, int64_t align,
                        const int32_t *counts, bool f32)
{
    *p = (contig_problem){
        .base = {.g = g, .n = n, .k = k, .align = align, .counts = counts, .elem = f32 ? 4 : 2},
        .f32 = f32};
    contig_base *c = &p->base;
    c->start = malloc((size_t)g * sizeof *c->start);
    int64_t m = c->m = contig_starts(g, align, counts, c->start);
    p->a = bf16_random(m * k, &seed, false, &p->af);
    p->b = bf16_random(g * n * k, &seed, true, &p->bf);
    for (int64_t i = 0; i < g; i++) { /* padding rows: BF16 NaN, so a stored one shows */
        int64_t pad_end = i + 1 < g ? c->start[i + 1] : m;
        for (int64_t r = (c->start[i] + counts[i]) * k; r < pad_end * k; r++)
            p->a[r] = 0x7fc0;
    }
    p->da = gpu_alloc((size_t)(m * k) * 2 + 16);
    p->db = gpu_alloc((size_t)(g * n * k) * 2);
    c->dlayout = gpu_alloc((size_t)(m > g ? m : g) * 4);
    c->d_bytes = (size_t)((m + CONTIG_GUARD_ROWS) * n) * c->elem;
    c->dd = gpu_alloc(c->d_bytes);
    gpu_upload(p->da, p->a, (size_t)(m * k) * 2);
    gpu_upload(p->db, p->b, (size_t)(g * n * k) * 2);
}

static void contig_free(contig_problem *p)
{
    void *dev[] = {p->da, p->db, p->base.dlayout, p->base.dd};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        gpu_free(dev[i]);
    void *host[] = {p->a, p->b, p->af, p->bf, p->base.start};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        free(host[i]);
}

/* The arguments over p, the layout in p->dlayout: G prefix sums, or M_total row ids. */
static kiln_gemm_bf16_contig_args contig_args(const contig_problem *p, bool by_row)
{
    const contig_base *c = &p->base;
    kiln_tensor layout = {.data = c->dlayout, .dtype = KILN_DTYPE_I32, .ndim = 1,
                          .shape = {by_row ? c->m : c->g}};
    kiln_gemm_bf16_contig_args args = {
        .a = tensor2d(p->da, KILN_DTYPE_BF16, c->m, c->k, c->k),
        .b = tensor3d(p->db, KILN_DTYPE_BF16, c->g, c->n, c->k),
        .d = tensor2d(c->dd, p->f32 ? KILN_DTYPE_F32 : KILN_DTYPE_BF16, c->m, c->n, c->n),
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
    kiln_gemm_bf16_contig_args args = contig_args((const contig_problem *)base, by_row);
    return kiln_gemm_bf16_contig(ctx, &args, NULL);
}

/* owner[r] for r < M_total: the group whose product row r of d must hold, or -1 where d
 * must still be poisoned (padding, rows of a bad layout); rows past M_total: poisoned. */
static void contig_check(const contig_base *base, const int32_t *owner, const void *d,
                         const char *what)
{
    const contig_problem *p = (const contig_problem *)base;
    int64_t n = base->n, k = base->k;
    contig_check_unowned(base, owner, d, what);
    int64_t *rows = malloc((size_t)base->m * sizeof *rows);
    for (int64_t gi = 0; gi < base->g; gi++) {
        int64_t count = contig_owned_rows(owner, base->m, gi, rows);
        if (count == 0)
            continue;
        double *ref = malloc((size_t)(count * n) * sizeof(double));
        bf16_reference(p->af, k, p->bf + gi * n * k, n, k, rows, count, ref);
        char group[128];
        snprintf(group, sizeof group, "%s group %lld", what, (long long)gi);
        compare(group, d, n, p->f32, rows, count, n, ref);
        free(ref);
    }
    free(rows);
}

static const contig_suite suite = {.launch = launch_contig, .check = contig_check, .ctx = &ctx};

static void check_contig_layouts(int64_t g, int64_t n, int64_t k, int64_t align,
                                 const int32_t *counts, bool f32)
{
    contig_problem p;
    contig_make(&p, g, n, k, align, counts, f32);
    contig_check_layouts(&suite, &p.base);
    contig_free(&p);
}

static void test_bf16_contig_layouts(void **state)
{
    (void)state;
    static const int32_t c1[] = {300, 0, 1, 515}, c2[] = {129, 64, 200}, c4[] = {10, 70, 5};
    check_contig_layouts(4, 4096, 7168, 128, c1, false); /* an empty group, M_total off the alignment */
    check_contig_layouts(3, 576, 1536, 128, c2, true);
    int32_t c3[8];
    for (int i = 0; i < 8; i++)
        c3[i] = (int32_t)(rng_next(&seed) % 600);
    c3[rng_next(&seed) % 8] = 0;
    check_contig_layouts(8, 7168, 2048, 256, c3, false);
    check_contig_layouts(3, 1024, 512, 64, c4, false); /* 64-row tiles */
}

static void check_row_ids_any_order(int64_t g, int64_t n, int64_t k, int64_t align,
                                    const int32_t *counts, bool f32)
{
    contig_problem p;
    contig_make(&p, g, n, k, align, counts, f32);
    contig_check_any_order(&suite, &p.base, &seed);
    contig_free(&p);
}

static void test_bf16_contig_row_ids_any_order(void **state)
{
    (void)state;
    static const int32_t c1[] = {300, 0, 1, 515}, c2[] = {40, 3, 17};
    check_row_ids_any_order(4, 2048, 2048, 128, c1, false);
    check_row_ids_any_order(4, 576, 1024, 128, c1, true);
    check_row_ids_any_order(3, 256, 512, 64, c2, false); /* 64-row tiles */
}

static void test_bf16_contig_bad_prefix_sums(void **state)
{
    (void)state;
    static const int32_t counts[] = {300, 0, 1, 515};
    contig_problem p;
    contig_make(&p, 4, 1024, 512, 128, counts, false);
    contig_check_bad_prefix_sums(&suite, &p.base);
    contig_free(&p);
}

static void test_bf16_contig_bad_row_ids(void **state)
{
    (void)state;
    static const int32_t counts[] = CONTIG_BAD_IDS_COUNTS;
    contig_problem p;
    contig_make(&p, 4, 1024, 512, 128, counts, false);
    contig_check_bad_row_ids(&suite, &p.base);
    contig_free(&p);
}

/* Each bad argument: the right status, a message naming the problem, nothing launched. */
static void test_bf16_contig_bad_arguments(void **state)
{
    (void)state;
    static const int32_t counts[] = {100, 28};
    contig_problem p;
    contig_make(&p, 2, 256, 512, 128, counts, false);
    int32_t *ids = contig_row_ids(&p.base);
    gpu_upload(p.base.dlayout, ids, (size_t)p.base.m * 4);
    gpu_poison(p.base.dd, p.base.d_bytes, 0xffffffffu);
    kiln_gemm_bf16_contig_args good = contig_args(&p, true);
    enum { CASES = 7 };
    kiln_gemm_bf16_contig_args c[CASES];
    const char *named[CASES];
    for (int i = 0; i < CASES; i++)
        c[i] = good;
    c[0].group_end = good.row_expert, named[0] = "got both";
    c[1].row_expert.data = NULL, named[1] = "got neither";
    c[2].row_expert.shape[0] = p.base.m - 1, named[2] = "row_expert must be I32 [M_total";
    c[3].row_expert.dtype = KILN_DTYPE_F32, named[3] = "row_expert has dtype";
    c[4].m_alignment = 96, named[4] = "m_alignment = 96";
    c[5] = contig_args(&p, false), c[5].group_end.shape[0] = 3, named[5] = "group_end must be";
    c[6].d.shape[0] = p.base.m - 1, named[6] = "d must be [M_total";
    for (int i = 0; i < CASES; i++) {
        assert_int_equal(kiln_gemm_bf16_contig(ctx, &c[i], NULL), KILN_ERR_INVALID_ARG);
        if (strstr(kiln_ctx_errmsg(ctx), named[i]) == NULL)
            fail_msg("case %d: \"%s\" does not say \"%s\"", i, kiln_ctx_errmsg(ctx), named[i]);
        assert_int_equal(kiln_cache_prune(ctx, INT64_MAX, NULL), KILN_OK); /* clear the error */
    }
    contig_check_nothing_written(&p.base, "contig bad arguments");
    print_message("  contig bad arguments: %d cases refused, nothing launched\n", CASES);
    free(ids);
    contig_free(&p);
}

/* Serving mode: a gemm_bf16_contig spec line prewarmed without a GPU serves both layouts in
 * a KILN_JIT=0 context; a shape not prewarmed is KILN_ERR_MISS. */
static void test_bf16_contig_prewarmed_serves_jit_off(void **state)
{
    (void)state;
    static const int32_t counts[] = {200, 0, 77}; /* M_total = 256 + 77 */
    char dir[32];
    kiln_ctx *server = gpu_jit_off_ctx(dir, "gemm_bf16_contig m=333 n=1024 k=1024 align=128");
    assert_non_null(server);
    kiln_ctx *shared = ctx;
    ctx = server; /* the suite launches on ctx */
    contig_problem p;
    contig_make(&p, 3, 1024, 1024, 128, counts, false);
    assert_int_equal(p.base.m, 333);
    contig_check_each_layout(&suite, &p.base, "contig KILN_JIT=0");
    contig_free(&p);
    contig_make(&p, 3, 2048, 1024, 128, counts, false); /* N not prewarmed */
    kiln_gemm_bf16_contig_args args = contig_args(&p, false);
    int32_t *ends = contig_prefix_sums(&p.base);
    gpu_upload(p.base.dlayout, ends, 3 * 4);
    assert_int_equal(kiln_gemm_bf16_contig(server, &args, NULL), KILN_ERR_MISS);
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
        cmocka_unit_test(test_bf16_contig_bad_arguments),
        cmocka_unit_test(test_bf16_contig_layouts),
        cmocka_unit_test(test_bf16_contig_row_ids_any_order),
        cmocka_unit_test(test_bf16_contig_bad_prefix_sums),
        cmocka_unit_test(test_bf16_contig_bad_row_ids),
        cmocka_unit_test(test_bf16_contig_prewarmed_serves_jit_off),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    kiln_ctx_destroy(ctx);
    return failed;
}
