#!/usr/bin/env python3
"""Replays the BF16 decode pick (pick_decode in src/runtime/gemm_bf16_config.c) against
profiler times of a --sweep, to fit its weights offline. Usage:
  bf16_decode_fit.py [--n-major] [--grid] SUMMARY...
SUMMARY: profile-single.sh --sweep output with KILN_PROFILE_BENCH=kiln-bench-gemm-bf16 (the
lines scripts/ncu_durations.py prints, each kiln run labelled "[BMxBN sS ckC ...]"); the
unlabelled first run of each shape (the pick) is skipped. With N-major widths (--n-major:
64-column steps, clustered tiles at most 128 wide) as the pick takes them for NN and TN.

Prints, for the weights on main (or --weights A,DSMEM,STORE,KBLOCK), each shape's pick, its
time, the fastest configuration and how far behind the pick is; a candidate the sweep did
not time counts as a miss, since it could be anything. --grid: the regret over a grid of
weights, the best points first. The C code is the reference: change both together
(docs/gemm_bf16_notes.md, stop 53, is the fit this replays)."""
import argparse
import itertools
import re

RESIDENT = {1: 132, 2: 66, 4: 30, 8: 15}  # kiln__resident_clusters on 132 SMs
MIN_DECODE_STAGES = 4
LINE = re.compile(r"^\s*(\d+)x(\d+)x(\d+)\s+\d+ x\s+([\d.]+) us.*\[(\d+)x(\d+) s(\d+) ck(\d+)")


def cdiv(a, b):
    return -(-a // b)


def read(paths):
    times, stages = {}, {}
    for path in paths:
        for line in open(path):
            hit = LINE.match(line)
            if hit:
                m, n, k, us, _, bn, st, ck = hit.groups()
                shape, cfg = (int(m), int(n), int(k)), (int(bn), int(ck))
                times.setdefault(shape, {})[cfg] = float(us)
                stages[shape + cfg] = int(st)
    return times, stages


def candidates(n, k, step, max_clustered):
    """The (width, cluster_k) pairs pick_decode weighs: each split's fill width and half."""
    k_blocks, out = cdiv(k, 64), []
    for split in (1, 2, 4, 8):
        if split > 1 and k_blocks < 4 * split:
            continue
        fill = cdiv(cdiv(n, RESIDENT[split]), step) * step
        fill = max(16, min(max_clustered if split > 1 else 256, fill))
        half = max(16, cdiv(fill // 2, step) * step)
        for width in [fill] + ([half] if half < fill else []):
            out.append((width, split if split > 1 else 0))
    return out


def cost(m, n, k, width, ck, w):
    a_weight, dsmem, store, k_block = w
    block_m = 64 if m <= 64 else 128
    split = ck or 1
    cta_blocks = cdiv(cdiv(k, 64), split)
    tile = block_m * width
    streamed = ((a_weight * block_m + width) * 128.0 + k_block) * cta_blocks
    partials = dsmem * (split - 1) / split * tile * 4.0
    waves = cdiv(cdiv(n, width), RESIDENT[split])
    return waves * (streamed + partials) + store * tile * 2.0


def regrets(times, stages, w, step, max_clustered):
    """Per shape: (pick, its time or None, fastest config, its time, regret)."""
    rows = []
    for shape, measured in sorted(times.items()):
        def fits(c):  # the pick's stage rule, where the sweep saw the stage count
            st = stages.get(shape + c)
            return st is None or st >= MIN_DECODE_STAGES or (c[1] == 0 and st >= 2)
        cands = [c for c in candidates(shape[1], shape[2], step, max_clustered) if fits(c)]
        pick = min(cands, key=lambda c: cost(*shape, *c, w))
        best = min(measured, key=measured.get)
        t = measured.get(pick)
        rows.append((shape, pick, t, best, measured[best],
                     t / measured[best] - 1 if t else float("inf")))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-major", action="store_true")
    ap.add_argument("--grid", action="store_true")
    ap.add_argument("--weights", default=None)
    ap.add_argument("summaries", nargs="+")
    args = ap.parse_args()
    times, stages = read(args.summaries)
    step, max_clustered = (64, 128) if args.n_major else (8, 256)
    main_weights = (0.5, 12.0, 16.0, 10000.0) if args.n_major else (0.5, 5.0, 4.5, 0.0)
    w = tuple(float(x) for x in args.weights.split(",")) if args.weights else main_weights
    print("weights A %.3g DSMEM %.3g store %.3g K block %.3g" % w)
    for shape, pick, t, best, tb, r in regrets(times, stages, w, step, max_clustered):
        print("%5dx%5dx%5d  pick %3d ck%d %s  fastest %3d ck%d %8.2f  %s" % (
            *shape, *pick, "%8.2f" % t if t else "  untimed", *best, tb,
            "+%.1f%%" % (100 * r) if t else "miss"))
    if args.grid:
        grid = itertools.product([0.25, 0.5, 0.75, 1.0], [0, 2, 5, 8, 12, 16, 20],
                                 [0, 4.5, 8, 12, 16, 20], [0, 1000, 3000, 6000, 10000, 15000])
        scored = []
        for g in grid:
            rs = [row[5] for row in regrets(times, stages, g, step, max_clustered)]
            scored.append((max(rs), sum(rs), g))
        scored.sort()
        print("best of the grid (worst regret, sum, weights):")
        for worst, total, g in scored[:12]:
            print("  %6.1f%% %6.1f%%  %s" % (100 * worst, 100 * total, g))


if __name__ == "__main__":
    main()
