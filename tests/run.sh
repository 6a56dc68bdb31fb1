#!/bin/sh
# Runs every test binary and test script, echoes their PASS/FAIL/SKIP lines and
# ends with one summary line "N passed, N failed, N skipped".
# Usage: tests/run.sh BUILD_DIR [SANITIZER_BUILD_DIR]
# The second (optional) build is the ASan+UBSan one: its run uses the tiny
# fixtures only and its lines are tagged "[asan]". test_engine and test_predict
# also run with EFFCAM_NO_AVX2=1 (the scalar and OpenBLAS paths of a CPU without
# AVX2) on the tiny fixtures, tagged "[scalar]", and with EFFCAM_NO_AVX512=1 (the
# AVX2 kernels), tagged "[avx2]".
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
shared=${EFFCAM_FIXTURES:-"$root/../shared/fixtures"}
if [ -d "$shared/models" ]; then shared=$(cd "$shared" && pwd); else shared=""; fi
EC_LOCAL="$root/tests/fixtures"
EC_TMP=$(mktemp -d "${TMPDIR:-/tmp}/effcam-test.XXXXXX") || exit 2
export EC_LOCAL EC_TMP
trap 'rm -rf "$EC_TMP"' EXIT INT TERM
[ -n "$shared" ] || echo "note: shared Keras fixtures not found (set EFFCAM_FIXTURES); tests that need them print SKIP"
log="$EC_TMP/log"
: > "$log"

# run_one TEST TAG: runs one test (a binary or a .sh), tags its lines, logs them;
# a non-zero exit without a FAIL line is a failure too
run_one() {
    t=$1 tag=$2
    name=$(basename "$t")
    out="$EC_TMP/out.$tag$name"
    if [ "${t%.sh}" != "$t" ]; then sh "$t" > "$out" 2>&1; else "$t" > "$out" 2>&1; fi
    rc=$?
    if [ -n "$tag" ]; then sed -i -E "s/^(PASS|FAIL|SKIP) /\1 $tag /" "$out"; fi
    cat "$out"
    grep -E '^(PASS|FAIL|SKIP) ' "$out" >> "$log"
    if [ $rc -ne 0 ] && ! grep -q '^FAIL ' "$out"; then
        echo "FAIL $tag${tag:+ }$name: exited with status $rc" | tee -a "$log"
    fi
}

# run_suite BUILD_DIR TAG SHARED
run_suite() {
    build=$1
    EC_SHARED=$3
    EC_BIN="$root/$build/effcam"
    EC_BUILD="$root/$build"
    export EC_SHARED EC_BIN EC_BUILD
    for t in "$build"/tests/test_* tests/test_*.sh; do
        [ -e "$t" ] || continue
        run_one "$t" "$2"
    done
}

run_suite "${1:-build}" "" "$shared"

# The paths of a CPU without AVX2 (scalar kernels, OpenBLAS sgemm), forced with
# EFFCAM_NO_AVX2=1: the engine and the predictions on the tiny fixtures.
EC_SHARED="" EFFCAM_NO_AVX2=1
export EC_SHARED EFFCAM_NO_AVX2
for name in test_engine test_predict; do
    [ -x "${1:-build}/tests/$name" ] && run_one "${1:-build}/tests/$name" "[scalar]"
done
unset EFFCAM_NO_AVX2
# The AVX2 kernels where the CPU would pick the AVX-512 ones, forced with
# EFFCAM_NO_AVX512=1 (on a CPU without AVX-512 this repeats the default path).
EFFCAM_NO_AVX512=1
export EFFCAM_NO_AVX512
for name in test_engine test_predict; do
    [ -x "${1:-build}/tests/$name" ] && run_one "${1:-build}/tests/$name" "[avx2]"
done
unset EFFCAM_NO_AVX512
if [ -n "$2" ]; then
    ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1}
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
    export ASAN_OPTIONS UBSAN_OPTIONS
    run_suite "$2" "[asan]" ""
fi
p=$(grep -c '^PASS ' "$log"); f=$(grep -c '^FAIL ' "$log"); s=$(grep -c '^SKIP ' "$log")
echo "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ] && [ "$p" -gt 0 ]
