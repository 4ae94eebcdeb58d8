/* kiln_gemm_fp8: argument checks, configuration, TMA descriptors and launch of the FP8
 * GEMM with fine-grained scaling (src/templates/gemm_fp8.cuh). */
#include "gemm_config.h"
#include "tma.h"

static const char op[] = "kiln_gemm_fp8";

/* Shapes, dtypes, alignment: everything the kernel and TMA rely on. */
static int check_args(kiln_ctx *ctx, const kiln_gemm_fp8_args *args)
{
    int status;
    if ((status = kiln__check_tensor(ctx, op, "a", &args->a, KILN_DTYPE_E4M3, 2, 16)) ||
        (status = kiln__check_tensor(ctx, op, "b", &args->b, KILN_DTYPE_E4M3, 2, 16)) ||
        (status = kiln__check_tensor(ctx, op, "sfa", &args->sfa, KILN_DTYPE_F32, 2, 16)) ||
        (status = kiln__check_tensor(ctx, op, "sfb", &args->sfb, KILN_DTYPE_F32, 2, 4)))
        return status;
    bool f32 = args->d.dtype == KILN_DTYPE_F32; /* the FP32 mode: D = C + A·B^T */
    if (!f32 && args->c.data != NULL)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: c is only read in the FP32-output mode (d F32); d is BF16", op);
    if ((status = kiln__check_tensor(ctx, op, "d", &args->d, f32 ? KILN_DTYPE_F32 : KILN_DTYPE_BF16,
                                     2, 16)))
        return status;
    int64_t m = args->a.shape[0], k = args->a.shape[1], n = args->b.shape[0];
    if ((status = kiln__gemm_fp8_check_nk(ctx, op, n, k)) != KILN_OK)
        return status;
    if ((status = kiln__check_rows(ctx, op, m, 0)) != KILN_OK)
        return status;
    if (args->b.shape[1] != k)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG, "%s: b is [%lld, %lld], expected [N, K = %lld]",
                               op, (long long)n, (long long)args->b.shape[1], (long long)k);
    if (args->d.shape[0] != m || args->d.shape[1] != n)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: d is [%lld, %lld], expected [M = %lld, N = %lld]", op,
                               (long long)args->d.shape[0], (long long)args->d.shape[1],
                               (long long)m, (long long)n);
    if (f32 && args->c.data != NULL) {
        if ((status = kiln__check_tensor(ctx, op, "c", &args->c, KILN_DTYPE_F32, 2, 8)))
            return status;
        if (args->c.shape[0] != m || args->c.shape[1] != n ||
            kiln__row_stride(&args->c) != kiln__row_stride(&args->d))
            return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                                   "%s: c must be F32 [M = %lld, N = %lld] with d's row stride (%lld)",
                                   op, (long long)m, (long long)n,
                                   (long long)kiln__row_stride(&args->d));
    }
    int64_t ws_bytes = kiln_gemm_fp8_workspace_bytes(ctx);
    if (args->workspace != NULL &&
        (args->workspace_bytes < ws_bytes || (uintptr_t)args->workspace % 16 != 0))
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: workspace must be 16-byte aligned and hold at least "
                               "kiln_gemm_fp8_workspace_bytes() = %lld bytes; got %lld bytes at %p",
                               op, (long long)ws_bytes, (long long)args->workspace_bytes,
                               args->workspace);
    const kiln_tensor *sfa = &args->sfa, *sfb = &args->sfb;
    int64_t sfa_stride = kiln__row_stride(sfa);
    if (sfa->shape[0] != k / 128 || sfa->shape[1] != m || sfa_stride < m || sfa_stride % 4 != 0)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: sfa must be F32 [K/128 = %lld, M = %lld] MN-major with a row "
                               "stride >= M and a multiple of 4 (kiln_sf_mn_stride(M) = %lld); got "
                               "[%lld, %lld] stride %lld",
                               op, (long long)(k / 128), (long long)m, (long long)kiln_sf_mn_stride(m),
                               (long long)sfa->shape[0], (long long)sfa->shape[1],
                               (long long)sfa_stride);
    if (f32 && (sfb->shape[0] != k / 128 || sfb->shape[1] != n ||
                kiln__row_stride(sfb) != kiln_sf_mn_stride(n)))
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: in the FP32 mode sfb must be F32 [K/128 = %lld, N = %lld] MN-major "
                               "with row stride kiln_sf_mn_stride(N) = %lld (1x128 scales)",
                               op, (long long)(k / 128), (long long)n,
                               (long long)kiln_sf_mn_stride(n));
    if (!f32 && (sfb->shape[0] != (n + 127) / 128 || sfb->shape[1] != k / 128 ||
                 kiln__row_stride(sfb) != k / 128))
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: sfb must be a contiguous F32 [ceil(N/128) = %lld, K/128 = %lld] "
                               "tensor (128x128 block scales)",
                               op, (long long)((n + 127) / 128), (long long)(k / 128));
    return KILN_OK;
}

