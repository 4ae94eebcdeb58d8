/* gpu suite: kernels launched back to back under programmatic dependent launch (PDL), each
 * reading what the one before it wrote: an FP8 GEMM, then two BF16 GEMMs chained on its
 * output, with no synchronization between them. A dependent kernel starts early and waits
 * (griddepcontrol.wait) for the whole previous grid, its last TMA stores included. Every
 * buffer is poisoned with NaN first, so input read too early shows as NaN or as a mismatch
 * with the FP64 reference computed from what the previous kernel left in memory; the chain
 * runs several times, bitwise equal each time. Then the same with b_ready on every GEMM, and
 * FP8 GEMMs with b_ready around a quantizer: B loaded early, A only once the kernel before
 * has finished. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#include <cmocka.h>

#include "../src/runtime/internal.h"
#include "gemm_bf16_data.h"
#include "gemm_fp8_data.h"

static kiln_ctx *ctx;
static uint64_t seed;

enum { CHAIN_RUNS = 8 };

/* d (BF16 [m][n]) against ref: every element finite and within `rel` of |ref| plus a
 * share of the RMS; the diff of REFERENCE.md below max_diff. */
static void check_bf16(const char *what, const uint16_t *d, const double *ref, int64_t m,
                       int64_t n, double rel, double of_rms, double max_diff)
{
    double sref2 = 0, sxy = 0, sxx_yy = 0;
    for (int64_t i = 0; i < m * n; i++)
        sref2 += ref[i] * ref[i];
    double rms = sqrt(sref2 / (double)(m * n));
    for (int64_t i = 0; i < m * n; i++) {
        double x = bf16_to_float(d[i]), y = ref[i];
        if (!isfinite(x) || fabs(x - y) > rel * fabs(y) + of_rms * rms)
            fail_msg("%s: [%lld][%lld] = %g, reference %g", what, (long long)(i / n),
                     (long long)(i % n), x, y);
        sxy += x * y;
        sxx_yy += x * x + y * y;
    }
    double diff = 1.0 - 2.0 * sxy / sxx_yy;
    if (!(diff < max_diff))
        fail_msg("%s: diff %.3e", what, diff);
    print_message("  %-28s diff %.2e\n", what, diff);
}

/* FP64 reference of x . w^T for x BF16 [m][k] as left in device memory; rows: 0..m-1. */
static double *bf16_chain_reference(const uint16_t *x, const float *w, const int64_t *rows,
                                    int64_t m, int64_t n, int64_t k)
{
    float *xf = malloc((size_t)(m * k) * 4);
    for (int64_t i = 0; i < m * k; i++)
        xf[i] = bf16_to_float(x[i]);
    double *ref = malloc((size_t)(m * n) * sizeof(double));
    bf16_reference(xf, k, w, n, k, rows, m, ref);
    free(xf);
    return ref;
}

/* h1 = A . B^T (FP8, K = k1, N = n1), h2 = h1 . w2^T (BF16, [n2][n1]), y = h2 . w3^T
 * ([n3][n2]), on the context's stream with nothing in between; with b_ready, every GEMM
 * loads its weights early (and must still read its A only after the kernel before). */
