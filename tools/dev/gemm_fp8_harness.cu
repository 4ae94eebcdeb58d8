/* Standalone correctness + timing harness for src/templates/gemm_fp8.cuh (no kiln runtime).
 *
 * One source, two roles:
 *  - compiled with -DKH_KERNEL_TU and KH_ID/KH_N/KH_K/KH_BM/KH_BN/KH_ST/KH_G/KH_KS/KH_BUCKET it is a
 *    kernel translation unit: it defines namespace kp, includes the template (entry renamed
 *    kh_kernel_<ID>) and registers the config with the driver part below;
 *  - compiled without it, it is the driver: fresh random FP8 inputs and scales, an FP64
 *    reference of the dequantized inputs (on the GPU, spot-checked against the CPU), a NaN-
 *    poisoned output, every element checked, two runs compared bitwise, CUDA-event timing
 *    (warm-up, median of >= 20, rotating buffers) against cuBLASLt block-scaled FP8.
 * tools/dev/build_fp8.py builds it (configs are chosen there, per shape); docs/gemm_fp8_notes.md
 * holds the figures.
 *
 * Usage: gemm_fp8_harness [--reps N] [--only M,N,K] [--check-only]
 */
/* One compiled kernel configuration, registered by its kernel translation unit. */
struct kh_cfg {
    int id, bucket; /* bucket: 0 serves M <= 64, 1 M <= 128, 2 larger M */
    long long n, k;
    int bm, bn, stages, group_n, ksplit, threads, smem, d_slab, d_slab_bytes;
    const void *fn;
    int mc, ck, cluster; /* multicast, cluster_k, CTAs per cluster */
    int max_clusters;    /* co-resident clusters (driver fills in) */
    int sw;              /* KILN_GEMM_FP8_SCALE_WARP */
};
int kh_register(const kh_cfg &c);

#ifdef KH_KERNEL_TU

namespace kp {
constexpr long long n = KH_N;
constexpr long long k = KH_K;
constexpr long long block_m = KH_BM;
constexpr long long block_n = KH_BN;
constexpr long long stages = KH_ST;
constexpr long long group_n = KH_G;
constexpr long long k_split = KH_KS;
constexpr long long multicast = KH_MC;
constexpr long long out_f32 = 0;
constexpr long long cluster_k = KH_CK;
} // namespace kp

#define KH_CAT2(a, b) a##b
#define KH_CAT(a, b) KH_CAT2(a, b)
#define KILN_GEMM_FP8_ENTRY KH_CAT(kh_kernel_, KH_ID)
#ifndef KH_SW
#define KH_SW 1
#endif
#define KILN_GEMM_FP8_SCALE_WARP KH_SW
#include "gemm_fp8.cuh"

static int kh_registered = kh_register(kh_cfg{
    KH_ID, KH_BUCKET, KH_N, KH_K, KH_BM, KH_BN, KH_ST, KH_G, KH_KS, kiln_gemm_fp8_threads,
    kiln_gemm_fp8_smem_bytes, kiln_fp8::D_SLAB, kiln_fp8::D_SLAB_BYTES,
    (const void *)KILN_GEMM_FP8_ENTRY, KH_MC, KH_CK, kiln_gemm_fp8_cluster, 0, KH_SW});

#else /* driver */

#include <algorithm>
#include <array>
#include <ctime>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda.h>
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>


std::vector<kh_cfg> &kh_registry()
{
    static std::vector<kh_cfg> r;
    return r;
}
int kh_register(const kh_cfg &c)
{
    kh_registry().push_back(c);
    return 1;
}

#define CK(x)                                                                                     \
    do {                                                                                          \
        cudaError_t e_ = (x);                                                                     \
        if (e_ != cudaSuccess) {                                                                  \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));   \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)
#define CU(x)                                                                                     \
    do {                                                                                          \
        CUresult r_ = (x);                                                                        \
        if (r_ != CUDA_SUCCESS) {                                                                 \
            const char *s_ = "?";                                                                 \
            cuGetErrorName(r_, &s_);                                                              \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, s_);                        \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)
#define CB(x)                                                                                     \
    do {                                                                                          \
        cublasStatus_t s_ = (x);                                                                  \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                        \
            fprintf(stderr, "%s:%d %s: cublas status %d\n", __FILE__, __LINE__, #x, (int)s_);     \
            ok = false;                                                                           \
        }                                                                                         \
    } while (0)

