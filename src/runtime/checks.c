/* Argument checks shared by the operators: each failure names the operator and tensor. */
#include <stdio.h>

#include "internal.h"

const char *kiln__dtype_name(kiln_dtype dtype)
{
    switch (dtype) {
    case KILN_DTYPE_BF16: return "bf16";
    case KILN_DTYPE_F16: return "f16";
    case KILN_DTYPE_F32: return "f32";
    case KILN_DTYPE_E4M3: return "e4m3";
    case KILN_DTYPE_I32: return "i32";
    case KILN_DTYPE_INVALID: break;
    }
    return "invalid";
}

static int dtype_size(kiln_dtype dtype)
{
    switch (dtype) {
    case KILN_DTYPE_BF16:
    case KILN_DTYPE_F16: return 2;
    case KILN_DTYPE_F32:
    case KILN_DTYPE_I32: return 4;
    case KILN_DTYPE_E4M3: return 1;
    case KILN_DTYPE_INVALID: break;
    }
    return 0;
}

int64_t kiln__row_stride(const kiln_tensor *t)
{
    return t->strides[0] == 0 && t->strides[1] == 0 ? t->shape[1] : t->strides[0];
}

bool kiln__inner_contiguous(const kiln_tensor *t)
{
    return t->strides[t->ndim - 1] == 1 || (t->strides[0] == 0 && t->strides[1] == 0);
}

int kiln__check_tensor(kiln_ctx *ctx, const char *op, const char *name, const kiln_tensor *t,
                       kiln_dtype dtype, int ndim, unsigned align_bytes)
{
    if (t->data == NULL)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG, "%s: %s.data is NULL", op, name);
    if (t->dtype != dtype)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG, "%s: %s has dtype %s, expected %s", op,
                               name, kiln__dtype_name(t->dtype), kiln__dtype_name(dtype));
    if (t->ndim != ndim)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG, "%s: %s has %d dims, expected %d", op,
                               name, t->ndim, ndim);
    /* 2^40 elements bounds every size and offset the checks below compute (and is more
     * than any GPU holds), so none of them overflows. */
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] < 0 || t->strides[i] < 0 || t->shape[i] > (1LL << 40) ||
            t->strides[i] > (1LL << 40))
            return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                                   "%s: %s has a negative or too large (> 2^40) shape or stride in "
                                   "dim %d (%lld, %lld)",
                                   op, name, i, (long long)t->shape[i], (long long)t->strides[i]);
    if (!kiln__inner_contiguous(t))
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: %s must be contiguous in its last dim (stride %lld)", op,
                               name, (long long)t->strides[ndim - 1]);
    if (ndim == 2 && kiln__row_stride(t) < t->shape[1])
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: %s row stride %lld is smaller than its row length %lld", op,
                               name, (long long)kiln__row_stride(t), (long long)t->shape[1]);
    if ((uintptr_t)t->data % align_bytes != 0)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: %s.data %p is not %u-byte aligned", op, name, t->data,
                               align_bytes);
    if (ndim == 2 && (kiln__row_stride(t) * dtype_size(dtype)) % align_bytes != 0)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: %s row stride of %lld elements is not a multiple of %u bytes",
                               op, name, (long long)kiln__row_stride(t), align_bytes);
    return KILN_OK;
}

int kiln__check_call(kiln_ctx *ctx, const void *args, const char *op)
{
    if (ctx == NULL) {
        kiln__err err = {0};
        kiln__err_set(&err, KILN_ERR_INVALID_ARG, "%s: ctx is NULL", op);
        kiln__set_last_error(&err);
        return KILN_ERR_INVALID_ARG;
    }
    if (args == NULL)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG, "%s: args is NULL", op);
    return KILN_OK;
}

int kiln__check_device(kiln_ctx *ctx, const char *op)
{
    if (!ctx->has_device)
        return kiln__ctx_failf(ctx, KILN_ERR_NO_DEVICE,
                               "%s: the context is compile-only (no device)", op);
    return KILN_OK;
}

