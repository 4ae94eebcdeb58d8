/* Checks of BF16 GEMM outputs for the gpu suite's programs (cmocka: a failed check ends the
 * test): output elements in BF16 or FP32, the poison pattern, and rows against the FP64
 * reference of gemm_bf16_data.h. */
#ifndef KILN_TEST_GEMM_BF16_CHECK_H
#define KILN_TEST_GEMM_BF16_CHECK_H

#include "gemm_bf16_data.h"

static inline double out_value(const void *d, int64_t i, bool f32)
{
    return f32 ? (double)((const float *)d)[i] : (double)bf16_to_float(((const uint16_t *)d)[i]);
}

static inline bool out_poisoned(const void *d, int64_t i, bool f32)
{
    return f32 ? ((const uint32_t *)d)[i] == 0xffffffffu : ((const uint16_t *)d)[i] == 0xffff;
}

/* Rows `rows` of d (row stride ld) against ref ([num_rows][n]): elementwise bounds (BF16
 * output keeps 8 significant bits; FP32 output only the accumulation order differs) and
 * the diff < 1e-5 of REFERENCE.md. Returns the diff. */
static inline double compare(const char *what, const void *d, int64_t ld, bool f32, const int64_t *rows,
                      int64_t num_rows, int64_t n, const double *ref)
{
    double sref2 = 0;
    for (int64_t i = 0; i < num_rows * n; i++)
        sref2 += ref[i] * ref[i];
    double rms = sqrt(sref2 / (double)(num_rows * n > 0 ? num_rows * n : 1));
    double sxy = 0, sxx_yy = 0, worst = 0;
    for (int64_t i = 0; i < num_rows; i++)
        for (int64_t c = 0; c < n; c++) {
            double x = out_value(d, rows[i] * ld + c, f32), y = ref[i * n + c];
            double err = fabs(x - y), bound = f32 ? 1e-4 * rms + 1e-5 * fabs(y)
                                                  : fabs(y) / 128 + 1e-4 * rms;
            if (!isfinite(x) || err > bound)
                fail_msg("%s: D[%lld][%lld] = %g, reference %g", what, (long long)rows[i],
                         (long long)c, x, y);
            sxy += x * y;
            sxx_yy += x * x + y * y;
            worst = err / rms > worst ? err / rms : worst;
        }
    double diff = sxx_yy > 0 ? 1.0 - 2.0 * sxy / sxx_yy : 0;
    if (!(diff < 1e-5))
        fail_msg("%s: diff %.3e", what, diff);
    return diff;
}

#endif
