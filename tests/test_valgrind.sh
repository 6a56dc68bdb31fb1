#!/bin/sh
# Valgrind memcheck on the CLI with the tiny models: one convert of each format,
# one predict + Grad-CAM + overlay of each model (fp16), one predict of a resized
# JPEG with 2 threads. Any memcheck error or definite/indirect leak fails.
name=valgrind
if ! command -v valgrind >/dev/null 2>&1; then
    echo "SKIP $name: valgrind is not installed"
    exit 0
fi
case "$EC_BIN" in
    */debug/*) echo "SKIP $name: the sanitizer build runs under ASan instead"; exit 0 ;;
esac
vg() {
    valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
        "$EC_BIN" "$@" > "$EC_TMP/vg.out" 2> "$EC_TMP/vg.err"
}
check() {
    label=$1
    shift
    if vg "$@"; then
        echo "PASS $name: $label"
    else
        echo "FAIL $name: $label: status $?: $(head -c 600 "$EC_TMP/vg.err" | tr '\n' ' ')"
    fi
}
m=$EC_LOCAL/models
i=$EC_LOCAL/images
check "convert tiny_v2s_64.keras" convert "$m/tiny_v2s_64.keras" -o "$EC_TMP/vg_v2s.ecm"
check "convert tiny_v2b0_nested_67x53.h5" convert "$m/tiny_v2b0_nested_67x53.h5" -o "$EC_TMP/vg_b0.ecm"
check "convert tiny_v1b0_64.keras" convert "$m/tiny_v1b0_64.keras" -o "$EC_TMP/vg_v1.ecm"
check "predict + grad-cam tiny_v2s_64" predict "$EC_TMP/vg_v2s.ecm" "$i/rgba_500.png" --cam "$EC_TMP/vg1.png"
check "predict + grad-cam tiny_v2b0 (67x53)" predict "$EC_TMP/vg_b0.ecm" "$i/located_640x360.png" --cam "$EC_TMP/vg2.png" --json
check "predict + grad-cam tiny_v1b0, 2 threads" predict "$EC_TMP/vg_v1.ecm" "$i/skin_capture.jpg" --cam "$EC_TMP/vg3.png" --threads 2
check "info tiny_v2s_64" info "$EC_TMP/vg_v2s.ecm" --json
