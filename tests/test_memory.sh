#!/bin/sh
# A 12-megapixel photo costs what a 300 x 300 one does: its rows stream from the
# JPEG decoder into the resize, so predict + Grad-CAM + overlay on a 4000 x 3000
# JPEG peaks within 3 MiB of the same on the 300-px photo (EfficientNetV2-S at
# 300 px, synthesized), and it completes, with the same answer, under a cgroup v1
# memory limit of 32 MB that also holds the model's page cache (where a writable
# memory cgroup exists; else SKIP).
dir="$EC_TMP/memory"
mkdir -p "$dir"
mkjpeg="$EC_BUILD/bench/mkjpeg"
photo="$EC_LOCAL/images/skin_capture.jpg"
if ldd "$EC_BIN" 2>/dev/null | grep -q 'libasan'; then
    echo "SKIP memory: AddressSanitizer build (its shadow memory and quarantine are not effcam's)"
    exit 0
fi
if [ ! -x "$mkjpeg" ]; then
    echo "SKIP memory: $mkjpeg not built"
    exit 0
fi
"$mkjpeg" "$photo" "$dir/big.jpg" 4000 3000 > /dev/null 2>&1 &&
    "$EC_BIN" synth efficientnetv2-s --size 300 -o "$dir/v2s.ecm" > /dev/null 2>&1 || {
    echo "FAIL memory: setup (mkjpeg or synth) failed"
    exit 1
}
peak() {   # peak MiB of predict + Grad-CAM + overlay of $1, and its JSON answer in $2
    "$EC_BIN" predict "$dir/v2s.ecm" "$1" --cam "$dir/out.png" --json --stats 2> "$dir/stats" > "$2" || return 1
    sed -n 's/.*peak RSS \([0-9.]*\) MiB.*/\1/p' "$dir/stats"
}
small=$(peak "$photo" "$dir/small.json")
big=$(peak "$dir/big.jpg" "$dir/big.json")
if [ -z "$small" ] || [ -z "$big" ]; then
    echo "FAIL memory: predict failed: $(cat "$dir/stats")"
    exit 1
fi
d=$(awk -v a="$big" -v b="$small" 'BEGIN { printf "%.1f", a - b }')
if awk -v d="$d" 'BEGIN { exit !(d <= 3.0) }'; then
    echo "PASS memory: 4000x3000 JPEG peaks at $big MiB, the 300x300 photo at $small MiB (+$d MiB, limit 3)"
else
    echo "FAIL memory: 4000x3000 JPEG peaks at $big MiB, the 300x300 photo at $small MiB (+$d MiB > 3)"
fi

# Under a 32 MB memory cgroup (v1): the run completes with the same answer.
cgroot=/sys/fs/cgroup/memory
cg="$cgroot/effcam-test-$$"
if [ -w "$cgroot" ] && mkdir "$cg" 2>/dev/null; then
    if echo 32M > "$cg/memory.limit_in_bytes" 2>/dev/null; then
        # the model copied from inside the group: its page cache is charged to the
        # group too (41 MB of weights in a 32 MB limit: pages are reclaimed and read again)
        sh -c "echo \$\$ > '$cg/cgroup.procs' && cp '$dir/v2s.ecm' '$dir/v2s_cg.ecm' &&
               exec '$EC_BIN' predict '$dir/v2s_cg.ecm' '$dir/big.jpg' --cam '$dir/cg.png' --json" \
            > "$dir/cg.json" 2> "$dir/cg.err"
        rc=$?
        oom=$(sed -n 's/^oom_kill //p' "$cg/memory.oom_control" 2>/dev/null)
        used=$(cat "$cg/memory.max_usage_in_bytes" 2>/dev/null)
        top_cg=$(sed -n 's/.*"top": \[{"index": \([0-9]*\).*/\1/p' "$dir/cg.json")
        top_ok=$(sed -n 's/.*"top": \[{"index": \([0-9]*\).*/\1/p' "$dir/big.json")
        if [ "$rc" -eq 0 ] && [ -n "$top_cg" ] && [ "$top_cg" = "$top_ok" ] && [ -s "$dir/cg.png" ]; then
            echo "PASS memory: predict + Grad-CAM + overlay on the 12 MP JPEG under a 32 MB cgroup: exit 0, top class $top_cg as unconstrained, cgroup peak $((used / 1048576)) MiB, OOM kills ${oom:-0}"
        else
            echo "FAIL memory: under a 32 MB cgroup: exit $rc, top class '$top_cg' (unconstrained '$top_ok'), OOM kills ${oom:-?}: $(head -c 300 "$dir/cg.err")"
        fi
    else
        echo "SKIP memory cgroup: cannot set memory.limit_in_bytes"
    fi
    rmdir "$cg" 2>/dev/null
else
    echo "SKIP memory cgroup: no writable cgroup v1 memory controller at $cgroot"
fi
exit 0
