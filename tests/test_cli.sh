#!/bin/sh
# The command line as its users meet it: every subcommand's --help, folders and
# lists of images, --jobs (same answers, same order as one session), errors that
# name the file once, outputs and inputs that are not regular files, a stdout
# that cannot be written, and the explanations' layer and method options.
dir="$EC_TMP/cli"
mkdir -p "$dir"
img="$EC_LOCAL/images"
ecm="$dir/tiny.ecm"
if ! "$EC_BIN" convert "$EC_LOCAL/models/tiny_v2s_64.keras" -o "$ecm" > /dev/null 2>&1; then
    echo "FAIL cli setup: cannot convert the tiny model"
    exit 1
fi
check() {   # check NAME CONDITION-STATUS DETAIL
    if [ "$2" -eq 0 ]; then echo "PASS $1"; else echo "FAIL $1: $3"; fi
}

# ---- --help ---------------------------------------------------------------------
bad=""
for sub in convert info predict preprocess serve synth bench; do
    out=$("$EC_BIN" "$sub" --help 2>/dev/null); rc=$?
    case "$out" in "usage: effcam $sub"*) ;; *) bad="$bad $sub(no usage on stdout)";; esac
    [ "$rc" -eq 0 ] || bad="$bad $sub(exit $rc)"
done
check "every subcommand answers --help with its usage, exit 0" "$([ -z "$bad" ]; echo $?)" "$bad"

