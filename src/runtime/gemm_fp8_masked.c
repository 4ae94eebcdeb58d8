/* kiln_gemm_fp8_masked: the FP8 GEMM kernel over G masked groups (MoE decode). The group
 * sizes live in device memory and are read by the kernel, so nothing here depends on them:
 * one launch (or one captured graph) serves every routing outcome. */
#include "gemm_config.h"
#include "tma.h"

static const char op[] = "kiln_gemm_fp8_masked";

static int check_args(kiln_ctx *ctx, const kiln_gemm_fp8_masked_args *args)
{
    int status;
    if ((status = kiln__check_tensor(ctx, op, "a", &args->a, KILN_DTYPE_E4M3, 3, 16)) ||
        (status = kiln__check_tensor(ctx, op, "b", &args->b, KILN_DTYPE_E4M3, 3, 16)) ||
        (status = kiln__check_tensor(ctx, op, "sfa", &args->sfa, KILN_DTYPE_F32, 3, 16)) ||
        (status = kiln__check_tensor(ctx, op, "sfb", &args->sfb, KILN_DTYPE_F32, 3, 4)) ||
        (status = kiln__check_tensor(ctx, op, "d", &args->d, KILN_DTYPE_BF16, 3, 16)) ||
        (status = kiln__check_tensor(ctx, op, "masked_m", &args->masked_m, KILN_DTYPE_I32, 1, 4)))
        return status;
    int64_t g = args->a.shape[0], m_max = args->a.shape[1], k = args->a.shape[2];
    int64_t n = args->b.shape[1];
    if ((status = kiln__check_groups(ctx, op, g, m_max)) ||
        (status = kiln__gemm_fp8_check_nk(ctx, op, n, k)))
        return status;
    int64_t kb = k / 128, sf_stride = kiln_sf_mn_stride(m_max);
    if ((status = kiln__check_shape3(ctx, op, "a", &args->a, g, m_max, k, k)) ||
        (status = kiln__check_shape3(ctx, op, "b", &args->b, g, n, k, k)) ||
        (status = kiln__check_shape3(ctx, op, "sfa", &args->sfa, g, kb, m_max, sf_stride)) ||
        (status = kiln__check_shape3(ctx, op, "sfb", &args->sfb, g, (n + 127) / 128, kb, kb)) ||
        (status = kiln__check_shape3(ctx, op, "d", &args->d, g, m_max, n, n)))
        return status;
    return kiln__check_masked_m(ctx, op, &args->masked_m, g, args->expected_m);
}

/* The rows a masked configuration is picked for: the host hint, at most M_max (0: M_max). */
static int64_t planned_rows(int64_t expected_m, int64_t m_max)
{
    return expected_m > 0 && expected_m < m_max ? expected_m : m_max;
}

/* The rows per group that a masked kernel's early B loads (b_ready) guess each group holds:
 * the host hint, as for the configuration (the right guess for a CTA wherever the groups
 * before its tile hold that many row tiles: with the hint within one tile height, wherever
 * they are not empty); 0 (M_max) where it would not fit above b_ready's 8 bits of slots. */
static int64_t guess_rows(int64_t expected_m, int64_t m_max)
{
    int64_t rows = planned_rows(expected_m, m_max);
    return rows < (1 << 22) ? rows : 0;
}

/* 64-row masked tiles read their B in rounds of one tile per SM, G x ceil(N / width) tiles
 * (per 64 rows of a group): where 112 columns leave less of the last round idle than 128, so
 * that a CTA reads at least 5% fewer columns over its rounds, they take 112. Stop 56,
 * batches: 8 x 64 rows at (7168, 2048) (448 tiles of 128 columns on 132 SMs: 3.4 rounds;
 * 512 of 112: 3.9) 36.13 -> 34.68 us; where the rounds favour 128, 112 lost (8 x 64 at (4096,
 * 7168) 61.92 -> 76.34 us), and where they tie or nearly so it did not pay (32 x 20: 123.68
 * -> 127.14 at (7168, 2048), 235.79 -> 238.32 at (4096, 7168)); 128-row tiles lost with 112
 * columns even where the rounds favour them (4 x 256 at (7168, 2048) 35.30 -> 38.44). */
