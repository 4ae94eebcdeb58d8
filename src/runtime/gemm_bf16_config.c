/* BF16 GEMM configurations. Decode sizes (M <= 128) are bound by reading B, and with tiles
 * narrow enough to give every SM one, each CTA also re-reads all of A: the pick weighs the
 * bytes one CTA moves (its A and B tiles over its K range, plus the FP32 partial sums a
 * cluster_k split hands to rank 0) and keeps the cheapest split. Prefill uses 128-row tiles
 * as wide as the wave count allows (the FP32 accumulator stays in the wgmma registers, so
 * 128 x 256 fits). */
#include "gemm_bf16.h"

enum { SMEM_LIMIT = 232448, MAX_STAGES = 32, MIN_DECODE_STAGES = 4 };

static int round_up(int v, int to)
{
    return (v + to - 1) / to * to;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

int kiln__gemm_bf16_slab(int block_n, int elem_bytes)
{
    for (int bytes = 128; bytes >= 32; bytes /= 2)
        if (block_n % (bytes / elem_bytes) == 0)
            return bytes / elem_bytes;
    return block_n;
}

int kiln__gemm_bf16_smem(const kiln__gemm_bf16_config *cfg)
{
    int row_groups = cfg->block_m / 64, elem = cfg->out_f32 ? 4 : 2;
    int staging = row_groups * 2 * round_up(64 * kiln__gemm_bf16_slab(cfg->block_n, elem) * elem, 1024);
    bool split = cfg->cluster_k > 1;
    int partials =
        round_up(kiln__cluster_reduce_bytes(cfg->block_m, cfg->block_n, cfg->cluster_k), 1024);
    int per_stage = (cfg->block_m + cfg->block_n) * 128;
    return staging + partials + cfg->stages * per_stage + cfg->stages * 16 +
           (split ? row_groups * 16 : 0) + 1024;
}

int kiln__gemm_bf16_threads(const kiln__gemm_bf16_config *cfg)
{
    return (cfg->block_m / 64 + 1) * 128;
}

void kiln__gemm_bf16_fit(kiln__gemm_bf16_config *cfg)
{
    for (cfg->stages = MAX_STAGES; cfg->stages >= 2; cfg->stages--)
        if (kiln__gemm_bf16_smem(cfg) <= SMEM_LIMIT)
            return;
    cfg->stages = 0;
}

int kiln__gemm_bf16_width_step(int layout)
{
    return layout & 2 ? 64 : 8; /* an N-major B comes in 64-column boxes */
}

/* Decode: for a K split over clusters of 1, 2, 4 or 8 CTAs (kiln__resident_clusters: 132,
 * 66, 30 and 15 fit at once on 132 SMs), the tile width that gives each cluster one tile,
 * and half that width (two tiles per cluster: the first one's store overlaps the second
 * one's loads). The configuration with the lowest cost wins: per wave, the bytes a CTA
 * streams (B, and A at half weight: every CTA reads the same A, mostly from L2) plus the
 * FP32 partial sums a cluster_k split hands over DSMEM at the end of a tile, where nothing
 * overlaps them (5 streamed bytes each); plus the last tile's store, which nothing overlaps
 * either (4.5 per byte). The weights were fitted to the profiler's times of every
 * configuration `kiln-bench-gemm-bf16 --sweep` tries on 21 decode shapes (stop 51,
 * docs/gemm_bf16_notes.md): the pick is the fastest, or within 0.6% of it, on all 21.
 * An N-major B (64-column boxes of 64 K rows) has weights of its own, fitted the same way
 * to every width and split on 16 decode shapes under NN (stop 53's sweep): each K block a
 * CTA walks costs as much as 10000 streamed bytes, a partial sum 12 and the last tile's
 * store 16 per byte. The pick is then the fastest, or within 0.2%, on 15 of the 16
 * (64x7168x16384: 64x128 over 2, 2.9% behind 64x128 alone on 56 SMs, not a candidate) and
 * sits inside a band of weights that all do as well. With the K-major weights 64x2112x7168
 * took 64x64 tiles over clusters of 2: 15.01 -> 12.84 us with these (profiler, two
 * rounds). scripts/bf16_decode_fit.py replays this pick against a sweep: change both. */
/* The decode cost's weights: [0] a K-major B, [1] an N-major B. An N-major B's clustered tiles
 * are at most 128 columns wide: clustered 192- and 256-column tiles ran slower than the
 * model says (stop 52, NN, profiler sweep, us: 64x2112x7168 64x192 over 8 16.10, 64x64 over 2
 * 15.04, 64x128 over 4 12.80; 64x7168x16384 64x256 over 4 63.97, 64x128 over 2 62.05). */
static const struct decode_weights {
    double a, dsmem, store, k_block; /* streamed bytes per byte of each, per K block */
    int max_clustered;               /* widest tile of a cluster_k split */
} decode_weights[2] = {{0.5, 5.0, 4.5, 0.0, 256}, {0.5, 12.0, 16.0, 10000.0, 128}};

static void pick_decode(kiln__gemm_bf16_config *cfg, int64_t n, int64_t k, int num_sms)
{
    const struct decode_weights *w = &decode_weights[(cfg->layout & 2) != 0];
    const int64_t k_blocks = ceil_div(k, 64);
    const int step = kiln__gemm_bf16_width_step(cfg->layout);
    const int splits[] = {1, 2, 4, 8};
    double best = -1;
    kiln__gemm_bf16_config pick = *cfg; /* a fallback that always fits */
    pick.block_n = 128;
    kiln__gemm_bf16_fit(&pick);
    for (int i = 0; i < 4; i++) {
        int split = splits[i];
        int64_t clusters = kiln__resident_clusters(num_sms, split);
        if (clusters < 1 || (split > 1 && k_blocks < 4 * split))
            continue;
        int fill = round_up((int)ceil_div(n, clusters), step);
        const int max_width = split > 1 ? w->max_clustered : 256;
        fill = fill < 16 ? 16 : fill > max_width ? max_width : fill;
        int half = round_up(fill / 2, step);
        const int widths[] = {fill, half < 16 ? 16 : half};
        for (int j = 0; j < (widths[1] < fill ? 2 : 1); j++) {
            kiln__gemm_bf16_config c = *cfg;
            c.block_n = widths[j];
            c.cluster_k = split > 1 ? split : 0;
            kiln__gemm_bf16_fit(&c);
            if (c.stages < MIN_DECODE_STAGES && !(split == 1 && c.stages >= 2))
                continue;
            double tile = (double)cfg->block_m * c.block_n;
            double cta_blocks = (double)ceil_div(k_blocks, split);
            double streamed = ((w->a * cfg->block_m + c.block_n) * 128.0 + w->k_block) * cta_blocks;
            double partials = w->dsmem * (split - 1) / split * tile * 4.0;
            int64_t waves = ceil_div(ceil_div(n, c.block_n), clusters);
            double cost = (double)waves * (streamed + partials) + w->store * tile * 2.0;
            if (best < 0 || cost < best) {
                best = cost;
                pick = c;
            }
        }
    }
    *cfg = pick;
}

/* Stored while the next tile's first K block runs: profiler, two rounds, us: 4096x24576x1536
 * 413.0 -> 402.7, 4096x32768x512 218.9 -> 213.3, 4096x7168x2048 157.9 -> 156.4 (stop 50,
 * docs/gemm_bf16_notes.md). Not where the width stores in slabs narrower than 64 columns
 * (kiln__gemm_bf16_slab; 176: eleven 16-column slabs per warpgroup, longer than the K block
 * meant to hide them): 4096x2112x7168 took 0.1-0.4% longer deferred (three calls), 0.43% less
 * without. */
bool kiln__gemm_bf16_defers_store(const kiln__gemm_bf16_config *cfg)
{
    return cfg->grouping == 0 && !cfg->out_f32 && cfg->block_n % 64 == 0;
}

/* Prefill: 128-row tiles. A tile's time is taken as its width times (its K blocks plus
 * the epilogue), times a small penalty for the L2 traffic per FLOP of narrower tiles
 * ((1/128 + 1/width), normalised to 128 x 256); the persistent grid runs ceil(tiles / SMs)
 * such rounds. The epilogue is a fixed part and half a K block per stored column slab, or,
 * for a tile whose store is deferred (hidden behind the next tile's first K block, however
 * many slabs), 4 K blocks whatever its width: pricing 128 columns by their slabs had made
 * them look cheaper than 256 where measured slower (stop 51, profiler, two rounds, us:
 * 4096x24576x1536 401.81 -> 390.57 at 256 columns, 4096x32768x512 210.99 -> 205.84,
 * 129x32768x512 26.11 -> 17.48, 16384x7168x2048 619.25 -> 597.62; docs/gemm_bf16_notes.md). */
static void pick_prefill(kiln__gemm_bf16_config *cfg, int64_t m, int64_t n, int64_t k, int num_sms)
{
    static const int widths[] = {256, 224, 192, 176, 160, 144, 128};
    const double k_blocks = (double)ceil_div(k, 64), wide = 1.0 / 128 + 1.0 / 256;
    const int elem = cfg->out_f32 ? 4 : 2;
    double best = -1;
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
        int w = widths[i];
        if (w % kiln__gemm_bf16_width_step(cfg->layout) != 0)
            continue;
        int64_t tiles = ceil_div(m, 128) * ceil_div(n, w);
        kiln__gemm_bf16_config c = *cfg;
        c.block_n = w;
        double slabs = (double)w / kiln__gemm_bf16_slab(w, elem);
        double epilogue = kiln__gemm_bf16_defers_store(&c) ? 4.0 : 2 + slabs / 2;
        double penalty = 0.85 + 0.15 * (1.0 / 128 + 1.0 / w) / wide;
        double cost = (double)ceil_div(tiles, num_sms) * w * (k_blocks + epilogue) * penalty;
        if (best < 0 || cost < best) {
            best = cost;
            cfg->block_n = w;
        }
    }
    cfg->defer_store = kiln__gemm_bf16_defers_store(cfg);
    kiln__gemm_bf16_fit(cfg);
}

