#!/bin/sh
# train-default-models.sh — trains (or resumes) the shipped default models with the recipe their model
# cards describe: vqz-image-v1 and vqz-audio-v1 on the project's training split (tools/fetch-training-data.sh),
# validated on its validation split. Each run resumes from its checkpoint in data/runs/ when there is one,
# so running this again continues where the last run stopped (Ctrl-C checkpoints and exits).
#
#   tools/train-default-models.sh [image|audio|both] [extra vqz-train options, e.g. --threads 16 --device cuda]
#
# Both runs at once share the machine (one thread each by default); the finished bundles are copied to
# samples/models/ by hand once they beat the ones there (see the model cards).
set -e
cd "$(dirname "$0")/.."
which=${1:-both}
[ $# -gt 0 ] && shift
BIN=${BUILD:-build}/bin
[ -d data/images/train ] && [ -d data/speech/train ] || sh tools/fetch-training-data.sh
export OMP_WAIT_POLICY=passive

run() { # kind name steps options...
    kind=$1 name=$2
    shift 2
    dir=data/runs/$name
    mkdir -p "$dir"
    if [ -f "$dir/$name.safetensors.ckpt" ]; then
        set -- --resume "$dir/$name.safetensors.ckpt" "$@"
    fi
    echo "train-default-models: $name, log in $dir/train.log" >&2
    "$BIN/vqz-train" "$kind" --out "$dir/$name.safetensors" --name "$name" --log "$dir/train.csv" \
        --log-every 20 --val-every 500 --ckpt-every 500 "$@" >> "$dir/train.log" 2>&1
}

image() {
    run image vqz-image-v1 --data data/images/train --val data/images/val \
        --config samples/models/vqz-image-v1.config.json --steps 60000 --batch 16 --crop 128 --threads 1 "$@"
}
audio() {
    run audio vqz-audio-v1 --data data/speech/train --data data/music/train --val data/speech/val \
        --val data/music/val --config audio-small --steps 60000 --batch 16 --crop 1 --threads 1 --cache-mb 1536 \
        --gan-from 30000 "$@"
}

case $which in
image) image "$@" ;;
audio) audio "$@" ;;
both)
    image "$@" &
    audio "$@" &
    wait
    ;;
*) echo "usage: $0 [image|audio|both] [vqz-train options]" >&2; exit 1 ;;
esac