static void masked_round_width(kiln__gemm_config *cfg, int64_t groups, int64_t rows, int64_t n,
                               int num_sms)
{
    if (cfg->block_m != 64 || cfg->block_n != 128 || cfg->k_split != 1 || cfg->cluster_k > 1)
        return;
    int64_t row_tiles = groups * ((rows + 63) / 64), read[2];
    static const int widths[2] = {128, 112};
    for (int i = 0; i < 2; i++) {
        int64_t tiles = row_tiles * ((n + widths[i] - 1) / widths[i]);
        read[i] = (tiles + num_sms - 1) / num_sms * widths[i]; /* columns per CTA */
    }
    if (read[1] * 20 <= read[0] * 19) {
        cfg->block_n = 112;
        kiln__gemm_fp8_fit(cfg);
    }
}

/* The configuration for G groups of about expected_m rows: as a dense problem of that many
 * rows whose N is G times wider (the groups' tiles are independent work), in 256-row tiles
 * where the dense model picks them over 128-row ones (KILN_GEMM_TALL_TILES 1; 3: always) —
 * masked groups take no 192-row tiles. */
static kiln__gemm_config pick_masked(const kiln_ctx *ctx, int64_t groups, int64_t expected_m,
                                     int64_t m_max, int64_t n, int64_t k)
{
    int64_t rows = planned_rows(expected_m, m_max);
    kiln__gemm_config cfg = kiln__gemm_fp8_pick(rows, n * groups, k, ctx->num_sms);
    cfg.grouping = 1;
    masked_round_width(&cfg, groups, rows, n, ctx->num_sms);
    kiln__gemm_config tall = cfg;
    if (kiln__gemm_fp8_try_tall(&tall, rows, n * groups, k, ctx->opts.gemm_tall_tiles,
                                ctx->num_sms, KILN__TALL_NO_192) &&
        tall.block_m == 256)
        cfg = tall;
    return cfg;
}

int kiln__gemm_fp8_masked_alternatives(int64_t groups, int64_t expected_m, int64_t m_max,
                                       int64_t n, int64_t k, int num_sms, kiln__gemm_config *out,
                                       int max)
{
    int64_t rows = planned_rows(expected_m, m_max);
    int count = kiln__gemm_fp8_alternatives(rows, n * groups, k, num_sms, out, max);
    if (count > 0) /* the pick first, as pick_masked takes it below 256 rows */
        masked_round_width(&out[0], groups, rows, n, num_sms);
    int kept = 0;
    for (int i = 0; i < count; i++) {
        kiln__gemm_config c = out[i];
        /* Masked kernels take no multicast (of B or A) nor 192-row tiles, and their
         * overlapped loop does not unroll (the K-block count is not a constant there): such
         * a copy would be the same kernel. */
        if (c.multicast > 1 || c.multicast_a > 1 || c.block_m == 192 ||
            (c.unroll > 1 && kiln__gemm_fp8_overlaps(&c, NULL)))
            continue;
        c.grouping = 1;
        out[kept++] = c;
    }
    return kept;
}

kiln_status kiln_gemm_fp8_masked(kiln_ctx *ctx, const kiln_gemm_fp8_masked_args *args,
                                 kiln_stream stream)
{
    if (args == NULL || args->b_ready == 0)
        return kiln__gemm_fp8_masked_with(ctx, args, NULL, stream);
    kiln_gemm_fp8_masked_args early = *args;
    early.b_ready = KILN__GEMM_B_EARLY_SLOTS;
    return kiln__gemm_fp8_masked_with(ctx, &early, NULL, stream);
}

