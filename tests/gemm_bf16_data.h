/* BF16 GEMM problems for the gpu suite and the benchmark: random BF16 operands, device
 * copies in any of the four layouts, and the FP64 CPU reference (threads over output
 * rows). */
#ifndef KILN_TEST_GEMM_BF16_DATA_H
#define KILN_TEST_GEMM_BF16_DATA_H

#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

#include "gpu_util.h"

/* count random BF16 values: normal (never zero in practice), or with `fast` random
 * mantissas, signs and exponents spanning [2^-7, 1) (for timing, where drawing normal
 * values would cost more than the runs). *as_float (may be NULL) gets the same values as
 * floats. Caller frees both. */
static inline uint16_t *bf16_random(int64_t count, uint64_t *seed, bool fast, float **as_float)
{
    uint16_t *h = malloc((size_t)count * 2);
    for (int64_t i = 0; i < count; i += 4) {
        uint64_t r = fast ? rng_next(seed) : 0;
        for (int j = 0; j < 4 && i + j < count; j++) {
            if (fast) {
                uint16_t bits = (uint16_t)(r >> (16 * j));
                /* sign, exponent 120..127, 7 mantissa bits */
                h[i + j] = (uint16_t)((bits & 0x807f) | ((120 + ((bits >> 7) & 7)) << 7));
            } else {
                h[i + j] = float_to_bf16((float)rng_normal(seed));
            }
        }
    }
    if (as_float != NULL) {
        *as_float = malloc((size_t)count * 4);
        for (int64_t i = 0; i < count; i++)
            (*as_float)[i] = bf16_to_float(h[i]);
    }
    return h;
}

/* A device copy of the row-major host matrix h [rows][cols]: as is, or transposed to
 * [cols][rows]; the stored rows `stride` elements apart (>= the stored row length). */
static inline void *bf16_upload(const uint16_t *h, int64_t rows, int64_t cols, bool transpose,
                                int64_t stride)
{
    int64_t out_rows = transpose ? cols : rows, out_cols = transpose ? rows : cols;
    size_t bytes = (size_t)(out_rows * stride) * 2;
    uint16_t *t = calloc(bytes / 2 ? bytes / 2 : 1, 2);
    for (int64_t r = 0; r < out_rows; r++)
        for (int64_t c = 0; c < out_cols; c++)
            t[r * stride + c] = transpose ? h[c * cols + r] : h[r * cols + c];
    void *d = gpu_alloc(bytes);
    gpu_upload(d, t, bytes);
    free(t);
    return d;
}

typedef struct bf16_ref_job {
    const float *a, *b;
    int64_t lda, n, k;
    const int64_t *rows;
    int64_t num_rows, first, step; /* row blocks first, first + step, ... */
    double *out;                   /* [num_rows][n] */
} bf16_ref_job;

/* Like the FP8 reference: B walked once per block of BF16_REF_ROWS output rows (A rows
 * interleaved), each output summed in exactly the order of a plain per-row loop. */
enum { BF16_REF_ROWS = 4 };

static void *bf16_ref_worker(void *user)
{
    bf16_ref_job *j = user;
    const int64_t k = j->k, R = BF16_REF_ROWS;
    double *arows = malloc((size_t)(R * k) * sizeof(double)); /* [k][R] */
    for (int64_t i0 = j->first * R; i0 < j->num_rows; i0 += j->step * R) {
        int64_t count = j->num_rows - i0 < R ? j->num_rows - i0 : R;
        for (int64_t r = 0; r < R; r++) {
            const float *a = j->a + j->rows[i0 + (r < count ? r : 0)] * j->lda;
            for (int64_t c = 0; c < k; c++)
                arows[c * R + r] = a[c];
        }
        for (int64_t col = 0; col < j->n; col++) {
            const float *b = j->b + col * k;
            double acc[8][BF16_REF_ROWS] = {{0}};
            int64_t c = 0;
            for (; c + 8 <= k; c += 8)
                for (int u = 0; u < 8; u++) {
                    const double bv = b[c + u], *a = arows + (c + u) * R;
                    for (int r = 0; r < BF16_REF_ROWS; r++)
                        acc[u][r] += a[r] * bv;
                }
            for (; c < k; c++)
                for (int r = 0; r < BF16_REF_ROWS; r++)
                    acc[0][r] += arows[c * R + r] * (double)b[c];
            for (int64_t r = 0; r < count; r++) {
                double *o = j->out + (i0 + r) * j->n + col;
                *o = ((acc[0][r] + acc[1][r]) + (acc[2][r] + acc[3][r])) +
                     ((acc[4][r] + acc[5][r]) + (acc[6][r] + acc[7][r]));
            }
        }
    }
    free(arows);
    return NULL;
}

/* FP64 reference of the given rows: out[i][col] = sum_c a[rows[i] * lda + c] b[col * k + c]
 * (b is [n][k], i.e. D = A . B^T). */
static inline void bf16_reference(const float *a, int64_t lda, const float *b, int64_t n,
                                  int64_t k, const int64_t *rows, int64_t num_rows, double *out)
{
    long threads = host_threads();
    pthread_t tid[64];
    bf16_ref_job jobs[64];
    for (long t = 0; t < threads; t++) {
        jobs[t] = (bf16_ref_job){a, b, lda, n, k, rows, num_rows, t, threads, out};
        pthread_create(&tid[t], NULL, bf16_ref_worker, &jobs[t]);
    }
    for (long t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
}

#endif
