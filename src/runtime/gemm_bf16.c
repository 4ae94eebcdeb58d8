/* kiln_gemm_bf16: argument checks, configuration, TMA descriptors and the persistent
 * launch of the BF16 GEMM (src/templates/gemm_bf16.cuh), shared with the grouped forms in
 * gemm_bf16_grouped.c. */
#include "gemm_bf16.h"
#include "tma.h"

static const char op[] = "kiln_gemm_bf16";

int kiln__gemm_bf16_check_nk(kiln_ctx *ctx, const char *name, int64_t n, int64_t k)
{
    if (k <= 0 || k % 8 != 0 || k > (1 << 20))
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: K = %lld must be a positive multiple of 8 (at most 2^20)", name,
                               (long long)k);
    if (n <= 0 || n % 8 != 0 || n > (1 << 20))
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: N = %lld must be a positive multiple of 8 (at most 2^20)", name,
                               (long long)n);
    return KILN_OK;
}

int kiln__gemm_bf16_out_dtype(kiln_ctx *ctx, const char *name, const kiln_tensor *d, int *out_f32)
{
    if (d->dtype != KILN_DTYPE_BF16 && d->dtype != KILN_DTYPE_F32)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG, "%s: d has dtype %s, expected bf16 or f32",
                               name, kiln__dtype_name(d->dtype));
    *out_f32 = d->dtype == KILN_DTYPE_F32;
    return KILN_OK;
}

/* Shapes, dtypes, alignment: everything the kernel and TMA rely on. */
static int check_args(kiln_ctx *ctx, const kiln_gemm_bf16_args *args, int *out_f32)
{
    int status;
    if (args->layout < KILN_GEMM_NT || args->layout > KILN_GEMM_TN)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: layout = %d is not a kiln_gemm_layout (0..3)", op, args->layout);
    if ((status = kiln__check_tensor(ctx, op, "a", &args->a, KILN_DTYPE_BF16, 2, 16)) ||
        (status = kiln__check_tensor(ctx, op, "b", &args->b, KILN_DTYPE_BF16, 2, 16)) ||
        (status = kiln__gemm_bf16_out_dtype(ctx, op, &args->d, out_f32)) ||
        (status = kiln__check_tensor(ctx, op, "d", &args->d, args->d.dtype, 2, 16)))
        return status;
    bool a_mn = args->layout & 1, b_mn = args->layout & 2;
    int64_t m = args->a.shape[a_mn ? 1 : 0], k = args->a.shape[a_mn ? 0 : 1];
    int64_t n = args->b.shape[b_mn ? 1 : 0], b_k = args->b.shape[b_mn ? 0 : 1];
    if ((status = kiln__gemm_bf16_check_nk(ctx, op, n, k)) != KILN_OK)
        return status;
    if ((status = kiln__check_rows(ctx, op, m, 0)) != KILN_OK)
        return status;
    if (b_k != k)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: b is [%lld, %lld]: its K (%lld) is not a's K = %lld", op,
                               (long long)args->b.shape[0], (long long)args->b.shape[1],
                               (long long)b_k, (long long)k);
    if (args->d.shape[0] != m || args->d.shape[1] != n)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: d is [%lld, %lld], expected [M = %lld, N = %lld]", op,
                               (long long)args->d.shape[0], (long long)args->d.shape[1],
                               (long long)m, (long long)n);
    return KILN_OK;
}

int kiln__gemm_bf16_d_map(kiln_ctx *ctx, const kiln__gemm_bf16_config *cfg, CUtensorMap *map,
                          void *d, int64_t rows, int64_t n, int64_t ld_d)
{
    int elem = cfg->out_f32 ? 4 : 2, slab = kiln__gemm_bf16_slab(cfg->block_n, elem);
    int bytes = slab * elem;
    CUtensorMapSwizzle swizzle = bytes == 128  ? CU_TENSOR_MAP_SWIZZLE_128B
                                 : bytes == 64 ? CU_TENSOR_MAP_SWIZZLE_64B
                                 : bytes == 32 ? CU_TENSOR_MAP_SWIZZLE_32B
                                               : CU_TENSOR_MAP_SWIZZLE_NONE;
    return kiln__tma_2d(ctx, map, "d",
                        cfg->out_f32 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT32 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
                        elem, d, (uint64_t)rows, (uint64_t)n, (uint64_t)ld_d, 64, (uint32_t)slab,
                        swizzle);
}

