#!/bin/sh
# Runs every test binary and test script, echoes their PASS/FAIL/SKIP lines and
# ends with the summary line "N passed, N failed, N skipped".
# Usage: tests/run.sh BUILD_DIR
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
EC_LOCAL="$root/tests/fixtures"
shared=${EFFCAM_FIXTURES:-"$root/../shared/fixtures"}
if [ -d "$shared/models" ]; then EC_SHARED=$(cd "$shared" && pwd); else EC_SHARED=""; fi
EC_BIN="$root/$build/effcam"
EC_TMP=$(mktemp -d "${TMPDIR:-/tmp}/effcam-test.XXXXXX") || exit 2
export EC_LOCAL EC_SHARED EC_BIN EC_TMP
trap 'rm -rf "$EC_TMP"' EXIT INT TERM
[ -n "$EC_SHARED" ] || echo "note: shared Keras fixtures not found (set EFFCAM_FIXTURES); tests that need them print SKIP"

log="$EC_TMP/log"
: > "$log"
for t in "$build"/tests/test_* tests/test_*.sh; do
    [ -e "$t" ] || continue
    case "$t" in *.d|*.o) continue ;; esac
    name=$(basename "$t")
    out="$EC_TMP/out.$name"
    if [ "${t%.sh}" != "$t" ]; then sh "$t" > "$out" 2>&1; else "$t" > "$out" 2>&1; fi
    rc=$?
    cat "$out"
    grep -E '^(PASS|FAIL|SKIP) ' "$out" >> "$log"
    if [ $rc -ne 0 ] && ! grep -q '^FAIL ' "$out"; then
        echo "FAIL $name: exited with status $rc" | tee -a "$log"
    fi
done
p=$(grep -c '^PASS ' "$log"); f=$(grep -c '^FAIL ' "$log"); s=$(grep -c '^SKIP ' "$log")
echo "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ] && [ "$p" -gt 0 ]
