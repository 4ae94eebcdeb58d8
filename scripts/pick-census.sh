#!/usr/bin/env bash
# A spill census of the FP8 decode, masked and prefill K-split picks, without a GPU:
# kiln-pick-census lists every distinct configuration the picks and the benchmark's --sweep
# lists produce over a sweep of shapes, this compiles each once on every CPU (about 1600
# kernels: ~12 min on two cores) and prints those ptxas spilled or gave a stack frame, then
# the counts.
#   bash scripts/pick-census.sh [BUILD] [JOBS]      (BUILD defaults to build)
# Keep the whole output with OUT=FILE. Stop 58: 19 of 1578 spilled, two of them picks
# (docs/gemm_fp8_notes.md). Read a kernel's loops by compiling its line again with
# `kiln-pick-census compile DIR` and `scripts/sass_loops.py DIR/*.cubin`.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
jobs=${2:-$(nproc)}
census="$build/tools/kiln-pick-census"
[ -x "$census" ] || { echo "$0: $census not found (build it first)" >&2; exit 2; }
work=$(mktemp -d /tmp/kiln-census-XXXXXX)
trap 'rm -rf "$work"' EXIT
"$census" list > "$work/list"
split -n "r/$jobs" "$work/list" "$work/part."
for part in "$work"/part.*; do
  "$census" compile < "$part" > "$part.out" &
done
wait
cat "$work"/part.*.out > "$work/all"
[ -n "${OUT:-}" ] && cp "$work/all" "$OUT"
spills='/ spills / && ($NF != 0 || $(NF-2) != 0)'
awk "$spills || / failed: /" "$work/all"
total=$(wc -l < "$work/all")
spilled=$(awk "$spills" "$work/all" | wc -l)
picks=$(awk "\$1 == \"pick\" && $spills" "$work/all" | wc -l)
failed=$(grep -c ' failed: ' "$work/all" || true)
echo "$total configurations compiled: $spilled with spills or a stack frame ($picks of them picks), $failed failed"
[ "$failed" -eq 0 ]