/* The epilogue stores column slabs of the output tile (the template's D_SLAB). */
int kiln__gemm_fp8_slab(int block_n)
{
    return block_n % 64 == 0 ? 64 : block_n % 32 == 0 ? 32 : block_n % 16 == 0 ? 16 : block_n;
}

CUtensorMapSwizzle kiln__gemm_fp8_slab_swizzle(int slab)
{
    return slab * 2 == 128  ? CU_TENSOR_MAP_SWIZZLE_128B
           : slab * 2 == 64 ? CU_TENSOR_MAP_SWIZZLE_64B
           : slab * 2 == 32 ? CU_TENSOR_MAP_SWIZZLE_32B
                            : CU_TENSOR_MAP_SWIZZLE_NONE;
}

int kiln__gemm_fp8_row_maps(kiln_ctx *ctx, const kiln__gemm_config *cfg, int64_t m, int64_t n,
                            int64_t k, const kiln_tensor *a, const kiln_tensor *sfa,
                            const kiln_tensor *d, kiln__gemm_fp8_operands *ops)
{
    int slab = kiln__gemm_fp8_slab(cfg->block_n), status;
    int box = cfg->block_m / kiln__gemm_fp8_multicast_a(cfg);
    int last_box = kiln__gemm_fp8_a_box_rows(cfg, m);
    if ((status = kiln__tma_2d(ctx, &ops->tm_a, "a", CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, a->data,
                               (uint64_t)m, (uint64_t)k, (uint64_t)kiln__row_stride(a),
                               (uint32_t)box, 128, CU_TENSOR_MAP_SWIZZLE_128B)) ||
        (last_box != box &&
         (status = kiln__tma_2d(ctx, &ops->tm_a_last, "a", CU_TENSOR_MAP_DATA_TYPE_UINT8, 1,
                                a->data, (uint64_t)m, (uint64_t)k, (uint64_t)kiln__row_stride(a),
                                (uint32_t)last_box, 128, CU_TENSOR_MAP_SWIZZLE_128B))) ||
        (status = kiln__tma_2d(ctx, &ops->tm_sfa, "sfa", CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4,
                               sfa->data, (uint64_t)(k / 128), (uint64_t)kiln_sf_mn_stride(m),
                               (uint64_t)kiln__row_stride(sfa), 1, (uint32_t)cfg->block_m,
                               CU_TENSOR_MAP_SWIZZLE_NONE)))
        return status;
    if (last_box == box)
        ops->tm_a_last = ops->tm_a;
    if (d == NULL) {
        ops->tm_d = ops->tm_a;
        return KILN_OK;
    }
    return kiln__tma_2d(ctx, &ops->tm_d, "d", CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, d->data,
                        (uint64_t)m, (uint64_t)n, (uint64_t)kiln__row_stride(d), 64,
                        (uint32_t)slab, kiln__gemm_fp8_slab_swizzle(slab));
}

