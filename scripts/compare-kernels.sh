#!/usr/bin/env bash
# Are two builds' kernels the same? Compiles one set of specializations with each build's
# `kiln prewarm --arch sm_90a` (no GPU) into two fresh caches and compares the cubins
# specialization by specialization (template, parameters, arch and NVRTC options; the
# template files' hashes and the version, which differ between builds, are left out).
#   bash scripts/compare-kernels.sh BUILD_A BUILD_B [SPEC_FILE...]
# The set: examples/deepseek-v3.model, examples/demo.spec and scripts/kernel-set.spec, each
# under KILN_GEMM_TALL_TILES=1, 2 and 3 (or only the spec files given). Prints each
# specialization that differs or is missing on one side with its registers and spills on both,
# then a count; exit status 0 when every cubin is byte-identical, 1 otherwise.
# Use it to show that a change left the kernels alone (e.g. the ones a GPU already ran).
# KILN_CUOBJDUMP=/path/to/cuobjdump: cubins with other bytes are compared by their SASS too.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 BUILD_A BUILD_B [SPEC_FILE...]" >&2; exit 2; }
a=$1 b=$2
shift 2
specs=("$@")
for dir in "$a" "$b"; do
  [ -x "$dir/tools/kiln" ] || { echo "$0: $dir/tools/kiln not found (build it first)" >&2; exit 2; }
done
work=$(mktemp -d /tmp/kiln-compare-XXXXXX)
trap 'rm -rf "$work"' EXIT
prewarm() { # BUILD CACHE ARGS...
  local build=$1 cache=$2
  shift 2
  KILN_CACHE_PATH=$cache "$build/tools/kiln" prewarm "$@" --arch sm_90a --quiet >/dev/null
}
prewarm_set() { # BUILD CACHE: the spec files given, or the default set
  local build=$1 cache=$2 spec tall
  if [ ${#specs[@]} -gt 0 ]; then
    for spec in "${specs[@]}"; do prewarm "$build" "$cache" --spec "$spec"; done
    return
  fi
  for tall in 1 2 3; do
    KILN_GEMM_TALL_TILES=$tall prewarm "$build" "$cache" --model examples/deepseek-v3.model
    KILN_GEMM_TALL_TILES=$tall prewarm "$build" "$cache" --spec examples/demo.spec
    KILN_GEMM_TALL_TILES=$tall prewarm "$build" "$cache" --spec scripts/kernel-set.spec
  done
}
prewarm_set "$a" "$work/a"
prewarm_set "$b" "$work/b"
python3 scripts/compare_caches.py "$work/a/kernels.db" "$work/b/kernels.db" "$a" "$b"
