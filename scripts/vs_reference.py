#!/usr/bin/env python3
"""Profiler kernel times (scripts/ncu_durations.py lines, from profile-single.sh) against
cuBLASLt in the same run and the best public library's figures in ../shared/REFERENCE.md
(DeepGEMM 2.6.1 on this H200, profiler kernel times too). Usage: vs_reference.py SUMMARY.txt

Per dense shape: kiln's time, TFLOP/s and GB/s, cuBLASLt block-scaled FP8's time (its split-K
reduction included), the ratio, and kiln over the reference figure (> 1: faster); then the
geometric mean over cuBLASLt on the 18 shapes of issue 3 (M in 64, 128, 4096; N != 576).
Per contiguous grouping (--contig lines, "cGxROWS:NxK"): the prefix sums' and the row ids'
times and TFLOP/s, cuBLASLt's loop over the groups (G GEMMs), the prefix sums over that loop,
and over the reference figure where REFERENCE.md has one."""
import math
import re
import sys

# REFERENCE.md, "best public library": TFLOP/s at M = 64, 128, 4096; GB/s at M = 1.
NK = [(2112, 7168), (576, 7168), (24576, 1536), (32768, 512), (7168, 16384), (4096, 7168),
      (7168, 2048)]
PEER = {
    1: [1116, 414, 2195, 1955, 2813, 1892, 1833],
    64: [193, 58, 298, 239, 376, 278, 239],
    128: [354, 113, 565, 418, 692, 543, 411],
    4096: [1309, 1052, 1333, 1084, 1471, 1449, 1318],
}

# REFERENCE.md, grouped contiguous: TFLOP/s per (groups, rows per group, N, K).
PEER_CONTIG = {(4, 8192, 4096, 7168): 1406, (8, 4096, 4096, 7168): 1397,
               (4, 8192, 7168, 2048): 1327, (8, 4096, 7168, 2048): 1333}


def gemm_bytes(m, n, k):
    """A, B, their scales (A: 1x128 per row, B: 128x128) and D in BF16."""
    kb = k // 128
    return m * k + n * k + 4 * (m * kb + ((n + 127) // 128) * kb) + 2 * m * n


def contig_table(lines):
    """The --contig groupings of scripts/ncu_durations.py's lines, if any."""
    by_grouping = {}
    for line in lines:
        f = line.split()
        m = re.fullmatch(r"c(\d+)x(\d+):(\d+)x(\d+)", f[0]) if f else None
        if m and len(f) >= 6 and f[2] == "x" and f[4] == "us":
            by_grouping.setdefault(tuple(map(int, m.groups())), []).append((float(f[3]), line))
    if not by_grouping:
        return
    print(f"{'contig':>18} {'prefix us':>9} {'TFLOP/s':>8} {'row ids':>9} {'TFLOP/s':>8} "
          f"{'Lt loop':>9} {'x loop':>6} {'peer':>5} {'x peer':>6}")
    for (g, rows, n, k), found in by_grouping.items():
        kiln = [us for us, l in found if "kiln_gemm" in l]
        lt = next((us for us, l in found if "Avec128" in l), None)  # one GEMM of the loop
        flops = 2.0 * g * rows * n * k
        prefix, row_ids = (kiln + [float("nan")] * 2)[:2]
        loop = g * lt if lt else float("nan")
        ref = PEER_CONTIG.get((g, rows, n, k))
        tf = flops / prefix / 1e6
        print(f"{f'{g}x{rows} {n}x{k}':>18} {prefix:9.2f} {tf:8.1f} {row_ids:9.2f} "
              f"{flops / row_ids / 1e6:8.1f} {loop:9.2f} {loop / prefix:6.2f} "
              f"{ref or '-':>5} {f'{tf / ref:.3f}' if ref else '-':>6}")


def main():
    lines = open(sys.argv[1]).read().splitlines()
    contig_table(lines)
    by_shape = {}
    for line in lines:
        f = line.split()
        if len(f) < 6 or f[2] != "x" or f[4] != "us" or not re.fullmatch(r"\d+x\d+x\d+", f[0]):
            continue
        by_shape.setdefault(f[0], []).append((float(f[3]), line))
    if by_shape:
        print(f"{'shape':>18} {'kiln us':>9} {'TFLOP/s':>8} {'GB/s':>6} {'LtFP8 us':>9} "
              f"{'x Lt':>6} {'peer':>7} {'x peer':>7}")
    logs = []
    for shape, rows in by_shape.items():
        m, n, k = map(int, shape.split("x"))
        kiln = next((us for us, l in rows if "kiln_gemm" in l), None)
        lt = next((us for us, l in rows if "Avec128" in l), None)
        if kiln is None:
            continue
        tf = 2.0 * m * n * k / kiln / 1e6
        gbs = gemm_bytes(m, n, k) / kiln / 1e3
        ratio = lt / kiln if lt else float("nan")
        peer, vs = "-", "-"
        if m in PEER and (n, k) in NK:
            ref = PEER[m][NK.index((n, k))]
            peer = f"{ref}"
            vs = f"{(gbs if m == 1 else tf) / ref:.2f}"
        if m in (64, 128, 4096) and n != 576 and lt:
            logs.append(math.log(ratio))
        print(f"{shape:>18} {kiln:9.2f} {tf:8.1f} {gbs:6.0f} {lt or float('nan'):9.2f} "
              f"{ratio:6.2f} {peer:>7} {vs:>7}")
    if logs:
        print(f"geomean over cuBLASLt block-scaled FP8, {len(logs)} shapes: "
              f"x{math.exp(sum(logs) / len(logs)):.3f}")


if __name__ == "__main__":
    main()