static void check_chain(int64_t m, int64_t k1, int64_t n1, int64_t n2, int64_t n3, int b_ready)
{
    char what[96];
    fp8_problem p;
    fp8_problem_make(&p, m, n1, k1, &seed);
    float *sfa = fp8_problem_sfa(&p, m), *w2f, *w3f;
    size_t sfa_bytes = (size_t)(k1 / 128 * kiln_sf_mn_stride(m)) * 4;
    void *dsfa = gpu_alloc(sfa_bytes);
    gpu_upload(dsfa, sfa, sfa_bytes);
    uint16_t *w2 = bf16_random(n2 * n1, &seed, false, &w2f);
    uint16_t *w3 = bf16_random(n3 * n2, &seed, false, &w3f);
    void *dw2 = bf16_upload(w2, n2, n1, false, n1), *dw3 = bf16_upload(w3, n3, n2, false, n2);
    const int64_t cols[3] = {n1, n2, n3};
    void *dout[3];
    uint16_t *out[CHAIN_RUNS][3];
    for (int s = 0; s < 3; s++)
        dout[s] = gpu_alloc((size_t)(m * cols[s]) * 2);
    int64_t kb = k1 / 128;
    kiln_gemm_fp8_args first = {
        .a = tensor2d(p.da, KILN_DTYPE_E4M3, m, k1, k1),
        .sfa = tensor2d(dsfa, KILN_DTYPE_F32, kb, m, kiln_sf_mn_stride(m)),
        .b = tensor2d(p.db, KILN_DTYPE_E4M3, n1, k1, k1),
        .sfb = tensor2d(p.dsfb, KILN_DTYPE_F32, (n1 + 127) / 128, kb, kb),
        .d = tensor2d(dout[0], KILN_DTYPE_BF16, m, n1, n1),
        .b_ready = b_ready,
    };
    kiln_gemm_bf16_args second = {
        .a = tensor2d(dout[0], KILN_DTYPE_BF16, m, n1, n1),
        .b = tensor2d(dw2, KILN_DTYPE_BF16, n2, n1, n1),
        .d = tensor2d(dout[1], KILN_DTYPE_BF16, m, n2, n2),
        .layout = KILN_GEMM_NT,
        .b_ready = b_ready,
    };
    kiln_gemm_bf16_args third = {
        .a = tensor2d(dout[1], KILN_DTYPE_BF16, m, n2, n2),
        .b = tensor2d(dw3, KILN_DTYPE_BF16, n3, n2, n2),
        .d = tensor2d(dout[2], KILN_DTYPE_BF16, m, n3, n3),
        .layout = KILN_GEMM_NT,
        .b_ready = b_ready,
    };
    snprintf(what, sizeof what, "%s%lld rows: %lld -> %lld -> %lld -> %lld",
             b_ready ? "b_ready, " : "", (long long)m, (long long)k1, (long long)n1,
             (long long)n2, (long long)n3);
    for (int run = 0; run < CHAIN_RUNS; run++) {
        for (int s = 0; s < 3; s++)
            gpu_poison(dout[s], (size_t)(m * cols[s]) * 2, 0xffffffffu);
        if (kiln_gemm_fp8(ctx, &first, NULL) != KILN_OK ||
            kiln_gemm_bf16(ctx, &second, NULL) != KILN_OK ||
            kiln_gemm_bf16(ctx, &third, NULL) != KILN_OK)
            fail_msg("%s: %s", what, kiln_ctx_errmsg(ctx));
        gpu_sync();
        for (int s = 0; s < 3; s++) {
            size_t bytes = (size_t)(m * cols[s]) * 2;
            out[run][s] = malloc(bytes);
            gpu_download(out[run][s], dout[s], bytes);
            if (run > 0 && memcmp(out[run][s], out[0][s], bytes) != 0)
                fail_msg("%s: stage %d of run %d differs from run 0", what, s + 1, run);
        }
    }
    int64_t *rows = malloc((size_t)m * sizeof(int64_t));
    for (int64_t r = 0; r < m; r++)
        rows[r] = r;
    double *ref1 = malloc((size_t)(m * n1) * sizeof(double));
    fp8_reference(&p, rows, m, ref1);
    /* The FP8 GEMM's loose elementwise bound and diff (test_gemm_fp8_gpu); the BF16 GEMMs'
     * bounds of test_gemm_bf16_gpu, against their input as stored. */
    check_bf16("fp8 gemm", out[0][0], ref1, m, n1, 1.0 / 16, 1e-2, 1e-3);
    double *ref2 = bf16_chain_reference(out[0][0], w2f, rows, m, n2, n1);
    check_bf16("bf16 gemm on its output", out[0][1], ref2, m, n2, 1.0 / 128, 1e-4, 1e-5);
    double *ref3 = bf16_chain_reference(out[0][1], w3f, rows, m, n3, n2);
    check_bf16("bf16 gemm on that", out[0][2], ref3, m, n3, 1.0 / 128, 1e-4, 1e-5);
    print_message("  %s: %d runs bitwise equal\n", what, CHAIN_RUNS);
    for (int run = 0; run < CHAIN_RUNS; run++)
        for (int s = 0; s < 3; s++)
            free(out[run][s]);
    for (int s = 0; s < 3; s++)
        gpu_free(dout[s]);
    gpu_free(dsfa);
    gpu_free(dw2);
    gpu_free(dw3);
    free(ref1);
    free(ref2);
    free(ref3);
    free(rows);
    free(sfa);
    free(w2);
    free(w3);
    free(w2f);
    free(w3f);
    fp8_problem_free(&p);
}

