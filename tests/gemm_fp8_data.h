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

/* E4M3 values of a normal distribution (about 2 in 1000 saturate at 448), or with `fast`
 * uniformly random codes, and scales spread over a decade. */
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
        for (int64_t i = 0; i < m_max * k; i++)
            p->a[i] = float_to_e4m3((float)(rng_normal(seed) * 100.0));
        for (int64_t i = 0; i < n * k; i++)
            p->b[i] = float_to_e4m3((float)(rng_normal(seed) * 100.0));
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

typedef struct ref_job {
    const fp8_problem *p;
    const int64_t *rows;
    int64_t num_rows, first, step;
    double *out; /* [num_rows][n] */
    const double *bdeq;
} ref_job;

static void *ref_worker(void *user)
{
    ref_job *j = user;
    const fp8_problem *p = j->p;
    int64_t k = p->k, kb = k / 128, n = p->n;
    double *arow = malloc((size_t)k * sizeof(double));
    for (int64_t i = j->first; i < j->num_rows; i += j->step) {
        int64_t r = j->rows[i];
        for (int64_t c = 0; c < k; c++)
            arow[c] = e4m3_to_double(p->a[r * k + c]) * p->sa[r * kb + c / 128];
        for (int64_t col = 0; col < n; col++) {
            const double *brow = j->bdeq + col * k;
            double acc[8] = {0};
            for (int64_t c = 0; c < k; c += 8)
                for (int u = 0; u < 8; u++)
                    acc[u] += arow[c + u] * brow[c + u];
            j->out[i * n + col] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) +
                                  ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        }
    }
    free(arow);
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
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1)
        threads = 1;
    if (threads > 64)
        threads = 64;
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
