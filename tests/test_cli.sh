#!/bin/sh
# End-to-end test of the kiln CLI on a fresh cache, without a GPU (compile-only context).
# Usage: test_cli.sh /path/to/kiln
set -eu

KILN=${1:?usage: test_cli.sh /path/to/kiln}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM
KILN_CACHE_PATH=$WORK/cache
KILN_ARCH=sm_90a
export KILN_CACHE_PATH KILN_ARCH
unset KILN_JIT KILN_CACHE_MAX_MB KILN_NUM_SMS KILN_LOG KILN_DUMP_DIR 2>/dev/null || :

step=0
fail() {
    echo "FAIL [$step]: $*" >&2
    for f in "$WORK"/out "$WORK"/err; do
        if [ -s "$f" ]; then
            echo "--- $f" >&2
            cat "$f" >&2
        fi
    done
    exit 1
}
# run EXPECTED_STATUS ARGS...: run kiln, stdout to $WORK/out, stderr to $WORK/err.
run() {
    expected=$1
    shift
    step=$((step + 1))
    status=0
    "$KILN" "$@" >"$WORK/out" 2>"$WORK/err" || status=$?
    [ "$status" -eq "$expected" ] || fail "kiln $* exited $status, expected $expected"
}
out_has() { grep -q -- "$1" "$WORK/out" || fail "stdout lacks '$1'"; }
err_has() { grep -q -- "$1" "$WORK/err" || fail "stderr lacks '$1'"; }

# Help: the knob table comes from the library.
run 0 --help
out_has KILN_CACHE_PATH
out_has KILN_CACHE_MAX_MB
out_has 'prewarm --spec'
run 0 help prewarm
out_has '--arch'
run 0 --version
out_has '^kiln [0-9]'

# Usage errors exit 2 and say what is wrong.
run 2
run 2 frobnicate
err_has frobnicate
run 2 prewarm
err_has '--spec'
run 2 prewarm --spec "$WORK/none.spec" -j 0
err_has '-j'
run 2 cache
run 2 cache ls --bogus
err_has '--bogus'
run 2 cache prune
err_has '--max-mb'
run 2 info extra

# A missing spec file is a failure with the file named.
run 1 prewarm --spec "$WORK/none.spec"
err_has none.spec

# info works without a GPU.
run 0 info
out_has 'nvrtc'
out_has 'arch'
out_has "$KILN_CACHE_PATH"
if ! grep -q 'no GPU' "$WORK/out"; then
    grep -q '^device  *[0-9]' "$WORK/out" || fail "info names neither a device nor 'no GPU'"
fi
run 0 info --json
[ "$(wc -l <"$WORK/out")" -eq 1 ] || fail "info --json is not one line"
out_has '^{"version":"'
out_has '"cache":\[{"root":'
# The knobs that pick GEMM kernels are shown: a cache prewarmed under other values misses.
export KILN_GEMM_TALL_TILES=2
run 0 info
out_has 'KILN_GEMM_TALL_TILES=2'
run 0 info --json
out_has '"gemm_tall_tiles":2'
unset KILN_GEMM_TALL_TILES

# A bad environment value is an error naming the variable.
step=$((step + 1))
status=0
KILN_CACHE_MAX_MB=abc "$KILN" info >"$WORK/out" 2>"$WORK/err" || status=$?
[ "$status" -eq 1 ] || fail "KILN_CACHE_MAX_MB=abc kiln info exited $status, expected 1"
err_has KILN_CACHE_MAX_MB

# Prewarm: three quant specializations, compiled once, then found in the cache.
SPEC=$WORK/quant.spec
cat >"$SPEC" <<'EOF'
# three specializations; blank lines and comments are skipped

quant_fp8_per_token k=7168
quant_fp8_per_block k=7168   # weights
quant_fp8_per_token k=2048
EOF
run 0 prewarm --spec "$SPEC" -j 3
out_has 'compiled 3, already cached 0, failed 0'
out_has 'kernels: 3 new, 3 in the cache'
run 0 prewarm --spec "$SPEC" --arch sm_90a
out_has 'compiled 0, already cached 3, failed 0'
out_has 'kernels: 0 new, 3 in the cache'

# ls --json: one object per entry, each with a 32-hex-digit key.
run 0 cache ls --json
[ "$(wc -l <"$WORK/out")" -eq 3 ] || fail "cache ls --json printed $(wc -l <"$WORK/out") lines for 3 entries"
[ "$(grep -Ec '^\{"key":"[0-9a-f]{32}",.*\}$' "$WORK/out")" -eq 3 ] ||
    fail "a cache ls --json line lacks a 32-hex-digit key"
