/* FP8 GEMM problems for the gpu suite and the benchmark: random E4M3 operands with
 * DeepSeek scales, device copies in kiln's layouts, and the FP64 CPU reference of the
 * dequantized inputs (threads over output rows). */
#ifndef KILN_TEST_GEMM_FP8_DATA_H
#define KILN_TEST_GEMM_FP8_DATA_H

#include <pthread.h>
#include <unistd.h>

#include "gpu_util.h"

typedef struct fp8_problem {
    int64_t m_max, n, k;
    uint8_t *a, *b;  /* host E4M3 [m_max][k], [n][k] */
    float *sa;       /* host per row per K block: [m_max][k/128] */
    float *sb;       /* host [ceil(n/128)][k/128] */
    float *sb_col;   /* NULL, or 1x128 scales of B (the FP32 mode): host [k/128][n] */
    void *da, *db, *dsfb; /* device copies (dsfb in kiln's layout) */
} fp8_problem;

/* A random E4M3 byte, never NaN: every finite code equally likely (for timing, where
 * drawing normal values would cost more than the runs). */
static inline void random_e4m3_bytes(uint8_t *dst, int64_t count, uint64_t *seed)
{
    for (int64_t i = 0; i < count; i += 8) {
        uint64_t r = rng_next(seed);
        for (int j = 0; j < 8 && i + j < count; j++) {
            uint8_t v = (uint8_t)(r >> (8 * j));
            dst[i + j] = (v & 0x7f) == 0x7f ? v ^ 1 : v;
        }
    }
}

/* E4M3 values of N(0, 100^2) (about 1.5 in 100,000 round to the largest code, 448), drawn
 * by all CPUs: chunk c of NORMAL_CHUNK values has its own xorshift stream seeded from
 * (seed, c), so the values depend on the seed alone, not on the number of threads. */
enum { NORMAL_CHUNK = 1 << 20 };

typedef struct normal_job {
    uint8_t *dst;
    int64_t count, first, step; /* chunks first, first + step, ... */
    uint64_t seed;
} normal_job;

static void *normal_worker(void *user)
{
    normal_job *j = user;
    for (int64_t c = j->first; c * NORMAL_CHUNK < j->count; c += j->step) {
        uint64_t s = (j->seed ^ ((uint64_t)(c + 1) * 0x9E3779B97F4A7C15ull)) | 1; /* never 0 */
        rng_next(&s);
        int64_t end = (c + 1) * NORMAL_CHUNK < j->count ? (c + 1) * NORMAL_CHUNK : j->count;
        for (int64_t i = c * NORMAL_CHUNK; i < end; i++)
            j->dst[i] = float_to_e4m3((float)(rng_normal(&s) * 100.0));
    }
    return NULL;
}

