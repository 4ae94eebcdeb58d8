#!/usr/bin/env bash
# Fuzz kiln's input surfaces with libFuzzer under ASan+UBSan (clang; no GPU): spec lines
# through every configuration pick, every operator's launch arguments on a compile-only
# context, and model descriptions (tests/fuzz/). Stop 57 found overflows in the picks this
# way (spec lines took unbounded m, g, K) and an unbounded stride product in the tensor checks.
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]    (default 60)
# Builds build-fuzz (meson, clang), then runs each target for the given time with its corpus
# in build-fuzz/corpus-NAME (kept between runs). Exit status 1 when a target found a crash,
# undefined behaviour or a bad status; its input is left in build-fuzz/ (crash-*, timeout-*).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
command -v clang >/dev/null || { echo "$0: needs clang (apt-get install clang)" >&2; exit 2; }
build=build-fuzz
if [ ! -f "$build/build.ninja" ]; then
  CC=clang meson setup "$build" -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args=-fsanitize=fuzzer-no-link -Dgpu_tools=disabled >/dev/null
fi
ninja -C "$build" >/dev/null
flags=(-g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -I"$build/include" -Itools
       -L"$build" -lkiln -Wl,-rpath,"$PWD/$build")
clang tests/fuzz/fuzz_spec.c "${flags[@]}" -o "$build/fuzz_spec"
clang tests/fuzz/fuzz_args.c "${flags[@]}" -o "$build/fuzz_args"
clang tests/fuzz/fuzz_model.c tools/cli_model.c tools/cli_util.c "${flags[@]}" -o "$build/fuzz_model"
mkdir -p "$build/corpus-model"
cp examples/deepseek-v3.model "$build/corpus-model/"
status=0
for target in spec args model; do
  mkdir -p "$build/corpus-$target"
  # halt_on_error: undefined behaviour is a finding; close_fd_mask=2: the CLI's messages
  # about bad model files stay out of the log (libFuzzer's own report still shows).
  mask=0
  [ "$target" = model ] && mask=2
  if UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$build/fuzz_$target" \
       -max_total_time="$seconds" -timeout=10 -max_len=512 -close_fd_mask=$mask \
       -artifact_prefix="$build/" "$build/corpus-$target" >"$build/fuzz_$target.log" 2>&1; then
    echo "fuzz_$target: $(grep -o 'Done [0-9]* runs' "$build/fuzz_$target.log"), nothing found"
  else
    echo "fuzz_$target: FOUND something; see $build/fuzz_$target.log"
    grep -E 'ERROR|runtime error|->' "$build/fuzz_$target.log" | head -5
    status=1
  fi
done
exit $status