[ "$(sort -u "$WORK/out" | wc -l)" -eq 3 ] || fail "cache ls --json repeats an entry"
run 0 cache ls
out_has quant
run 0 cache stats --json
out_has '"entries":3'
run 0 cache verify
out_has 'checked 3, bad 0'
run 0 cache verify --json
out_has '"checked":3'
run 0 cache prune --max-mb 1024 --json
out_has '"removed":0'

# Bad lines fail the run; each is named by file:line with its own message (the library's
# message names the offending word), and the good line is still found in the cache.
BAD=$WORK/bad.spec
printf 'quant_fp8_per_token k=7168\n\nno_such_op k=1\nquant_fp8_per_token k=zzz\n' >"$BAD"
run 1 prewarm --spec "$BAD" -j 2
err_has 'bad.spec:3:.*no_such_op'
err_has 'bad.spec:4:.*zzz'
out_has 'compiled 0, already cached 1, failed 2'

# clear empties the writable root.
run 0 cache clear --json
out_has '"removed":3'
run 0 cache ls --json
[ ! -s "$WORK/out" ] || fail "cache ls --json after clear printed something"
run 0 cache ls
[ ! -s "$WORK/out" ] || fail "cache ls after clear printed something"

# A model description expands into the kernels its shapes need; a bad key is named.
MODEL=$WORK/tiny.model
printf 'model tiny\nhidden 256\nmoe_intermediate 128\nexperts 4\ntop_k 2\ndense_fp8 64x256\nbatch 1 4096\n' >"$MODEL"
run 0 prewarm --model "$MODEL" -j 2
out_has 'failed 0'
run 0 cache ls --json
[ "$(wc -l <"$WORK/out")" -ge 4 ] || fail "prewarm --model compiled fewer than 4 kernels"
grep -q '"template":"gemm_fp8"' "$WORK/out" || fail "prewarm --model compiled no gemm_fp8"
# The prefill batch (4096 > decode_max) expands into the contiguous expert GEMMs.
grep -q 'param:grouping=2' "$WORK/out" ||
    fail "prewarm --model compiled no contiguous grouped GEMM for the prefill batch"
# Serving mode: with KILN_JIT=0 every kernel of the prewarmed model is found without a
# compile, and a shape that was not prewarmed is a miss, not a compile.
KILN_JIT=0 run 0 prewarm --model "$MODEL" -j 2
out_has 'compiled 0, already cached [0-9]*, failed 0'
printf 'quant_fp8_per_token k=384\n' >"$WORK/cold.spec"
KILN_JIT=0 run 1 prewarm --spec "$WORK/cold.spec"
err_has 'KILN_ERR_MISS'
unset KILN_JIT # sh may keep an assignment made before a function call

# The contiguous grouped GEMM's spec line: its kernels compile once; a bad alignment and a
# missing key are named.
printf 'gemm_fp8_contig m=4096 n=256 k=256 align=128\n' >"$WORK/contig.spec"
run 0 prewarm --spec "$WORK/contig.spec"
out_has 'failed 0'
printf 'gemm_fp8_contig m=4096 n=256 k=256 align=96\ngemm_fp8_contig m=4096 n=256 k=256\n' >"$WORK/contig-bad.spec"
run 1 prewarm --spec "$WORK/contig-bad.spec"
err_has 'contig-bad.spec:1:.*align = 96'
err_has 'contig-bad.spec:2:.*missing align='
printf 'gemm_fp8_contig m=4096 n=256 k=256 align=128 g=0\n' >"$WORK/contig-bad.spec"
run 1 prewarm --spec "$WORK/contig-bad.spec"
err_has 'contig-bad.spec:1:.*G = 0: M_total must be at most'
# The tile height counts the rows per group: one group of 4096 rows at N = 7168 takes
# 256-row tiles, 32 groups of 128 rows (each group's last tile partly wasted) 128-row ones.
KILN_CACHE_PATH=$WORK/cache-groups
for groups in 1 32; do
    [ "$groups" = 1 ] && want=256 || want=128
    run 0 cache clear
    printf 'gemm_fp8_contig m=4096 n=7168 k=2048 align=128 g=%s\n' "$groups" >"$WORK/contig.spec"
    run 0 prewarm --spec "$WORK/contig.spec"
    run 0 cache ls --json
    [ "$(grep -c "param:block_m=$want" "$WORK/out")" -eq 2 ] ||
        fail "g=$groups: want both layouts' kernels in $want-row tiles"
