#!/usr/bin/env bash
# The one GPU check every session runs, in two halves:
#
#   scripts/device-check.sh build          on the dev machine: builds build-device/ and
#                                          puts what the GPU machine lacks in .carry/
#   scripts/device-check.sh run [BENCH[:ARG,ARG]..]  on the GPU machine (device tool), e.g.
#       run(command="bash scripts/device-check.sh run", carry=["build-device", ".carry"])
#
# `run` executes every gpu-suite test program and then the benchmarks (all kiln-bench-*
# programs, or the ones named), packs full logs into $OUT/device-check.tgz, and prints a short
# table last. KILN_TEST_FILTER=pattern (cmocka wildcards) runs only the gpu tests it names,
# KILN_TEST_SKIP=pattern all but those.
# KILN_SAMPLE_CLOCKS=1 samples the SM clock, power and throttle reasons every 50 ms while
# the benchmarks run (clocks.csv in the logs; summary at the end): sustained FP8 load runs into
# the power cap and the clock drops well below its boost value.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${KILN_BUILD_DIR:-build-device} # another build folder (carried) for A/B checks
mode=${1:-}
shift || true

if [ "$mode" = build ]; then
  set -e
  [ -d "$build" ] || meson setup "$build" --buildtype=release -Dwerror=true >/dev/null
  ninja -C "$build"
  mkdir -p .carry/lib
  # The GPU machine has libsqlite3 and libxxhash but no cmocka.
  cp -L "$(ldconfig -p | awk '/libcmocka.so.0 / {print $NF; exit}')" .carry/lib/
  du -sh "$build" .carry
  exit 0
fi

if [ "$mode" != run ]; then
  echo "usage: $0 build | run [BENCH...]" >&2
  exit 2
fi

source scripts/device-logs.sh
device_run device-check # sets $out; packs it into $OUT/device-check.tgz at exit
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader
summary=()
for t in "$build"/tests/test_*_gpu; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  start=$(date +%s%N)
  timeout "${KILN_TEST_TIMEOUT:-480}" "$t" >"$out/$name.log" 2>&1 # a hung kernel must not eat the lease
  rc=$?
  secs=$(( ($(date +%s%N) - start) / 1000000 ))
  tail -n 25 "$out/$name.log"
  case $rc in 0) verdict=PASS ;; 77) verdict=SKIP ;; *) verdict="FAIL($rc)" ;; esac
  summary+=("$(printf '%-24s %-8s %6d ms' "$name" "$verdict" "$secs")")
done

benches=("$@")
if [ ${#benches[@]} -eq 0 ]; then
  for b in "$build"/tools/kiln-bench-*; do benches+=("$(basename "$b" | sed 's/^kiln-bench-//')"); done
fi
if [ "${KILN_SAMPLE_CLOCKS:-0}" = 1 ]; then
  nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,clocks_throttle_reasons.active \
    --format=csv,noheader -lms 50 >"$out/clocks.csv" &
  sampler=$!
fi
for spec in "${benches[@]}"; do
  b=${spec%%:*}
  args=()
  [ "$spec" = "$b" ] || IFS=, read -r -a args <<<"${spec#*:}"
  prog=$build/tools/kiln-bench-$b
  [ -x "$prog" ] || { summary+=("bench $b: missing"); continue; }
  log="$out/bench-$b${args[0]:-}.log"
  timeout "${KILN_BENCH_TIMEOUT:-300}" "$prog" "${args[@]}" 2>&1 | tee "$log"
  summary+=("$(printf '%-24s rc=%s' "bench $spec" "${PIPESTATUS[0]}")")
done

if [ -n "${sampler:-}" ]; then
  kill "$sampler"
  # Samples under load (above 200 W): SM clock quantiles and how often a throttle was on.
  awk -F', ' '$3+0 > 200 {print $2+0, ($4 != "0x0000000000000000")}' "$out/clocks.csv" | sort -n |
    awk '{c[NR] = $1; t += $2}
      END {if (!NR) {print "clocks: no sample under load"; exit}
           printf "clocks under load: %d samples, SM MHz min %d median %d max %d, throttled %d%%\n",
             NR, c[1], c[int((NR + 1) / 2)], c[NR], 100 * t / NR}' | tee -a "$out/clocks.txt"
fi

echo
echo "=== device check summary ==="
printf '%s\n' "${summary[@]}"
grep -h -E '^\s*(compile|cache-hit|launch|quant|gemm|masked|contig|geomean|summary|ldg|bulk|tile)' "$out"/bench-*.log 2>/dev/null | cut -c1-160
