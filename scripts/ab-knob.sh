#!/usr/bin/env bash
# A/B of one knob on the GPU machine (device tool), interleaved so that clock and power
# drift hits both sides alike:
#   bash scripts/ab-knob.sh KNOB[=A,B] [ROUNDS] [BENCH ARGS...]  (carry build-device and .carry)
# e.g. bash scripts/ab-knob.sh KILN_GEMM_TALL_TILES=0,2 2 4096x7168x16384 4096x2112x7168
# KILN_BUILD_DIR=build-a,build-b compares two builds (carry both), e.g. main and a branch.
# KILN_AB_BENCH=kiln-bench-gemm-bf16 times the BF16 GEMM instead (default kiln-bench-gemm-fp8).
# Runs kiln-bench-gemm-fp8 ARGS with KNOB=A then KNOB=B (default 0 and 1), ROUNDS times
# (default 2), packs the logs into $OUT/ab-KNOB.tgz, and prints per row the median kiln time
# of each side, their ratio, and cuBLASLt's median on each side (the control: it should not
# move), then the geometric mean of the ratios and of the control's.
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 KNOB [ROUNDS] [BENCH ARGS...]" >&2; exit 2; }
knob=${1%%=*}
values=(0 1)
[ "$knob" = "$1" ] || IFS=, read -r -a values <<<"${1#*=}"
[ ${#values[@]} -eq 2 ] || { echo "$0: KNOB=A,B takes two values" >&2; exit 2; }
shift
rounds=2
if [[ ${1:-} =~ ^[0-9]+$ ]]; then
  rounds=$1
  shift
fi
source scripts/device-logs.sh
device_run "ab-$knob" # sets $out; packs it into $OUT/ab-$knob.tgz at exit
for r in $(seq "$rounds"); do
  for side in 0 1; do
    v=${values[$side]}
    dir=$build
    [ "$knob" != KILN_BUILD_DIR ] || dir=$v # two builds (e.g. a branch's templates) A/B
    env "$knob=$v" timeout "${KILN_BENCH_TIMEOUT:-300}" "$dir/tools/${KILN_AB_BENCH:-kiln-bench-gemm-fp8}" "$@" \
      >"$out/ab-$knob-$side-r$r.log" 2>&1 || echo "round $r, $knob=$v: exit $?"
  done
done
# Rows: "gemm M x N x K  kiln T us ... cuBLASLt fp8 T us", "masked ...: kiln T us", "contig ...".
for v in 0 1; do
  cat "$out"/ab-"$knob"-$v-r*.log | awk -v side=$v '
    /^(gemm|masked|contig)/ {
      i = index($0, "kiln"); key = substr($0, 1, i - 1); gsub(/ +/, " ", key)
      split(substr($0, i + 4), w, " "); base = ""
      j = index($0, "cuBLASLt"); if (j) { split(substr($0, j), c, " "); base = (c[2] == "fp8" || c[2] == "loop") ? c[3] : c[2] }
      print key "\t" side "\t" w[1] "\t" base }'
done | awk -F'\t' -v knob="$knob" -v va="${values[0]}" -v vb="${values[1]}" '
  function median(list,   a, n, i, j, x) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { x = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
    return n ? a[int((n + 1) / 2)] : "-"
  }
  { t[$1, $2] = t[$1, $2] " " $3; b[$1, $2] = b[$1, $2] " " $4; keys[$1] = 1 }
  END {
    printf "%-44s %12s %12s %7s %14s %14s\n", "row", knob "=" va " us", knob "=" vb " us", va "/" vb,
      "cuBLASLt " va, "cuBLASLt " vb
    for (k in keys) {
      t0 = median(t[k, 0]); t1 = median(t[k, 1])
      ratio = (t0 != "-" && t1 != "-" && t1 > 0) ? sprintf("%.3f", t0 / t1) : "-"
      printf "%-44s %12s %12s %7s %14s %14s\n", k, t0, t1, ratio, median(b[k, 0]), median(b[k, 1]) | "sort"
      if (ratio != "-") { logs += log(t0 / t1); rows++ }
      c0 = median(b[k, 0]); c1 = median(b[k, 1])
      if (c0 != "-" && c1 != "-" && c0 + 0 > 0 && c1 + 0 > 0) { clogs += log(c0 / c1); crows++ }
    }
    close("sort")
    # The control should stay near 1: where it moves, the machine drifted between the sides.
    if (rows) printf "geomean %s/%s over %d rows: %.3f (cuBLASLt control %.3f over %d)\n", va, vb, rows,
      exp(logs / rows), crows ? exp(clogs / crows) : 0, crows
  }'
