#!/bin/sh
# bench/run.sh BUILD_DIR - effcam's memory and speed benchmark (`make bench`).
# Prints a table and writes bench/results.json; see bench/README.md for what
# each figure means. POSIX sh + awk; no Python (the PyTorch peer is Python).
#
# Knobs (environment):
#   EFFCAM_FIXTURES     shared fixtures (default ../shared/fixtures)
#   EFFCAM_PEERS        peer runtimes (default ../shared/peers); EFFCAM_BENCH_PEERS=0 skips them
#   EFFCAM_BENCH_RUNS   timed runs per process (default 20, at least 20 for the table)
#   EFFCAM_BENCH_ROUNDS alternating effcam/peer rounds per thread count (default 5)
#   EFFCAM_BENCH_COLD   cold-start runs per model, each beside a warm reference (default 9)
#   EFFCAM_BENCH_CORETYPE  the OpenBLAS core type the bench chooses (default: by CPU)
#   EFFCAM_BENCH_OUT    results file (default bench/results.json)
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
B=${1:-build}
EFF=$B/effcam
MKJPEG=$B/bench/mkjpeg
[ -x "$EFF" ] && [ -x "$MKJPEG" ] || { echo "bench: build first (make all): $EFF, $MKJPEG" >&2; exit 2; }
RUNS=${EFFCAM_BENCH_RUNS:-20}
# The latency/overhead runs (plain and Grad-CAM predicts alternating in one
# process) take twice as many: the backward is ~1% of a prediction, well inside
# the 2-thread run-to-run noise of this VM, and more pairs steady the medians.
LAT_RUNS=$((RUNS * 2))
ROUNDS=${EFFCAM_BENCH_ROUNDS:-5}
OUT=${EFFCAM_BENCH_OUT:-bench/results.json}
W=$B/bench-work
rm -rf "$W"
mkdir -p "$W" || exit 2
KV=$W/kv            # "dotted.key value" lines -> results.json
: > "$KV"
put() { printf '%s %s\n' "$1" "$2" >> "$KV"; }                 # number / JSON literal
puts() { printf '%s "%s"\n' "$1" "$(printf '%s' "$2" | sed 's/\\/\\\\/g; s/"/\\"/g')" >> "$KV"; }
get() { awk -v k="$1" '$1 == k { v = substr($0, length(k) + 2) } END { print v }' "$KV"; }
say() { printf '%s\n' "$*"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
T_BEGIN=$(date +%s)

# ---- JSON and number helpers ---------------------------------------------------
# jobj FILE KEY: the inside of {"KEY": {...}} (flat objects only) from a one-line JSON file
jobj() { sed -n "s/.*\"$2\": {\([^{}]*\)}.*/\1/p" "$1" | head -n 1; }
# jnum TEXT KEY: a number after "KEY": (the first occurrence)
jnum() { printf '%s\n' "$1" | sed -n "s/^\(.*\)\"$2\": *\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\2/p" | head -n 1; }
# jnum_first: same, the first occurrence in the text (for RESULT lines with repeated keys)
jnum1() { printf '%s\n' "$1" | sed -n "s/^[^{]*{\(.*\)/\1/p" | tr ',' '\n' | sed -n "s/^ *\"$2\": *\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p" | head -n 1; }
calc() { awk "BEGIN { v = $1; if (v == int(v) && v < 1e15 && v > -1e15) printf \"%d\", v; else printf \"%.6g\", v }"; }
median() { tr ' ' '\n' | awk 'NF { v[n++] = $1 } END { if (!n) { print ""; exit } for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t } print (n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) }'; }
max_of() { tr ' ' '\n' | awk 'NF { if (n++ == 0 || $1 > m) m = $1 } END { print m }'; }
r2() { [ -n "$1" ] && awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
r3() { [ -n "$1" ] && awk -v x="$1" 'BEGIN { printf "%.3f", x }'; }
mib() { awk -v k="$1" 'BEGIN { if (k == "") print ""; else printf "%.1f", k / 1024 }'; }

# ---- peak RSS and wall time of a whole process ----------------------------------
TIMEV=/usr/bin/time
if ! $TIMEV -v true >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "bench: installing GNU time (apt-get install time)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null 2>&1
    fi
    $TIMEV -v true >/dev/null 2>&1 || TIMEV=""
fi
[ -n "$TIMEV" ] || say "note: GNU time missing: peak RSS from effcam's own VmHWM (--stats / bench --json)"
# measure NAME CMD...: runs CMD with stdout/stderr into $W/NAME.{out,err}; sets RSS_KB, WALL_S, RC
measure() {
    name=$1; shift
    if [ -n "$TIMEV" ]; then
        $TIMEV -v -o "$W/$name.time" "$@" > "$W/$name.out" 2> "$W/$name.err"
        RC=$?
        RSS_KB=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$W/$name.time")
        WALL_S=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): *//p' "$W/$name.time" |
                 awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
    else
        t0=$(date +%s.%N)
        "$@" > "$W/$name.out" 2> "$W/$name.err"
        RC=$?
        WALL_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
        RSS_KB=$(sed -n 's/.*peak RSS \([0-9.]*\) MiB.*/\1/p' "$W/$name.err" | awk '{ printf "%d", $1 * 1024 }')
        [ -n "$RSS_KB" ] || RSS_KB=$(sed -n 's/.*"peak_rss_kib": \([0-9]*\).*/\1/p' "$W/$name.out")
    fi
    [ "$RC" = 0 ] || say "bench: $name exited with $RC: $(head -c 300 "$W/$name.err")"
}

# ---- machine ------------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
flags=$(grep -m1 '^flags' /proc/cpuinfo)
isa=""
for f in avx2 fma f16c avx512f; do case " $flags " in *" $f "*) isa="$isa${isa:+ }$f";; esac; done
vendor=$(sed -n 's/^vendor_id[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
# The core type the bench chooses: what this CPU's vector units are.
if [ -n "$EFFCAM_BENCH_CORETYPE" ]; then CHOSEN=$EFFCAM_BENCH_CORETYPE
else case "$vendor/$isa" in
    *avx512f*) CHOSEN=SkylakeX;;
    AuthenticAMD/*avx2*) CHOSEN=Zen;;
    */*avx2*) CHOSEN=Haswell;;
    *) CHOSEN=Sandybridge;;