/* ---- FP8 E4M3 on the host ------------------------------------------------------------ */

static double e4m3_value(uint8_t c)
{
    int s = c >> 7, e = (c >> 3) & 15, m = c & 7;
    double v = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
    return s ? -v : v;
}
static double g_e4m3[256];
static uint8_t g_lut[65536]; /* gaussian*64 quantized to e4m3, sampled by 16 random bits */

static void init_tables()
{
    for (int c = 0; c < 256; ++c)
        g_e4m3[c] = ((c & 0x7f) == 0x7f) ? NAN : e4m3_value((uint8_t)c);
    std::mt19937_64 rng(12345);
    std::normal_distribution<double> nd(0.0, 64.0);
    for (int i = 0; i < 65536; ++i) {
        double x = std::max(-448.0, std::min(448.0, nd(rng)));
        int best = 0;
        double bd = 1e30;
        for (int c = 0; c < 256; ++c) {
            if ((c & 0x7f) == 0x7f)
                continue;
            double d = std::fabs(g_e4m3[c] - x);
            if (d < bd) {
                bd = d;
                best = c;
            }
        }
        g_lut[i] = (uint8_t)best;
    }
}

static inline uint64_t splitmix(uint64_t &s)
{
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void fill_fp8(std::vector<uint8_t> &v, uint64_t seed)
{
    unsigned nt = std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> th;
    size_t n = v.size(), per = (n + nt - 1) / nt;
    for (unsigned t = 0; t < nt; ++t)
        th.emplace_back([&, t] {
            uint64_t s = seed * 1000003ull + t;
            size_t lo = t * per, hi = std::min(n, lo + per);
            for (size_t i = lo; i < hi; i += 4) {
                uint64_t r = splitmix(s);
                for (size_t j = 0; j < 4 && i + j < hi; ++j)
                    v[i + j] = g_lut[(r >> (16 * j)) & 0xffff];
            }
        });
    for (auto &t : th)
        t.join();
}

static void fill_scales(std::vector<float> &v, uint64_t seed)
{
    for (auto &x : v)
        x = (float)(0.001 + 0.009 * ((splitmix(seed) >> 11) * (1.0 / 9007199254740992.0)));
}

/* ---- FP64 reference on the GPU ------------------------------------------------------- */

__constant__ double c_e4m3[256];

/* out[m][n] = sum_kb sa[kb][m] sb[n/128][kb] sum_{k in kb} a[m][k] b[n][k], all FP64.
 * 64x64 outputs per block of 256 threads, 4x4 per thread. */
__global__ void ref_gemm(const uint8_t *A, const uint8_t *B, const float *sfa, int ld_sfa,
                         const float *sfb, int M, int N, int K, double *out)
{
    __shared__ double as[16][65], bs[16][65];
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    int m0 = blockIdx.y * 64, n0 = blockIdx.x * 64;
    int KB = K / 128;
    double tot[4][4] = {}, part[4][4];
    for (int kb = 0; kb < KB; ++kb) {
        for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j)
                part[i][j] = 0;
        for (int k0 = kb * 128; k0 < kb * 128 + 128; k0 += 16) {
            for (int e = threadIdx.x; e < 64 * 16; e += 256) {
                int r = e / 16, kk = e % 16;
                int gm = m0 + r, gn = n0 + r;
                as[kk][r] = gm < M ? c_e4m3[A[(size_t)gm * K + k0 + kk]] : 0.0;
                bs[kk][r] = gn < N ? c_e4m3[B[(size_t)gn * K + k0 + kk]] : 0.0;
            }
            __syncthreads();
            for (int kk = 0; kk < 16; ++kk)
                for (int i = 0; i < 4; ++i)
                    for (int j = 0; j < 4; ++j)
                        part[i][j] += as[kk][ty + 16 * i] * bs[kk][tx + 16 * j];
            __syncthreads();
        }
        for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j) {
                int gm = m0 + ty + 16 * i, gn = n0 + tx + 16 * j;
                if (gm < M && gn < N)
                    tot[i][j] += part[i][j] * (double)sfa[(size_t)kb * ld_sfa + gm] *
                                 (double)sfb[(size_t)(gn / 128) * KB + kb];
            }
    }
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
            int gm = m0 + ty + 16 * i, gn = n0 + tx + 16 * j;
            if (gm < M && gn < N)
                out[(size_t)gm * N + gn] = tot[i][j];
        }
}

