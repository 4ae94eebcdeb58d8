/* libFuzzer target: every operator's launch arguments built from the fuzz bytes (tensors
 * of any dtype, rank, shape and strides, NULL or misaligned data) on a compile-only
 * context. A call must fail with INVALID_ARG, or NO_DEVICE once its arguments pass, with a
 * message naming the operator; nothing is launched, so the data pointers are never read.
 * Run by scripts/fuzz.sh. */
#include <string.h>

#include "fuzz_common.h"

static kiln_tensor fuzz_tensor(fuzz_bytes *in)
{
    kiln_tensor t;
    memset(&t, 0, sizeof t);
    unsigned data = fuzz_byte(in) % 4; /* NULL, aligned, aligned, 4 bytes off */
    t.data = data == 0 ? NULL : (void *)(uintptr_t)(0x7f0000000000ull + (data == 3 ? 4 : 0));
    t.dtype = (kiln_dtype)(fuzz_byte(in) % 7);
    t.ndim = (int)(fuzz_byte(in) % 6) - 1;
    for (int i = 0; i < 4; i++)
        t.shape[i] = fuzz_value(in);
    if (fuzz_byte(in) & 1) /* else all 0: contiguous */
        for (int i = 0; i < 4; i++)
            t.strides[i] = fuzz_value(in);
    return t;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static kiln_ctx *ctx;
    if (ctx == NULL)
        ctx = fuzz_ctx(0);
    fuzz_bytes in = {data, size};
    unsigned op = fuzz_byte(&in) % 9;
    kiln_tensor t[7];
    for (int i = 0; i < 7; i++)
        t[i] = fuzz_tensor(&in);
    long long value = fuzz_value(&in);
    int small = (int)(fuzz_byte(&in) % 6) - 1;
    void *workspace = small > 2 ? (void *)(uintptr_t)0x7f0000001000ull : NULL;
    kiln_status s = KILN_OK;
    const char *name = "";
    switch (op) {
    case 0: {
        kiln_quant_fp8_args a = {t[0], t[1], t[2]};
        name = "kiln_quant_fp8_per_token", s = kiln_quant_fp8_per_token(ctx, &a, NULL);
        break;
    }
    case 1: {
        kiln_quant_fp8_args a = {t[0], t[1], t[2]};
        name = "kiln_quant_fp8_per_block", s = kiln_quant_fp8_per_block(ctx, &a, NULL);
        break;
    }
    case 2: {
        kiln_sf_transpose_args a = {t[0], t[1]};
        name = "kiln_sf_transpose", s = kiln_sf_transpose(ctx, &a, NULL);
        break;
    }
    case 3: {
        kiln_gemm_fp8_args a = {t[0], t[1], t[2], t[3], t[4], t[5], workspace, value, small};
        name = "kiln_gemm_fp8", s = kiln_gemm_fp8(ctx, &a, NULL);
        break;
    }
    case 4: {
        kiln_gemm_fp8_masked_args a = {t[0], t[1], t[2], t[3], t[4], t[5], value, small};
        name = "kiln_gemm_fp8_masked", s = kiln_gemm_fp8_masked(ctx, &a, NULL);
        break;
    }
    case 5: {
        kiln_gemm_fp8_contig_args a = {t[0], t[1], t[2], t[3], t[4], t[5], value, t[6]};
        name = "kiln_gemm_fp8_contig", s = kiln_gemm_fp8_contig(ctx, &a, NULL);
        break;
    }
    case 6: {
        kiln_gemm_bf16_args a = {t[0], t[1], t[2], small, small & 1};
        name = "kiln_gemm_bf16", s = kiln_gemm_bf16(ctx, &a, NULL);
        break;
    }
    case 7: {
        kiln_gemm_bf16_masked_args a = {t[0], t[1], t[2], t[3], value};
        name = "kiln_gemm_bf16_masked", s = kiln_gemm_bf16_masked(ctx, &a, NULL);
        break;
    }
    default: {
        kiln_gemm_bf16_contig_args a = {t[0], t[1], t[2], t[3], value, t[4]};
        name = "kiln_gemm_bf16_contig", s = kiln_gemm_bf16_contig(ctx, &a, NULL);
        break;
    }
    }
    if ((s != KILN_ERR_INVALID_ARG && s != KILN_ERR_NO_DEVICE) ||
        strstr(kiln_ctx_errmsg(ctx), name) == NULL)
        fuzz_fail(ctx, name, s);
    fuzz_forget_error(ctx);
    return 0;
}
