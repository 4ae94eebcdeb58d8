/*
 * kiln: run-time specialized CUDA kernels for serving mixture-of-experts LLMs.
 *
 * One umbrella header, C11, usable from C++. Every function returns a kiln_status; the
 * context keeps the message of the first error since its last successful call
 * (kiln_ctx_errmsg); failures before a context exists go to a thread-local message
 * (kiln_last_errmsg). Pointer arguments are borrowed: kiln never keeps a caller's pointer
 * past the call unless a comment says it takes ownership.
 */
#ifndef KILN_KILN_H
#define KILN_KILN_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define KILN_API
#elif defined(__GNUC__)
#define KILN_API __attribute__((visibility("default")))
#else
#define KILN_API
#endif

/* ---------------------------------------------------------------- status and version */

/* Stable, append-only values. */
typedef enum kiln_status {
    KILN_OK = 0,
    KILN_ERR_INVALID_ARG = 1,   /* a NULL, out-of-range or inconsistent argument */
    KILN_ERR_UNSUPPORTED = 2,   /* valid, but not on this device / arch / dtype */
    KILN_ERR_NO_DEVICE = 3,     /* no CUDA driver or device, or a compile-only context (whose
                                   operators check their arguments first) */
    KILN_ERR_DRIVER = 4,        /* a CUDA driver call failed; the message names it */
    KILN_ERR_COMPILE = 5,       /* NVRTC failed; the message holds the log's tail */
    KILN_ERR_MISS = 6,          /* cache miss with KILN_JIT=0 */
    KILN_ERR_CACHE = 7,         /* the kernel cache could not be opened or written */
    KILN_ERR_OUT_OF_MEMORY = 8, /* a host allocation failed */
    KILN_ERR_ENV = 9,           /* an environment variable holds a bad value */
    KILN_ERR_IO = 10,           /* a file could not be read or written */
    KILN_ERR_INTERNAL = 11,     /* a bug in kiln */
} kiln_status;

/* A static, never-NULL name for a status ("KILN_ERR_MISS"...). Thread-safety: any. */
KILN_API const char *kiln_status_str(kiln_status status);

/* KILN_VERSION_NUMBER of the library actually loaded, to detect a header/library
 * mismatch. Thread-safety: any. */
KILN_API unsigned kiln_version_number(void);
KILN_API const char *kiln_version_string(void);

/* The message of the calling thread's last failure that happened without a context
 * (kiln_options_init, kiln_ctx_create). Never NULL; "" when none. Valid until the
 * thread's next kiln call. Thread-safety: any (the message is thread-local). */
KILN_API const char *kiln_last_errmsg(void);

/* ---------------------------------------------------------------- options */

enum { KILN_DEVICE_NONE = -1 }; /* a compile-only context: prewarm and cache work */

typedef enum kiln_log_level {
    KILN_LOG_OFF = 0,
    KILN_LOG_ERROR = 1,
    KILN_LOG_WARN = 2,
    KILN_LOG_INFO = 3,
    KILN_LOG_DEBUG = 4,
} kiln_log_level;

/* Every field has a knob (environment variable) and a default; kiln_options_init fills
 * the struct from the environment, then the caller may override any field explicitly:
 * explicit > environment > default. Strings are borrowed; the context copies them. */
