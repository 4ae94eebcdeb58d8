/* FP8 GEMM configurations. The figures behind these choices are in docs/gemm_fp8_notes.md
 * (measured on the H200): decode sizes are bound by reading B, so the N tiles are sized to
 * give every SM work, with long K split over a cluster of CTAs (cluster_k) so tiles can be
 * wide enough that A is not re-read by every CTA; prefill uses 128 x 128 tiles, whose B
 * scales align with the tile. */
#include "gemm_config.h"

#include <string.h>

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

/* Math warpgroups per K phase: one per 64-row group, or per row group of a wave with
 * 256-row tiles (two waves of two). */
static int wave_warpgroups(const kiln__gemm_config *cfg)
{
    return cfg->block_m == 256 ? 2 : cfg->block_m / 64;
}

int kiln__gemm_fp8_smem(const kiln__gemm_config *cfg)
{
    int row_groups = cfg->block_m / 64;
    bool split = cfg->cluster_k > 1; /* stores from registers, and FP32 partials to swap */
    int staging =
        cfg->out_f32 || split ? 0 : round_up(wave_warpgroups(cfg) * 64 * cfg->block_n * 2, 1024);
    int reduction = round_up((cfg->k_split - 1) * row_groups * 64 * cfg->block_n * 4, 1024);
    int partials =
        round_up(kiln__cluster_reduce_bytes(cfg->block_m, cfg->block_n, cfg->cluster_k), 1024);
    int per_stage = cfg->block_m * 128 + cfg->block_n * 128 + cfg->block_m * 4;
    int per_slot = cfg->out_f32 ? cfg->block_n : scale_blocks(cfg->block_n); /* B scales */
    int scales = round_up(cfg->stages * per_slot * 4, 16);
    int guess_barrier = cfg->grouping == 1 ? 16 : 0; /* masked: B loaded on a guess */
    return staging + reduction + partials + cfg->stages * per_stage + scales + cfg->stages * 16 +
           (split ? row_groups * 16 : 0) + guess_barrier + 1024;
}

int kiln__gemm_fp8_cluster(const kiln__gemm_config *cfg)
{
    return (cfg->multicast > 1 ? cfg->multicast : 1) * (cfg->cluster_k > 1 ? cfg->cluster_k : 1) *
           kiln__gemm_fp8_multicast_a(cfg);
}

int kiln__gemm_fp8_threads(const kiln__gemm_config *cfg)
{
    return (wave_warpgroups(cfg) * cfg->k_split + 1) * 128;
}

/* As many stages as fit, a multiple of k_split. */
static int fit_stages_once(kiln__gemm_config *cfg)
{
    for (cfg->stages = MAX_STAGES; cfg->stages >= 2; cfg->stages -= cfg->k_split)
        if (cfg->stages % cfg->k_split == 0 && kiln__gemm_fp8_smem(cfg) <= SMEM_LIMIT)
            return cfg->stages;
    return 0;
}

void kiln__gemm_fp8_fit(kiln__gemm_config *cfg)
{
    if (fit_stages_once(cfg) == 0) {
        cfg->k_split = 1;
        fit_stages_once(cfg);
    }
}

static bool try_width_or_next(kiln__gemm_config *cfg, int width);

/* Decode tile width and K split: with long K, a cluster of CTAs shares each tile (about 66
 * clusters of 2, 30 of 4 and 15 of 8 are co-resident on 132 SMs); otherwise one N tile per
 * SM. */
static void pick_decode(kiln__gemm_config *cfg, int64_t n, int64_t k_blocks, int num_sms)
{
    const int cap = 192;
    int pairs = num_sms >= 2 ? kiln__resident_clusters(num_sms, 2) : 1;
    int quads = kiln__resident_clusters(num_sms, 4), octets = kiln__resident_clusters(num_sms, 8);
    /* Clusters of 8 on tiles up to 40 columns (narrow N, long K: 576 x 7168). Stop 43's
     * --sweep: 64x40 ck8 5.36 us against the 64x32 ck4 pick's 6.62 at 64x576x7168, 128x40
     * ck8 6.40 against 7.12 at 128x576x7168; wider ones lost (stop 11: none in a top
     * three at N = 2112 and up). */
    int octet_width = octets > 0 ? round_up((int)((n + octets - 1) / octets), 8) : 0;
    if (octet_width < 32)
        octet_width = 32;
    if (octets > 0 && k_blocks >= 32 && k_blocks % 8 == 0 && octet_width <= 40) {
        cfg->block_n = octet_width;
        cfg->cluster_k = 8;
        return;
    }
    /* Clusters of 4 on tiles up to 72 columns: at 64x2112x7168 64x72 tiles beat 64x32
     * ones in clusters of 2 by 5% (stop 10's --sweep); wider ones lost (64x120 at
     * 64x7168x16384, 7%). 128x72 lost under stop 10's reduction (three partial-sum
     * buffers took its stages); under the reduce-scatter it beat 128x32 in clusters of 2
     * by 8% at 128x2112x7168 (10.49 against 11.41 us, stop 12's --sweep). */
    int quad_width = quads > 0 ? round_up((int)((n + quads - 1) / quads), 8) : 0;
    if (quad_width < 32)
        quad_width = 32;
    if (quads > 0 && k_blocks >= 32 && k_blocks % 4 == 0 &&
        quad_width <= 72) {
        cfg->block_n = quad_width;
        cfg->cluster_k = 4;
        return;
    }
    int wide = round_up((int)((n + pairs - 1) / pairs), 8);
    if (wide < 32)
        wide = 32;
    if (k_blocks >= 32 && wide <= (cfg->block_m == 64 ? 128 : 112) && k_blocks % 2 == 0) {
        cfg->block_n = wide;
        cfg->cluster_k = 2;
        /* 128-row tiles of 64 columns or more: the plain K loop beat the overlapped one by
         * 3-4% at 128x4096x7168 and 128x7168x16384 (stop 10's --sweep; not at 32 columns,
         * 128x2112x7168), and compiles faster (0.25-0.37 s against 0.32-0.59 here).
         * Unrolled 4 times it gained 1-3% more, for 0.2-0.3 s more NVRTC time: the 0.5 s
         * compile target keeps that among the --sweep alternatives. At 112 columns
         * (128x7168x16384) the overlapped loop has won since stop 21's kernels: 36.5 against
         * 38.9 us under the profiler, 37.7 against 38.1 in batches (stop 22), so the plain
         * loop is kept for 64-104 columns. */
        if (cfg->block_m == 128 && wide >= 64 && wide < 112)
            cfg->overlap = 0;
        /* 64-row tiles up to 112 columns at K >= 7168: each CTA's K blocks split between
         * two math warpgroups (plain loop). Stop 46, main -> this, two rounds under the
         * profiler / three in batches (us): 64x4096x7168 12.81 -> 12.42 / 10.92 -> 10.82,
         * 32x4096x7168 12.79 -> 12.35 / 10.88 -> 10.78, 64x7168x16384 33.98 -> 33.57 /
         * 33.64 -> 33.22, 1x7168x16384 33.84 -> 33.05 / 32.22 -> 32.04. Not at 128 columns
         * (64x8192x7168 19.91 -> 19.98 / 18.79 -> 19.14) nor at K = 4096 (64x7168x4096
         * 13.18 -> 13.09 / 11.58 -> 11.64). */
        if (cfg->block_m == 64 && wide <= 112 && k_blocks >= 56 && k_blocks % 4 == 0) {
            cfg->k_split = 2;
            cfg->overlap = 0;
        }
        return;
    }
    int per_sm = (int)((n + num_sms - 1) / num_sms);
    cfg->block_n = per_sm <= 16 ? 16 : round_up(per_sm, 8);
    if (cfg->block_n > cap) /* more than one wave anyway: tiles aligned to the scales */
        cfg->block_n = 128;
    else {
        kiln__gemm_config c = *cfg; /* the width only: the loop is kept as picked */
        if (try_width_or_next(&c, cfg->block_n))
            cfg->block_n = c.block_n;
    }
    /* No K split inside the CTA: with the overlapped K loop, one math warpgroup per 64 rows
     * beat k_split 2 and 4 by 6-11% at 64x7168x2048, 128x7168x2048 and 64x32768x512 (stop
     * 10's --sweep; k_split stays among the alternatives). */
}

