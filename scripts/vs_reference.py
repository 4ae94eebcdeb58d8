#!/usr/bin/env python3
"""Profiler kernel times (scripts/ncu_durations.py lines, from profile-single.sh) against
cuBLASLt in the same run and the best public library's figures in ../shared/REFERENCE.md
(DeepGEMM 2.6.1 on this H200, profiler kernel times too). Usage: vs_reference.py SUMMARY.txt

Per dense shape: kiln's time, TFLOP/s and GB/s, cuBLASLt block-scaled FP8's time (its split-K
reduction included), the ratio, and kiln over the reference figure (> 1: faster); then the
geometric mean over cuBLASLt on the 18 shapes of issue 3 (M in 64, 128, 4096; N != 576)."""
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


def gemm_bytes(m, n, k):
    """A, B, their scales (A: 1x128 per row, B: 128x128) and D in BF16."""
    kb = k // 128
    return m * k + n * k + 4 * (m * kb + ((n + 127) // 128) * kb) + 2 * m * n


def main():
    lines = open(sys.argv[1]).read().splitlines()
    by_shape = {}
    for line in lines:
        f = line.split()
        if len(f) < 6 or f[2] != "x" or f[4] != "us" or not re.fullmatch(r"\d+x\d+x\d+", f[0]):
            continue
        by_shape.setdefault(f[0], []).append((float(f[3]), line))
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