/* Dense prefill with fewer tiles than SMs: each tile's K blocks split over a cluster of 2, 4
 * or 8 CTAs, the largest whose clusters all fit at once, of 8 only where they take at most
 * half of the SMs (the FP8 GEMM's kiln__gemm_fp8_prefill_k_split, stops 62-63): 512x576x7168
 * has 20 tiles of 112 K blocks for 132 SMs. K from 2048 up (32 blocks) and split evenly.
 * Stop 63, H100, profiler (no split / clusters of 2 / 4 / 8, us): 512x576x7168 36.99 / 23.46 /
 * 18.21 / 26.53, 1024x576x7168 37.41 / 27.01 / 33.82 / 41.57, 129x576x7168 36.83 / 22.59 /
 * 15.74 / 16.38, 300x1024x4096 23.39 / 16.80 / 14.37 / 21.47, 2048x576x7168 (80 tiles, no
 * split) 38.21 / 46.98 / 58.40 / 82.11. Stop 67, H100, profiler, main (from 64 blocks) against
 * the rule from 32: 512x576x2048 14.14 -> 10.25 (clusters of 4), 1024x576x2048 14.48 -> 12.14,
 * 640x1024x2048 14.38 -> 12.08, 512x1536x2048 14.48 -> 12.34, 300x2112x2048 14.46 -> 12.10. */
