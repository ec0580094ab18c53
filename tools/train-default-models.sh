#!/bin/sh
# train-default-models.sh — trains (or resumes) the shipped default models with the recipe their model
# cards describe: vqz-image-v1 and vqz-audio-v1 on the project's training split (tools/fetch-training-data.sh),
# validated on its validation split. Each run resumes from its checkpoint in data/runs/ when there is one,
# so running this again continues where the last run stopped (Ctrl-C checkpoints and exits).
#
#   tools/train-default-models.sh [image|audio|both|save] [extra vqz-train options, e.g. --threads 16 --device cuda]
#
# Both runs at once share the machine (one thread each by default); the finished bundles are copied to
# samples/models/ by hand once they beat the ones there (see the model cards).
#
# Where the run's checkpoint comes from, first found wins: data/runs/NAME/ (this machine's run), then the
# committed samples/models/checkpoints/NAME.ckpt (copied into data/runs/NAME/ and resumed exactly), then
# the shipped samples/models/NAME.safetensors (a warm start: --init, fresh optimizer and schedule).
# `tools/train-default-models.sh save` copies the current checkpoints to samples/models/checkpoints/.
set -e
cd "$(dirname "$0")/.."
which=${1:-both}
[ $# -gt 0 ] && shift
BIN=${BUILD:-build}/bin
export OMP_WAIT_POLICY=passive

run() { # kind name steps options...
    kind=$1 name=$2
    shift 2
    dir=data/runs/$name
    mkdir -p "$dir"
    ckpt=$dir/$name.safetensors.ckpt
    if [ ! -f "$ckpt" ] && [ -f "samples/models/checkpoints/$name.ckpt" ]; then
        cp "samples/models/checkpoints/$name.ckpt" "$ckpt.tmp" && mv "$ckpt.tmp" "$ckpt"
    fi
    if [ -f "$ckpt" ]; then
        set -- --resume "$ckpt" "$@"
    elif [ -f "samples/models/$name.safetensors" ]; then
        set -- --init "samples/models/$name.safetensors" "$@"
    fi
    echo "train-default-models: $name, log in $dir/train.log" >&2
    "$BIN/vqz-train" "$kind" --out "$dir/$name.safetensors" --name "$name" --log "$dir/train.csv" \
        --log-every 20 --val-every 500 --ckpt-every 500 "$@" >> "$dir/train.log" 2>&1
}

image() {
    [ -d data/images/val ] || bash tools/fetch-training-data.sh --images
    run image vqz-image-v1 --data data/images/train --val data/images/val \
        --config samples/models/vqz-image-v1.config.json --steps 60000 --batch 16 --crop 128 --threads 1 "$@"
}
audio() {
    [ -d data/speech/val ] && [ -d data/music/val ] || bash tools/fetch-training-data.sh --speech --music
    run audio vqz-audio-v1 --data data/speech/train --data data/music/train --val data/speech/val \
        --val data/music/val --config audio-small --steps 60000 --batch 16 --crop 1 --threads 1 --cache-mb 1536 \
        --gan-from 30000 "$@"
}

save() { # copy each run's checkpoint next to the shipped models, for the next machine to resume
    mkdir -p samples/models/checkpoints
    for name in vqz-image-v1 vqz-audio-v1; do
        src=data/runs/$name/$name.safetensors.ckpt
        [ -f "$src" ] || continue
        cp "$src" "samples/models/checkpoints/$name.ckpt.tmp"
        mv "samples/models/checkpoints/$name.ckpt.tmp" "samples/models/checkpoints/$name.ckpt"
        echo "train-default-models: saved $src" >&2
    done
}

case $which in
save) save ;;
image) image "$@" ;;
audio) audio "$@" ;;
both)
    image "$@" &
    audio "$@" &
    wait
    ;;
*) echo "usage: $0 [image|audio|both|save] [vqz-train options]" >&2; exit 1 ;;
esac