typedef struct kiln_options {
    int device;             /* CUDA device ordinal, or KILN_DEVICE_NONE */
    const char *cache_path; /* KILN_CACHE_PATH: "rw_root:ro_root:..."; "" = no cache */
    int64_t cache_max_mb;   /* KILN_CACHE_MAX_MB: size bound of the writable root */
    int jit;                /* KILN_JIT: 0 = a cache miss is KILN_ERR_MISS */
    int pdl;                /* KILN_PDL: programmatic dependent launch */
    int num_sms;            /* KILN_NUM_SMS: 0 = the device's count (132 without one) */
    const char *arch;       /* KILN_ARCH: target without a device, e.g. "sm_90a" */
    int log_level;          /* KILN_LOG: off|error|warn|info|debug or 0..4 */
    const char *dump_dir;   /* KILN_DUMP_DIR: write generated source and cubins there */
    int claim_timeout_ms;   /* KILN_CLAIM_TIMEOUT_MS: wait for another process's compile */
    int gemm_overlap;       /* KILN_GEMM_OVERLAP: FP8 GEMM promotion overlapped with wgmma */
    int gemm_multicast;     /* KILN_GEMM_MULTICAST: FP8 prefill B tiles shared by 2 CTAs */
    int gemm_tall_tiles;    /* KILN_GEMM_TALL_TILES: FP8 prefill in 192 x 128 or 256 x 128
                               tiles: 0 never, 1 where they pay (default), 2 always 192,
                               3 always 256 */
    int gemm_prefill_k_split; /* KILN_GEMM_PREFILL_K_SPLIT: FP8 and BF16 prefill with fewer tiles
                                 than SMs splits each tile's K over a cluster (default 1) */
} kiln_options;

/* Fill opts with the defaults overridden by the environment.
 * Returns KILN_OK, KILN_ERR_INVALID_ARG (opts NULL) or KILN_ERR_ENV (a variable holds a
 * bad value; kiln_last_errmsg names it). Thread-safety: any, provided no thread changes
 * the environment meanwhile. */
KILN_API kiln_status kiln_options_init(kiln_options *opts);

/* The knob table, for help texts: name of the variable, its default, its documentation.
 * Returns NULL past the last index. Thread-safety: any. */
typedef struct kiln_knob_info {
    const char *env;
    const char *type;
    const char *default_value;
    const char *doc;
} kiln_knob_info;
KILN_API const kiln_knob_info *kiln_knob(int index);

/* ---------------------------------------------------------------- context */

typedef struct kiln_ctx kiln_ctx;
typedef struct CUstream_st *kiln_stream; /* same type as CUstream and cudaStream_t */

/* Number of CUDA devices; 0 (and KILN_OK) when there is no driver. Thread-safety: any. */
KILN_API kiln_status kiln_device_count(int *count);

/* Create a context for one device (opts->device), or a compile-only context when
 * opts->device is KILN_DEVICE_NONE. opts NULL means kiln_options_init's values. A writable
 * cache root that cannot be created or opened is logged as a warning and skipped (kernels
 * compiled then live in this process only); it does not fail the context.
 * The context uses the device's primary context, retained for its lifetime.
 * Returns KILN_OK, KILN_ERR_INVALID_ARG, KILN_ERR_ENV, KILN_ERR_NO_DEVICE,
 * KILN_ERR_DRIVER, KILN_ERR_CACHE, KILN_ERR_OUT_OF_MEMORY; on failure *out is NULL and
 * kiln_last_errmsg says why. Thread-safety: any. */
KILN_API kiln_status kiln_ctx_create(kiln_ctx **out, const kiln_options *opts);

/* Accepts NULL. No call on ctx may be in flight. */
KILN_API void kiln_ctx_destroy(kiln_ctx *ctx);

/* The first error since the context's last successful call: the failing call, the
 * CUresult or NVRTC status name, the tail of a compile log. Never NULL ("" when none).
 * Valid until the next call on ctx. Thread-safety: any, but with several threads failing
 * at once the message is the first of them. */
KILN_API const char *kiln_ctx_errmsg(const kiln_ctx *ctx);

typedef struct kiln_ctx_info {
    int has_device;
    int device;
    char device_name[128];
    char arch[16];           /* "sm_90a" */
    int num_sms;
    int max_smem_per_block;  /* opt-in shared memory per block, bytes */
    int driver_version;      /* e.g. 13000; 0 without a driver */
    int nvrtc_major, nvrtc_minor;
} kiln_ctx_info;
/* Thread-safety: any. */
KILN_API kiln_status kiln_ctx_get_info(kiln_ctx *ctx, kiln_ctx_info *out);

