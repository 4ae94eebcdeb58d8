/* The runtime's shared internals: the context, the in-process kernel table, launch. */
#ifndef KILN_RUNTIME_INTERNAL_H
#define KILN_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "../../cache/cache.h"
#include "../base/base.h"
#include "../jit/jit.h"
#include "driver.h"
#include "kiln/kiln.h"

/* One loaded kernel. Entries are never freed before the context, so a pointer returned
 * by kiln__kernel_get stays valid for the context's lifetime. */
typedef struct kiln__kernel {
    kj_spec spec;
    uint64_t hash;
    CUmodule module;
    CUfunction fn;
    bool pdl; /* the template waits on the grid: launch with programmatic serialization */
    int registers, spills, static_smem;
    /* Clusters that fit on the device at once, for persistent cluster launches; 0 until
     * an operator asks (cuOccupancyMaxActiveClusters), then fixed. */
    atomic_int max_active_clusters;
    struct kiln__kernel *_Atomic next;
} kiln__kernel;

#define KILN__TABLE_BUCKETS 1024

struct kiln_ctx {
    /* Options with strings owned by the context. */
    kiln_options opts;
    char *cache_path, *arch, *dump_dir;

    /* Device (has_device == false: compile-only). */
    const kiln__driver *drv;
    bool has_device;
    CUdevice device;
    CUcontext cu_ctx;
    char device_name[128];
    int num_sms, max_smem_optin, driver_version;

    kc_store *cache;

    /* Kernel table: lock-free lookup; inserts under load_lock, published with release. */
    kiln__kernel *_Atomic buckets[KILN__TABLE_BUCKETS];
    pthread_mutex_t load_lock;

    /* First error since the last successful call. */
    pthread_mutex_t err_lock;
    atomic_bool has_error;
    kiln__err err;
};

