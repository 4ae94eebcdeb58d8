/* Tile configuration of the FP8 GEMM kernel (src/templates/gemm_fp8.cuh): the heuristic
 * that picks one from (M, N, K, SMs) and the launch shape a configuration needs. */
#ifndef KILN_RUNTIME_GEMM_CONFIG_H
#define KILN_RUNTIME_GEMM_CONFIG_H

#include <stdint.h>

#include "internal.h"
#include "tma.h"

typedef struct kiln__gemm_config {
    int block_m, block_n, stages, group_n, k_split, multicast, cluster_k;
    int grouping; /* 0 dense, 1 masked groups, 2 contiguous (prefix sums), 3 (row ids) */
    int m_align;  /* contiguous groups: row alignment of each group's start */
    int overlap;  /* 1: two accumulator sets, promotion overlapped with the next wgmma */
    int out_f32;  /* 1: D f32 = C + A.B^T with 1x128 B scales (dense only) */
    int trace;    /* 1: the kernel records SM clocks per CTA into `c` (bench --trace) */
    int unroll;   /* copies of the K loop's body (0 or 1: none; overlapped loops unroll fully) */
    int multicast_a; /* 2 or 4: a cluster of n blocks sharing (multicasting) the A tile */
    int loads_only;  /* 1: no math, no output: the operands' movement alone (bench) */
    int math_only;   /* 1: no loads (slots handed over as they are): the math alone (bench) */
    int turns;       /* 1: warpgroups issue their wgmma in turn (plain loop, 128-256 rows) */
    int tail;        /* 1: the last round of tiles split along K (gemm_fp8_tail.cuh) */
    int no_b_early;  /* 1: a dense kernel without the b_ready path (kiln__gemm_fp8_no_b_early) */
} kiln__gemm_config;

/* The configuration for an M x N x K problem on num_sms SMs. */
kiln__gemm_config kiln__gemm_fp8_pick(int64_t m, int64_t n, int64_t k, int num_sms);

/* Which prefill tile heights a kernel may take, and whose costs the model uses. */
typedef enum kiln__tall_set {
    KILN__TALL_ANY,     /* 128, 192 or 256 rows (dense, contiguous prefix sums) */
    KILN__TALL_ROW_IDS, /* the same, with the row-id layout's dearer 192-row tile */
    KILN__TALL_NO_192,  /* 128 or 256 rows (masked groups take no 192-row tiles) */
} kiln__tall_set;

/* The split last round's flags in the workspace (the template's TAIL_FLAGS), three per split
 * tile. */
#define KILN__TAIL_FLAGS 1024
/* How many pieces along K a dense GEMM of `tiles` 192-row tiles on a persistent grid over
 * num_sms SMs splits each tile of its last round into: 3 where that round fills at most a
 * third of the CTAs, 2 where it fills at most half of them, 0 (no split) otherwise, or where
 * a piece would get no K block or the flags would not suffice (the template's make_sched). */
int kiln__gemm_fp8_tail_parts(int64_t tiles, int64_t k_blocks, int num_sms);
/* Whether configuration cfg has a split-last-round kernel (cfg->tail): dense BF16-output
 * 192 x 128 tiles without a cluster. */
bool kiln__gemm_fp8_tail_kernel(const kiln__gemm_config *cfg);
/* Whether a dense GEMM in configuration cfg with `units` work units takes that kernel when it
 * has a workspace: where its last round splits and K is long enough for that to pay. */
bool kiln__gemm_fp8_tail_fits(const kiln__gemm_config *cfg, int64_t units, int64_t k, int num_sms);
/* The workspace that serves every split on a device of num_sms SMs (gemm_fp8_tail.cuh). */
int64_t kiln__gemm_fp8_tail_ws_bytes(int num_sms);

/* The prefill tile height (128, 192 or 256 rows, 128 columns) that takes the least time for
 * M x N x K on num_sms SMs by the measured model: rounds of tiles times each height's tile
 * time. */
int kiln__gemm_fp8_tall_rows(int64_t m, int64_t n, int64_t k, int num_sms, kiln__tall_set set);
/* Make a 128 x 128 prefill configuration `rows` (192 or 256) x 128: no overlap, no
 * multicast; 192-row tiles issue in turn. */
void kiln__gemm_fp8_make_tall(kiln__gemm_config *cfg, int rows);
/* The KILN_GEMM_TALL_TILES decision for a 128 x 128 prefill configuration of M rows: knob
 * 0 never, 1 the height kiln__gemm_fp8_tall_rows picks among `set`, 2 always 192 rows, 3
 * always 256. True when cfg was made taller. */
