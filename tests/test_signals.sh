#!/bin/sh
# An interrupted write never leaves a partial file: convert and predict --cam are
# sent SIGINT or SIGTERM at several moments; afterwards the output is either
# absent or complete (it loads / decodes), and no temporary file is left behind.
name="no partial output on signals"
dir="$EC_TMP/signals"
mkdir -p "$dir"
# The 82 MB V2-S converts in ~0.3 s, long enough to be interrupted mid-write.
model=$EC_LOCAL/models/tiny_v2b0_nested_67x53.keras
[ -n "$EC_SHARED" ] && [ -f "$EC_SHARED/models/dermatology_v2s_300.keras" ] && model=$EC_SHARED/models/dermatology_v2s_300.keras
bad=0 runs=0 complete=0
for sig in INT TERM; do
    for delay in 0 0.01 0.02 0.05 0.1 0.2 0.3; do
        rm -f "$dir"/*
        "$EC_BIN" convert "$model" -o "$dir/m.ecm" --dtype fp32 2>/dev/null &
        pid=$!
        sleep "$delay"
        kill -s "$sig" "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        runs=$((runs + 1))
        left=$(ls "$dir" | grep -v '^m\.ecm$' | head -n 1)
        if [ -n "$left" ]; then
            echo "FAIL $name: convert, SIG$sig after ${delay}s left $left"
            bad=1
        elif [ -e "$dir/m.ecm" ]; then
            if "$EC_BIN" info "$dir/m.ecm" > /dev/null 2>&1; then complete=$((complete + 1)); else
                echo "FAIL $name: convert, SIG$sig after ${delay}s left an invalid m.ecm"
                bad=1
            fi
        fi
    done
done
"$EC_BIN" convert "$EC_LOCAL/models/tiny_v2s_64.keras" -o "$dir/../sig.ecm" 2>/dev/null
for sig in INT TERM; do
    for delay in 0 0.01 0.03 0.06; do
        rm -f "$dir"/*
        "$EC_BIN" predict "$dir/../sig.ecm" "$EC_LOCAL/images/located_640x360.png" --cam "$dir/o.png" > /dev/null 2>&1 &
        pid=$!
        sleep "$delay"
        kill -s "$sig" "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        runs=$((runs + 1))
        left=$(ls "$dir" | grep -v '^o\.png$' | head -n 1)
        if [ -n "$left" ]; then
            echo "FAIL $name: predict --cam, SIG$sig after ${delay}s left $left"
            bad=1
        elif [ -e "$dir/o.png" ]; then
            if head -c 8 "$dir/o.png" | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a' && [ "$(wc -c < "$dir/o.png")" -gt 1000 ]; then
                complete=$((complete + 1))
            else
                echo "FAIL $name: predict --cam, SIG$sig after ${delay}s left a broken o.png"
                bad=1
            fi
        fi
    done
done
[ $bad = 0 ] && echo "PASS $name: $runs interrupted runs, $complete complete outputs, no partial or temporary files"