static inline void random_normal_e4m3(uint8_t *dst, int64_t count, uint64_t *seed)
{
    const uint64_t base = rng_next(seed);
    long threads = host_threads();
    pthread_t tid[64];
    normal_job jobs[64];
    for (long t = 0; t < threads; t++) {
        jobs[t] = (normal_job){dst, count, t, threads, base};
        pthread_create(&tid[t], NULL, normal_worker, &jobs[t]);
    }
    for (long t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
}

/* E4M3 values of a normal distribution (random_normal_e4m3), or with `fast` uniformly random
 * codes, and scales spread over a decade. */
static inline void fp8_problem_make_with(fp8_problem *p, int64_t m_max, int64_t n, int64_t k,
                                         uint64_t *seed, bool fast)
{
    *p = (fp8_problem){.m_max = m_max, .n = n, .k = k};
    int64_t kb = k / 128, nb = (n + 127) / 128;
    p->a = malloc((size_t)(m_max * k));
    p->b = malloc((size_t)(n * k));
    p->sa = malloc((size_t)(m_max * kb) * 4);
    p->sb = malloc((size_t)(nb * kb) * 4);
    if (fast) {
        random_e4m3_bytes(p->a, m_max * k, seed);
        random_e4m3_bytes(p->b, n * k, seed);
    } else {
        random_normal_e4m3(p->a, m_max * k, seed);
        random_normal_e4m3(p->b, n * k, seed);
    }
    for (int64_t i = 0; i < m_max * kb; i++)
        p->sa[i] = (float)(1e-3 * (1.0 + 9.0 * rng_uniform(seed)));
    for (int64_t i = 0; i < nb * kb; i++)
        p->sb[i] = (float)(1e-3 * (1.0 + 9.0 * rng_uniform(seed)));
    p->da = gpu_alloc((size_t)(m_max * k));
    p->db = gpu_alloc((size_t)(n * k));
    p->dsfb = gpu_alloc((size_t)(nb * kb) * 4);
    gpu_upload(p->da, p->a, (size_t)(m_max * k));
    gpu_upload(p->db, p->b, (size_t)(n * k));
    gpu_upload(p->dsfb, p->sb, (size_t)(nb * kb) * 4);
}

static inline void fp8_problem_make(fp8_problem *p, int64_t m_max, int64_t n, int64_t k,
                                    uint64_t *seed)
{
    fp8_problem_make_with(p, m_max, n, k, seed, false);
}

static inline void fp8_problem_free(fp8_problem *p)
{
    gpu_free(p->da);
    gpu_free(p->db);
    gpu_free(p->dsfb);
    free(p->a);
    free(p->b);
    free(p->sa);
    free(p->sb);
    free(p->sb_col);
}

/* A's scales for the first m rows in kiln's MN-major layout [k/128][kiln_sf_mn_stride(m)]
 * (padding 0). Caller frees. */
static inline float *fp8_problem_sfa(const fp8_problem *p, int64_t m)
{
    int64_t kb = p->k / 128, stride = kiln_sf_mn_stride(m);
    float *sfa = calloc((size_t)(kb * stride), 4);
    for (int64_t r = 0; r < m; r++)
        for (int64_t b = 0; b < kb; b++)
            sfa[b * stride + r] = p->sa[r * kb + b];
    return sfa;
}

/* The reference walks B once per block of REF_ROWS output rows (A rows interleaved so the
 * inner loop is an outer product): a quarter of the memory traffic of a pass per row, and
 * each output still sums in exactly the order of the plain loop (8 partial sums over c). */
enum { REF_ROWS = 4 };

typedef struct ref_job {
    const fp8_problem *p;
    const int64_t *rows;
    int64_t num_rows, first, step; /* row blocks first, first + step, ... */
    double *out; /* [num_rows][n] */
    const double *bdeq;
} ref_job;

static void *ref_worker(void *user)
{
    ref_job *j = user;
    const fp8_problem *p = j->p;
    int64_t k = p->k, kb = k / 128, n = p->n;
    double *arows = malloc((size_t)(REF_ROWS * k) * sizeof(double)); /* [k][REF_ROWS] */
    for (int64_t i0 = j->first * REF_ROWS; i0 < j->num_rows; i0 += j->step * REF_ROWS) {
        int64_t count = j->num_rows - i0 < REF_ROWS ? j->num_rows - i0 : REF_ROWS;
        for (int64_t r = 0; r < REF_ROWS; r++) {
            int64_t row = j->rows[i0 + (r < count ? r : 0)]; /* a short block repeats a row */
            for (int64_t c = 0; c < k; c++)
                arows[c * REF_ROWS + r] =
                    e4m3_to_double(p->a[row * k + c]) * p->sa[row * kb + c / 128];
        }
        for (int64_t col = 0; col < n; col++) {
            const double *brow = j->bdeq + col * k;
            double acc[8][REF_ROWS] = {{0}};
            for (int64_t c = 0; c < k; c += 8)
                for (int u = 0; u < 8; u++) {
                    const double b = brow[c + u], *a = arows + (c + u) * REF_ROWS;
                    for (int r = 0; r < REF_ROWS; r++)
                        acc[u][r] += a[r] * b;
                }
            for (int64_t r = 0; r < count; r++)
                j->out[(i0 + r) * n + col] = ((acc[0][r] + acc[1][r]) + (acc[2][r] + acc[3][r])) +
                                             ((acc[4][r] + acc[5][r]) + (acc[6][r] + acc[7][r]));
        }
    }
    free(arows);
    return NULL;
}

/* FP64 reference of the given rows: out[i][col] = sum_k A[rows[i]][k] sa B[col][k] sb. */
static inline void fp8_reference(const fp8_problem *p, const int64_t *rows, int64_t num_rows,
                                 double *out)
{
    int64_t k = p->k, kb = k / 128;
    double *bdeq = malloc((size_t)(p->n * k) * sizeof(double));
    for (int64_t col = 0; col < p->n; col++)
        for (int64_t c = 0; c < k; c++)
            bdeq[col * k + c] = e4m3_to_double(p->b[col * k + c]) *
                                (p->sb_col ? p->sb_col[(c / 128) * p->n + col]
                                           : p->sb[(col / 128) * kb + c / 128]);
    long threads = host_threads();
    pthread_t tid[64];
    ref_job jobs[64];
    for (long t = 0; t < threads; t++) {
        jobs[t] = (ref_job){p, rows, num_rows, t, threads, out, bdeq};
        pthread_create(&tid[t], NULL, ref_worker, &jobs[t]);
    }
    for (long t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    free(bdeq);
}

#endif
