#!/usr/bin/env bash
# Hardware counters of one FP8 GEMM launch per shape, on the GPU machine (device tool):
#   bash scripts/profile-gemm.sh [--source] [--memory] [MxNxK ... | --contig]
#   (carry build-device, .carry)
# Nsight Compute with the clocks left alone; prints the speed-of-light figures, the gmma
# (wgmma) pipe's utilisation and the warps' stall reasons per issued instruction, so a
# session can see which unit bounds a kernel before changing it. --memory adds the shared
# memory tables and utilisation (wgmma operands and TMA writes). --source also samples the
# stalls per SASS instruction (ncu-source-SHAPE.csv in $OUT/profile-gemm.tgz) and prints where they land
# (scripts/ncu_stalls.py): promotion FFMAs, barrier waits, wgmma issue. --contig: the
# contiguous grouped GEMM on one group of 32768 rows at (N, K) = (4096, 7168), once with the
# prefix sums and once with row ids (both layouts then walk the same tiles in the same order:
# what differs is the row-id scan at each tile start; docs/gemm_fp8_notes.md, "Stop 19").
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-logs.sh
device_run profile-gemm # sets $out; packs it into $OUT/profile-gemm.tgz at exit
exec > >(tee "$out/profile-gemm.log") 2>&1 # the device tool returns only the output's tail
source=0
memory=0
contig=0
while [[ ${1:-} == --* ]]; do
  case $1 in
    --source) source=1 ;;
    --memory) memory=1 ;;
    --contig) contig=1 ;;
    *) echo "$0: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(4096x7168x2048 4096x7168x16384 64x2112x7168)
# --contig: `kiln-bench-gemm-fp8 --single --contig` launches each kiln kernel 17 times, the
# prefix sums' first, then the row ids' (KILN_BENCH_CONTIG=1x32768: one group, (4096, 7168)
# first): the 5th launch of each is profiled (with --source, the row ids' SASS is the one
# with REDUX instructions).
[ $contig = 0 ] || shapes=(contig-prefix-sums contig-row-ids)
# Passes the SpeedOfLight lines through and adds the kernel's TFLOP/s and its share of the
# FP8 dense peak at the SM clock it ran at (KILN_PROFILE_SMS SMs, default 132, x 8192 FLOP
# per clock): the figure to hold against REFERENCE.md's, and the clock that explains it.
sol_rate() {
  awk -v shape="$1" -v sms="${KILN_PROFILE_SMS:-132}" '
    { print }
    /SM Frequency/ { ghz = $NF; if ($(NF - 1) ~ /^[Mm]hz$/) ghz /= 1000 }
    /Duration/ { us = $NF; unit = $(NF - 1)
                 if (unit == "ms") us *= 1000; else if (unit == "ns") us /= 1000; else if (unit == "s") us *= 1e6 }
    END {
      split(shape, d, "x")
      if (us <= 0 || ghz <= 0)
        exit
      tflops = 2 * d[1] * d[2] * d[3] / us / 1e6
      peak = sms * 8192 * ghz / 1000
      printf "    => %.1f TFLOP/s, %.1f%% of the FP8 peak at %.2f GHz (%d SMs)\n", tflops,
        100 * tflops / peak, ghz, sms
    }'
}
for shape in "${shapes[@]}"; do
  echo "=== $shape ==="
  skip=4
  bench_args=("$shape")
  flops_shape=$shape
  case $shape in
    contig-*)
      export KILN_BENCH_CONTIG=1x32768
      bench_args=(--single --contig)
      flops_shape=32768x4096x7168
      [ "$shape" = contig-prefix-sums ] || skip=21
      ;;
  esac
  run_ncu() { timeout "${KILN_PROFILE_TIMEOUT:-120}" ncu --clock-control none -k regex:kiln_gemm -s $skip -c 1 "$@" \
    "$build/tools/kiln-bench-gemm-fp8" "${bench_args[@]}" 2>&1; }
  run_ncu --section SpeedOfLight \
    --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' |
    grep -E 'Frequency|Duration|Throughput|stalled' | awk '!/stalled/ || $NF+0 > 0.05' |
    sol_rate "$flops_shape"
  # Tensor-pipe names differ between ncu versions: ask by pattern, print what matched.
  run_ncu --metrics 'regex:sm__pipe_tensor_cycles_active\.avg\.pct_of_peak_sustained_active' |
    grep -E '^ *sm__pipe' || true
  if [ $memory = 1 ]; then
    # Shared memory: the wgmma operand reads and the TMA writes share its bandwidth; a 128x128
    # tile needs ~160 B/clk of it at the tensor cores' full rate (docs/gemm_fp8_notes.md).
    run_ncu --section MemoryWorkloadAnalysis_Tables \
      --metrics 'regex:.*mem_shared.*pct_of_peak_sustained_(elapsed|active)' |
      grep -i -E 'shared' || true
    # Bytes the L2 hands the SMs (TMA loads included) per SM cycle: a 256 x 128 tile needs
    # 48 KB per 1024 tensor clocks (~48 B/clk) at full rate; stop 11 measured ~40 B/clk
    # into the SMs when all of them load (docs/gemm_fp8_notes.md, "Open work").
    run_ncu --metrics 'lts__t_bytes.sum.per_second,lts__t_sectors_srcunit_tex.sum,sm__cycles_elapsed.avg,lts__t_sectors.avg.pct_of_peak_sustained_elapsed' |
      grep -E '^ *(lts__|sm__cycles)' || true
  fi
  if [ $source = 1 ]; then
    run_ncu --import-source no --section SourceCounters --section WarpStateStats \
      --page source --print-source sass --csv >"$out/ncu-source-$shape.csv"
    python3 scripts/ncu_stalls.py "$out/ncu-source-$shape.csv" 15
  fi
done