# ---- folders, lists, jobs -----------------------------------------------------------
mkdir -p "$dir/photos"
cp "$img/skin_capture.jpg" "$img/gray_300.png" "$img/small_120x90.jpg" "$img/located_640x360.png" "$dir/photos/"
echo "not an image" > "$dir/photos/notes.txt"
ls "$dir/photos"/*.jpg "$dir/photos"/*.png | sort > "$dir/list.txt"
"$EC_BIN" predict "$ecm" $(cat "$dir/list.txt") --json > "$dir/explicit.json" 2>/dev/null
"$EC_BIN" predict "$ecm" "$dir/photos" --json > "$dir/folder.json" 2>/dev/null; rc_dir=$?
"$EC_BIN" predict "$ecm" --from "$dir/list.txt" --json > "$dir/from.json" 2>/dev/null; rc_from=$?
n=$(wc -l < "$dir/explicit.json")
check "predict DIR: the folder's images in name order, as listed one by one" \
    "$([ "$rc_dir" -eq 0 ] && [ "$n" -eq 4 ] && cmp -s "$dir/explicit.json" "$dir/folder.json"; echo $?)" \
    "exit $rc_dir, $n lines, $(cmp "$dir/explicit.json" "$dir/folder.json" 2>&1)"
check "predict --from FILE: the same answers" \
    "$([ "$rc_from" -eq 0 ] && cmp -s "$dir/explicit.json" "$dir/from.json"; echo $?)" "exit $rc_from"
mkdir -p "$dir/cam1" "$dir/cam3"
"$EC_BIN" predict "$ecm" $(cat "$dir/list.txt") $(cat "$dir/list.txt") --json --cam "$dir/cam1" > "$dir/j1.json" 2>/dev/null
"$EC_BIN" predict "$ecm" $(cat "$dir/list.txt") $(cat "$dir/list.txt") --json --cam "$dir/cam3" --jobs 3 > "$dir/j3.json" 2>/dev/null; rc=$?
same_png=0
for f in "$dir/cam1"/*.png; do cmp -s "$f" "$dir/cam3/$(basename "$f")" || same_png=1; done
check "predict --jobs 3: the answers of one session, byte for byte, in input order; the same overlays, none overwritten by a later input of the same name" \
    "$([ "$rc" -eq 0 ] && [ "$(wc -l < "$dir/j3.json")" -eq 8 ] && cmp -s "$dir/j1.json" "$dir/j3.json" && [ "$same_png" -eq 0 ] && [ "$(ls "$dir/cam3" | wc -l)" -eq 8 ]; echo $?)" \
    "exit $rc, $(wc -l < "$dir/j3.json") lines, $(cmp "$dir/j1.json" "$dir/j3.json" 2>&1), overlays differ: $same_png"
printf '%s\n\n%s\n' "$img/skin_capture.jpg" "$dir/missing.jpg" > "$dir/list2.txt"
"$EC_BIN" predict "$ecm" --from "$dir/list2.txt" --jobs 2 > "$dir/part.txt" 2> "$dir/part.err"; rc=$?
check "predict --jobs with a missing image: the others answered, exit 1" \
    "$([ "$rc" -eq 1 ] && grep -q skin_capture "$dir/part.txt" && grep -q missing.jpg "$dir/part.err"; echo $?)" \
    "exit $rc; stderr $(head -c 200 "$dir/part.err")"

# ---- one line naming the file once ---------------------------------------------------
"$EC_BIN" predict "$ecm" "$dir/missing.jpg" > /dev/null 2> "$dir/err.txt"; rc=$?
lines=$(wc -l < "$dir/err.txt"); names=$(grep -o "missing.jpg" "$dir/err.txt" | wc -l)
check "a missing image: one line, the file named once, exit 1" \
    "$([ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && [ "$names" -eq 1 ]; echo $?)" "exit $rc: $(cat "$dir/err.txt")"
"$EC_BIN" predict "$ecm" "$dir/photos/notes.txt" > /dev/null 2> "$dir/err.txt"; rc=$?
names=$(grep -o "notes.txt" "$dir/err.txt" | wc -l)
check "a file that is no image: one line, the file named once, \"not an image\" (neither its size nor its bytes)" \
    "$([ "$rc" -eq 1 ] && [ "$(wc -l < "$dir/err.txt")" -eq 1 ] && [ "$names" -eq 1 ] && grep -q "not an image" "$dir/err.txt" && ! grep -q "13 bytes\|6e 6f" "$dir/err.txt"; echo $?)" "exit $rc: $(cat "$dir/err.txt")"

head -c 9000 "$img/skin_capture.jpg" > "$dir/cut.jpg"
rm -f "$dir/cut.png"
"$EC_BIN" predict "$ecm" "$dir/cut.jpg" --cam "$dir/cut.png" > /dev/null 2> "$dir/err.txt"; rc=$?
check "a truncated JPEG: one line naming it, exit 1, no overlay written" \
    "$([ "$rc" -eq 1 ] && [ "$(wc -l < "$dir/err.txt")" -eq 1 ] && grep -q "cut.jpg.*truncated" "$dir/err.txt" && [ ! -e "$dir/cut.png" ]; echo $?)" \
    "exit $rc: $(cat "$dir/err.txt")"

# ---- not regular files ------------------------------------------------------------------
if [ -c /dev/null ] && [ -w /dev/null ]; then
    "$EC_BIN" predict "$ecm" "$img/skin_capture.jpg" --cam /dev/null > /dev/null 2> "$dir/err.txt"; rc=$?
    check "predict --cam /dev/null: refused (exit 2), /dev/null still a device" \
        "$([ "$rc" -eq 2 ] && [ -c /dev/null ] && grep -q "not a regular file" "$dir/err.txt"; echo $?)" \
        "exit $rc, $(ls -l /dev/null), $(cat "$dir/err.txt")"
    "$EC_BIN" convert "$EC_LOCAL/models/tiny_v2s_64.keras" -o /dev/null > /dev/null 2> "$dir/err.txt"; rc=$?
    check "convert -o /dev/null: refused (exit 2), /dev/null still a device" \
        "$([ "$rc" -eq 2 ] && [ -c /dev/null ] && grep -q "not a regular file" "$dir/err.txt"; echo $?)" \
        "exit $rc, $(ls -l /dev/null), $(cat "$dir/err.txt")"
    "$EC_BIN" preprocess "$ecm" "$img/skin_capture.jpg" -o /dev/null > /dev/null 2> "$dir/err.txt"; rc=$?
    check "preprocess -o /dev/null: refused (exit 2), /dev/null still a device" \
        "$([ "$rc" -eq 2 ] && [ -c /dev/null ]; echo $?)" "exit $rc, $(ls -l /dev/null)"
fi
fifo="$dir/pipe.jpg"
rm -f "$fifo"
if mkfifo "$fifo" 2>/dev/null; then
    timeout 20 "$EC_BIN" predict "$ecm" "$fifo" > /dev/null 2> "$dir/err.txt"; rc=$?
    check "a FIFO as the image: refused at once with one line (exit 1), no hang" \
        "$([ "$rc" -eq 1 ] && grep -q "not a regular file" "$dir/err.txt"; echo $?)" "exit $rc: $(cat "$dir/err.txt")"
    printf '{"id": 1, "image": "%s"}\n{"id": 2, "image": "%s"}\n' "$fifo" "$img/skin_capture.jpg" |
        timeout 20 "$EC_BIN" serve "$ecm" > "$dir/serve.out" 2>/dev/null; rc=$?
    check "serve: a FIFO request is answered with an error and the next one is served" \
        "$([ "$rc" -eq 0 ] && grep -q '"id": 1, "error"' "$dir/serve.out" && grep -q '"id": 2, "image"' "$dir/serve.out"; echo $?)" \
        "exit $rc: $(head -c 300 "$dir/serve.out")"
    rm -f "$fifo"
fi

# ---- serve and a model file replaced under it ---------------------------------------------
cp "$ecm" "$dir/live.ecm"
"$EC_BIN" synth efficientnetv2-b0 --size 64 --seed 5 -o "$dir/other.ecm" > /dev/null 2>&1
req() { printf '{"id": %d, "image": "%s"}\n' "$1" "$img/skin_capture.jpg"; }
{
    req 1; sleep 1
    cp "$dir/other.ecm" "$dir/live.ecm"; req 2; sleep 1                    # rewritten in place
    half=$(( $(wc -c < "$dir/live.ecm") / 2 )); truncate -s "$half" "$dir/live.ecm"; req 3; sleep 1
    cp "$ecm" "$dir/new.ecm"; mv "$dir/new.ecm" "$dir/live.ecm"; req 4; sleep 1   # replaced by rename
} | timeout 60 "$EC_BIN" serve "$dir/live.ecm" > "$dir/live.out" 2> "$dir/live.err"; rc=$?
p1=$(sed -n 1p "$dir/live.out" | sed 's/.*"probabilities": \[\([^]]*\)\].*/\1/')
p2=$(sed -n 2p "$dir/live.out" | sed 's/.*"probabilities": \[\([^]]*\)\].*/\1/')
p4=$(sed -n 4p "$dir/live.out" | sed 's/.*"probabilities": \[\([^]]*\)\].*/\1/')
check "serve notices a model rewritten in place or renamed over, reloads it, answers an error while it is broken, never dies of SIGBUS" \
    "$([ "$rc" -eq 0 ] && [ "$(wc -l < "$dir/live.out")" -eq 4 ] && [ "$p1" != "$p2" ] && [ "$p1" = "$p4" ] && sed -n 3p "$dir/live.out" | grep -q '"id": 3, "error": "the model file changed'; echo $?)" \
    "exit $rc; $(cut -c1-120 "$dir/live.out"); $(cat "$dir/live.err")"

