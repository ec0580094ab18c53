#!/bin/sh
# install-deps.sh — install the Debian packages vqz needs to build and test, when missing.
# Idempotent and silent when nothing is missing. `make` runs it. Extra package names may be given
# as arguments (bench/ passes the PyTorch and reference-codec packages it needs); `--bench` adds the
# measurement packages of the rate-distortion benchmark (bench/rd.sh): the reference codecs' command-line
# tools, SoX, and Debian's Python with numpy, scipy and matplotlib.
# python3-zstandard is for the tests: they run the independent reader tools/vqz_reader.py on the vectors.
set -e
BENCH_PKGS="libjpeg-turbo-progs webp libavif-bin libjxl-tools opus-tools codec2 sox libsox-fmt-base
            python3-matplotlib python3-numpy python3-scipy python3-numba python3-venv python3-dev"
EXTRA=""
for a in "$@"; do
    case "$a" in
        --bench) EXTRA="$EXTRA $BENCH_PKGS" ;;
        *) EXTRA="$EXTRA $a" ;;
    esac
done
PKGS="make gcc g++ pkg-config libpng-dev libjpeg62-turbo-dev libsndfile1-dev libzstd-dev libdnnl-dev
      libopenblas-openmp-dev libfftw3-dev libcjson-dev libsoxr-dev catch2 python3 python3-zstandard $EXTRA"
missing=""
for p in $PKGS; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in
        *"install ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing missing packages:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "install-deps: need root (or sudo) to install:$missing" >&2; exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