int kiln__gemm_fp8_launch(kiln_ctx *ctx, const kiln__gemm_config *cfg, int64_t n, int64_t k,
                          const kiln__gemm_fp8_operands *ops, int64_t units, bool even_rounds,
                          kiln_stream stream)
{
    void *params[] = {(void *)&ops->tm_a, (void *)&ops->tm_a_last, (void *)&ops->tm_b,
                      (void *)&ops->tm_sfa, (void *)&ops->tm_d, (void *)&ops->sfb,
                      (void *)&ops->c, (void *)&ops->rows, (void *)&ops->group_rows,
                      (void *)&ops->num_groups, (void *)&ops->d, (void *)&ops->ld_d,
                      (void *)&ops->tail_ws, (void *)&ops->b_ready};
    kj_spec spec;
    kiln__gemm_fp8_spec(&spec, ctx, n, k, cfg);
    return kiln__launch_persistent(ctx, &spec, (unsigned)kiln__gemm_fp8_threads(cfg),
                                   (unsigned)kiln__gemm_fp8_smem(cfg),
                                   (unsigned)kiln__gemm_fp8_cluster(cfg), units, even_rounds,
                                   params, stream);
}

/* Work units of a dense GEMM: tiles, or pairs of m blocks (multicast), or groups of n blocks
 * (multicast_a) sharing one operand tile. */
static int64_t dense_units(const kiln__gemm_config *cfg, int64_t m, int64_t n)
{
    int64_t m_blocks = (m + cfg->block_m - 1) / cfg->block_m;
    int64_t n_blocks = (n + cfg->block_n - 1) / cfg->block_n;
    int multicast = cfg->multicast > 1 ? cfg->multicast : 1, mca = kiln__gemm_fp8_multicast_a(cfg);
    return (m_blocks + multicast - 1) / multicast * ((n_blocks + mca - 1) / mca);
}

/* The heuristic's pick and the knobs on top: KILN_GEMM_TALL_TILES makes the 128 x 128
 * prefill tiles 192 or 256 rows tall where the rounds-of-tiles model says that takes less
 * time (1, the default) or always (2: 192, 3: 256); KILN_GEMM_MULTICAST pairs the prefill
 * tiles of two m blocks in a 2-CTA cluster that shares (multicasts) their B tile; with
 * KILN_GEMM_OVERLAP=0 the 128 x 128 prefill tiles issue in turn
 * (kiln__gemm_fp8_prefill_turns); KILN_GEMM_PREFILL_K_SPLIT (on by default) splits the K of
 * prefill with fewer tiles than SMs over clusters (kiln__gemm_fp8_prefill_k_split), or else
 * narrows a round's tiles to fill the SMs (kiln__gemm_fp8_prefill_narrow). */