bool kiln__gemm_fp8_try_tall(kiln__gemm_config *cfg, int64_t m, int64_t n, int64_t k, int knob,
                             int num_sms, kiln__tall_set set);

/* L2 groups (group_n) for a grouped GEMM's tall tiles of N x K on num_sms SMs: the widest
 * of 8, 16 and 32 column blocks whose round of tiles keeps its operands within half the L2
 * (each group then streams an expert's A once), else the one whose round touches the
 * fewest bytes. */
int kiln__gemm_fp8_l2_group(const kiln__gemm_config *cfg, int64_t n, int64_t k, int num_sms);

/* Set cfg->stages to as many as fit (dropping k_split if none do). */
void kiln__gemm_fp8_fit(kiln__gemm_config *cfg);

/* Dynamic shared memory the kernel lays out for cfg; mirrors the template's SMEM_BYTES. */
int kiln__gemm_fp8_smem(const kiln__gemm_config *cfg);
int kiln__gemm_fp8_threads(const kiln__gemm_config *cfg);
/* CTAs per cluster (1: no cluster). */
int kiln__gemm_fp8_cluster(const kiln__gemm_config *cfg);

/* Output slab width of the epilogue's TMA stores for block_n, and its swizzle. */
int kiln__gemm_fp8_slab(int block_n);
CUtensorMapSwizzle kiln__gemm_fp8_slab_swizzle(int slab);

/* The kernel's arguments (see the entry point of src/templates/gemm_fp8.cuh). */
typedef struct kiln__gemm_fp8_operands {
    CUtensorMap tm_a, tm_b, tm_sfa, tm_d;
    CUtensorMap tm_a_last;  /* A's last m block (kiln__gemm_fp8_a_box_rows); else tm_a again */
    const void *sfb;
    const void *c;          /* FP32 mode: C (NULL = zero) */
    int rows;               /* M, M_max of every group, or M_total */
    const void *group_rows; /* grouped: masked_m or the prefix sums; else NULL */
    int num_groups;
    void *d;                /* D again, for the row-by-row stores of partial tiles */
    long long ld_d;
    void *tail_ws;          /* dense: the split last round's workspace (NULL: no split) */
    int b_ready;            /* dense: ring slots of B that may load before the PDL wait */
} kiln__gemm_fp8_operands;

/* The row-major operands of the dense and contiguous GEMMs as 2-D tensor maps: A [m, k]
 * (row stride ld_a), its MN-major scales [k/128, m] (row stride ld_sfa), D [m, n] (BF16;
 * d NULL: the FP32 mode, which stores without TMA, gets A's map as a placeholder). */
int kiln__gemm_fp8_row_maps(kiln_ctx *ctx, const kiln__gemm_config *cfg, int64_t m, int64_t n,
                            int64_t k, const kiln_tensor *a, const kiln_tensor *sfa,
                            const kiln_tensor *d, kiln__gemm_fp8_operands *ops);

/* Get the kernel for (N, K, cfg) and launch it persistently over `units` work units
 * (even_rounds: kiln__launch_persistent's). Fails into ctx. */
int kiln__gemm_fp8_launch(kiln_ctx *ctx, const kiln__gemm_config *cfg, int64_t n, int64_t k,
                          const kiln__gemm_fp8_operands *ops, int64_t units, bool even_rounds,
                          kiln_stream stream);

/* The dense launch's configuration for an M x N x K GEMM on ctx's device (its SM count and
 * knobs): the heuristic's pick with the knobs' rules on top (gemm_fp8.c says which). */
kiln__gemm_config kiln__gemm_fp8_dense_config(const kiln_ctx *ctx, int64_t m, int64_t n,
                                              int64_t k, bool out_f32);

/* kiln_gemm_fp8 with the configuration `forced` (dense, BF16 output) instead of the
 * heuristic's (NULL: the heuristic's); for the benchmark's --sweep and --trace. Here
 * args->b_ready counts the ring slots of B loaded before the PDL wait (kiln_gemm_fp8 passes
 * KILN__GEMM_B_EARLY_SLOTS for nonzero), so the benchmark can time other counts. With
 * forced->trace, `trace` is a zeroed device buffer of KILN_GEMM_FP8_TRACE_SLOTS u64 per CTA
 * that the kernel fills with clock readings (the template's trace_slot); NULL otherwise. */
kiln_status kiln__gemm_fp8_with(kiln_ctx *ctx, const kiln_gemm_fp8_args *args,
                                const kiln__gemm_config *forced, void *trace, kiln_stream stream);