/* Record err as the context's error (if it holds none yet) and return err->status. */
int kiln__ctx_fail(kiln_ctx *ctx, const kiln__err *err);
/* Shorthand: format a message straight into the context. */
int kiln__ctx_failf(kiln_ctx *ctx, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A successful call forgets the previous error (cheap when there is none). */
static inline kiln_status kiln__ctx_ok(kiln_ctx *ctx)
{
    if (atomic_load_explicit(&ctx->has_error, memory_order_relaxed)) {
        pthread_mutex_lock(&ctx->err_lock);
        kiln__err_clear(&ctx->err);
        atomic_store_explicit(&ctx->has_error, false, memory_order_relaxed);
        pthread_mutex_unlock(&ctx->err_lock);
    }
    return KILN_OK;
}
/* Shared memory (bytes, unaligned) a GEMM tile with cluster_k > 1 keeps for its partners'
 * partial sums: per 64-row group, cluster_k - 1 chunks of one 16-byte vector per thread of a
 * warpgroup for each 8-column group the rank finishes (templates/common/cluster_reduce.cuh,
 * reduce_scatter_chunk); 0 without a cluster split. */
static inline int kiln__cluster_reduce_bytes(int block_m, int block_n, int cluster_k)
{
    if (cluster_k < 2)
        return 0;
    int groups_per_rank = (block_n / 8 + cluster_k - 1) / cluster_k;
    return (cluster_k - 1) * (block_m / 64) * groups_per_rank * 2048;
}
/* Clusters of `size` CTAs (1, 2, 4 or 8) resident at once on num_sms SMs, as the decode
 * picks of the FP8 and BF16 GEMMs count them: every SM and every pair, but only 30 clusters
 * of 4 and 15 of 8 on the H200's 132 SMs (a 16th cluster of 8 waits for a second wave,
 * docs/gemm_bf16_notes.md "Stop 43"), scaled for other SM counts. */
static inline int kiln__resident_clusters(int num_sms, int size)
{
    return size == 8 ? num_sms * 15 / 132 : size == 4 ? num_sms * 30 / 132 : num_sms / size;
}
/* Whether the FP8 and BF16 GEMMs' prefill K split may spread `tiles` tiles of k_blocks K
 * blocks over clusters of c CTAs: K splits evenly, every cluster is resident at once, and
 * clusters of 8 take at most half of the SMs (their 8-way reduction costs more: stop 63,
 * docs/gemm_fp8_notes.md). */
static inline bool kiln__prefill_split_fits(int64_t tiles, int64_t k_blocks, int c, int num_sms)
{
    return k_blocks % c == 0 && tiles <= kiln__resident_clusters(num_sms, c) &&
           (c != 8 || tiles * c <= num_sms / 2);
}
/* The thread-local message for failures without a context. */
void kiln__set_last_error(const kiln__err *err);

/* Every operator entry point checks in this order: ctx and args non-NULL (check_call),
 * then its arguments, then that the context has a device (check_device), so that a
 * compile-only context names a bad argument too and a bad call never compiles. */
int kiln__check_call(kiln_ctx *ctx, const void *args, const char *op);
int kiln__check_device(kiln_ctx *ctx, const char *op);

/* The loaded kernel for spec: table hit (no strings, no SQLite, no allocation, no lock),
 * or once per process: cache lookup / compile, module load, insert. */
int kiln__kernel_get(kiln_ctx *ctx, const kj_spec *spec, const kiln__kernel **out);

/* Make sure spec's cubin is in the cache (compile if needed; no module load). */
int kiln__cubin_ensure(kiln_ctx *ctx, const kj_spec *spec, bool *was_cached, kiln__err *err);

typedef struct kiln__launch_cfg {
    unsigned grid[3], block[3];
    unsigned smem_bytes;
    unsigned cluster_x; /* 0 or 1: no cluster */
} kiln__launch_cfg;

/* cuLaunchKernelEx on the caller's stream, with PDL when the kernel waits on the grid and
 * the context allows it, and the cluster dimension when cluster_x > 1. */
int kiln__launch(kiln_ctx *ctx, const kiln__kernel *kernel, const kiln__launch_cfg *cfg,
                 void **params, kiln_stream stream);

/* The CTAs (clusters) a persistent launch of `units` work units takes with `slots` resident
 * at once: kiln__launch_persistent's rule, without a GPU. */
int64_t kiln__persistent_ctas(int64_t units, int64_t slots, bool even_rounds);

/* A persistent launch of the kernel for spec (compiled or loaded first) with `threads` per
 * CTA, smem_bytes of dynamic shared memory and clusters of cluster_x (0 or 1: none): one CTA
 * (or cluster) per unit of work, at most as many as are resident at once (KILN_NUM_SMS SMs;
 * for clusters, what cuOccupancyMaxActiveClusters allows). even_rounds: the units are
 * equal, compute-bound tiles, all of them real (a prefill GEMM's), so when they take more
 * than one round the grid shrinks to the fewest CTAs that take no more rounds. Fails into
 * ctx. */
int kiln__launch_persistent(kiln_ctx *ctx, const kj_spec *spec, unsigned threads,
                            unsigned smem_bytes, unsigned cluster_x, int64_t units,
                            bool even_rounds, void **params, kiln_stream stream);

/* The ring slots of B that the dense FP8 and BF16 GEMMs with b_ready load before the PDL
 * wait (one slot: 128 bytes of each B row in both). Two measured best in back-to-back
 * batches of decode GEMMs on the H200; one and three the same, the whole ring 6% slower
 * than none (docs/gemm_fp8_notes.md and docs/gemm_bf16_notes.md, "Stop 41"). */
#define KILN__GEMM_B_EARLY_SLOTS 2

/* Tensor checks; each fails into ctx with a message naming the operator and the tensor. */
int kiln__check_tensor(kiln_ctx *ctx, const char *op, const char *name, const kiln_tensor *t,
                       kiln_dtype dtype, int ndim, unsigned align_bytes);
/* A 3-D tensor of exactly [d0, d1, d2] laid out as one buffer of rows of row_stride
 * elements (row_stride >= d2): strides all 0 (then row_stride must be d2) or exactly
 * {d1 * row_stride, row_stride, 1}. Fails into ctx naming op and the tensor. */
int kiln__check_shape3(kiln_ctx *ctx, const char *op, const char *name, const kiln_tensor *t,
                       int64_t d0, int64_t d1, int64_t d2, int64_t row_stride);
/* Rows a GEMM or quantizer takes at most: the kernels index rows in 32 bits and round M
 * up to whole tiles of up to 256 rows. */
#define KILN__MAX_ROWS ((1LL << 31) - 256)
/* M of a GEMM (or the rows of a quantizer) in min_rows .. KILN__MAX_ROWS. Launches take
 * M = 0 (a no-op), spec lines need M >= 1. Fails into ctx naming op. */
int kiln__check_rows(kiln_ctx *ctx, const char *op, int64_t m, int64_t min_rows);
/* The masked grouped GEMMs' A [G, M_max, K]: G in 1..65536, M_max in 1..2^24. Fails into
 * ctx naming op. */
int kiln__check_groups(kiln_ctx *ctx, const char *op, int64_t g, int64_t m_max);
/* Contiguous grouped GEMMs: M_total rows (they index in 32 bits) in G groups, and the row
 * alignment of each group's start (a positive multiple of 64). Fail into ctx naming op. */
int kiln__check_contig_groups(kiln_ctx *ctx, const char *op, int64_t m_total, int64_t g);
int kiln__check_alignment(kiln_ctx *ctx, const char *op, const char *name, int64_t align);
/* The work units a contiguous grouped GEMM launches for, in tiles of block_m x block_n
 * over M_total rows, G groups, N columns: a bound on the tiles the layout can give (the
 * kernel reads the layout and stops at its own count), so every SM takes part (no even
 * rounds). */
int64_t kiln__contig_units(int64_t m_total, int64_t g, int64_t n, int block_m, int block_n,
                           bool by_row);
/* Contiguous grouped GEMMs: exactly one of the two layouts set (data non-NULL) and a 1-D I32
 * tensor; *layout and *name get it (&row_expert: per-row experts). Its length is the
 * caller's to check. Fails into ctx naming op. */
int kiln__contig_layout(kiln_ctx *ctx, const char *op, const kiln_tensor *group_end,
                        const kiln_tensor *row_expert, const kiln_tensor **layout,
                        const char **name);
/* The masked grouped GEMMs' group sizes: masked_m I32 [g] (checked as a tensor already)
 * and the host hint expected_m >= 0. Fails into ctx naming op. */
int kiln__check_masked_m(kiln_ctx *ctx, const char *op, const kiln_tensor *masked_m, int64_t g,
                         int64_t expected_m);
/* Row stride (elements) of a 2-D tensor: strides[0], or shape[1] when contiguous (0s). */
int64_t kiln__row_stride(const kiln_tensor *t);
bool kiln__inner_contiguous(const kiln_tensor *t);
const char *kiln__dtype_name(kiln_dtype dtype);

/* Spec-line operators for kiln_prewarm: each parses its key=value words into the specs it
 * needs. */
typedef struct kiln__spec_words {
    int count;
    const char *keys[16];
    int64_t values[16];
    bool used[16];
} kiln__spec_words;
/* Fetch key as an integer; `required` with a missing key is an error. */
int kiln__spec_word(kiln_ctx *ctx, kiln__spec_words *words, const char *key, bool required,
                    int64_t fallback, int64_t *value);

typedef int (*kiln__prewarm_fn)(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs,
                                int *num_specs);
typedef struct kiln__prewarm_op {
    const char *name;
    kiln__prewarm_fn specs;
} kiln__prewarm_op;

/* Operator families (one file each). */
int kiln__quant_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs, int *n);
int kiln__quant_block_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs, int *n);
int kiln__sf_transpose_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs, int *n);
int kiln__gemm_fp8_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs, int *n);
int kiln__gemm_fp8_masked_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs,
                                  int *n);
int kiln__gemm_fp8_contig_prewarm(kiln_ctx *ctx, kiln__spec_words *words, kj_spec *specs,
                                  int *n);

#endif