int kiln__gemm_bf16_launch(kiln_ctx *ctx, const kiln__gemm_bf16_config *cfg, int64_t n,
                           int64_t k, const kiln__gemm_bf16_operands *ops, int64_t units,
                           bool even_rounds, kiln_stream stream)
{
    void *params[] = {(void *)&ops->tm_a, (void *)&ops->tm_a_last, (void *)&ops->tm_b,
                      (void *)&ops->tm_d, (void *)&ops->rows, (void *)&ops->group_rows,
                      (void *)&ops->num_groups, (void *)&ops->d, (void *)&ops->ld_d,
                      (void *)&ops->b_ready};
    kj_spec spec;
    kiln__gemm_bf16_spec(&spec, n, k, cfg);
    return kiln__launch_persistent(ctx, &spec, (unsigned)kiln__gemm_bf16_threads(cfg),
                                   (unsigned)kiln__gemm_bf16_smem(cfg),
                                   (unsigned)(cfg->cluster_k > 1 ? cfg->cluster_k : 1), units,
                                   even_rounds, params, stream);
}

/* The heuristic's configuration for a dense launch, with KILN_GEMM_PREFILL_K_SPLIT (on by
 * default) splitting the K of prefill with fewer tiles than SMs over clusters. */
static kiln__gemm_bf16_config dense_pick(const kiln_ctx *ctx, int64_t m, int64_t n, int64_t k,
                                         int layout, int out_f32)
{
    return kiln__gemm_bf16_pick_dense(m, n, k, layout, out_f32, ctx->num_sms,
                                      ctx->opts.gemm_prefill_k_split);
}

kiln_status kiln_gemm_bf16(kiln_ctx *ctx, const kiln_gemm_bf16_args *args, kiln_stream stream)
{
    if (args == NULL || args->b_ready == 0)
        return kiln__gemm_bf16_with(ctx, args, NULL, stream);
    kiln_gemm_bf16_args early = *args;
    early.b_ready = KILN__GEMM_B_EARLY_SLOTS;
    return kiln__gemm_bf16_with(ctx, &early, NULL, stream);
}