/* ---------------------------------------------------------------- tensors */

typedef enum kiln_dtype {
    KILN_DTYPE_INVALID = 0,
    KILN_DTYPE_BF16 = 1,
    KILN_DTYPE_F16 = 2,
    KILN_DTYPE_F32 = 3,
    KILN_DTYPE_E4M3 = 4, /* float8 e4m3fn */
    KILN_DTYPE_I32 = 5,
} kiln_dtype;

/* A borrowed view of device memory; maps one-to-one onto DLPack's DLTensor. strides are
 * in elements; strides[i] == 0 for every i means contiguous row-major. */
typedef struct kiln_tensor {
    void *data;
    kiln_dtype dtype;
    int32_t ndim;
    int64_t shape[4];
    int64_t strides[4];
} kiln_tensor;

/* Rows of an MN-major scale tensor padded so each K-block row starts 16-byte aligned, as
 * TMA needs: align(m, 4) for FP32 scales. */
KILN_API int64_t kiln_sf_mn_stride(int64_t m);

/* ---------------------------------------------------------------- quantization (FP8) */

/* BF16 -> FP8 E4M3 in groups of 128 along K. scale = max(amax, 1e-4) / 448 per group,
 * q = round-to-nearest-even(x / scale), saturated to +-448.
 *
 * per token (activations, 1x128):
 *   x      BF16 [M, K], K % 128 == 0, row stride >= K
 *   q      E4M3 [M, K], contiguous
 *   scales F32  [K/128, M] MN-major: strides {kiln_sf_mn_stride(M), 1}
 * per block (weights, 128x128):
 *   x      BF16 [N, K], K % 128 == 0
 *   q      E4M3 [N, K], contiguous
 *   scales F32  [ceil(N/128), K/128], contiguous
 */
typedef struct kiln_quant_fp8_args {
    kiln_tensor x;
    kiln_tensor q;
    kiln_tensor scales;
} kiln_quant_fp8_args;

/* Enqueue on stream (legal in graph capture). Returns KILN_OK, KILN_ERR_INVALID_ARG,
 * KILN_ERR_NO_DEVICE, KILN_ERR_UNSUPPORTED, KILN_ERR_COMPILE, KILN_ERR_MISS,
 * KILN_ERR_DRIVER. Thread-safety: any; one context serves many threads at once. */
KILN_API kiln_status kiln_quant_fp8_per_token(kiln_ctx *ctx, const kiln_quant_fp8_args *args,
                                              kiln_stream stream);
KILN_API kiln_status kiln_quant_fp8_per_block(kiln_ctx *ctx, const kiln_quant_fp8_args *args,
                                              kiln_stream stream);

/* FP32 scales [M, KB] row-major (any row stride) -> [KB, M] MN-major with row stride
 * kiln_sf_mn_stride(M). Same returns and thread-safety as the quantizers. */
typedef struct kiln_sf_transpose_args {
    kiln_tensor in;
    kiln_tensor out;
} kiln_sf_transpose_args;
KILN_API kiln_status kiln_sf_transpose(kiln_ctx *ctx, const kiln_sf_transpose_args *args,
                                       kiln_stream stream);

/* ---------------------------------------------------------------- FP8 GEMM */

/* D[M, N] = A[M, K] · B[N, K]^T with the DeepSeek fine-grained scaling, FP32 accumulation
 * promoted every 128 values of K.
 *   a    E4M3 [M, K], K-major; row stride a multiple of 16 bytes
 *   sfa  F32  [K/128, M] MN-major, row stride kiln_sf_mn_stride(M) (1x128 scales of A)
 *   b    E4M3 [N, K], K-major
 *   BF16 output: d BF16 [M, N]; sfb F32 [ceil(N/128), K/128] contiguous (128x128 blocks)
 *   FP32 output: d F32 [M, N] = c + A·B^T; c F32 [M, N] with d's row stride (may alias
 *                d; data NULL = zero; c set with a BF16 d is an error);
 *                sfb F32 [K/128, N] MN-major, row stride kiln_sf_mn_stride(N) (1x128)
 * K a positive multiple of 128, N a positive multiple of 16, any M >= 0 (0 launches
 * nothing). N and K are compile-time (one kernel per (N, K, config)); M is a run-time
 * argument. Returns KILN_OK, KILN_ERR_INVALID_ARG, KILN_ERR_UNSUPPORTED, KILN_ERR_NO_DEVICE,
 * KILN_ERR_COMPILE, KILN_ERR_MISS, KILN_ERR_DRIVER; on an error nothing is launched.
 * Thread-safety: any. */
