/* The kernel templates the library knows: their files, entry points and parameters.
 * Parameter names become `kp::<name>` constants in the generated translation unit. */
#include <string.h>

#include "jit.h"

const kj_template kj_templates[KJ_NUM_TEMPLATES] = {
    [KJ_QUANT_PER_TOKEN] = {"quant_per_token", "quant_per_token.cuh", "kiln_quant_per_token",
                            {"k", NULL}, true, {7168}},
    [KJ_QUANT_PER_BLOCK] = {"quant_per_block", "quant_per_block.cuh", "kiln_quant_per_block",
                            {"k", NULL}, true, {7168}},
    [KJ_SF_TRANSPOSE] = {"sf_transpose", "sf_transpose.cuh", "kiln_sf_transpose",
                         {"tile", NULL}, true, {32}},
    /* New parameters must mean "as before" at 0: a spec leaves unset ones at 0. */
    [KJ_GEMM_FP8] = {"gemm_fp8", "gemm_fp8.cuh", "kiln_gemm_fp8",
                     {"n", "k", "block_m", "block_n", "stages", "group_n", "k_split", "multicast",
                      "out_f32", "cluster_k", "grouping", "m_align", "overlap", "trace", "unroll",
                      "multicast_a", "loads_only", "turns", "math_only", "tail", "no_b_early", NULL},
                     true, {4096, 7168, 128, 128, 5, 8, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0}},
    [KJ_GEMM_BF16] = {"gemm_bf16", "gemm_bf16.cuh", "kiln_gemm_bf16",
                      {"n", "k", "block_m", "block_n", "stages", "group_n", "cluster_k", "layout",
                       "out_f32", "grouping", "m_align", "no_b_early", "defer_store", "split_issue",
                       NULL},
                      true, {4096, 7168, 128, 256, 4, 8, 0, 0, 0, 0, 0, 0, 1, 0}},
};

void kj_spec_init(kj_spec *spec, enum kj_template_id id)
{
    memset(spec, 0, sizeof *spec);
    spec->template_id = (uint32_t)id;
    const kj_template *t = &kj_templates[id];
    while (spec->num_params < KJ_MAX_PARAMS && t->params[spec->num_params] != NULL)
        spec->num_params++;
}

bool kj_spec_set(kj_spec *spec, const char *name, int64_t value)
{
    const kj_template *t = &kj_templates[spec->template_id];
    for (uint32_t i = 0; i < spec->num_params; i++) {
        if (strcmp(t->params[i], name) == 0) {
            spec->values[i] = value;
            return true;
        }
    }
    return false;
}
