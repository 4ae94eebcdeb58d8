/* The BF16 GEMM without a GPU: over a sweep of shapes every configuration pick satisfies
 * the kernel template's compile-time rules and fits in shared memory; one pick of every
 * kind (decode with and without a cluster split, prefill, each layout, FP32 output, masked
 * and contiguous groups) compiles with NVRTC without spills; a compile-only context rejects
 * bad arguments with a message naming the problem, and accepts good ones as far as the
 * missing device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../src/runtime/gemm_bf16.h"
#include "compiled_layout.h"

static void check_rules(const kiln__gemm_bf16_config *c, int64_t m, int64_t n, int64_t k)
{
    int64_t kb = (k + 63) / 64;
    int ck = c->cluster_k > 1 ? c->cluster_k : 1;
    bool ok = (c->block_m == 64 || c->block_m == 128) && c->block_n % 8 == 0 &&
              c->block_n >= 8 && c->block_n <= 256 && c->stages >= 2 && c->stages <= 32 &&
              ck <= 8 && ck <= kb && (!(c->layout & 2) || c->block_n % 64 == 0) &&
              (!(c->layout & 2) || ck == 1 || c->block_n <= 128) &&
              kiln__gemm_bf16_threads(c) <= 1024 && kiln__gemm_bf16_smem(c) <= 232448;
    if (!ok)
        fail_msg("%lldx%lldx%lld layout %d: bad config %dx%d stages %d cluster_k %d (smem %d)",
                 (long long)m, (long long)n, (long long)k, c->layout, c->block_m, c->block_n,
                 c->stages, c->cluster_k, kiln__gemm_bf16_smem(c));
}

/* c's kernel for (n, k) through NVRTC (what names the case in a failure): no spill, no stack
 * frame (no register array in local memory), and the launch gives the kernel the host's count
 * of shared memory. *out keeps the compile's figures; the caller frees it. */
static void assert_compiles(const kiln__gemm_bf16_config *c, int64_t n, int64_t k,
                            const char *what, kj_output *out)
{
    kj_spec spec;
    kiln__gemm_bf16_spec(&spec, n, k, c);
    kiln__err err = {0};
    int layout = -1;
    if (compile_reading(&spec, "kiln_gemm_bf16_smem_layout", &layout, out, &err) != KILN_OK)
        fail_msg("%s: %s", what, err.msg);
    assert_int_equal(out->spills, 0);
    assert_int_equal(out->stack_bytes, 0);
    assert_int_equal(layout, kiln__gemm_bf16_smem(c));
}

typedef bool (*dense_rule)(kiln__gemm_bf16_config *, int64_t, int64_t, int64_t, int);

/* One case of a dense prefill rule of the launch's chain (132 SMs): rule on the pick of
 * (m, n, k, layout, out_f32) takes or leaves it as `takes` says; left, the pick is as it was;
 * taken, the launch's chain ends in the same configuration and it keeps the rules. Returns
 * the configuration. */
static kiln__gemm_bf16_config rule_case(dense_rule rule, const char *name, int64_t m, int64_t n,
                                        int64_t k, int layout, int out_f32, bool takes)
{
    kiln__gemm_bf16_config c = kiln__gemm_bf16_pick(m, n, k, layout, out_f32, 132);
    const kiln__gemm_bf16_config before = c;
    const bool took = rule(&c, m, n, k, 132);
    if (took != takes)
        fail_msg("%lldx%lldx%lld layout %d f32 %d: %s %d, want %d (%d columns)", (long long)m,
                 (long long)n, (long long)k, layout, out_f32, name, took, takes, c.block_n);
    if (!took) {
        assert_memory_equal(&c, &before, sizeof c); /* left as picked */
        return c;
    }
    kiln__gemm_bf16_config dense = kiln__gemm_bf16_pick_dense(m, n, k, layout, out_f32, 132, true);
    assert_memory_equal(&dense, &c, sizeof c); /* the launch takes it */
    check_rules(&c, m, n, k);
    return c;
}

