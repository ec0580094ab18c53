#!/bin/sh
# adapt.sh — domain adaptation with vqz-train on a domain unlike the default image model's photographs:
# the two pattern wallpapers of lomiri-wallpapers-16.04 that shared/DATA.md keeps out of the photo set
# (analogpattern_by_Peter_Nerlich, umang_by_Abhishek_Mudgal). Each is halved (2x2 mean, as the trainer
# does), its left half is the adaptation data and a 768x512 (or 512x768) region of its right half is held out.
# The default model, a --codebook-only adaptation and an --init fine-tune then code the held-out regions
# at 1, 2 and 4 levels; the table gives bpp and PSNR / MS-SSIM (vqz-eval) and each adaptation's time.
#
#   bench/adapt.sh [STEPS_CODEBOOK (default 200)] [STEPS_FINETUNE (default 200)]
#
# Uses Debian's /usr/bin/python3 with python3-numpy and python3-skimage to cut the images (measurement
# only). Output: bench/out/adapt/ (models, logs, adapt.md with the table).
set -e
cd "$(dirname "$0")/.."
BIN=${BUILD:-build}/bin
OUT=bench/out/adapt
CB_STEPS=${1:-200}
FT_STEPS=${2:-200}
THREADS=${VQZ_BENCH_THREADS:-1}
MODEL=samples/models/vqz-image-v1.safetensors
mkdir -p "$OUT/train" "$OUT/val" "$OUT/x"
export OMP_WAIT_POLICY=passive

deb=$(ls data/debs/lomiri-wallpapers-16.04_*.deb 2>/dev/null | head -n 1)
if [ -z "$deb" ]; then
    mkdir -p data/debs
    (cd data/debs && apt-get download lomiri-wallpapers-16.04)
    deb=$(ls data/debs/lomiri-wallpapers-16.04_*.deb | head -n 1)
fi
dpkg-deb -x "$deb" "$OUT/x"
/usr/bin/python3 - "$OUT" <<'EOF'
import sys, numpy as np, skimage.io as io
out = sys.argv[1]
bg = out + "/x/usr/share/backgrounds/"
for name, f in [("analog", "analogpattern_by_Peter_Nerlich.jpg"), ("umang", "umang_by_Abhishek_Mudgal.jpg")]:
    a = io.imread(bg + f)[..., :3]
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    a = a[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3)).round().astype(np.uint8)
    h, w = a.shape[:2]
    io.imsave("%s/train/%s_left.png" % (out, name), a[:, :w // 2], check_contrast=False)
    r = a[:, w // 2:]
    th, tw = (512, 768) if r.shape[1] >= 768 else (768, 512)  # portrait when the half is narrow
    y0, x0 = (r.shape[0] - th) // 2, (r.shape[1] - tw) // 2
    assert y0 >= 0 and x0 >= 0, (name, r.shape)
    io.imsave("%s/val/%s_right.png" % (out, name), r[y0:y0 + th, x0:x0 + tw], check_contrast=False)
EOF

now() { date +%s.%N; }
t0=$(now)
"$BIN/vqz-train" image --data "$OUT/train" --init "$MODEL" --codebook-only --steps "$CB_STEPS" --batch 16 \
    --crop 128 --threads "$THREADS" --name vqz-image-v1-patterns-cb --out "$OUT/cb.safetensors" -q
t1=$(now)
"$BIN/vqz-train" image --data "$OUT/train" --init "$MODEL" --steps "$FT_STEPS" --batch 16 --crop 128 --lr 3e-4 \
    --threads "$THREADS" --name vqz-image-v1-patterns-ft --out "$OUT/ft.safetensors" -q
t2=$(now)

{
    echo "| model | levels | bpp | PSNR dB | MS-SSIM |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    for m in default cb ft; do
        case $m in default) path=$MODEL ;; *) path=$OUT/$m.safetensors ;; esac
        for q in 1 2 4; do
            bits=0 psnr=0 ms=0 n=0
            for v in "$OUT"/val/*.png; do
                "$BIN/vqz-enc" -f -Q --threads "$THREADS" -m "$path" -q "$q" -o "$OUT/t.vqz" "$v"
                "$BIN/vqz-dec" -f -Q --threads "$THREADS" -m "$path" -o "$OUT/t.png" "$OUT/t.vqz"
                j=$("$BIN/vqz-eval" --json "$v" "$OUT/t.png")
                bits=$(awk "BEGIN { print $bits + $(wc -c < "$OUT/t.vqz") * 8 / (768 * 512) }")
                psnr=$(awk "BEGIN { print $psnr + $(echo "$j" | sed 's/.*"psnr":\([-0-9.e+]*\).*/\1/') }")
                ms=$(awk "BEGIN { print $ms + $(echo "$j" | sed 's/.*"ms_ssim":\([-0-9.e+]*\).*/\1/') }")
                n=$((n + 1))
            done
            awk "BEGIN { printf \"| %s | %d | %.3f | %.2f | %.4f |\n\", \"$m\", $q, $bits / $n, $psnr / $n, $ms / $n }"
        done
    done
    echo
    awk "BEGIN { printf \"codebook-only adaptation: %d steps in %.0f s; fine-tuning: %d steps in %.0f s (%d thread(s))\n\", $CB_STEPS, $t1 - $t0, $FT_STEPS, $t2 - $t1, $THREADS }"
} > "$OUT/adapt.md"
cat "$OUT/adapt.md"
