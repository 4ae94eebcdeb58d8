#!/usr/bin/env bash
# The gpu suite's tests under NVIDIA's compute-sanitizer, on the GPU machine (device tool;
# carry build-device and .carry, as for device-check.sh):
#   bash scripts/sanitize-gpu.sh [PROGRAM[:FILTER] ...]
# Each argument is a test program of build-device/tests (test_gemm_bf16_gpu...) and, after a
# colon, a cmocka filter (KILN_TEST_FILTER) naming the tests of it to run; no arguments: the
# default list below, every program but the DeepSeek shapes and the two sweeps over
# alternatives of test_gemm_fp8_gpu (the slowest under the tool; name them to run them).
# KILN_SANITIZE_TOOL=memcheck (default) | racecheck | synccheck | initcheck. memcheck checks
# every global and shared access of kiln's kernels against the allocations (an output written
# outside its tensor, a read past an operand), and the driver calls' errors. Prints one line
# per run: the program, the filter, its exit status, and the tool's error count; full logs
# in $OUT/sanitize-gpu.tgz. Exit status: nonzero when any run failed or found errors.
# KILN_SANITIZE_BUDGET=S (default 480): runs that would start after S seconds are listed as
# not run (the device tool stops a call at 600 s); KILN_SANITIZE_TIMEOUT=S caps each run.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-logs.sh
device_run sanitize-gpu # sets $out and $build; packs $out into $OUT/sanitize-gpu.tgz at exit
tool=${KILN_SANITIZE_TOOL:-memcheck}
runs=("$@")
if [ ${#runs[@]} -eq 0 ]; then
  runs=(test_quant_gpu test_pdl_chain_gpu test_gemm_fp8_f32_gpu test_gemm_bf16_gpu
        test_gemm_bf16_contig_gpu test_gemm_fp8_contig_gpu)
  for t in test_bad_arguments test_odd_shapes test_cluster_partial_rows test_multicast \
           test_tall_tiles test_tail_split test_masked_groups test_masked_graph_replay \
           test_prewarmed_cache_serves_jit_off test_trace_mode; do
    runs+=("test_gemm_fp8_gpu:$t")
  done
fi
status=0
began=$(date +%s)
for r in "${runs[@]}"; do
  if [ $(($(date +%s) - began)) -ge "${KILN_SANITIZE_BUDGET:-480}" ]; then
    printf '%-26s not run (KILN_SANITIZE_BUDGET spent)\n' "$r" | tee -a "$out/summary.txt"
    status=1
    continue
  fi
  program=${r%%:*}
  filter=
  [ "$program" = "$r" ] || filter=${r#*:}
  log="$out/$program${filter:+-$filter}.$tool.log"
  start=$(date +%s)
  KILN_TEST_FILTER=$filter timeout "${KILN_SANITIZE_TIMEOUT:-400}" \
    compute-sanitizer --tool "$tool" --error-exitcode 99 --print-limit 50 \
    "$build/tests/$program" >"$log" 2>&1
  rc=$?
  # memcheck, synccheck, initcheck: "ERROR SUMMARY: N errors"; racecheck: "RACECHECK
  # SUMMARY: H hazards displayed (N errors, W warnings)"
  errors=$(grep -Eo 'ERROR SUMMARY: [0-9]+|RACECHECK SUMMARY: .*\([0-9]+ errors' "$log" |
    tail -n 1 | grep -Eo '[0-9]+( errors)?$' | grep -Eo '^[0-9]+')
  [ "$rc" = 0 ] || status=1
  printf '%-26s %-38s rc %-3s errors %-4s %4d s\n' "$program" "${filter:-(all)}" "$rc" \
    "${errors:-?}" $(($(date +%s) - start)) | tee -a "$out/summary.txt"
done
exit $status
