/* kiln_gemm_fp8_contig: the FP8 GEMM kernel over contiguous groups (MoE prefill). The
 * layout is device data, read by the kernel (template grouping 2: the DeepEP v2 prefix
 * sums; 3: an expert id per row), so nothing here depends on it. */
#include "gemm_config.h"
#include "tma.h"

static const char op[] = "kiln_gemm_fp8_contig";

static int check_args(kiln_ctx *ctx, const kiln_gemm_fp8_contig_args *args)
{
    int status;
    if ((status = kiln__check_tensor(ctx, op, "a", &args->a, KILN_DTYPE_E4M3, 2, 16)) ||
        (status = kiln__check_tensor(ctx, op, "sfa", &args->sfa, KILN_DTYPE_F32, 2, 16)) ||
        (status = kiln__check_tensor(ctx, op, "b", &args->b, KILN_DTYPE_E4M3, 3, 16)) ||
        (status = kiln__check_tensor(ctx, op, "sfb", &args->sfb, KILN_DTYPE_F32, 3, 4)) ||
        (status = kiln__check_tensor(ctx, op, "d", &args->d, KILN_DTYPE_BF16, 2, 16)))
        return status;
    const kiln_tensor *layout;
    const char *layout_name;
    if ((status = kiln__contig_layout(ctx, op, &args->group_end, &args->row_expert, &layout,
                                      &layout_name)))
        return status;
    bool by_row = layout == &args->row_expert;
    int64_t m = args->a.shape[0], k = args->a.shape[1];
    int64_t g = args->b.shape[0], n = args->b.shape[1];
    if ((status = kiln__gemm_fp8_check_nk(ctx, op, n, k)) != KILN_OK)
        return status;
    if ((status = kiln__check_contig_groups(ctx, op, m, g)) ||
        (status = kiln__check_alignment(ctx, op, "m_alignment", args->m_alignment)))
        return status;
    bool b_packed = args->b.shape[2] == k && args->b.strides[0] == 0 && args->b.strides[1] == 0;
    bool sfb_packed = args->sfb.shape[0] == g && args->sfb.shape[1] == (n + 127) / 128 &&
                      args->sfb.shape[2] == k / 128 && args->sfb.strides[0] == 0 &&
                      args->sfb.strides[1] == 0;
    if (!b_packed || !sfb_packed)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: b must be a contiguous E4M3 [G, N, K = %lld] and sfb a "
                               "contiguous F32 [G, ceil(N/128), K/128]",
                               op, (long long)k);
    const kiln_tensor *sfa = &args->sfa;
    int64_t sfa_stride = kiln__row_stride(sfa);
    if (sfa->shape[0] != k / 128 || sfa->shape[1] != m || sfa_stride < m || sfa_stride % 4 != 0)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: sfa must be F32 [K/128 = %lld, M_total = %lld] MN-major with a "
                               "row stride >= M_total and a multiple of 4",
                               op, (long long)(k / 128), (long long)m);
    if (args->d.shape[0] != m || args->d.shape[1] != n)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG, "%s: d must be [M_total = %lld, N = %lld]",
                               op, (long long)m, (long long)n);
    if (layout->shape[0] != (by_row ? m : g))
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG, "%s: %s must be I32 [%s = %lld]", op,
                               layout_name, by_row ? "M_total" : "G", (long long)(by_row ? m : g));
    return KILN_OK;
}

/* Prefill tiles (the dense heuristic for M_total rows), with 128-row tiles only when every
 * group start is a multiple of 128, and 192- or 256-row tiles where the dense model says
 * they pay (KILN_GEMM_TALL_TILES). Prefix sums: a group's last tile then runs into the next
 * group's rows, which it loads but does not store. Row ids (grouping 3): a tile is computed
 * once per expert with rows in it, so a group start inside a tile costs it one more pass;
 * m_align 0 lets one kernel serve every alignment. Since each group's last tile is partly
 * wasted, the tile-height model (KILN_GEMM_TALL_TILES 1) counts the row tiles of each of
 * the g groups, taken as equal (as the masked GEMM's does: g problems of m / g rows side by
 * side, N g times wider); groups of 128 rows or fewer then take no taller tiles. Stop 29,
 * profiler, one call, M_total rows alone -> per group (prefix sums; row ids alike): 32 groups
 * of 1024 rows, 192 -> 256 rows, (4096, 7168) 1694.9 -> 1523.1 us, (7168, 2048) 875.1 ->
 * 780.6; 32 x 128 rows, 256 -> 128 rows, 406.0 -> 262.4 and 219.0 -> 142.1; 8 x 4096 rows at
 * (7168, 2048), 192 -> 256 rows, 770.2 -> 754.5 (the other three DeepSeek groupings keep
 * their 192-row tiles). Row ids pay more for 192-row tiles (KILN__TALL_ROW_IDS; stop 30: 256
 * rows 1.2-6% faster on all four DeepSeek groupings, where the prefix sums' picks stand;
 * stop 37, with 32 producer registers for their 192-row tiles, 0-6.6%).
 * Tall tiles walk each expert's m blocks in L2 groups of kiln__gemm_fp8_l2_group's width:
 * with groups of 8 every expert's A came from DRAM once per group. Stop 36, profiler, two
 * rounds, groups of 8 -> the rule (us): (4096, 7168), groups of 16: 4 x 8192 prefix sums
 * 1403.2 / 1405.5 -> 1395.5 / 1391.8 (DRAM reads 1175 -> 775 MB), row ids 1489.3 / 1486.6 ->
 * 1482.4 / 1481.9, 8 x 4096 0.1-0.4%; (7168, 2048), groups of 32: 4 x 8192 prefix sums 729.2
 * / 726.6 -> 710.8 / 710.7, row ids 813.8 / 812.7 -> 786.5 / 788.8, 8 x 4096 row ids 816.6 /
 * 816.3 -> 793.3 / 792.6, prefix sums 0.5%. Groups of 32 at (4096, 7168), whose round of
 * 35-37 MB outgrew the L2, lost 2.3-3.3% (DRAM reads rose). */
