#!/usr/bin/env bash
# Profiler kernel times of several builds side by side, on the GPU machine (device tool;
# carry every build named and .carry):
#   bash scripts/profile-ab.sh "build-device build-x" [ROUNDS] SHAPE... | --contig | --masked
# e.g. bash scripts/profile-ab.sh "build-device build-x" 2 4096x32768x512 --contig
# An entry BUILD:KNOB=V runs that build with a knob set (BUILD:K1=V1,K2=V2 with several), so
# that one build's settings can be compared the same way: "build-device:KILN_GEMM_TALL_TILES=2
# build-device:KILN_GEMM_TALL_TILES=3".
# For each round, shape and build in turn (so clock and power drift hit every build alike;
# machines differ by up to 3% from one call to the next, so compare only within a call), one
# scripts/profile-single.sh run, printing kiln's lines of it prefixed by the build: one line
# per dense shape; per grouping and layout with --contig / --masked. ROUNDS defaults to 1;
# the second round runs the builds in reverse order. About 3.4 s per dense shape and build,
# 45 s per --contig (stop 39). Last, scripts/ab_summary.py's table: per kernel run, each
# build's rounds, their mean and its change against the first build. The profiler times
# kiln's launches alone (KILN_PROFILE_KILN_ONLY=1 in profile-single.sh, the default here:
# this script reads nothing else); KILN_PROFILE_KILN_ONLY=0 profiles cuBLASLt's too.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
[ $# -ge 2 ] || { echo "usage: $0 \"BUILD...\" [ROUNDS] SHAPE... | --contig | --masked" >&2; exit 2; }
read -r -a builds <<<"$1"
shift
rounds=1
if [[ $1 =~ ^[0-9]+$ ]]; then
  rounds=$1
  shift
fi
export LD_LIBRARY_PATH=$PWD/.carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} # cmocka
export KILN_PROFILE_KILN_ONLY=${KILN_PROFILE_KILN_ONLY:-1}
lines_seen=$(mktemp)
trap 'rm -f "$lines_seen"' EXIT
for ((r = 1; r <= rounds; r++)); do
  order=("${builds[@]}")
  if ((r % 2 == 0)); then # every other round in reverse
    order=()
    for ((i = ${#builds[@]} - 1; i >= 0; i--)); do order+=("${builds[i]}"); done
  fi
  for shape in "$@"; do
    for b in "${order[@]}"; do
      knob=()
      [[ $b != *:* ]] || IFS=, read -r -a knob <<<"${b#*:}"
      lines=$(env ${knob[@]+"${knob[@]}"} KILN_BUILD_DIR="${b%%:*}" \
        bash scripts/profile-single.sh "$shape" 2>&1 | grep "kiln_gemm")
      [ -n "$lines" ] || lines="$shape: no kiln line (see profile-single's logs under \$OUT)"
      # shellcheck disable=SC2001 # a prefix on each of several lines
      sed "s|^|round $r $b |" <<<"$lines" | tee -a "$lines_seen"
    done
  done
done
echo
python3 scripts/ab_summary.py "$lines_seen"