static void test_bf16_rules_over_a_sweep(void **state)
{
    (void)state;
    static const int64_t ms[] = {1, 7, 64, 65, 128, 129, 1000, 4096, 65536};
    int checked = 0;
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        for (int64_t n = 8; n <= 65536; n = n < 1024 ? n + 40 : n * 2 + 8)
            for (int64_t k = 8; k <= 32768; k = k < 2048 ? k + 120 : k * 2)
                for (int layout = 0; layout < 4; layout++)
                    for (int out_f32 = 0; out_f32 < 2; out_f32++) {
                        kiln__gemm_bf16_config c =
                            kiln__gemm_bf16_pick(ms[i], n, k, layout, out_f32, 132);
                        check_rules(&c, ms[i], n, k);
                        checked++;
                        kiln__gemm_bf16_config split = c;
                        if (kiln__gemm_bf16_prefill_k_split(&split, ms[i], n, k, 132)) {
                            check_rules(&split, ms[i], n, k);
                            checked++;
                        }
                        if (layout != 0)
                            continue;
                        /* the grouped kernels: NT only, and their tiles never defer */
                        for (int grouping = 1; grouping <= 2; grouping++) {
                            c = kiln__gemm_bf16_pick_grouped(ms[i], n, k, 0, out_f32, grouping,
                                                             132);
                            check_rules(&c, ms[i], n, k);
                            assert_int_equal(c.grouping, grouping);
                            assert_int_equal(c.defer_store, 0);
                            checked++;
                        }
                    }
    print_message("  %d picks checked\n", checked);
}

/* Decode splits on 132 SMs: the long-K, narrow-N projection (576 x 7168) splits K over
 * clusters of 8 in at most 15 tiles (a 16th cluster of 8 waits for a second wave), while
 * the wider DeepSeek shapes keep the splits the H200 sweeps found fastest; with too few SMs
 * for a cluster of 8 the pick falls back to smaller clusters. Stop 51's profiler sweep: at
 * (7168, 16384) 64-row tiles split K in two, not four (64x112 ck2 60.45 us against 64x240
 * ck4 64.00 at M = 64), and at (32768, 512) each CTA takes two tiles half as wide (128x128
 * 13.47 us against 128x256 14.02 at M = 128). */
static void test_bf16_decode_splits(void **state)
{
    (void)state;
    for (int64_t m = 1; m <= 128; m += 63) {
        kiln__gemm_bf16_config c = kiln__gemm_bf16_pick(m, 576, 7168, 0, 0, 132);
        assert_int_equal(c.cluster_k, 8);
        assert_true((576 + c.block_n - 1) / c.block_n <= 15);
        assert_int_equal(kiln__gemm_bf16_pick(m, 2112, 7168, 0, 0, 132).cluster_k, 4);
        assert_int_equal(kiln__gemm_bf16_pick(m, 4096, 7168, 0, 0, 132).cluster_k, 2);
        assert_true(kiln__gemm_bf16_pick(m, 24576, 1536, 0, 0, 132).cluster_k <= 1);
        assert_true(kiln__gemm_bf16_pick(m, 576, 7168, 0, 0, 8).cluster_k < 8);
        kiln__gemm_bf16_config wide = kiln__gemm_bf16_pick(m, 32768, 512, 0, 0, 132);
        assert_true(wide.block_n == 128 && wide.cluster_k == 0);
    }
    for (int64_t m = 1; m <= 64; m += 63) {
        kiln__gemm_bf16_config deep = kiln__gemm_bf16_pick(m, 7168, 16384, 0, 0, 132);
        assert_true(deep.block_n == 112 && deep.cluster_k == 2);
    }
}

