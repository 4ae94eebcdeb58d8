/* gpu suite: kiln_gemm_fp8 against the FP64 CPU reference of the dequantized inputs, on
 * fresh random data, output poisoned with NaN, every element checked for being written and
 * finite, two runs bitwise equal; bad arguments launch nothing. Rows checked against the
 * reference: all of the first 1000, plus 192 random rows beyond (M = 4096). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#include <cmocka.h>

#include "../src/runtime/gemm_config.h"
#include "../src/runtime/internal.h"
#include "gemm_fp8_data.h"

static kiln_ctx *ctx;
static uint64_t seed;
/* The benchmark's --sweep and --trace paths: check_m runs this configuration (NULL: the
 * heuristic's), and with its trace flag fills trace (KILN_GEMM_FP8_TRACE_SLOTS u64 per
 * CTA). */
static const kiln__gemm_config *forced;
static void *trace;
/* The workspace the GEMMs get (test_tail_split; NULL otherwise). */
static void *workspace;
static int64_t workspace_bytes;

static kiln_gemm_fp8_args gemm_args(const fp8_problem *p, int64_t m, void *dsfa, void *dd)
{
    int64_t kb = p->k / 128;
    return (kiln_gemm_fp8_args){
        .a = tensor2d(p->da, KILN_DTYPE_E4M3, m, p->k, p->k),
        .sfa = tensor2d(dsfa, KILN_DTYPE_F32, kb, m, kiln_sf_mn_stride(m)),
        .b = tensor2d(p->db, KILN_DTYPE_E4M3, p->n, p->k, p->k),
        .sfb = tensor2d(p->dsfb, KILN_DTYPE_F32, (p->n + 127) / 128, kb, kb),
        .d = tensor2d(dd, KILN_DTYPE_BF16, m, p->n, p->n),
        .workspace = workspace,
        .workspace_bytes = workspace_bytes,
    };
}

/* Run M rows of problem p twice, the second time with b_ready; check against ref (rows[i]
 * -> ref row i). */
static void check_m(const fp8_problem *p, int64_t m, const int64_t *rows, int64_t num_rows,
                    const double *ref)
{
    int64_t n = p->n;
    float *sfa = fp8_problem_sfa(p, m);
    size_t sfa_bytes = (size_t)(p->k / 128 * kiln_sf_mn_stride(m)) * 4;
    void *dsfa = gpu_alloc(sfa_bytes);
    gpu_upload(dsfa, sfa, sfa_bytes);
    size_t d_bytes = (size_t)(m * n) * 2;
    void *dd[2] = {gpu_alloc(d_bytes), gpu_alloc(d_bytes)};
    uint16_t *d[2] = {malloc(d_bytes), malloc(d_bytes)};
    for (int run = 0; run < 2; run++) {
        gpu_poison(dd[run], d_bytes, 0xffffffffu);
        kiln_gemm_fp8_args args = gemm_args(p, m, dsfa, dd[run]);
        args.b_ready = run * KILN__GEMM_B_EARLY_SLOTS; /* the second run: B early, same bits */
        if (kiln__gemm_fp8_with(ctx, &args, forced, trace, NULL) != KILN_OK)
            fail_msg("%lldx%lldx%lld: %s", (long long)m, (long long)n, (long long)p->k,
                     kiln_ctx_errmsg(ctx));
        gpu_sync();
        gpu_download(d[run], dd[run], d_bytes);
    }
    for (int64_t i = 0; i < m * n; i++)
        if (!isfinite(bf16_to_float(d[0][i])))
            fail_msg("%lldx%lldx%lld: D[%lld][%lld] not written or not finite", (long long)m,
                     (long long)n, (long long)p->k, (long long)(i / n), (long long)(i % n));
    if (memcmp(d[0], d[1], d_bytes) != 0)
        fail_msg("%lldx%lldx%lld: two runs differ", (long long)m, (long long)n, (long long)p->k);
    double sxy = 0, sxx_yy = 0, sref2 = 0;
    int64_t checked = 0;
    for (int64_t i = 0; i < num_rows; i++) {
        if (rows[i] >= m)
            continue;
        for (int64_t c = 0; c < n; c++)
            sref2 += ref[i * n + c] * ref[i * n + c];
        checked++;
    }
    double rms = sqrt(sref2 / (double)(checked * n > 0 ? checked * n : 1));
    /* Elementwise: bf16 keeps 8 significant bits (2^-8 relative). The FP8 tensor-core
     * accumulator keeps fewer bits than FP32 inside each 128-deep K block, so a rare
     * element lands a little further off: a few per 10^4 may miss the tight bound, none
     * may miss the loose one (a wrong scale, row or column misses it by far). */
    int64_t loose_misses = 0, tight_misses = 0;
    double worst = 0;
    for (int64_t i = 0; i < num_rows; i++) {
        if (rows[i] >= m)
            continue;
        for (int64_t c = 0; c < n; c++) {
            double x = bf16_to_float(d[0][rows[i] * n + c]), y = ref[i * n + c];
            double err = fabs(x - y);
            sxy += x * y;
            sxx_yy += x * x + y * y;
            tight_misses += err > fabs(y) / 128 + 1e-3 * rms;
            loose_misses += err > fabs(y) / 16 + 1e-2 * rms;
            worst = err / rms > worst ? err / rms : worst;
            if (loose_misses == 1 && err > fabs(y) / 16 + 1e-2 * rms)
                print_message("  %lldx%lldx%lld: D[%lld][%lld] = %g, reference %g\n", (long long)m,
                              (long long)n, (long long)p->k, (long long)rows[i], (long long)c, x, y);
        }
    }
    assert_int_equal(loose_misses, 0);
    assert_true(tight_misses <= 1 + checked * n / 10000);
    double diff = 1.0 - 2.0 * sxy / sxx_yy;
    print_message("  %5lld x %5lld x %5lld  diff %.2e  worst |err|/rms %.1e  (%lld rows vs FP64, "
                  "%lld past the tight bound)\n",
                  (long long)m, (long long)n, (long long)p->k, diff, worst, (long long)checked,
                  (long long)tight_misses);
    assert_true(diff < 1e-3);
    gpu_free(dsfa);
    gpu_free(dd[0]);
    gpu_free(dd[1]);
    free(d[0]);
    free(d[1]);
    free(sfa);
}