typedef struct kiln_gemm_fp8_args {
    kiln_tensor a;
    kiln_tensor sfa;
    kiln_tensor b;
    kiln_tensor sfb;
    kiln_tensor c;
    kiln_tensor d;
    void *workspace;         /* optional, see below (NULL: none) */
    int64_t workspace_bytes;
    int b_ready;             /* optional, see below (0: no) */
} kiln_gemm_fp8_args;

/* b_ready: nonzero declares that b and sfb are complete before this launch and that no
 * earlier kernel on the stream writes them (weights). Under programmatic dependent launch
 * the GEMM then loads its first two K blocks of B before the kernel it follows has finished
 * (A, its scales and D still wait for it), which hides those loads behind that kernel's
 * tail. Set it for weights only: if the kernel before writes B, the result is undefined.
 * BF16 output only; ignored in the FP32 mode. Launches with and without it take kernels of
 * their own (the one without is faster when it runs alone), both of which kiln prewarm
 * compiles for a gemm_fp8 line. */

/* The workspace of kiln_gemm_fp8 (BF16 output only; ignored in the FP32 mode): device memory
 * of at least kiln_gemm_fp8_workspace_bytes(ctx) bytes (12.4 MiB on 132 SMs), 16-byte
 * aligned, zero-filled by the caller once before its first use (each GEMM returns the
 * counters it uses to zero). With it, a prefill GEMM in 192-row tiles whose last round of
 * tiles would leave half of the SMs idle or more splits that round's tiles two or three ways
 * along K (a kernel of its own, compiled when first needed, or by kiln prewarm). One workspace
 * serves one GEMM at a time: GEMMs that may run at the same time (on other streams) need
 * one each. */
KILN_API int64_t kiln_gemm_fp8_workspace_bytes(const kiln_ctx *ctx);
KILN_API kiln_status kiln_gemm_fp8(kiln_ctx *ctx, const kiln_gemm_fp8_args *args,
                                   kiln_stream stream);

/* MoE decode: G independent FP8 GEMMs over masked rows (the masked grouped layout).
 *   a        E4M3 [G, M_max, K], contiguous
 *   sfa      F32  [G, K/128, M_max] with strides {K/128 * s, s, 1}, s = kiln_sf_mn_stride(M_max)
 *   b        E4M3 [G, N, K], contiguous
 *   sfb      F32  [G, ceil(N/128), K/128], contiguous
 *   d        BF16 [G, M_max, N], contiguous
 *   masked_m I32  [G] in device memory: the valid rows of each group. It is read by the
 *            kernel, so one captured CUDA graph serves every routing outcome; rows of d
 *            past masked_m[g] are left untouched (values outside [0, M_max] are clamped).
 *   expected_m  the rows per group the caller expects (picks the tile configuration).
 *   b_ready  optional, nonzero: b and sfb are weights, as kiln_gemm_fp8_args.b_ready. Each
 *            CTA then loads the first two K blocks of B of the tile it would take if every
 *            group held expected_m rows (M_max where expected_m is 0 or above it) before
 *            the PDL wait (masked_m may not be written yet), and loads them again when
 *            masked_m gives it another tile. The guess is right for a CTA when the groups
 *            before its tile hold as many row tiles as expected_m does (expected_m within
 *            one tile height, as in decode: when they are not empty), whatever M_max is;
 *            docs/gemm_fp8_notes.md ("Stop 43") has what was measured.
 * Same K and N rules, returns and thread-safety as kiln_gemm_fp8. */
