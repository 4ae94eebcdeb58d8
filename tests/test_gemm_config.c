/* The FP8 GEMM configuration heuristic, without a GPU: over a sweep of shapes every pick
 * satisfies the kernel template's compile-time rules, fits in shared memory and in a
 * block, and a random sample of picks compiles with NVRTC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../src/runtime/gemm_config.h"

static void check_rules(const kiln__gemm_config *c, int64_t m, int64_t n, int64_t k)
{
    int kb = (int)(k / 128), ck = c->cluster_k > 1 ? c->cluster_k : 1;
    int math_wg = c->block_m / 64 * c->k_split, rg = c->block_m / 64;
    bool ok = (c->block_m == 64 || c->block_m == 128) && c->block_n % 8 == 0 &&
              c->block_n >= 8 && c->block_n <= 256 && c->stages >= 2 && c->stages <= 32 &&
              (c->k_split == 1 || c->k_split == 2 || c->k_split == 4) &&
              c->stages % c->k_split == 0 && ck <= 8 && ck <= kb &&
              (c->k_split == 1 || (kb % ck == 0 && (kb / ck) % c->k_split == 0)) &&
              (c->multicast <= 1 || ck == 1) && kiln__gemm_fp8_threads(c) <= 1024 &&
              kiln__gemm_fp8_smem(c) <= 232448 && 1 + math_wg + 2 * rg <= 16;
    if (!ok)
        fail_msg("%lldx%lldx%lld: bad config %dx%d stages %d k_split %d cluster_k %d multicast %d "
                 "(smem %d, threads %d)",
                 (long long)m, (long long)n, (long long)k, c->block_m, c->block_n, c->stages,
                 c->k_split, c->cluster_k, c->multicast, kiln__gemm_fp8_smem(c),
                 kiln__gemm_fp8_threads(c));
}

static void test_rules_over_a_sweep(void **state)
{
    (void)state;
    static const int64_t ms[] = {1, 2, 7, 33, 64, 65, 100, 128, 129, 500, 1000, 4096, 65536};
    int checked = 0;
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        for (int64_t n = 16; n <= 65536; n = n < 1024 ? n + 48 : n * 2 + 16)
            for (int64_t k = 128; k <= 32768; k = k < 2048 ? k + 128 : k * 2) {
                for (int sms = 66; sms <= 132; sms += 66) {
                    kiln__gemm_config c = kiln__gemm_fp8_pick(ms[i], n, k, sms);
                    check_rules(&c, ms[i], n, k);
                    checked++;
                }
            }
    print_message("  %d picks checked\n", checked);
}

/* A random sample of picks, compiled: the template's static_asserts agree with the rules. */
static void test_sample_compiles(void **state)
{
    (void)state;
    srand((unsigned)time(NULL));
    for (int i = 0; i < 6; i++) {
        int64_t m = 1 + rand() % 5000, n = 16 * (1 + rand() % 1000), k = 128 * (1 + rand() % 64);
        kiln__gemm_config c = kiln__gemm_fp8_pick(m, n, k, 132);
        kj_spec spec;
        kiln__gemm_fp8_spec(&spec, NULL, n, k, &c);
        kj_output out;
        kiln__err err = {0};
        if (kj_compile(&spec, "sm_90a", NULL, &out, &err) != KILN_OK)
            fail_msg("%lldx%lldx%lld (%dx%d, %d stages, k_split %d, cluster_k %d): %s",
                     (long long)m, (long long)n, (long long)k, c.block_m, c.block_n, c.stages,
                     c.k_split, c.cluster_k, err.msg);
        assert_int_equal(out.spills, 0);
        kj_output_free(&out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_over_a_sweep),
        cmocka_unit_test(test_sample_compiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
