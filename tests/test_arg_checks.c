/* Every FP8 operator's argument checks on a compile-only context, without a GPU (the BF16
 * GEMMs' are in test_gemm_bf16.c): well-formed arguments get as far as the missing device
 * (KILN_ERR_NO_DEVICE), and each bad one is refused with KILN_ERR_INVALID_ARG and a message
 * naming it, sizes past what the kernels index included (CI runs this under UBSan too, so
 * arithmetic on them before the check would fail it). Nothing is launched, so the tensors
 * point at a small host buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kiln/kiln.h"

static _Alignas(256) unsigned char fake[256];

static kiln_tensor tensor(kiln_dtype dtype, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
    return (kiln_tensor){.data = fake, .dtype = dtype, .ndim = ndim, .shape = {d0, d1, d2}};
}

static kiln_tensor t1(kiln_dtype dtype, int64_t d0)
{
    return tensor(dtype, 1, d0, 0, 0);
}
static kiln_tensor t2(kiln_dtype dtype, int64_t d0, int64_t d1)
{
    return tensor(dtype, 2, d0, d1, 0);
}
static kiln_tensor t3(kiln_dtype dtype, int64_t d0, int64_t d1, int64_t d2)
{
    return tensor(dtype, 3, d0, d1, d2);
}

static kiln_ctx *ctx;

static int make_ctx(void **state)
{
    (void)state;
    kiln_options opts;
    assert_int_equal(kiln_options_init(&opts), KILN_OK);
    opts.device = KILN_DEVICE_NONE;
    opts.cache_path = "";
    return kiln_ctx_create(&ctx, &opts) == KILN_OK ? 0 : -1;
}

static int destroy_ctx(void **state)
{
    (void)state;
    kiln_ctx_destroy(ctx);
    return 0;
}

/* got must be want with a message holding named. The context keeps its first error until
 * a call succeeds: one does before the checks, so the next case's message is its own. */
static void expect(kiln_status got, kiln_status want, const char *named, const char *what)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", kiln_ctx_errmsg(ctx));
    kiln_ctx_info info;
    assert_int_equal(kiln_ctx_get_info(ctx, &info), KILN_OK);
    if (got != want)
        fail_msg("%s: %s, expected %s (\"%s\")", what, kiln_status_str(got), kiln_status_str(want),
                 msg);
    if (strstr(msg, named) == NULL)
        fail_msg("%s: message \"%s\" does not name \"%s\"", what, msg, named);
}
#define EXPECT(call, want, named) expect((call), (want), (named), #call)
#define NO_DEVICE(call) EXPECT(call, KILN_ERR_NO_DEVICE, "compile-only")
#define REFUSED(call, named) EXPECT(call, KILN_ERR_INVALID_ARG, named)

static void test_quantizers(void **state)
{
    (void)state;
    /* per token: x [64, 512], scales [K/128, M] MN-major */
    const kiln_quant_fp8_args tok = {t2(KILN_DTYPE_BF16, 64, 512), t2(KILN_DTYPE_E4M3, 64, 512),
                                     t2(KILN_DTYPE_F32, 4, 64)};
    NO_DEVICE(kiln_quant_fp8_per_token(ctx, &tok, NULL));
    kiln_quant_fp8_args bad = tok;
    bad.x.data = NULL;
    REFUSED(kiln_quant_fp8_per_token(ctx, &bad, NULL), "x.data is NULL");
    bad = tok;
    bad.x.shape[1] = bad.q.shape[1] = 144;
    REFUSED(kiln_quant_fp8_per_token(ctx, &bad, NULL), "K = 144");
    bad = tok;
    bad.scales.shape[1] = 63;
    REFUSED(kiln_quant_fp8_per_token(ctx, &bad, NULL), "scales must be");
    bad = tok;
    bad.x.shape[0] = bad.q.shape[0] = 1LL << 31;
    REFUSED(kiln_quant_fp8_per_token(ctx, &bad, NULL), "M = 2147483648 is out of range");
    bad = tok;
    bad.x.strides[0] = INT64_MAX;
    bad.x.strides[1] = 1;
    REFUSED(kiln_quant_fp8_per_token(ctx, &bad, NULL), "too large (> 2^40)");

    /* per block: x [256, 512], scales [ceil(N/128), K/128] */
    const kiln_quant_fp8_args blk = {t2(KILN_DTYPE_BF16, 256, 512), t2(KILN_DTYPE_E4M3, 256, 512),
                                     t2(KILN_DTYPE_F32, 2, 4)};
    NO_DEVICE(kiln_quant_fp8_per_block(ctx, &blk, NULL));
    bad = blk;
    bad.scales.shape[0] = 3;
    REFUSED(kiln_quant_fp8_per_block(ctx, &bad, NULL), "scales must be");
    bad = blk;
    bad.q.dtype = KILN_DTYPE_BF16;
    REFUSED(kiln_quant_fp8_per_block(ctx, &bad, NULL), "q has dtype bf16");

    const kiln_sf_transpose_args tr = {t2(KILN_DTYPE_F32, 64, 4), t2(KILN_DTYPE_F32, 4, 64)};
    NO_DEVICE(kiln_sf_transpose(ctx, &tr, NULL));
    kiln_sf_transpose_args bad_tr = tr;
    bad_tr.out.shape[1] = 60;
    REFUSED(kiln_sf_transpose(ctx, &bad_tr, NULL), "out must be");
    bad_tr = tr;
    bad_tr.in.shape[0] = 1LL << 35;
    REFUSED(kiln_sf_transpose(ctx, &bad_tr, NULL), "M must be at most");
}

