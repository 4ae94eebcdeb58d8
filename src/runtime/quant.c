/* FP8 quantization operators: per-token (1x128) and per-block (128x128), and the FP32
 * scale transpose into the MN-major TMA-aligned layout. */
#include "internal.h"

int64_t kiln_sf_mn_stride(int64_t m)
{
    return m <= 0 ? 0 : (m + 3) / 4 * 4;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* K of a quantizer: a positive multiple of 128 (at most 2^24). */
static int check_quant_k(kiln_ctx *ctx, const char *op, int64_t k)
{
    if (k <= 0 || k % 128 != 0 || k > (1 << 24))
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: K = %lld must be a positive multiple of 128 (at most 2^24)", op,
                               (long long)k);
    return KILN_OK;
}

/* x [rows, K] BF16 and q [rows, K] E4M3; K a positive multiple of 128. */
static int check_quant_operands(kiln_ctx *ctx, const char *op, const kiln_quant_fp8_args *args)
{
    int status;
    if ((status = kiln__check_tensor(ctx, op, "x", &args->x, KILN_DTYPE_BF16, 2, 16)) ||
        (status = kiln__check_tensor(ctx, op, "q", &args->q, KILN_DTYPE_E4M3, 2, 16)) ||
        (status = kiln__check_tensor(ctx, op, "scales", &args->scales, KILN_DTYPE_F32, 2, 4)))
        return status;
    int64_t rows = args->x.shape[0], k = args->x.shape[1];
    if ((status = check_quant_k(ctx, op, k)) != KILN_OK ||
        (status = kiln__check_rows(ctx, op, rows, 0)) != KILN_OK)
        return status;
    if (args->q.shape[0] != rows || args->q.shape[1] != k || kiln__row_stride(&args->q) != k)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: q must be a contiguous [%lld, %lld] tensor", op,
                               (long long)rows, (long long)k);
    return KILN_OK;
}

/* Specialize the one-parameter template id, then launch it. */
static kiln_status launch_spec(kiln_ctx *ctx, enum kj_template_id id, int64_t param,
                               const kiln__launch_cfg *cfg, void **params, kiln_stream stream)
{
    kj_spec spec;
    kj_spec_init(&spec, id);
    spec.values[0] = param;
    const kiln__kernel *kernel;
    int status = kiln__kernel_get(ctx, &spec, &kernel);
    if (status == KILN_OK)
        status = kiln__launch(ctx, kernel, cfg, params, stream);
    if (status != KILN_OK)
        return (kiln_status)status;
    return kiln__ctx_ok(ctx);
}

kiln_status kiln_quant_fp8_per_token(kiln_ctx *ctx, const kiln_quant_fp8_args *args,
                                     kiln_stream stream)
{
    static const char op[] = "kiln_quant_fp8_per_token";
    int status = kiln__check_call(ctx, args, op);
    if (status == KILN_OK)
        status = check_quant_operands(ctx, op, args);
    if (status != KILN_OK)
        return (kiln_status)status;
    int64_t m = args->x.shape[0], k = args->x.shape[1];
    const kiln_tensor *sf = &args->scales;
    if (sf->shape[0] != k / 128 || sf->shape[1] != m || kiln__row_stride(sf) < m)
        return (kiln_status)kiln__ctx_failf(
            ctx, KILN_ERR_INVALID_ARG,
            "%s: scales must be F32 [K/128 = %lld, M = %lld] MN-major with row stride >= M "
            "(got [%lld, %lld], stride %lld)",
            op, (long long)(k / 128), (long long)m, (long long)sf->shape[0],
            (long long)sf->shape[1], (long long)kiln__row_stride(sf));
    if ((status = kiln__check_device(ctx, op)) != KILN_OK)
        return (kiln_status)status;
    if (m == 0)
        return kiln__ctx_ok(ctx);
    int rows = (int)m;
    long long ld_x = kiln__row_stride(&args->x), sf_stride = kiln__row_stride(sf);
    void *params[] = {(void *)&args->x.data, (void *)&args->q.data, (void *)&args->scales.data,
                      &rows, &ld_x, &sf_stride};
    kiln__launch_cfg cfg = {{(unsigned)ceil_div(m, 32), (unsigned)(k / 128), 1}, {256, 1, 1}, 0, 0};
    return launch_spec(ctx, KJ_QUANT_PER_TOKEN, k, &cfg, params, stream);
}