# ---- stdout that cannot be written -----------------------------------------------------
if [ -w /dev/full ]; then
    "$EC_BIN" predict "$ecm" "$img/skin_capture.jpg" > /dev/full 2> "$dir/err.txt"; rc1=$?
    "$EC_BIN" info "$ecm" > /dev/full 2>/dev/null; rc2=$?
    "$EC_BIN" predict "$ecm" "$img/skin_capture.jpg" --json > /dev/full 2>/dev/null; rc3=$?
    check "predict / info with stdout on a full device: exit 2" \
        "$([ "$rc1" -eq 2 ] && [ "$rc2" -eq 2 ] && [ "$rc3" -eq 2 ]; echo $?)" "exit $rc1 (text), $rc2 (info), $rc3 (json)"
fi

# ---- explanations: layer and method --------------------------------------------------------
# bad names: one line naming them, exit 2, no output
for bad in "--cam-layer nope:nope" "--cam-layer avg_pool:2-D" "--cam-method scorecam:scorecam" "--cam-layer predictions:predictions"; do
    opt=${bad%%:*}; want=${bad#*:}
    "$EC_BIN" predict "$ecm" "$img/skin_capture.jpg" $opt > "$dir/bad.out" 2> "$dir/err.txt"; rc=$?
    check "predict $opt: one line naming it, exit 2, nothing on stdout" \
        "$([ "$rc" -eq 2 ] && [ "$(wc -l < "$dir/err.txt")" -eq 1 ] && grep -q -- "$want" "$dir/err.txt" && [ ! -s "$dir/bad.out" ]; echo $?)" \
        "exit $rc: $(cat "$dir/err.txt")"
done
"$EC_BIN" predict "$ecm" "$img/skin_capture.jpg" --json --cam-layer stem_activation --cam-method layercam \
    --cam "$dir/stem.png" > "$dir/stem.json" 2>/dev/null; rc=$?
check "predict --cam-layer stem_activation --cam-method layercam: the JSON names them, a 32x32 map, an overlay" \
    "$([ "$rc" -eq 0 ] && grep -q '"gradcam": {"layer": "stem_activation", "method": "layercam"' "$dir/stem.json" && grep -q '"height": 32, "width": 32' "$dir/stem.json" && [ -s "$dir/stem.png" ]; echo $?)" \
    "exit $rc: $(head -c 300 "$dir/stem.json")"
"$EC_BIN" predict "$ecm" "$img/skin_capture.jpg" --json --cam-layer input > "$dir/in.json" 2>/dev/null; rc=$?
check "predict --cam-layer input: a saliency map the size of the input" \
    "$([ "$rc" -eq 0 ] && grep -q '"layer": "input", "method": "gradcam"' "$dir/in.json" && grep -q '"height": 64, "width": 64' "$dir/in.json"; echo $?)" \
    "exit $rc: $(head -c 300 "$dir/in.json")"
"$EC_BIN" info "$ecm" > "$dir/info.txt" 2>&1; rc=$?
check "info marks the layers --cam-layer accepts with '*' (not the 2-D head)" \
    "$([ "$rc" -eq 0 ] && grep -E -q '^stem_activation .* \*$' "$dir/info.txt" && grep -E -q '^top_conv .* \*$' "$dir/info.txt" && grep -E -q '^avg_pool .*[0-9] *$' "$dir/info.txt"; echo $?)" \
    "exit $rc: $(grep -E '^(stem_activation|avg_pool) ' "$dir/info.txt")"
"$EC_BIN" predict --help > "$dir/help.txt" 2>&1
check "predict --help lists the CAM methods and how to pick a layer" \
    "$(grep -q "gradcampp" "$dir/help.txt" && grep -q "eigencam" "$dir/help.txt" && grep -q "effcam info" "$dir/help.txt"; echo $?)" \
    "$(grep cam "$dir/help.txt")"

# ---- labels with control characters: escaped in the text report ---------------------------
printf 'a\033[31mred\nb\nc\nd\ne\nf\ng\n' > "$dir/labels.txt"
"$EC_BIN" convert "$EC_LOCAL/models/tiny_v2s_64.keras" -o "$dir/lab.ecm" --labels "$dir/labels.txt" > /dev/null 2>&1
"$EC_BIN" predict "$dir/lab.ecm" "$img/skin_capture.jpg" --top-k 7 > "$dir/lab.txt" 2>&1; rc=$?
check "a label's control characters are shown escaped in the text report, never raw" \
    "$([ "$rc" -eq 0 ] && grep -q 'a\\x1b\[31mred' "$dir/lab.txt" && ! grep -q "$(printf '\033')" "$dir/lab.txt"; echo $?)" \
    "exit $rc: $(od -c "$dir/lab.txt" | head -5)"

# ---- the activation limit ------------------------------------------------------------------
"$EC_BIN" synth efficientnetv2-b0 --size 224 -o "$dir/b0.ecm" > /dev/null 2>&1
"$EC_BIN" predict "$dir/b0.ecm" "$img/skin_capture.jpg" --max-arena-mb 1 > /dev/null 2> "$dir/err.txt"; rc=$?
"$EC_BIN" predict "$dir/b0.ecm" "$img/skin_capture.jpg" --max-arena-mb 64 > /dev/null 2>&1; rc2=$?
check "predict --max-arena-mb: a model needing more is refused with one line (exit 2), a larger limit runs it" \
    "$([ "$rc" -eq 2 ] && grep -q "model needs .* MiB of activations" "$dir/err.txt" && [ "$(wc -l < "$dir/err.txt")" -eq 1 ] && [ "$rc2" -eq 0 ]; echo $?)" \
    "exit $rc / $rc2: $(cat "$dir/err.txt")"

# ---- info --plan -------------------------------------------------------------------------
"$EC_BIN" info "$ecm" --plan > "$dir/plan.txt" 2>&1; rc=$?
check "info --plan prints the memory plan" \
    "$([ "$rc" -eq 0 ] && grep -q "memory plan" "$dir/plan.txt" && [ "$(wc -l < "$dir/plan.txt")" -gt 40 ]; echo $?)" "exit $rc"

# ---- bench --layers: GFLOP/s against the FMA peak measured in the process --------------
out=$("$EC_BIN" bench "$ecm" --runs 2 --warmup 1 --layers --json 2>&1)
pk=$(printf '%s' "$out" | sed -n 's/.*"fma_peak_gflops_per_core": \([0-9.]*\), "fma_peak_bits": \([0-9]*\).*/\1 \2/p')
txt=$("$EC_BIN" bench "$ecm" --runs 2 --warmup 1 --layers 2>&1)
scal=$(EFFCAM_NO_AVX2=1 "$EC_BIN" bench "$ecm" --runs 1 --warmup 1 --layers --json 2>&1 |
       sed -n 's/.*"fma_peak_gflops_per_core": \([0-9.]*\), "fma_peak_bits": \([0-9]*\).*/\1 \2/p')
ok=1
case "$pk" in "" | "0.00 "* | *" 0") grep -q avx2 /proc/cpuinfo && ok=0;; esac       # a vector CPU: a peak > 0
printf '%s' "$out" | grep -q '"peak_fraction": ' || ok=0
printf '%s\n' "$txt" | grep -q '^by op .*GFLOP/s  %peak$' && printf '%s\n' "$txt" | grep -q '^FMA peak: ' || ok=0
[ "$scal" = "0.00 0" ] || ok=0                                                     # scalar kernels: not measured
check "bench --layers: the FMA peak measured (${pk% *} GFLOP/s, ${pk#* }-bit FMAs), %peak per op kind; scalar kernels: none" \
    "$([ $ok = 1 ]; echo $?)" "json peak '$pk', scalar '$scal'"