static void check_shapes(int64_t n, int64_t k, const int64_t *ms, int count)
{
    int64_t m_max = 0;
    for (int i = 0; i < count; i++)
        m_max = ms[i] > m_max ? ms[i] : m_max;
    fp8_problem p;
    fp8_problem_make(&p, m_max, n, k, &seed);
    /* Every row is checked written and finite, and two runs bitwise equal; the FP64
     * reference (the test's cost) covers the first three 128-row tiles whole and a random
     * sample of the rest. */
    enum { DENSE = 384, SAMPLED = 256 };
    int64_t rows[DENSE + SAMPLED], num_rows = 0;
    for (int64_t r = 0; r < m_max && r < DENSE; r++)
        rows[num_rows++] = r;
    for (int i = 0; i < SAMPLED && m_max > DENSE; i++)
        rows[num_rows++] = DENSE + (int64_t)(rng_next(&seed) % (uint64_t)(m_max - DENSE));
    double *ref = malloc((size_t)(num_rows * n) * sizeof(double));
    fp8_reference(&p, rows, num_rows, ref);
    for (int i = 0; i < count; i++)
        check_m(&p, ms[i], rows, num_rows, ref);
    free(ref);
    fp8_problem_free(&p);
}

static const int64_t deepseek_ms[] = {1, 7, 64, 128, 129, 1000, 4096};

static void test_deepseek_shapes(void **state)
{
    (void)state;
    static const int64_t nk[][2] = {{2112, 7168}, {576, 7168},  {24576, 1536}, {32768, 512},
                                    {7168, 16384}, {4096, 7168}, {7168, 2048}};
    for (size_t i = 0; i < sizeof nk / sizeof nk[0]; i++)
        check_shapes(nk[i][0], nk[i][1], deepseek_ms, 7);
}

static void test_odd_shapes(void **state)
{
    (void)state;
    static const int64_t m1[] = {3}, m2[] = {300, 65}, m3[] = {77, 2000}, m4[] = {33, 1},
                         m5[] = {1, 100}, m6[] = {1, 65};
    check_shapes(16, 128, m1, 1);
    check_shapes(272, 384, m2, 2);
    check_shapes(1552, 640, m3, 2);
    check_shapes(4112, 256, m4, 2);
    /* 64 x 192 and 128 x 192 decode tiles over an N that is a multiple of neither 192 nor 128
     * (stop 58: these shapes took 184-column tiles, which spilled) */
    check_shapes(23248, 512, m5, 2);
    /* plain-loop tiles at 16 offsets into the B scale blocks (64 x 168, 128 x 168, 128 x 152): the
     * promotion's run-time block choice (stop 59) */
    check_shapes(21136, 512, m6, 2);
    check_shapes(19024, 512, m6 + 1, 1);
}

/* Decode tiles split along K over a cluster (cluster_k) whose rows end inside the second,
 * third or fourth warp of a 64-row group, with A's box cut to M rounded up to 8 rows: the
 * decode picks with clusters of 4 (2112 x 7168) and 2 (4096 x 7168). */
static void test_cluster_partial_rows(void **state)
{
    (void)state;
    static const int64_t ms[] = {20, 45, 63};
    check_shapes(2112, 7168, ms, 3);
    check_shapes(4096, 7168, ms, 3);
}

/* Prefill in fewer tiles than SMs, each tile's K split over a cluster (stops 62-63; the launch
 * takes it where M > 384), rows ending inside the last m block: clusters of 4 (500 x 576 x
 * 7168: 20 tiles; 500 x 576 x 2048), of 2 (500 x 2112 x 7168 in 144-column tiles, 60 where 128
 * columns make 68; 1000 x 576 x 2048; 400 x 1008 x 4096 and 450 x 2000 x 7168, their last n
 * block cut) and of 8 (400 x 256 x 7168). */
static void test_prefill_k_split_partial_rows(void **state)
{
    (void)state;
    static const struct {
        int64_t m, n, k;
        int cluster_k;
    } cases[] = {
        {500, 576, 7168, 4}, {500, 576, 2048, 4}, {500, 2112, 7168, 2}, {1000, 576, 2048, 2},
        {400, 1008, 4096, 2}, {450, 2000, 7168, 2}, {400, 256, 7168, 8}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* the launch's configuration splits these rows (else this tests nothing new) */
        kiln__gemm_config c =
            kiln__gemm_fp8_dense_config(ctx, cases[i].m, cases[i].n, cases[i].k, false);
        if (c.cluster_k != cases[i].cluster_k)
            fail_msg("%lldx%lldx%lld: cluster_k %d, want %d", (long long)cases[i].m,
                     (long long)cases[i].n, (long long)cases[i].k, c.cluster_k,
                     cases[i].cluster_k);
        check_shapes(cases[i].n, cases[i].k, &cases[i].m, 1);
    }
}

