#!/bin/sh
# test_django.sh - docs/effcam_worker.py, the Django integration example, against
# the real CLI: it must return the app's (results, heatmap_base64) for a fixture
# image, agree with `effcam predict --json`, survive its worker being killed, and
# turn a bad upload into an exception. Python is only the example's language here;
# the product has none. SKIP without python3.
# Env from tests/run.sh: EC_BIN, EC_LOCAL, EC_TMP; the cwd is the repository root.

tmp=${EC_TMP:?EC_TMP not set}
bin=${EC_BIN:-build/effcam}
local_fx=${EC_LOCAL:-tests/fixtures}
img="$local_fx/images/skin_capture_GnVGMao.jpg"
model="$tmp/django_v2s.ecm"

# The module shown in docs/django.md is the one tested here.
awk '/^## 4\./ { s = 1 } s && /^```/ { if (c) exit; c = /^```python/; next } c' docs/django.md > "$tmp/django_doc.py"
if cmp -s "$tmp/django_doc.py" docs/effcam_worker.py; then
    echo "PASS django_doc_in_sync"
else
    echo "FAIL django_doc_in_sync: the module in docs/django.md section 4 differs from docs/effcam_worker.py"
fi

if ! command -v python3 > /dev/null 2>&1; then
    echo "SKIP django_worker: python3 not found"
    exit 0
fi
if ! "$bin" convert "$local_fx/models/tiny_v2s_64.keras" -o "$model" > "$tmp/django.log" 2>&1; then
    echo "FAIL django_worker: convert failed: $(cat "$tmp/django.log")"
    exit 1
fi
if ! "$bin" predict "$model" "$img" --json --cam "$tmp/django_ref.png" > "$tmp/django_ref.json" 2> "$tmp/django.log"; then
    echo "FAIL django_worker: predict failed: $(cat "$tmp/django.log")"
    exit 1
fi

EFFCAM_BIN="$bin" EFFCAM_MODEL="$model" python3 - "$img" "$tmp/django_ref.json" "$tmp/django_ref.png" <<'EOF'
import base64, json, os, sys
sys.path.insert(0, "docs")
import effcam_worker as w

img, ref_json, ref_png = sys.argv[1:4]
ref = json.load(open(ref_json))
labels = {t["index"]: t["label"] for t in ref["top"]}

def check(name, ok, detail):
    print(("PASS %s" % name) if ok else ("FAIL %s: %s" % (name, detail)), flush=True)

results, heatmap = w.predict_skin_with_explanation(open(img, "rb").read())
probs = [r["probability"] for r in results]
want = sorted(((p * 100, i) for i, p in enumerate(ref["probabilities"])), key=lambda x: -x[0])
check("django_results",
      isinstance(results, list) and len(results) == len(ref["probabilities"]) and probs == sorted(probs, reverse=True)
      and all(set(r) == {"class", "probability"} for r in results)
      and all(abs(r["probability"] - p) <= 1e-7 * max(p, 1e-30) for r, (p, _) in zip(results, want))
      and results[0]["class"] == labels[want[0][1]] and abs(sum(probs) - 100) < 1e-3,
      "results %r, predict --json says %r" % (results, ref["probabilities"]))

png = base64.b64decode(heatmap, validate=True)
check("django_heatmap", png[:8] == b"\x89PNG\r\n\x1a\n" and png == open(ref_png, "rb").read(),
      "heatmap is %d bytes starting %r, not effcam predict --cam's PNG" % (len(png), png[:8]))

top3, _ = w.predict_skin_with_explanation(open(img, "rb").read(), top_k=3)
check("django_top_k", top3 == results[:3], "top_k=3 gave %r" % top3)

w._proc.kill(); w._proc.wait()   # the worker dies between requests: restarted on the next
again, _ = w.predict_skin_with_explanation(open(img, "rb").read())
check("django_restart", again == results, "after a restart: %r" % again)

try:
    w.predict_skin_with_explanation(b"this is not an image")
    check("django_bad_upload", False, "no exception for a non-image upload")
except ValueError as e:
    check("django_bad_upload", "image" in str(e), "unexpected message %r" % str(e))
w._proc.stdin.close(); w._proc.wait()
check("django_worker_exit", w._proc.returncode == 0, "effcam serve exited %r at end of input" % w._proc.returncode)
EOF