typedef struct kiln_gemm_fp8_masked_args {
    kiln_tensor a;
    kiln_tensor sfa;
    kiln_tensor b;
    kiln_tensor sfb;
    kiln_tensor d;
    kiln_tensor masked_m;
    int64_t expected_m;
    int b_ready;
} kiln_gemm_fp8_masked_args;
KILN_API kiln_status kiln_gemm_fp8_masked(kiln_ctx *ctx, const kiln_gemm_fp8_masked_args *args,
                                          kiln_stream stream);

/* MoE prefill: G FP8 GEMMs over contiguous groups of rows (the M-grouped contiguous
 * layout): the rows of group (expert) g multiply B[g].
 *   a          E4M3 [M_total, K], K-major; row stride a multiple of 16 bytes
 *   sfa        F32  [K/128, M_total] MN-major, row stride >= M_total and a multiple of 4
 *              (kiln_sf_mn_stride(M_total))
 *   b          E4M3 [G, N, K], contiguous
 *   sfb        F32  [G, ceil(N/128), K/128], contiguous (128x128 blocks)
 *   d          BF16 [M_total, N]; row stride a multiple of 16 bytes
 * The layout, in device memory, one of (the other's data NULL):
 *   group_end  I32  [G], the DeepEP v2 layout: inclusive prefix sums of the rows per group;
 *              group g's rows start at the next multiple of m_alignment after group g-1's
 *              last row (group 0 at row 0).
 *   row_expert I32  [M_total]: the group of each row, -1 for a padding row. Any order is
 *              right; it is fast when each group's rows are contiguous and start at a
 *              multiple of m_alignment (a tile is computed once per group with rows in it).
 *   m_alignment  a positive multiple of 64 (128 is usual; 128-row and taller tiles need it
 *              in the prefix-sum layout, and are only chosen for row ids with it).
 * The layout is read by the kernel, so one captured CUDA graph serves every routing
 * outcome. Rows that belong to no group (padding) are neither stored nor, where a whole
 * tile is padding, computed: d keeps what it held there. A layout that is only wrong on the
 * device never writes outside d: a decreasing prefix sum is an empty group and rows past
 * M_total are dropped; a row whose id is < -1 or >= G is not stored.
 * Same K and N rules as kiln_gemm_fp8; M_total = 0 launches nothing. Returns KILN_OK,
 * KILN_ERR_INVALID_ARG, KILN_ERR_NO_DEVICE, KILN_ERR_COMPILE, KILN_ERR_MISS,
 * KILN_ERR_DRIVER; on an error nothing is launched. Thread-safety: any. */
typedef struct kiln_gemm_fp8_contig_args {
    kiln_tensor a;
    kiln_tensor sfa;
    kiln_tensor b;
    kiln_tensor sfb;
    kiln_tensor d;
    kiln_tensor group_end;
    int64_t m_alignment;
    kiln_tensor row_expert;
} kiln_gemm_fp8_contig_args;
KILN_API kiln_status kiln_gemm_fp8_contig(kiln_ctx *ctx, const kiln_gemm_fp8_contig_args *args,
                                          kiln_stream stream);

/* ---------------------------------------------------------------- BF16 GEMM */

/* How kiln_gemm_bf16 finds A and B in memory, in the BLAS sense of D = A·B with A [M, K]
 * and B [K, N]: the first letter says whether a holds A (N) or A^T (T), the second whether
 * b holds B (N) or B^T (T). Bit 0 set: a is M-major; bit 1 set: b is N-major. */
typedef enum kiln_gemm_layout {
    KILN_GEMM_NT = 0, /* a [M, K] K-major, b [N, K] K-major (D = a·b^T): the fastest */
    KILN_GEMM_TT = 1, /* a [K, M] M-major, b [N, K] K-major */
    KILN_GEMM_NN = 2, /* a [M, K] K-major, b [K, N] N-major */
    KILN_GEMM_TN = 3, /* a [K, M] M-major, b [K, N] N-major */
} kiln_gemm_layout;