/* Prefill at N <= 1024: 144-column tiles where they need fewer rounds of 128-row tiles than
 * 128-column ones, by enough to pay for their slower loop. Three accumulator sets do not fit
 * at 144 columns, so the tile runs the plain loop with both warpgroups promoting at once, and
 * 144 columns keep the tensor cores about as long as 160 would: ~1.35x an overlapped 128 x 128
 * tile per K block (stop 61, H100: 827 against 604 cycles with loads; one round each,
 * 2048x576x7168 31.55 against 25.25 us). At equal rounds 128 columns were 16-24% faster on
 * ten shapes (profiler: 4096 x 256 / 512 / 768 / 1024 x 7168, 512 / 1024 / 2048 x 576 x 7168,
 * 512x512x7168, 4096x512x2048, 1024x1024x4096); at 4096x576x7168 (one round against two)
 * 144 columns take 33.44 us against 45.18. */
static bool wide_prefill_tiles(int64_t m, int64_t n, int num_sms)
{
    int64_t m_blocks = (m + 127) / 128;
    int64_t rounds_128 = (m_blocks * ((n + 127) / 128) + num_sms - 1) / num_sms;
    int64_t rounds_144 = (m_blocks * ((n + 143) / 144) + num_sms - 1) / num_sms;
    return 135 * rounds_144 < 100 * rounds_128;
}

kiln__gemm_config kiln__gemm_fp8_pick(int64_t m, int64_t n, int64_t k, int num_sms)
{
    if (num_sms < 1)
        num_sms = 1;
    kiln__gemm_config cfg = {.block_m = 128, .block_n = 128, .group_n = 8, .k_split = 1,
                             .multicast = 1, .cluster_k = 0, .overlap = 1};
    if (m <= 128) {
        cfg.block_m = m <= 64 ? 64 : 128;
        cfg.group_n = 1000; /* one row of tiles: no L2 grouping to do */
        pick_decode(&cfg, n, k / 128, num_sms);
    } else if (n <= 1024 && wide_prefill_tiles(m, n, num_sms)) {
        cfg.block_n = 144;
    }
    kiln__gemm_fp8_fit(&cfg);
    return cfg;
}

void kiln__gemm_fp8_unroll_short_loop(kiln__gemm_config *cfg, int64_t m, int64_t k)
{
    /* Stop 44, batches against the rolled loop (three rounds, two calls): over clusters of 8
     * at K = 7168 1.7-9.6% faster at 1-64 rows (N = 512, 576), 0-2% at 128x576, but 1.6%
     * slower at 128x256; one CTA 2.1-4.2% faster at K = 512, 1.0-1.9% at K = 1024. NVRTC
     * 262-302 ms at 7-8 blocks (as rolled), 443-476 ms at the widest (128 x 128, K = 1024).
     * Longer loops unrolled compile past 0.5 s (16 blocks at K = 2048: 0.55-0.75 s). */
    int64_t k_blocks = k / 128, ck = cfg->cluster_k > 1 ? cfg->cluster_k : 1;
    if (m <= 128 && cfg->overlap && kiln__gemm_fp8_can_overlap(cfg) && k_blocks % ck == 0 &&
        k_blocks / ck <= 8)
        cfg->unroll = 4;
}

/* cfg in `width`-column tiles with each tile's K over clusters of c CTAs, when its ring
 * still holds two stages. */
static bool take_prefill_split(kiln__gemm_config *cfg, int width, int c)
{
    kiln__gemm_config split = *cfg;
    split.block_n = width;
    split.cluster_k = c;
    kiln__gemm_fp8_fit(&split);
    if (split.stages < 2)
        return false;
    *cfg = split;
    return true;
}

