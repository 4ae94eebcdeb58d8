#!/usr/bin/env bash
# The DRAM read ceiling under the profiler, comparable with profile-single.sh's kernel
# times (lone launches, caches flushed by Nsight Compute, clocks left alone), on the GPU
# machine (device tool; carry build-device):
#   bash scripts/stream-profile.sh [MB | bulk:MB:CHUNK:SLOTS:SLICED | NxK:ROWS:PARTS:STAGES[:DEPTH] |
#                                    async:NxK:ROWS:PARTS:STAGES:THREADS ...]
# (the reads of kiln-bench-stream; none: its default set). Runs kiln-bench-stream --single
# under ncu and prints, per read, the median
# gpu__time_duration of its 17 launches, its [min-max] and the GB/s of the median; then the
# event-timed run of the same reads (lone launches after an L2 flush, and batches).
# Logs: $OUT/stream-profile.tgz.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-logs.sh
device_run stream-profile # sets $build and $out
bench=$build/tools/kiln-bench-stream
timeout 300 ncu --clock-control none --metrics gpu__time_duration.sum --csv "$bench" --single "$@" \
  >"$out/ncu.csv" 2>"$out/ncu.err"
python3 - "$out/ncu.csv" <<'PY' | tee "$out/summary.txt"
import csv, statistics, sys
rows = [l for l in open(sys.argv[1]) if l.startswith('"')]
units = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}
launches = []
for r in csv.DictReader(rows):
    if r["Metric Name"] == "gpu__time_duration.sum":
        launches.append((int(r["ID"]), r["Kernel Name"], float(r["Metric Value"].replace(",", "")) * units[r["Metric Unit"]]))
launches.sort()
# the benchmark's own lines say which read each group of 17 launches was
reads = [l.split()[1:3] for l in open(sys.argv[1])
         if l.split()[:1] in (["ldg"], ["bulk"], ["tile"], ["async"]) and "profiled" in l]
print(f"{'kernel':10} {'B tiles':22} {'MB':>9} {'median us':>10} {'[min-max]':>17} {'GB/s':>7}")
for g in range(len(launches) // 17):
    group = launches[17 * g:17 * g + 17]
    us = [t for _, _, t in group]
    tiles, mb = (reads[g][0], float(reads[g][1])) if g < len(reads) else ("?", float("nan"))
    med = statistics.median(us)
    print(f"{group[0][1]:10} {tiles:22} {mb:9.2f} {med:10.2f} [{min(us):7.2f}-{max(us):7.2f}] {mb * 1e3 / med:7.0f}")
PY
echo
"$bench" "$@" | tee "$out/events.txt"
