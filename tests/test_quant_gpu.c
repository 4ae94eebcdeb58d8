/* gpu suite: the FP8 quantizers and the scale transpose against a CPU reference, bit for
 * bit, on fresh random data with poisoned outputs; bad arguments launch nothing; the
 * operators replay correctly from a CUDA graph. Skips (77) without a device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "gpu_util.h"

static kiln_ctx *ctx;
static uint64_t seed;

/* Rows of BF16 with magnitudes spread over six decades, a zero row now and then (the
 * amax floor), and negative values. */
static uint16_t *random_bf16(int64_t rows, int64_t ld, int64_t cols)
{
    uint16_t *x = malloc((size_t)(rows * ld) * 2);
    for (int64_t r = 0; r < rows; r++) {
        double magnitude = pow(10.0, rng_uniform(&seed) * 6.0 - 3.0);
        bool zero_row = rng_next(&seed) % 97 == 0;
        for (int64_t c = 0; c < ld; c++) {
            double v = c < cols && !zero_row ? rng_normal(&seed) * magnitude : 0.0;
            x[r * ld + c] = float_to_bf16((float)v);
        }
    }
    return x;
}

/* The reference quantizer of one group: returns the scale, writes q. */
static float quant_group_ref(const uint16_t *x, int64_t stride, int64_t rows, uint8_t *q,
                             int64_t q_stride)
{
    float amax = 0.0f;
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < 128; c++)
            amax = fmaxf(amax, fabsf(bf16_to_float(x[r * stride + c])));
    amax = fmaxf(amax, 1e-4f);
    float inv = 448.0f / amax;
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < 128; c++)
            q[r * q_stride + c] = float_to_e4m3(bf16_to_float(x[r * stride + c]) * inv);
    return amax / 448.0f;
}

static kiln_tensor tensor2(void *data, kiln_dtype dtype, int64_t d0, int64_t d1, int64_t stride0)
{
    kiln_tensor t = {.data = data, .dtype = dtype, .ndim = 2, .shape = {d0, d1}};
    t.strides[0] = stride0;
    t.strides[1] = 1;
    return t;
}

static void check_per_token(int64_t m, int64_t k, int64_t ld)
{
    uint16_t *x = random_bf16(m, ld, k);
    int64_t kb = k / 128, sf_stride = kiln_sf_mn_stride(m);
    size_t sf_bytes = (size_t)(kb * sf_stride) * 4 + 16;
    void *dx = gpu_alloc((size_t)(m * ld) * 2), *dq = gpu_alloc((size_t)(m * k) + 16);
    void *dsf = gpu_alloc(sf_bytes);
    gpu_upload(dx, x, (size_t)(m * ld) * 2);
    uint8_t *q = malloc((size_t)(m * k)), *q_ref = malloc((size_t)(m * k));
    float *sf = malloc(sf_bytes), *sf_ref = malloc(sf_bytes);
    for (int64_t r = 0; r < m; r++)
        for (int64_t b = 0; b < kb; b++)
            sf_ref[b * sf_stride + r] = quant_group_ref(x + r * ld + b * 128, 1, 1,
                                                        q_ref + r * k + b * 128, 128);
    uint8_t *first_q = malloc((size_t)(m * k));
    for (int run = 0; run < 2; run++) {
        gpu_poison(dq, (size_t)(m * k) + 16, 0xffffffffu);
        gpu_poison(dsf, sf_bytes, 0x7fc00000u);
        kiln_quant_fp8_args args = {
            .x = tensor2(dx, KILN_DTYPE_BF16, m, k, ld),
            .q = tensor2(dq, KILN_DTYPE_E4M3, m, k, k),
            .scales = tensor2(dsf, KILN_DTYPE_F32, kb, m, sf_stride),
        };
        kiln_status status = kiln_quant_fp8_per_token(ctx, &args, NULL);
        if (status != KILN_OK)
            fail_msg("per_token %lldx%lld: %s", (long long)m, (long long)k, kiln_ctx_errmsg(ctx));
        gpu_sync();
        gpu_download(q, dq, (size_t)(m * k));
        gpu_download(sf, dsf, sf_bytes);
        for (int64_t i = 0; i < m * k; i++)
            if (q[i] != q_ref[i])
                fail_msg("per_token %lldx%lld: q[%lld][%lld] = 0x%02x, expected 0x%02x",
                         (long long)m, (long long)k, (long long)(i / k), (long long)(i % k), q[i],
                         q_ref[i]);
        for (int64_t b = 0; b < kb; b++)
            for (int64_t r = 0; r < sf_stride; r++) {
                float got = sf[b * sf_stride + r];
                if (r < m && memcmp(&got, &sf_ref[b * sf_stride + r], 4) != 0)
                    fail_msg("per_token scale[%lld][%lld] = %g, expected %g", (long long)b,
                             (long long)r, got, sf_ref[b * sf_stride + r]);
                if (r >= m && !isnan(got)) /* padding rows are not the kernel's to write */
                    fail_msg("per_token wrote scale padding [%lld][%lld]", (long long)b,
                             (long long)r);
            }
        if (run == 0)
            memcpy(first_q, q, (size_t)(m * k));
        else
            assert_memory_equal(first_q, q, (size_t)(m * k));
    }
    gpu_free(dx);
    gpu_free(dq);
    gpu_free(dsf);
    free(x);
    free(q);
    free(q_ref);
    free(sf);
    free(sf_ref);
    free(first_q);
}