/* Prefill with fewer tiles than SMs: each tile's K blocks split over a cluster of 2, 4 or 8
 * CTAs (as decode does), the largest size whose clusters all fit at once, so most SMs work
 * instead of a few (512x576x7168 runs 20 tiles on 132 SMs). Stop 62, H100, KILN_SWEEP_CLUSTER_K
 * under the profiler (no split / clusters of 2 / 4 / 8, us; 128 x 128 overlapped tiles):
 * 512x576x7168 (20 tiles) 24.10 / 16.80 / 13.34 / 20.64, 512x512x7168 (16) 23.97 / 16.77 /
 * 12.45 / 19.42, 1024x576x7168 (40) 24.61 / 17.92 / 22.75 / 30.08, 1024x1024x4096 (64)
 * 16.10 / 14.56 / 24.51 / 41.95, 2048x576x7168 (80) 25.12 / 31.78 / 38.91 / 57.50. Clusters
 * of 8 lost wherever the tiles outnumber the 15 that fit (a second wave), and they pay only
 * where their CTAs take at most half of the SMs (their 8-way reduction costs more): stop 63,
 * H100, clusters of 2 / 4 / 8: 200x512x7168 (8 tiles) 16.29 / 12.03 / 10.85, 129x576x7168
 * (10) 16.13 / 11.97 / 13.50, 256x576x7168 (10) 16.10 / 11.97 / 12.03, 384x576x7168 (15)
 * 16.90 / 12.45 / 12.96. K split evenly, as decode's clusters. 129x4096x7168
 * (64 tiles, half of them one row) lost with clusters of 2 (27.74 -> 28.99 us) while its last
 * m block's A box was zero-filled; with only that row loaded (stop 64) 24.74 -> 18.69.
 * K from 2048 (16 blocks): stop 67, H100, --sweep under the profiler (no split / 2 / 4, us):
 * 512x576x2048 (20 tiles) 10.21 / 9.63 / 9.31, 384x1024x2048 (24) 10.18 / 9.76 / 9.66,
 * 1024x576x2048 (40) 10.46 / 10.21 / 15.10, 640x1024x2048 (40) 10.40 / 10.21 / 14.85,
 * 512x1536x2048 (48) 10.46 / 10.27 / 15.42: the same largest cluster that fits. Main against
 * the rule: 512x576x2048 10.14 -> 9.27, 200x576x2048 9.91 -> 8.67, 300x576x2048 10.02 -> 8.89,
 * 1024x576x2048 10.53 -> 10.16, 640x1024x2048 10.45 -> 10.21. */
bool kiln__gemm_fp8_prefill_k_split(kiln__gemm_config *cfg, int64_t m, int64_t n, int64_t k,
                                    int num_sms)
{
    int64_t k_blocks = k / 128;
    if (m <= 128 || cfg->block_m != 128 || cfg->k_split != 1 || cfg->multicast > 1 ||
        cfg->cluster_k > 1 || kiln__gemm_fp8_multicast_a(cfg) > 1 || k_blocks < 16)
        return false;
    int64_t m_blocks = (m + cfg->block_m - 1) / cfg->block_m;
    int64_t tiles = m_blocks * ((n + cfg->block_n - 1) / cfg->block_n);
    for (int c = 8; c >= 2; c /= 2)
        if (kiln__prefill_split_fits(tiles, k_blocks, c, num_sms) &&
            take_prefill_split(cfg, cfg->block_n, c))
            return true;
    /* Tiles just over the clusters of 2 that fit: 144 columns bring them under (stop 63, H100,
     * profiler, us: 512x2112x7168, 68 tiles of 128 columns, over clusters of 2 at 144 columns
     * (60 tiles) 21.73, at 160 21.95, at 136 (64 tiles, 8-column store slabs) 23.97; unsplit,
     * every width from 136 to 192 was slower than 128. Main against the rule: 512x2112x7168
     * 24.99 -> 21.60, 2048x576x7168 25.15 -> 21.82, 700x1536x7168 25.02 -> 22.05,
     * 300x3072x7168 25.12 -> 23.55. At 160 columns 640x2048x7168 gained (25.12 -> 22.56) but
     * 1100x1024x7168 lost (24.96 -> 28.77), and 384x4096x7168 over 2 at 192 columns (66 tiles)
     * gained nothing (25.44 -> 25.70): 144 only). */
    const int width = 144;
    int64_t wide_tiles = m_blocks * ((n + width - 1) / width);
    return k_blocks >= 32 && width > cfg->block_n &&
           kiln__prefill_split_fits(wide_tiles, k_blocks, 2, num_sms) &&
           take_prefill_split(cfg, width, 2);
}

/* Prefill whose 128 x 128 tiles fit one round with SMs left idle, too many for the clusters of 2:
 * narrower tiles (without the multicast pairs the launch would give them) fill more SMs. The
 * per-tile time does not fall with the width (112 columns lost everywhere, 80 and 64 where they
 * need a second round), so only the narrowest of 64 and 96 that keeps one round. Stop 67, H100,
 * KILN_SWEEP_WIDTHS=64,80,96,112,128 under the profiler (the pick / 64 / 96 / 112 columns, us):
 * 384x4096x7168 (96 tiles) 25.41 / 36.64 / 24.51 / 29.73, 640x2112x7168 (85)
 * 24.83 / 35.90 / 23.52 / 29.02, 512x2112x2048 (68) 10.62 / 8.77 / 10.14 / 11.55; 256x7168x16384
 * (112 tiles, 96 columns need two rounds) 55.94 / 83.49 / 91.33 / 64.51. Main against the rule (two
 * rounds): 384x4096x7168 25.31 -> 24.34, 300x4096x7168 24.98 -> 23.88, 640x2112x7168
 * 24.86 -> 23.54, 600x2112x7168 24.74 -> 23.43, 1100x1024x7168 24.67 -> 23.15, 512x2112x2048
 * 10.66 -> 8.84 (64 columns), 512x3072x2048 10.89 -> 10.54. */
bool kiln__gemm_fp8_prefill_narrow(kiln__gemm_config *cfg, int64_t m, int64_t n, int64_t k,
                                   int num_sms)
{
    if (m <= 128 || cfg->block_m != 128 || cfg->block_n != 128 || cfg->k_split != 1 ||
        cfg->cluster_k > 1 || kiln__gemm_fp8_multicast_a(cfg) > 1 || k / 128 < 16)
        return false;
    const int64_t m_blocks = (m + 127) / 128;
    static const int widths[] = {64, 96};
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
        if (m_blocks * ((n + widths[i] - 1) / widths[i]) > num_sms)
            continue;
        kiln__gemm_config narrow = *cfg;
        narrow.block_n = widths[i];
        narrow.multicast = 1;
        kiln__gemm_fp8_fit(&narrow);
        if (narrow.stages < 2)
            continue;
        *cfg = narrow;
        return true;
    }
    return false;
}

