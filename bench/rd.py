#!/usr/bin/python3
# rd.py — the rate-distortion benchmark: vqz at every level against JPEG, WebP, AVIF and JPEG XL on
# 768×512 photographs (matched bpp by bisection), and against Opus and Codec2 on speech and music clips.
#
# Measurement only; the product never runs Python. Packages, all from Debian (tools/install-deps.sh --bench):
# /usr/bin/python3 3.11 with python3-numpy, python3-scipy (PCHIP for the BD-rate), python3-matplotlib (the
# plots) and python3-pil (its dependency: the 768×512 crops, PPM↔PNG); the command-line codecs of
# libjpeg-turbo-progs, webp, libavif-bin, libjxl-tools, opus-tools and codec2; sox. Every metric but three
# comes from build/bin/vqz-eval, so all codecs are measured by the same code. ViSQOL, PESQ and STOI come
# from PyPI (visqol-python, pesq, pystoi) in the virtual environment bench/out/pyenv that bench/rd.sh makes;
# they run there in a child process (`rd.py audio-metrics`), and are reported as n/a when not installed.
#
# Usage: bench/rd.sh [--quick]  (see `rd.py run --help`)
import argparse
import concurrent.futures
import csv
import datetime
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FULL = dict(images=0, speech=24, music=24, clip_s=10.0, int_steps=7, float_steps=8, all_levels=True)
QUICK = dict(images=6, speech=6, music=6, clip_s=5.0, int_steps=4, float_steps=4, all_levels=False)
MIN_CLIP_S = 5.0
OPUS_KBPS = (6, 8, 12)
CODEC2_MODES = ("700C", "1300", "3200")


def log(msg):
    print("rd: " + msg, file=sys.stderr, flush=True)


class Runner:
    """Runs the command-line tools with a fixed thread count, so reruns give the same files."""

    def __init__(self, threads):
        self.threads = threads
        self.env = dict(os.environ, VQZ_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                        OMP_WAIT_POLICY="PASSIVE", NUMBA_NUM_THREADS=str(threads))

    def run(self, cmd, capture=False):
        r = subprocess.run(cmd, env=self.env, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr.strip()[-400:]))
        return r.stdout

    def eval(self, ref, test):
        return json.loads(self.run([BIN["vqz-eval"], "--json", ref, test], capture=True))