bool kiln__gemm_bf16_prefill_k_split(kiln__gemm_bf16_config *cfg, int64_t m, int64_t n,
                                     int64_t k, int num_sms)
{
    const int64_t k_blocks = ceil_div(k, 64);
    /* An N-major B's clustered tiles stay within decode's 128 columns (decode_weights). */
    if (m <= 128 || cfg->block_m != 128 || cfg->grouping != 0 || cfg->cluster_k > 1 ||
        k_blocks < 32 || ((cfg->layout & 2) && cfg->block_n > 128))
        return false;
    const int64_t tiles = ceil_div(m, 128) * ceil_div(n, cfg->block_n);
    for (int c = 8; c >= 2; c /= 2) {
        if (!kiln__prefill_split_fits(tiles, k_blocks, c, num_sms))
            continue;
        kiln__gemm_bf16_config split = *cfg;
        split.cluster_k = c;
        split.defer_store = 0; /* a split tile's owners store from registers */
        kiln__gemm_bf16_fit(&split);
        if (split.stages < 2)
            continue;
        *cfg = split;
        return true;
    }
    return false;
}

/* The narrowest tile width (in the layout's width steps) whose column blocks fit on `sms` SMs
 * (at least one): one m block's share of a round. */
static int64_t filling_width(int64_t n, int sms, int layout)
{
    const int step = kiln__gemm_bf16_width_step(layout);
    return ceil_div(ceil_div(n, sms > 1 ? sms : 1), step) * step;
}

