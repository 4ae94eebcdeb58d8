#!/usr/bin/env python3
"""The summary of a scripts/profile-ab.sh run. Usage: ab_summary.py FILE (profile-ab's lines).

profile-ab prints one line per round, build and kernel run:
  round R BUILD LABEL COUNT x MEDIAN us [MIN-MAX] [TFLOP/s] [MHz] [MB] kiln_gemm... [TAG]
This groups them by kernel run (the label and the tag after the kernel's name, e.g.
"c4x8192:4096x7168 [row ids]") and prints, per run, each build's medians over the rounds,
their mean, the median clock, and the mean's change against the first build named, so that
an A/B reads off one table instead of being worked out by hand. A change smaller than the
rounds' own spread (the largest minus the smallest median of one build) is marked "~": the
rounds do not tell it apart from noise."""
import re
import sys

LINE = re.compile(r"round (\d+) (\S+)\s+(\S+)\s+\d+ x\s+([\d.]+) us(?: \[[\d.]+-[\d.]+\])?(.*)")
MHZ = re.compile(r"(\d+) MHz")
TAG = re.compile(r"kiln_gemm\S*\s*(.*)$")  # what follows kiln's kernel name, e.g. [row ids]


def parse(path):
    """{(label, tag): {build: [(us, MHz or None)]}} and the builds in first-seen order."""
    runs, builds = {}, []
    with open(path) as f:
        for line in f:
            m = LINE.match(line.strip())
            if not m:
                continue
            _, build, label, us, rest = m.groups()
            tag = TAG.search(rest)
            key = (label, tag.group(1).strip() if tag else "")
            mhz = MHZ.search(rest)
            runs.setdefault(key, {}).setdefault(build, []).append(
                (float(us), int(mhz.group(1)) if mhz else None))
            if build not in builds:
                builds.append(build)
    return runs, builds


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: ab_summary.py FILE")
    runs, builds = parse(sys.argv[1])
    if not runs:
        print("ab summary: no profile-ab line found")
        return
    print(f"== summary: medians per round, their mean (us) and clock; change against {builds[0]}")
    for (label, tag), by_build in runs.items():
        print(f"{label} {tag}".rstrip())
        base = None
        for build in builds:
            if build not in by_build:
                continue
            times = [us for us, _ in by_build[build]]
            clocks = sorted(c for _, c in by_build[build] if c is not None)
            mean = sum(times) / len(times)
            spread = max(times) - min(times)
            clock = f" {clocks[len(clocks) // 2]:5d} MHz" if clocks else ""
            change = ""
            if base is None:
                base = (mean, spread)
            else:
                pct = 100.0 * (mean - base[0]) / base[0]
                noise = abs(mean - base[0]) <= max(spread, base[1])
                change = f"  {pct:+6.2f}%{' ~' if noise else ''}"
            rounds = " / ".join(f"{t:.2f}" for t in times)
            print(f"  {build:<44} {rounds:<24} mean {mean:9.2f}{clock}{change}")


if __name__ == "__main__":
    main()