/* M = 129-384: decode's tiles in two or three m blocks, each block over its share of the SMs (the
 * width and cluster pick_decode gives for num_sms / m_blocks), where that splits K over clusters:
 * like decode, these few rows are bound by streaming B, which narrow tiles spread over more SMs
 * than 128 x 128 ones. Stop 64, H100, profiler (--sweep of widths x clusters, us): 129x576x7168
 * 11.90 (128 x 128 over 4) -> 9.15 (128 x 40 over 4), 129x2112x7168 17.34 (128 x 128 over 2) ->
 * 13.86 (128 x 64 over 2, overlapped), 256x2112x7168 17.70 -> 13.92; at N = 4096 half of the SMs
 * give no cluster (tiles over 112 columns), and 128 x 128 over 2 stayed the best (129x4096x7168
 * 18.69; 128 x 64: 20.42 unsplit, 24.06 over 2). Stop 66, H200, profiler, main against the rule:
 * 129x576x7168 11.36 -> 8.64, 129x2112x7168 16.45 -> 13.18, 129x512x7168 10.14 -> 8.54,
 * 256x1024x4096 9.79 -> 8.61, 200x3072x7168 16.90 -> 16.22; three m blocks over a third (main
 * against the rule): 300x576x7168 11.78 -> 9.44, 300x2112x7168 16.93 -> 16.06, 384x1536x7168 16.70
 * -> 14.56, 384x1024x4096 10.69 -> 9.31. */
bool kiln__gemm_fp8_m_blocks_decode(kiln__gemm_config *cfg, int64_t m, int64_t n, int64_t k,
                                    int num_sms)
{
    if (m <= 128 || m > 384 || num_sms < 6)
        return false;
    kiln__gemm_config c = {.block_m = 128, .block_n = 128, .group_n = 1000, .k_split = 1,
                           .multicast = 1, .cluster_k = 0, .overlap = 1};
    const int m_blocks = (int)((m + 127) / 128);
    pick_decode(&c, n, k / 128, num_sms / m_blocks);
    if (c.cluster_k < 2)
        return false;
    c.overlap = 1; /* as timed: decode's plain loop for 64-104 columns was not */
    kiln__gemm_fp8_fit(&c);
    *cfg = c;
    return true;
}

/* Prefill tile heights by rounds of tiles over the SMs times the time of one tile relative
 * to a 128 x 128 one, as measured on the H200: a 192-row tile (three math warpgroups) 1.36-1.41x
 * (docs/gemm_fp8_notes.md, "Stop 8"); a 256-row tile (two warpgroups, two waves) 1.36-1.37x a
 * 192-row one. That ratio picks the faster of the two on 18 of the 22 shapes timed with both
 * in stop 18 (M 1024-16384 on the benchmark's six (N, K) pairs); three more are ties within
 * the runs' noise (0-1.6%: 4096x24576x1536, 4096x7168x2048, 8192x4096x7168) and it is
 * 1.6-5.6% off at 2048x7168x16384, whose last round of 256-row tiles is 39% full and costs
 * less than a whole one. Stop 13's 1.70 (kernels since changed) took 256 rows on 13 of those
 * shapes where 192 rows were 1.3-11% faster; the grouped contiguous GEMM (which counts its
 * tiles per group) takes 192 rows on three of its four DeepSeek shapes. Taller tiles pay
 * where they need fewer rounds by more than their cost: 192 rows at 4096x2112 (5 -> 3
 * rounds), 256 at 4096x7168 (14 -> 7), neither at 129 rows. Ties keep the shorter tile.
 * Stop 30 (profiler, heights forced, two interleaved rounds): short K shows each tile's
 * fixed work (setup, epilogue), which the 192-row tile spreads over the most rows. Per
 * round a 256-row tile costs 1.50-1.58x a 192-row one at K = 512 (8192x32768x512 239.2 /
 * 268.8 us, 2048x32768x512 62.3 / 70.7) and 1.41-1.45x at K = 1536 (8192x24576x1536 454.7 /
 * 477.5, 4096x24576x1536 231.5 / 244.7), against 1.33-1.36x from K = 2048 up; a 128-row
 * tile 0.79-0.84x at K = 512 (128 / 192 / 256 rows: 1024x32768x512 38.2 / 35.3 / 37.1,
 * 2048x32768x512 76.2 / 62.3 / 70.7, 2048x4096x512 13.09 / 12.33 / 13.44), not 0.72x. So
 * below 16 K blocks each missing block adds 2 to the 256-row cost and 1 to the 128-row one,
 * which gives the 192-row tile to every shape timed (also 1792, 2560 and 7168 x 24576 x
 * 1536: 113.3 / 118.3, 156.1 / 158.5, 408.6 / 422.8, where the old costs took 256). The row-id
 * layout's 192-row tiles cost it ~5% more than 256-row ones (on the four DeepSeek groupings
 * 192 / 256 rows: 1516.6 / 1479.5, 1592.8 / 1496.7, 822.7 / 812.2, 832.9 / 815.2 us, where
 * the prefix sums ran 1400.5 / 1425.5, 1439.9 / 1432.4, 722.2 / 732.7, 745.1 / 730.2).
 * Stop 37 gave the row ids' 192-row tiles 32 producer registers (1.3-3.5% faster; see
 * PRODUCER_REGS in gemm_fp8_config.cuh) and timed the heights again, two rounds, means (us):
 * 1548.0 / 1525.7, 1645.5 / 1543.1, 817.0 / 817.2, 842.4 / 821.4. The 192-row costs that
 * fit those are 141-149, so 145 stands at K >= 4096. Stop 38 ran those tiles in turn at
 * every K, and at K = 2048 their times then fit 140.5-141.1: below 32 K blocks they cost 141,
 * which moves 4x8192 (7168, 2048) to 192 rows (stop 39: 0.9% faster, two rounds); the other
 * three groupings keep 256.
 * Stop 31 (profiler, one round, 128 / 192 / 256 rows): 2048x7168x16384 392.3 / 350.2 / 377.7
 * (the 192-row pick is right there now), and 128-row tiles lost on all six shapes timed at
 * K = 1536-16384 (e.g. 2048x7168x2048 52.3 / 48.6 / 54.5, 1024x24576x1536 70.0 / 65.8 / 63.7). */
static int64_t tall_tile_cost(int rows, int64_t k_blocks, kiln__tall_set set)
{
    /* per round, in hundredths of a 128 x 128 tile's time */
    int64_t short_by = k_blocks < 16 ? 16 - k_blocks : 0;
    if (rows == 128)
        return 100 + short_by;
    if (rows == 192 && set != KILN__TALL_ROW_IDS)
        return 138;
    if (rows == 192) /* row ids: fitted in turn at K = 2048 (stop 38) and 7168 (stop 37) */
        return k_blocks < 32 ? 141 : 145;
    return 188 + 2 * short_by;
}