/* Prefill in one round of narrower tiles (64 or 96 columns) where 128 x 128 ones leave SMs
 * idle, rows ending inside the last m block: 500 x 2112 x 2048 (132 tiles of 64 columns),
 * 600 x 2112 x 7168 (110 of 96), 257 x 4000 x 7168 (126 of 96, the last n block cut). */
static void test_prefill_narrow_rows(void **state)
{
    (void)state;
    static const struct {
        int64_t m, n, k;
        int block_n;
    } cases[] = {{500, 2112, 2048, 64}, {600, 2112, 7168, 96}, {257, 4000, 7168, 96}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* the launch's rule takes these tiles on 132 SMs (else this tests nothing new) */
        kiln__gemm_config c = kiln__gemm_fp8_pick(cases[i].m, cases[i].n, cases[i].k, 132);
        if (!kiln__gemm_fp8_prefill_narrow(&c, cases[i].m, cases[i].n, cases[i].k, 132) ||
            c.block_n != cases[i].block_n)
            fail_msg("%lldx%lldx%lld: %d columns, want %d", (long long)cases[i].m,
                     (long long)cases[i].n, (long long)cases[i].k, c.block_n, cases[i].block_n);
        check_shapes(cases[i].n, cases[i].k, &cases[i].m, 1);
    }
}

/* 129-384 rows in two or three m blocks of decode's tiles, K over clusters (the launch's
 * rule), the last block partial or whole. */
static void test_m_blocks_decode_rows(void **state)
{
    (void)state;
    static const int64_t cases[][3] = {
        {129, 576, 7168},  {200, 2112, 7168},  {256, 576, 7168},
        {150, 512, 7168},  {300, 576, 7168},   {384, 1536, 7168}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int64_t m = cases[i][0], n = cases[i][1], k = cases[i][2];
        kiln__gemm_config c = kiln__gemm_fp8_pick(m, n, k, 132);
        if (!kiln__gemm_fp8_m_blocks_decode(&c, m, n, k, 132))
            fail_msg("%lldx%lldx%lld: the rule takes no m-block decode tiles", (long long)m,
                     (long long)n, (long long)k);
        check_shapes(n, k, &m, 1);
    }
}

/* The shared context is swapped for one made with opts for the length of a test. */
static kiln_ctx *swap_ctx(const kiln_options *opts)
{
    kiln_ctx *plain = ctx;
    assert_int_equal(kiln_ctx_create(&ctx, opts), KILN_OK);
    return plain;
}

static void restore_ctx(kiln_ctx *plain)
{
    kiln_ctx_destroy(ctx);
    ctx = plain;
}

/* KILN_GEMM_MULTICAST: prefill tiles in 2-CTA clusters, each CTA loading half of the shared
 * B tile into both; 3 and 33 m blocks leave the last pair with a dummy partner, and N = 576
 * at 4200 rows takes 144-column tiles (72-row halves; one round of them against two of
 * 128-column ones). */
static void test_multicast(void **state)
{
    (void)state;
    kiln_options opts;
    assert_int_equal(kiln_options_init(&opts), KILN_OK);
    opts.gemm_multicast = 1;
    kiln_ctx *plain = swap_ctx(&opts);
    static const int64_t m1[] = {129, 1000}, m2[] = {300, 4200};
    check_shapes(2112, 1024, m1, 2);
    check_shapes(576, 1536, m2, 2);
    restore_ctx(plain);
}

/* KILN_GEMM_TALL_TILES 2 and 3: 192 x 128 prefill tiles (three math warpgroups) and 256 x
 * 128 ones (two warpgroups, two waves). M = 129, 300 and 1000 end in partial tiles; 4096 is
 * the benchmark's size. */
static void test_tall_tiles(void **state)
{
    (void)state;
    for (int knob = 2; knob <= 3; knob++) {
        kiln_options opts;
        assert_int_equal(kiln_options_init(&opts), KILN_OK);
        opts.gemm_tall_tiles = knob; /* always */
        kiln_ctx *plain = swap_ctx(&opts);
        static const int64_t m1[] = {129, 300, 1000}, m2[] = {4096};
        check_shapes(2112, 1024, m1, 3);
        check_shapes(7168, 2048, m2, 1);
        restore_ctx(plain);
    }
}

/* The split last round's kernel (tail): a last round of 192-row tiles that fills at most a
 * third of the CTAs runs as three pieces per tile, each a third of K on its own CTA (two
 * pieces, each half of K, where it fills at most half of them), and the pieces' partial sums
 * are added through the workspace. The kernel is forced (the host takes it from K = 7168 up,
 * whose FP64 reference would take long here): N = 1152 (nine n blocks of 128 columns) and M
 * make that round a few tiles, then nearly a third of the SMs, then nearly half of them, with
 * a partial last m block; K = 640 gives three pieces 1, 2 and 2 K blocks, two 2 and 3. Every
 * row is checked against the reference. The workspace's partials start as NaN (a sum read before
 * it was written shows), and afterwards its flags are zero again and every partial written. */
