#include "tma.h"

#include <stdio.h>

static int encode(kiln_ctx *ctx, CUtensorMap *map, const char *what, CUtensorMapDataType dtype,
                  int elem_bytes, const void *base, uint64_t depth, uint64_t rows, uint64_t cols,
                  uint64_t row_stride, uint64_t depth_stride, uint32_t box_rows,
                  uint32_t box_cols, CUtensorMapSwizzle swizzle)
{
    /* Dimension 0 is the contiguous one. TMA needs a 16-byte aligned base and pitches. */
    cuuint32_t rank = depth > 0 ? 3 : 2;
    cuuint64_t dims[3] = {cols, rows, depth};
    cuuint64_t strides[2] = {row_stride * (uint64_t)elem_bytes,
                             depth_stride * (uint64_t)elem_bytes};
    cuuint32_t box[3] = {box_cols, box_rows, 1};
    cuuint32_t elem_strides[3] = {1, 1, 1};
    CUresult rc = ctx->drv->cuTensorMapEncodeTiled(
        map, dtype, rank, (void *)base, dims, strides, box, elem_strides,
        CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
        CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (rc != CUDA_SUCCESS) {
        kiln__err err = {0};
        char call[256];
        snprintf(call, sizeof call,
                 "cuTensorMapEncodeTiled(%s: %llu x %llu, pitch %llu B, box %u x %u)", what,
                 (unsigned long long)rows, (unsigned long long)cols,
                 (unsigned long long)strides[0], box_rows, box_cols);
        kiln__driver_error(&err, call, rc);
        return kiln__ctx_fail(ctx, &err);
    }
    return KILN_OK;
}

int kiln__tma_2d(kiln_ctx *ctx, CUtensorMap *map, const char *what, CUtensorMapDataType dtype,
                 int elem_bytes, const void *base, uint64_t rows, uint64_t cols,
                 uint64_t row_stride, uint32_t box_rows, uint32_t box_cols,
                 CUtensorMapSwizzle swizzle)
{
    return encode(ctx, map, what, dtype, elem_bytes, base, 0, rows, cols, row_stride, 0, box_rows,
                  box_cols, swizzle);
}

int kiln__tma_3d(kiln_ctx *ctx, CUtensorMap *map, const char *what, CUtensorMapDataType dtype,
                 int elem_bytes, const void *base, uint64_t depth, uint64_t rows, uint64_t cols,
                 uint64_t row_stride, uint64_t depth_stride, uint32_t box_rows, uint32_t box_cols,
                 CUtensorMapSwizzle swizzle)
{
    return encode(ctx, map, what, dtype, elem_bytes, base, depth, rows, cols, row_stride,
                  depth_stride, box_rows, box_cols, swizzle);
}