static kiln__gemm_config pick_contig(const kiln_ctx *ctx, int64_t m, int64_t g, int64_t n,
                                     int64_t k, int64_t align, bool by_row)
{
    kiln__gemm_config cfg = kiln__gemm_fp8_pick(m > 129 ? m : 129, n, k, ctx->num_sms);
    cfg.grouping = by_row ? 3 : 2;
    cfg.m_align = by_row ? 0 : (int)align;
    cfg.multicast = 1;
    if (align % cfg.block_m != 0) {
        cfg.block_m = 64;
        kiln__gemm_fp8_fit(&cfg);
    } else {
        int knob = ctx->opts.gemm_tall_tiles;
        int64_t rows = m, cols = n;
        if (knob == 1) { /* 2 and 3 force the height whatever the groups */
            rows = (m + g - 1) / g;
            cols = n * g;
        }
        if (kiln__gemm_fp8_try_tall(&cfg, rows, cols, k, knob, ctx->num_sms,
                                    by_row ? KILN__TALL_ROW_IDS : KILN__TALL_ANY))
            cfg.group_n = kiln__gemm_fp8_l2_group(&cfg, n, k, ctx->num_sms);
    }
    return cfg;
}

kiln_status kiln_gemm_fp8_contig(kiln_ctx *ctx, const kiln_gemm_fp8_contig_args *args,
                                 kiln_stream stream)
{
    int status = kiln__check_call(ctx, args, op);
    if (status == KILN_OK)
        status = check_args(ctx, args);
    if (status == KILN_OK)
        status = kiln__check_device(ctx, op);
    if (status != KILN_OK)
        return (kiln_status)status;
    int64_t m = args->a.shape[0], k = args->a.shape[1];
    int64_t g = args->b.shape[0], n = args->b.shape[1];
    if (m == 0)
        return kiln__ctx_ok(ctx);
    bool by_row = args->row_expert.data != NULL;
    kiln__gemm_config cfg = pick_contig(ctx, m, g, n, k, args->m_alignment, by_row);

    kiln__gemm_fp8_operands ops = {
        .sfb = args->sfb.data,
        .rows = (int)m,
        .group_rows = by_row ? args->row_expert.data : args->group_end.data,
        .num_groups = (int)g,
        .d = args->d.data,
        .ld_d = kiln__row_stride(&args->d),
    };
    if ((status = kiln__gemm_fp8_row_maps(ctx, &cfg, m, n, k, &args->a, &args->sfa, &args->d,
                                          &ops)) ||
        (status = kiln__tma_3d(ctx, &ops.tm_b, "b", CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, args->b.data,
                               (uint64_t)g, (uint64_t)n, (uint64_t)k, (uint64_t)k,
                               (uint64_t)(n * k), (uint32_t)cfg.block_n, 128,
                               CU_TENSOR_MAP_SWIZZLE_128B)))
        return (kiln_status)status;

    int64_t units = kiln__contig_units(m, g, n, cfg.block_m, cfg.block_n, by_row);
    if ((status = kiln__gemm_fp8_launch(ctx, &cfg, n, k, &ops, units, false, stream)) !=
        KILN_OK)
        return (kiln_status)status;
    return kiln__ctx_ok(ctx);
}

/* gemm_fp8_contig m=<rows> n=.. k=.. align=.. [g=..]: the kernels kiln_gemm_fp8_contig
 * launches for about m rows in all (M_total) in g groups (B's first dimension; default 1)
 * starting at multiples of align, with either layout (prefix sums, row ids). */
int kiln__gemm_fp8_contig_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs, int *n)
{
    int64_t rows, cols, depth, align, groups;
    int status;
    if ((status = kiln__gemm_fp8_spec_mnk(ctx, words, "gemm_fp8_contig", &rows, &cols, &depth)) ||
        (status = kiln__spec_word(ctx, words, "align", true, 0, &align)) ||
        (status = kiln__spec_word(ctx, words, "g", false, 1, &groups)))
        return status;
    if ((status = kiln__check_alignment(ctx, "gemm_fp8_contig", "align", align)) != KILN_OK)
        return status;
    if ((status = kiln__check_contig_groups(ctx, "gemm_fp8_contig", rows, groups)) != KILN_OK)
        return status;
    for (int by_row = 0; by_row < 2; by_row++) {
        kiln__gemm_config cfg = pick_contig(ctx, rows, groups, cols, depth, align, by_row);
        kiln__gemm_fp8_spec(&specs[by_row], ctx, cols, depth, &cfg);
    }
    *n = 2;
    return KILN_OK;
}
