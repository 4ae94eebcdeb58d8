#!/bin/sh
# scripts/compare-kernels.sh and compare_caches.py without a GPU: a build compared with itself
# is identical (exit 0); a cache lacking a specialization, or holding another cubin for one,
# differs (exit 1, the specialization named).
# Usage: test_compare_kernels.sh SOURCE_ROOT BUILD_ROOT
set -eu

ROOT=${1:?usage: test_compare_kernels.sh SOURCE_ROOT BUILD_ROOT}
BUILD=${2:?usage: test_compare_kernels.sh SOURCE_ROOT BUILD_ROOT}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM
unset KILN_CACHE_PATH KILN_JIT KILN_GEMM_TALL_TILES KILN_GEMM_OVERLAP 2>/dev/null || :

fail() {
    echo "FAIL: $*" >&2
    cat "$WORK/out" >&2 2>/dev/null || :
    exit 1
}
printf 'sf_transpose\nquant_fp8_per_token k=512\n' >"$WORK/two.spec"
printf 'sf_transpose\n' >"$WORK/one.spec"

bash "$ROOT/scripts/compare-kernels.sh" "$BUILD" "$BUILD" "$WORK/two.spec" >"$WORK/out" ||
    fail "a build against itself should be identical"
grep -q '^2 identical, 0 different or missing' "$WORK/out" || fail "expected 2 identical"

prewarm() { # CACHE SPEC
    KILN_CACHE_PATH=$1 "$BUILD/tools/kiln" prewarm --spec "$2" --arch sm_90a --quiet >/dev/null
}
prewarm "$WORK/a" "$WORK/two.spec"
prewarm "$WORK/b" "$WORK/one.spec"
compare() { # CACHE_A CACHE_B: the exit status of compare_caches.py
    status=0
    python3 "$ROOT/scripts/compare_caches.py" "$1/kernels.db" "$2/kernels.db" A B >"$WORK/out" ||
        status=$?
    return 0
}
compare "$WORK/a" "$WORK/b"
[ "$status" = 1 ] || fail "a missing specialization should fail (status $status)"
grep -q 'differs: quant_per_token' "$WORK/out" || fail "the missing specialization is not named"
grep -q '  B: missing' "$WORK/out" || fail "the missing side is not named"

# The same specializations, one cubin digest altered: the contents are compared, not the keys.
cp -r "$WORK/a" "$WORK/c"
python3 - "$WORK/c/kernels.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE kernels SET cubin_xxh3 = cubin_xxh3 + 1 WHERE template_name = 'sf_transpose'")
db.commit()
PY
compare "$WORK/a" "$WORK/c"
[ "$status" = 1 ] || fail "a different cubin should fail (status $status)"
grep -q '^1 identical, 1 different or missing' "$WORK/out" || fail "expected 1 identical, 1 different"
echo "compare-kernels: ok"