static void test_tail_split(void **state)
{
    (void)state;
    const int64_t n = 1152, k = 640, sms = ctx->num_sms, flag_bytes = 4096;
    workspace_bytes = kiln_gemm_fp8_workspace_bytes(ctx);
    workspace = gpu_alloc((size_t)workspace_bytes);
    /* split tiles: at most this many, as many as can be; and the pieces per tile */
    const int64_t most[] = {4, sms / 3, sms / 2}, parts[] = {3, 3, 2};
    for (int c = 0; c < 3; c++) {
        int64_t m_blocks = (sms + 8) / 9, tiles = 9 * m_blocks;
        while (tiles % sms == 0 || tiles % sms > most[c] || tiles % sms <= most[c] - 9)
            tiles = 9 * ++m_blocks;
        assert_int_equal(kiln__gemm_fp8_tail_parts(tiles, k / 128, (int)sms), parts[c]);
        int64_t m = m_blocks * 192 - 37, split = tiles % sms;
        kiln__gemm_config tail = kiln__gemm_fp8_pick(m, n, k, (int)sms);
        kiln__gemm_fp8_make_tall(&tail, 192);
        tail.tail = 1;
        forced = &tail;
        gpu_poison(workspace, (size_t)flag_bytes, 0);
        gpu_poison((char *)workspace + flag_bytes, (size_t)(workspace_bytes - flag_bytes),
                   0x7fc00000u);
        fp8_problem p;
        fp8_problem_make(&p, m, n, k, &seed);
        int64_t *rows = malloc((size_t)m * sizeof *rows);
        for (int64_t r = 0; r < m; r++)
            rows[r] = r;
        double *ref = malloc((size_t)(m * n) * sizeof(double));
        fp8_reference(&p, rows, m, ref);
        check_m(&p, m, rows, m, ref);
        forced = NULL;
        uint32_t *host = malloc((size_t)workspace_bytes);
        gpu_download(host, workspace, (size_t)workspace_bytes);
        for (int64_t i = 0; i < flag_bytes / 4; i++)
            if (host[i] != 0)
                fail_msg("M = %lld: flag %lld is %u after the GEMM, not 0", (long long)m,
                         (long long)i, host[i]);
        int64_t written = 0;
        for (int64_t i = flag_bytes / 4; i < workspace_bytes / 4; i++)
            written += host[i] != 0x7fc00000u;
        /* a partial of 64 x 128 FP32 per piece and row group of each split tile, none NaN */
        assert_int_equal(written, split * parts[c] * 3 * 64 * 128);
        print_message("  %lldx%lldx%lld: %lld split tiles in %lld pieces, %lld partial sums "
                      "written\n",
                      (long long)m, (long long)n, (long long)k, (long long)split,
                      (long long)parts[c], (long long)written);
        free(host);
        free(ref);
        free(rows);
        fp8_problem_free(&p);
    }
    gpu_free(workspace);
    workspace = NULL;
    workspace_bytes = 0;
}

/* The benchmark's --sweep: every alternative configuration of a decode and a prefill shape
 * (k_split, cluster_k, 64-row tiles with multicast, A multicast, unrolled loops, 192-row
 * tiles...) is as correct as the heuristic's. */
static void check_alternatives(int64_t m, int64_t n, int64_t k)
{
    fp8_problem p;
    fp8_problem_make(&p, m, n, k, &seed);
    int64_t rows[512], num_rows = 0;
    for (int64_t r = 0; r < m && num_rows < 512; r++)
        rows[num_rows++] = r;
    double *ref = malloc((size_t)(num_rows * n) * sizeof(double));
    fp8_reference(&p, rows, num_rows, ref);
    kiln__gemm_config alt[KILN_GEMM_FP8_MAX_ALTERNATIVES];
    int count = kiln__gemm_fp8_alternatives(m, n, k, ctx->num_sms, alt,
                                            KILN_GEMM_FP8_MAX_ALTERNATIVES);
    for (int i = 0; i < count; i++) {
        const kiln__gemm_config *c = &alt[i];
        print_message("  %dx%d stages %d k_split %d cluster_k %d multicast %d multicast_a %d "
                      "overlap %d unroll %d turns %d\n",
                      c->block_m, c->block_n, c->stages, c->k_split, c->cluster_k, c->multicast,
                      c->multicast_a, c->overlap, c->unroll, c->turns);
        forced = c;
        check_m(&p, m, rows, num_rows, ref);
        forced = NULL;
    }
    free(ref);
    fp8_problem_free(&p);
}

static void test_sweep_alternatives(void **state)
{
    (void)state;
    check_alternatives(100, 2112, 7168);
    check_alternatives(300, 7168, 2048);
    /* A multicast (multicast_a) where most of a cluster's A slices lie past M (7 rows: the
     * TMA fills them with zeros) and 89 n blocks leave the last cluster of two a CTA past N. */
    check_alternatives(7, 2128, 1024);
}

/* The benchmark's --trace: the traced kernel computes the same D, and every CTA's clock
 * readings come out in program order (the slots of the template's trace_slot). */