/* h1 = A . B^T, then q, sq = per-token FP8 quantization of h1, then y = q . B2^T, all FP8
 * GEMMs with b_ready: each loads its B before the kernel it follows has finished, but must
 * read its A only after that (the second GEMM's A is the quantizer's output, poisoned with
 * NaN before every run). masked: the second GEMM is a masked one of one group whose
 * masked_m leaves out its last rows (when over 64), so that its B loaded on a guess of a
 * full group is wrong for some CTAs; the rows past masked_m must stay poisoned. */
static void check_b_ready_chain(int64_t m, int64_t k1, int64_t n1, int64_t n2, bool masked)
{
    char what[96];
    fp8_problem p, p2;
    fp8_problem_make(&p, m, n1, k1, &seed);
    fp8_problem_make(&p2, m, n2, n1, &seed); /* its B; its A is replaced by the quantizer's */
    float *sfa = fp8_problem_sfa(&p, m);
    int64_t kb1 = k1 / 128, kb2 = n1 / 128, stride = kiln_sf_mn_stride(m);
    void *dsfa = gpu_alloc((size_t)(kb1 * stride) * 4);
    gpu_upload(dsfa, sfa, (size_t)(kb1 * stride) * 4);
    void *dh1 = gpu_alloc((size_t)(m * n1) * 2), *dq = gpu_alloc((size_t)(m * n1));
    void *dsq = gpu_alloc((size_t)(kb2 * stride) * 4), *dy = gpu_alloc((size_t)(m * n2) * 2);
    kiln_gemm_fp8_args first = {
        .a = tensor2d(p.da, KILN_DTYPE_E4M3, m, k1, k1),
        .sfa = tensor2d(dsfa, KILN_DTYPE_F32, kb1, m, stride),
        .b = tensor2d(p.db, KILN_DTYPE_E4M3, n1, k1, k1),
        .sfb = tensor2d(p.dsfb, KILN_DTYPE_F32, (n1 + 127) / 128, kb1, kb1),
        .d = tensor2d(dh1, KILN_DTYPE_BF16, m, n1, n1),
        .b_ready = 1,
    };
    kiln_quant_fp8_args quant = {
        .x = tensor2d(dh1, KILN_DTYPE_BF16, m, n1, n1),
        .q = tensor2d(dq, KILN_DTYPE_E4M3, m, n1, n1),
        .scales = tensor2d(dsq, KILN_DTYPE_F32, kb2, m, stride),
    };
    kiln_gemm_fp8_args second = {
        .a = tensor2d(dq, KILN_DTYPE_E4M3, m, n1, n1),
        .sfa = tensor2d(dsq, KILN_DTYPE_F32, kb2, m, stride),
        .b = tensor2d(p2.db, KILN_DTYPE_E4M3, n2, n1, n1),
        .sfb = tensor2d(p2.dsfb, KILN_DTYPE_F32, (n2 + 127) / 128, kb2, kb2),
        .d = tensor2d(dy, KILN_DTYPE_BF16, m, n2, n2),
        .b_ready = 1,
    };
    /* The masked form of `second`: one group of M_max = m rows, masked_rows of them valid. */
    const int64_t masked_rows = masked && m > 64 ? m - 37 : m;
    const int32_t masked_count = (int32_t)masked_rows;
    void *dmask = gpu_alloc(4);
    gpu_upload(dmask, &masked_count, 4);
    kiln_gemm_fp8_masked_args second_masked = {
        .a = tensor3d(dq, KILN_DTYPE_E4M3, 1, m, n1),
        .sfa = tensor3d(dsq, KILN_DTYPE_F32, 1, kb2, m),
        .b = tensor3d(p2.db, KILN_DTYPE_E4M3, 1, n2, n1),
        .sfb = tensor3d(p2.dsfb, KILN_DTYPE_F32, 1, (n2 + 127) / 128, kb2),
        .d = tensor3d(dy, KILN_DTYPE_BF16, 1, m, n2),
        .masked_m = {.data = dmask, .dtype = KILN_DTYPE_I32, .ndim = 1, .shape = {1}},
        .expected_m = m,
        .b_ready = 1,
    };
    second_masked.sfa.strides[0] = kb2 * stride;
    second_masked.sfa.strides[1] = stride;
    second_masked.sfa.strides[2] = 1;
    snprintf(what, sizeof what, "b_ready, %lld rows: %lld -> %lld -> %lld%s", (long long)m,
             (long long)k1, (long long)n1, (long long)n2, masked ? " (masked)" : "");
    size_t h1_bytes = (size_t)(m * n1) * 2, y_bytes = (size_t)(m * n2) * 2;
    uint16_t *h1 = malloc(h1_bytes), *y0 = malloc(y_bytes), *y = malloc(y_bytes);
    for (int run = 0; run < CHAIN_RUNS; run++) {
        gpu_poison(dh1, h1_bytes, 0xffffffffu);
        gpu_poison(dq, (size_t)(m * n1), 0xffffffffu);
        gpu_poison(dsq, (size_t)(kb2 * stride) * 4, 0xffffffffu);
        gpu_poison(dy, y_bytes, 0xffffffffu);
        if (kiln_gemm_fp8(ctx, &first, NULL) != KILN_OK ||
            kiln_quant_fp8_per_token(ctx, &quant, NULL) != KILN_OK ||
            (masked ? kiln_gemm_fp8_masked(ctx, &second_masked, NULL)
                    : kiln_gemm_fp8(ctx, &second, NULL)) != KILN_OK)
            fail_msg("%s: %s", what, kiln_ctx_errmsg(ctx));
        gpu_sync();
        gpu_download(run == 0 ? y0 : y, dy, y_bytes);
        if (run > 0 && memcmp(y, y0, y_bytes) != 0)
            fail_msg("%s: run %d differs from run 0", what, run);
    }
    /* The second GEMM's reference from the quantizer's output as left in memory. */
    gpu_download(h1, dh1, h1_bytes);
    gpu_download(p2.a, dq, (size_t)(m * n1));
    float *sq = malloc((size_t)(kb2 * stride) * 4);
    gpu_download(sq, dsq, (size_t)(kb2 * stride) * 4);
    for (int64_t r = 0; r < m; r++)
        for (int64_t b = 0; b < kb2; b++)
            p2.sa[r * kb2 + b] = sq[b * stride + r];
    int64_t *rows = malloc((size_t)m * sizeof(int64_t));
    for (int64_t r = 0; r < m; r++)
        rows[r] = r;
    double *ref1 = malloc((size_t)(m * n1) * sizeof(double));
    double *ref2 = malloc((size_t)(m * n2) * sizeof(double));
    fp8_reference(&p, rows, m, ref1);
    fp8_reference(&p2, rows, m, ref2);
    check_bf16("first fp8 gemm", h1, ref1, m, n1, 1.0 / 16, 1e-2, 1e-3);
    check_bf16("fp8 gemm on its quantized output", y0, ref2, masked_rows, n2, 1.0 / 16, 1e-2,
               1e-3);
    for (int64_t i = masked_rows * n2; i < m * n2; i++)
        if (y0[i] != 0xffffu)
            fail_msg("%s: row %lld past masked_m written", what, (long long)(i / n2));
    print_message("  %s: %d runs bitwise equal\n", what, CHAIN_RUNS);
    gpu_free(dmask);
    gpu_free(dsfa);
    gpu_free(dh1);
    gpu_free(dq);
    gpu_free(dsq);
    gpu_free(dy);
    free(h1);
    free(y0);
    free(y);
    free(sq);
    free(sfa);
    free(rows);
    free(ref1);
    free(ref2);
    fp8_problem_free(&p);
    fp8_problem_free(&p2);
}