/* Whether the dense configuration cfg's kernel for a launch with this b_ready (slots of B
 * early, 0: none) is compiled without the early-B path (cfg->no_b_early): dense BF16-output
 * kernels launched with b_ready 0, where that path measured slower (the template's
 * B_EARLY_OK). Such a configuration has two kernels, one per answer. */
bool kiln__gemm_fp8_no_b_early(const kiln__gemm_config *cfg, int b_ready);

/* The configurations worth timing against each other for an M x N x K problem on num_sms
 * SMs, the heuristic's first (before the knobs: tall tiles and multicast come as
 * alternatives), then the pick with its overlap switched; at most max, returns how many.
 * Decode sizes (M <= 128): K split inside the CTA (k_split 1, 2, 4) and over a cluster (1,
 * 2, 4, 8 CTAs), each with the tile width that fills the SMs in one round and its registers,
 * for M > 64 two 64-row tiles (with B multicast between them), and clusters sharing A
 * (multicast_a 2, 4); prefill: B multicast, 192- and 256-row tiles with and without their
 * warpgroups issuing in turn (256 rows also sharing A in pairs of n blocks), the pick's
 * width with the plain K loop issuing in turn (with and without B multicast); and each
 * again with an unrolled K loop where its registers allow (not the taller tiles). */
int kiln__gemm_fp8_alternatives(int64_t m, int64_t n, int64_t k, int num_sms,
                                kiln__gemm_config *out, int max);
enum { KILN_GEMM_FP8_MAX_ALTERNATIVES = 48 }; /* room for every list it makes */

/* The same for the masked grouped GEMM of G groups of about expected_m rows (the dense
 * alternatives of its pick's problem, less multicast, 192-row tiles and unrolled overlapped
 * loops, which masked kernels do not have), and kiln_gemm_fp8_masked with one of them
 * forced (NULL: its pick); args->b_ready counts ring slots here, as in
 * kiln__gemm_fp8_with. */
int kiln__gemm_fp8_masked_alternatives(int64_t groups, int64_t expected_m, int64_t m_max,
                                       int64_t n, int64_t k, int num_sms, kiln__gemm_config *out,
                                       int max);
kiln_status kiln__gemm_fp8_masked_with(kiln_ctx *ctx, const kiln_gemm_fp8_masked_args *args,
                                       const kiln__gemm_config *forced, kiln_stream stream);

/* N and K as the kernel needs them: K a positive multiple of 128, N of 16 (K is one TMA
 * box deep per stage and the scales come in 128-blocks; N keeps rows 16-byte aligned). */
int kiln__gemm_fp8_check_nk(kiln_ctx *ctx, const char *op, int64_t n, int64_t k);

/* Whether cfg can keep two accumulator sets (no k_split, registers for 3 x block_n/2
 * accumulators plus ~40 more per math thread). */
bool kiln__gemm_fp8_can_overlap(const kiln__gemm_config *cfg);
/* Whether cfg's kernel takes the overlapped loop: asked for (cfg->overlap), allowed by
 * KILN_GEMM_OVERLAP (ctx NULL: the default, on) and possible (kiln__gemm_fp8_can_overlap).
 * What kiln__gemm_fp8_spec compiles. */
bool kiln__gemm_fp8_overlaps(const kiln__gemm_config *cfg, const kiln_ctx *ctx);
/* 128 x 128 prefill tiles (M > 128) ask to issue in turn, which takes effect where they run
 * the plain K loop (KILN_GEMM_OVERLAP=0; kiln__gemm_fp8_turns): in lockstep the plain loop
 * ran 16-19% slower at K >= 7168 (stop 12's --sweep). */
void kiln__gemm_fp8_prefill_turns(kiln__gemm_config *cfg, int64_t m);
/* Whether cfg's kernel has its row groups issue in turn: asked for (cfg->turns) and
 * possible (more than 64 rows, no k_split, the plain K loop under ctx's knobs). */
bool kiln__gemm_fp8_turns(const kiln__gemm_config *cfg, const kiln_ctx *ctx);
/* Decode's overlapped K loop unrolled (fully: the template then knows every step) where
 * each CTA of cfg walks 8 K blocks or fewer of K: clusters of 8 at K <= 8192, one CTA at
 * K <= 1024. The dense BF16-output GEMM applies it (a masked tile's K-block count is not a
 * constant, and the FP32 mode has no cluster), where its loop is overlapped. */
void kiln__gemm_fp8_unroll_short_loop(kiln__gemm_config *cfg, int64_t m, int64_t k);
/* 128-row decode tiles over 16-31 K blocks, one per SM, become tiles up to 8 columns wider
 * in clusters of 4 that share (multicast) their A tile, where that fits. The dense
 * BF16-output GEMM applies it (masked kernels take no A multicast; the FP32 mode no
 * cluster). */
