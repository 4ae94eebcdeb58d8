#!/usr/bin/env bash
# Kernel times the way REFERENCE.md's anchors were taken (the profiler's duration of lone
# launches), on the GPU machine (device tool; carry build-device and .carry):
#   bash scripts/profile-single.sh [--sweep] [MxNxK ... | --quick | --contig | --masked]
# Runs kiln-bench-gemm-fp8 --single under Nsight Compute (clocks left alone; caches flushed
# before each launch, its default) once per shape, and prints per shape the median
# gpu__time_duration (with its [min-max] over the launches) and SM clock of each kernel
# (scripts/ncu_durations.py): kiln's, then cuBLASLt's block-scaled FP8 and BF16; then the
# comparison with cuBLASLt and with the best public library's figures
# (scripts/vs_reference.py). No arguments: the 21 shapes of --quick
# (M = 64, 128, 4096). --contig / --masked: the grouped benchmarks, one profiled run each
# (--contig: a table per grouping, both layouts against the cuBLASLt loop and REFERENCE.md).
# --sweep: each dense shape's alternative configurations too (kiln-bench-gemm-fp8 --sweep),
# each kiln line labelled with its configuration.
# KILN_PROFILE_DRAM=1: each line also gives the median MB read from DRAM (dram__bytes_read.sum;
# for L2 reuse, e.g. the tile order's groups).
# KILN_PROFILE_KILN_ONLY=1: the profiler times kiln's launches alone (cuBLASLt's still run,
# unprofiled, and the comparison lacks them): a third or fewer of the profiled launches, for
# A/Bs that read only kiln's lines (profile-ab.sh, where it is the default). First run on the
# GPU machine in stop 39: ~3.4 s per dense shape instead of ~8, ~45 s per --contig run.
# KILN_PROFILE_BENCH=kiln-bench-gemm-bf16 profiles the BF16 GEMM instead, its dense shapes or
# (--contig / --masked) its grouped forms against the cuBLASLt loop, with no comparison with
# REFERENCE.md (whose figures are FP8); profile-ab.sh reads its kiln lines the same way.
# KILN_PROFILE_CACHE_CONTROL=none: the profiler leaves the caches alone (with KILN_BENCH_SETS=12,
# launches whose operands the L2 has dropped and whose code the SMs hold: what fetching the
# code costs a lone launch).
# Knobs pass through the environment (e.g. KILN_GEMM_TALL_TILES=0). Logs:
# $OUT/profile-single.tgz (-2, -3... when run again in one call).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-logs.sh
device_run profile-single # sets $out; packs it into $OUT/profile-single.tgz at exit
bench=$build/tools/${KILN_PROFILE_BENCH:-kiln-bench-gemm-fp8} # or kiln-bench-gemm-bf16
runs=()
sweep=()
for a in "$@"; do
  case $a in
    --quick) ;;
    --sweep) sweep=(--sweep) ;;
    --contig | --masked | [0-9]*x[0-9]*x[0-9]*) runs+=("$a") ;;
    *) echo "$0: unknown argument $a" >&2; exit 2 ;;
  esac
done
if [ ${#runs[@]} -eq 0 ]; then
  for m in 64 128 4096; do
    for nk in 2112x7168 24576x1536 32768x512 7168x16384 4096x7168 7168x2048 576x7168; do
      runs+=("${m}x$nk")
    done
  done
fi
metrics=gpu__time_duration.sum,sm__cycles_elapsed.avg.per_second
[ "${KILN_PROFILE_DRAM:-0}" = 0 ] || metrics+=,dram__bytes_read.sum
only=()
[ "${KILN_PROFILE_KILN_ONLY:-0}" = 0 ] || only=(--kernel-name regex:kiln_gemm)
for r in "${runs[@]}"; do
  label=${r#--}
  timeout "${KILN_PROFILE_TIMEOUT:-180}" ncu --clock-control none \
    --cache-control "${KILN_PROFILE_CACHE_CONTROL:-all}" ${only[@]+"${only[@]}"} \
    --metrics "$metrics" --csv "$bench" --single ${sweep[@]+"${sweep[@]}"} "$r" \
    >"$out/ncu-$label.csv" 2>"$out/ncu-$label.err"
  python3 scripts/ncu_durations.py "$label" "$out/ncu-$label.csv" | tee -a "$out/summary.txt"
done
echo
# REFERENCE.md's figures are the FP8 GEMM's: no comparison for the BF16 benchmark.
[ "${bench##*/}" != kiln-bench-gemm-fp8 ] || python3 scripts/vs_reference.py "$out/summary.txt"