kiln__gemm_config kiln__gemm_fp8_dense_config(const kiln_ctx *ctx, int64_t m, int64_t n,
                                              int64_t k, bool out_f32)
{
    kiln__gemm_config cfg = kiln__gemm_fp8_pick(m, n, k, ctx->num_sms);
    if (out_f32) {
        /* The FP32 mode is the plain kernel: no K split of either kind, no cluster. */
        cfg.out_f32 = 1;
        cfg.k_split = 1;
        cfg.cluster_k = 0;
        if (cfg.block_n > 128)
            cfg.block_n = 128;
        kiln__gemm_fp8_fit(&cfg);
    } else if (ctx->opts.gemm_prefill_k_split &&
               kiln__gemm_fp8_m_blocks_decode(&cfg, m, n, k, ctx->num_sms)) {
        /* 129-384 rows: decode's tiles per m block, K over clusters */
    } else if (kiln__gemm_fp8_try_tall(&cfg, m, n, k, ctx->opts.gemm_tall_tiles, ctx->num_sms,
                                       KILN__TALL_ANY)) {
        /* Taller tiles: fewer rounds of tiles, less B traffic per FLOP. A round of 128
         * 256-row tiles in L2 groups of 16 column blocks covers 8 x 16 blocks, the fewest
         * operand bytes a round can take (16 x 8 with groups of 8): at 4096x7168x16384 DRAM
         * reads fell from 602 to 495 MB, the clock rose ~10 MHz and the time 0.7% (stop 35,
         * profiler, two rounds: 699.3 / 696.8 -> 693.2 / 692.6 us); at K = 7168 and 2048,
         * whose operands mostly stay in L2, within 0.2%. Not kiln__gemm_fp8_l2_group, the
         * contiguous GEMM's rule: on dense shapes it was mixed (stop 36, 4096x2112x7168 0.6%
         * faster, 4096x24576x1536 and 4096x32768x512 0.4-0.5% slower). */
        if (cfg.block_m == 256)
            cfg.group_n = 16;
    } else if (ctx->opts.gemm_prefill_k_split &&
               kiln__gemm_fp8_prefill_k_split(&cfg, m, n, k, ctx->num_sms)) {
        /* fewer tiles than SMs: each tile's K over a cluster of CTAs, no multicast */
    } else if (ctx->opts.gemm_prefill_k_split &&
               kiln__gemm_fp8_prefill_narrow(&cfg, m, n, k, ctx->num_sms)) {
        /* one round with SMs idle: narrower tiles, no multicast */
    } else if (ctx->opts.gemm_multicast && m > 128 && cfg.k_split == 1 && cfg.cluster_k <= 1) {
        cfg.multicast = 2;
    }
    if (!out_f32) {
        kiln__gemm_fp8_share_a(&cfg, m, n, k, ctx->num_sms);
        /* An overlapped decode loop (not with KILN_GEMM_OVERLAP=0) unrolls where it is short. */
        if (kiln__gemm_fp8_overlaps(&cfg, ctx))
            kiln__gemm_fp8_unroll_short_loop(&cfg, m, k);
        kiln__gemm_fp8_prefill_turns(&cfg, m);
    }
    return cfg;
}

kiln_status kiln_gemm_fp8(kiln_ctx *ctx, const kiln_gemm_fp8_args *args, kiln_stream stream)
{
    if (args == NULL || args->b_ready == 0)
        return kiln__gemm_fp8_with(ctx, args, NULL, NULL, stream);
    kiln_gemm_fp8_args early = *args;
    early.b_ready = KILN__GEMM_B_EARLY_SLOTS;
    return kiln__gemm_fp8_with(ctx, &early, NULL, NULL, stream);
}