int kiln__gemm_fp8_tall_rows(int64_t m, int64_t n, int64_t k, int num_sms, kiln__tall_set set)
{
    static const int heights[] = {128, 192, 256};
    if (num_sms < 1)
        num_sms = 1;
    int64_t nb = (n + 127) / 128, best_cost = 0;
    int best = 128;
    for (size_t i = 0; i < sizeof heights / sizeof heights[0]; i++) {
        int rows = heights[i];
        if (rows == 192 && set == KILN__TALL_NO_192)
            continue;
        int64_t rounds = ((m + rows - 1) / rows * nb + num_sms - 1) / num_sms;
        int64_t cost = rounds * tall_tile_cost(rows, k / 128, set);
        if (i == 0 || cost < best_cost) {
            best_cost = cost;
            best = rows;
        }
    }
    return best;
}

int kiln__gemm_fp8_tail_parts(int64_t tiles, int64_t k_blocks, int num_sms)
{
    int64_t ctas = tiles < num_sms ? tiles : num_sms, left = ctas > 0 ? tiles % ctas : 0;
    int parts = left > 0 && 3 * left <= ctas ? 3 : 2;
    bool splits = k_blocks >= parts && tiles > ctas && left > 0 && parts * left <= ctas &&
                  3 * left <= KILN__TAIL_FLAGS;
    return splits ? parts : 0;
}

bool kiln__gemm_fp8_tail_kernel(const kiln__gemm_config *cfg)
{
    return cfg->block_m == 192 && cfg->block_n == 128 && cfg->grouping == 0 && !cfg->out_f32 &&
           cfg->multicast <= 1 && cfg->cluster_k <= 1 && kiln__gemm_fp8_multicast_a(cfg) == 1 &&
           !cfg->loads_only && !cfg->math_only;
}

/* Where it paid (stop 33, profiler, two rounds, without -> with a workspace, us):
 * 6144x2112x7168 163.7 / 163.5 -> 149.2 / 149.3, 8192x7168x16384 1436.9 / 1437.9 -> 1409.7 /
 * 1411.8. Where it did not: 8192x7168x2048 184.2 / 183.7 -> 186.7 / 186.9, 3072x24576x1536
 * 178.9 / 178.5 -> 183.8 / 183.3, 2048x32768x512 62.7 / 62.5 -> 72.2 / 71.6: below K = 7168 a
 * third of a tile's K loop saves less than the pieces' partial sums cost to swap and add.
 * Two pieces per tile where the last round fills a third to half of the CTAs (stop 34, two
 * rounds): 2112x2112x7168 63.4 / 63.6 -> 59.1 / 59.1, 4928x2112x7168 131.8 / 131.8 -> 126.2 /
 * 126.1, 2688x4096x7168 133.3 / 133.3 -> 127.3 / 126.8, 1536x7168x16384 286.7 / 286.7 ->
 * 269.3 / 269.5, 3776x7168x16384 667.8 / 668.5 -> 651.5 / 651.0: a third of the ideal gain
 * to half of it, the rest lost to the clock (the busier last round ran 2-4% slower). */
bool kiln__gemm_fp8_tail_fits(const kiln__gemm_config *cfg, int64_t units, int64_t k, int num_sms)
{
    return k >= 7168 && kiln__gemm_fp8_tail_kernel(cfg) &&
           kiln__gemm_fp8_tail_parts(units, k / 128, num_sms) > 0;
}

int64_t kiln__gemm_fp8_tail_ws_bytes(int num_sms)
{
    /* the flags, then for each piece (one per CTA at most) three row groups' 64 x 128 FP32
     * partial sums */
    int64_t pieces = num_sms > 0 ? num_sms : 1;
    return 4 * KILN__TAIL_FLAGS + pieces * 3 * 64 * 128 * 4;
}

/* The width stays 128 columns. Narrower 192-row tiles would even out the last round of
 * tiles (4096 x 7168: 60 n blocks of 120 columns make exactly 10 rounds, against 9.33 of
 * 128), but 120, 112 and 96 columns ran 40-47%, 29-51% and 16-25% slower than 128 (stop 32,
 * profiler: 4096x7168x16384, 4096x7168x2048, 4096x2112x7168, 4096x4096x7168): their tiles
 * straddle B's 128-column scale blocks and spill (up to 136 bytes at 120). */
void kiln__gemm_fp8_make_tall(kiln__gemm_config *cfg, int rows)
{
    cfg->block_m = rows;
    cfg->overlap = 0; /* no room for a second accumulator set beside the taller tile's */
    cfg->multicast = 1;
    /* In turn, 192-row tiles gained 3.7-4.7% at K = 7168 and 16384 (dense 4096x2112x7168,
     * 4096x7168x16384; contiguous (4096, 7168) 2.5-4.2%; stop 12) and, since the kernels of
     * stops 24-25, at short K too (stop 27, profiler, two rounds: 4096x32768x512 132.0 ->
     * 127.1 us, 4096x24576x1536 237.3 -> 234.8, 2048x24576x1536 122.4 -> 121.4; contiguous
     * (7168, 2048) 0.5-0.8%; docs/gemm_fp8_notes.md). The row-id layout (grouping 3) too,
     * since its producers have 32 registers and no longer spill (stop 38, contiguous (7168,
     * 2048) row ids, 192 rows forced, two rounds: 4x8192 793.8 -> 787.0 us, 8x4096 819.1 ->
     * 809.6; it had been 0.6-1.0% slower in turn there). 256-row tiles in turn lost 1.3-12%
     * on four of five shapes (stop 13's --sweep). */
    cfg->turns = rows == 192;
    kiln__gemm_fp8_fit(cfg);
}

bool kiln__gemm_fp8_try_tall(kiln__gemm_config *cfg, int64_t m, int64_t n, int64_t k, int knob,
                             int num_sms, kiln__tall_set set)
{
    if (m <= 128 || cfg->block_m != 128 || cfg->block_n != 128 || knob == 0)
        return false;
    int rows = knob == 2   ? 192
               : knob == 3 ? 256
                           : kiln__gemm_fp8_tall_rows(m, n, k, num_sms, set);
    if (rows == 128)
        return false;
    kiln__gemm_fp8_make_tall(cfg, rows);
    return true;
}

/* Operand bytes a round of num_sms tiles touches when tiles walk M inside groups of
 * `group` column blocks: about num_sms / width m blocks of A by width n blocks of B, each
 * K deep (width: the group, or the row of column blocks where that is narrower). */
static double round_bytes(const kiln__gemm_config *cfg, int64_t col_blocks, int64_t k,
                          int num_sms, int group)
{
    double width = (double)(group < col_blocks ? group : col_blocks);
    return (double)k * ((double)num_sms * cfg->block_m / width + width * cfg->block_n);
}