static void test_per_token(void **state)
{
    (void)state;
    static const int64_t shapes[][3] = {
        {1, 128, 128}, {7, 7168, 7168}, {129, 2048, 2048}, {1000, 512, 640}, {64, 16384, 16384},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_per_token(shapes[i][0], shapes[i][1], shapes[i][2]);
}

static void check_per_block(int64_t n, int64_t k, int64_t ld)
{
    uint16_t *x = random_bf16(n, ld, k);
    int64_t nb = (n + 127) / 128, kb = k / 128;
    void *dx = gpu_alloc((size_t)(n * ld) * 2), *dq = gpu_alloc((size_t)(n * k));
    void *dsf = gpu_alloc((size_t)(nb * kb) * 4);
    gpu_upload(dx, x, (size_t)(n * ld) * 2);
    gpu_poison(dq, (size_t)(n * k), 0xffffffffu);
    gpu_poison(dsf, (size_t)(nb * kb) * 4, 0x7fc00000u);
    uint8_t *q = malloc((size_t)(n * k)), *q_ref = malloc((size_t)(n * k));
    float *sf = malloc((size_t)(nb * kb) * 4), *sf_ref = malloc((size_t)(nb * kb) * 4);
    for (int64_t bn = 0; bn < nb; bn++)
        for (int64_t bk = 0; bk < kb; bk++) {
            int64_t rows = n - bn * 128 < 128 ? n - bn * 128 : 128;
            sf_ref[bn * kb + bk] = quant_group_ref(x + bn * 128 * ld + bk * 128, ld, rows,
                                                   q_ref + bn * 128 * k + bk * 128, k);
        }
    kiln_quant_fp8_args args = {
        .x = tensor2(dx, KILN_DTYPE_BF16, n, k, ld),
        .q = tensor2(dq, KILN_DTYPE_E4M3, n, k, k),
        .scales = tensor2(dsf, KILN_DTYPE_F32, nb, kb, kb),
    };
    if (kiln_quant_fp8_per_block(ctx, &args, NULL) != KILN_OK)
        fail_msg("per_block: %s", kiln_ctx_errmsg(ctx));
    gpu_sync();
    gpu_download(q, dq, (size_t)(n * k));
    gpu_download(sf, dsf, (size_t)(nb * kb) * 4);
    for (int64_t i = 0; i < n * k; i++)
        if (q[i] != q_ref[i])
            fail_msg("per_block %lldx%lld: q[%lld][%lld] = 0x%02x, expected 0x%02x", (long long)n,
                     (long long)k, (long long)(i / k), (long long)(i % k), q[i], q_ref[i]);
    assert_memory_equal(sf, sf_ref, (size_t)(nb * kb) * 4);
    gpu_free(dx);
    gpu_free(dq);
    gpu_free(dsf);
    free(x);
    free(q);
    free(q_ref);
    free(sf);
    free(sf_ref);
}

static void test_per_block(void **state)
{
    (void)state;
    static const int64_t shapes[][3] = {
        {576, 7168, 7168}, {200, 1536, 1536}, {4096, 512, 512}, {130, 256, 384},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_per_block(shapes[i][0], shapes[i][1], shapes[i][2]);
}

static void test_sf_transpose(void **state)
{
    (void)state;
    static const int64_t shapes[][3] = {{1, 1, 1}, {7, 56, 60}, {1000, 16, 16}, {4097, 128, 130}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t m = shapes[s][0], kb = shapes[s][1], ld = shapes[s][2];
        int64_t out_stride = kiln_sf_mn_stride(m);
        float *in = malloc((size_t)(m * ld) * 4), *out = malloc((size_t)(kb * out_stride) * 4);
        for (int64_t i = 0; i < m * ld; i++)
            in[i] = (float)(rng_normal(&seed) * 1e-3);
        void *din = gpu_alloc((size_t)(m * ld) * 4), *dout = gpu_alloc((size_t)(kb * out_stride) * 4);
        gpu_upload(din, in, (size_t)(m * ld) * 4);
        gpu_poison(dout, (size_t)(kb * out_stride) * 4, 0x7fc00000u);
        kiln_sf_transpose_args args = {
            .in = tensor2(din, KILN_DTYPE_F32, m, kb, ld),
            .out = tensor2(dout, KILN_DTYPE_F32, kb, m, out_stride),
        };
        if (kiln_sf_transpose(ctx, &args, NULL) != KILN_OK)
            fail_msg("sf_transpose: %s", kiln_ctx_errmsg(ctx));
        gpu_sync();
        gpu_download(out, dout, (size_t)(kb * out_stride) * 4);
        for (int64_t b = 0; b < kb; b++)
            for (int64_t r = 0; r < m; r++)
                if (memcmp(&out[b * out_stride + r], &in[r * ld + b], 4) != 0)
                    fail_msg("sf_transpose %lldx%lld: out[%lld][%lld] wrong", (long long)m,
                             (long long)kb, (long long)b, (long long)r);
        gpu_free(din);
        gpu_free(dout);
        free(in);
        free(out);
    }
}

/* Bad arguments return an error naming the problem and launch nothing. */
static void test_bad_arguments_launch_nothing(void **state)
{
    (void)state;
    int64_t m = 64, k = 1024;
    void *dx = gpu_alloc((size_t)(m * k) * 2 + 64), *dq = gpu_alloc((size_t)(m * k) + 64);
    void *dsf = gpu_alloc(4096);
    gpu_poison(dq, (size_t)(m * k) + 64, 0xffffffffu);
    kiln_quant_fp8_args good = {
        .x = tensor2(dx, KILN_DTYPE_BF16, m, k, k),
        .q = tensor2(dq, KILN_DTYPE_E4M3, m, k, k),
        .scales = tensor2(dsf, KILN_DTYPE_F32, k / 128, m, kiln_sf_mn_stride(m)),
    };
    struct {
        kiln_quant_fp8_args args;
        const char *named;
    } cases[6];
    for (int i = 0; i < 6; i++)
        cases[i].args = good;
    cases[0].args.x.shape[1] = cases[0].args.q.shape[1] = 1000; /* K not a multiple of 128 */
    cases[0].named = "K = 1000";
    cases[1].args.x.data = (char *)dx + 2;
    cases[1].named = "not 16-byte aligned";
    cases[2].args.x.dtype = KILN_DTYPE_F16;
    cases[2].named = "dtype f16";
    cases[3].args.scales.shape[1] = m - 1;
    cases[3].named = "scales";
    cases[4].args.q.data = NULL;
    cases[4].named = "q.data is NULL";
    cases[5].args.x.strides[0] = k - 8;
    cases[5].named = "row stride";
    for (int i = 0; i < 6; i++) {
        kiln_status status = kiln_quant_fp8_per_token(ctx, &cases[i].args, NULL);
        assert_int_equal(status, KILN_ERR_INVALID_ARG);
        if (strstr(kiln_ctx_errmsg(ctx), cases[i].named) == NULL)
            fail_msg("case %d: \"%s\" does not say \"%s\"", i, kiln_ctx_errmsg(ctx),
                     cases[i].named);
        assert_int_equal(kiln_cache_prune(ctx, INT64_MAX, NULL), KILN_OK); /* forget it */
    }
    gpu_sync();
    uint8_t *q = malloc((size_t)(m * k));
    gpu_download(q, dq, (size_t)(m * k));
    for (int64_t i = 0; i < m * k; i++)
        assert_int_equal(q[i], 0xff);
    free(q);
    gpu_free(dx);
    gpu_free(dq);
    gpu_free(dsf);
}

/* Captured once into a CUDA graph (nothing on the launch path may sync or allocate),
 * replayed over new input contents: right every time. */
static void test_graph_capture(void **state)
{
    (void)state;
    const kiln__driver *drv = gpu_drv();
    int64_t m = 256, k = 2048, kb = k / 128, sf_stride = kiln_sf_mn_stride(m);
    void *dx = gpu_alloc((size_t)(m * k) * 2), *dq = gpu_alloc((size_t)(m * k));
    void *dsf = gpu_alloc((size_t)(kb * sf_stride) * 4);
    kiln_quant_fp8_args args = {
        .x = tensor2(dx, KILN_DTYPE_BF16, m, k, k),
        .q = tensor2(dq, KILN_DTYPE_E4M3, m, k, k),
        .scales = tensor2(dsf, KILN_DTYPE_F32, kb, m, sf_stride),
    };
    CUstream stream;
    CU_CHECK(drv->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    /* Warm the kernel table so the capture sees only the hot path. */
    assert_int_equal(kiln_quant_fp8_per_token(ctx, &args, (kiln_stream)stream), KILN_OK);
    CU_CHECK(drv->cuStreamSynchronize(stream));
    CUgraph graph;
    CUgraphExec exec;
    CU_CHECK(drv->cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_GLOBAL));
    assert_int_equal(kiln_quant_fp8_per_token(ctx, &args, (kiln_stream)stream), KILN_OK);
    CU_CHECK(drv->cuStreamEndCapture(stream, &graph));
    CU_CHECK(drv->cuGraphInstantiateWithFlags(&exec, graph, 0));
    uint8_t *q = malloc((size_t)(m * k)), *q_ref = malloc((size_t)(m * k));
    for (int replay = 0; replay < 3; replay++) {
        uint16_t *x = random_bf16(m, k, k);
        gpu_upload(dx, x, (size_t)(m * k) * 2);
        gpu_poison(dq, (size_t)(m * k), 0xffffffffu);
        CU_CHECK(drv->cuGraphLaunch(exec, stream));
        CU_CHECK(drv->cuStreamSynchronize(stream));
        gpu_download(q, dq, (size_t)(m * k));
        for (int64_t r = 0; r < m; r++)
            for (int64_t b = 0; b < kb; b++)
                quant_group_ref(x + r * k + b * 128, 1, 1, q_ref + r * k + b * 128, 128);
        assert_memory_equal(q, q_ref, (size_t)(m * k));
        free(x);
    }
    CU_CHECK(drv->cuGraphExecDestroy(exec));
    CU_CHECK(drv->cuGraphDestroy(graph));
    CU_CHECK(drv->cuStreamDestroy(stream));
    free(q);
    free(q_ref);
    gpu_free(dx);
    gpu_free(dq);
    gpu_free(dsf);
}

/* One context, many threads launching at once on their own streams, each on a K none of
 * the others uses (so several threads miss the kernel table together). */
typedef struct thread_job {
    int64_t k;
    uint64_t seed;
    CUcontext cu;
    int ok;
} thread_job;

static void *quant_thread(void *user)
{
    thread_job *job = user;
    const kiln__driver *drv = gpu_drv();
    CU_CHECK(drv->cuCtxSetCurrent(job->cu)); /* a new thread has no current context */
    int64_t m = 96, k = job->k, kb = k / 128, sf_stride = kiln_sf_mn_stride(m);
    uint64_t s = job->seed;
    uint16_t *x = malloc((size_t)(m * k) * 2);
    for (int64_t i = 0; i < m * k; i++)
        x[i] = float_to_bf16((float)rng_normal(&s));
    uint8_t *q = malloc((size_t)(m * k)), *q_ref = malloc((size_t)(m * k));
    for (int64_t r = 0; r < m; r++)
        for (int64_t b = 0; b < kb; b++)
            quant_group_ref(x + r * k + b * 128, 1, 1, q_ref + r * k + b * 128, 128);
    void *dx = gpu_alloc((size_t)(m * k) * 2), *dq = gpu_alloc((size_t)(m * k));
    void *dsf = gpu_alloc((size_t)(kb * sf_stride) * 4);
    gpu_upload(dx, x, (size_t)(m * k) * 2);
    CUstream stream;
    CU_CHECK(drv->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    kiln_quant_fp8_args args = {
        .x = tensor2(dx, KILN_DTYPE_BF16, m, k, k),
        .q = tensor2(dq, KILN_DTYPE_E4M3, m, k, k),
        .scales = tensor2(dsf, KILN_DTYPE_F32, kb, m, sf_stride),
    };
    job->ok = 1;
    for (int rep = 0; rep < 50 && job->ok; rep++)
        job->ok = kiln_quant_fp8_per_token(ctx, &args, (kiln_stream)stream) == KILN_OK;
    CU_CHECK(drv->cuStreamSynchronize(stream));
    gpu_download(q, dq, (size_t)(m * k));
    job->ok = job->ok && memcmp(q, q_ref, (size_t)(m * k)) == 0;
    CU_CHECK(drv->cuStreamDestroy(stream));
    gpu_free(dx);
    gpu_free(dq);
    gpu_free(dsf);
    free(x);
    free(q);
    free(q_ref);
    return NULL;
}

static void test_many_threads_one_context(void **state)
{
    (void)state;
    CUcontext primary = NULL;
    gpu_drv()->cuCtxGetCurrent(&primary);
    enum { THREADS = 8 };
    pthread_t threads[THREADS];
    thread_job jobs[THREADS];
    int64_t k0 = 128 * (64 + (int64_t)(rng_next(&seed) % 512));
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (thread_job){.k = k0 + 128 * (i % 4), .seed = rng_next(&seed), .cu = primary};
        assert_int_equal(pthread_create(&threads[i], NULL, quant_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        if (!jobs[i].ok)
            fail_msg("thread %d (K = %lld): %s", i, (long long)jobs[i].k, kiln_ctx_errmsg(ctx));
    }
}

int main(void)
{
    ctx = gpu_ctx_or_skip();
    seed = rng_fresh_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_token),
        cmocka_unit_test(test_per_block),
        cmocka_unit_test(test_sf_transpose),
        cmocka_unit_test(test_bad_arguments_launch_nothing),
        cmocka_unit_test(test_graph_capture),
        cmocka_unit_test(test_many_threads_one_context),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    kiln_ctx_destroy(ctx);
    return failed;
}