/* M = 129-384: decode's tiles in two or three m blocks, each over its share of the SMs (the width
 * and cluster pick_decode gives for num_sms / m_blocks), where that splits K over clusters: these
 * few rows are bound by streaming B, as decode is (the FP8 GEMM's kiln__gemm_fp8_m_blocks_decode,
 * stop 64); or (A K-major, two m blocks), where as many CTAs fit without the split, 128-row
 * prefill tiles that fill the share. Stop 66, H200, profiler (us): 129x576x7168 14.75 -> 10.53,
 * 129x2112x7168 23.20 -> 17.54, 129x1024x2048 13.47 -> 7.55, 256x2112x2048 13.79 -> 8.93,
 * 200x3072x7168 23.49 -> 22.78 (since stop 71 unsplit); three m blocks over a third:
 * 300x576x7168 15.14 -> 12.35, 300x2112x7168 23.33 -> 20.42, 384x1536x7168 23.90 -> 19.46,
 * 384x1024x4096 12.64 -> 11.52, 384x576x2048 13.41 -> 7.46. */
bool kiln__gemm_bf16_m_blocks_decode(kiln__gemm_bf16_config *cfg, int64_t m, int64_t n,
                                     int64_t k, int num_sms)
{
    if (m <= 128 || m > 384 || num_sms < 6 || cfg->grouping != 0)
        return false;
    kiln__gemm_bf16_config c = {.block_m = 128, .block_n = 128, .group_n = 1000, .cluster_k = 0,
                                .layout = cfg->layout, .out_f32 = cfg->out_f32};
    const int m_blocks = (int)((m + 127) / 128);
    pick_decode(&c, n, k, num_sms / m_blocks);
    if (c.cluster_k < 2)
        return false;
    /* A K-major (NT, NN) in two m blocks: where 128-row tiles 48 or more columns wide fill each
     * block's share of the SMs without the split, they win; the split's exchange then buys no
     * CTAs. Stop 71, H100, profiler, the split -> 128 x w unsplit in prefill's tile order (us):
     * 129x4096x7168 31.50 -> 26.95 (64 columns), 200x4096x7168 33.25 -> 27.44, 256x4096x7168
     * 33.39 -> 28.03, 256x4096x16384 68.97 -> 62.16, 256x3072x7168 27.16 -> 25.84 (48),
     * 200x3072x7168 26.88 -> 25.60, 129x3072x4096 17.49 -> 16.37; NN 129x4096x7168 31.87 ->
     * 26.82, 256x4096x7168 33.15 -> 27.87, 256x3072x7168 27.55 -> 26.62. Where it lost, the
     * split stays: 32 columns (256x2112x7168 21.54 against 24.86), three m blocks
     * (300x2112x7168 23.17 -> 25.52 at 48; 384x2112x7168 26.36 -> 25.76), A M-major (TT
     * 200x4096x7168 44.81 -> 60.73; TN 44.90 against 59.78). */
    const int64_t width = filling_width(n, num_sms / m_blocks, c.layout);
    const bool as_many_ctas = ceil_div(n, width) >= ceil_div(n, c.block_n) * c.cluster_k;
    const bool a_k_major = (c.layout & 1) == 0;
    if (a_k_major && m_blocks == 2 && width >= 48 && width <= 128 && as_many_ctas) {
        kiln__gemm_bf16_config unsplit = {.block_m = 128, .block_n = (int)width, .group_n = 8,
                                          .layout = c.layout, .out_f32 = c.out_f32};
        unsplit.defer_store = kiln__gemm_bf16_defers_store(&unsplit); /* as the prefill pick */
        kiln__gemm_bf16_fit(&unsplit);
        if (unsplit.stages >= 2)
            c = unsplit;
    }
    *cfg = c;
    return true;
}

/* One round of tiles w columns wide, in tile steps (one 128 x 128 x 64 MMA step on an SM, about
 * 0.31 us on an H100 under load): a tile's own MMAs (w / 128 a step, plus about 10 steps of
 * prologue and epilogue), or else the memory system: the L2's traffic to the SMs (each step loads
 * A's rows once per column tile and B's once per m block, 64 K of two bytes) at some 8.2 MB a
 * step, plus A and B read once from DRAM at some 0.83 MB a step. Fit on H100, stop 68, to nine
 * shapes' profiles at 96 or 64 columns and 128 (26 and 2.6 TB/s): every choice it makes among
 * them was the faster one, e.g. 384x4096x7168 whose 59 MB of B make 96 columns lose (+2 to 6%)
 * while 768x2112x7168 at 96 gains 18%. */
static double one_round_steps(int64_t m, int64_t n, int64_t k, int w)
{
    const double steps = (double)ceil_div(k, 64);
    const double rows = (double)ceil_div(n, w) * (double)m + (double)ceil_div(m, 128) * n;
    const double l2_bytes = steps * rows * 128, dram_bytes = (double)(m + n) * k * 2;
    const double mma = steps * w / 128 + 10, memory = l2_bytes / 8.2e6 + dram_bytes / 0.83e6;
    return mma > memory ? mma : memory;
}