static void test_gemm_fp8(void **state)
{
    (void)state;
    /* M = 64, N = 256, K = 512 */
    const kiln_gemm_fp8_args good = {
        .a = t2(KILN_DTYPE_E4M3, 64, 512),
        .sfa = t2(KILN_DTYPE_F32, 4, 64),
        .b = t2(KILN_DTYPE_E4M3, 256, 512),
        .sfb = t2(KILN_DTYPE_F32, 2, 4),
        .d = t2(KILN_DTYPE_BF16, 64, 256),
    };
    NO_DEVICE(kiln_gemm_fp8(ctx, &good, NULL));
    kiln_gemm_fp8_args bad = good;
    bad.a.shape[1] = bad.b.shape[1] = 272;
    REFUSED(kiln_gemm_fp8(ctx, &bad, NULL), "K = 272");
    bad = good;
    bad.b.shape[0] = 260;
    REFUSED(kiln_gemm_fp8(ctx, &bad, NULL), "N = 260");
    bad = good;
    bad.d.shape[1] = 128;
    REFUSED(kiln_gemm_fp8(ctx, &bad, NULL), "d is [64, 128]");
    bad = good;
    bad.sfa.shape[1] = 60;
    REFUSED(kiln_gemm_fp8(ctx, &bad, NULL), "sfa must be");
    bad = good;
    bad.sfb.shape[0] = 1;
    REFUSED(kiln_gemm_fp8(ctx, &bad, NULL), "sfb must be");
    bad = good;
    bad.c = good.d;
    REFUSED(kiln_gemm_fp8(ctx, &bad, NULL), "c is only read in the FP32-output mode");
    bad = good;
    bad.workspace = fake;
    bad.workspace_bytes = 16;
    REFUSED(kiln_gemm_fp8(ctx, &bad, NULL), "workspace must be");
    bad = good;
    bad.a.data = fake + 8;
    REFUSED(kiln_gemm_fp8(ctx, &bad, NULL), "not 16-byte aligned");
    bad = good;
    bad.a.shape[0] = bad.sfa.shape[1] = bad.d.shape[0] = 1LL << 31;
    REFUSED(kiln_gemm_fp8(ctx, &bad, NULL), "M = 2147483648 is out of range");
    bad = good;
    bad.a.shape[1] = bad.b.shape[1] = 1LL << 40;
    REFUSED(kiln_gemm_fp8(ctx, &bad, NULL), "(at most 2^20)");

    /* the FP32-output mode: 1x128 scales on B, C read */
    kiln_gemm_fp8_args f32 = good;
    f32.d = f32.c = t2(KILN_DTYPE_F32, 64, 256);
    f32.sfb = t2(KILN_DTYPE_F32, 4, 256);
    NO_DEVICE(kiln_gemm_fp8(ctx, &f32, NULL));
    bad = f32;
    bad.sfb = good.sfb;
    REFUSED(kiln_gemm_fp8(ctx, &bad, NULL), "in the FP32 mode sfb must be");
    bad = f32;
    bad.c.shape[0] = 32;
    REFUSED(kiln_gemm_fp8(ctx, &bad, NULL), "c must be F32 [M = 64, N = 256]");
}

