#!/bin/sh
# rd.sh — the rate-distortion benchmark (bench/rd.py): vqz against JPEG, WebP, AVIF, JPEG XL, Opus and Codec2.
# Installs the measurement packages (tools/install-deps.sh --bench) and, when PyPI answers, visqol-python,
# pesq and pystoi into bench/out/pyenv (a venv over Debian's numpy/scipy); metrics that do not install are
# reported as n/a. Then runs the driver under nice, every tool single-threaded, two at a time.
#   bench/rd.sh            full run: bench/out/rd_*.csv, bench/rd_*.png, the rd section of bench/RESULTS.md
#   bench/rd.sh --quick    6 images, 6+6 clips of 5 s: bench/out/rd_*-quick.csv, bench/out/rd_*.png, bench/out/RESULTS-quick.md
# Models: samples/models/vqz-{image,audio}-v1.safetensors, or VQZ_RD_IMAGE_MODEL / VQZ_RD_AUDIO_MODEL, or
# --image-model / --audio-model; other options: /usr/bin/python3 bench/rd.py run --help.
set -e
cd "$(dirname "$0")/.."
sh tools/install-deps.sh --bench
VENV=bench/out/pyenv
if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p bench/out
    /usr/bin/python3 -m venv --system-site-packages "$VENV" >&2 || true
fi
if [ -x "$VENV/bin/python" ]; then
    # pinned, so reruns measure with the same code; each on its own, so one failing leaves the others
    for spec in visqol-python==3.8.0:visqol pesq==0.0.4:pesq pystoi==0.4.1:pystoi; do
        mod=${spec##*:}
        "$VENV/bin/python" -c "import $mod" 2>/dev/null && continue
        echo "rd: installing ${spec%%:*} from PyPI into $VENV" >&2
        "$VENV/bin/pip" install -q --disable-pip-version-check "${spec%%:*}" >&2 ||
            echo "rd: ${spec%%:*} did not install; its metric is reported as n/a" >&2
    done
fi
exec nice -n 10 /usr/bin/python3 bench/rd.py run "$@"
