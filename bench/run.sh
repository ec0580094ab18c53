#!/bin/sh
# run.sh — `make bench`: the engine speed rows (bench/bench_nn.c) side by side with the PyTorch twin
# (bench/torch_twin_bench.py, same architecture and shapes), each row in its own process, 2 threads: first
# with the image-base / audio-base presets, then with the shipped models' architectures.
# VQZ_BENCH_ROWS and VQZ_BENCH_SHIPPED (ROW:CONFIG ...) pick rows; VQZ_BENCH_NN_ONLY=1 stops after the tables.
# Results: bench/out/nn.jsonl, and the table in bench/RESULTS.md (rewritten by bench/report_nn.py); then the
# rate-distortion benchmark (bench/rd.sh), the image model's PSNR ceiling (bench/ceiling.c, on rd.sh's
# crops) and the end-to-end speed and memory of the tools (bench/e2e.py).
set -e
cd "$(dirname "$0")/.."
BIN=${BUILD:-build}/bin/bench_nn
THREADS=${VQZ_BENCH_THREADS:-2}
REPS=${VQZ_BENCH_REPS:-5}
sh tools/install-deps.sh python3-torch python3-numpy
mkdir -p bench/out
OUT=bench/out/nn.jsonl
: > "$OUT"
ROWS=${VQZ_BENCH_ROWS:-image-train image-encode image-decode audio-train audio-encode audio-decode}
for row in $ROWS; do
    kind=${row%%-*}
    echo "bench: $row" >&2
    VQZ_THREADS=$THREADS OMP_NUM_THREADS=$THREADS $BIN "$row" "$REPS" >> "$OUT"
    OMP_NUM_THREADS=$THREADS /usr/bin/python3 bench/torch_twin_bench.py "$row" --reps "$REPS" --threads "$THREADS" \
        --config "$($BIN config "$kind")" --json | tail -n 1 >> "$OUT"
done
# The shipped models' own architectures: training throughput (the trainer's step) and decode speed.
SHIPPED=${VQZ_BENCH_SHIPPED:-image-train:samples/models/vqz-image-v1.config.json image-decode:samples/models/vqz-image-v1.config.json audio-train:audio-small audio-decode:audio-small}
for spec in $SHIPPED; do
    row=${spec%%:*} cfg=${spec#*:} kind=${spec%%-*}
    echo "bench: $row ($cfg)" >&2
    VQZ_THREADS=$THREADS OMP_NUM_THREADS=$THREADS $BIN "$row" "$REPS" "$cfg" >> "$OUT"
    OMP_NUM_THREADS=$THREADS /usr/bin/python3 bench/torch_twin_bench.py "$row" --reps "$REPS" --threads "$THREADS" \
        --config "$($BIN config "$kind" "$cfg")" --label "$($BIN label "$kind" "$cfg")" --json | tail -n 1 >> "$OUT"
done
/usr/bin/python3 bench/report_nn.py "$OUT" bench/RESULTS.md
[ "${VQZ_BENCH_NN_ONLY:-0}" = 1 ] && exit 0
sh bench/rd.sh
# where the image model's quality stops: PSNR per level count and without the quantizer, on rd.sh's crops
VQZ_THREADS=$THREADS OMP_NUM_THREADS=$THREADS ${BUILD:-build}/bin/bench_ceiling samples/models/vqz-image-v1.safetensors \
    bench/out/rd-cache/images/*.png | tee bench/out/ceiling.txt
BUILD=${BUILD:-build} /usr/bin/python3 bench/e2e.py
