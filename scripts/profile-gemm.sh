#!/usr/bin/env bash
# Hardware counters of one FP8 GEMM launch per shape, on the GPU machine (device tool):
#   bash scripts/profile-gemm.sh [MxNxK ...]      (carry build-device and .carry)
# Nsight Compute with the clocks left alone; prints the speed-of-light figures, the gmma
# (wgmma) pipe's utilisation and the warps' stall reasons per issued instruction, so a
# session can see which unit bounds a kernel before changing it.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${KILN_BUILD_DIR:-build-device}
export LD_LIBRARY_PATH="$PWD/.carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export KILN_CACHE_PATH="${KILN_CACHE_PATH:-/tmp/kiln-device-cache}"
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(4096x7168x2048 64x2112x7168)
for shape in "${shapes[@]}"; do
  echo "=== $shape ==="
  timeout "${KILN_PROFILE_TIMEOUT:-120}" ncu --clock-control none -k regex:kiln_gemm -s 4 -c 1 \
    --section SpeedOfLight \
    --metrics sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active,regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio \
    "$build/tools/kiln-bench-gemm-fp8" "$shape" 2>&1 |
    grep -E 'Frequency|Duration|Throughput|gmma|stalled' | awk '$NF+0 > 0.05 || !/stalled/'
done