void kiln__gemm_fp8_share_a(kiln__gemm_config *cfg, int64_t m, int64_t n, int64_t k, int num_sms);
/* M = 129-384: decode's tile width and K cluster for each of the two or three m blocks over
 * its share of the SMs, where that splits K over clusters. Returns whether it took them; the dense
 * BF16-output GEMM applies it before the prefill rules. */
bool kiln__gemm_fp8_m_blocks_decode(kiln__gemm_config *cfg, int64_t m, int64_t n, int64_t k,
                                    int num_sms);
/* Prefill (M > 128) in fewer 128-row tiles than there are SMs: each tile's K split over a
 * cluster of 2, 4 or 8 CTAs, the largest whose clusters are all resident at once (of 8 only
 * where they take at most half of the SMs; K >= 2048, split evenly); from K = 4096,
 * 128-column tiles just over the clusters of 2 that fit become 144 columns wide to fit them.
 * Returns whether it split; the dense BF16-output GEMM applies it. */
bool kiln__gemm_fp8_prefill_k_split(kiln__gemm_config *cfg, int64_t m, int64_t n, int64_t k,
                                    int num_sms);
/* Prefill in one round of unsplit 128 x 128 tiles that leaves SMs idle (K >= 2048): 64- or
 * 96-column tiles, the narrowest whose tiles still fit in one round. Returns whether it
 * narrowed them; the dense BF16-output GEMM applies it after the K split. */
bool kiln__gemm_fp8_prefill_narrow(kiln__gemm_config *cfg, int64_t m, int64_t n, int64_t k,
                                   int num_sms);
/* Copies of the K loop's body cfg asks for (unroll 0 and 1 both mean none). */
static inline int kiln__gemm_fp8_unroll(const kiln__gemm_config *cfg)
{
    return cfg->unroll > 1 ? cfg->unroll : 1;
}
/* CTAs sharing one A tile (multicast_a 0 and 1 both mean none). */
static inline int kiln__gemm_fp8_multicast_a(const kiln__gemm_config *cfg)
{
    return cfg->multicast_a > 1 ? cfg->multicast_a : 1;
}
/* Rows of A's TMA box for the last m block (tm_a_last; every other block loads the whole
 * tile, tm_a). A dense problem whose M ends inside a tile (decode batches below 64 or 128
 * rows, prefill's last m block), or masked groups whose M_max does, load only that tile's
 * rows there (kiln__tma_last_box_rows): the whole tile's zero-filled box made 1-row GEMMs
 * 1-29% slower (stop 21, seven shapes), 129-row ones up to twice as slow (stop 64). The
 * tile's rows past the box keep stale shared memory, which reaches only their own output
 * rows, never stored. With multicast_a each CTA loads 1/multicast_a of the tile's rows,
 * zero-filled past M; contiguous groups' tiles past a group's end load the next group's
 * rows. */
static inline int kiln__gemm_fp8_a_box_rows(const kiln__gemm_config *cfg, int64_t m)
{
    if (cfg->grouping <= 1 && kiln__gemm_fp8_multicast_a(cfg) == 1)
        return kiln__tma_last_box_rows(m, cfg->block_m);
    return cfg->block_m / kiln__gemm_fp8_multicast_a(cfg);
}
/* Trace mode's u64 readings per CTA, in the order of the template's trace_slot:
 * %globaltimer (ns) at entry and at the math's end, the others the SM's clock64. */
enum kiln__gemm_fp8_trace_slot {
    KILN_TR_START_NS, KILN_TR_START, KILN_TR_READY, KILN_TR_LOOP0_BEGIN, KILN_TR_LOOP0_END,
    KILN_TR_LAST_LOOP_END, KILN_TR_MATH_END, KILN_TR_LAST_LOAD, KILN_TR_END_NS,
    KILN_GEMM_FP8_TRACE_SLOTS
};

/* A prewarm line's m=, n= and k= (rows >= 1; N and K as kiln__gemm_fp8_check_nk wants).
 * Fails into ctx naming op. */
int kiln__gemm_fp8_spec_mnk(kiln_ctx *ctx, kiln__spec_words *words, const char *op, int64_t *m,
                            int64_t *n, int64_t *k);

/* The specialization for (N, K, cfg); ctx (may be NULL: the defaults) supplies the knobs
 * that shape kernels (KILN_GEMM_OVERLAP). */
void kiln__gemm_fp8_spec(kj_spec *spec, const kiln_ctx *ctx, int64_t n, int64_t k,
                         const kiln__gemm_config *cfg);

#endif