__global__ void spin_kernel(long long ns)
{
    long long t0 = clock64();
    while (clock64() - t0 < ns * 2)
        ;
}

/* ---- helpers ------------------------------------------------------------------------- */

static double bf16_to_double(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

struct diff_result {
    double diff;
    long long bad; /* NaN / inf */
};

static diff_result calc_diff(const std::vector<uint16_t> &x, const std::vector<double> &ref)
{
    double sxy = 0, sxx = 0;
    long long bad = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        double a = bf16_to_double(x[i]), b = ref[i];
        if (!std::isfinite(a)) {
            ++bad;
            continue;
        }
        sxy += a * b;
        sxx += a * a + b * b;
    }
    return {sxx > 0 ? 1.0 - 2.0 * sxy / sxx : 1.0, bad};
}

/* cuBLASLt writes D^T (column-major M x N): element (m, n) at n * M + m. */
static diff_result calc_diff_t(const std::vector<uint16_t> &x, const std::vector<double> &ref,
                               long long M, long long N)
{
    double sxy = 0, sxx = 0;
    long long bad = 0;
    for (long long n = 0; n < N; ++n)
        for (long long m = 0; m < M; ++m) {
            double a = bf16_to_double(x[n * M + m]), b = ref[m * N + n];
            if (!std::isfinite(a)) {
                ++bad;
                continue;
            }
            sxy += a * b;
            sxx += a * a + b * b;
        }
    return {sxx > 0 ? 1.0 - 2.0 * sxy / sxx : 1.0, bad};
}

