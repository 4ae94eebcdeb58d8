/* The BF16 GEMM kernel (src/templates/gemm_bf16.cuh) from the host: its tile
 * configuration, the heuristic that picks one, and the launch shared by the dense, masked
 * and contiguous operators. */
#ifndef KILN_RUNTIME_GEMM_BF16_H
#define KILN_RUNTIME_GEMM_BF16_H

#include <stdint.h>

#include "internal.h"

typedef struct kiln__gemm_bf16_config {
    int block_m, block_n, stages, group_n, cluster_k;
    int layout;   /* kiln_gemm_layout: bit 0 A M-major, bit 1 B N-major */
    int out_f32;  /* D is F32 */
    int grouping; /* 0 dense, 1 masked groups, 2 contiguous groups */
    int m_align;  /* contiguous groups: row alignment of each group's start */
    int no_b_early; /* 1: a dense kernel without the b_ready path (kiln__gemm_bf16_no_b_early) */
    int split_issue; /* 1: two producer warps issue the loads, one A's, one B's
                      * (kiln__gemm_bf16_prefill_split_issue) */
    int defer_store; /* 1: dense BF16-output prefill tiles, each stored during the next one's
                      * first K block (the template's DEFER) */
} kiln__gemm_bf16_config;

/* The configuration for an M x N x K problem of `layout` on num_sms SMs. */
kiln__gemm_bf16_config kiln__gemm_bf16_pick(int64_t m, int64_t n, int64_t k, int layout,
                                            int out_f32, int num_sms);
/* The same for the grouped kernels (grouping 1 masked, 2 contiguous; 0 dense): their tiles
 * store at once, and the prefill pick prices them so. */
kiln__gemm_bf16_config kiln__gemm_bf16_pick_grouped(int64_t m, int64_t n, int64_t k, int layout,
                                                    int out_f32, int grouping, int num_sms);
/* Dense prefill (M > 128) with no more 128-row tiles than the clusters of 8, 4 or 2 CTAs that
 * fit at once (of 8 only where they take at most half of the SMs): cfg with each tile's K
 * split over the largest such cluster that divides K's blocks evenly (K >= 4096), and true;
 * else cfg as it was and false. */
bool kiln__gemm_bf16_prefill_k_split(kiln__gemm_bf16_config *cfg, int64_t m, int64_t n,
                                     int64_t k, int num_sms);
/* M = 129-384: decode's tile width and K cluster for each of two or three m blocks over its
 * share of the SMs, where that splits K over clusters (A K-major in two m blocks: unsplit
 * 128-row tiles of 48-128 columns instead, where as many CTAs fit): cfg so and true; else cfg
 * as it was and false. */
bool kiln__gemm_bf16_m_blocks_decode(kiln__gemm_bf16_config *cfg, int64_t m, int64_t n,
                                     int64_t k, int num_sms);
/* Dense NT or TT prefill (M > 384, K 2048-8192, BF16 output) where one round of 64 x 96 tiles fills
 * more than half of the SMs: those tiles with their A and B loads issued by two producer warps
 * (cfg->split_issue). True where it took them. */
bool kiln__gemm_bf16_prefill_split_issue(kiln__gemm_bf16_config *cfg, int64_t m, int64_t n,
                                         int64_t k, int num_sms);
/* Prefill in one round of 128 x 128 tiles with SMs idle (K >= 2048, no K split): in two m
 * blocks (NT, BF16 output) the width between 96 and 128 that fills the SMs; else 96- or
 * 64-column tiles where they keep one round and a fit of MMA and memory time says they are
 * cheaper (the cheaper of the two): cfg so and true; else cfg as it was and false. */
bool kiln__gemm_bf16_prefill_narrow(kiln__gemm_bf16_config *cfg, int64_t m, int64_t n,
                                    int64_t k, int num_sms);
/* A dense launch's configuration: the pick, then with k_split (KILN_GEMM_PREFILL_K_SPLIT)
 * decode's tiles per m block, or else split-issue tiles, or else the prefill K split, or else
 * narrower tiles. */
kiln__gemm_bf16_config kiln__gemm_bf16_pick_dense(int64_t m, int64_t n, int64_t k, int layout,
                                                  int out_f32, int num_sms, bool k_split);