/* Prefill whose 128 x 128 tiles fit one round with SMs idle and take no K split: 96 or 64 columns
 * (in the layout's width steps) where they keep one round and one_round_steps says they are
 * cheaper, as the FP8 GEMM's kiln__gemm_fp8_prefill_narrow. BF16 moves twice the bytes per MMA, so
 * the memory system can bind the narrower tiles. Stop 68, H100, profiler, 128 columns against the
 * rule's 96 or 64 (us): 640x2112x7168 38.09 -> 30.48 (96), 512x2112x2048 14.56 -> 11.05 (64),
 * 300x4096x7168 38.27 -> 34.50 (96), 1100x1024x7168 37.66 -> 29.80 (96), 512x3072x2048 14.93 ->
 * 12.51 (96), 896x1536x4096 24.14 -> 19.49 (96); 384x4096x7168 at 96 columns lost (38.31 -> 40.78)
 * and stays at 128. In two m blocks, first, the width between 96 and 128 that fills the SMs. */
bool kiln__gemm_bf16_prefill_narrow(kiln__gemm_bf16_config *cfg, int64_t m, int64_t n,
                                    int64_t k, int num_sms)
{
    if (m <= 128 || cfg->block_m != 128 || cfg->block_n != 128 || cfg->grouping != 0 ||
        cfg->cluster_k > 1 || ceil_div(k, 64) < 32)
        return false;
    /* Two m blocks, NT, BF16 output, where a width between 96 and 128 columns fills the SMs:
     * that width, whatever one_round_steps says (it prices the memory system the same for 112
     * tiles on 112 SMs as for 128 on 128). Stop 71, H100, profiler, 128 -> 112 columns (us):
     * 256x7168x2048 16.22 -> 15.71, 256x7168x7168 44.29 -> 42.37, 256x7168x16384 99.78 ->
     * 94.82, 200x7168x16384 96.45 -> 93.18, 129x7168x16384 93.47 -> 90.30 (cuBLASLt runs the
     * same 128 tiles, swapped: 112 x 128). In three m blocks 168 columns lost (384x7168x16384
     * 126.69 against 150.05, three stages); 104 and 120 at 256x7168x16384 lost too. */
    const int64_t fill = filling_width(n, num_sms / 2, cfg->layout);
    if (ceil_div(m, 128) == 2 && cfg->layout == 0 && !cfg->out_f32 && fill > 96 && fill < 128) {
        kiln__gemm_bf16_config filled = *cfg;
        filled.block_n = (int)fill;
        filled.defer_store = kiln__gemm_bf16_defers_store(&filled);
        kiln__gemm_bf16_fit(&filled);
        if (filled.stages >= 2) {
            *cfg = filled;
            return true;
        }
    }
    static const int widths[] = {96, 64};
    double best = one_round_steps(m, n, k, 128);
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
        const double cost = one_round_steps(m, n, k, widths[i]);
        if (widths[i] % kiln__gemm_bf16_width_step(cfg->layout) != 0 ||
            ceil_div(m, 128) * ceil_div(n, widths[i]) > num_sms || cost >= best)
            continue;
        kiln__gemm_bf16_config narrow = *cfg;
        narrow.block_n = widths[i];
        narrow.defer_store = kiln__gemm_bf16_defers_store(&narrow); /* as the prefill pick */
        kiln__gemm_bf16_fit(&narrow);
        if (narrow.stages < 2)
            continue;
        *cfg = narrow;
        best = cost;
    }
    return cfg->block_n != 128; /* it came in at 128 */
}