kiln_status kiln__gemm_fp8_with(kiln_ctx *ctx, const kiln_gemm_fp8_args *args,
                                const kiln__gemm_config *forced, void *trace, kiln_stream stream)
{
    int status = kiln__check_call(ctx, args, op);
    if (status == KILN_OK)
        status = check_args(ctx, args);
    if (status != KILN_OK)
        return (kiln_status)status;
    int64_t m = args->a.shape[0], k = args->a.shape[1], n = args->b.shape[0];
    bool f32 = args->d.dtype == KILN_DTYPE_F32;
    if (forced != NULL && (f32 || forced->out_f32 || forced->grouping != 0))
        return (kiln_status)kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                                            "%s: a forced configuration is for the dense BF16-output "
                                            "GEMM only", op);
    if ((forced != NULL && forced->trace) != (trace != NULL))
        return (kiln_status)kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                                            "%s: a trace buffer goes with a forced trace "
                                            "configuration, and only with one", op);
    if (forced != NULL && forced->tail && !kiln__gemm_fp8_tail_kernel(forced))
        return (kiln_status)kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                                            "%s: a forced tail configuration must be a dense "
                                            "192 x 128 one without a cluster", op);
    if ((status = kiln__check_device(ctx, op)) != KILN_OK)
        return (kiln_status)status;
    if (m == 0)
        return kiln__ctx_ok(ctx);

    bool workspace = args->workspace != NULL && !f32;
    kiln__gemm_config cfg =
        forced != NULL ? *forced : kiln__gemm_fp8_dense_config(ctx, m, n, k, f32);
    kiln__gemm_fp8_operands ops = {
        .sfb = args->sfb.data,
        .c = f32 ? args->c.data : trace, /* trace mode: the kernel's clock readings */
        .rows = (int)m,
        .group_rows = NULL,
        .num_groups = 1,
        .d = args->d.data,
        .ld_d = kiln__row_stride(&args->d),
        .b_ready = args->b_ready > 0 && !f32 ? args->b_ready : 0,
    };
    if ((status = kiln__gemm_fp8_row_maps(ctx, &cfg, m, n, k, &args->a, &args->sfa,
                                          f32 ? NULL : &args->d, &ops)) ||
        (status = kiln__tma_2d(ctx, &ops.tm_b, "b", CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, args->b.data,
                               (uint64_t)n, (uint64_t)k, (uint64_t)kiln__row_stride(&args->b),
                               /* multicast: each CTA of the pair loads half of B's tile */
                               (uint32_t)(cfg.block_n / (cfg.multicast > 1 ? cfg.multicast : 1)),
                               128, CU_TENSOR_MAP_SWIZZLE_128B)))
        return (kiln_status)status;

    cfg.no_b_early = kiln__gemm_fp8_no_b_early(&cfg, ops.b_ready);
    int64_t units = dense_units(&cfg, m, n);
    /* The split last round's kernel where it pays (or where a forced configuration, the
     * tests', asks for it) */
    if (workspace && (cfg.tail || kiln__gemm_fp8_tail_fits(&cfg, units, k, ctx->num_sms))) {
        cfg.tail = 1;
        ops.tail_ws = args->workspace;
    }
    /* Prefill tiles spread evenly over the SMs; not decode's (M <= 128: bound by reading B,
     * every SM's loads count), nor the split last round's (it fills every CTA), nor yet the
     * FP32 mode's (neither timed nor run on the GPU with it). */
    bool even = m > 128 && !cfg.tail && !f32;
    if ((status = kiln__gemm_fp8_launch(ctx, &cfg, n, k, &ops, units, even, stream)) != KILN_OK)
        return (kiln_status)status;
    return kiln__ctx_ok(ctx);
}

int kiln__gemm_fp8_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs, int *n)
{
    int64_t m, cols, depth, f32;
    int status;
    if ((status = kiln__gemm_fp8_spec_mnk(ctx, words, "gemm_fp8", &m, &cols, &depth)) ||
        (status = kiln__spec_word(ctx, words, "f32", false, 0, &f32)))
        return status;
    kiln__gemm_config cfg = kiln__gemm_fp8_dense_config(ctx, m, cols, depth, f32 != 0);
    /* With a workspace, M may take the split last round's kernel too (192-row tiles). */
    bool tail = kiln__gemm_fp8_tail_fits(&cfg, dense_units(&cfg, m, cols), depth, ctx->num_sms);
    *n = 0;
    for (int split = 0; split <= (int)tail; split++) {
        cfg.tail = split;
        /* Launches with and without b_ready take kernels of their own (the FP32 mode one). */
        for (int b_ready = 0; b_ready <= 1; b_ready++) {
            cfg.no_b_early = kiln__gemm_fp8_no_b_early(&cfg, b_ready);
            if (b_ready == 0 || !cfg.no_b_early)
                kiln__gemm_fp8_spec(&specs[(*n)++], ctx, cols, depth, &cfg);
        }
    }
    return KILN_OK;
}

int64_t kiln_gemm_fp8_workspace_bytes(const kiln_ctx *ctx)
{
    return kiln__gemm_fp8_tail_ws_bytes(ctx != NULL ? ctx->num_sms : 0);
}