kiln_status kiln_quant_fp8_per_block(kiln_ctx *ctx, const kiln_quant_fp8_args *args,
                                     kiln_stream stream)
{
    static const char op[] = "kiln_quant_fp8_per_block";
    int status = kiln__check_call(ctx, args, op);
    if (status == KILN_OK)
        status = check_quant_operands(ctx, op, args);
    if (status != KILN_OK)
        return (kiln_status)status;
    int64_t n = args->x.shape[0], k = args->x.shape[1];
    const kiln_tensor *sf = &args->scales;
    if (sf->shape[0] != ceil_div(n, 128) || sf->shape[1] != k / 128 ||
        kiln__row_stride(sf) != k / 128)
        return (kiln_status)kiln__ctx_failf(
            ctx, KILN_ERR_INVALID_ARG,
            "%s: scales must be a contiguous F32 [ceil(N/128) = %lld, K/128 = %lld] tensor", op,
            (long long)ceil_div(n, 128), (long long)(k / 128));
    if ((status = kiln__check_device(ctx, op)) != KILN_OK)
        return (kiln_status)status;
    if (n == 0)
        return kiln__ctx_ok(ctx);
    int rows = (int)n;
    long long ld_x = kiln__row_stride(&args->x);
    void *params[] = {(void *)&args->x.data, (void *)&args->q.data, (void *)&args->scales.data,
                      &rows, &ld_x};
    kiln__launch_cfg cfg = {
        {(unsigned)ceil_div(n, 128), (unsigned)(k / 128), 1}, {256, 1, 1}, 0, 0};
    return launch_spec(ctx, KJ_QUANT_PER_BLOCK, k, &cfg, params, stream);
}

enum { SF_TILE = 32 };

kiln_status kiln_sf_transpose(kiln_ctx *ctx, const kiln_sf_transpose_args *args,
                              kiln_stream stream)
{
    static const char op[] = "kiln_sf_transpose";
    int status;
    if ((status = kiln__check_call(ctx, args, op)) ||
        (status = kiln__check_tensor(ctx, op, "in", &args->in, KILN_DTYPE_F32, 2, 4)) ||
        (status = kiln__check_tensor(ctx, op, "out", &args->out, KILN_DTYPE_F32, 2, 16)))
        return (kiln_status)status;
    int64_t m = args->in.shape[0], kb = args->in.shape[1];
    if (m > (1LL << 31) - 64 || kb > (1 << 20))
        return (kiln_status)kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                                            "%s: in is [M = %lld, KB = %lld]: M must be at most "
                                            "2^31 - 64 and KB at most 2^20",
                                            op, (long long)m, (long long)kb);
    if (args->out.shape[0] != kb || args->out.shape[1] != m ||
        kiln__row_stride(&args->out) != kiln_sf_mn_stride(m))
        return (kiln_status)kiln__ctx_failf(
            ctx, KILN_ERR_INVALID_ARG,
            "%s: out must be F32 [KB = %lld, M = %lld] with row stride kiln_sf_mn_stride(M) = "
            "%lld (got [%lld, %lld], stride %lld)",
            op, (long long)kb, (long long)m, (long long)kiln_sf_mn_stride(m),
            (long long)args->out.shape[0], (long long)args->out.shape[1],
            (long long)kiln__row_stride(&args->out));
    if ((status = kiln__check_device(ctx, op)) != KILN_OK)
        return (kiln_status)status;
    if (m == 0 || kb == 0)
        return kiln__ctx_ok(ctx);
    int rows = (int)m, cols = (int)kb;
    long long ld_in = kiln__row_stride(&args->in), out_stride = kiln__row_stride(&args->out);
    void *params[] = {(void *)&args->in.data, (void *)&args->out.data, &rows, &cols, &ld_in,
                      &out_stride};
    kiln__launch_cfg cfg = {
        {(unsigned)ceil_div(m, SF_TILE), (unsigned)ceil_div(kb, SF_TILE), 1}, {SF_TILE, 8, 1}, 0, 0};
    return launch_spec(ctx, KJ_SF_TRANSPOSE, SF_TILE, &cfg, params, stream);
}

static int quant_prewarm(kiln_ctx *ctx, enum kj_template_id id, const char *name,
                         kiln__spec_words *words, kj_spec *specs, int *n)
{
    int64_t k;
    int status;
    if ((status = kiln__spec_word(ctx, words, "k", true, 0, &k)) != KILN_OK ||
        (status = check_quant_k(ctx, name, k)) != KILN_OK)
        return status;
    kj_spec_init(&specs[0], id);
    specs[0].values[0] = k;
    *n = 1;
    return KILN_OK;
}

int kiln__quant_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs, int *n)
{
    return quant_prewarm(ctx, KJ_QUANT_PER_TOKEN, "quant_fp8_per_token", words, specs, n);
}

int kiln__quant_block_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs, int *n)
{
    return quant_prewarm(ctx, KJ_QUANT_PER_BLOCK, "quant_fp8_per_block", words, specs, n);
}

int kiln__sf_transpose_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs, int *n)
{
    kj_spec_init(&specs[0], KJ_SF_TRANSPOSE);
    specs[0].values[0] = SF_TILE;
    *n = 1;
    return KILN_OK;
}
