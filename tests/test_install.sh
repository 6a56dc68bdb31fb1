#!/bin/sh
# test_install.sh - `make install` gives a usable library: docs/example.c builds
# against it through pkg-config alone, runs from the prefix and prints the same
# probabilities as the installed `effcam predict --json`; its overlay is a PNG;
# `make uninstall` removes every installed file.
# Always the default (release) build: an ASan library cannot be loaded by a plain
# program, so DEBUG=1 and friends from an outer make are not passed down.
# Env from tests/run.sh: EC_LOCAL, EC_TMP, EC_BUILD; the cwd is the repository root.

tmp=${EC_TMP:?EC_TMP not set}
local_fx=${EC_LOCAL:-tests/fixtures}
prefix="$tmp/prefix"
img="$local_fx/images/skin_capture.jpg"
log="$tmp/install.log"

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
skip() { echo "SKIP $1: $2"; }

# The sanitizer suite runs the scripts again: one install test is enough.
if [ -n "${EC_BUILD:-}" ] && [ "${EC_BUILD%/}" != "$(pwd)/build" ]; then
    skip install "tests the default build only (this suite is ${EC_BUILD##*/})"
    exit 0
fi

# make with none of the outer make's command-line variables or jobserver
mk() { MAKEFLAGS='' MAKELEVEL='' make --no-print-directory -s DEBUG=0 "$@"; }

if ! mk install PREFIX="$prefix" > "$log" 2>&1; then
    fail install_make "make install failed: $(tail -n 3 "$log" | tr '\n' ' ')"
    exit 1
fi
missing=""
for f in bin/effcam include/effcam.h lib/libeffcam.a lib/libeffcam.so lib/libeffcam.so.0 lib/pkgconfig/effcam.pc; do
    [ -e "$prefix/$f" ] || missing="$missing $f"
done
if [ -n "$missing" ]; then fail install_make "not installed:$missing"; else pass install_make; fi

bin="$prefix/bin/effcam"
model="$tmp/install_v2s.ecm"
# shellcheck disable=SC2086 # $flags (pkg-config's output) is split on purpose
if ! command -v pkg-config > /dev/null 2>&1; then
    skip install_example "pkg-config not found"
elif ! flags=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs effcam 2> "$log"); then
    fail install_example "pkg-config effcam: $(cat "$log")"
elif ! cc -std=c11 -Wall -Wextra -Werror docs/example.c $flags -o "$tmp/example" > "$log" 2>&1; then
    fail install_example "docs/example.c does not build: $(head -n 3 "$log" | tr '\n' ' ')"
elif ! "$bin" convert "$local_fx/models/tiny_v2s_64.keras" -o "$model" > "$log" 2>&1; then
    fail install_example "installed effcam cannot convert: $(cat "$log")"
elif ! LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        "$tmp/example" "$model" "$img" "$tmp/example.png" > "$tmp/example.out" 2> "$log"; then
    fail install_example "example failed: $(cat "$log")"
else
    pass install_example
    # example: "INDEX<TAB>P<TAB>LABEL" after the "top" line; predict: "probabilities": [p, p, ...]
    awk -F '\t' '$1 != "top" { print $2 }' "$tmp/example.out" > "$tmp/p_example"
    "$bin" predict "$model" "$img" --json --cam "$tmp/predict.png" > "$tmp/predict.json" 2> "$log"
    sed -n 's/.*"probabilities": \[\([^]]*\)\].*/\1/p' "$tmp/predict.json" | tr ',' '\n' | tr -d ' ' > "$tmp/p_predict"
    n=$(wc -l < "$tmp/p_predict")
    if [ "$n" -eq 0 ]; then
        fail install_probabilities "no probabilities from effcam predict --json: $(cat "$log")"
    elif cmp -s "$tmp/p_example" "$tmp/p_predict"; then
        pass install_probabilities
    else
        # Not the same text: still equal as numbers within 1e-7?
        worst=$(paste "$tmp/p_example" "$tmp/p_predict" | awk '
            { d = $1 - $2; if (d < 0) d = -d; if (d > w) w = d; if ($1 == "" || $2 == "") bad = 1 }
            END { if (bad || NR == 0) print "mismatch"; else printf "%.3g\n", w }')
        if [ "$worst" != mismatch ] && awk -v w="$worst" 'BEGIN { exit !(w <= 1e-7) }'; then
            pass install_probabilities
        else
            fail install_probabilities "example [$(tr '\n' ' ' < "$tmp/p_example")] vs predict [$(tr '\n' ' ' < "$tmp/p_predict")] (max diff $worst)"
        fi
    fi
    sig=$(od -An -tx1 -N8 "$tmp/example.png" 2> /dev/null | tr -d ' \n')
    if [ "$sig" != 89504e470d0a1a0a ]; then
        fail install_overlay "example.png missing or not a PNG (starts '$sig')"
    elif [ -f "$tmp/predict.png" ] && ! cmp -s "$tmp/example.png" "$tmp/predict.png"; then
        fail install_overlay "example.png differs from effcam predict --cam's"
    else
        pass install_overlay
    fi
fi

if ! mk uninstall PREFIX="$prefix" > "$log" 2>&1; then
    fail install_uninstall "make uninstall failed: $(tail -n 3 "$log" | tr '\n' ' ')"
    exit 1
fi
left=$(find "$prefix" ! -type d | sed "s|^$prefix/||" | tr '\n' ' ')
if [ -n "$left" ]; then fail install_uninstall "left behind: $left"; else pass install_uninstall; fi
