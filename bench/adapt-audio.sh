#!/bin/sh
# adapt-audio.sh — domain adaptation of the default audio model to a single voice: the one speaker of
# festvox-ru (Russian, 16 kHz). It adapts on that speaker's files of the training split and codes every 4th
# of the speaker's files in the validation split (never trained on, by the default model either). The
# default model, a --codebook-only adaptation, the same adaptation followed by --decoder-steps (the decoder
# fine-tuned alone on the new codebooks) and an --init fine-tune code them at 2, 4 and 8 levels; the
# table gives the rate (kbit/s, whole files), DAC's multi-scale mel distance and SI-SDR (vqz-eval), averaged
# over the files, and how long each adaptation took. The default model's training split holds this speaker
# too (about 7 % of its audio): the adaptation specialises a general model to one voice.
#
#   bench/adapt-audio.sh [STEPS_CODEBOOK (default 200)] [STEPS_FINETUNE (default 200)] [STEPS_DECODER (default 200)]
#
# Needs tools/fetch-training-data.sh --speech. Output: bench/out/adapt-audio/ (models, adapt.md).
set -e
cd "$(dirname "$0")/.."
BIN=${BUILD:-build}/bin
OUT=bench/out/adapt-audio
CB_STEPS=${1:-200}
FT_STEPS=${2:-200}
DEC_STEPS=${3:-200}
THREADS=${VQZ_BENCH_THREADS:-1}
MODEL=samples/models/vqz-audio-v1.safetensors
[ -d data/speech/val ] || bash tools/fetch-training-data.sh --speech
export OMP_WAIT_POLICY=passive
rm -rf "$OUT/train" "$OUT/val"
mkdir -p "$OUT/train" "$OUT/val"
for f in data/speech/train/festvox-ru_*; do ln -s "$PWD/$f" "$OUT/train/"; done
i=0
for f in $(ls data/speech/val/festvox-ru_* | LC_ALL=C sort); do
    i=$((i + 1))
    [ $((i % 4)) -eq 0 ] && ln -s "$PWD/$f" "$OUT/val/"
done
[ -n "$(ls "$OUT/val")" ] || { echo "adapt-audio: no festvox-ru files in data/speech/val" >&2; exit 1; }

now() { date +%s.%N; }
t0=$(now)
"$BIN/vqz-train" audio --data "$OUT/train" --init "$MODEL" --codebook-only --steps "$CB_STEPS" --batch 16 --crop 1 \
    --threads "$THREADS" --name vqz-audio-v1-ru-cb --out "$OUT/cb.safetensors" -q
t1=$(now)
# the decoder stage continues the codebook-only run from its checkpoint (its settings: batch 16)
cp "$OUT/cb.safetensors.ckpt" "$OUT/cbdec.safetensors.ckpt"
"$BIN/vqz-train" audio --data "$OUT/train" --resume "$OUT/cbdec.safetensors.ckpt" --decoder-steps "$DEC_STEPS" \
    --lr 3e-4 --threads "$THREADS" --out "$OUT/cbdec.safetensors" -q
t2=$(now)
"$BIN/vqz-train" audio --data "$OUT/train" --init "$MODEL" --steps "$FT_STEPS" --batch 8 --crop 1 --lr 3e-4 \
    --threads "$THREADS" --name vqz-audio-v1-ru-ft --out "$OUT/ft.safetensors" -q
t3=$(now)

field() { echo "$1" | sed "s/.*\"$2\":\([-0-9.e+]*\).*/\1/"; }
{
    echo "| model | levels | kbit/s | mel distance (DAC) | SI-SDR dB |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    for m in default cb cbdec ft; do
        case $m in default) path=$MODEL ;; *) path=$OUT/$m.safetensors ;; esac
        for q in 2 4 8; do
            kbps=0 mel=0 sdr=0 n=0
            for v in "$OUT"/val/*.wav; do
                "$BIN/vqz-enc" -f -Q --threads "$THREADS" -m "$path" -q "$q" -o "$OUT/t.vqz" "$v"
                "$BIN/vqz-dec" -f -Q --threads "$THREADS" -m "$path" -o "$OUT/t.wav" "$OUT/t.vqz"
                j=$("$BIN/vqz-eval" --json "$v" "$OUT/t.wav")
                secs=$(awk "BEGIN { print $(field "$j" frames_reference) / $(field "$j" sample_rate) }")
                kbps=$(awk "BEGIN { print $kbps + $(wc -c < "$OUT/t.vqz") * 8 / $secs / 1000 }")
                mel=$(awk "BEGIN { print $mel + $(field "$j" mel_distance_dac) }")
                sdr=$(awk "BEGIN { print $sdr + $(field "$j" si_sdr) }")
                n=$((n + 1))
            done
            awk "BEGIN { printf \"| %s | %d | %.2f | %.3f | %.2f |\n\", \"$m\", $q, $kbps / $n, $mel / $n, $sdr / $n }"
        done
    done
    echo
    awk "BEGIN { printf \"%d held-out files; codebook-only adaptation: %d steps in %.0f s; its decoder stage: %d steps in %.0f s more; fine-tuning: %d steps in %.0f s (%d thread(s))\n\", $(ls "$OUT"/val | wc -l), $CB_STEPS, $t1 - $t0, $DEC_STEPS, $t2 - $t1, $FT_STEPS, $t3 - $t2, $THREADS }"
} > "$OUT/adapt.md"
cat "$OUT/adapt.md"