/* M = 129-384 takes decode's tiles in two or three m blocks, each over its share of the SMs,
 * where they split K over clusters (129 x 576: 128 x 40 over 4; an N-major B 64 columns;
 * 300 x 576 over 44 SMs: 128 x 64 over 4), before the prefill K split; with A K-major in two
 * m blocks, where 128-row tiles of 48-128 columns fill the share with as many CTAs unsplit,
 * those instead (N = 4096 over 66 SMs: 64 columns; 3072: 48; not 2112 at 32, nor 300 x 2112
 * in three, nor A M-major); not at N = 7168 (no cluster on 66 SMs), M = 128 or 385, or
 * grouped; the kernels compile as the host lays them out. */
static void test_bf16_m_blocks_decode(void **state)
{
    (void)state;
    static const struct {
        int64_t m, n, k;
        int layout, block_n, cluster_k; /* block_n 0: not taken */
    } cases[] = {
        {129, 576, 7168, 0, 40, 4},  {256, 2112, 7168, 0, 64, 2}, {200, 576, 7168, 2, 64, 4},
        {129, 4096, 7168, 0, 64, 0}, {129, 1024, 2048, 0, 32, 2}, {129, 7168, 7168, 0, 0, 0},
        {128, 576, 7168, 0, 0, 0},   {385, 576, 7168, 0, 0, 0},   {300, 576, 7168, 0, 64, 4},
        {384, 576, 2048, 0, 32, 2},  {256, 3072, 7168, 0, 48, 0}, {300, 2112, 7168, 0, 96, 2},
        {384, 3072, 7168, 0, 144, 2}, {200, 4096, 7168, 1, 128, 2}, {200, 4096, 7168, 2, 64, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int64_t m = cases[i].m, n = cases[i].n, k = cases[i].k;
        kiln__gemm_bf16_config c = kiln__gemm_bf16_pick(m, n, k, cases[i].layout, 0, 132);
        kiln__gemm_bf16_config before = c;
        bool taken = kiln__gemm_bf16_m_blocks_decode(&c, m, n, k, 132);
        if (taken != (cases[i].block_n > 0) ||
            (taken && (c.cluster_k != cases[i].cluster_k || c.block_n != cases[i].block_n)))
            fail_msg("%lldx%lldx%lld layout %d: taken %d, %dx%d over %d", (long long)m,
                     (long long)n, (long long)k, cases[i].layout, taken, c.block_m, c.block_n,
                     c.cluster_k);
        kiln__gemm_bf16_config dense =
            kiln__gemm_bf16_pick_dense(m, n, k, cases[i].layout, 0, 132, true);
        if (!taken) {
            assert_memory_equal(&c, &before, sizeof c); /* left as picked */
            continue;
        }
        assert_memory_equal(&dense, &c, sizeof c); /* the dense launch takes it */
        assert_int_equal(c.block_m, 128);
        const int ctas = c.cluster_k > 1 ? c.cluster_k : 1;
        assert_true((m + 127) / 128 * ((n + c.block_n - 1) / c.block_n) * ctas <= 132);
        check_rules(&c, m, n, k);
        if (i < 4) {
            kj_output out = {0};
            assert_compiles(&c, n, k, "m-block decode kernel", &out);
            kj_output_free(&out);
        }
    }
    kiln__gemm_bf16_config grouped = kiln__gemm_bf16_pick_grouped(200, 576, 7168, 0, 0, 1, 132);
    assert_false(kiln__gemm_bf16_m_blocks_decode(&grouped, 200, 576, 7168, 132));
}

/* Dense prefill with fewer 128-row tiles than SMs splits K over the largest cluster whose
 * clusters are all resident (15 of 8, 30 of 4, 66 of 2 on 132 SMs), of 8 only for 8 tiles or
 * fewer (half of the SMs), from K = 2048 and split evenly; its tiles store from registers (no
 * deferred store); the template lays out the split kernel's shared memory as the host counts
 * it. */
static void test_bf16_prefill_k_split_where_few_tiles(void **state)
{
    (void)state;
    static const struct {
        int64_t m, n, k;
        int layout, cluster_k; /* 0: no split */
    } cases[] = {
        {512, 576, 7168, 0, 4},   {129, 576, 7168, 0, 4},  {1024, 576, 7168, 0, 2},
        {512, 4096, 7168, 0, 0},  {2048, 576, 7168, 0, 0}, {4096, 4096, 7168, 0, 0},
        {512, 576, 2048, 0, 4},   {128, 576, 7168, 0, 0},  {1000, 576, 4000, 0, 0},
        {1000, 576, 2048, 2, 2},  {512, 576, 1984, 0, 0},  {512, 7168, 2048, 0, 0},
        {300, 1024, 4096, 2, 4},  {300, 2048, 7168, 1, 2}, {200, 512, 7168, 0, 8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kiln__gemm_bf16_config c =
            kiln__gemm_bf16_pick(cases[i].m, cases[i].n, cases[i].k, cases[i].layout, 0, 132);
        kiln__gemm_bf16_config before = c;
        bool split =
            kiln__gemm_bf16_prefill_k_split(&c, cases[i].m, cases[i].n, cases[i].k, 132);
        int got = split ? c.cluster_k : 0;
        if (got != cases[i].cluster_k || split != (cases[i].cluster_k > 0))
            fail_msg("%lldx%lldx%lld layout %d: cluster_k %d, want %d", (long long)cases[i].m,
                     (long long)cases[i].n, (long long)cases[i].k, cases[i].layout, got,
                     cases[i].cluster_k);
        if (!split) {
            assert_memory_equal(&c, &before, sizeof c); /* left as picked */
            continue;
        }
        check_rules(&c, cases[i].m, cases[i].n, cases[i].k);
        assert_int_equal(c.defer_store, 0);
        int64_t tiles = (cases[i].m + 127) / 128 * ((cases[i].n + c.block_n - 1) / c.block_n);
        assert_true(tiles <= kiln__resident_clusters(132, c.cluster_k));
        if (i > 0)
            continue;
        kj_output out = {0};
        assert_compiles(&c, cases[i].n, cases[i].k, "split kernel", &out);
        kj_output_free(&out);
    }
}

/* Dense NT or TT prefill (M > 384, K 2048-8192, BF16 output) whose 64 x 96 tiles fill more than
 * half of the SMs in one round takes them with split issue, ahead of the K split; the launch's
 * chain takes it; not for an N-major B, FP32 output, K outside the range, 64 x 96 tiles that fill
 * half the SMs or fewer or take two rounds; the kernel compiles. */
static void test_bf16_prefill_split_issue_rule(void **state)
{
    (void)state;
    static const struct {
        int64_t m, n, k;
        int layout, out_f32;
        bool takes;
    } cases[] = {
        {768, 576, 7168, 0, 0, true},   {896, 576, 7168, 0, 0, true},
        {768, 576, 2048, 0, 0, true},   {448, 1024, 7168, 0, 0, true},
        {512, 1024, 7168, 0, 0, true},  {900, 576, 2048, 0, 0, true},
        {450, 1000, 4096, 0, 0, true},  {640, 576, 7168, 0, 0, false},
        {704, 576, 7168, 0, 0, false},  {768, 576, 16384, 0, 0, false},
        {768, 576, 1984, 0, 0, false},  {768, 576, 7168, 1, 0, true},
        {768, 576, 7168, 2, 0, false},  {768, 576, 7168, 0, 1, false},
        {384, 1024, 7168, 0, 0, false}, {2048, 576, 7168, 0, 0, false},
        {1024, 576, 7168, 1, 0, true},  {768, 576, 7168, 3, 0, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int64_t n = cases[i].n, k = cases[i].k;
        kiln__gemm_bf16_config c =
            rule_case(kiln__gemm_bf16_prefill_split_issue, "split issue", cases[i].m, n, k,
                      cases[i].layout, cases[i].out_f32, cases[i].takes);
        if (!cases[i].takes)
            continue;
        assert_int_equal(c.block_m, 64);
        assert_int_equal(c.block_n, 96);
        assert_int_equal(c.split_issue, 1);
        assert_true(c.cluster_k <= 1);
        if (i > 0)
            continue;
        kj_output out = {0};
        assert_compiles(&c, n, k, "split-issue kernel", &out);
        kj_output_free(&out);
    }
}

/* Prefill whose 128 x 128 tiles fit one round with SMs idle and take no K split narrows to 96
 * or 64 columns where they keep one round (an N-major B only to 64) and their L2 traffic does
 * not outweigh the narrower MMAs (384 x 4096 x 7168 stays at 128), from K = 2048; in two m
 * blocks (NT, BF16 output) to the width between 96 and 128 that fills the SMs (N = 7168: 112);
 * the dense chain takes it after the split. */
static void test_bf16_prefill_narrow_fills_one_round(void **state)
{
    (void)state;
    static const struct {
        int64_t m, n, k;
        int layout, block_n; /* 0: left as picked */
    } cases[] = {
        {300, 4096, 7168, 0, 96}, {512, 2112, 2048, 0, 64}, {512, 2112, 2048, 2, 64},
        {1100, 1024, 7168, 1, 96}, {384, 4096, 7168, 0, 0},  {384, 4096, 7168, 2, 0},
        {512, 3072, 2048, 0, 96},  {768, 2112, 7168, 0, 96}, {256, 7168, 16384, 0, 112},
        {4096, 7168, 2048, 0, 0},  {512, 2112, 1984, 0, 0}, {128, 2112, 7168, 0, 0},
        {129, 7168, 2048, 0, 112}, {256, 7168, 16384, 1, 0}, {384, 7168, 16384, 0, 0},
        {256, 8448, 7168, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int64_t m = cases[i].m, n = cases[i].n, k = cases[i].k;
        kiln__gemm_bf16_config c = rule_case(kiln__gemm_bf16_prefill_narrow, "narrowed", m, n, k,
                                             cases[i].layout, 0, cases[i].block_n > 0);
        if (cases[i].block_n == 0)
            continue;
        assert_int_equal(c.block_n, cases[i].block_n);
        assert_true((m + 127) / 128 * ((n + c.block_n - 1) / c.block_n) <= 132);
        if (i > 1)
            continue;
        kj_output out = {0};
        assert_compiles(&c, n, k, "narrow kernel", &out);
        kj_output_free(&out);
    }
    /* One SM or a few: no share of them to fill (stop 71's fuzz found a division by zero). */
    for (int sms = 1; sms <= 4; sms++) {
        kiln__gemm_bf16_config c = kiln__gemm_bf16_pick(256, 7168, 16384, 0, 0, 132);
        kiln__gemm_bf16_prefill_narrow(&c, 256, 7168, 16384, sms);
        assert_true(c.block_n >= 16 && c.stages >= 2);
    }
}

/* One specialization of every kind through NVRTC: the template's static_asserts agree with
 * the host rules, and nothing spills. */
static void test_bf16_kinds_compile(void **state)
{
    (void)state;
    static const struct {
        int64_t m, n, k;
        int layout, out_f32, grouping;
    } kinds[] = {
        {64, 2112, 7168, 0, 0, 0},   /* decode, cluster_k 4 */
        {64, 24576, 1536, 0, 0, 0},  /* decode, one tile per SM */
        {128, 576, 7168, 0, 0, 0},   /* decode, cluster_k 8 */
        {4096, 7168, 2048, 0, 0, 0}, /* prefill 128 x 256 */
        {4096, 576, 7168, 0, 1, 0},  /* prefill, FP32 output */
        {300, 1024, 200, 1, 0, 0},   /* TT, K off the 64 grid */
        {128, 1024, 512, 2, 1, 0},   /* NN */
        {4096, 4096, 7168, 3, 0, 0}, /* TN */
        {40, 7168, 2048, 0, 1, 1},   /* masked */
        {8192, 4096, 7168, 0, 0, 2}, /* contiguous, prefix sums */
        {8192, 4096, 7168, 0, 0, 3}, /* contiguous, row ids */
        {500, 576, 1536, 0, 1, 3},   /* row ids, FP32 output */
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        kiln__gemm_bf16_config c = kiln__gemm_bf16_pick(kinds[i].m, kinds[i].n, kinds[i].k,
                                                        kinds[i].layout, kinds[i].out_f32, 132);
        c.grouping = kinds[i].grouping;
        if (c.grouping == 2)
            c.m_align = 128;
        c.no_b_early = c.grouping == 0 && i % 2; /* the kernels of launches without b_ready */
        c.defer_store = c.defer_store && c.grouping == 0; /* as the grouped GEMMs' picks */
        char what[64];
        snprintf(what, sizeof what, "%lldx%lldx%lld", (long long)kinds[i].m,
                 (long long)kinds[i].n, (long long)kinds[i].k);
        kj_output out = {0};
        assert_compiles(&c, kinds[i].n, kinds[i].k, what, &out);
        print_message("  %5lld x %5lld x %5lld layout %d f32 %d grouping %d: %dx%d s%d ck%d  "
                      "%6.1f ms %3d regs\n",
                      (long long)kinds[i].m, (long long)kinds[i].n, (long long)kinds[i].k,
                      kinds[i].layout, kinds[i].out_f32, kinds[i].grouping, c.block_m, c.block_n,
                      c.stages, c.cluster_k, out.compile_ms, out.registers);
        kj_output_free(&out);
    }
}

/* An N-major B's decode picks (weights of their own, fitted to stop 53's NN sweep): its
 * clustered tiles are at most 128 columns wide, and at (2112, 7168) M <= 64 it takes 64x128
 * tiles over clusters of 4 (12.77 us in that sweep, against 14.94 for 64x64 over 2 and
 * 16.03 for 64x192 over 8); 128 rows there keep 128x64 over 2 (16.64 against 17.54), and
 * (7168, 16384) keeps 64x128 over 2. A K-major B's picks are as before. */
static void test_bf16_n_major_decode_rule(void **state)
{
    (void)state;
    for (int layout = KILN_GEMM_NN; layout <= KILN_GEMM_TN; layout++) {
        for (int64_t m = 1; m <= 64; m += 63) {
            kiln__gemm_bf16_config c = kiln__gemm_bf16_pick(m, 2112, 7168, layout, 0, 132);
            assert_int_equal(c.block_n, 128);
            assert_int_equal(c.cluster_k, 4);
        }
        kiln__gemm_bf16_config c = kiln__gemm_bf16_pick(128, 2112, 7168, layout, 0, 132);
        assert_int_equal(c.block_n, 64);
        assert_int_equal(c.cluster_k, 2);
        c = kiln__gemm_bf16_pick(64, 7168, 16384, layout, 0, 132);
        assert_int_equal(c.block_n, 128);
        assert_int_equal(c.cluster_k, 2);
    }
    kiln__gemm_bf16_config nt = kiln__gemm_bf16_pick(64, 2112, 7168, KILN_GEMM_NT, 0, 132);
    assert_int_equal(nt.block_n, 72);
    assert_int_equal(nt.cluster_k, 4);
}

/* Dense launches without b_ready take the kernel without the early-B path; with it, and
 * grouped ones, the kernel as before. */
static void test_bf16_no_b_early_rule(void **state)
{
    (void)state;
    kiln__gemm_bf16_config c = kiln__gemm_bf16_pick(64, 7168, 2048, 0, 0, 132);
    assert_true(kiln__gemm_bf16_no_b_early(&c, 0));
    assert_false(kiln__gemm_bf16_no_b_early(&c, 2));
    c.out_f32 = 1; /* unlike the FP8 GEMM's FP32 mode, BF16's FP32 output has the path */
    assert_true(kiln__gemm_bf16_no_b_early(&c, 0));
    for (int grouping = 1; grouping <= 2; grouping++) {
        c.grouping = grouping;
        assert_false(kiln__gemm_bf16_no_b_early(&c, 0));
    }
}

/* Prefill tiles with BF16 output whose width stores in 64-column slabs are stored during
 * the next tile's first K block, in every layout; FP32 output (no room for a second copy of
 * the sums), decode sizes (one tile per CTA: nothing to hide the store behind) and widths of
 * narrower slabs (4096 x 2112: 176 columns) store at once. */
static void test_bf16_defer_store_rule(void **state)
{
    (void)state;
    /* Deferred tiles are priced by a fixed epilogue, not by their slabs, so short K takes the
     * widest tile where it measured fastest (stop 51: 4096 x 32768 x 512 at 256 columns 2.4%
     * faster than 128, 129 x 32768 x 512 33%, 4096 x 24576 x 1536 2.8%), and long K keeps 224
     * columns at M = 3000 (192, deferred, was 3.9% slower). */
    assert_int_equal(kiln__gemm_bf16_pick(129, 32768, 512, 0, 0, 132).block_n, 256);
    assert_int_equal(kiln__gemm_bf16_pick(4096, 32768, 512, 0, 0, 132).block_n, 256);
    assert_int_equal(kiln__gemm_bf16_pick(1024, 24576, 1536, 0, 0, 132).block_n, 256);
    assert_int_equal(kiln__gemm_bf16_pick(4096, 24576, 1536, 0, 0, 132).block_n, 256);
    assert_int_equal(kiln__gemm_bf16_pick(3000, 7168, 16384, 0, 0, 132).block_n, 224);
    for (int layout = 0; layout < 4; layout++) {
        for (int64_t m = 129; m <= 65536; m *= 4) {
            kiln__gemm_bf16_config c = kiln__gemm_bf16_pick(m, 7168, 2048, layout, 0, 132);
            assert_int_equal(c.defer_store, c.block_n % 64 == 0);
            assert_int_equal(kiln__gemm_bf16_pick(m, 7168, 2048, layout, 1, 132).defer_store, 0);
        }
        assert_int_equal(kiln__gemm_bf16_pick(4096, 7168, 2048, layout, 0, 132).defer_store, 1);
        for (int64_t m = 1; m <= 128; m += 127)
            assert_int_equal(kiln__gemm_bf16_pick(m, 7168, 2048, layout, 0, 132).defer_store, 0);
        kiln__gemm_bf16_config narrow = kiln__gemm_bf16_pick(4096, 2112, 7168, layout, 0, 132);
        assert_int_equal(narrow.defer_store, narrow.block_n % 64 == 0);
        if (layout == 0)
            assert_true(narrow.block_n == 176 && !narrow.defer_store);
    }
}

static kiln_tensor t2(void *data, kiln_dtype dtype, int64_t d0, int64_t d1)
{
    return (kiln_tensor){.data = data, .dtype = dtype, .ndim = 2, .shape = {d0, d1},
                         .strides = {d1, 1}};
}

/* A compile-only context: bad arguments are named before the missing device is. */
static void test_bf16_checks_without_device(void **state)
{
    (void)state;
    kiln_options opts;
    assert_int_equal(kiln_options_init(&opts), KILN_OK);
    char dir[] = "/tmp/kiln-bf16-checks-XXXXXX";
    assert_non_null(mkdtemp(dir));
    opts.device = KILN_DEVICE_NONE;
    opts.cache_path = dir;
    kiln_ctx *ctx = NULL;
    assert_int_equal(kiln_ctx_create(&ctx, &opts), KILN_OK);
    static _Alignas(256) char buf[4096];
    kiln_gemm_bf16_args good = {
        .a = t2(buf, KILN_DTYPE_BF16, 64, 512),
        .b = t2(buf, KILN_DTYPE_BF16, 256, 512),
        .d = t2(buf, KILN_DTYPE_F32, 64, 256),
        .layout = KILN_GEMM_NT,
    };
    assert_int_equal(kiln_gemm_bf16(ctx, &good, NULL), KILN_ERR_NO_DEVICE);
    /* The context keeps the first error until a call succeeds: clear it before each case. */
    assert_int_equal(kiln_cache_prune(ctx, INT64_MAX, NULL), KILN_OK);
    kiln_gemm_bf16_args bad = good;
    bad.layout = KILN_GEMM_TT; /* a read as [K = 64, M = 512]: b's K (512) disagrees */
    assert_int_equal(kiln_gemm_bf16(ctx, &bad, NULL), KILN_ERR_INVALID_ARG);
    assert_non_null(strstr(kiln_ctx_errmsg(ctx), "not a's K = 64"));
    assert_int_equal(kiln_cache_prune(ctx, INT64_MAX, NULL), KILN_OK);
    bad = good;
    bad.b.shape[0] = 260;
    assert_int_equal(kiln_gemm_bf16(ctx, &bad, NULL), KILN_ERR_INVALID_ARG);
    assert_non_null(strstr(kiln_ctx_errmsg(ctx), "N = 260"));
    assert_int_equal(kiln_cache_prune(ctx, INT64_MAX, NULL), KILN_OK);
    kiln_gemm_bf16_contig_args contig = {
        .a = t2(buf, KILN_DTYPE_BF16, 128, 512),
        .b = {.data = buf, .dtype = KILN_DTYPE_BF16, .ndim = 3, .shape = {2, 256, 512}},
        .d = t2(buf, KILN_DTYPE_BF16, 128, 256),
        .group_end = {.data = buf, .dtype = KILN_DTYPE_I32, .ndim = 1, .shape = {2}},
        .m_alignment = 100,
    };
    assert_int_equal(kiln_gemm_bf16_contig(ctx, &contig, NULL), KILN_ERR_INVALID_ARG);
    assert_non_null(strstr(kiln_ctx_errmsg(ctx), "m_alignment = 100"));
    /* The layout: exactly one of the two, each of its own length. */
    const kiln_tensor ids = {.data = buf, .dtype = KILN_DTYPE_I32, .ndim = 1, .shape = {128}};
    static const char *const layout_named[] = {"got both", "got neither",
                                               "row_expert must be I32 [M_total = 128]",
                                               "group_end must be I32 [G = 2]"};
    for (int i = 0; i < 4; i++) {
        kiln_gemm_bf16_contig_args c = contig;
        c.m_alignment = 128;
        c.row_expert = ids;
        if (i == 1)
            c.row_expert.data = NULL, c.group_end.data = NULL;
        if (i == 2)
            c.group_end.data = NULL, c.row_expert.shape[0] = 127;
        if (i == 3)
            c.row_expert.data = NULL, c.group_end.shape[0] = 3;
        assert_int_equal(kiln_cache_prune(ctx, INT64_MAX, NULL), KILN_OK);
        assert_int_equal(kiln_gemm_bf16_contig(ctx, &c, NULL), KILN_ERR_INVALID_ARG);
        if (strstr(kiln_ctx_errmsg(ctx), layout_named[i]) == NULL)
            fail_msg("layout case %d: \"%s\" does not say \"%s\"", i, kiln_ctx_errmsg(ctx),
                     layout_named[i]);
    }
    assert_int_equal(kiln_prewarm(ctx, "gemm_bf16 m=64 n=260 k=512", NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_prewarm(ctx, "gemm_bf16 m=64 n=256 k=512 layout=7", NULL),
                     KILN_ERR_INVALID_ARG);
    kiln_ctx_destroy(ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_rules_over_a_sweep),
        cmocka_unit_test(test_bf16_decode_splits),
        cmocka_unit_test(test_bf16_prefill_k_split_where_few_tiles),
        cmocka_unit_test(test_bf16_prefill_narrow_fills_one_round),
        cmocka_unit_test(test_bf16_prefill_split_issue_rule),
        cmocka_unit_test(test_bf16_m_blocks_decode),
        cmocka_unit_test(test_bf16_n_major_decode_rule),
        cmocka_unit_test(test_bf16_no_b_early_rule),
        cmocka_unit_test(test_bf16_defer_store_rule),
        cmocka_unit_test(test_bf16_checks_without_device),
        cmocka_unit_test(test_bf16_kinds_compile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