esac; fi
ENV_CT=${OPENBLAS_CORETYPE:-}
blasver=$(dpkg-query -W -f '${Version}' libopenblas0-pthread 2>/dev/null || echo unknown)
puts machine.cpu "$cpu"
puts machine.isa "$isa"
put machine.cores "$(nproc)"
puts machine.kernel "$(uname -r)"
puts machine.openblas_package "$blasver"
puts machine.compiler "$(${CC:-cc} --version 2>/dev/null | head -n 1)"
puts machine.date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
puts machine.env_OPENBLAS_CORETYPE "${ENV_CT:-unset}"
puts machine.chosen_OPENBLAS_CORETYPE "$CHOSEN"
puts machine.loadavg_start "$(loadavg)"
say "effcam bench: $cpu, $(nproc) cores ($isa); load average $(loadavg)"
say "OpenBLAS $blasver; OPENBLAS_CORETYPE in the environment: ${ENV_CT:-unset}; the bench's choice: $CHOSEN"

# ---- inputs: models and images -------------------------------------------------
FIX=${EFFCAM_FIXTURES:-../shared/fixtures}
[ -d "$FIX/models" ] || FIX=""
PHOTO=$W/photo.jpg
if [ -n "$FIX" ] && [ -f "$FIX/images/skin_capture.jpg" ]; then PHOTO=$FIX/images/skin_capture.jpg
else "$MKJPEG" - "$PHOTO" 300 300 || exit 2; fi
BIG=$W/photo_12mp.jpg
"$MKJPEG" "$PHOTO" "$BIG" 4000 3000 || exit 2
put inputs.photo_bytes "$(wc -c < "$PHOTO")"
put inputs.jpeg_12mp_bytes "$(wc -c < "$BIG")"
puts inputs.jpeg_12mp "4000x3000 baseline JPEG q90, made by bench/mkjpeg from the photo"

measure synth "$EFF" synth efficientnetv2-s --size 300 -o "$W/synth.ecm" || exit 2
[ "$RC" = 0 ] || exit 2
MODELS=synth
put synth.time_s "$WALL_S"
if [ -n "$FIX" ] && [ -f "$FIX/models/dermatology_v2s_300.keras" ]; then
    K=$FIX/models/dermatology_v2s_300.keras
    put convert.keras_bytes "$(wc -c < "$K")"
    ts="" rs=""
    for i in 1 2 3; do
        measure convert$i "$EFF" convert "$K" -o "$W/fixture.ecm"
        [ "$RC" = 0 ] || break
        ts="$ts $WALL_S" rs="$rs $RSS_KB"
    done
    if [ "$RC" = 0 ]; then
        MODELS="synth fixture"
        put convert.time_s_median "$(echo "$ts" | median)"
        put convert.time_s_all "[$(echo $ts | sed 's/ /, /g')]"
        put convert.peak_rss_kib_max "$(echo "$rs" | max_of)"
    fi
else
    say "SKIP fixture: no shared fixtures (../shared/fixtures or \$EFFCAM_FIXTURES): converter and fixture rows skipped"
fi

# ---- sizes from effcam info ------------------------------------------------------
for M in $MODELS; do
    "$EFF" info "$W/$M.ecm" --json > "$W/info_$M.json" 2>/dev/null
    j=$(cat "$W/info_$M.json")
    put "sizes.$M.params" "$(jnum "$j" params)"
    put "sizes.$M.weight_bytes_fp16" "$(jnum "$j" fp16)"
    put "sizes.$M.weight_bytes_fp32" "$(jnum "$j" fp32)"
    put "sizes.$M.file_bytes" "$(wc -c < "$W/$M.ecm")"
    put "sizes.$M.arena_bytes" "$(jnum "$j" arena_bytes)"
    put "sizes.$M.arena_bytes_gradcam" "$(jnum "$j" arena_bytes_gradcam)"
    put "sizes.$M.gradcam_pinned_bytes" "$(jnum "$j" gradcam_pinned_bytes)"
    put "sizes.$M.scratch_bytes" "$(jnum "$j" scratch_bytes)"