int kiln__check_shape3(kiln_ctx *ctx, const char *op, const char *name, const kiln_tensor *t,
                       int64_t d0, int64_t d1, int64_t d2, int64_t row_stride)
{
    bool packed = t->strides[0] == 0 && t->strides[1] == 0 && t->strides[2] == 0
                      ? row_stride == d2
                      : t->strides[2] == 1 && t->strides[1] == row_stride &&
                            t->strides[0] == d1 * row_stride;
    if (t->shape[0] != d0 || t->shape[1] != d1 || t->shape[2] != d2 || !packed)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: %s must be a contiguous [%lld, %lld, %lld] with rows of %lld "
                               "elements (got [%lld, %lld, %lld])",
                               op, name, (long long)d0, (long long)d1, (long long)d2,
                               (long long)row_stride, (long long)t->shape[0],
                               (long long)t->shape[1], (long long)t->shape[2]);
    return KILN_OK;
}

int kiln__check_rows(kiln_ctx *ctx, const char *op, int64_t m, int64_t min_rows)
{
    if (m < min_rows || m > KILN__MAX_ROWS)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: M = %lld is out of range (%lld .. 2^31 - 256)", op,
                               (long long)m, (long long)min_rows);
    return KILN_OK;
}

int kiln__check_groups(kiln_ctx *ctx, const char *op, int64_t g, int64_t m_max)
{
    if (g <= 0 || g > 65536 || m_max <= 0 || m_max > (1 << 24))
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: G = %lld, M_max = %lld: G must be in 1 .. 65536 and M_max in "
                               "1 .. 2^24",
                               op, (long long)g, (long long)m_max);
    return KILN_OK;
}

int kiln__check_contig_groups(kiln_ctx *ctx, const char *op, int64_t m_total, int64_t g)
{
    if (m_total > KILN__MAX_ROWS || g <= 0 || g > 65536)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: M_total = %lld, G = %lld: M_total must be at most 2^31 - 256 "
                               "and G in 1 .. 65536",
                               op, (long long)m_total, (long long)g);
    return KILN_OK;
}

int kiln__check_alignment(kiln_ctx *ctx, const char *op, const char *name, int64_t align)
{
    if (align <= 0 || align % 64 != 0 || align > (1 << 20))
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: %s = %lld must be a positive multiple of 64 (at most 2^20)",
                               op, name, (long long)align);
    return KILN_OK;
}

int64_t kiln__contig_units(int64_t m_total, int64_t g, int64_t n, int block_m, int block_n,
                           bool by_row)
{
    /* Prefix sums: each group may end in a partial tile, so at most M_total / block_m + G
     * row tiles. Row ids: the tiles of M_total rows (those of padding only are passed over). */
    int64_t row_tiles = by_row ? (m_total + block_m - 1) / block_m : m_total / block_m + g;
    return row_tiles * ((n + block_n - 1) / block_n);
}

int kiln__contig_layout(kiln_ctx *ctx, const char *op, const kiln_tensor *group_end,
                        const kiln_tensor *row_expert, const kiln_tensor **layout,
                        const char **name)
{
    bool by_row = row_expert->data != NULL;
    if (by_row == (group_end->data != NULL))
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: set exactly one of group_end and row_expert (got %s)", op,
                               by_row ? "both" : "neither");
    *layout = by_row ? row_expert : group_end;
    *name = by_row ? "row_expert" : "group_end";
    return kiln__check_tensor(ctx, op, *name, *layout, KILN_DTYPE_I32, 1, 4);
}

int kiln__check_masked_m(kiln_ctx *ctx, const char *op, const kiln_tensor *masked_m, int64_t g,
                         int64_t expected_m)
{
    if (masked_m->shape[0] != g)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG, "%s: masked_m must be I32 [G = %lld]", op,
                               (long long)g);
    if (expected_m < 0)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG, "%s: expected_m = %lld is negative", op,
                               (long long)expected_m);
    return KILN_OK;
}
