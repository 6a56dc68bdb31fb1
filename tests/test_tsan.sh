#!/bin/sh
# ThreadSanitizer build of the concurrency test (8 threads sharing one model,
# sessions with 2 worker threads): any data race fails.
name="tsan concurrency"
case "$EC_BIN" in */debug/*) echo "SKIP $name: run once, from the default build's pass"; exit 0 ;; esac
if ! make --no-print-directory -s TSAN=1 build/tsan/tests/test_concurrency > "$EC_TMP/tsan.build" 2>&1; then
    if grep -q "fsanitize=thread" "$EC_TMP/tsan.build"; then
        echo "SKIP $name: this compiler cannot build with -fsanitize=thread"
    else
        echo "FAIL $name: build failed: $(tail -n 3 "$EC_TMP/tsan.build" | tr '\n' ' ')"
    fi
    exit 0
fi
if EC_LONG_ITERS=200 TSAN_OPTIONS="halt_on_error=1 exitcode=66" build/tsan/tests/test_concurrency > "$EC_TMP/tsan.out" 2>&1; then
    sed -e 's/^PASS /PASS [tsan] /' -e 's/^FAIL /FAIL [tsan] /' "$EC_TMP/tsan.out" | grep -E '^(PASS|FAIL)'
else
    echo "FAIL $name: $(grep -m1 -E 'WARNING: ThreadSanitizer|FAIL' "$EC_TMP/tsan.out")"
fi