int kiln__gemm_fp8_l2_group(const kiln__gemm_config *cfg, int64_t n, int64_t k, int num_sms)
{
    static const int groups[] = {8, 16, 32};
    /* Half of the H200's 60 MB L2: contiguous (4096, 7168) lost 2.3-3.3% to rounds of
     * 35-37 MB against 26-30 MB (stop 36), as lines are evicted before their reuse. */
    const double budget = 30e6;
    int64_t col_blocks = (n + cfg->block_n - 1) / cfg->block_n;
    int best = 0;
    double fewest = 0.0;
    /* widest first: the first that fits; meanwhile the fewest bytes (ties to the narrower) */
    for (int i = (int)(sizeof groups / sizeof groups[0]) - 1; i >= 0; i--) {
        double bytes = round_bytes(cfg, col_blocks, k, num_sms, groups[i]);
        if (bytes <= budget)
            return groups[i];
        if (best == 0 || bytes <= fewest) {
            best = groups[i];
            fewest = bytes;
        }
    }
    return best;
}

/* Registers per math thread after setmaxnreg (mirrors the template's MATH_REGS). */
static int math_regs(const kiln__gemm_config *cfg)
{
    int math_wg = wave_warpgroups(cfg) * cfg->k_split, threads = (math_wg + 1) * 128;
    int entry = 65536 / threads / 8 * 8;
    entry = entry > 248 ? 248 : entry;
    int producer = cfg->block_m >= 192 ? 24 : 40; /* the template's PRODUCER_REGS */
    int regs = (entry * threads - 128 * producer) / (128 * math_wg) / 8 * 8;
    return regs > 240 ? 240 : regs;
}

bool kiln__gemm_fp8_can_overlap(const kiln__gemm_config *cfg)
{
    return cfg->k_split == 1 && cfg->block_m != 256 && 3 * cfg->block_n / 2 + 40 <= math_regs(cfg);
}

bool kiln__gemm_fp8_overlaps(const kiln__gemm_config *cfg, const kiln_ctx *ctx)
{
    return cfg->overlap && (ctx == NULL || ctx->opts.gemm_overlap) &&
           kiln__gemm_fp8_can_overlap(cfg);
}

bool kiln__gemm_fp8_turns(const kiln__gemm_config *cfg, const kiln_ctx *ctx)
{
    return cfg->turns && cfg->block_m > 64 && cfg->k_split == 1 && !cfg->loads_only &&
           !kiln__gemm_fp8_overlaps(cfg, ctx);
}

void kiln__gemm_fp8_prefill_turns(kiln__gemm_config *cfg, int64_t m)
{
    if (m > 128 && cfg->block_m == 128 && cfg->block_n == 128 && !cfg->out_f32)
        cfg->turns = 1;
}

void kiln__gemm_fp8_spec(kj_spec *spec, const kiln_ctx *ctx, int64_t n, int64_t k,
                         const kiln__gemm_config *cfg)
{
    /* Positional, in the order of the template's parameter list (src/jit/templates.c): this
     * runs on every call, so no lookups by name. */
    kj_spec_init(spec, KJ_GEMM_FP8);
    const int64_t values[] = {n, k, cfg->block_m, cfg->block_n, cfg->stages, cfg->group_n,
                              cfg->k_split, cfg->multicast, cfg->out_f32, cfg->cluster_k,
                              cfg->grouping, cfg->m_align, kiln__gemm_fp8_overlaps(cfg, ctx),
                              cfg->trace, kiln__gemm_fp8_unroll(cfg),
                              kiln__gemm_fp8_multicast_a(cfg), cfg->loads_only,
                              kiln__gemm_fp8_turns(cfg, ctx), cfg->math_only, cfg->tail,
                              cfg->no_b_early};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        spec->values[i] = values[i];
}

bool kiln__gemm_fp8_no_b_early(const kiln__gemm_config *cfg, int b_ready)
{
    return cfg->grouping == 0 && !cfg->out_f32 && b_ready <= 0;
}

int kiln__gemm_fp8_check_nk(kiln_ctx *ctx, const char *op, int64_t n, int64_t k)
{
    if (k <= 0 || k % 128 != 0 || k > (1 << 20))
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: K = %lld must be a positive multiple of 128 (at most 2^20)", op,
                               (long long)k);
    if (n <= 0 || n % 16 != 0 || n > (1 << 20))
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                               "%s: N = %lld must be a positive multiple of 16 (at most 2^20)", op,
                               (long long)n);
    return KILN_OK;
}

int kiln__gemm_fp8_spec_mnk(kiln_ctx *ctx, kiln__spec_words *words, const char *op, int64_t *m,
                            int64_t *n, int64_t *k)
{
    int status;
    if ((status = kiln__spec_word(ctx, words, "m", true, 0, m)) ||
        (status = kiln__spec_word(ctx, words, "n", true, 0, n)) ||
        (status = kiln__spec_word(ctx, words, "k", true, 0, k)))
        return status;
    if ((status = kiln__check_rows(ctx, op, *m, 1)) != KILN_OK)
        return status;
    return kiln__gemm_fp8_check_nk(ctx, op, *n, *k);
}

/* out and one wgmma accumulator set (two with overlap) of block_n / 2 values per math
 * thread, plus ~40 registers of addresses and scales (kiln__gemm_fp8_can_overlap's model).
 * Plain-loop tiles wider than 128 columns by an odd multiple of 8 start at any of 16 offsets
 * into their B scale blocks and may touch three of them. While the template compiled the
 * promotion once per such offset, 184-column decode kernels spilled 16-436 bytes (31 of the
 * 33 compiled; local loads in the K loop) and 64 x 200 ones 300-712 (stop 58, NVRTC 13.0).
 * Since stop 59 they take the run-time block choice (SB_PER_PHASE) and 128 x 184 spills
 * nothing, but its K block is still twice 128 x 192's instructions (319 against 157), and
 * 192 columns keep the round of tiles (try_width_or_next): counted as 24 more, which leaves
 * out 184 columns and 64 x 200. */
static bool fits_registers(const kiln__gemm_config *cfg)
{
    int phase_regs = !cfg->overlap && cfg->block_n > 128 && cfg->block_n % 16 == 8 ? 24 : 0;
    return (cfg->overlap ? 3 : 2) * cfg->block_n / 2 + 40 + phase_regs <= math_regs(cfg);
}