kiln_status kiln__gemm_bf16_with(kiln_ctx *ctx, const kiln_gemm_bf16_args *args,
                                 const kiln__gemm_bf16_config *forced, kiln_stream stream)
{
    int out_f32 = 0;
    int status = kiln__check_call(ctx, args, op);
    if (status == KILN_OK)
        status = check_args(ctx, args, &out_f32);
    if (status == KILN_OK)
        status = kiln__check_device(ctx, op);
    if (status != KILN_OK)
        return (kiln_status)status;
    bool a_mn = args->layout & 1, b_mn = args->layout & 2;
    int64_t m = args->a.shape[a_mn ? 1 : 0], k = args->a.shape[a_mn ? 0 : 1];
    int64_t n = args->b.shape[b_mn ? 1 : 0];
    if (m == 0)
        return kiln__ctx_ok(ctx);

    kiln__gemm_bf16_config cfg = dense_pick(ctx, m, n, k, args->layout, out_f32);
    if (forced != NULL) {
        cfg = *forced;
        cfg.layout = args->layout;
        cfg.out_f32 = out_f32;
        cfg.grouping = 0;
        if (cfg.stages == 0)
            kiln__gemm_bf16_fit(&cfg);
    }
    kiln__gemm_bf16_operands ops = {
        .rows = (int)m,
        .group_rows = NULL,
        .num_groups = 1,
        .d = args->d.data,
        .ld_d = kiln__row_stride(&args->d),
        .b_ready = args->b_ready > 0 ? args->b_ready : 0,
    };
    /* A K-major operand loads [tile rows, 64 of K] per stage (A's last m block, tm_a_last:
     * only its rows rounded up to 8 where M ends inside it, the template's stage_tx); an
     * MN-major one [64 of K, 64] boxes, one per 64 rows (columns) of the tile. */
    const int last_box = kiln__tma_last_box_rows(m, cfg.block_m);
    const CUtensorMapDataType bf16 = CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
    const CUtensorMapSwizzle sw = CU_TENSOR_MAP_SWIZZLE_128B;
    uint64_t lda = (uint64_t)kiln__row_stride(&args->a), ldb = (uint64_t)kiln__row_stride(&args->b);
    if ((status = a_mn ? kiln__tma_2d(ctx, &ops.tm_a, "a", bf16, 2, args->a.data, (uint64_t)k,
                                      (uint64_t)m, lda, 64, 64, sw)
                       : kiln__tma_2d(ctx, &ops.tm_a, "a", bf16, 2, args->a.data, (uint64_t)m,
                                      (uint64_t)k, lda, (uint32_t)cfg.block_m, 64, sw)) ||
        (!a_mn && last_box != cfg.block_m &&
         (status = kiln__tma_2d(ctx, &ops.tm_a_last, "a", bf16, 2, args->a.data, (uint64_t)m,
                                (uint64_t)k, lda, (uint32_t)last_box, 64, sw))) ||
        (status = b_mn ? kiln__tma_2d(ctx, &ops.tm_b, "b", bf16, 2, args->b.data, (uint64_t)k,
                                      (uint64_t)n, ldb, 64, 64, sw)
                       : kiln__tma_2d(ctx, &ops.tm_b, "b", bf16, 2, args->b.data, (uint64_t)n,
                                      (uint64_t)k, ldb, (uint32_t)cfg.block_n, 64, sw)) ||
        (status = kiln__gemm_bf16_d_map(ctx, &cfg, &ops.tm_d, args->d.data, m, n, ops.ld_d)))
        return (kiln_status)status;
    if (a_mn || last_box == cfg.block_m)
        ops.tm_a_last = ops.tm_a;

    cfg.no_b_early = kiln__gemm_bf16_no_b_early(&cfg, ops.b_ready);
    int64_t units = (m + cfg.block_m - 1) / cfg.block_m * ((n + cfg.block_n - 1) / cfg.block_n);
    /* prefill tiles spread evenly over the SMs (not decode's, bound by reading B) */
    if ((status = kiln__gemm_bf16_launch(ctx, &cfg, n, k, &ops, units, m > 128, stream)) !=
        KILN_OK)
        return (kiln_status)status;
    return kiln__ctx_ok(ctx);
}

/* "gemm_bf16 m=.. n=.. k=.. [layout=0..3] [f32=0|1]" */
int kiln__gemm_bf16_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs, int *n)
{
    int64_t m, cols, depth, layout, out_f32;
    int status;
    if ((status = kiln__spec_word(ctx, words, "m", true, 0, &m)) ||
        (status = kiln__spec_word(ctx, words, "n", true, 0, &cols)) ||
        (status = kiln__spec_word(ctx, words, "k", true, 0, &depth)) ||
        (status = kiln__spec_word(ctx, words, "layout", false, 0, &layout)) ||
        (status = kiln__spec_word(ctx, words, "f32", false, 0, &out_f32)))
        return status;
    if ((status = kiln__check_rows(ctx, "gemm_bf16", m, 1)) != KILN_OK ||
        (status = kiln__gemm_bf16_check_nk(ctx, "gemm_bf16", cols, depth)) != KILN_OK)
        return status;
    if (layout < 0 || layout > 3 || (out_f32 != 0 && out_f32 != 1))
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "gemm_bf16: layout=%lld f32=%lld: layout must be 0..3, f32 0 or 1",
                               (long long)layout, (long long)out_f32);
    kiln__gemm_bf16_config cfg = dense_pick(ctx, m, cols, depth, (int)layout, (int)out_f32);
    /* Launches with and without b_ready take kernels of their own. */
    for (int b_ready = 0; b_ready <= 1; b_ready++) {
        cfg.no_b_early = kiln__gemm_bf16_no_b_early(&cfg, b_ready);
        kiln__gemm_bf16_spec(&specs[b_ready], cols, depth, &cfg);
    }
    *n = 2;
    return KILN_OK;
}