/* D[M, N] = A·B with BF16 inputs and FP32 accumulation over all of K.
 *   a       BF16, [M, K] or (layout bit 0) [K, M]; last dim contiguous, row stride a
 *           multiple of 16 bytes (an M-major a: M's row stride a multiple of 8 elements)
 *   b       BF16, [N, K] or (layout bit 1) [K, N]; same rules
 *   d       BF16 or F32 [M, N]; row stride a multiple of 16 bytes
 *   layout  a kiln_gemm_layout
 *   b_ready optional, nonzero: b is weights, complete before this launch and written by no
 *           earlier kernel on the stream; the GEMM then loads its first two K blocks of b
 *           before the PDL wait, as kiln_gemm_fp8_args.b_ready (undefined if the kernel
 *           before writes b)
 * K and N positive multiples of 8, any M >= 0 (0 launches nothing). N and K are
 * compile-time (one kernel per (N, K, layout, output dtype, config)); M is a run-time
 * argument. Speed: row strides that are multiples of 64 elements (128 bytes) run fastest;
 * other strides start rows off the 128-byte lines, and each TMA box row then takes two
 * (TT 1000x4096x7168 on an H100: 103.5 us with a's stride 1000, 79.1 us padded to 1024).
 * Returns KILN_OK, KILN_ERR_INVALID_ARG, KILN_ERR_NO_DEVICE, KILN_ERR_COMPILE,
 * KILN_ERR_MISS, KILN_ERR_DRIVER; on an error nothing is launched. Thread-safety: any. */
typedef struct kiln_gemm_bf16_args {
    kiln_tensor a;
    kiln_tensor b;
    kiln_tensor d;
    int layout;
    int b_ready; /* optional (0: no) */
} kiln_gemm_bf16_args;
KILN_API kiln_status kiln_gemm_bf16(kiln_ctx *ctx, const kiln_gemm_bf16_args *args,
                                    kiln_stream stream);

/* MoE decode: G independent BF16 GEMMs D[g] = A[g]·B[g]^T over masked rows.
 *   a         BF16 [G, M_max, K], contiguous
 *   b         BF16 [G, N, K], contiguous
 *   d         BF16 or F32 [G, M_max, N], contiguous
 *   masked_m  I32 [G] in device memory: the valid rows of each group, read by the kernel
 *             (one captured CUDA graph serves every routing outcome); rows of d past
 *             masked_m[g] are left untouched (values outside [0, M_max] are clamped).
 *   expected_m  the rows per group the caller expects (picks the tile configuration).
 * Same K and N rules, returns and thread-safety as kiln_gemm_bf16. */
typedef struct kiln_gemm_bf16_masked_args {
    kiln_tensor a;
    kiln_tensor b;
    kiln_tensor d;
    kiln_tensor masked_m;
    int64_t expected_m;
} kiln_gemm_bf16_masked_args;
KILN_API kiln_status kiln_gemm_bf16_masked(kiln_ctx *ctx, const kiln_gemm_bf16_masked_args *args,
                                           kiln_stream stream);

/* MoE prefill: G BF16 GEMMs over contiguous groups of rows; the rows of group g multiply
 * B[g]^T.
 *   a          BF16 [M_total, K], K-major; row stride a multiple of 16 bytes
 *   b          BF16 [G, N, K], contiguous
 *   d          BF16 or F32 [M_total, N]; row stride a multiple of 16 bytes
 * The layout, in device memory, one of (the other's data NULL), as kiln_gemm_fp8_contig:
 *   group_end  I32 [G], the DeepEP v2 layout: inclusive prefix sums of the rows per group;
 *              group g's rows start at the next multiple of m_alignment after group g-1's
 *              last row (group 0 at row 0).
 *   row_expert I32 [M_total]: the group of each row, -1 for a padding row. Any order is
 *              right; it is fast when each group's rows are contiguous and start at a
 *              multiple of m_alignment (a tile is computed once per group with rows in it).
 *   m_alignment  a positive multiple of 64 (128 is usual; 128-row tiles need it).
 * Rows that belong to no group (padding) are neither stored nor, where a whole tile is
 * padding, computed: d keeps what it held there. A layout that is only wrong on the device
 * never writes outside d: a decreasing prefix sum is an empty group and rows past M_total
 * are dropped; a row whose id is < -1 or >= G is not stored.
 * Same K and N rules, returns and thread-safety as kiln_gemm_bf16; M_total = 0 launches
 * nothing. */