done

# ---- peak RSS of the whole process ----------------------------------------------
say "peak RSS runs ..."
for M in $MODELS; do
    for T in 1 2; do
        measure "rss_${M}_t${T}_load" "$EFF" bench "$W/$M.ecm" --load-only --gradcam --threads "$T"
        put "rss.$M.t$T.load_kib" "$RSS_KB"
        measure "rss_${M}_t${T}_predict" "$EFF" predict "$W/$M.ecm" "$PHOTO" --threads "$T" --stats
        put "rss.$M.t$T.predict_kib" "$RSS_KB"
        measure "rss_${M}_t${T}_cam" "$EFF" predict "$W/$M.ecm" "$PHOTO" --threads "$T" --cam "$W/cam.png" --stats
        put "rss.$M.t$T.predict_gradcam_overlay_kib" "$RSS_KB"
        measure "rss_${M}_t${T}_12mp" "$EFF" predict "$W/$M.ecm" "$BIG" --threads "$T" --cam "$W/cam12.png" --stats
        put "rss.$M.t$T.jpeg12mp_gradcam_overlay_kib" "$RSS_KB"
    done
    # Grad-CAM at the stem (issue #15): the whole backward, every block recomputed
    # from its saved input, beside the head-only row above
    measure "rss_${M}_t1_stemcam" "$EFF" predict "$W/$M.ecm" "$PHOTO" --cam-layer stem_activation --cam "$W/stem.png" --stats
    [ "$RC" = 0 ] && put "rss.$M.t1.predict_stem_gradcam_overlay_kib" "$RSS_KB"
done

# ---- decode + resize of the 12 MP JPEG: before (stb_image whole + BILINEAR) and
# after (libjpeg-turbo rows into LANCZOS + BICUBIC), alternated in one process
say "decode + resize runs ..."
ij=$("$B/bench/imgbench" --json "$BIG" 9 2> "$W/imgbench.err")
put decode_12mp.before_stb_bilinear_ms "$(jnum "$ij" before_stb_bilinear_ms)"
put decode_12mp.after_libjpeg_lanczos_bicubic_ms "$(jnum "$ij" after_libjpeg_lanczos_bicubic_ms)"
put decode_12mp.rounds "$(jnum "$ij" rounds)"

# ---- cold start: process start to the overlay PNG written ------------------------
# The clock starts before the launch and stops when the first image's answer is
# printed and its overlay renamed into place (`--stats` prints that moment as
# CLOCK_REALTIME, "first output at"); the process's exit, after its teardown
# (unmapping the 41 MB of weights: ~6 ms), is kept as exit_*. Each cold run is
# followed by a warm reference taken right after it (median of 10 in-process
# predict + Grad-CAM calls): the ratio compares the two at the same moment of
# this VM, whose speed drifts by 10-20% over a bench run.
COLD=${EFFCAM_BENCH_COLD:-9}   # cold runs per model: single cold runs vary by 20-40 ms here
# The launch floor: the same clock around a process that does nothing but read
# it (date itself), i.e. what starting any process costs here from this shell;
# on a paravirtualized VM it is tens of milliseconds, a part of every cold start
# that no program can remove.
ls_=""
for i in $(seq "$COLD"); do
    a=$(date +%s.%N); b=$(date +%s.%N)
    ls_="$ls_ $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (b - a) * 1e3 }')"
done
put "cold_start.launch_floor_median_ms" "$(echo "$ls_" | median)"
for M in $MODELS; do
    cs="" xs="" ws=""
    for i in $(seq "$COLD"); do
        rm -f "$W/cold.png"
        t0=$(date +%s.%N)
        "$EFF" predict "$W/$M.ecm" "$PHOTO" --cam "$W/cold.png" --stats > /dev/null 2> "$W/cold.err"
        t1=$(date +%s.%N)
        tf=$(sed -n 's/^effcam: first output at \([0-9.]*\).*/\1/p' "$W/cold.err")
        if [ -f "$W/cold.png" ] && [ -n "$tf" ]; then
            cs="$cs $(awk -v a="$t0" -v b="$tf" 'BEGIN { printf "%.2f", (b - a) * 1e3 }')"
            xs="$xs $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) * 1e3 }')"
        fi
        wj=$("$EFF" bench "$W/$M.ecm" "$PHOTO" --cam-only --json --runs 10 --warmup 2 2> /dev/null)
        ws="$ws $(jnum "$wj" median_ms)"
    done
    put "cold_start.$M.t1.median_ms" "$(echo "$cs" | median)"
    put "cold_start.$M.t1.all_ms" "[$(echo $cs | sed 's/ /, /g')]"
    put "cold_start.$M.t1.exit_median_ms" "$(echo "$xs" | median)"
    put "cold_start.$M.t1.exit_all_ms" "[$(echo $xs | sed 's/ /, /g')]"
    put "cold_start.$M.t1.warm_median_ms" "$(echo "$ws" | median)"
    put "cold_start.$M.t1.warm_all_ms" "[$(echo $ws | sed 's/ /, /g')]"
