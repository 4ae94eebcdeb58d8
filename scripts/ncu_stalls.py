#!/usr/bin/env python3
"""Summarise Nsight Compute's per-SASS-instruction stall sampling of one kernel.

Input: the CSV of `ncu --page source --print-source sass --csv --section SourceCounters
--section WarpStateStats ...` (scripts/profile-gemm.sh --source writes it). Prints where
the warps' stall samples land, by opcode and by how often the instruction ran (the hot
loop runs most), then the hottest instructions with their main stall reasons, so a session
can tell e.g. promotion FFMAs from barrier waits without a GUI.

Usage: scripts/ncu_stalls.py FILE.csv [TOP]
"""
import collections
import csv
import sys

SAMPLES = "Warp Stall Sampling (All Samples)"
EXECUTED = "Instructions Executed"


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def main():
    path, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25
    lines = open(path, encoding="utf-8", errors="replace").readlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('"Address"'))
    rows = list(csv.reader(lines[start:]))
    header, rows = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
    col = {name: i for i, name in enumerate(header)}
    stall_cols = [n for n in header if n.startswith("stall_") and "(Not Issued)" not in n]
    total = sum(number(r[col[SAMPLES]]) for r in rows) or 1.0
    hottest = max(number(r[col[EXECUTED]]) for r in rows)

    by_opcode = collections.Counter()
    for r in rows:
        words = [w for w in r[col["Source"]].split() if not w.startswith("@")]
        opcode = words[0].split(".")[0] if words else "?"
        loop = "hot loop" if number(r[col[EXECUTED]]) >= hottest else "elsewhere"
        by_opcode[(opcode, loop)] += number(r[col[SAMPLES]])
    print(f"{int(total)} stall samples over {len(rows)} SASS instructions")
    print("share of samples by opcode (hot loop = the most executed instructions):")
    for (opcode, loop), samples in by_opcode.most_common(15):
        print(f"  {samples / total * 100:5.1f}%  {opcode:<10} {loop}")

    print(f"top {top} instructions:")
    for r in sorted(rows, key=lambda r: -number(r[col[SAMPLES]]))[:top]:
        reasons = sorted(((number(r[col[c]]), c[6:]) for c in stall_cols), reverse=True)[:3]
        why = ", ".join(f"{name} {n / max(number(r[col[SAMPLES]]), 1) * 100:.0f}%"
                        for n, name in reasons if n > 0)
        print(f"  {number(r[col[SAMPLES]]) / total * 100:5.1f}%  x{int(number(r[col[EXECUTED]])):>9}"
              f"  {r[col['Source']].strip()[:60]:<60}  {why}")


if __name__ == "__main__":
    main()
