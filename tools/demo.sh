#!/bin/sh
# demo.sh — `make demo`: encode and decode the sample photographs and recordings with the default models
# (samples/models/) at several rates, and print per file and rate the size, bits per pixel or kbit/s,
# PSNR / MS-SSIM or SI-SDR / mel distance (vqz-eval), and the encode and decode times.
set -e
cd "$(dirname "$0")/.."
BIN=${BUILD:-build}/bin
OUT=${DEMO_OUT:-build/demo}
mkdir -p "$OUT"
export VQZ_MODEL_PATH="$PWD/samples/models${VQZ_MODEL_PATH:+:$VQZ_MODEL_PATH}"

for m in vqz-image-v1 vqz-audio-v1; do
    if [ ! -f "samples/models/$m.safetensors" ]; then
        echo "demo: samples/models/$m.safetensors is missing" >&2
        exit 1
    fi
done

now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }
field() { # the number after "key": in a one-line JSON object
    sed -n "s/.*\"$1\":\([-0-9.eE+]*\|null\).*/\1/p"
}

echo "vqz $("$BIN/vqz-enc" --version | sed 's/^vqz-enc //')"
echo
printf '%-34s %6s %9s %8s %8s %8s %8s\n' "image" "levels" "bytes" "bpp" "PSNR dB" "MS-SSIM" "enc/dec s"
for img in samples/images/*.png; do
    name=$(basename "$img" .png)
    for q in 1 2 4 8; do
        v="$OUT/$name.q$q.vqz"
        d="$OUT/$name.q$q.png"
        t0=$(now)
        "$BIN/vqz-enc" -f -Q -q "$q" -o "$v" "$img"
        t1=$(now)
        "$BIN/vqz-dec" -f -Q -o "$d" "$v"
        t2=$(now)
        bytes=$(wc -c < "$v")
        json=$("$BIN/vqz-eval" --json "$img" "$d")
        w=$(echo "$json" | field width)
        h=$(echo "$json" | field height)
        printf '%-34s %6s %9s %8.3f %8.2f %8.4f %4.2f/%.2f\n' "$name" "$q" "$bytes" \
            "$(calc "$bytes * 8 / ($w * $h)")" "$(echo "$json" | field psnr)" \
            "$(echo "$json" | field ms_ssim)" "$(calc "$t1 - $t0")" "$(calc "$t2 - $t1")"
    done
done
echo
printf '%-34s %6s %9s %8s %8s %8s %8s\n' "audio" "levels" "bytes" "kbit/s" "SI-SDR" "mel" "enc/dec s"
for snd in samples/audio/*; do
    name=$(basename "$snd")
    name=${name%.*}
    for q in 1 2 4 8; do
        v="$OUT/$name.q$q.vqz"
        d="$OUT/$name.q$q.wav"
        t0=$(now)
        "$BIN/vqz-enc" -f -Q -q "$q" -o "$v" "$snd"
        t1=$(now)
        "$BIN/vqz-dec" -f -Q -o "$d" "$v"
        t2=$(now)
        bytes=$(wc -c < "$v")
        json=$("$BIN/vqz-eval" --json "$snd" "$d")
        secs=$(echo "$json" | field frames_reference)
        rate=$(echo "$json" | field sample_rate)
        printf '%-34s %6s %9s %8.2f %8.2f %8.3f %4.2f/%.2f\n' "$name" "$q" "$bytes" \
            "$(calc "$bytes * 8 / ($secs / $rate) / 1000")" "$(echo "$json" | field si_sdr)" \
            "$(echo "$json" | field mel_distance)" "$(calc "$t1 - $t0")" "$(calc "$t2 - $t1")"
    done
done
echo
echo "decoded files are in $OUT/"