static void encode_2d(CUtensorMap *map, CUtensorMapDataType dt, void *ptr, uint64_t inner,
                      uint64_t outer, uint64_t pitch_bytes, uint32_t box_inner, uint32_t box_outer,
                      CUtensorMapSwizzle swz)
{
    cuuint64_t dims[2] = {inner, outer};
    cuuint64_t strides[1] = {pitch_bytes};
    cuuint32_t box[2] = {box_inner, box_outer};
    cuuint32_t es[2] = {1, 1};
    CU(cuTensorMapEncodeTiled(map, dt, 2, ptr, dims, strides, box, es,
                              CU_TENSOR_MAP_INTERLEAVE_NONE, swz, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                              CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
}

static CUtensorMapSwizzle swz_for(int bytes)
{
    return bytes == 128 ? CU_TENSOR_MAP_SWIZZLE_128B
           : bytes == 64 ? CU_TENSOR_MAP_SWIZZLE_64B
           : bytes == 32 ? CU_TENSOR_MAP_SWIZZLE_32B
                         : CU_TENSOR_MAP_SWIZZLE_NONE;
}

struct buffers {
    uint8_t *a, *b;
    float *sfa, *sfb, *sfa_lt, *sfb_lt;
    uint16_t *d;
    CUtensorMap tm_a, tm_b, tm_sfa, tm_d;
};

struct shape_result {
    long long m, n, k;
    int cfg_id, bm, bn, stages, ksplit, mc, ck, sw;
    double t_kiln, t_lt, diff_kiln, diff_lt;
    bool ok, lt_ok, bitwise;
};

static float median(std::vector<float> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

static int g_reps = 30;
static bool g_check_only = false;

/* Every registered config of the shape's (N, K) and M bucket (bucket 3 = alternative for
 * large M, timed side by side). */
static std::vector<const kh_cfg *> pick_cfgs(long long m, long long n, long long k)
{
    std::vector<const kh_cfg *> v;
    for (auto &c : kh_registry()) {
        bool fits = m <= 64 ? c.bucket == 0 : m <= 128 ? c.bucket == 1 : c.bucket >= 2;
        if (c.n == n && c.k == k && fits)
            v.push_back(&c);
    }
    return v;
}

/* A hung kernel must not eat the device lease: give up after 20 s. */
static void sync_or_die(cudaStream_t st, const char *what)
{
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    time_t w0 = time(nullptr);
    (void)t0;
    for (;;) {
        cudaError_t e = cudaStreamQuery(st);
        if (e == cudaSuccess)
            return;
        if (e != cudaErrorNotReady) {
            fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
            exit(1);
        }
        if (time(nullptr) - w0 > 20) {
            printf("HANG in %s\n", what);
            fflush(stdout);
            _exit(3);
        }
    }
}

static void launch_kiln(const kh_cfg *c, const buffers &b, int m, int sms, cudaStream_t st)
{
    int num_mb = (m + c->bm - 1) / c->bm;
    int units = ((num_mb + c->mc - 1) / c->mc) * (int)((c->n + c->bn - 1) / c->bn);
    cudaLaunchConfig_t lc = {};
    if (c->cluster > 1)
        lc.gridDim = dim3(std::min(units, c->max_clusters) * c->cluster);
    else
        lc.gridDim = dim3(std::min(units, sms));
    lc.blockDim = dim3(c->threads);
    lc.dynamicSmemBytes = c->smem;
    lc.stream = st;
    cudaLaunchAttribute at[2];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    at[1].id = cudaLaunchAttributeClusterDimension;
    at[1].val.clusterDim.x = c->cluster;
    at[1].val.clusterDim.y = 1;
    at[1].val.clusterDim.z = 1;
    lc.attrs = at;
    lc.numAttrs = c->cluster > 1 ? 2 : 1;
    const float *cnull = nullptr;
    void *args[] = {(void *)&b.tm_a, (void *)&b.tm_b, (void *)&b.tm_sfa, (void *)&b.tm_d,
                    (void *)&b.sfb, (void *)&cnull, (void *)&m};
    CK(cudaLaunchKernelExC(&lc, c->fn, args));
}

/* cuBLASLt block-scaled FP8 in column-major terms: D'[M,N] = A[K,M]^T . B[K,N], with VEC128
 * scales on A (activations) and BLK128x128 on B (weights): the combination NVIDIA's sample
 * uses; the reverse is refused on Hopper. D' is our D transposed (same work, same bytes). */
struct lt_plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
    cublasLtMatmulAlgo_t algo;
    bool ok = false;
};

static cublasLtHandle_t g_lt;
static void *g_ws;
static const size_t g_ws_size = 64u << 20;

static lt_plan lt_make(long long m, long long n, long long k)
{
    lt_plan p;
    bool ok = true;
    CB(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CB(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    CB(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    int32_t ma = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
    int32_t mb = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
    CB(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &ma, sizeof(ma)));
    CB(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mb, sizeof(mb)));
    CB(cublasLtMatrixLayoutCreate(&p.la, CUDA_R_8F_E4M3, k, m, k));
    CB(cublasLtMatrixLayoutCreate(&p.lb, CUDA_R_8F_E4M3, k, n, k));
    CB(cublasLtMatrixLayoutCreate(&p.lc, CUDA_R_16BF, m, n, m));
    {
        /* heuristics may look at the scale pointers: give it real (dummy) ones */
        static void *dummy = nullptr;
        if (!dummy)
            cudaMalloc(&dummy, 1 << 20);
        CB(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &dummy,
                                          sizeof(dummy)));
        CB(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &dummy,
                                          sizeof(dummy)));
    }
    if (!ok)
        return p;
    cublasLtMatmulPreference_t pref;
    CB(cublasLtMatmulPreferenceCreate(&pref));
    CB(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                            &g_ws_size, sizeof(g_ws_size)));
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    CB(cublasLtMatmulAlgoGetHeuristic(g_lt, p.op, p.la, p.lb, p.lc, p.lc, pref, 1, &h, &found));
    cublasLtMatmulPreferenceDestroy(pref);
    if (ok && found > 0) {
        p.algo = h.algo;
        p.ok = true;
    }
    return p;
}

static bool lt_run(lt_plan &p, const buffers &b, bool sfb_transposed, cudaStream_t st)
{
    bool ok = true;
    const void *sb = sfb_transposed ? (const void *)b.sfb_lt : (const void *)b.sfb;
    const void *sa = b.sfa_lt;
    CB(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa, sizeof(sa)));
    CB(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb, sizeof(sb)));
    float alpha = 1.0f, beta = 0.0f;
    CB(cublasLtMatmul(g_lt, p.op, &alpha, b.a, p.la, b.b, p.lb, &beta, b.d, p.lc, b.d, p.lc,
                      &p.algo, g_ws, g_ws_size, st));
    return ok;
}

