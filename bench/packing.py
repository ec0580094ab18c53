#!/usr/bin/env python3
"""packing.py - what the payload costs on real index streams: codes images or sounds with a model, once as .vqz 1.1
(each chunk as a zstd or a modelled frame, whichever is smaller) and once as 1.0 (zstd only), and prints per
level the bytes against the empirical 0th-order entropy of the indices (vqz-info --json), and how many
chunks were modelled. Measurement only; Debian's /usr/bin/python3, standard library.

  /usr/bin/python3 bench/packing.py [--audio] [--model M.safetensors] [DIR]

DIR defaults to bench/out/rd-cache/images (the validation photographs scaled to the 768x512 class by
bench/rd.sh), with --audio to bench/out/rd-cache/audio (its 10 s clips of the validation speech and music);
the model to samples/models/vqz-image-v1.safetensors, with --audio vqz-audio-v1."""
import argparse, collections, glob, json, os, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "bin")


def level_totals(files, fmt, model, tmp):
    tot = collections.defaultdict(lambda: [0, 0.0, 0, 0])  # bytes, entropy bytes, modelled, chunks
    for f in files:
        out = os.path.join(tmp, os.path.basename(f) + fmt + ".vqz")
        subprocess.run([os.path.join(BIN, "vqz-enc"), "-Q", "-f", "-m", model, "--format", fmt, f, "-o", out],
                       check=True)
        env = dict(os.environ, VQZ_MODEL_PATH=os.path.dirname(os.path.abspath(model)))
        info = json.loads(subprocess.run([os.path.join(BIN, "vqz-info"), "--json", out], check=True,
                                         capture_output=True, text=True, env=env).stdout)
        if "level_stats_missing" in info:
            sys.exit("packing: %s: %s" % (out, info["level_stats_missing"]))
        for e in info["level_stats"]:
            t = tot[e["level"]]
            t[0] += e["bytes"]
            t[1] += e["entropy_bytes"]
            t[2] += e["modelled_chunks"]
            t[3] += e["chunks"]
    return tot


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="?")
    ap.add_argument("--audio", action="store_true", help="code the 10 s clips of the folder instead of images")
    ap.add_argument("--model")
    a = ap.parse_args()
    kind = "audio" if a.audio else "image"
    a.images = a.images or os.path.join(ROOT, "bench/out/rd-cache", kind + ("" if a.audio else "s"))
    a.model = a.model or os.path.join(ROOT, "samples/models/vqz-%s-v1.safetensors" % kind)
    files = sorted(glob.glob(os.path.join(a.images, "*_10s.wav" if a.audio else "*.png")))
    if not files:
        sys.exit("packing: no inputs in %s (run bench/rd.sh --quick first, or name a folder)" % a.images)
    with tempfile.TemporaryDirectory() as tmp:
        new, old = level_totals(files, "1.1", a.model, tmp), level_totals(files, "1.0", a.model, tmp)
    print("%d %s files from %s, model %s" % (len(files), kind, a.images, a.model))
    print("| level | H0 bytes | 1.0 (zstd) over H0 | 1.1 over H0 | modelled chunks |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for lv in sorted(new):
        b, h, m, c = new[lv]
        print("| %d | %.0f | %+.1f %% | %+.1f %% | %d / %d |" % (lv, h, 100 * (old[lv][0] / h - 1), 100 * (b / h - 1), m, c))
    b, h = sum(t[0] for t in new.values()), sum(t[1] for t in new.values())
    O = sum(t[0] for t in old.values())
    print("| all | %.0f | %+.1f %% | %+.1f %% | |" % (h, 100 * (O / h - 1), 100 * (b / h - 1)))


if __name__ == "__main__":
    main()
