/* FP8 GEMM configurations. The figures behind these choices are in docs/gemm_fp8_notes.md
 * (measured on the H200): decode sizes are bound by reading B, so the N tiles are sized to
 * give every SM one; prefill uses 128 x 128 tiles, whose B scales align with the tile. */
#include "gemm_config.h"

enum { SMEM_LIMIT = 232448, MAX_STAGES = 32 };

static int round_up(int v, int to)
{
    return (v + to - 1) / to * to;
}

/* B-scale blocks of 128 columns a tile of block_n columns touches (the template's NSB). */
static int scale_blocks(int block_n)
{
    bool aligned = block_n % 128 == 0 || 128 % block_n == 0;
    return aligned ? (block_n + 127) / 128 : block_n / 128 + 2;
}

int kiln__gemm_fp8_smem(const kiln__gemm_config *cfg)
{
    int row_groups = cfg->block_m / 64;
    int staging = round_up(row_groups * 64 * cfg->block_n * 2, 1024);
    int reduction = round_up((cfg->k_split - 1) * row_groups * 64 * cfg->block_n * 4, 1024);
    int per_stage = cfg->block_m * 128 + cfg->block_n * 128 + cfg->block_m * 4;
    int scales = round_up(cfg->stages * scale_blocks(cfg->block_n) * 4, 16);
    return staging + reduction + cfg->stages * per_stage + scales + cfg->stages * 16 + 1024;
}

int kiln__gemm_fp8_threads(const kiln__gemm_config *cfg)
{
    return (cfg->block_m / 64 * cfg->k_split + 1) * 128;
}

/* As many stages as fit, a multiple of k_split. */
static int fit_stages(kiln__gemm_config *cfg)
{
    for (cfg->stages = MAX_STAGES; cfg->stages >= 2; cfg->stages -= cfg->k_split)
        if (cfg->stages % cfg->k_split == 0 && kiln__gemm_fp8_smem(cfg) <= SMEM_LIMIT)
            return cfg->stages;
    return 0;
}

kiln__gemm_config kiln__gemm_fp8_pick(int64_t m, int64_t n, int64_t k, int num_sms)
{
    kiln__gemm_config cfg = {.block_m = 128, .block_n = 128, .group_n = 8, .k_split = 1,
                             .multicast = 1};
    int64_t k_blocks = k / 128;
    if (m <= 128) {
        /* One N tile per SM: B is read once, spread over the whole chip. The register file
         * bounds block_n (block_n/2 accumulators twice over per thread). */
        cfg.block_m = m <= 64 ? 64 : 128;
        int per_sm = (int)((n + num_sms - 1) / num_sms);
        int cap = cfg.block_m == 64 ? 192 : 128;
        cfg.block_n = per_sm <= 16 ? 16 : round_up(per_sm, 8);
        if (cfg.block_n > cap) /* more than one wave anyway: tiles aligned to the scales */
            cfg.block_n = 128;
        /* Split K inside the CTA when the tile is narrow (the notes' k_split). Four math
         * warpgroups fit only with 64-row tiles (1024 threads at most). */
        int max_split = cfg.block_m == 64 ? (cfg.block_n <= 64 ? 4 : cfg.block_n <= 128 ? 2 : 1)
                                          : (cfg.block_n <= 64 ? 2 : 1);
        for (cfg.k_split = max_split; cfg.k_split > 1 && k_blocks % cfg.k_split != 0;)
            cfg.k_split /= 2;
    } else if (n <= 1024) {
        cfg.block_n = 144; /* the notes' best for N = 576 */
    }
    if (fit_stages(&cfg) == 0) {
        cfg.k_split = 1;
        fit_stages(&cfg);
    }
    return cfg;
}

void kiln__gemm_fp8_spec(kj_spec *spec, int64_t n, int64_t k, const kiln__gemm_config *cfg)
{
    /* Positional, in the order of the template's parameter list (src/jit/templates.c): this
     * runs on every call, so no lookups by name. */
    kj_spec_init(spec, KJ_GEMM_FP8);
    const int64_t values[] = {n, k, cfg->block_m, cfg->block_n, cfg->stages, cfg->group_n,
                              cfg->k_split, cfg->multicast, /* out_f32 */ 0};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        spec->values[i] = values[i];
}
