/* kiln_gemm_bf16_masked and kiln_gemm_bf16_contig: the BF16 GEMM kernel over G groups
 * (MoE decode: masked rows; prefill: contiguous groups, as DeepEP v2 prefix sums or an
 * expert id per row). Group sizes are device data read by the kernel (gemm_sched.cuh), so
 * nothing here depends on them: one launch, or one captured graph, serves every routing
 * outcome. */
#include "gemm_bf16.h"
#include "tma.h"

static const char masked_op[] = "kiln_gemm_bf16_masked";
static const char contig_op[] = "kiln_gemm_bf16_contig";

static int check_masked(kiln_ctx *ctx, const kiln_gemm_bf16_masked_args *args, int *out_f32)
{
    const char *op = masked_op;
    int status;
    if ((status = kiln__check_tensor(ctx, op, "a", &args->a, KILN_DTYPE_BF16, 3, 16)) ||
        (status = kiln__check_tensor(ctx, op, "b", &args->b, KILN_DTYPE_BF16, 3, 16)) ||
        (status = kiln__gemm_bf16_out_dtype(ctx, op, &args->d, out_f32)) ||
        (status = kiln__check_tensor(ctx, op, "d", &args->d, args->d.dtype, 3, 16)) ||
        (status = kiln__check_tensor(ctx, op, "masked_m", &args->masked_m, KILN_DTYPE_I32, 1, 4)))
        return status;
    int64_t g = args->a.shape[0], m_max = args->a.shape[1], k = args->a.shape[2];
    int64_t n = args->b.shape[1];
    if ((status = kiln__check_groups(ctx, op, g, m_max)) ||
        (status = kiln__gemm_bf16_check_nk(ctx, op, n, k)) ||
        (status = kiln__check_shape3(ctx, op, "a", &args->a, g, m_max, k, k)) ||
        (status = kiln__check_shape3(ctx, op, "b", &args->b, g, n, k, k)) ||
        (status = kiln__check_shape3(ctx, op, "d", &args->d, g, m_max, n, n)))
        return status;
    return kiln__check_masked_m(ctx, op, &args->masked_m, g, args->expected_m);
}

/* G groups of about expected_m rows: as a dense problem of that many rows whose N is G
 * times wider (the groups' tiles are independent work). */
static kiln__gemm_bf16_config pick_masked(int64_t groups, int64_t expected_m, int64_t m_max,
                                          int64_t n, int64_t k, int out_f32, int num_sms)
{
    int64_t m = expected_m > 0 ? (expected_m < m_max ? expected_m : m_max) : m_max;
    return kiln__gemm_bf16_pick_grouped(m, n * groups, k, 0, out_f32, 1, num_sms);
}

kiln_status kiln_gemm_bf16_masked(kiln_ctx *ctx, const kiln_gemm_bf16_masked_args *args,
                                  kiln_stream stream)
{
    int out_f32 = 0;
    int status = kiln__check_call(ctx, args, masked_op);
    if (status == KILN_OK)
        status = check_masked(ctx, args, &out_f32);
    if (status == KILN_OK)
        status = kiln__check_device(ctx, masked_op);
    if (status != KILN_OK)
        return (kiln_status)status;
    int64_t g = args->a.shape[0], m_max = args->a.shape[1], k = args->a.shape[2];
    int64_t n = args->b.shape[1];
    kiln__gemm_bf16_config cfg = pick_masked(g, args->expected_m, m_max, n, k, out_f32, ctx->num_sms);

    kiln__gemm_bf16_operands ops = {
        .rows = (int)m_max,
        .group_rows = args->masked_m.data,
        .num_groups = (int)g,
        .d = args->d.data,
        .ld_d = n,
    };
    int elem = out_f32 ? 4 : 2, slab = kiln__gemm_bf16_slab(cfg.block_n, elem);
    const CUtensorMapDataType bf16 = CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
    const CUtensorMapSwizzle sw = CU_TENSOR_MAP_SWIZZLE_128B;
    int bytes = slab * elem;
    CUtensorMapSwizzle d_sw = bytes == 128  ? CU_TENSOR_MAP_SWIZZLE_128B
                              : bytes == 64 ? CU_TENSOR_MAP_SWIZZLE_64B
                              : bytes == 32 ? CU_TENSOR_MAP_SWIZZLE_32B
                                            : CU_TENSOR_MAP_SWIZZLE_NONE;
    /* A's last m block: only M_max's rows there (the template's short_a_tile) */
    int last_box = kiln__tma_last_box_rows(m_max, cfg.block_m);
    if ((status = kiln__tma_3d(ctx, &ops.tm_a, "a", bf16, 2, args->a.data, (uint64_t)g,
                               (uint64_t)m_max, (uint64_t)k, (uint64_t)k, (uint64_t)(m_max * k),
                               (uint32_t)cfg.block_m, 64, sw)) ||
        (last_box != cfg.block_m &&
         (status = kiln__tma_3d(ctx, &ops.tm_a_last, "a", bf16, 2, args->a.data, (uint64_t)g,
                                (uint64_t)m_max, (uint64_t)k, (uint64_t)k,
                                (uint64_t)(m_max * k), (uint32_t)last_box, 64, sw))) ||
        (status = kiln__tma_3d(ctx, &ops.tm_b, "b", bf16, 2, args->b.data, (uint64_t)g,
                               (uint64_t)n, (uint64_t)k, (uint64_t)k, (uint64_t)(n * k),
                               (uint32_t)cfg.block_n, 64, sw)) ||
        (status = kiln__tma_3d(ctx, &ops.tm_d, "d",
                               out_f32 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT32 : bf16, elem,
                               args->d.data, (uint64_t)g, (uint64_t)m_max, (uint64_t)n,
                               (uint64_t)n, (uint64_t)(m_max * n), 64, (uint32_t)slab, d_sw)))
        return (kiln_status)status;
    if (last_box == cfg.block_m)
        ops.tm_a_last = ops.tm_a;

    /* At most every group full; the kernel stops at the units the counts give (a bound, so
     * every SM takes part: no even rounds). */
    int64_t units = g * ((m_max + cfg.block_m - 1) / cfg.block_m) * ((n + cfg.block_n - 1) / cfg.block_n);
    if ((status = kiln__gemm_bf16_launch(ctx, &cfg, n, k, &ops, units, false, stream)) !=
        KILN_OK)
        return (kiln_status)status;
    return kiln__ctx_ok(ctx);
}