/* Sets the decode tile's width and its loop (overlapped where the registers allow); false
 * when the registers do not fit it. */
static bool try_width(kiln__gemm_config *cfg, int width)
{
    cfg->block_n = width < 16 ? 16 : width;
    cfg->overlap = kiln__gemm_fp8_can_overlap(cfg);
    return cfg->block_n <= 256 && fits_registers(cfg);
}

/* try_width, or 8 columns more where an odd multiple of 8 does not fit (184: 192), which
 * keeps the round of tiles. */
static bool try_width_or_next(kiln__gemm_config *cfg, int width)
{
    return try_width(cfg, width) || (width % 16 == 8 && try_width(cfg, width + 8));
}

/* Appends cfg to out unless out is full or holds a configuration that compiles to the same
 * kernel (overlap counts only where the kernel can overlap: kiln__gemm_fp8_spec). */
static void add_alternative(kiln__gemm_config *out, int *count, int max,
                            const kiln__gemm_config *cfg)
{
    kiln__gemm_config a = *cfg;
    a.turns = kiln__gemm_fp8_turns(&a, NULL);
    a.overlap = kiln__gemm_fp8_overlaps(&a, NULL);
    for (int i = 0; i < *count; i++) {
        kiln__gemm_config b = out[i];
        b.turns = kiln__gemm_fp8_turns(&b, NULL);
        b.overlap = kiln__gemm_fp8_overlaps(&b, NULL);
        if (memcmp(&a, &b, sizeof a) == 0)
            return;
    }
    if (*count < max)
        out[(*count)++] = *cfg;
}

/* Decode: k_split s inside the CTA and a cluster of c CTAs over K, with M in m_tiles tiles
 * (2: 64-row tiles for M in 65..128, their pair sharing B by multicast when mc is 2), or a
 * cluster of mca n blocks sharing the A tile by multicast (multicast_a), on the tile width
 * that gives every co-resident CTA one tile (about 66 clusters of 2, 30 of 4 and 15 of 8
 * fit on 132 SMs; 15 of 8 by stop 11's trace), or two, three or four rounds of tiles where
 * one round's would be too wide for the registers. */
static bool decode_alternative(kiln__gemm_config *cfg, int64_t n, int64_t k_blocks, int s, int c,
                               int m_tiles, int mc, int mca, int num_sms)
{
    int ctas = c == 8                ? kiln__resident_clusters(num_sms, 8) * 8
               : c == 4 || mca == 4 ? kiln__resident_clusters(num_sms, 4) * 4
                                    : num_sms;
    int n_tiles = ctas / (m_tiles * c);
    if (n_tiles < 1) /* too few SMs (KILN_NUM_SMS) for this cluster */
        return false;
    if (m_tiles == 2)
        cfg->block_m = 64;
    cfg->k_split = s;
    cfg->cluster_k = c > 1 ? c : 0;
    cfg->multicast = mc;
    cfg->multicast_a = mca > 1 ? mca : 0;
    if (kiln__gemm_fp8_threads(cfg) > 1024 || c > k_blocks ||
        (s > 1 && (k_blocks % c != 0 || k_blocks / c % s != 0)) || (mc > 1 && c > 1) ||
        (mca > 1 && (c > 1 || mc > 1 || m_tiles > 1 || n_tiles < mca)))
        return false;
    for (int rounds = 1; rounds <= 4; rounds++) {
        int64_t tiles = (int64_t)n_tiles * rounds;
        int width = round_up((int)((n + tiles - 1) / tiles), mc > 1 ? 16 : 8);
        if (try_width_or_next(cfg, width))
            break;
        if (rounds == 4)
            return false;
    }
    kiln__gemm_fp8_fit(cfg);
    return cfg->k_split == s && cfg->stages >= 2;
}

void kiln__gemm_fp8_share_a(kiln__gemm_config *cfg, int64_t m, int64_t n, int64_t k, int num_sms)
{
    /* Stop 45 (16 K blocks, one tile per SM before): 128x64 tiles in clusters of 4 sharing
     * A (112 CTAs) against the 128x56 pick (128), three rounds of batches / two under the
     * profiler: 128x7168x2048 8.07 -> 7.75 us / 9.73 -> 9.22, 100x7168x2048 8.73 -> 8.56 /
     * 9.91 -> 9.54, 65x7168x2048 8.47 -> 8.44 / 9.64 -> 9.62. It pays only since cluster
     * kernels leave through a relaxed barrier (cluster_sync_before_exit). 64-row tiles keep
     * the pick (64x7168x2048: 64x64 shared by 4 8.74 us against 8.54-8.58 under the
     * profiler), and so does K from 4096 up, where K clusters take over. */
    int64_t k_blocks = k / 128;
    if (m <= 64 || m > 128 || k_blocks < 16 || k_blocks >= 32 || cfg->cluster_k > 1 ||
        cfg->k_split != 1 || cfg->multicast > 1 || cfg->block_n < 48)
        return;
    /* the --sweep's tile for A shared by 4, if at most one step wider: few CTAs left idle */
    kiln__gemm_config shared = *cfg;
    if (decode_alternative(&shared, n, k_blocks, 1, 1, 1, 1, 4, num_sms) &&
        shared.block_n <= cfg->block_n + 8)
        *cfg = shared;
}