static shape_result run_shape(long long M, long long N, long long K, int sms, uint64_t seed,
                              const kh_cfg *cfg)
{
    shape_result res = {};
    res.m = M, res.n = N, res.k = K;
    res.cfg_id = cfg->id, res.bm = cfg->bm, res.bn = cfg->bn, res.stages = cfg->stages;
    res.ksplit = cfg->ksplit;
    res.mc = cfg->mc, res.ck = cfg->ck, res.sw = cfg->sw;
    const long long KB = K / 128, MA = (M + 3) / 4 * 4, NB = (N + 127) / 128;

    std::vector<uint8_t> ha(M * K), hb(N * K);
    std::vector<float> hsfa(KB * MA), hsfb(NB * KB), hsfa_lt(KB * M), hsfb_lt(KB * NB);
    fill_fp8(ha, seed * 4 + 1);
    fill_fp8(hb, seed * 4 + 2);
    fill_scales(hsfa, seed * 4 + 3);
    fill_scales(hsfb, seed * 4 + 4);
    for (long long kb = 0; kb < KB; ++kb)
        for (long long m = 0; m < M; ++m)
            hsfa_lt[kb * M + m] = hsfa[kb * MA + m];
    for (long long nb = 0; nb < NB; ++nb)
        for (long long kb = 0; kb < KB; ++kb)
            hsfb_lt[kb * NB + nb] = hsfb[nb * KB + kb];

    size_t set_bytes = M * K + N * K + M * N * 2;
    int R = (int)std::max<size_t>(2, std::min<size_t>(16, (size_t)(400ull << 20) / set_bytes));
    std::vector<buffers> bufs(R);
    for (int r = 0; r < R; ++r) {
        buffers &b = bufs[r];
        CK(cudaMalloc(&b.a, M * K));
        CK(cudaMalloc(&b.b, N * K));
        CK(cudaMalloc(&b.sfa, hsfa.size() * 4));
        CK(cudaMalloc(&b.sfb, hsfb.size() * 4));
        CK(cudaMalloc(&b.sfa_lt, hsfa_lt.size() * 4));
        CK(cudaMalloc(&b.sfb_lt, hsfb_lt.size() * 4));
        CK(cudaMalloc(&b.d, M * N * 2));
        CK(cudaMemcpy(b.a, ha.data(), M * K, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(b.b, hb.data(), N * K, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(b.sfa, hsfa.data(), hsfa.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(b.sfb, hsfb.data(), hsfb.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(b.sfa_lt, hsfa_lt.data(), hsfa_lt.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(b.sfb_lt, hsfb_lt.data(), hsfb_lt.size() * 4, cudaMemcpyHostToDevice));
        encode_2d(&b.tm_a, CU_TENSOR_MAP_DATA_TYPE_UINT8, b.a, K, M, K, 128, cfg->bm,
                  CU_TENSOR_MAP_SWIZZLE_128B);
        encode_2d(&b.tm_b, CU_TENSOR_MAP_DATA_TYPE_UINT8, b.b, K, N, K, 128, cfg->bn,
                  CU_TENSOR_MAP_SWIZZLE_128B);
        encode_2d(&b.tm_sfa, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, b.sfa, MA, KB, MA * 4, cfg->bm, 1,
                  CU_TENSOR_MAP_SWIZZLE_NONE);
        encode_2d(&b.tm_d, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, b.d, N, M, N * 2, cfg->d_slab, 64,
                  swz_for(cfg->d_slab_bytes));
    }

    /* reference */
    double *dref;
    CK(cudaMalloc(&dref, M * N * 8));
    dim3 rg((unsigned)((N + 63) / 64), (unsigned)((M + 63) / 64));
    ref_gemm<<<rg, 256>>>(bufs[0].a, bufs[0].b, bufs[0].sfa, (int)MA, bufs[0].sfb, (int)M, (int)N,
                          (int)K, dref);
    CK(cudaGetLastError());
    std::vector<double> ref(M * N);
    CK(cudaMemcpy(ref.data(), dref, M * N * 8, cudaMemcpyDeviceToHost));
    CK(cudaFree(dref));
    /* CPU FP64 spot check of the GPU reference: three rows, every column */
    double worst = 0;
    for (long long m : {0LL, M / 2, M - 1})
        for (long long n = 0; n < N; ++n) {
            double tot = 0;
            for (long long kb = 0; kb < KB; ++kb) {
                double p = 0;
                for (long long k = kb * 128; k < kb * 128 + 128; ++k)
                    p += g_e4m3[ha[m * K + k]] * g_e4m3[hb[n * K + k]];
                tot += p * hsfa[kb * MA + m] * hsfb[(n / 128) * KB + kb];
            }
            double e = std::fabs(tot - ref[m * N + n]) / std::max(1e-30, std::fabs(tot));
            worst = std::max(worst, std::fabs(tot - ref[m * N + n]) > 1e-12 ? e : 0.0);
        }
    if (worst > 1e-9)
        printf("  !! GPU reference disagrees with CPU FP64 (rel %.3g)\n", worst);

    cudaStream_t st;
    CK(cudaStreamCreate(&st));
    std::vector<uint16_t> out1(M * N), out2(M * N);
    /* kiln: poison, run, check; again, compare bitwise */
    CK(cudaMemset(bufs[0].d, 0xff, M * N * 2)); /* 0xffff is a bf16 NaN */
    launch_kiln(cfg, bufs[0], (int)M, sms, st);
    sync_or_die(st, "kiln");
    CK(cudaGetLastError());
    CK(cudaMemcpy(out1.data(), bufs[0].d, M * N * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemset(bufs[0].d, 0xff, M * N * 2));
    launch_kiln(cfg, bufs[0], (int)M, sms, st);
    sync_or_die(st, "kiln");
    CK(cudaMemcpy(out2.data(), bufs[0].d, M * N * 2, cudaMemcpyDeviceToHost));
    diff_result dk = calc_diff(out1, ref);
    res.diff_kiln = dk.diff;
    res.bitwise = memcmp(out1.data(), out2.data(), M * N * 2) == 0;
    res.ok = dk.bad == 0 && dk.diff < 1e-3 && res.bitwise;
    if (dk.bad)
        printf("  !! kiln: %lld non-finite outputs\n", dk.bad);

    /* cuBLASLt: find the B-scale layout it accepts by checking against the reference */
    /* cuBLASLt needs 16-byte aligned leading dimensions: D' is M x N column-major, so M % 8;
     * M = 1 was seen to fault inside it. Baseline only where M % 16 == 0. */
    lt_plan lp;
    if (M % 16 == 0)
        lp = lt_make(M, N, K);
    bool lt_transposed = true;
    res.diff_lt = NAN;
    if (lp.ok) {
        for (int attempt = 0; attempt < 2; ++attempt) {
            lt_transposed = attempt == 0;
            CK(cudaMemset(bufs[0].d, 0xff, M * N * 2));
            bool ok = lt_run(lp, bufs[0], lt_transposed, st);
            CK(cudaStreamSynchronize(st));
            if (!ok)
                break;
            CK(cudaMemcpy(out1.data(), bufs[0].d, M * N * 2, cudaMemcpyDeviceToHost));
            diff_result dl = calc_diff_t(out1, ref, M, N);
            res.diff_lt = dl.diff;
            if (dl.bad == 0 && dl.diff < 1e-3) {
                res.lt_ok = true;
                break;
            }
        }
    }

    /* timing: a spin kernel keeps the queue ahead of the GPU so host submission gaps do
     * not land between an event and its kernel */
    if (!g_check_only) {
        std::vector<cudaEvent_t> ev(2 * g_reps);
        for (auto &e : ev)
            CK(cudaEventCreate(&e));
        for (int w = 0; w < 5; ++w)
            launch_kiln(cfg, bufs[w % R], (int)M, sms, st);
        spin_kernel<<<1, 1, 0, st>>>(3000000);
        for (int i = 0; i < g_reps; ++i) {
            CK(cudaEventRecord(ev[2 * i], st));
            launch_kiln(cfg, bufs[(i + 1) % R], (int)M, sms, st);
            CK(cudaEventRecord(ev[2 * i + 1], st));
        }
        sync_or_die(st, "kiln timing");
        std::vector<float> t(g_reps);
        for (int i = 0; i < g_reps; ++i)
            CK(cudaEventElapsedTime(&t[i], ev[2 * i], ev[2 * i + 1]));
        res.t_kiln = median(t) * 1e-3;
        res.t_lt = NAN;
        if (res.lt_ok) {
            for (int w = 0; w < 5; ++w)
                lt_run(lp, bufs[w % R], lt_transposed, st);
            spin_kernel<<<1, 1, 0, st>>>(3000000);
            for (int i = 0; i < g_reps; ++i) {
                CK(cudaEventRecord(ev[2 * i], st));
                lt_run(lp, bufs[(i + 1) % R], lt_transposed, st);
                CK(cudaEventRecord(ev[2 * i + 1], st));
            }
            CK(cudaStreamSynchronize(st));
            for (int i = 0; i < g_reps; ++i)
                CK(cudaEventElapsedTime(&t[i], ev[2 * i], ev[2 * i + 1]));
            res.t_lt = median(t) * 1e-3;
        }
        for (auto &e : ev)
            CK(cudaEventDestroy(e));
    }
    CK(cudaGetLastError());

    double flops = 2.0 * M * N * K;
    double bytes = (double)M * K + (double)N * K + 4.0 * (KB * MA + NB * KB) + 2.0 * M * N;
    printf("M=%5lld N=%5lld K=%5lld cfg=%d(%dx%d s%d ks%d mc%d ck%d sw%d) kiln %8.2f us %7.1f TFLOP/s %6.0f GB/s | "
           "cuBLASLt %8.2f us %7.1f TFLOP/s | x%.2f | diff %.2e/%.2e %s%s%s\n",
           M, N, K, cfg->id, cfg->bm, cfg->bn, cfg->stages, cfg->ksplit, cfg->mc, cfg->ck, cfg->sw,
           res.t_kiln * 1e6,
           flops / res.t_kiln * 1e-12, bytes / res.t_kiln * 1e-9, res.t_lt * 1e6,
           flops / res.t_lt * 1e-12, res.t_lt / res.t_kiln, res.diff_kiln, res.diff_lt,
           res.ok ? "OK" : "FAIL", res.bitwise ? "" : " (not bitwise)",
           res.lt_ok ? (lt_transposed ? "" : " lt-sfb-kmajor") : " lt-FAIL");
    fflush(stdout);

    lt_plan *pp = &lp;
    if (pp->op)
        cublasLtMatmulDescDestroy(pp->op);
    if (pp->la)
        cublasLtMatrixLayoutDestroy(pp->la);
    if (pp->lb)
        cublasLtMatrixLayoutDestroy(pp->lb);
    if (pp->lc)
        cublasLtMatrixLayoutDestroy(pp->lc);
    for (auto &b : bufs) {
        cudaFree(b.a), cudaFree(b.b), cudaFree(b.sfa), cudaFree(b.sfb);
        cudaFree(b.sfa_lt), cudaFree(b.sfb_lt), cudaFree(b.d);
    }
    CK(cudaStreamDestroy(st));
    return res;
}

int main(int argc, char **argv)
{
    long long only[3] = {0, 0, 0};
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            g_reps = std::max(20, atoi(argv[++i]));
        else if (!strcmp(argv[i], "--check-only"))
            g_check_only = true;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            sscanf(argv[++i], "%lld,%lld,%lld", &only[0], &only[1], &only[2]);
    }
    init_tables();
    CK(cudaMemcpyToSymbol(c_e4m3, g_e4m3, sizeof(g_e4m3)));
    CU(cuInit(0));
    int sms = 0;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    for (auto &c : kh_registry()) {
        CK(cudaFuncSetAttribute(c.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, c.smem));
        c.max_clusters = sms;
        if (c.cluster > 1) {
            cudaLaunchConfig_t lc = {};
            lc.gridDim = dim3(c.cluster * 64);
            lc.blockDim = dim3(c.threads);
            lc.dynamicSmemBytes = c.smem;
            cudaLaunchAttribute at[1];
            at[0].id = cudaLaunchAttributeClusterDimension;
            at[0].val.clusterDim.x = c.cluster;
            at[0].val.clusterDim.y = 1;
            at[0].val.clusterDim.z = 1;
            lc.attrs = at;
            lc.numAttrs = 1;
            int n = 0;
            CK(cudaOccupancyMaxActiveClusters(&n, c.fn, &lc));
            c.max_clusters = std::max(1, n);
            printf("cfg %d: cluster %d, %d co-resident clusters\n", c.id, c.cluster, n);
        }
    }
    if (cublasLtCreate(&g_lt) != CUBLAS_STATUS_SUCCESS)
        return 1;
    CK(cudaMalloc(&g_ws, g_ws_size));
    uint64_t seed = (uint64_t)time(nullptr);
    printf("seed %llu, %d SMs, %zu configs, reps %d\n", (unsigned long long)seed, sms,
           kh_registry().size(), g_reps);

    const long long nk[7][2] = {{2112, 7168}, {576, 7168},  {24576, 1536}, {32768, 512},
                                {7168, 16384}, {4096, 7168}, {7168, 2048}};
    std::vector<std::array<long long, 3>> shapes;
    for (long long m : {1LL, 64LL, 128LL, 4096LL})
        for (auto &p : nk)
            shapes.push_back({m, p[0], p[1]});
    /* odd M for the tails (correctness; timed too) */
    shapes.push_back({7, 2112, 7168});
    shapes.push_back({129, 4096, 7168});
    shapes.push_back({1000, 7168, 2048});
    shapes.push_back({4095, 2112, 7168});

    std::vector<shape_result> all;
    int fails_any = 0;
    for (auto &s : shapes) {
        if (only[0] && (s[0] != only[0] || s[1] != only[1] || s[2] != only[2]))
            continue;
        shape_result best = {};
        bool have = false;
        for (const kh_cfg *c : pick_cfgs(s[0], s[1], s[2])) {
            printf("-- %lldx%lldx%lld cfg %d\n", s[0], s[1], s[2], c->id);
            fflush(stdout);
            shape_result r = run_shape(s[0], s[1], s[2], sms, ++seed, c);
            if (!r.ok)
                ++fails_any;
            if (!have || (r.ok && r.t_kiln < best.t_kiln) || !best.ok) {
                best = r;
                have = true;
            }
        }
        if (have)
            all.push_back(best);
    }

    printf("\n%-22s %-20s %9s %9s %9s %9s %6s %9s %s\n", "shape MxNxK", "tile", "kiln us",
           "TFLOP/s", "GB/s", "LT TF/s", "ratio", "diff", "check");
    double lg = 0;
    int ng = 0, fails = 0;
    for (auto &r : all) {
        double flops = 2.0 * r.m * r.n * r.k;
        long long KB = r.k / 128, MA = (r.m + 3) / 4 * 4, NB = (r.n + 127) / 128;
        double bytes = (double)r.m * r.k + (double)r.n * r.k + 4.0 * (KB * MA + NB * KB) +
                       2.0 * r.m * r.n;
        char shp[64], tile[48];
        snprintf(shp, sizeof shp, "%lldx%lldx%lld", r.m, r.n, r.k);
        snprintf(tile, sizeof tile, "%dx%d s%d k%d%s%s%s", r.bm, r.bn, r.stages, r.ksplit,
                 r.sw ? "" : " sw0",
                 r.mc > 1 ? " mc2" : "", r.ck > 1 ? (r.ck == 2 ? " c2" : r.ck == 3 ? " c3" : r.ck == 4 ? " c4" : " c8") : "");
        printf("%-22s %-20s %9.2f %9.1f %9.0f %9.1f %6.2f %9.2e %s\n", shp, tile, r.t_kiln * 1e6,
               flops / r.t_kiln * 1e-12, bytes / r.t_kiln * 1e-9, flops / r.t_lt * 1e-12,
               r.t_lt / r.t_kiln, r.diff_kiln, r.ok ? "OK" : "FAIL");
        fails += !r.ok;
        if ((r.m == 64 || r.m == 128 || r.m == 4096) && r.n != 576 && r.lt_ok &&
            std::isfinite(r.t_lt) && r.t_kiln > 0) {
            lg += std::log(r.t_lt / r.t_kiln);
            ++ng;
        }
    }
    if (ng)
        printf("geomean speedup over cuBLASLt block-scaled FP8 (%d shapes): %.3f\n", ng,
               std::exp(lg / ng));
    printf("%s: %d failing runs (any config)\n", fails_any ? "FAIL" : "PASS", fails_any);
    return fails_any ? 1 : 0;
}

#endif
