#!/usr/bin/python3
# report_nn.py — turns bench/out/nn.jsonl (vqz and PyTorch rows) into the engine speed table and writes
# it into bench/RESULTS.md between the "nn-speed" markers. Measurement only (Debian /usr/bin/python3,
# standard library). Usage: report_nn.py nn.jsonl RESULTS.md
import json
import os
import platform
import subprocess
import sys
import time

ROWS = [("image-train", "image: training step, 16×3×128×128", 0.8),
        ("image-encode", "image: encode 768×512", 1.0),
        ("image-decode", "image: decode 768×512", 1.0),
        ("audio-train", "audio: training step, 8×1 s @ 24 kHz", 0.8),
        ("audio-encode", "audio: encode 60 s", 1.0),
        ("audio-decode", "audio: decode 60 s", 1.0)]


def cpu_name():
    """The CPU's name and its widest vector ISA: oneDNN's kernels, and so every figure, depend on it."""
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    isa = "AVX-512" + (" with BF16" if "avx512_bf16" in flags else "") if "avx512f" in flags else \
        "AVX2, no AVX-512" if "avx2" in flags else "no AVX2"
    return "%s (%s)" % (name, isa)


def pair(rows, key, label):
    return rows.get((True, key, label)), rows.get((False, key, label))


def describe(r):
    what = r["row"].split("-")[1]
    if r["row"].startswith("image"):
        return "%s, %d×%d×%d" % ("training step" if what == "train" else what, r["n"], r["h"], r["w"])
    return "%s, %d × %g s" % ("training step" if what == "train" else what, r["n"], r["h"] / 24000)


def throughput(r):
    """Samples per second for a training step; MPixel/s or times real time for decoding and encoding."""
    t = r["median_s"]
    if r["row"].endswith("train"):
        return "%.2f samples/s" % (r["n"] / t)
    if r["row"].startswith("image"):
        return "%.2f MPixel/s" % (r["n"] * r["h"] * r["w"] / t / 1e6)
    return "%.1f× real time" % (r["n"] * r["h"] / 24000 / t)


def main():
    rows = {}
    for line in open(sys.argv[1]):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            label = r.get("label") or "%s-base" % r["row"].split("-")[0]
            rows[(r["impl"] == "vqz", r["row"], label)] = r
    out = ["<!-- nn-speed:begin -->",
           "### Engine speed vs PyTorch (`make bench`)",
           "",
           "Machine: %s, %d cores visible, %s threads; PyTorch %s. Median of %s timed runs after one warm-up; "
           "peak RSS of the row's own process." % (cpu_name(), os.cpu_count() or 0,
                                                   next((str(r.get("threads")) for r in rows.values()), "?"),
                                                   next((r.get("torch", "?") for r in rows.values() if r.get("impl") != "vqz"), "?"),
                                                   os.environ.get("VQZ_BENCH_REPS", "5")),
           "Measured %s." % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "",
           "| row | vqz (s) | PyTorch (s) | ratio PyTorch/vqz | must | vqz peak MB | PyTorch peak MB |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for key, label, must in ROWS:
        a, b = pair(rows, key, key.split("-")[0] + "-base")
        if not a or not b:
            out.append("| %s | %s | %s | – | %.1f | – | – |" % (label, "%.3f" % a["median_s"] if a else "–",
                                                              "%.3f" % b["median_s"] if b else "–", must))
            continue
        ratio = b["median_s"] / a["median_s"]
        out.append("| %s | %.3f | %.3f | **%.2f** %s | %.1f | %.0f | %.0f |" % (
            label, a["median_s"], b["median_s"], ratio, "✓" if ratio >= must else "✗", must,
            a["peak_rss_mb"], b["peak_rss_mb"]))
    shipped = sorted({(k[1], k[2]) for k in rows if not k[2].endswith("-base")})
    if shipped:
        out += ["",
                "The shipped models' own architectures (`vqz-train`'s step, and decoding), same runs:",
                "",
                "| architecture | row | vqz (s) | PyTorch (s) | ratio | vqz throughput | PyTorch throughput | vqz peak MB |",
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for key, label in shipped:
            a, b = pair(rows, key, label)
            if not a:
                continue
            out.append("| %s | %s | %.3f | %s | %s | %s | %s | %.0f |" % (
                label, describe(a), a["median_s"], "%.3f" % b["median_s"] if b else "–",
                "**%.2f**" % (b["median_s"] / a["median_s"]) if b else "–", throughput(a),
                throughput(b) if b else "–", a["peak_rss_mb"]))
    out.append("<!-- nn-speed:end -->")
    table = "\n".join(out)
    path = sys.argv[2]
    text = open(path).read() if os.path.exists(path) else "# vqz benchmark results\n\n"
    if "<!-- nn-speed:begin -->" in text:
        head, rest = text.split("<!-- nn-speed:begin -->", 1)
        tail = rest.split("<!-- nn-speed:end -->", 1)[1] if "<!-- nn-speed:end -->" in rest else ""
        text = head + table + tail
    else:
        text = text.rstrip("\n") + "\n\n" + table + "\n"
    open(path + ".tmp", "w").write(text)
    os.replace(path + ".tmp", path)
    print(table)


if __name__ == "__main__":
    main()
