#!/bin/sh
# An interrupted write never leaves a partial file: convert and predict --cam are
# sent SIGINT or SIGTERM at several moments; afterwards the output is either
# absent or complete (it loads / decodes), and no temporary file is left behind.
name="no partial output on signals"
dir="$EC_TMP/signals"
mkdir -p "$dir"
bad=0 runs=0 complete=0

ecm_ok() { "$EC_BIN" info "$1" > /dev/null 2>&1; }
png_ok() { head -c 8 "$1" | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a' && [ "$(wc -c < "$1")" -gt 1000 ]; }

# interrupt LABEL OUT CHECK "DELAYS" CMD...: run CMD (which writes $dir/OUT) and
# signal it after each delay, with SIGINT and SIGTERM; then OUT must be absent or
# pass CHECK, and nothing else may be left in $dir.
interrupt() {
    label=$1 out=$2 check=$3 delays=$4
    shift 4
    for sig in INT TERM; do
        for delay in $delays; do
            rm -f "$dir"/*
            "$@" > /dev/null 2>&1 &
            pid=$!
            sleep "$delay"
            kill -s "$sig" "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            runs=$((runs + 1))
            left=$(ls "$dir" | grep -v "^$out\$" | head -n 1)
            if [ -n "$left" ]; then
                echo "FAIL $name: $label, SIG$sig after ${delay}s left $left"
                bad=1
            elif [ -e "$dir/$out" ]; then
                if $check "$dir/$out"; then complete=$((complete + 1)); else
                    echo "FAIL $name: $label, SIG$sig after ${delay}s left a broken $out"
                    bad=1
                fi
            fi
        done
    done
}

# The 82 MB V2-S converts in ~0.3 s, long enough to be interrupted mid-write.
model=$EC_LOCAL/models/tiny_v2b0_nested_67x53.keras
[ -n "$EC_SHARED" ] && [ -f "$EC_SHARED/models/dermatology_v2s_300.keras" ] && model=$EC_SHARED/models/dermatology_v2s_300.keras
interrupt convert m.ecm ecm_ok "0 0.01 0.02 0.05 0.1 0.2 0.3" "$EC_BIN" convert "$model" -o "$dir/m.ecm" --dtype fp32
"$EC_BIN" convert "$EC_LOCAL/models/tiny_v2s_64.keras" -o "$dir/../sig.ecm" 2>/dev/null
interrupt "predict --cam" o.png png_ok "0 0.01 0.03 0.06" \
    "$EC_BIN" predict "$dir/../sig.ecm" "$EC_LOCAL/images/located_640x360.png" --cam "$dir/o.png"
[ $bad = 0 ] && echo "PASS $name: $runs interrupted runs, $complete complete outputs, no partial or temporary files"