/* Small tiles whose stages (20 KB) one issuing thread cannot fill fast enough alone
 * (kiln-bench-ingest, stop 70: one thread holds an SM near 63 B/clk with 16 KB stages, two
 * near 107), so A and B come from two producer warps. Stop 70, H100, profiler, the pick
 * before -> 64 x 96 split (us): 768x576x7168 (128 x 128 in clusters of 4) 22.08 -> 20.38,
 * 896x576x7168 24.83 -> 20.83, 768x576x2048 11.71 -> 8.90, 448x1024x7168 24.83 -> 20.96,
 * 512x1024x7168 25.70 -> 23.04; where they lost it stays: 640x576x7168 (60 tiles) 19.84 /
 * 20.54, 704x576x7168 (66) 21.09 / 20.64, 768x576x16384 37.89 / 41.89. The same tiles with
 * one issuing warp lost to the picks (23.55-24.03 at 704-896 x 576 x 7168). NT, and TT (A
 * M-major; stop 71, H100, us: 768x576x7168 21.41 -> 20.72, 960x576x7168 24.38 -> 21.06,
 * 1024x576x7168 24.10 -> 21.02, 1408x576x7168 31.96 -> 21.41, 1152x576x4096 19.52 -> 13.95,
 * 1200x576x4096 22.37 -> 16.93, 896x576x2048 11.81 -> 8.99, 904x576x2048 14.08 -> 11.87; lost
 * at 1000x576x7168 32.64 -> 34.08 and 1016x576x7168 31.87 -> 33.34); an N-major B has no
 * 96-column tiles, and its 64 x 64 split tiles lost (NN 21.15 -> 21.54, TN 20.96 -> 21.73 at
 * 768x576x7168). */
bool kiln__gemm_bf16_prefill_split_issue(kiln__gemm_bf16_config *cfg, int64_t m, int64_t n,
                                         int64_t k, int num_sms)
{
    const int64_t tiles = ceil_div(m, 64) * ceil_div(n, 96);
    if (m <= 384 || cfg->grouping != 0 || cfg->layout > 1 || cfg->out_f32 || k < 2048 ||
        k > 8192 || 2 * tiles <= num_sms || tiles > num_sms)
        return false;
    kiln__gemm_bf16_config small = *cfg;
    small.block_m = 64;
    small.block_n = 96;
    small.cluster_k = 0;
    small.split_issue = 1;
    small.defer_store = kiln__gemm_bf16_defers_store(&small);
    kiln__gemm_bf16_fit(&small);
    if (small.stages < 2)
        return false;
    *cfg = small;
    return true;
}

kiln__gemm_bf16_config kiln__gemm_bf16_pick_dense(int64_t m, int64_t n, int64_t k, int layout,
                                                  int out_f32, int num_sms, bool k_split)
{
    kiln__gemm_bf16_config cfg = kiln__gemm_bf16_pick(m, n, k, layout, out_f32, num_sms);
    if (k_split && !kiln__gemm_bf16_m_blocks_decode(&cfg, m, n, k, num_sms) &&
        !kiln__gemm_bf16_prefill_split_issue(&cfg, m, n, k, num_sms) &&
        !kiln__gemm_bf16_prefill_k_split(&cfg, m, n, k, num_sms))
        kiln__gemm_bf16_prefill_narrow(&cfg, m, n, k, num_sms);
    return cfg;
}

kiln__gemm_bf16_config kiln__gemm_bf16_pick(int64_t m, int64_t n, int64_t k, int layout,
                                            int out_f32, int num_sms)
{
    return kiln__gemm_bf16_pick_grouped(m, n, k, layout, out_f32, 0, num_sms);
}

kiln__gemm_bf16_config kiln__gemm_bf16_pick_grouped(int64_t m, int64_t n, int64_t k, int layout,
                                                    int out_f32, int grouping, int num_sms)
{
    kiln__gemm_bf16_config cfg = {.block_m = 128, .block_n = 128, .group_n = 8, .cluster_k = 0,
                                  .layout = layout, .out_f32 = out_f32, .grouping = grouping};
    if (num_sms < 1)
        num_sms = 1;
    if (m <= 128) {
        cfg.block_m = m <= 64 ? 64 : 128;
        cfg.group_n = 1000; /* one row of tiles: no L2 grouping to do */
        pick_decode(&cfg, n, k, num_sms);
    } else {
        pick_prefill(&cfg, m, n, k, num_sms);
    }
    return cfg;
}

bool kiln__gemm_bf16_no_b_early(const kiln__gemm_bf16_config *cfg, int b_ready)
{
    return cfg->grouping == 0 && b_ready <= 0;
}

void kiln__gemm_bf16_spec(kj_spec *spec, int64_t n, int64_t k, const kiln__gemm_bf16_config *cfg)
{
    /* Positional, in the order of the template's parameter list (src/jit/templates.c): this
     * runs on every call, so no lookups by name. */
    kj_spec_init(spec, KJ_GEMM_BF16);
    const int64_t values[] = {n, k, cfg->block_m, cfg->block_n, cfg->stages, cfg->group_n,
                              cfg->cluster_k, cfg->layout, cfg->out_f32, cfg->grouping,
                              cfg->m_align, cfg->no_b_early, cfg->defer_store,
                              cfg->split_issue};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        spec->values[i] = values[i];
}
