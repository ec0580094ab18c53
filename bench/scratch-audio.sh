#!/bin/sh
# scratch-audio.sh — a from-scratch vqz-train run on a small real audio folder, on the CPU: every 40th file
# of the speech training split and every 15th of the music training split (about 300 files), validated on
# every 40th speech and every 8th music file of the validation splits. The run's CSV log and its loss and
# validation curves (vqz-train plot) land in bench/out/scratch-audio/; the last validation row gives the
# per-level codebook perplexity the trainer reached.
#
#   [OUT=DIR] bench/scratch-audio.sh [STEPS (default 1000)] [extra vqz-train options]
#
# Run again with more STEPS, it resumes its checkpoint and extends the run (bench/RESULTS.md: 1000, then 1400).
#
# Needs tools/fetch-training-data.sh --speech --music. Resumes its own checkpoint when run again.
set -e
cd "$(dirname "$0")/.."
BIN=${BUILD:-build}/bin
OUT=${OUT:-bench/out/scratch-audio}
STEPS=${1:-1000}
[ $# -gt 0 ] && shift
[ -d data/speech/val ] && [ -d data/music/val ] || bash tools/fetch-training-data.sh --speech --music
export OMP_WAIT_POLICY=passive

# link every Nth file of a folder into a destination (sorted names: the pick is the same on every machine)
pick() { # SRC DEST N
    i=0
    for f in $(ls "$1" | LC_ALL=C sort); do
        i=$((i + 1))
        [ $((i % $3)) -eq 0 ] && ln -sf "$PWD/$1/$f" "$2/$f"
    done
    return 0
}
if [ ! -d "$OUT/train" ]; then
    mkdir -p "$OUT/train.tmp" "$OUT/val"
    pick data/speech/train "$OUT/train.tmp" 40
    pick data/music/train "$OUT/train.tmp" 15
    pick data/speech/val "$OUT/val" 40
    pick data/music/val "$OUT/val" 8
    mv "$OUT/train.tmp" "$OUT/train"
fi

ckpt=$OUT/scratch-audio.safetensors.ckpt
resume=""
[ -f "$ckpt" ] && resume="--resume $ckpt"
# K = 256: about 2.3 vectors per codeword in a batch of 8 one-second clips at 75 frames/s, so each codeword
# is seen every step; K = 1024 would leave most codewords unseen in most batches of a small run.
"$BIN/vqz-train" audio --data "$OUT/train" --val "$OUT/val" --out "$OUT/scratch-audio.safetensors" $resume \
    --config audio-small --codebook-size 256 --levels 8 --steps "$STEPS" --batch 8 --crop 1 \
    --val-every 200 --ckpt-every 200 --log-every 20 --log "$OUT/train.csv" "$@"
"$BIN/vqz-train" plot "$OUT/train.csv" -o "$OUT/loss.png"