/* Decode-sized (one tile row, short kernels that the next one's prologue overlaps) and
 * prefill-sized chains, with partial tiles in M and N. */
static void test_pdl_chain(void **state)
{
    (void)state;
    check_chain(8, 1024, 2048, 1024, 512, 0);
    check_chain(200, 512, 1536, 2048, 272, 0);
    check_chain(1000, 2048, 1024, 768, 1040, 0);
}

/* b_ready at decode and prefill sizes (128-, 192- or 256-row tiles, partial tiles in M
 * and N): FP8 GEMMs around a quantizer (the second one dense, then masked), and the FP8 ->
 * BF16 -> BF16 chains. */
static void test_pdl_b_ready(void **state)
{
    (void)state;
    check_chain(8, 1024, 2048, 1024, 512, 1);
    check_chain(200, 512, 1536, 2048, 272, 1);
    check_chain(1000, 2048, 1024, 768, 1040, 1);
    for (int masked = 0; masked <= 1; masked++) {
        check_b_ready_chain(8, 1024, 2048, 1536, masked);
        check_b_ready_chain(130, 2048, 1024, 2112, masked);
        check_b_ready_chain(2000, 1024, 2048, 7168, masked);
    }
}

int main(void)
{
    ctx = gpu_ctx_or_skip();
    seed = rng_fresh_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pdl_chain),
        cmocka_unit_test(test_pdl_b_ready),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    kiln_ctx_destroy(ctx);
    return failed;
}
