#!/bin/sh
# make demo: the main job on a built-in default.
#   1. synthesize an EfficientNetV2-S (300x300, 7 classes, random weights) from models/
#   2. predict a bundled skin photo and write the Grad-CAM overlay PNG
#   3. print peak memory and time
#   4. convert a bundled tiny Keras model (.keras) and show its layers summary
set -e
bin=${1:-build/effcam}
out=build/demo
mkdir -p "$out"
img=tests/fixtures/images/skin_capture.jpg

echo "== synthesize EfficientNetV2-S (models/, deterministic random weights)"
"$bin" synth efficientnetv2-s --size 300 --classes 7 -o "$out/efficientnetv2-s_300.ecm"
ls -l "$out/efficientnetv2-s_300.ecm" | awk '{printf "   %s: %.1f MB\n", $NF, $5 / 1e6}'

echo "== predict $img with Grad-CAM"
"$bin" predict "$out/efficientnetv2-s_300.ecm" "$img" --cam "$out/skin_capture.cam.png" --stats
echo "   overlay written to $out/skin_capture.cam.png"

echo "== convert a real Keras file (tests/fixtures/models/tiny_v2s_64.keras)"
"$bin" convert tests/fixtures/models/tiny_v2s_64.keras -o "$out/tiny_v2s_64.ecm"
"$bin" info "$out/tiny_v2s_64.ecm" | tail -n 9