# ---- no OpenBLAS installed: a CPU without AVX2 runs the reference GEMM ------------------
# kernels/blas.c opens OpenBLAS with dlopen when a GEMM first needs it; the shim
# makes that fail, as on a machine without it. The answer must be the one
# OpenBLAS gives (up to summation order) and bench must say what ran.
shim="$EC_BUILD/tests/shim_no_openblas.so"
if [ -f "$shim" ]; then
    pre="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"   # the ASan build: let the shim load
    EFFCAM_NO_AVX2=1 "$EC_BIN" predict "$ecm" "$img/skin_capture.jpg" --json > "$dir/blas.json" 2> "$dir/blas.err"; ra=$?
    EFFCAM_NO_AVX2=1 ASAN_OPTIONS="$pre" LD_PRELOAD="$shim" "$EC_BIN" predict "$ecm" "$img/skin_capture.jpg" --json \
        > "$dir/noblas.json" 2> "$dir/noblas.err"; rb=$?
    core=$(EFFCAM_NO_AVX2=1 ASAN_OPTIONS="$pre" LD_PRELOAD="$shim" "$EC_BIN" bench "$ecm" --runs 1 --warmup 1 --json 2>&1 |
           sed -n 's/.*"openblas_core": "\([^"]*\)".*/\1/p')
    pa=$(sed 's/.*"probabilities": \[\([^]]*\)\].*/\1/' "$dir/blas.json")
    pb=$(sed 's/.*"probabilities": \[\([^]]*\)\].*/\1/' "$dir/noblas.json")
    d=$(awk -v a="$pa" -v b="$pb" 'BEGIN { n = split(a, x, ", "); m = split(b, y, ", "); if (n != m || n < 2) { print "mismatch"; exit }
                                          w = 0; for (i = 1; i <= n; i++) { e = x[i] - y[i]; if (e < 0) e = -e; if (e > w) w = e } printf "%.3g", w }')
    ok=1
    [ $ra -eq 0 ] && [ $rb -eq 0 ] && [ ! -s "$dir/noblas.err" ] || ok=0
    case "$d" in mismatch | "") ok=0;; *) awk -v d="$d" 'BEGIN { exit !(d <= 1e-5) }' || ok=0;; esac
    case "$core" in "none (libopenblas.so.0 not found"*) ;; *) ok=0;; esac
    check "no OpenBLAS installed, no AVX2: the reference GEMM runs (max |dp| $d against OpenBLAS's answer), bench says so" \
        "$([ $ok = 1 ]; echo $?)" "exit $ra / $rb, max |dp| '$d', core '$core', stderr: $(head -c 300 "$dir/noblas.err")"
else
    echo "SKIP no OpenBLAS installed: $shim not built"
fi
exit 0
