"""effcam_worker - the app's TensorFlow inference replaced by one `effcam serve` per process.

    from .effcam_worker import predict_skin_with_explanation
    results, heatmap_base64 = predict_skin_with_explanation(image_bytes)

Same return values as the app's function: results is a list of {"class": name,
"probability": percent} sorted by descending probability (top_k of them), and
heatmap_base64 is the Grad-CAM overlay PNG, base64-encoded. Settings: EFFCAM_BIN
(default "effcam" on PATH) and EFFCAM_MODEL (the converted .ecm file).
"""
import base64, json, os, struct, subprocess, threading

EFFCAM_BIN = os.environ.get("EFFCAM_BIN", "effcam")
EFFCAM_MODEL = os.environ.get("EFFCAM_MODEL", "dermatology_stage1.ecm")
_lock, _proc, _owner, _seq = threading.Lock(), None, None, 0


def _ask(request):
    """One request line out, one response line back; (re)starts the worker as needed."""
    global _proc, _owner
    for _ in range(2):  # a worker that died is restarted once
        if _proc is None or _proc.poll() is not None or _owner != os.getpid():  # forked: not ours
            _proc = subprocess.Popen([EFFCAM_BIN, "serve", EFFCAM_MODEL], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
            _owner = os.getpid()
        try:
            _proc.stdin.write(json.dumps(request) + "\n")
            line = _proc.stdout.readline()
        except OSError:
            line = ""
        if line:
            return json.loads(line)
        _proc.kill(); _proc.wait()
    raise RuntimeError("effcam serve exited (its stderr is in the server log)")


def predict_skin_with_explanation(image_bytes, top_k=7):
    global _seq
    with _lock:
        _seq += 1
        r = _ask({"id": _seq, "cam": True, "top_k": top_k,
                  "image_base64": base64.b64encode(image_bytes).decode("ascii")})
    if "error" in r:
        raise ValueError(r["error"])
    # float32 as the app's numpy held it, then * 100 in double as the app did
    f32 = lambda p: struct.unpack("f", struct.pack("f", p))[0]
    results = [{"class": t["label"], "probability": f32(t["probability"]) * 100} for t in r["top"]]
    return results, r["overlay_base64"]