static int check_contig(kiln_ctx *ctx, const kiln_gemm_bf16_contig_args *args, int *out_f32)
{
    const char *op = contig_op;
    int status;
    if ((status = kiln__check_tensor(ctx, op, "a", &args->a, KILN_DTYPE_BF16, 2, 16)) ||
        (status = kiln__check_tensor(ctx, op, "b", &args->b, KILN_DTYPE_BF16, 3, 16)) ||
        (status = kiln__gemm_bf16_out_dtype(ctx, op, &args->d, out_f32)) ||
        (status = kiln__check_tensor(ctx, op, "d", &args->d, args->d.dtype, 2, 16)))
        return status;
    const kiln_tensor *layout;
    const char *layout_name;
    if ((status = kiln__contig_layout(ctx, op, &args->group_end, &args->row_expert, &layout,
                                      &layout_name)))
        return status;
    int64_t m = args->a.shape[0], k = args->a.shape[1];
    int64_t g = args->b.shape[0], n = args->b.shape[1];
    if ((status = kiln__gemm_bf16_check_nk(ctx, op, n, k)) != KILN_OK)
        return status;
    if ((status = kiln__check_contig_groups(ctx, op, m, g)) ||
        (status = kiln__check_alignment(ctx, op, "m_alignment", args->m_alignment)))
        return status;
    if ((status = kiln__check_shape3(ctx, op, "b", &args->b, g, n, k, k)) != KILN_OK)
        return status;
    if (args->d.shape[0] != m || args->d.shape[1] != n)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG, "%s: d must be [M_total = %lld, N = %lld]",
                               op, (long long)m, (long long)n);
    bool by_row = layout == &args->row_expert;
    if (layout->shape[0] != (by_row ? m : g))
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG, "%s: %s must be I32 [%s = %lld]", op,
                               layout_name, by_row ? "M_total" : "G", (long long)(by_row ? m : g));
    return KILN_OK;
}

/* Prefill tiles (the dense heuristic for M_total rows), with 128-row tiles only when every
 * group start is a multiple of 128. Row ids (grouping 3) walk the same tiles, each computed
 * once per expert with rows in it, so a group start inside a tile costs it one more pass;
 * m_align 0 lets one kernel serve every alignment. */
static kiln__gemm_bf16_config pick_contig(int64_t m, int64_t n, int64_t k, int64_t align,
                                          bool by_row, int out_f32, int num_sms)
{
    kiln__gemm_bf16_config cfg = kiln__gemm_bf16_pick_grouped(m > 129 ? m : 129, n, k, 0, out_f32,
                                                              by_row ? 3 : 2, num_sms);
    cfg.m_align = by_row ? 0 : (int)align;
    if (align % cfg.block_m != 0) {
        cfg.block_m = 64;
        kiln__gemm_bf16_fit(&cfg);
    }
    return cfg;
}