static void check_trace(int64_t m, int64_t n, int64_t k, kiln__gemm_config cfg)
{
    enum { SLOTS = KILN_GEMM_FP8_TRACE_SLOTS, CTAS = 1024 };
    size_t bytes = (size_t)SLOTS * CTAS * 8;
    trace = gpu_alloc(bytes);
    gpu_poison(trace, bytes, 0);
    cfg.trace = 1;
    forced = &cfg;
    fp8_problem p;
    fp8_problem_make(&p, m, n, k, &seed);
    int64_t rows[] = {0, m / 2, m - 1};
    double *ref = malloc((size_t)(3 * n) * sizeof(double));
    fp8_reference(&p, rows, 3, ref);
    check_m(&p, m, rows, 3, ref);
    free(ref);
    forced = NULL;
    uint64_t *t = malloc(bytes);
    gpu_download(t, trace, bytes);
    gpu_free(trace);
    trace = NULL;
    int ctas = 0;
    for (; ctas < CTAS && t[ctas * SLOTS + KILN_TR_START] != 0; ctas++) {
        const uint64_t *c = t + ctas * SLOTS;
        /* start <= ready <= first loop begins <= it ends <= last loop ends <= math ends;
         * the producer's last load after the start. A CTA with no tile has no loop marks. */
        assert_true(c[KILN_TR_START] <= c[KILN_TR_READY]);
        assert_true(c[KILN_TR_LAST_LOAD] >= c[KILN_TR_START]);
        assert_true(c[KILN_TR_MATH_END] >= c[KILN_TR_READY]);
        /* The wall clock at entry and at the math's end bracket the cycles between: the
         * rate they imply is an SM clock (wide bounds: this checks the slots, not speed). */
        assert_true(c[KILN_TR_END_NS] > c[KILN_TR_START_NS]);
        double ghz = (double)(c[KILN_TR_MATH_END] - c[KILN_TR_START]) /
                     (double)(c[KILN_TR_END_NS] - c[KILN_TR_START_NS]);
        assert_true(ghz > 0.2 && ghz < 5.0);
        if (c[KILN_TR_LOOP0_BEGIN] != 0)
            assert_true(c[KILN_TR_READY] <= c[KILN_TR_LOOP0_BEGIN] &&
                        c[KILN_TR_LOOP0_BEGIN] <= c[KILN_TR_LOOP0_END] &&
                        c[KILN_TR_LOOP0_END] <= c[KILN_TR_LAST_LOOP_END] &&
                        c[KILN_TR_LAST_LOOP_END] <= c[KILN_TR_MATH_END]);
    }
    assert_true(ctas >= 1 && ctas <= ctx->num_sms);
    print_message("  %lldx%lldx%lld (%dx%d): %d CTAs traced in order\n", (long long)m, (long long)n,
                  (long long)k, cfg.block_m, cfg.block_n, ctas);
    free(t);
    fp8_problem_free(&p);
}

static void test_trace_mode(void **state)
{
    (void)state;
    check_trace(128, 2112, 7168, kiln__gemm_fp8_pick(128, 2112, 7168, ctx->num_sms));
    kiln__gemm_config tall = kiln__gemm_fp8_pick(4096, 7168, 2048, ctx->num_sms);
    kiln__gemm_fp8_make_tall(&tall, 192);
    check_trace(1000, 7168, 2048, tall);
}

/* Each bad argument: the right status, a message naming the problem, nothing launched. */
static void test_bad_arguments(void **state)
{
    (void)state;
    fp8_problem p;
    fp8_problem_make(&p, 64, 256, 512, &seed);
    float *sfa = fp8_problem_sfa(&p, 64);
    void *dsfa = gpu_alloc(4 * 64 * 4), *dd = gpu_alloc(64 * 256 * 2 + 64);
    gpu_upload(dsfa, sfa, 4 * 64 * 4);
    gpu_poison(dd, 64 * 256 * 2 + 64, 0xffffffffu);
    kiln_gemm_fp8_args good = gemm_args(&p, 64, dsfa, dd);
    enum { CASES = 9 };
    kiln_gemm_fp8_args c[CASES];
    const char *named[CASES];
    kiln_status expect[CASES];
    for (int i = 0; i < CASES; i++) {
        c[i] = good;
        expect[i] = KILN_ERR_INVALID_ARG;
    }
    c[0].a.shape[1] = c[0].b.shape[1] = 500, named[0] = "K = 500";
    c[1].b.shape[0] = 248, c[1].d.shape[1] = 248, named[1] = "N = 248";
    c[2].a.data = (char *)p.da + 8, named[2] = "not 16-byte aligned";
    c[3].d.strides[0] = 260, named[3] = "multiple of 16 bytes";
    c[4].sfa.strides[0] = 63, named[4] = "sfa";
    c[5].sfb.shape[0] = 1, named[5] = "sfb";
    c[6].d.dtype = KILN_DTYPE_F32, named[6] = "FP32 mode sfb"; /* block scales given */
    c[7].b.dtype = KILN_DTYPE_BF16, named[7] = "dtype bf16";
    c[8].workspace = dd, c[8].workspace_bytes = 4096, named[8] = "workspace";
    for (int i = 0; i < CASES; i++) {
        assert_int_equal(kiln_gemm_fp8(ctx, &c[i], NULL), expect[i]);
        if (strstr(kiln_ctx_errmsg(ctx), named[i]) == NULL)
            fail_msg("case %d: \"%s\" does not say \"%s\"", i, kiln_ctx_errmsg(ctx), named[i]);
        assert_int_equal(kiln_cache_prune(ctx, INT64_MAX, NULL), KILN_OK); /* clear the error */
    }
    gpu_sync();
    uint8_t *d = malloc(64 * 256 * 2);
    gpu_download(d, dd, 64 * 256 * 2);
    for (int i = 0; i < 64 * 256 * 2; i++)
        assert_int_equal(d[i], 0xff);
    /* M = 0 is a valid empty product. */
    kiln_gemm_fp8_args empty = gemm_args(&p, 0, dsfa, dd);
    assert_int_equal(kiln_gemm_fp8(ctx, &empty, NULL), KILN_OK);
    free(d);
    free(sfa);
    gpu_free(dsfa);
    gpu_free(dd);
    fp8_problem_free(&p);
}