BIN = {}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_levels(path):
    """The RVQ level count from the safetensors header's config (the __metadata__ vqz.config entry)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        head = json.loads(f.read(n))
    meta = head.get("__metadata__", {})
    for v in meta.values():
        try:
            cfg = json.loads(v)
        except (TypeError, ValueError):
            continue
        if isinstance(cfg, dict) and "levels" in cfg:
            return int(cfg["levels"])
    raise RuntimeError("%s: no level count in the safetensors metadata" % path)


def model_info(path):
    """Name (the bundle's metadata name), file, SHA-256, level count and training steps of a model."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(n)).get("__metadata__", {})
    return dict(name=meta.get("name", "?"), file=os.path.basename(path), sha=sha256(path), levels=model_levels(path),
                steps=meta.get("vqz.steps"))


def level_list(n, all_levels):
    """Every level, or for --quick the powers of two and the last (1, 2, 4, 8 of 8)."""
    if all_levels:
        return list(range(1, n + 1))
    out = [1 << i for i in range(n.bit_length()) if (1 << i) <= n]
    return out + ([n] if out[-1] != n else [])


# ---------------------------------------------------------------------------------------------- images

def prepare_images(src_dir, cache, count):
    """Each photograph scaled (Lanczos, PIL) so that it covers 768×512 (512×768 when portrait), then
    centre-cropped to exactly that, as 8-bit RGB PNG (grey becomes R = G = B) plus a PPM for cjpeg."""
    from PIL import Image
    names = sorted(f for f in os.listdir(src_dir) if f.lower().endswith((".png", ".jpg", ".jpeg")))
    if count and count < len(names):
        names = [names[(i * len(names)) // count] for i in range(count)]
    os.makedirs(cache, exist_ok=True)
    out = []
    for name in names:
        stem = os.path.splitext(name)[0]
        png = os.path.join(cache, stem + ".png")
        ppm = os.path.join(cache, stem + ".ppm")
        if not (os.path.exists(png) and os.path.exists(ppm)):
            im = Image.open(os.path.join(src_dir, name)).convert("RGB")
            w, h = im.size
            tw, th = (768, 512) if w >= h else (512, 768)
            s = max(tw / w, th / h)
            sw, sh = max(tw, round(w * s)), max(th, round(h * s))
            im = im.resize((sw, sh), Image.LANCZOS)
            x0, y0 = (sw - tw) // 2, (sh - th) // 2
            im = im.crop((x0, y0, x0 + tw, y0 + th))
            im.save(png + ".tmp.png")
            im.save(ppm + ".tmp.ppm")
            os.replace(png + ".tmp.png", png)
            os.replace(ppm + ".tmp.ppm", ppm)
        out.append(dict(name=stem, png=png, ppm=ppm, pixels=768 * 512))
    return out


def ppm_to_png(ppm, png):
    from PIL import Image
    Image.open(ppm).save(png)


class ImageCodec:
    """A reference codec: a quality knob (ordered from worst to best) and how to encode and decode."""

    def __init__(self, name, label, ext, knobs=None, float_range=None):
        self.name, self.label, self.ext = name, label, ext
        self.knobs = knobs              # integer knob values, worst quality first
        self.float_range = float_range  # (worst, best) for a continuous knob, bisected in log scale

    def encode(self, run, img, knob, out):
        if self.name == "jpeg":
            run.run(["cjpeg", "-quality", str(knob), "-optimize", "-outfile", out, img["ppm"]])
        elif self.name == "webp":
            run.run(["cwebp", "-quiet", "-q", str(knob), img["png"], "-o", out])
        elif self.name == "avif":
            run.run(["avifenc", "-j", "1", "-c", "aom", "-s", "6", "-y", "420", "--min", str(knob),
                     "--max", str(knob), img["png"], out])
        elif self.name == "jxl":
            run.run(["cjxl", img["png"], out, "-d", "%g" % knob, "-e", "7", "--num_threads=0", "--quiet"])

    def decode(self, run, enc, png):
        if self.name == "jpeg":
            run.run(["djpeg", "-outfile", png + ".ppm", enc])
            ppm_to_png(png + ".ppm", png)
            os.remove(png + ".ppm")
        elif self.name == "webp":
            run.run(["dwebp", "-quiet", enc, "-o", png])
        elif self.name == "avif":
            run.run(["avifdec", "-j", "1", "-d", "8", enc, png])
        elif self.name == "jxl":
            run.run(["djxl", enc, png, "--num_threads=1", "--quiet"])


IMAGE_CODECS = [
    ImageCodec("jpeg", "JPEG", "jpg", knobs=list(range(1, 101))),
    ImageCodec("webp", "WebP", "webp", knobs=list(range(0, 101))),
    ImageCodec("avif", "AVIF", "avif", knobs=list(range(63, -1, -1))),
    ImageCodec("jxl", "JPEG XL", "jxl", float_range=(25.0, 0.1)),
]
CODEC_TOOL_PKGS = {"jpeg": "libjpeg-turbo-progs", "webp": "webp", "avif": "libavif-bin", "jxl": "libjxl-tools",
                   "opus": "opus-tools", "codec2": "codec2"}


def vqz_image_task(run, model, levels, img, work):
    rows = []
    d = os.path.join(work, "vqz", img["name"])
    os.makedirs(d, exist_ok=True)
    for lv in levels:
        enc = os.path.join(d, "L%d.vqz" % lv)
        dec = os.path.join(d, "L%d.png" % lv)
        run.run([BIN["vqz-enc"], "-m", model, "-q", str(lv), "--threads", str(run.threads), "-Q", "-f",
                 "-o", enc, img["png"]])
        run.run([BIN["vqz-dec"], "-m", model, "--threads", str(run.threads), "-Q", "-f", "-o", dec, enc])
        m = run.eval(img["png"], dec)
        nbytes = os.path.getsize(enc)
        rows.append(image_row(img, "vqz", lv, "levels=%d" % lv, nbytes, None, True, m))
    return rows


def image_row(img, codec, level, setting, nbytes, target_bpp, met, m):
    return dict(image=img["name"], codec=codec, level=level, setting=setting, bytes=nbytes,
                bpp=nbytes * 8.0 / img["pixels"], target_bpp=target_bpp, met=int(bool(met)),
                psnr=m.get("psnr"), psnr_y=m.get("psnr_y"), ms_ssim=m.get("ms_ssim"), ms_ssim_y=m.get("ms_ssim_y"))


def codec_image_task(run, codec, img, targets, work, steps):
    """For each vqz level's bpp on this image, the best quality of `codec` at or below that bpp."""
    d = os.path.join(work, codec.name, img["name"])
    os.makedirs(d, exist_ok=True)
    sizes = {}

    def size(knob):
        if knob not in sizes:
            enc = os.path.join(d, "k%s.%s" % (knob, codec.ext))
            codec.encode(run, img, knob, enc)
            sizes[knob] = os.path.getsize(enc)
        return sizes[knob]

    rows = []
    for level, target in targets:
        budget = target * img["pixels"] / 8.0
        knob, met = bisect_knob(codec, size, budget, steps)
        enc = os.path.join(d, "k%s.%s" % (knob, codec.ext))
        dec = os.path.join(d, "k%s.png" % knob)
        if not os.path.exists(dec):
            codec.decode(run, enc, dec)
        m = run.eval(img["png"], dec)
        rows.append(image_row(img, codec.name, level, "%s=%s" % ("d" if codec.float_range else "q", knob),
                              sizes[knob], target, met, m))
    return rows


def bisect_knob(codec, size, budget, steps):
    """Bisection on the quality knob: the best quality found whose file fits `budget` bytes within
    `steps` probes past the two ends; the worst setting (met = False) when even that does not fit."""
    if codec.knobs:
        ks = codec.knobs
        if size(ks[0]) > budget:
            return ks[0], False
        if size(ks[-1]) <= budget:
            return ks[-1], True
        lo, hi = 0, len(ks) - 1
        for _ in range(steps):
            if hi - lo <= 1:
                break
            mid = (lo + hi) // 2
            if size(ks[mid]) <= budget:
                lo = mid
            else:
                hi = mid
        return ks[lo], True
    worst, best = codec.float_range

    def knob(u):
        return float("%.4g" % math.exp(u))

    lo, hi = math.log(worst), math.log(best)
    if size(knob(lo)) > budget:
        return knob(lo), False
    if size(knob(hi)) <= budget:
        return knob(hi), True
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if size(knob(mid)) <= budget:
            lo = mid
        else:
            hi = mid
    return knob(lo), True


# ----------------------------------------------------------------------------------------------- audio

def audio_durations(paths, cache_file):
    cache = {}
    if os.path.exists(cache_file):
        try:
            cache = json.load(open(cache_file))
        except ValueError:
            cache = {}
    out, changed = {}, False
    for p in paths:
        st = os.stat(p)
        key = "%s|%d|%d" % (p, st.st_size, int(st.st_mtime))
        if key not in cache:
            r = subprocess.run(["soxi", "-D", p], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            try:
                cache[key] = float(r.stdout.strip()) if r.returncode == 0 else None
            except ValueError:
                cache[key] = None
            changed = True
        out[p] = cache[key]
    if changed:
        json.dump(cache, open(cache_file + ".tmp", "w"))
        os.replace(cache_file + ".tmp", cache_file)
    return out


def pick_clips(src_dir, kind, count, clip_s, work):
    """Files SoX reads that last at least MIN_CLIP_S, taken round-robin over their source packages (the
    name up to the first '_', in sorted order) so a few clips already span many voices and styles; speech
    clips start at 0 s, music clips are the middle of the track; at most clip_s seconds each."""
    paths = sorted(os.path.join(src_dir, f) for f in os.listdir(src_dir))
    durs = audio_durations(paths, os.path.join(work, "durations.json"))
    groups = {}
    for p in paths:
        if durs[p] is not None and durs[p] >= MIN_CLIP_S:
            groups.setdefault(os.path.basename(p).split("_", 1)[0], []).append(p)
    order, i = [], 0
    keys = sorted(groups)
    while len(order) < count and any(i < len(groups[k]) for k in keys):
        order += [groups[k][i] for k in keys if i < len(groups[k])]
        i += 1
    clips = []
    for p in order[:count]:
        dur = min(clip_s, durs[p])
        off = 0.0 if kind == "speech" else round(max(0.0, (durs[p] - dur) / 2), 2)
        clips.append(dict(kind=kind, src=p, offset=off, seconds=dur,
                          name="%s_%s" % (kind, os.path.splitext(os.path.basename(p))[0])))
    return clips


def prepare_clip(run, clip, cache):
    """24 kHz mono 16-bit WAV: SoX in repeatable mode without dither, channels mixed down."""
    os.makedirs(cache, exist_ok=True)
    wav = os.path.join(cache, "%s_%gs.wav" % (clip["name"], clip["seconds"]))
    if not os.path.exists(wav):
        run.run(["sox", "-R", "-D", clip["src"], "-b", "16", wav + ".tmp.wav", "trim", "%g" % clip["offset"],
                 "%g" % clip["seconds"], "remix", "-", "rate", "-v", "24000"])
        os.replace(wav + ".tmp.wav", wav)
    info = json.loads(run.run([BIN["vqz-eval"], "--json", wav, wav], capture=True))
    clip = dict(clip, wav=wav, frames=info["frames"], duration=info["frames"] / 24000.0)
    return clip


def audio_row(clip, codec, setting, level, nbytes, m, dec):
    kbps = nbytes * 8.0 / clip["duration"] / 1000.0
    return dict(clip=clip["name"], kind=clip["kind"], codec=codec, setting=setting, level=level, bytes=nbytes,
                seconds=round(clip["duration"], 4), kbps=kbps, si_sdr=m.get("si_sdr"), snr=m.get("snr"),
                mel_distance=m.get("mel_distance"), mel_distance_dac=m.get("mel_distance_dac"),
                stft_distance=m.get("stft_distance"), visqol=None, pesq=None, stoi=None, decoded=dec)


def vqz_audio_task(run, model, levels, clip, work):
    d = os.path.join(work, "vqz", clip["name"])
    os.makedirs(d, exist_ok=True)
    rows = []
    for lv in levels:
        enc, dec = os.path.join(d, "L%d.vqz" % lv), os.path.join(d, "L%d.wav" % lv)
        run.run([BIN["vqz-enc"], "-m", model, "-q", str(lv), "--threads", str(run.threads), "-Q", "-f",
                 "-o", enc, clip["wav"]])
        run.run([BIN["vqz-dec"], "-m", model, "--threads", str(run.threads), "-Q", "-f", "-o", dec, enc])
        rows.append(audio_row(clip, "vqz", "L%d" % lv, lv, os.path.getsize(enc), run.eval(clip["wav"], dec), dec))
    return rows


def opus_task(run, clip, work):
    d = os.path.join(work, "opus", clip["name"])
    os.makedirs(d, exist_ok=True)
    rows = []
    for kb in OPUS_KBPS:
        enc, dec = os.path.join(d, "%dk.opus" % kb), os.path.join(d, "%dk.wav" % kb)
        run.run(["opusenc", "--quiet", "--serial", "1", "--bitrate", str(kb), clip["wav"], enc])
        run.run(["opusdec", "--quiet", "--rate", "24000", enc, dec])
        rows.append(audio_row(clip, "opus", "%d kbit/s" % kb, kb, os.path.getsize(enc),
                              run.eval(clip["wav"], dec), dec))
    return rows


def codec2_task(run, clip, work):
    """Codec2 codes 8 kHz speech: the clip is resampled to 8 kHz, coded (.c2 with its 7-byte header,
    counted), decoded and brought back to 24 kHz, and measured against the 24 kHz original."""
    d = os.path.join(work, "codec2", clip["name"])
    os.makedirs(d, exist_ok=True)
    raw_in = os.path.join(d, "in8k.raw")
    run.run(["sox", "-R", "-D", clip["wav"], "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1", raw_in,
             "rate", "-v", "8000"])
    rows = []
    for mode in CODEC2_MODES:
        enc, raw_out, dec = (os.path.join(d, mode + x) for x in (".c2", ".raw", ".wav"))
        run.run(["c2enc", mode, raw_in, enc])
        run.run(["c2dec", mode, enc, raw_out])
        run.run(["sox", "-R", "-D", "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1", "-r", "8000",
                 raw_out, "-b", "16", dec, "rate", "-v", "24000"])
        rows.append(audio_row(clip, "codec2", mode, mode, os.path.getsize(enc), run.eval(clip["wav"], dec), dec))
    return rows


def audio_metrics_worker(pairs_file):
    """Child process in the PyPI environment: ViSQOL v3 in audio mode at 48 kHz on every pair, PESQ
    (wide band) and STOI at 16 kHz on speech. Inputs are 24 kHz WAV; polyphase resampling (scipy)."""
    import soundfile as sf
    from scipy.signal import resample_poly
    jobs = json.load(open(pairs_file))
    want = set(jobs["metrics"])
    api = None
    if "visqol" in want:
        from visqol import VisqolApi
        api = VisqolApi()
        api.create(mode="audio")
    if "pesq" in want:
        from pesq import pesq
    if "stoi" in want:
        from pystoi import stoi
    for ref, deg, kind in jobs["pairs"]:
        x, sx = sf.read(ref, dtype="float64")
        y, sy = sf.read(deg, dtype="float64")
        assert sx == 24000 and sy == 24000, (ref, sx, deg, sy)
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        res = {"ref": ref, "deg": deg}
        if api is not None:
            try:
                res["visqol"] = float(api.measure_from_arrays(resample_poly(x, 2, 1), resample_poly(y, 2, 1),
                                                              48000).moslqo)
            except Exception as e:  # noqa: BLE001 - recorded, never faked
                res["visqol_error"] = repr(e)[:200]
        if kind == "speech" and ("pesq" in want or "stoi" in want):
            x16, y16 = resample_poly(x, 2, 3), resample_poly(y, 2, 3)
            if "pesq" in want:
                try:
                    res["pesq"] = float(pesq(16000, x16, y16, "wb"))
                except Exception as e:  # noqa: BLE001
                    res["pesq_error"] = repr(e)[:200]
            if "stoi" in want:
                res["stoi"] = float(stoi(x16, y16, 16000, extended=False))
        print(json.dumps(res), flush=True)
    return 0


def probe_pymetrics(python):
    """Which of visqol / pesq / pystoi import in the PyPI environment, and why not for the others."""
    status = {}
    for m, mod in (("visqol", "visqol"), ("pesq", "pesq"), ("stoi", "pystoi")):
        if not python or not os.path.exists(python):
            status[m] = "not installed (no environment at %s)" % python
            continue
        r = subprocess.run([python, "-c", "import %s" % mod], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
        status[m] = "ok" if r.returncode == 0 else "import failed: %s" % (r.stderr.strip().splitlines() or ["?"])[-1]
    return status


def run_pymetrics(python, rows, metrics, jobs, work, cache, threads):
    pairs = [(r["ref"], r["decoded"], r["kind"]) for r in rows]
    want = [m for m in metrics if metrics[m] == "ok"]
    if not want or not pairs:
        return {}
    chunks = [pairs[i::jobs] for i in range(jobs)]
    procs = []
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), NUMBA_CACHE_DIR=os.path.join(cache, "numba"))
    for i, ch in enumerate(chunks):
        if not ch:
            continue
        f = os.path.join(work, "pairs%d.json" % i)
        json.dump({"pairs": ch, "metrics": want}, open(f, "w"))
        procs.append((subprocess.Popen([python, os.path.abspath(__file__), "audio-metrics", f], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), f))
    out = {}
    for p, f in procs:
        so, se = p.communicate()
        if p.returncode != 0:
            raise RuntimeError("audio-metrics %s failed: %s" % (f, se.strip()[-600:]))
        for line in so.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                out[r["deg"]] = r
    return out


# -------------------------------------------------------------------------------------- BD-rate, tables

def bd_rate(r_anchor, q_anchor, r_test, q_test):
    """Bjøntegaard delta rate of `test` against `anchor` in percent (negative: test needs fewer bits for
    the same quality). Log-rate as a piecewise cubic (PCHIP) function of quality, integrated over the
    overlap of the two quality ranges (returned with the result). A point no better than a cheaper one of its curve is left out (the
    fit needs quality rising with rate); None when a curve keeps fewer than two points or the ranges do
    not overlap."""
    from scipy.interpolate import PchipInterpolator

    def curve(r, q):
        pts = sorted((a, b) for a, b in zip(r, q) if a is not None and b is not None and a > 0 and math.isfinite(b))
        qs, lr = [], []
        for a, b in pts:
            if not qs or b > qs[-1]:
                qs.append(b)
                lr.append(math.log(a))
        return qs, lr

    qa, la = curve(r_anchor, q_anchor)
    qt, lt = curve(r_test, q_test)
    if len(qa) < 2 or len(qt) < 2:
        return None
    lo, hi = max(qa[0], qt[0]), min(qa[-1], qt[-1])
    if hi <= lo:
        return None
    fa, ft = PchipInterpolator(qa, la), PchipInterpolator(qt, lt)
    diff = (ft.integrate(lo, hi) - fa.integrate(lo, hi)) / (hi - lo)
    return (math.exp(diff) - 1.0) * 100.0, lo, hi


def fmt_bd(bd, spec, scale=1.0):
    """A BD-rate cell with the quality range it was integrated over."""
    if bd is None:
        return "n/a"
    return ("%+.1f %% (" + spec + "–" + spec + ")") % (bd[0], bd[1] * scale, bd[2] * scale)


def mean(vals):
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def fmt(v, spec, na="n/a"):
    return na if v is None else spec % v


def image_curves(rows, levels):
    """Per codec, per vqz level: mean bpp, PSNR, MS-SSIM over the images, and how many met the target."""
    cur = {}
    for c in ["vqz"] + [k.name for k in IMAGE_CODECS]:
        pts = []
        for lv in levels:
            sel = [r for r in rows if r["codec"] == c and r["level"] == lv]
            if sel:
                pts.append(dict(level=lv, bpp=mean([r["bpp"] for r in sel]), psnr=mean([r["psnr"] for r in sel]),
                                ms_ssim=mean([r["ms_ssim"] for r in sel]), met=sum(r["met"] for r in sel),
                                n=len(sel)))
        cur[c] = pts
    return cur


def audio_curves(rows):
    cur = {}
    for kind in ("speech", "music"):
        for c in ("vqz", "opus", "codec2"):
            sel = [r for r in rows if r["kind"] == kind and r["codec"] == c]
            settings = []
            for r in sel:
                if r["setting"] not in settings:
                    settings.append(r["setting"])
            pts = []
            for s in settings:
                ss = [r for r in sel if r["setting"] == s]
                pts.append(dict(setting=s, n=len(ss), **{k: mean([r[k] for r in ss]) for k in
                                                        ("kbps", "mel_distance", "si_sdr", "visqol", "pesq", "stoi")}))
            if pts:
                cur[(kind, c)] = pts
    return cur


LABEL = {"vqz": "vqz", "jpeg": "JPEG", "webp": "WebP", "avif": "AVIF", "jxl": "JPEG XL", "opus": "Opus",
         "codec2": "Codec2"}


def plot_images(cur, path, n_img):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for c, pts in cur.items():
        if not pts:
            continue
        style = dict(marker="o", lw=2.2, color="black") if c == "vqz" else dict(marker=".", lw=1.2)
        for ax, key in zip(axes, ("psnr", "ms_ssim")):
            ax.plot([p["bpp"] for p in pts], [p[key] for p in pts], label=LABEL[c], **style)
    axes[0].set_ylabel("PSNR (dB, RGB)")
    axes[1].set_ylabel("MS-SSIM (RGB)")
    for ax in axes:
        ax.set_xlabel("bits per pixel (whole file)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Images: mean over %d photographs of 768×512, one point per vqz level (others at matched bpp)"
                 % n_img, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def plot_audio(cur, path, with_visqol):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = [("mel_distance", "log-mel distance (lower is better)"), ("si_sdr", "SI-SDR (dB)")]
    if with_visqol:
        cols.append(("visqol", "ViSQOL MOS-LQO (audio mode)"))
    fig, axes = plt.subplots(2, len(cols), figsize=(5.2 * len(cols), 7.5), squeeze=False)
    for i, kind in enumerate(("speech", "music")):
        for j, (key, lab) in enumerate(cols):
            ax = axes[i][j]
            for c in ("vqz", "opus", "codec2"):
                pts = cur.get((kind, c))
                if not pts:
                    continue
                style = dict(marker="o", lw=2.2, color="black") if c == "vqz" else dict(marker="s", lw=1.2)
                ax.plot([p["kbps"] for p in pts], [p[key] for p in pts], label=LABEL[c], **style)
            ax.set_xscale("log")
            ax.set_xlabel("kbit/s (whole file)")
            ax.set_ylabel(lab)
            ax.set_title(kind, fontsize=10)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def pkg_version(p):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       text=True)
    return r.stdout.strip() or "?"


def write_csv(path, rows, fields):
    with open(path + ".tmp", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("%.6g" % v if isinstance(v, float) else ("" if v is None else v))
                        for k, v in r.items()})
    os.replace(path + ".tmp", path)


def report(parts, jobs, plot_img, plot_aud):
    """The RESULTS.md section from the images and audio parts (each with its own configuration, model,
    date and duration, so a part can be redone alone)."""
    img, aud = parts.get("images"), parts.get("audio")
    L = ["<!-- rd:begin -->", "### Rate-distortion against JPEG, WebP, AVIF, JPEG XL, Opus and Codec2 (`bench/rd.sh`)",
         ""]
    L.append("Machine: %s, %d cores visible; every tool single-threaded (%d at a time), under `nice`." % (
        cpu_name(), os.cpu_count() or 0, jobs))
    for part, kind in ((img, "image"), (aud, "audio")):
        if part:
            mi = part["model"]
            L.append("%s: %s configuration, measured %s in %.1f min; model %s (`%s`, SHA-256 %s…, %d levels%s), "
                     "levels run: %s." % (
                         "Images" if kind == "image" else "Audio", "`--quick`" if part["quick"] else "full",
                         part["date"], part["elapsed_s"] / 60.0, mi["name"], mi["file"], mi["sha"][:12], mi["levels"],
                         ", %s training steps" % mi["steps"] if mi["steps"] else "",
                         ", ".join(map(str, part["levels"]))))
    L.append("Tools (Debian): " + ", ".join("%s %s" % (p, pkg_version(p)) for p in
                                            ("libjpeg-turbo-progs", "webp", "libavif-bin", "libjxl-tools",
                                             "opus-tools", "codec2", "sox")) + ".")
    L.append("")
    if img:
        img_rows, cfg = img["rows"], img["cfg"]
        levels = {"image": img["levels"]}
        n_img = len({r["image"] for r in img_rows})
        cur = image_curves(img_rows, levels["image"])
        L += ["#### Images",
              "",
              "%d photographs of `data/images/val/`%s, each scaled with PIL's Lanczos filter so that it covers "
              "768×512 (512×768 for portrait; smaller ones are enlarged) and centre-cropped to it, 8-bit RGB. "
              "vqz at levels %s; for each level's bpp on each image, the other codecs' quality knob is "
              "bisected (%d probes past the two ends) to the best setting whose file is at or below that bpp: "
              "`cjpeg -quality Q -optimize` (4:2:0), `cwebp -q Q` (method 4), `avifenc -s 6 -y 420 --min Q "
              "--max Q` (aom), `cjxl -d D -e 7` (D bisected in log scale between 0.1 and 25). bpp counts every "
              "byte of the file. Decoded with djpeg, dwebp, avifdec and djxl to PNG and measured with "
              "`vqz-eval` (PSNR and MS-SSIM over RGB). Per-image rows: `bench/out/rd_images%s.csv`."
              % (n_img, " (evenly spaced in sorted order)" if img["quick"] else "",
                 ", ".join(map(str, levels["image"])), cfg["int_steps"], "-quick" if img["quick"] else ""), ""]
        hdr = "| level | vqz bpp | vqz | " + " | ".join(c.label for c in IMAGE_CODECS) + " |"
        sep = "| ---: | ---: | ---: | " + " | ".join("---:" for _ in IMAGE_CODECS) + " |"
        for key, title, spec in (("psnr", "PSNR (dB), mean per level; other codecs as PSNR @ achieved bpp", "%.2f"),
                                 ("ms_ssim", "MS-SSIM, mean per level; other codecs as MS-SSIM @ achieved bpp",
                                  "%.4f")):
            L += ["%s:" % title, "", hdr, sep]
            for p in cur["vqz"]:
                cells = []
                for c in IMAGE_CODECS:
                    q = next((x for x in cur[c.name] if x["level"] == p["level"]), None)
                    cells.append("–" if q is None else "%s @ %.3f%s" % (fmt(q[key], spec), q["bpp"],
                                                                         "" if q["met"] == q["n"] else
                                                                         " (%d/%d)" % (q["met"], q["n"])))
                L.append("| %d | %.3f | %s | %s |" % (p["level"], p["bpp"], fmt(p[key], spec), " | ".join(cells)))
            L.append("")
        L.append("(k/n): only k of the n images could be brought down to the level's bpp; the others are at the "
                 "codec's lowest setting, above it.")
        L.append("")
        L += ["BD-rate of vqz against each codec (Bjøntegaard, log-rate as a piecewise cubic (PCHIP) function of "
              "quality over the overlapping quality range of the mean curves, points no better than a cheaper one of "
              "the same curve left out; negative: vqz needs fewer bits for the same quality; in brackets the quality "
              "range compared; n/a: fewer than two points left, or the quality ranges do not overlap):", "",
              "| anchor | BD-rate on PSNR | BD-rate on MS-SSIM |", "| --- | ---: | ---: |"]
        for c in IMAGE_CODECS:
            v = [bd_rate([p["bpp"] for p in cur[c.name]], [p[k] for p in cur[c.name]],
                         [p["bpp"] for p in cur["vqz"]], [p[k] for p in cur["vqz"]]) for k in ("psnr", "ms_ssim")]
            L.append("| %s | %s | %s |" % (c.label, fmt_bd(v[0], "%.2f"), fmt_bd(v[1], "%.4f")))
        L += ["", "![RD curves, images](%s)" % plot_img, ""]
    if aud:
        aud_rows, cfg, pym = aud["rows"], aud["cfg"], aud["pym"]
        levels = {"audio": aud["levels"]}
        cur = audio_curves(aud_rows)
        ns = len({r["clip"] for r in aud_rows if r["kind"] == "speech"})
        nm = len({r["clip"] for r in aud_rows if r["kind"] == "music"})
        L += ["#### Audio", "",
              "%d speech clips of `data/speech/val/` and %d music clips of `data/music/val/`: files SoX reads "
              "that last at least %g s, taken round-robin over their source packages; the first %g s of speech, "
              "the middle %g s of music; mixed to mono and resampled to 24 kHz 16-bit by SoX (`-R -D`, "
              "`rate -v`). vqz at levels %s; Opus (`opusenc --bitrate N`, VBR, decoded by `opusdec --rate "
              "24000`); Codec2 on speech only (resampled to 8 kHz, `c2enc`/`c2dec`, back to 24 kHz). kbit/s "
              "counts every byte of the file (Ogg and Codec2 headers included). SI-SDR and log-mel distance "
              "from `vqz-eval` against the 24 kHz clip; ViSQOL v3 (visqol-python, audio mode, 48 kHz), PESQ "
              "(wide band, 16 kHz) and STOI (16 kHz) from PyPI. Per-clip rows: `bench/out/rd_audio%s.csv`."
              % (ns, nm, MIN_CLIP_S, cfg["clip_s"], cfg["clip_s"], ", ".join(map(str, levels["audio"])),
                 "-quick" if aud["quick"] else ""), ""]
        for m in ("visqol", "pesq", "stoi"):
            if pym[m] != "ok":
                L.append("%s: n/a — %s." % ({"visqol": "ViSQOL", "pesq": "PESQ", "stoi": "STOI"}[m], pym[m]))
        if any(pym[m] != "ok" for m in pym):
            L.append("")
        for kind in ("speech", "music"):
            L += ["%s, mean over the clips:" % kind.capitalize(), "",
                  "| codec | setting | kbit/s | mel distance | SI-SDR (dB) | ViSQOL | PESQ | STOI |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
            for c in ("vqz", "opus", "codec2"):
                for p in cur.get((kind, c), []):
                    sp = kind == "speech"
                    L.append("| %s | %s | %.2f | %s | %s | %s | %s | %s |" % (
                        LABEL[c], p["setting"], p["kbps"], fmt(p["mel_distance"], "%.3f"), fmt(p["si_sdr"], "%.2f"),
                        fmt(p["visqol"], "%.2f"), fmt(p["pesq"], "%.2f") if sp else "–",
                        fmt(p["stoi"], "%.3f") if sp else "–"))
            L.append("")
        L += ["BD-rate of vqz against each codec (as for images, on the mean curves; mel distance enters "
              "negated, so that higher is better):", "",
              "| clips | anchor | on mel distance | on SI-SDR | on ViSQOL |", "| --- | --- | ---: | ---: | ---: |"]
        for kind in ("speech", "music"):
            v_pts = cur.get((kind, "vqz"), [])
            for c in ("opus", "codec2"):
                a_pts = cur.get((kind, c))
                if not a_pts:
                    continue
                cells = []
                for k, sgn, spec in (("mel_distance", -1, "%.3f"), ("si_sdr", 1, "%.2f"), ("visqol", 1, "%.2f")):
                    def q(pts):
                        return [None if p[k] is None else sgn * p[k] for p in pts]
                    bd = bd_rate([p["kbps"] for p in a_pts], q(a_pts), [p["kbps"] for p in v_pts], q(v_pts))
                    if bd is not None and sgn < 0:
                        bd = (bd[0], -bd[2], -bd[1])
                    cells.append(fmt_bd(bd, spec))
                L.append("| %s | %s | %s |" % (kind, LABEL[c], " | ".join(cells)))
        L += ["", "![RD curves, audio](%s)" % plot_aud, ""]
    L.append("<!-- rd:end -->")
    return "\n".join(L)


def write_section(path, section):
    text = open(path).read() if os.path.exists(path) else "# vqz benchmark results\n\n"
    if "<!-- rd:begin -->" in text:
        head, rest = text.split("<!-- rd:begin -->", 1)
        tail = rest.split("<!-- rd:end -->", 1)[1] if "<!-- rd:end -->" in rest else "\n"
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    open(path + ".tmp", "w").write(text)
    os.replace(path + ".tmp", path)


# ------------------------------------------------------------------------------------------------ main

def parallel(jobs, fn, items):
    """fn over items on `jobs` threads (each runs one single-threaded tool at a time); results in order."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        futs = [ex.submit(fn, it) for it in items]
        out = []
        for f in futs:
            out.append(f.result())
        return out


IMG_FIELDS = ["image", "codec", "level", "setting", "bytes", "bpp", "target_bpp", "met", "psnr", "psnr_y", "ms_ssim",
              "ms_ssim_y"]
AUD_FIELDS = ["clip", "kind", "codec", "setting", "bytes", "seconds", "kbps", "si_sdr", "snr", "mel_distance",
              "mel_distance_dac", "stft_distance", "visqol", "pesq", "stoi"]


def main_run(a):
    t0 = time.time()
    cfg = dict(QUICK if a.quick else FULL)
    bindir = os.path.join(ROOT, a.build, "bin")
    for t in ("vqz-enc", "vqz-dec", "vqz-eval"):
        BIN[t] = os.path.join(bindir, t)
        if not os.access(BIN[t], os.X_OK):
            sys.exit("rd: %s not built (run make)" % BIN[t])
    missing = [t for t in ("cjpeg", "djpeg", "cwebp", "dwebp", "avifenc", "avifdec", "cjxl", "djxl", "opusenc",
                           "opusdec", "c2enc", "c2dec", "sox", "soxi") if not shutil.which(t)]
    if missing:
        sys.exit("rd: missing tools: %s (run sh tools/install-deps.sh --bench)" % " ".join(missing))
    for what, path, var in (("image", a.image_model, "VQZ_RD_IMAGE_MODEL"), ("audio", a.audio_model, "VQZ_RD_AUDIO_MODEL")):
        if not getattr(a, "no_" + what + ("s" if what == "image" else "")) and not os.path.isfile(path):
            sys.exit("rd: %s model %s not found: pass --%s-model PATH or set %s" % (what, path, what, var))
    out = os.path.join(ROOT, "bench", "out")
    work = os.path.join(out, "rd-quick" if a.quick else "rd")
    for part in ("images", "audio"):
        if not getattr(a, "no_" + part):
            shutil.rmtree(os.path.join(work, part), ignore_errors=True)
            if os.path.exists(os.path.join(work, part + ".json")):
                os.remove(os.path.join(work, part + ".json"))
    os.makedirs(os.path.join(work, "bin"), exist_ok=True)
    for t in ("vqz-enc", "vqz-dec", "vqz-eval"):
        # a private copy: a rebuild of build/ during the run neither breaks it nor mixes two versions
        shutil.copy2(BIN[t], os.path.join(work, "bin", t))
        BIN[t] = os.path.join(work, "bin", t)
    cache = os.path.join(out, "rd-cache")
    os.makedirs(cache, exist_ok=True)
    run = Runner(a.threads)
    levels = {}
    img_rows, aud_rows = [], []
    pym = {}

    def save(part, kind, model, rows, t_start, **extra):
        rec = dict(quick=a.quick, cfg=cfg, model=model_info(model), levels=levels[kind], rows=rows,
                   date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                   elapsed_s=time.time() - t_start, jobs=a.jobs, **extra)
        with open(os.path.join(work, part + ".json.tmp"), "w") as f:
            json.dump(rec, f)
        os.replace(os.path.join(work, part + ".json.tmp"), os.path.join(work, part + ".json"))

    if not a.no_images:
        model = os.path.abspath(a.image_model)
        levels["image"] = level_list(model_levels(model), cfg["all_levels"])
        imgs = prepare_images(a.images, os.path.join(cache, "images"), cfg["images"])
        log("images: %d photographs, vqz at levels %s" % (len(imgs), levels["image"]))
        w = os.path.join(work, "images")
        vq = parallel(a.jobs, lambda im: vqz_image_task(run, model, levels["image"], im, w), imgs)
        for rows in vq:
            img_rows += rows
        log("images: vqz done (%.0f s); bisecting the other codecs" % (time.time() - t0))
        tasks = []
        for im, rows in zip(imgs, vq):
            targets = [(r["level"], r["bpp"]) for r in rows]
            for c in IMAGE_CODECS:
                tasks.append((c, im, targets))
        steps = cfg["int_steps"]
        res = parallel(a.jobs, lambda t: codec_image_task(run, t[0], t[1], t[2], w,
                                                          steps if t[0].knobs else cfg["float_steps"]), tasks)
        for rows in res:
            img_rows += rows
        write_csv(os.path.join(out, "rd_images%s.csv" % ("-quick" if a.quick else "")), img_rows, IMG_FIELDS)
        save("images", "image", model, img_rows, t0)
        log("images: done (%.0f s)" % (time.time() - t0))

    if not a.no_audio:
        model = os.path.abspath(a.audio_model)
        levels["audio"] = level_list(model_levels(model), cfg["all_levels"])
        t_audio = time.time()
        clips = (pick_clips(a.speech, "speech", cfg["speech"], cfg["clip_s"], cache)
                 + pick_clips(a.music, "music", cfg["music"], cfg["clip_s"], cache))
        clips = parallel(a.jobs, lambda c: prepare_clip(run, c, os.path.join(cache, "audio")), clips)
        log("audio: %d clips, vqz at levels %s" % (len(clips), levels["audio"]))
        w = os.path.join(work, "audio")
        tasks = [("vqz", c) for c in clips] + [("opus", c) for c in clips] + \
                [("codec2", c) for c in clips if c["kind"] == "speech"]

        def one(t):
            kind, c = t
            if kind == "vqz":
                rows = vqz_audio_task(run, os.path.abspath(a.audio_model), levels["audio"], c, w)
            elif kind == "opus":
                rows = opus_task(run, c, w)
            else:
                rows = codec2_task(run, c, w)
            for r in rows:
                r["ref"] = c["wav"]
            return rows
        for rows in parallel(a.jobs, one, tasks):
            aud_rows += rows
        log("audio: coded and measured (%.0f s); ViSQOL / PESQ / STOI" % (time.time() - t0))
        pym = probe_pymetrics(a.python)
        if a.no_pymetrics:
            pym = {m: "skipped (--no-pymetrics)" for m in pym}
        extra = run_pymetrics(a.python, aud_rows, pym, a.jobs, work, cache, a.threads)
        for r in aud_rows:
            e = extra.get(r["decoded"], {})
            for m in ("visqol", "pesq", "stoi"):
                r[m] = e.get(m)
        write_csv(os.path.join(out, "rd_audio%s.csv" % ("-quick" if a.quick else "")), aud_rows, AUD_FIELDS)
        save("audio", "audio", model, aud_rows, t_audio, pym=pym)
        log("audio: done (%.0f s)" % (time.time() - t0))

    return finish(work, a.quick, a.results, a.jobs)


def load_parts(work, images=None, audio=None):
    parts = {}
    for part, path in (("images", images), ("audio", audio)):
        path = path or os.path.join(work, part + ".json")
        if os.path.exists(path):
            with open(path) as f:
                parts[part] = json.load(f)
    return parts


def finish(work, quick, results=None, jobs=2, images=None, audio=None):
    """Plots and the RESULTS.md section from the parts a run saved (images.json, audio.json in its work
    folder); `rd.py report` redoes them, and can take a part from elsewhere."""
    parts = load_parts(work, images, audio)
    if not parts:
        sys.exit("rd: no measurements in %s" % work)
    out = os.path.join(ROOT, "bench", "out")
    plots_dir = out if quick else os.path.join(ROOT, "bench")
    plot_img = os.path.join(plots_dir, "rd_images.png")
    plot_aud = os.path.join(plots_dir, "rd_audio.png")
    if "images" in parts:
        p = parts["images"]
        plot_images(image_curves(p["rows"], p["levels"]), plot_img, len({r["image"] for r in p["rows"]}))
    if "audio" in parts:
        p = parts["audio"]
        plot_audio(audio_curves(p["rows"]), plot_aud, p["pym"].get("visqol") == "ok")
    results = results or (os.path.join(out, "RESULTS-quick.md") if quick else os.path.join(ROOT, "bench", "RESULTS.md"))
    here = os.path.dirname(os.path.abspath(results))
    section = report(parts, jobs, os.path.relpath(plot_img, here), os.path.relpath(plot_aud, here))
    write_section(results, section)
    print(section)
    log("wrote %s%s%s" % (results, ", " + plot_img if "images" in parts else "",
                          ", " + plot_aud if "audio" in parts else ""))
    return 0


def main():
    p = argparse.ArgumentParser(description="vqz rate-distortion benchmark (measurement only)")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the benchmark and write the CSVs, plots and the RESULTS.md section")
    r.add_argument("--quick", action="store_true", help="6 images, 6+6 five-second clips, coarser bisection; "
                   "writes bench/out/RESULTS-quick.md and the plots in bench/out/")
    r.add_argument("--image-model", default=os.environ.get("VQZ_RD_IMAGE_MODEL") or
                   os.path.join(ROOT, "samples/models/vqz-image-v1.safetensors"))
    r.add_argument("--audio-model", default=os.environ.get("VQZ_RD_AUDIO_MODEL") or
                   os.path.join(ROOT, "samples/models/vqz-audio-v1.safetensors"))
    r.add_argument("--images", default=os.path.join(ROOT, "data/images/val"))
    r.add_argument("--speech", default=os.path.join(ROOT, "data/speech/val"))
    r.add_argument("--music", default=os.path.join(ROOT, "data/music/val"))
    r.add_argument("--results", default=None, help="markdown file whose rd section is rewritten")
    r.add_argument("--build", default=os.environ.get("BUILD", "build"))
    r.add_argument("--jobs", type=int, default=2, help="tools run at once (default 2)")
    r.add_argument("--threads", type=int, default=1, help="threads per tool (default 1)")
    r.add_argument("--python", default=os.path.join(ROOT, "bench/out/pyenv/bin/python"),
                   help="interpreter with visqol-python, pesq and pystoi")
    r.add_argument("--no-images", action="store_true")
    r.add_argument("--no-audio", action="store_true")
    r.add_argument("--no-pymetrics", action="store_true", help="skip ViSQOL, PESQ and STOI")
    q = sub.add_parser("report", help="redo the plots and the RESULTS.md section from the last run's parts")
    q.add_argument("--quick", action="store_true", help="the last --quick run's")
    q.add_argument("--images", help="images part (default: bench/out/rd[-quick]/images.json)")
    q.add_argument("--audio", help="audio part (default: bench/out/rd[-quick]/audio.json)")
    q.add_argument("--results", help="markdown file whose rd section is rewritten")
    q.add_argument("--jobs", type=int, default=2)
    m = sub.add_parser("audio-metrics", help="(internal) ViSQOL/PESQ/STOI on the pairs of a JSON file")
    m.add_argument("pairs")
    a = p.parse_args()
    if a.cmd == "audio-metrics":
        return audio_metrics_worker(a.pairs)
    if a.cmd == "report":
        return finish(os.path.join(ROOT, "bench", "out", "rd-quick" if a.quick else "rd"), a.quick, a.results, a.jobs,
                      a.images, a.audio)
    return main_run(a)


if __name__ == "__main__":
    sys.exit(main())