done
# A dense line whose M leaves a last round of 192-row tiles that the split takes (with a
# workspace; 6144 x 2112: 16 of 132 tiles left, K = 7168) prewarms that kernel too, each
# with and without the early-B path (launches with and without b_ready).
run 0 cache clear
printf 'gemm_fp8 m=6144 n=2112 k=7168\n' >"$WORK/tail.spec"
run 0 prewarm --spec "$WORK/tail.spec"
out_has 'failed 0'
run 0 cache ls --json
[ "$(wc -l <"$WORK/out")" -eq 4 ] && [ "$(grep -c 'param:tail=1' "$WORK/out")" -eq 2 ] &&
    [ "$(grep -c 'param:no_b_early=1' "$WORK/out")" -eq 2 ] ||
    fail "want the plain and the split-last-round kernel for m=6144 n=2112 k=7168, with and without b_ready's path"
# A dense BF16 line: its kernel with and without the early-B path.
run 0 cache clear
printf 'gemm_bf16 m=64 n=256 k=256\n' >"$WORK/bf16.spec"
run 0 prewarm --spec "$WORK/bf16.spec"
out_has 'failed 0'
run 0 cache ls --json
[ "$(wc -l <"$WORK/out")" -eq 2 ] && [ "$(grep -c 'param:no_b_early=1' "$WORK/out")" -eq 1 ] ||
    fail "want gemm_bf16 m=64 n=256 k=256's kernels with and without b_ready's path"
KILN_CACHE_PATH=$WORK/cache
printf 'hidden 256\nwidth 3\n' >"$MODEL"
run 1 prewarm --model "$MODEL"
err_has 'tiny.model:2: unknown key "width"'
printf 'hidden 256 512\n' >"$MODEL"
run 1 prewarm --model "$MODEL"
err_has 'tiny.model:1: hidden takes one value, not also "512"'
run 2 prewarm --spec "$BAD" --model "$MODEL"

# KILN_NUM_SMS=1: the GEMM heuristics still pick (a decode pick divided by num_sms / 2 once).
printf 'gemm_fp8 m=64 n=256 k=256\ngemm_bf16 m=64 n=256 k=256\n' >"$WORK/one-sm.spec"
KILN_NUM_SMS=1 run 0 prewarm --spec "$WORK/one-sm.spec"
out_has 'failed 0'
unset KILN_NUM_SMS

# Odd spec lines under odd SM counts: each is compiled or refused with exit status 1, never
# a crash (the heuristics run before the cache lookup, which KILN_JIT=0 keeps from compiling).
for sms in 1 3 1024; do
    for line in 'gemm_fp8 m=1 n=16 k=128' 'gemm_fp8 m=2147483647 n=1048576 k=1048576' \
        'gemm_fp8 m=129 n=16 k=128 f32=1' 'gemm_fp8_masked g=1 m=1 n=16 k=128' \
        'gemm_fp8_masked g=1024 m=4096 n=65536 k=16384' 'gemm_fp8_contig m=1 n=16 k=128 align=64' \
        'gemm_fp8_contig m=2147483647 n=16 k=128 align=192' \
        'gemm_fp8_contig m=2147483000 n=1048576 k=128 align=64 g=65536' \
        'gemm_fp8_contig m=5 n=16 k=128 align=64 g=3' 'gemm_bf16 m=1 n=16 k=8 layout=3' \
        'gemm_bf16 m=100000 n=8 k=65536 f32=1' 'gemm_bf16_masked g=3 m=7 n=24 k=72' \
        'gemm_bf16_contig m=5 n=16 k=64 align=64' 'gemm_fp8 m=0 n=0 k=0' 'gemm_fp8 m=-1 n=-16 k=-128'; do
        printf '%s\n' "$line" >"$WORK/odd.spec"
        step=$((step + 1))
        status=0
        KILN_NUM_SMS=$sms KILN_JIT=0 "$KILN" prewarm --spec "$WORK/odd.spec" --quiet \
            >"$WORK/out" 2>"$WORK/err" || status=$?
        [ "$status" -le 1 ] || fail "KILN_NUM_SMS=$sms '$line': exit status $status"
    done
done

# bench: a missing benchmark is a clear failure.
run 1 bench no-such-bench
err_has 'no-such-bench'

echo "test_cli: $step checks passed"