/* ------------------------------------------------------------------ masked groups */

typedef struct masked_problem {
    int64_t g, m_max, n, k;
    uint8_t *a, *b;   /* host [G][M_max][K], [G][N][K] */
    float *sa, *sb;   /* host per row per K block [G][M_max][K/128]; [G][N/128][K/128] */
    void *da, *db, *dsfa, *dsfb, *dmask;
} masked_problem;

static void masked_make(masked_problem *p, int64_t g, int64_t m_max, int64_t n, int64_t k)
{
    *p = (masked_problem){.g = g, .m_max = m_max, .n = n, .k = k};
    int64_t kb = k / 128, nb = (n + 127) / 128, s = kiln_sf_mn_stride(m_max);
    p->a = malloc((size_t)(g * m_max * k));
    p->b = malloc((size_t)(g * n * k));
    p->sa = malloc((size_t)(g * m_max * kb) * 4);
    p->sb = malloc((size_t)(g * nb * kb) * 4);
    for (int64_t i = 0; i < g * m_max * k; i++)
        p->a[i] = float_to_e4m3((float)(rng_normal(&seed) * 100.0));
    for (int64_t i = 0; i < g * n * k; i++)
        p->b[i] = float_to_e4m3((float)(rng_normal(&seed) * 100.0));
    for (int64_t i = 0; i < g * m_max * kb; i++)
        p->sa[i] = (float)(1e-3 * (1.0 + 9.0 * rng_uniform(&seed)));
    for (int64_t i = 0; i < g * nb * kb; i++)
        p->sb[i] = (float)(1e-3 * (1.0 + 9.0 * rng_uniform(&seed)));
    float *sfa = calloc((size_t)(g * kb * s), 4); /* [G][K/128][s], MN-major per group */
    for (int64_t gi = 0; gi < g; gi++)
        for (int64_t r = 0; r < m_max; r++)
            for (int64_t b = 0; b < kb; b++)
                sfa[(gi * kb + b) * s + r] = p->sa[(gi * m_max + r) * kb + b];
    p->da = gpu_alloc((size_t)(g * m_max * k));
    p->db = gpu_alloc((size_t)(g * n * k));
    p->dsfa = gpu_alloc((size_t)(g * kb * s) * 4);
    p->dsfb = gpu_alloc((size_t)(g * nb * kb) * 4);
    p->dmask = gpu_alloc((size_t)g * 4);
    gpu_upload(p->da, p->a, (size_t)(g * m_max * k));
    gpu_upload(p->db, p->b, (size_t)(g * n * k));
    gpu_upload(p->dsfa, sfa, (size_t)(g * kb * s) * 4);
    gpu_upload(p->dsfb, p->sb, (size_t)(g * nb * kb) * 4);
    free(sfa);
}

static void masked_free(masked_problem *p)
{
    gpu_free(p->da);
    gpu_free(p->db);
    gpu_free(p->dsfa);
    gpu_free(p->dsfb);
    gpu_free(p->dmask);
    free(p->a);
    free(p->b);
    free(p->sa);
    free(p->sb);
}

static kiln_gemm_fp8_masked_args masked_args(const masked_problem *p, void *dd, int64_t expected)
{
    int64_t kb = p->k / 128, s = kiln_sf_mn_stride(p->m_max);
    kiln_gemm_fp8_masked_args args = {
        .a = tensor3d(p->da, KILN_DTYPE_E4M3, p->g, p->m_max, p->k),
        .sfa = tensor3d(p->dsfa, KILN_DTYPE_F32, p->g, kb, p->m_max),
        .b = tensor3d(p->db, KILN_DTYPE_E4M3, p->g, p->n, p->k),
        .sfb = tensor3d(p->dsfb, KILN_DTYPE_F32, p->g, (p->n + 127) / 128, kb),
        .d = tensor3d(dd, KILN_DTYPE_BF16, p->g, p->m_max, p->n),
        .masked_m = {.data = p->dmask, .dtype = KILN_DTYPE_I32, .ndim = 1, .shape = {p->g}},
        .expected_m = expected,
    };
    args.sfa.strides[0] = kb * s;
    args.sfa.strides[1] = s;
    args.sfa.strides[2] = 1;
    return args;
}

