#!/bin/sh
# gpu.sh — the whole GPU picture in one command, on a machine with an NVIDIA GPU: builds with CUDA, runs the
# CUDA parity tests (and compute-sanitizer's memcheck and racecheck on them when the toolkit has it), times
# encoding and decoding on the GPU against the PyTorch twin on the same GPU (same architectures, same
# shapes, TF32 off on both sides), measures the GPU's FP32 GEMM peak, and writes bench/out/gpu-report.md.
#
#   sh bench/gpu.sh            # PYTHON=... picks the Python that has PyTorch with CUDA (default python3)
#
# Training on the GPU is not measured: vqz-train runs on the CPU until its CUDA twin exists.
set -u
cd "$(dirname "$0")/.."
OUT=bench/out
mkdir -p "$OUT"
PY=${PYTHON:-python3}
REPS=${VQZ_BENCH_REPS:-10}
JSON=$OUT/gpu.jsonl
REPORT=$OUT/gpu-report.md
: > "$JSON"
say() { printf 'gpu.sh: %s\n' "$*" >&2; }

GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
say "device: ${GPU:-none found by nvidia-smi}"

say "building (CUDA=1)"
if ! make -j"$(nproc)" CUDA=1 all build/tests/vqz-tests build/bin/bench_nn > "$OUT/gpu-build.log" 2>&1; then
    tail -n 30 "$OUT/gpu-build.log" >&2
    say "build failed"
    exit 1
fi

say "CUDA parity tests"
build/tests/vqz-tests "[cuda]" > "$OUT/gpu-tests.log" 2>&1
TESTS_RC=$?
tail -n 3 "$OUT/gpu-tests.log" >&2

CS=$(command -v compute-sanitizer 2>/dev/null || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
MEMCHECK="not run (compute-sanitizer not found)"
RACECHECK="$MEMCHECK"
if [ -n "$CS" ]; then
    say "compute-sanitizer memcheck and racecheck on the CUDA tests"
    timeout 600 "$CS" --tool memcheck --leak-check full --error-exitcode 9 build/tests/vqz-tests "[cuda]" \
        > "$OUT/gpu-memcheck.log" 2>&1
    rc=$?
    MEMCHECK="exit $rc: $(grep -E 'ERROR SUMMARY' "$OUT/gpu-memcheck.log" | tail -n 1)"
    timeout 600 "$CS" --tool racecheck --error-exitcode 9 build/tests/vqz-tests "[cuda]" \
        > "$OUT/gpu-racecheck.log" 2>&1
    rc=$?
    RACECHECK="exit $rc: $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$OUT/gpu-racecheck.log" | tail -n 1)"
fi

# rows: ROW CONFIG BATCH; CONFIG a JSON file or a preset name (bench_nn's third argument)
ROWS="image-decode:samples/models/vqz-image-v1.config.json:1 image-decode:samples/models/vqz-image-v1.config.json:8
image-encode:samples/models/vqz-image-v1.config.json:1 image-encode:samples/models/vqz-image-v1.config.json:8
audio-decode:audio-small:1 audio-encode:audio-small:1 image-decode:image-base:1 audio-decode:audio-base:1"
for spec in $ROWS; do
    row=${spec%%:*} rest=${spec#*:}
    cfg=${rest%:*} batch=${rest##*:} kind=${row%%-*}
    label=$(build/bin/bench_nn label "$kind" "$cfg")
    say "$row $label batch $batch"
    VQZ_BENCH_DEVICE=cuda VQZ_BENCH_BATCH=$batch build/bin/bench_nn "$row" "$REPS" "$cfg" >> "$JSON" ||
        say "vqz $row failed"
    "$PY" bench/torch_twin_bench.py "$row" --device cuda --batch "$batch" --reps "$REPS" \
        --config "$(build/bin/bench_nn config "$kind" "$cfg")" --label "$label" --json 2>> "$OUT/gpu-torch.log" |
        tail -n 1 >> "$JSON" || say "PyTorch $row failed"
done

say "FP32 GEMM peak"
"$PY" - "$JSON" <<'EOF' 2>> "$OUT/gpu-torch.log"
import json, sys, time
import torch
torch.backends.cuda.matmul.allow_tf32 = False
n = 8192
a = torch.randn(n, n, device="cuda")
b = torch.randn(n, n, device="cuda")
for _ in range(3):
    a @ b
torch.cuda.synchronize()
t0 = time.perf_counter()
reps = 10
for _ in range(reps):
    a @ b
torch.cuda.synchronize()
t = (time.perf_counter() - t0) / reps
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"impl": "gemm", "tflops": 2 * n ** 3 / t / 1e12, "gpu": torch.cuda.get_device_name()}) + "\n")
EOF

"$PY" - "$JSON" "$REPORT" "${GPU:-unknown}" "$TESTS_RC" "$MEMCHECK" "$RACECHECK" <<'EOF'
import json, sys, time
path, report, gpu, tests_rc, memcheck, racecheck = sys.argv[1:7]
rows = [json.loads(l) for l in open(path) if l.startswith("{")]
peak = next((r["tflops"] for r in rows if r["impl"] == "gemm"), None)
def key(r):
    return (r["row"], r.get("label"), r["n"])
vqz = {key(r): r for r in rows if r["impl"] == "vqz"}
torch = {key(r): r for r in rows if r["impl"] == "torch"}
def rate(r):
    t = r["median_s"]
    if r["row"].startswith("image"):
        return "%.1f MPixel/s" % (r["n"] * r["h"] * r["w"] / t / 1e6)
    return "%.0f× real time" % (r["n"] * r["h"] / 24000 / t)
out = ["# GPU benchmark (bench/gpu.sh)", "",
       "Device: %s. Measured %s. Median of the timed runs after one warm-up; TF32 off on both sides." %
       (gpu, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())), "",
       "CUDA parity tests: exit %s (see bench/out/gpu-tests.log). compute-sanitizer memcheck: %s; racecheck: %s." %
       (tests_rc, memcheck, racecheck), "",
       "FP32 GEMM peak (8192² by PyTorch/cuBLAS): %s" % ("%.1f TFLOP/s" % peak if peak else "not measured"), "",
       "| row | architecture | batch | vqz (s) | vqz rate | PyTorch (s) | PyTorch rate | PyTorch / vqz | vqz GEMM-peak fraction |",
       "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
for k, a in vqz.items():
    b = torch.get(k)
    frac = "–"
    if peak and a.get("gmac_per_item"):
        frac = "%.1f %%" % (100 * 2e9 * a["gmac_per_item"] * a["n"] / a["median_s"] / (peak * 1e12))
    out.append("| %s | %s | %d | %.4f | %s | %s | %s | %s | %s |" % (
        a["row"], a.get("label"), a["n"], a["median_s"], rate(a), "%.4f" % b["median_s"] if b else "–",
        rate(b) if b else "–", "**%.2f**" % (b["median_s"] / a["median_s"]) if b else "–", frac))
open(report, "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
exit $TESTS_RC