typedef struct kiln_gemm_bf16_contig_args {
    kiln_tensor a;
    kiln_tensor b;
    kiln_tensor d;
    kiln_tensor group_end;
    int64_t m_alignment;
    kiln_tensor row_expert;
} kiln_gemm_bf16_contig_args;
KILN_API kiln_status kiln_gemm_bf16_contig(kiln_ctx *ctx, const kiln_gemm_bf16_contig_args *args,
                                           kiln_stream stream);

/* ---------------------------------------------------------------- prewarm and cache */

/* Compile (or find in the cache) every kernel one spec line needs, for the context's
 * arch. The line format is documented in the README ("op key=value ..."). *was_cached
 * (may be NULL) is set to 1 when nothing needed compiling.
 * Returns KILN_OK, KILN_ERR_INVALID_ARG (a bad line: the message names the word),
 * KILN_ERR_COMPILE, KILN_ERR_MISS, KILN_ERR_CACHE. Thread-safety: any; the CLI calls it
 * from many threads. */
KILN_API kiln_status kiln_prewarm(kiln_ctx *ctx, const char *spec_line, int *was_cached);

typedef struct kiln_cache_entry {
    const char *key;      /* 32 hex digits */
    const char *root;     /* the cache root (directory) that holds it */
    const char *template_name;
    const char *arch;
    const char *key_text; /* the canonical record the key hashes */
    int64_t cubin_bytes;
    int64_t source_bytes;
    int registers, spills, smem_bytes;
    double compile_ms;
    int64_t created, last_used; /* unix seconds */
    int64_t hits;
    int writable;
} kiln_cache_entry;

typedef struct kiln_cache_stats {
    const char *root;    /* the cache file, <root directory>/kernels.db */
    int writable;
    int64_t entries;
    int64_t bytes;       /* cubins + sources */
    int64_t file_bytes;  /* the file on disk */
    int64_t quarantined;
} kiln_cache_stats;

/* Visit every entry (or every root for stats); the pointers inside the struct are valid
 * during the callback only. A non-zero return from the callback stops the walk. */
typedef int (*kiln_cache_entry_fn)(const kiln_cache_entry *entry, void *user);
typedef int (*kiln_cache_stats_fn)(const kiln_cache_stats *stats, void *user);
KILN_API kiln_status kiln_cache_list(kiln_ctx *ctx, kiln_cache_entry_fn fn, void *user);
KILN_API kiln_status kiln_cache_stats_each(kiln_ctx *ctx, kiln_cache_stats_fn fn, void *user);

/* Check every entry of the writable root (key against its text, cubin checksum); bad
 * entries are quarantined and reported through fn (may be NULL). */
KILN_API kiln_status kiln_cache_verify(kiln_ctx *ctx, kiln_cache_entry_fn fn, void *user,
                                       int64_t *checked, int64_t *bad);
/* Evict least-recently-used entries of the writable root until it holds <= max_bytes. */
KILN_API kiln_status kiln_cache_prune(kiln_ctx *ctx, int64_t max_bytes, int64_t *removed);
/* Remove every entry of the writable root. */
KILN_API kiln_status kiln_cache_clear(kiln_ctx *ctx, int64_t *removed);

#ifdef __cplusplus
}
#endif

#endif /* KILN_KILN_H */