/* Rows below masked_m[g] against the FP64 reference; every row past it still poisoned. */
static void masked_check(const masked_problem *p, const int32_t *masked, const uint16_t *d)
{
    int64_t n = p->n, k = p->k, kb = k / 128, nb = (n + 127) / 128;
    for (int64_t gi = 0; gi < p->g; gi++) {
        fp8_problem view = {.m_max = p->m_max, .n = n, .k = k,
                            .a = p->a + gi * p->m_max * k, .b = p->b + gi * n * k,
                            .sa = p->sa + gi * p->m_max * kb, .sb = p->sb + gi * nb * kb};
        int64_t rows = masked[gi] < 0 ? 0 : masked[gi] > p->m_max ? p->m_max : masked[gi];
        const uint16_t *dg = d + gi * p->m_max * n;
        for (int64_t i = rows * n; i < p->m_max * n; i++)
            if (dg[i] != 0xffff)
                fail_msg("masked G=%lld: group %lld row %lld (past masked_m %d) was written",
                         (long long)p->g, (long long)gi, (long long)(i / n), masked[gi]);
        if (rows == 0)
            continue;
        int64_t *ids = malloc((size_t)rows * sizeof *ids);
        for (int64_t r = 0; r < rows; r++)
            ids[r] = r;
        double *ref = malloc((size_t)(rows * n) * sizeof(double));
        fp8_reference(&view, ids, rows, ref);
        double sxy = 0, sxx = 0, sref2 = 0;
        for (int64_t i = 0; i < rows * n; i++)
            sref2 += ref[i] * ref[i];
        double rms = sqrt(sref2 / (double)(rows * n));
        for (int64_t i = 0; i < rows * n; i++) {
            double x = bf16_to_float(dg[i]), y = ref[i];
            /* the dense test's loose bound: a wrong scale, row or column misses it by far */
            if (!isfinite(x) || fabs(x - y) > fabs(y) / 16 + 1e-2 * rms)
                fail_msg("masked group %lld: D[%lld][%lld] = %g, reference %g", (long long)gi,
                         (long long)(i / n), (long long)(i % n), x, y);
            sxy += x * y;
            sxx += x * x + y * y;
        }
        double diff = 1.0 - 2.0 * sxy / sxx;
        if (!(diff < 1e-3))
            fail_msg("masked group %lld: diff %.3e", (long long)gi, diff);
        free(ids);
        free(ref);
    }
}

static void check_masked(int64_t g, int64_t m_max, int64_t n, int64_t k, int64_t expected)
{
    masked_problem p;
    masked_make(&p, g, m_max, n, k);
    int32_t *masked = malloc((size_t)g * 4);
    for (int64_t i = 0; i < g; i++) /* 0 and M_max among them */
        masked[i] = i == 0 ? 0 : i == 1 ? (int32_t)m_max : (int32_t)(rng_next(&seed) % (uint64_t)(m_max + 1));
    gpu_upload(p.dmask, masked, (size_t)g * 4);
    size_t d_bytes = (size_t)(g * m_max * n) * 2;
    void *dd = gpu_alloc(d_bytes);
    uint16_t *d[2] = {malloc(d_bytes), malloc(d_bytes)};
    for (int run = 0; run < 2; run++) {
        gpu_poison(dd, d_bytes, 0xffffffffu);
        kiln_gemm_fp8_masked_args args = masked_args(&p, dd, expected);
        /* the second run loads B on a guess (wrong for most CTAs: group 0 is empty) */
        args.b_ready = run * KILN__GEMM_B_EARLY_SLOTS;
        if (kiln__gemm_fp8_masked_with(ctx, &args, forced, NULL) != KILN_OK)
            fail_msg("masked %lldx%lldx%lldx%lld: %s", (long long)g, (long long)m_max,
                     (long long)n, (long long)k, kiln_ctx_errmsg(ctx));
        gpu_sync();
        gpu_download(d[run], dd, d_bytes);
    }
    if (memcmp(d[0], d[1], d_bytes) != 0)
        fail_msg("masked: two runs differ");
    masked_check(&p, masked, d[0]);
    print_message("  masked %3lld groups x %4lld rows (expected %lld) x %5lld x %5lld: ok\n",
                  (long long)g, (long long)m_max, (long long)expected, (long long)n, (long long)k);
    free(masked);
    free(d[0]);
    free(d[1]);
    gpu_free(dd);
    masked_free(&p);
}

static void test_masked_groups(void **state)
{
    (void)state;
    check_masked(4, 256, 4096, 7168, 200);
    check_masked(8, 64, 7168, 2048, 40);
    check_masked(32, 24, 4096, 7168, 20);
    check_masked(3, 200, 272, 384, 150); /* M_max not a multiple of the tile, odd N */
    check_masked(2, 1024, 2112, 1536, 900);
    check_masked(2, 64, 1024, 7168, 50); /* a K split over a 4-CTA cluster (64x72 tiles) */
    check_masked(2, 64, 2048, 7168, 50); /* ... and over a 2-CTA cluster (64x64) */
    check_masked(32, 92, 752, 512, 92);  /* 128 x 192 tiles, 4 per group, the last cut at 752 */
}