static void test_gemm_fp8_masked(void **state)
{
    (void)state;
    /* G = 4 groups of up to 64 rows, N = 256, K = 512 */
    const kiln_gemm_fp8_masked_args good = {
        .a = t3(KILN_DTYPE_E4M3, 4, 64, 512),
        .sfa = t3(KILN_DTYPE_F32, 4, 4, 64),
        .b = t3(KILN_DTYPE_E4M3, 4, 256, 512),
        .sfb = t3(KILN_DTYPE_F32, 4, 2, 4),
        .d = t3(KILN_DTYPE_BF16, 4, 64, 256),
        .masked_m = t1(KILN_DTYPE_I32, 4),
        .expected_m = 16,
    };
    NO_DEVICE(kiln_gemm_fp8_masked(ctx, &good, NULL));
    kiln_gemm_fp8_masked_args bad = good;
    bad.masked_m.shape[0] = 3;
    REFUSED(kiln_gemm_fp8_masked(ctx, &bad, NULL), "masked_m must be I32 [G = 4]");
    bad = good;
    bad.expected_m = -1;
    REFUSED(kiln_gemm_fp8_masked(ctx, &bad, NULL), "expected_m = -1 is negative");
    bad = good;
    bad.d.shape[2] = 128;
    REFUSED(kiln_gemm_fp8_masked(ctx, &bad, NULL), "d must be a contiguous [4, 64, 256]");
    bad = good;
    bad.a.shape[0] = 70000;
    REFUSED(kiln_gemm_fp8_masked(ctx, &bad, NULL), "G = 70000");
    bad = good;
    bad.a.shape[1] = (1 << 24) + 1;
    REFUSED(kiln_gemm_fp8_masked(ctx, &bad, NULL), "M_max = 16777217");
}

static void test_gemm_fp8_contig(void **state)
{
    (void)state;
    /* 256 rows in G = 2 groups aligned to 128, N = 256, K = 512, prefix sums */
    const kiln_gemm_fp8_contig_args good = {
        .a = t2(KILN_DTYPE_E4M3, 256, 512),
        .sfa = t2(KILN_DTYPE_F32, 4, 256),
        .b = t3(KILN_DTYPE_E4M3, 2, 256, 512),
        .sfb = t3(KILN_DTYPE_F32, 2, 2, 4),
        .d = t2(KILN_DTYPE_BF16, 256, 256),
        .group_end = t1(KILN_DTYPE_I32, 2),
        .m_alignment = 128,
    };
    NO_DEVICE(kiln_gemm_fp8_contig(ctx, &good, NULL));
    kiln_gemm_fp8_contig_args by_row = good;
    by_row.group_end = (kiln_tensor){0};
    by_row.row_expert = t1(KILN_DTYPE_I32, 256);
    NO_DEVICE(kiln_gemm_fp8_contig(ctx, &by_row, NULL));
    kiln_gemm_fp8_contig_args bad = good;
    bad.row_expert = by_row.row_expert;
    REFUSED(kiln_gemm_fp8_contig(ctx, &bad, NULL), "set exactly one of group_end and row_expert");
    bad = by_row;
    bad.row_expert.shape[0] = 255;
    REFUSED(kiln_gemm_fp8_contig(ctx, &bad, NULL), "row_expert must be I32 [M_total = 256]");
    bad = good;
    bad.m_alignment = 100;
    REFUSED(kiln_gemm_fp8_contig(ctx, &bad, NULL), "m_alignment = 100");
    bad = good;
    bad.sfb.shape[1] = 1;
    REFUSED(kiln_gemm_fp8_contig(ctx, &bad, NULL), "sfb a contiguous F32 [G, ceil(N/128), K/128]");
    bad = good;
    bad.a.shape[0] = bad.sfa.shape[1] = bad.d.shape[0] = 1LL << 31;
    REFUSED(kiln_gemm_fp8_contig(ctx, &bad, NULL), "M_total = 2147483648");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantizers),
        cmocka_unit_test(test_gemm_fp8),
        cmocka_unit_test(test_gemm_fp8_masked),
        cmocka_unit_test(test_gemm_fp8_contig),
    };
    return cmocka_run_group_tests(tests, make_ctx, destroy_ctx);
}