done

# ---- in-process latency: effcam bench -----------------------------------------------
# bench_effcam NAME MODEL THREADS CORETYPE(env|NAME): one process, plain and Grad-CAM alternately
bench_effcam() {
    if [ "$4" = env ]; then
        "$EFF" bench "$W/$2.ecm" "$PHOTO" --gradcam --json --threads "$3" --runs "$LAT_RUNS" --warmup 5 > "$W/$1.json" 2> "$W/$1.err"
    else
        OPENBLAS_CORETYPE=$4 "$EFF" bench "$W/$2.ecm" "$PHOTO" --gradcam --json --threads "$3" --runs "$LAT_RUNS" --warmup 5 > "$W/$1.json" 2> "$W/$1.err"
    fi
}
say "latency runs (load average $(loadavg)) ..."
puts machine.loadavg_latency_start "$(loadavg)"
for M in $MODELS; do
    for T in 1 2; do
        for CT in env "$CHOSEN"; do
            tag=$CT; [ "$CT" = env ] && tag=env
            n="lat_${M}_t${T}_$tag"
            bench_effcam "$n" "$M" "$T" "$CT" || { say "bench: $n failed: $(cat "$W/$n.err")"; continue; }
            p=$(jobj "$W/$n.json" predict); g=$(jobj "$W/$n.json" predict_gradcam)
            k="latency.$M.t$T.coretype_$tag"
            puts "$k.openblas_core" "$(sed -n 's/.*"openblas_core": "\([^"]*\)".*/\1/p' "$W/$n.json")"
            put "$k.predict_median_ms" "$(r2 "$(jnum "$p" median_ms)")"
            put "$k.predict_p90_ms" "$(r2 "$(jnum "$p" p90_ms)")"
            put "$k.predict_min_ms" "$(r2 "$(jnum "$p" min_ms)")"
            put "$k.gradcam_median_ms" "$(r2 "$(jnum "$g" median_ms)")"
            put "$k.gradcam_p90_ms" "$(r2 "$(jnum "$g" p90_ms)")"
            put "$k.gradcam_min_ms" "$(r2 "$(jnum "$g" min_ms)")"
            put "$k.first_gradcam_ms" "$(r2 "$(jnum "$g" first_ms)")"
            put "$k.gradcam_overhead_pct" "$(r2 "$(calc "100 * $(jnum "$(cat "$W/$n.json")" gradcam_overhead)")")"
        done
    done
done

# Grad-CAM at stem_activation, 1 thread: plain and stem Grad-CAM predicts alternately
# in one process; the time ratio is 1 + the median of the paired overheads
for M in $MODELS; do
    n="lat_${M}_t1_stem"
    if "$EFF" bench "$W/$M.ecm" "$PHOTO" --gradcam --cam-layer stem_activation --json --threads 1 --runs "$RUNS" \
        --warmup 2 > "$W/$n.json" 2> "$W/$n.err"; then
        g=$(jobj "$W/$n.json" predict_gradcam); o=$(jnum "$(cat "$W/$n.json")" gradcam_overhead)
        k="latency.$M.t1.stem_gradcam"
        put "$k.predict_median_ms" "$(r2 "$(jnum "$(jobj "$W/$n.json" predict)" median_ms)")"
        put "$k.gradcam_median_ms" "$(r2 "$(jnum "$g" median_ms)")"
        put "$k.time_ratio" "$(r3 "$(calc "1 + $o")")"
        put "$k.arena_bytes" "$(jnum "$(cat "$W/$n.json")" arena_bytes_gradcam)"
        put "$k.pinned_bytes" "$(jnum "$(cat "$W/$n.json")" pinned_bytes)"
    else
        say "bench: $n failed: $(cat "$W/$n.err")"
    fi
done

# ---- peers, alternating with effcam ---------------------------------------------------
PEERS=${EFFCAM_PEERS:-../shared/peers}
have_ort=0 have_torch=0
if [ "${EFFCAM_BENCH_PEERS:-1}" = 0 ]; then
    say "SKIP peers: EFFCAM_BENCH_PEERS=0"
elif [ ! -f "$PEERS/setup.sh" ]; then
    say "SKIP peers: no $PEERS/setup.sh (set EFFCAM_PEERS)"
elif ! bash "$PEERS/setup.sh" > "$W/peers_setup.log" 2>&1; then
    say "SKIP peers: setup.sh failed ($(tail -n 1 "$W/peers_setup.log"))"
else
    command -v node >/dev/null && [ -f "$PEERS/bench_ort.js" ] && have_ort=1
    /usr/bin/python3 -c 'import torch, torchvision' 2>/dev/null && have_torch=1
    [ $have_ort = 1 ] || say "SKIP ONNX Runtime: node or bench_ort.js missing"
    [ $have_torch = 1 ] || say "SKIP PyTorch: python3-torch missing"
fi
if [ $have_ort = 1 ] || [ $have_torch = 1 ]; then
    say "peer rounds (alternating effcam / ONNX Runtime / PyTorch; load average $(loadavg)) ..."
    puts machine.loadavg_peers_start "$(loadavg)"
    for T in 1 2; do
        e_p="" e_g="" o_m="" t_m="" r_ort="" r_ortp="" r_torch="" o_rss="" t_rss="" o_cold="" t_cold=""
        r=1
        while [ $r -le "$ROUNDS" ]; do
            n="alt_t${T}_r$r"
            bench_effcam "$n" synth "$T" env || true
            ep=$(jnum "$(jobj "$W/$n.json" predict)" median_ms); eg=$(jnum "$(jobj "$W/$n.json" predict_gradcam)" median_ms)
            e_p="$e_p $ep" e_g="$e_g $eg"
            if [ $have_ort = 1 ]; then
                measure "ort_t${T}_r$r" env T0="$(date +%s.%N)" node "$PEERS/bench_ort.js" --threads "$T" --size 300 --warmup 5 --runs "$RUNS"
                res=$(grep '^RESULT ' "$W/ort_t${T}_r$r.out")
                om=$(jnum1 "$res" median_ms)
                if [ -n "$om" ] && [ -n "$eg" ]; then
                    o_m="$o_m $om" o_rss="$o_rss $RSS_KB" o_cold="$o_cold $(jnum1 "$res" cold_start_s)"
                    r_ort="$r_ort $(r3 "$(calc "$eg / $om")")" r_ortp="$r_ortp $(r3 "$(calc "$ep / $om")")"
                fi
            fi
            if [ $have_torch = 1 ]; then
                measure "torch_t${T}_r$r" env T0="$(date +%s.%N)" /usr/bin/python3 "$PEERS/bench_torch.py" --threads "$T" --size 300 --mode inference_mode --warmup 5 --runs "$RUNS"
                res=$(grep '^RESULT ' "$W/torch_t${T}_r$r.out")
                tm=$(jnum1 "$res" median_ms)
                if [ -n "$tm" ] && [ -n "$eg" ]; then
                    t_m="$t_m $tm" t_rss="$t_rss $RSS_KB" t_cold="$t_cold $(jnum1 "$res" cold_start_s)"
                    r_torch="$r_torch $(r3 "$(calc "$eg / $tm")")"
                fi
            fi
            r=$((r + 1))
        done
        k="peers.t$T"
        put "$k.rounds" "$ROUNDS"
        put "$k.effcam_predict_median_ms" "$(r2 "$(echo "$e_p" | median)")"
        put "$k.effcam_gradcam_median_ms" "$(r2 "$(echo "$e_g" | median)")"
        if [ -n "$o_m" ]; then
            put "$k.ort_median_ms" "$(r2 "$(echo "$o_m" | median)")"
            put "$k.ort_peak_rss_kib" "$(echo "$o_rss" | max_of)"
            put "$k.ort_cold_start_s" "$(echo "$o_cold" | median)"
            put "$k.ratio_effcam_gradcam_over_ort" "$(echo "$r_ort" | median)"
            put "$k.ratio_effcam_predict_over_ort" "$(echo "$r_ortp" | median)"
            put "$k.ratio_effcam_gradcam_over_ort_rounds" "[$(echo $r_ort | sed 's/ /, /g')]"
        fi
        if [ -n "$t_m" ]; then
            put "$k.torch_median_ms" "$(r2 "$(echo "$t_m" | median)")"
            put "$k.torch_peak_rss_kib" "$(echo "$t_rss" | max_of)"
            put "$k.torch_cold_start_s" "$(echo "$t_cold" | median)"
            put "$k.ratio_effcam_gradcam_over_torch" "$(echo "$r_torch" | median)"
        fi
    done
    if [ $have_torch = 1 ]; then
        # the Python app's way of doing Grad-CAM, for memory (1 thread, few runs)
        for mode in gradcam_head gradcam_full; do
            measure "torch_$mode" env T0="$(date +%s.%N)" /usr/bin/python3 "$PEERS/bench_torch.py" --threads 1 --size 300 --mode $mode --warmup 2 --runs 5
            res=$(grep '^RESULT ' "$W/torch_$mode.out")
            put "peers.torch_$mode.t1.peak_rss_kib" "$RSS_KB"
            put "peers.torch_$mode.t1.median_ms" "$(r2 "$(jnum1 "$res" median_ms)")"
        done
    fi
fi

# ---- per-layer table (1 thread, Grad-CAM session, chosen core type) -----------------
for T in 1 2; do
    OPENBLAS_CORETYPE=$CHOSEN "$EFF" bench "$W/synth.ecm" "$PHOTO" --gradcam --layers --threads "$T" --runs "$RUNS" \
        > "$W/layers_synth_t$T.txt" 2>&1
done
puts layers.table_t1 "$W/layers_synth_t1.txt"
puts layers.table_t2 "$W/layers_synth_t2.txt"
for T in 1 2; do
    awk '/^by op/ { on = 1; next } on && NF == 0 { exit } on' "$W/layers_synth_t$T.txt" |
        awk -v T="$T" '{ n = NF; ms = $(n - 4); gf = $(n - 1); pk = $n; name = $1; for (i = 2; i <= n - 6; i++) name = name "_" $i;
                         gsub(/[^A-Za-z0-9_]/, "_", name); printf "layers.by_op_t%s.%s_ms %s\n", T, name, ms
                         if (pk != "-") printf "layers.by_op_t%s.%s_gflops %s\nlayers.by_op_t%s.%s_peak_pct %s\n", T, name, gf, T, name, pk }' >> "$KV"
    put "layers.fma_peak_gflops_per_core_t$T" "$(sed -n 's/^FMA peak: \([0-9.]*\) GFLOP.*/\1/p' "$W/layers_synth_t$T.txt")"
done

# ---- soak: RSS drift over many predict + Grad-CAM calls, under a memory limit -------------
# EFFCAM_BENCH_SOAK=N (default 0: skipped) runs `effcam bench --cam-only --runs N`: N
# predict + Grad-CAM calls in one process through the library, on the V2-S fixture when
# ../shared is present (else the synthetic V2-S), ~0.18 s per call at 1 thread. It records
# VmRSS after warm-up, its maximum sampled every 64 calls, and at the end. When the machine
# has cgroup v2 with a writable memory controller the process runs under memory.max = 80M
# and its OOM kills are counted.
SOAK=${EFFCAM_BENCH_SOAK:-0}
if [ "$SOAK" -gt 0 ] 2>/dev/null; then
    SM=synth; [ -f "$W/fixture.ecm" ] && SM=fixture
    cg_root=""
    for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do
        if [ -f "$d/cgroup.controllers" ] && grep -qw memory "$d/cgroup.controllers" && [ -w "$d" ]; then cg_root=$d; break; fi
    done
    cg=""
    if [ -n "$cg_root" ]; then
        echo +memory > "$cg_root/cgroup.subtree_control" 2>/dev/null
        cg="$cg_root/effcam-bench-$$"
        if mkdir "$cg" 2>/dev/null && echo 80M > "$cg/memory.max" 2>/dev/null; then :; else cg=""; fi
    fi
    say "soak: $SOAK runs$([ -n "$cg" ] && echo " under memory.max = 80M" || echo " (no cgroup v2 memory controller: no memory limit)") ..."
    if [ -n "$cg" ]; then
        sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$cg" "$EFF" bench "$W/$SM.ecm" "$PHOTO" --cam-only --json --runs "$SOAK" --warmup 20 > "$W/soak.json" 2> "$W/soak.err"
        soak_rc=$?
        put soak.oom_kills "$(awk '$1 == "oom_kill" { print $2 }' "$cg/memory.events" 2>/dev/null)"
        put soak.memory_max_bytes 83886080
        rmdir "$cg" 2>/dev/null
    else
        "$EFF" bench "$W/$SM.ecm" "$PHOTO" --cam-only --json --runs "$SOAK" --warmup 20 > "$W/soak.json" 2> "$W/soak.err"
        soak_rc=$?
        puts soak.cgroup "no cgroup v2 memory controller on this machine: ran without a memory limit"
    fi
    put soak.exit_status "$soak_rc"
    put soak.runs "$SOAK"
    puts soak.model "$SM"
    sj=$(cat "$W/soak.json")
    put soak.rss_after_warmup_kib "$(jnum "$sj" rss_after_warmup_kib)"
    put soak.rss_end_kib "$(jnum "$sj" rss_end_kib)"
    put soak.drift_kib "$(calc "$(jnum "$sj" rss_end_kib) - $(jnum "$sj" rss_after_warmup_kib)")"
    put soak.max_growth_kib "$(calc "$(jnum "$sj" rss_max_after_warmup_kib) - $(jnum "$sj" rss_after_warmup_kib)")"
    put soak.median_ms "$(jnum "$sj" median_ms)"
else
    puts soak.skipped "set EFFCAM_BENCH_SOAK=N to run N predict + Grad-CAM calls (memory.max = 80M where cgroup v2 allows)"
fi

# ---- targets -----------------------------------------------------------------------------
puts machine.loadavg_end "$(loadavg)"
put machine.bench_seconds "$(( $(date +%s) - T_BEGIN ))"
# target NAME VALUE LIMIT UNIT: pass when VALUE <= LIMIT; miss_by = VALUE / LIMIT - 1
target() {
    if [ -z "$2" ]; then
        puts "targets.$1.status" "not measured"; put "targets.$1.limit" "$3"; puts "targets.$1.unit" "$4"; return
    fi
    put "targets.$1.value" "$2"; put "targets.$1.limit" "$3"; puts "targets.$1.unit" "$4"
    if awk -v v="$2" -v l="$3" 'BEGIN { exit !(v <= l) }'; then puts "targets.$1.status" pass
    else puts "targets.$1.status" miss; put "targets.$1.miss_by_pct" "$(r2 "$(calc "100 * ($2 / $3 - 1)")")"; fi
}
for M in $MODELS; do
    target "rss_predict_gradcam_overlay_t1_$M" "$(mib "$(get "rss.$M.t1.predict_gradcam_overlay_kib")")" 56 MiB
    target "rss_jpeg12mp_t1_$M" "$(mib "$(get "rss.$M.t1.jpeg12mp_gradcam_overlay_kib")")" 96 MiB
    target "gradcam_overhead_t1_$M" "$(get "latency.$M.t1.coretype_env.gradcam_overhead_pct")" 3 %
    target "gradcam_overhead_t2_$M" "$(get "latency.$M.t2.coretype_env.gradcam_overhead_pct")" 3 %
    target "rss_stem_gradcam_overlay_t1_$M" "$(mib "$(get "rss.$M.t1.predict_stem_gradcam_overlay_kib")")" 80 MiB
    target "stem_gradcam_time_ratio_t1_$M" "$(get "latency.$M.t1.stem_gradcam.time_ratio")" 3 x
    w=$(get "cold_start.$M.t1.warm_median_ms"); c=$(get "cold_start.$M.t1.median_ms")
    target "cold_start_over_warm_t1_$M" "$([ -n "$w" ] && [ -n "$c" ] && r3 "$(calc "$c / $w")")" 1.3 x
done
target latency_vs_ort_t1 "$(get peers.t1.ratio_effcam_gradcam_over_ort)" 0.8 x
target latency_vs_ort_t2 "$(get peers.t2.ratio_effcam_gradcam_over_ort)" 0.8 x
target convert_time "$(get convert.time_s_median)" 1.0 s
target soak_rss_drift "$(get soak.drift_kib)" 1024 KiB
target convert_rss "$(mib "$(get convert.peak_rss_kib_max)")" 64 MiB

# ---- results.json: dotted keys -> nested objects ------------------------------------------
sort -s -k1,1 "$KV" | awk '
    { key = $1; val = substr($0, length($1) + 2); n = split(key, p, ".")
      c = 0; while (c < n - 1 && c < pn - 1 && p[c + 1] == q[c + 1]) c++
      for (i = pn - 1; i > c; i--) { printf "\n%*s}", 2 * i, "" }
      if (NR > 1) printf ","
      for (i = c + 1; i < n; i++) { printf "\n%*s\"%s\": {", 2 * i, "", p[i] }
      printf "\n%*s\"%s\": %s", 2 * n, "", p[n], (val == "" ? "null" : val)
      for (i = 1; i <= n; i++) q[i] = p[i]; pn = n }
    BEGIN { printf "{" } END { for (i = pn - 1; i > 0; i--) printf "\n%*s}", 2 * i, ""; printf "\n}\n" }' > "$OUT.tmp" &&
    mv "$OUT.tmp" "$OUT"

# ---- the table ------------------------------------------------------------------------------
v() { x=$(get "$1"); printf '%s' "${x:-n/a}"; }
m() { x=$(get "$1"); [ -n "$x" ] && mib "$x" || printf 'n/a'; }
echo
echo "== effcam bench: V2-S 300x300, Grad-CAM layer top_conv; $RUNS runs per process after 5 warm-up =="
echo "machine: $cpu, $(nproc) cores; OpenBLAS $blasver; load average at start $(get machine.loadavg_start | tr -d '"'), end $(loadavg)"
for M in $MODELS; do
    echo
    echo "-- model: $M ($(v sizes.$M.file_bytes) bytes .ecm) --"
    printf '%-46s %12s %12s\n' "peak RSS, whole process (MiB)" "1 thread" "2 threads"
    for f in load predict predict_gradcam_overlay jpeg12mp_gradcam_overlay; do
        printf '%-46s %12s %12s\n' "  $f" "$(m rss.$M.t1.${f}_kib)" "$(m rss.$M.t2.${f}_kib)"
    done
    printf '%-46s %12s\n' "  predict_stem_gradcam_overlay (stem_activation)" "$(m rss.$M.t1.predict_stem_gradcam_overlay_kib)"
    printf '%-46s %12s\n' "weights fp16 + fp32 (bytes)" "$(v sizes.$M.weight_bytes_fp16) + $(v sizes.$M.weight_bytes_fp32)"
    printf '%-46s %12s\n' "arena (plain / with Grad-CAM / pinned, bytes)" "$(v sizes.$M.arena_bytes) / $(v sizes.$M.arena_bytes_gradcam) / $(v sizes.$M.gradcam_pinned_bytes)"
    printf '%-46s %12s\n' "scratch (bytes)" "$(v sizes.$M.scratch_bytes)"
    for T in 1 2; do
        for tag in env "$CHOSEN"; do
            k=latency.$M.t$T.coretype_$tag
            printf '  latency t%s core %-12s predict %8s ms (p90 %8s)  + Grad-CAM %8s ms (p90 %8s)  overhead %6s%%\n' \
                "$T" "$(v $k.openblas_core | tr -d '"')$([ $tag = env ] && echo '(env)')" "$(v $k.predict_median_ms)" \
                "$(v $k.predict_p90_ms)" "$(v $k.gradcam_median_ms)" "$(v $k.gradcam_p90_ms)" "$(v $k.gradcam_overhead_pct)"
        done
    done
    printf '  Grad-CAM at stem_activation, t1: predict %s ms, + stem Grad-CAM %s ms: %s x a plain predict (arena %s, pinned %s bytes)\n' \
        "$(v latency.$M.t1.stem_gradcam.predict_median_ms)" "$(v latency.$M.t1.stem_gradcam.gradcam_median_ms)" \
        "$(v latency.$M.t1.stem_gradcam.time_ratio)" "$(v latency.$M.t1.stem_gradcam.arena_bytes)" \
        "$(v latency.$M.t1.stem_gradcam.pinned_bytes)"
    printf '  cold start (process start -> overlay PNG written), 1 thread: %s ms (to exit %s ms; warm reference beside it %s ms; launching any process from this shell: %s ms)\n' \
        "$(v cold_start.$M.t1.median_ms)" "$(v cold_start.$M.t1.exit_median_ms)" "$(v cold_start.$M.t1.warm_median_ms)" \
        "$(v cold_start.launch_floor_median_ms)"
done
printf '\n12 MP JPEG -> 300x300 input + overlay base (median of 9): before (stb_image + BILINEAR x2) %s ms, after (libjpeg-turbo rows -> LANCZOS + BICUBIC) %s ms\n' \
    "$(v decode_12mp.before_stb_bilinear_ms)" "$(v decode_12mp.after_libjpeg_lanczos_bicubic_ms)"
if [ -n "$(get convert.time_s_median)" ]; then
    printf '\nconverter on the %s-byte fixture: %s s (median of 3), peak RSS %s MiB\n' "$(v convert.keras_bytes)" \
        "$(v convert.time_s_median)" "$(m convert.peak_rss_kib_max)"
fi
if [ -n "$(get peers.t1.effcam_gradcam_median_ms)" ]; then
    echo
    echo "-- peers (synthetic V2-S; medians of $ROUNDS alternating rounds; env core type) --"
    printf '%-10s %14s %14s %12s %12s %14s %16s\n' threads "effcam ms" "effcam+cam ms" "ORT ms" "torch ms" "cam/ORT" "cam/torch"
    for T in 1 2; do
        printf '%-10s %14s %14s %12s %12s %14s %16s\n' "$T" "$(v peers.t$T.effcam_predict_median_ms)" \
            "$(v peers.t$T.effcam_gradcam_median_ms)" "$(v peers.t$T.ort_median_ms)" "$(v peers.t$T.torch_median_ms)" \
            "$(v peers.t$T.ratio_effcam_gradcam_over_ort)" "$(v peers.t$T.ratio_effcam_gradcam_over_torch)"
    done
    printf 'peak RSS MiB (1 thread): ORT %s, PyTorch %s, PyTorch Grad-CAM head %s, full %s\n' \
        "$(m peers.t1.ort_peak_rss_kib)" "$(m peers.t1.torch_peak_rss_kib)" \
        "$(m peers.torch_gradcam_head.t1.peak_rss_kib)" "$(m peers.torch_gradcam_full.t1.peak_rss_kib)"
fi
echo
echo "-- per op class (synthetic V2-S; GFLOP/s of the direct form, % of the FMA peak measured on one core x threads) --"
printf 'FMA peak per core: %s GFLOP/s\n' "$(v layers.fma_peak_gflops_per_core_t1)"
printf '%-10s %22s %22s\n' "op" "1 thread" "2 threads"
for op in conv1x1 wino3x3 convKxK dwconv2d; do
    printf '%-10s %22s %22s\n' "$op" "$(v layers.by_op_t1.${op}_gflops) ($(v layers.by_op_t1.${op}_peak_pct)%)" \
        "$(v layers.by_op_t2.${op}_gflops) ($(v layers.by_op_t2.${op}_peak_pct)%)"
done
echo "(wino3x3 counts the direct form's FLOPs: Winograd does fewer multiplies, so it can pass 100%)"
echo
echo "-- targets --"
grep '^targets\.' "$KV" | sed 's/^targets\.\([^.]*\)\.\([^ ]*\) /\1 \2 /' | awk '
    { k = $1; f = $2; v = substr($0, length($1) + length($2) + 3); gsub(/"/, "", v); d[k, f] = v; if (!(k in seen)) { seen[k] = 1; o[n++] = k } }
    END { for (i = 0; i < n; i++) { k = o[i]
          printf "%-44s %10s %-4s <= %-6s %s%s\n", k, d[k, "value"] == "" ? "-" : d[k, "value"], d[k, "unit"], d[k, "limit"],
                 d[k, "status"], d[k, "miss_by_pct"] == "" ? "" : " (over by " d[k, "miss_by_pct"] "%)" } }'
echo
echo "per-layer tables: $W/layers_synth_t1.txt, $W/layers_synth_t2.txt; results: $OUT ($(get machine.bench_seconds) s)"