/* kiln__gemm_fp8_alternatives without the unrolled copies. */
static int tile_alternatives(int64_t m, int64_t n, int64_t k, int num_sms,
                             kiln__gemm_config *out, int max)
{
    int count = 0;
    kiln__gemm_config pick = kiln__gemm_fp8_pick(m, n, k, num_sms);
    add_alternative(out, &count, max, &pick);
    pick.unroll = 0; /* the variants below come plain; unrolled copies follow */
    kiln__gemm_config c = pick;
    if (pick.k_split == 1) { /* the pick with its overlap switched */
        c.overlap = !pick.overlap;
        kiln__gemm_fp8_fit(&c);
        add_alternative(out, &count, max, &c);
    }
    if (m <= 128) {
        static const int splits[] = {1, 2, 4}, clusters[] = {1, 2, 4, 8};
        for (int ci = 0; ci < 4; ci++)
            for (int si = 0; si < 3; si++) {
                c = pick;
                if (decode_alternative(&c, n, k / 128, splits[si], clusters[ci], 1, 1, 1, num_sms))
                    add_alternative(out, &count, max, &c);
            }
        /* Two 64-row tiles: twice the CTAs per N tile, each with one row group. */
        static const int pairs[][3] = {{1, 1, 1}, {1, 2, 1}, {1, 1, 2}, {2, 1, 2}};
        for (int i = 0; m > 64 && i < 4; i++) { /* {k_split, cluster_k, multicast} */
            c = pick;
            if (decode_alternative(&c, n, k / 128, pairs[i][0], pairs[i][1], 2, pairs[i][2], 1,
                                   num_sms))
                add_alternative(out, &count, max, &c);
        }
        /* A read once per cluster of 2 or 4 n blocks (multicast_a) instead of once per n
         * block: fewer L2 reads of A, which did not make decode faster (stop 10); kept as
         * a measured alternative. */
        static const int shares[][2] = {{1, 2}, {2, 2}, {1, 4}, {2, 4}}; /* {k_split, mca} */
        for (int i = 0; i < 4; i++) {
            c = pick;
            if (decode_alternative(&c, n, k / 128, shares[i][0], 1, 1, 1, shares[i][1], num_sms))
                add_alternative(out, &count, max, &c);
        }
        /* (128-row tiles issuing in turn, the prefill lever below, made no decode shape
         * faster: 128x4096x7168 13.30 -> 13.64 us, 128x7168x16384 38.88 -> 38.92, stop
         * 12's --sweep. Decode waits for data, not for the tensor cores.) */
        return count;
    }
    c = pick; /* 129-384 rows: decode's tiles per m block, as dense launches take them */
    if (kiln__gemm_fp8_m_blocks_decode(&c, m, n, k, num_sms))
        add_alternative(out, &count, max, &c);
    c = pick; /* few tiles: K split over a cluster, as dense launches take it */
    if (kiln__gemm_fp8_prefill_k_split(&c, m, n, k, num_sms))
        add_alternative(out, &count, max, &c);
    c = pick; /* one round with SMs idle: narrower tiles */
    if (kiln__gemm_fp8_prefill_narrow(&c, m, n, k, num_sms))
        add_alternative(out, &count, max, &c);
    if (pick.k_split == 1 && pick.cluster_k <= 1) { /* B shared by a pair of M tiles */
        for (int overlap = 1; overlap >= 0; overlap--) {
            c = pick;
            c.multicast = 2;
            c.overlap = overlap;
            kiln__gemm_fp8_fit(&c);
            add_alternative(out, &count, max, &c);
        }
    }
    /* Taller tiles (KILN_GEMM_TALL_TILES 2 and 3): 192 rows in three warpgroups, 256 rows as
     * two waves of two (half the B traffic per FLOP of 128 x 128), each in both issue
     * orders; and 256-row tiles in pairs of n blocks sharing the A tile by multicast (where
     * N has pairs): in stop 13's A/B of two builds it ranged from 6% slower to 2% faster
     * over six shapes, and B multicast (pairs of m blocks) was 0.4-13% slower in a --sweep. */
    for (int knob = 2; knob <= 3; knob++) {
        c = pick;
        if (!kiln__gemm_fp8_try_tall(&c, m, n, k, knob, num_sms, KILN__TALL_ANY))
            continue;
        kiln__gemm_config other_order = c, shared_a = c;
        other_order.turns = !c.turns;
        shared_a.multicast_a = 2;
        add_alternative(out, &count, max, &c);
        add_alternative(out, &count, max, &other_order);
        if (knob == 3 && (n + 127) / 128 % 2 == 0)
            add_alternative(out, &count, max, &shared_a);
    }
    /* The plain K loop with the row groups issuing in turn, with and without B multicast.
     * (Wider 128 x 160 and 128 x 176 tiles lost 17-45% in lockstep (stop 12) and 16-40% in
     * turn (stop 13); see the 128 x 192 alternatives below.) */
    for (int mc = 1; pick.block_m == 128 && pick.k_split == 1 && mc <= 2; mc++) {
        c = pick;
        c.overlap = 0;
        c.multicast = mc;
        c.turns = 1;
        kiln__gemm_fp8_fit(&c);
        add_alternative(out, &count, max, &c);
    }
    /* 128 x 192 tiles issuing in turn, with and without B multicast: each warpgroup's
     * promotion is covered by the other's 384 tensor clocks of wgmma. Stop 17: 88% of the
     * tensor rate per cycle in the loop (256 x 128: 87%, 192 x 128: 95%), within a few % of
     * the taller tiles in batches (4096x24576x1536 once 14% faster, then 5% slower over 3
     * rounds). 128 x 160 ran at 77% per cycle even with its scale blocks fixed at compile
     * time: left out. */
    for (int mc = 1; pick.k_split == 1 && pick.cluster_k <= 1 && mc <= 2; mc++) {
        c = pick;
        c.block_m = 128;
        c.block_n = 192;
        c.overlap = 0;
        c.multicast = mc;
        c.multicast_a = 1;
        c.turns = 1;
        kiln__gemm_fp8_fit(&c);
        add_alternative(out, &count, max, &c);
    }
    return count;
}

int kiln__gemm_fp8_alternatives(int64_t m, int64_t n, int64_t k, int num_sms,
                                kiln__gemm_config *out, int max)
{
    int count = tile_alternatives(m, n, k, num_sms, out, max);
    /* Each with an unrolled K loop too where registers allow. The overlapped loop unrolls
     * only fully, over a constant K-block count (the template's kloop_overlapped): decode.
     * Limits from compiling every alternative of the twelve decode shapes (stop 9): fully
     * unrolled, tiles wider than 64 spilled (12-1120 bytes) or had their wgmma serialized
     * (C7514, 64 K blocks); the plain loop unrolled 4 times spilled at 168-192 columns, and
     * 192-row tiles spill 276 bytes unrolled twice. Short loops (8 K blocks per CTA or
     * fewer) unroll up to 128 columns: 64x128 at K = 512 compiled without spills (stop 44). */
    for (int i = 0, tiles = count; i < tiles; i++) {
        kiln__gemm_config c = out[i];
        int64_t k_blocks = k / 128, ck = c.cluster_k > 1 ? c.cluster_k : 1;
        bool overlapped = kiln__gemm_fp8_overlaps(&c, NULL);
        if (c.block_m >= 192 || c.block_n > (overlapped && k_blocks / ck > 8 ? 64 : 128) ||
            (overlapped && (m > 128 || k_blocks % ck != 0 || k_blocks / ck > 64)))
            continue;
        c.unroll = m <= 128 ? 4 : 2;
        add_alternative(out, &count, max, &c);
    }
    return count;
}