/* One graph, captured once, replayed over new masked_m contents: right every time. */
/* The benchmark's --masked --sweep: every masked alternative is as correct as the pick. */
static void test_masked_alternatives(void **state)
{
    (void)state;
    static const int64_t shapes[][5] = {{4, 64, 512, 1024, 40}, {8, 64, 2048, 2048, 64}};
    for (int s = 0; s < 2; s++) { /* {groups, M_max, N, K, expected} */
        const int64_t *sh = shapes[s];
        kiln__gemm_config alt[KILN_GEMM_FP8_MAX_ALTERNATIVES];
        int count = kiln__gemm_fp8_masked_alternatives(sh[0], sh[4], sh[1], sh[2], sh[3],
                                                       ctx->num_sms, alt,
                                                       KILN_GEMM_FP8_MAX_ALTERNATIVES);
        for (int i = 0; i < count; i++) {
            print_message("  %dx%d stages %d k_split %d cluster_k %d overlap %d unroll %d\n",
                          alt[i].block_m, alt[i].block_n, alt[i].stages, alt[i].k_split,
                          alt[i].cluster_k, alt[i].overlap, alt[i].unroll);
            forced = &alt[i];
            check_masked(sh[0], sh[1], sh[2], sh[3], sh[4]);
            forced = NULL;
        }
    }
}

static void test_masked_graph_replay(void **state)
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
    kiln_gemm_fp8_masked_args args = masked_args(&p, dd, 48);
    args.b_ready = 1; /* B on a guess of groups of expected_m rows: right only on some replays */
    assert_int_equal(kiln_gemm_fp8_masked(ctx, &args, (kiln_stream)stream), KILN_OK);
    CU_CHECK(drv->cuStreamSynchronize(stream));
    CUgraph graph;
    CUgraphExec exec;
    CU_CHECK(drv->cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_GLOBAL));
    assert_int_equal(kiln_gemm_fp8_masked(ctx, &args, (kiln_stream)stream), KILN_OK);
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
        masked_check(&p, masked, d);
    }
    CU_CHECK(drv->cuGraphExecDestroy(exec));
    CU_CHECK(drv->cuGraphDestroy(graph));
    CU_CHECK(drv->cuStreamDestroy(stream));
    free(d);
    gpu_free(dd);
    masked_free(&p);
}

/* Serving mode: a cache prewarmed without a GPU (compile-only context, spec lines) serves a
 * KILN_JIT=0 context on the device: batch sizes of the prewarmed bucket run without a
 * compile, a shape that was not prewarmed is KILN_ERR_MISS and launches nothing. */
static void test_prewarmed_cache_serves_jit_off(void **state)
{
    (void)state;
    char dir[32];
    kiln_ctx *server = gpu_jit_off_ctx(dir, "gemm_fp8 m=64 n=1024 k=1024");
    assert_non_null(server);
    fp8_problem p;
    fp8_problem_make(&p, 64, 1024, 1024, &seed);
    for (int64_t m = 40; m <= 64; m += 24) { /* 40 and 64 rows: one tile configuration */
        float *sfa = fp8_problem_sfa(&p, m);
        size_t sfa_bytes = (size_t)(8 * kiln_sf_mn_stride(m)) * 4;
        void *dsfa = gpu_alloc(sfa_bytes), *dd = gpu_alloc((size_t)(m * 1024) * 2);
        gpu_upload(dsfa, sfa, sfa_bytes);
        kiln_gemm_fp8_args args = gemm_args(&p, m, dsfa, dd);
        for (args.b_ready = 0; args.b_ready <= 1; args.b_ready++) /* a kernel each */
            if (kiln_gemm_fp8(server, &args, NULL) != KILN_OK)
                fail_msg("KILN_JIT=0, m=%lld, b_ready %d: %s", (long long)m, args.b_ready,
                         kiln_ctx_errmsg(server));
        gpu_sync();
        gpu_free(dsfa);
        gpu_free(dd);
        free(sfa);
    }
    fp8_problem_free(&p);
    fp8_problem_make(&p, 64, 2048, 1024, &seed); /* N not prewarmed */
    float *sfa = fp8_problem_sfa(&p, 64);
    void *dsfa = gpu_alloc(8 * 64 * 4), *dd = gpu_alloc(64 * 2048 * 2);
    gpu_upload(dsfa, sfa, 8 * 64 * 4);
    kiln_gemm_fp8_args args = gemm_args(&p, 64, dsfa, dd);
    assert_int_equal(kiln_gemm_fp8(server, &args, NULL), KILN_ERR_MISS);
    assert_non_null(strstr(kiln_ctx_errmsg(server), "KILN_JIT=0"));
    gpu_free(dsfa);
    gpu_free(dd);
    free(sfa);
    fp8_problem_free(&p);
    kiln_ctx_destroy(server);
    assert_int_equal(gpu_remove_dir(dir), 0);
}

int main(void)
{
    ctx = gpu_ctx_or_skip();
    seed = rng_fresh_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_odd_shapes),
        cmocka_unit_test(test_cluster_partial_rows),
        cmocka_unit_test(test_prefill_k_split_partial_rows),
        cmocka_unit_test(test_prefill_narrow_rows),
        cmocka_unit_test(test_m_blocks_decode_rows),
        cmocka_unit_test(test_deepseek_shapes),
        cmocka_unit_test(test_multicast),
        cmocka_unit_test(test_tall_tiles),
        cmocka_unit_test(test_tail_split),
        cmocka_unit_test(test_sweep_alternatives),
        cmocka_unit_test(test_trace_mode),
        cmocka_unit_test(test_masked_groups),
        cmocka_unit_test(test_masked_alternatives),
        cmocka_unit_test(test_masked_graph_replay),
        cmocka_unit_test(test_prewarmed_cache_serves_jit_off),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    kiln_ctx_destroy(ctx);
    return failed;
}