/* Set cfg->stages to as many as fit (0 when none do). */
void kiln__gemm_bf16_fit(kiln__gemm_bf16_config *cfg);
/* Dynamic shared memory the kernel lays out for cfg; mirrors the template's SMEM_BYTES. */
int kiln__gemm_bf16_smem(const kiln__gemm_bf16_config *cfg);
int kiln__gemm_bf16_threads(const kiln__gemm_bf16_config *cfg);
/* The steps tile widths come in for `layout`: 64 columns for an N-major B (its 64-column TMA
 * boxes), 8 otherwise. */
int kiln__gemm_bf16_width_step(int layout);
/* Column slab of the epilogue's TMA stores (elements) for block_n and the element size. */
int kiln__gemm_bf16_slab(int block_n, int elem_bytes);
/* Whether the dense prefill configuration cfg stores each tile during the next tile's first K
 * block (cfg->defer_store): BF16 output in 64-column slabs. Not for decode tiles, whose CTAs
 * mostly hold one tile (the packing only added: 128x7168x2048 11.26 -> 11.42 us, stop 50),
 * nor grouped ones (cfg->grouping != 0). */
bool kiln__gemm_bf16_defers_store(const kiln__gemm_bf16_config *cfg);
/* Whether the configuration cfg's kernel for a launch with this b_ready (ring slots of B
 * early, 0: none) is compiled without the early-B path (cfg->no_b_early): dense launches
 * with b_ready 0, where that path measured slower (the template's B_EARLY_OK). A dense
 * configuration has two kernels, one per answer. */
bool kiln__gemm_bf16_no_b_early(const kiln__gemm_bf16_config *cfg, int b_ready);
/* The specialization for (N, K, cfg). */
void kiln__gemm_bf16_spec(kj_spec *spec, int64_t n, int64_t k, const kiln__gemm_bf16_config *cfg);

/* The kernel's arguments (see the entry point of src/templates/gemm_bf16.cuh). */
typedef struct kiln__gemm_bf16_operands {
    CUtensorMap tm_a, tm_b, tm_d;
    CUtensorMap tm_a_last;  /* K-major A's last m block (dense, masked); else tm_a again */
    int rows;               /* M, M_max of every group, or M_total */
    const void *group_rows; /* grouped: masked_m or the prefix sums; else NULL */
    int num_groups;
    void *d;                /* D again, for the row-by-row stores of partial tiles */
    long long ld_d;
    int b_ready;            /* dense: ring slots of B that may load before the PDL wait */
} kiln__gemm_bf16_operands;

/* N and K as the kernel needs them: positive multiples of 8 (16-byte rows). */
int kiln__gemm_bf16_check_nk(kiln_ctx *ctx, const char *op, int64_t n, int64_t k);
/* d's dtype: BF16 or F32 (sets *out_f32), else fails into ctx. */
int kiln__gemm_bf16_out_dtype(kiln_ctx *ctx, const char *op, const kiln_tensor *d, int *out_f32);
/* D [rows, n] (row stride ld_d) as the epilogue's 2-D store map. */
int kiln__gemm_bf16_d_map(kiln_ctx *ctx, const kiln__gemm_bf16_config *cfg, CUtensorMap *map,
                          void *d, int64_t rows, int64_t n, int64_t ld_d);
/* Get the kernel for (N, K, cfg) and launch it persistently over `units` work units
 * (even_rounds: kiln__launch_persistent's). Fails into ctx. */
int kiln__gemm_bf16_launch(kiln_ctx *ctx, const kiln__gemm_bf16_config *cfg, int64_t n,
                           int64_t k, const kiln__gemm_bf16_operands *ops, int64_t units,
                           bool even_rounds, kiln_stream stream);

/* kiln_gemm_bf16 with the given configuration (layout and output dtype come from args;
 * stages 0 = as many as fit) instead of the heuristic's (NULL: the heuristic's); for
 * benchmarks. Here args->b_ready counts the ring slots of B loaded before the PDL wait
 * (kiln_gemm_bf16 passes KILN__GEMM_B_EARLY_SLOTS for nonzero). */
kiln_status kiln__gemm_bf16_with(kiln_ctx *ctx, const kiln_gemm_bf16_args *args,
                                 const kiln__gemm_bf16_config *cfg, kiln_stream stream);

/* Spec-line operators (kiln_prewarm). */
int kiln__gemm_bf16_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs, int *n);
int kiln__gemm_bf16_masked_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs,
                                   int *n);
int kiln__gemm_bf16_contig_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs,
                                   int *n);

#endif