kiln_status kiln_gemm_bf16_contig(kiln_ctx *ctx, const kiln_gemm_bf16_contig_args *args,
                                  kiln_stream stream)
{
    int out_f32 = 0;
    int status = kiln__check_call(ctx, args, contig_op);
    if (status == KILN_OK)
        status = check_contig(ctx, args, &out_f32);
    if (status == KILN_OK)
        status = kiln__check_device(ctx, contig_op);
    if (status != KILN_OK)
        return (kiln_status)status;
    int64_t m = args->a.shape[0], k = args->a.shape[1];
    int64_t g = args->b.shape[0], n = args->b.shape[1];
    if (m == 0)
        return kiln__ctx_ok(ctx);
    bool by_row = args->row_expert.data != NULL;
    kiln__gemm_bf16_config cfg =
        pick_contig(m, n, k, args->m_alignment, by_row, out_f32, ctx->num_sms);

    kiln__gemm_bf16_operands ops = {
        .rows = (int)m,
        .group_rows = by_row ? args->row_expert.data : args->group_end.data,
        .num_groups = (int)g,
        .d = args->d.data,
        .ld_d = kiln__row_stride(&args->d),
    };
    const CUtensorMapDataType bf16 = CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
    const CUtensorMapSwizzle sw = CU_TENSOR_MAP_SWIZZLE_128B;
    if ((status = kiln__tma_2d(ctx, &ops.tm_a, "a", bf16, 2, args->a.data, (uint64_t)m,
                               (uint64_t)k, (uint64_t)kiln__row_stride(&args->a),
                               (uint32_t)cfg.block_m, 64, sw)) ||
        (status = kiln__tma_3d(ctx, &ops.tm_b, "b", bf16, 2, args->b.data, (uint64_t)g,
                               (uint64_t)n, (uint64_t)k, (uint64_t)k, (uint64_t)(n * k),
                               (uint32_t)cfg.block_n, 64, sw)) ||
        (status = kiln__gemm_bf16_d_map(ctx, &cfg, &ops.tm_d, args->d.data, m, n, ops.ld_d)))
        return (kiln_status)status;
    ops.tm_a_last = ops.tm_a; /* unused: rows past a group's are memory */

    int64_t units = kiln__contig_units(m, g, n, cfg.block_m, cfg.block_n, by_row);
    if ((status = kiln__gemm_bf16_launch(ctx, &cfg, n, k, &ops, units, false, stream)) !=
        KILN_OK)
        return (kiln_status)status;
    return kiln__ctx_ok(ctx);
}

/* "gemm_bf16_masked g=.. m=.. n=.. k=.. [f32=0|1]" (m: the expected rows per group) */
int kiln__gemm_bf16_masked_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs, int *n)
{
    int64_t groups, expected, cols, depth, out_f32;
    int status;
    if ((status = kiln__spec_word(ctx, words, "g", true, 0, &groups)) ||
        (status = kiln__spec_word(ctx, words, "m", true, 0, &expected)) ||
        (status = kiln__spec_word(ctx, words, "n", true, 0, &cols)) ||
        (status = kiln__spec_word(ctx, words, "k", true, 0, &depth)) ||
        (status = kiln__spec_word(ctx, words, "f32", false, 0, &out_f32)))
        return status;
    if ((status = kiln__check_groups(ctx, "gemm_bf16_masked", groups, expected)) != KILN_OK ||
        (status = kiln__gemm_bf16_check_nk(ctx, "gemm_bf16_masked", cols, depth)) != KILN_OK)
        return status;
    if (out_f32 != 0 && out_f32 != 1)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "gemm_bf16_masked: f32=%lld must be 0 or 1", (long long)out_f32);
    kiln__gemm_bf16_config cfg =
        pick_masked(groups, expected, expected, cols, depth, (int)out_f32, ctx->num_sms);
    kiln__gemm_bf16_spec(&specs[0], cols, depth, &cfg);
    *n = 1;
    return KILN_OK;
}

/* "gemm_bf16_contig m=.. n=.. k=.. [align=128] [f32=0|1]" (m: the total rows): the kernels
 * of both layouts (prefix sums, row ids). */
int kiln__gemm_bf16_contig_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs, int *n)
{
    int64_t m, cols, depth, align, out_f32;
    int status;
    if ((status = kiln__spec_word(ctx, words, "m", true, 0, &m)) ||
        (status = kiln__spec_word(ctx, words, "n", true, 0, &cols)) ||
        (status = kiln__spec_word(ctx, words, "k", true, 0, &depth)) ||
        (status = kiln__spec_word(ctx, words, "align", false, 128, &align)) ||
        (status = kiln__spec_word(ctx, words, "f32", false, 0, &out_f32)))
        return status;
    if ((status = kiln__check_rows(ctx, "gemm_bf16_contig", m, 1)) != KILN_OK ||
        (status = kiln__gemm_bf16_check_nk(ctx, "gemm_bf16_contig", cols, depth)) != KILN_OK ||
        (status = kiln__check_alignment(ctx, "gemm_bf16_contig", "align", align)) != KILN_OK)
        return status;
    if (out_f32 != 0 && out_f32 != 1)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "gemm_bf16_contig: f32=%lld must be 0 or 1", (long long)out_f32);
    for (int by_row = 0; by_row < 2; by_row++) {
        kiln__gemm_bf16_config cfg =
            pick_contig(m, cols, depth, align, by_row, (int)out_f32, ctx->num_sms);
        kiln__gemm_bf16_spec(&specs[by_row], cols, depth, &cfg);
    }
    *n = 2;
    return KILN_OK;
}
