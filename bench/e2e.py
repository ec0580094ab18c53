#!/usr/bin/python3
"""e2e.py — end-to-end speed and peak memory of vqz-enc / vqz-dec with the default models (codec issue):
images in megapixels per second (768x512 photographs), audio in multiples of real time (60 s stereo 48 kHz),
and peak RSS (`/usr/bin/time -v`) for a 51.6-megapixel photograph and one hour of stereo 48 kHz audio.
Writes bench/out/e2e.json and the table between <!-- e2e:begin --> and <!-- e2e:end --> in bench/RESULTS.md
(bench/out/RESULTS-quick.md with --quick).

Measurement only (never part of the product). Uses Debian's /usr/bin/python3 with python3-numpy,
python3-skimage (image scaling and PNG I/O) and python3-scipy (WAV writing); inputs are real media from
the project's validation split (tools/fetch-training-data.sh) and samples/.

  bench/e2e.py [--image-model PATH] [--audio-model PATH] [--threads N] [--quick]
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time

import numpy as np
import scipy.io.wavfile
import skimage.io
import skimage.transform

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out", "e2e")
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "bin")


def run_timed(cmd, env):
    """Wall seconds and peak RSS (MiB) of one process, from /usr/bin/time -v."""
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit("e2e: %s failed:\n%s" % (" ".join(cmd), p.stderr[-2000:]))
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    return wall, int(m.group(1)) / 1024.0


def photo_768x512(src, dst):
    """Downscale so the short side is 512 (anti-aliased), then take the central 768x512 (or 512x768)."""
    a = skimage.io.imread(src)[..., :3]
    h, w = a.shape[:2]
    s = 512.0 / min(h, w)
    b = skimage.transform.resize(a, (round(h * s), round(w * s)), anti_aliasing=True, preserve_range=True)
    h, w = b.shape[:2]
    th, tw = (512, 768) if w >= h else (768, 512)
    y, x = (h - th) // 2, (w - tw) // 2
    skimage.io.imsave(dst, np.clip(np.round(b[y:y + th, x:x + tw]), 0, 255).astype(np.uint8), check_contrast=False)


def big_photo(dst):
    """A 51.6-megapixel photograph: the 5120x2880 Breeze wallpaper upscaled 2x (pixel replication), cropped."""
    src = os.path.join(ROOT, "data", "images", "train", "breeze_Next_5120x2880.png")
    a = skimage.io.imread(src)[..., :3]
    b = np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)[:5760, :8960]
    skimage.io.imsave(dst, b, check_contrast=False)


def read_mono_48k(path):
    """A WAV file as float mono at 48 kHz (linear interpolation is enough for a speed input)."""
    rate, x = scipy.io.wavfile.read(path)
    scale = 32768.0 if x.dtype == np.int16 else (2.0 ** 31 if x.dtype == np.int32 else 1.0)
    x = x.astype(np.float64) / scale
    if x.ndim > 1:
        x = x.mean(axis=1)
    n = int(round(len(x) * 48000 / rate))
    return np.interp(np.arange(n) * rate / 48000.0, np.arange(len(x)), x)


def make_audio(seconds, dst):
    """Stereo 48 kHz 16-bit: the shipped speech sample (left) and the first WAV of the music validation
    split (right), each looped to the length."""
    speech = read_mono_48k(os.path.join(ROOT, "samples", "audio", "speech-demo-thanks.wav"))
    mval = os.path.join(ROOT, "data", "music", "val")
    music = read_mono_48k(os.path.join(mval, sorted(f for f in os.listdir(mval) if f.lower().endswith(".wav"))[0]))
    n = int(seconds * 48000)
    left = np.resize(speech, n)
    right = np.resize(music, n)
    pcm = np.clip(np.stack([left, right], axis=1) * 32767.0, -32768, 32767).astype(np.int16)
    scipy.io.wavfile.write(dst, 48000, pcm)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image-model", default=os.path.join(ROOT, "samples", "models", "vqz-image-v1.safetensors"))
    ap.add_argument("--audio-model", default=os.path.join(ROOT, "samples", "models", "vqz-audio-v1.safetensors"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="skip the 51.6 MP image and the hour of audio")
    ap.add_argument("--results", default=None,
                    help="file whose e2e section is rewritten (default bench/RESULTS.md; with --quick "
                         "bench/out/RESULTS-quick.md, so a quick run never replaces the full table)")
    a = ap.parse_args()
    if a.results is None:
        a.results = os.path.join(OUT, "RESULTS-quick.md") if a.quick else os.path.join(ROOT, "bench", "RESULTS.md")
    os.makedirs(OUT, exist_ok=True)
    env = dict(os.environ, VQZ_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads), OMP_WAIT_POLICY="passive")
    enc, dec = os.path.join(BIN, "vqz-enc"), os.path.join(BIN, "vqz-dec")
    rows = []

    # images: 768x512 photographs of the validation split
    val = os.path.join(ROOT, "data", "images", "val")
    names = sorted(f for f in os.listdir(val) if f.lower().endswith((".png", ".jpg", ".jpeg")))[:8]
    t_enc = t_dec = px = 0.0
    for i, n in enumerate(names):
        p = os.path.join(OUT, "photo%d.png" % i)
        if not os.path.exists(p):
            photo_768x512(os.path.join(val, n), p)
        v, d = os.path.join(OUT, "photo%d.vqz" % i), os.path.join(OUT, "photo%d.dec.png" % i)
        w, _ = run_timed([enc, "-f", "-Q", "-m", a.image_model, "-o", v, p], env)
        t_enc += w
        w, _ = run_timed([dec, "-f", "-Q", "-m", a.image_model, "-o", d, v], env)
        t_dec += w
        px += 768 * 512
    rows.append({"what": "image 768x512, %d photographs" % len(names), "encode": px / 1e6 / t_enc,
                 "decode": px / 1e6 / t_dec, "unit": "MPixel/s"})

    # audio: 60 s stereo 48 kHz
    wav = os.path.join(OUT, "stereo60.wav")
    if not os.path.exists(wav):
        make_audio(60, wav)
    v, d = os.path.join(OUT, "stereo60.vqz"), os.path.join(OUT, "stereo60.dec.wav")
    we, _ = run_timed([enc, "-f", "-Q", "-m", a.audio_model, "-o", v, wav], env)
    wd, _ = run_timed([dec, "-f", "-Q", "-m", a.audio_model, "-o", d, v], env)
    rows.append({"what": "audio 60 s stereo 48 kHz", "encode": 60.0 / we, "decode": 60.0 / wd,
                 "unit": "x real time"})

    mem = []
    if not a.quick:
        big = os.path.join(OUT, "big51mp.png")
        if not os.path.exists(big):
            big_photo(big)
        v, d = os.path.join(OUT, "big51mp.vqz"), os.path.join(OUT, "big51mp.dec.png")
        we, re_ = run_timed([enc, "-f", "-Q", "-m", a.image_model, "-o", v, big], env)
        wd, rd = run_timed([dec, "-f", "-Q", "-m", a.image_model, "-o", d, v], env)
        mem.append({"what": "image 8960x5760 (51.6 MP)", "enc_s": we, "enc_mb": re_, "dec_s": wd, "dec_mb": rd})
        hour = os.path.join(OUT, "stereo3600.wav")
        if not os.path.exists(hour):
            make_audio(3600, hour)
        v, d = os.path.join(OUT, "stereo3600.vqz"), os.path.join(OUT, "stereo3600.dec.wav")
        we, re_ = run_timed([enc, "-f", "-Q", "-m", a.audio_model, "-o", v, hour], env)
        wd, rd = run_timed([dec, "-f", "-Q", "-m", a.audio_model, "-o", d, v], env)
        mem.append({"what": "audio 1 h stereo 48 kHz", "enc_s": we, "enc_mb": re_, "dec_s": wd, "dec_mb": rd})

    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    when = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
    res = {"machine": "%s, %d cores visible, %d threads" % (cpu, os.cpu_count(), a.threads), "date": when,
           "image_model": a.image_model, "audio_model": a.audio_model, "speed": rows, "memory": mem}
    with open(os.path.join(OUT, "..", "e2e.json"), "w") as f:
        json.dump(res, f, indent=1)

    md = ["<!-- e2e:begin -->", "### End to end: vqz-enc / vqz-dec (`bench/e2e.py`)", "",
          "Machine: %s. Measured %s. Whole processes (model loading and file I/O included), `%s` and `%s`." % (
              res["machine"], when, os.path.basename(a.image_model), os.path.basename(a.audio_model)), "",
          "| input | encode | decode | unit |", "| --- | ---: | ---: | --- |"]
    for r in rows:
        md.append("| %s | %.2f | %.2f | %s |" % (r["what"], r["encode"], r["decode"], r["unit"]))
    if mem:
        md += ["", "| input | encode s | encode peak RSS MiB | decode s | decode peak RSS MiB |",
               "| --- | ---: | ---: | ---: | ---: |"]
        for m in mem:
            md.append("| %s | %.1f | %.0f | %.1f | %.0f |" % (m["what"], m["enc_s"], m["enc_mb"], m["dec_s"], m["dec_mb"]))
    md.append("<!-- e2e:end -->")
    block = "\n".join(md)
    text = open(a.results).read() if os.path.exists(a.results) else "# vqz benchmark results\n"
    if "<!-- e2e:begin -->" in text:
        text = re.sub(r"<!-- e2e:begin -->.*?<!-- e2e:end -->", lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(a.results, "w") as f:
        f.write(text)
    print(block)


if __name__ == "__main__":
    main()