kiln_status kiln__gemm_fp8_masked_with(kiln_ctx *ctx, const kiln_gemm_fp8_masked_args *args,
                                       const kiln__gemm_config *forced, kiln_stream stream)
{
    int status = kiln__check_call(ctx, args, op);
    if (status == KILN_OK)
        status = check_args(ctx, args);
    if (status != KILN_OK)
        return (kiln_status)status;
    int64_t g = args->a.shape[0], m_max = args->a.shape[1], k = args->a.shape[2];
    int64_t n = args->b.shape[1], kb = k / 128, sf_stride = kiln_sf_mn_stride(m_max);
    if (forced != NULL && (forced->grouping != 1 || forced->multicast > 1 ||
                           forced->multicast_a > 1 || forced->trace || forced->loads_only ||
                           forced->math_only))
        return (kiln_status)kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                                            "%s: a forced configuration must be a masked one "
                                            "(grouping 1, no multicast, no trace, no "
                                            "loads-only or math-only mode)",
                                            op);
    if ((status = kiln__check_device(ctx, op)) != KILN_OK)
        return (kiln_status)status;
    kiln__gemm_config cfg = forced != NULL ? *forced
                                           : pick_masked(ctx, g, args->expected_m, m_max, n, k);

    kiln__gemm_fp8_operands ops = {
        .sfb = args->sfb.data,
        .rows = (int)m_max,
        .group_rows = args->masked_m.data,
        .num_groups = (int)g,
        .d = args->d.data,
        .ld_d = n,
        /* the slots, and in the bits above them the rows per group B's guess assumes */
        .b_ready = args->b_ready > 0
                       ? (args->b_ready & 0xff) | (int)(guess_rows(args->expected_m, m_max) << 8)
                       : 0,
    };
    int slab = kiln__gemm_fp8_slab(cfg.block_n);
    int last_box = kiln__gemm_fp8_a_box_rows(&cfg, m_max); /* M_max's last m block */
    if ((status = kiln__tma_3d(ctx, &ops.tm_a, "a", CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, args->a.data,
                               (uint64_t)g, (uint64_t)m_max, (uint64_t)k, (uint64_t)k,
                               (uint64_t)(m_max * k), (uint32_t)cfg.block_m, 128,
                               CU_TENSOR_MAP_SWIZZLE_128B)) ||
        (last_box != cfg.block_m &&
         (status = kiln__tma_3d(ctx, &ops.tm_a_last, "a", CU_TENSOR_MAP_DATA_TYPE_UINT8, 1,
                                args->a.data, (uint64_t)g, (uint64_t)m_max, (uint64_t)k,
                                (uint64_t)k, (uint64_t)(m_max * k), (uint32_t)last_box, 128,
                                CU_TENSOR_MAP_SWIZZLE_128B))) ||
        (status = kiln__tma_3d(ctx, &ops.tm_b, "b", CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, args->b.data,
                               (uint64_t)g, (uint64_t)n, (uint64_t)k, (uint64_t)k,
                               (uint64_t)(n * k), (uint32_t)cfg.block_n, 128,
                               CU_TENSOR_MAP_SWIZZLE_128B)) ||
        (status = kiln__tma_3d(ctx, &ops.tm_sfa, "sfa", CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4,
                               args->sfa.data, (uint64_t)g, (uint64_t)kb, (uint64_t)sf_stride,
                               (uint64_t)sf_stride, (uint64_t)(kb * sf_stride), 1,
                               (uint32_t)cfg.block_m, CU_TENSOR_MAP_SWIZZLE_NONE)) ||
        (status = kiln__tma_3d(ctx, &ops.tm_d, "d", CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, args->d.data,
                               (uint64_t)g, (uint64_t)m_max, (uint64_t)n, (uint64_t)n,
                               (uint64_t)(m_max * n), 64, (uint32_t)slab,
                               kiln__gemm_fp8_slab_swizzle(slab))))
        return (kiln_status)status;
    if (last_box == cfg.block_m)
        ops.tm_a_last = ops.tm_a;

    /* At most every group full; the kernel stops at the units the counts give (a bound, so
     * every SM takes part: no even rounds). */
    int64_t units = g * ((m_max + cfg.block_m - 1) / cfg.block_m) * ((n + cfg.block_n - 1) / cfg.block_n);
    if ((status = kiln__gemm_fp8_launch(ctx, &cfg, n, k, &ops, units, false, stream)) !=
        KILN_OK)
        return (kiln_status)status;
    return kiln__ctx_ok(ctx);
}

int kiln__gemm_fp8_masked_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs, int *n)
{
    int64_t groups, expected, cols, depth;
    int status;
    if ((status = kiln__spec_word(ctx, words, "g", true, 0, &groups)) ||
        (status = kiln__gemm_fp8_spec_mnk(ctx, words, "gemm_fp8_masked", &expected, &cols, &depth)))
        return status;
    if ((status = kiln__check_groups(ctx, "gemm_fp8_masked", groups, expected)) != KILN_OK)
        return status;
    kiln__gemm_config cfg = pick_masked(ctx, groups, expected, expected, cols, depth);
    kiln__gemm_fp8_spec(&specs[0], ctx, cols, depth, &cfg);
    *n = 1;
    return KILN_OK;
}
