#!/usr/bin/python3
# torch_twin_bench.py — PyTorch side of `make bench`: times the PyTorch twin (tests/reference/vqz_torch.py)
# on the rows of bench/bench_nn.c (same architecture, same shapes, 2 threads by default).
# Runs with Debian's /usr/bin/python3 (python3-torch 1.13, numpy), offline, on the CPU, or with --device cuda
# on a GPU machine's PyTorch (TF32 off, timed with a device synchronisation after each run; --batch N for
# the encode/decode rows):
#   /usr/bin/python3 bench/torch_twin_bench.py ROW [--reps 3] [--threads 2] [--config JSON] [--json]
#   /usr/bin/python3 bench/torch_twin_bench.py all [--json]      (each row in its own process)
# ROW: image-train | image-encode | image-decode | audio-train | audio-encode | audio-decode.
"""Times the PyTorch twin of the vqz models; one JSON line per row with --json (bench_nn's fields)."""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROWS = ["image-train", "image-encode", "image-decode", "audio-train", "audio-encode", "audio-decode"]

# The realistic configurations of issue 3 (override with --config, e.g. with the C preset's JSON).
CONFIGS = {
    "image": {"kind": "image", "in_channels": 3, "channels": [64, 128, 192, 256], "strides": [2, 2, 2],
              "res_blocks": 2, "latent_dim": 64, "levels": 8, "codebook_size": 1024, "res_scale": 1.0,
              "activation": "silu", "weight_norm": False},
    "audio": {"kind": "audio", "in_channels": 1, "channels": [32, 64, 128, 256, 512], "strides": [2, 4, 5, 8],
              "res_blocks": 3, "latent_dim": 128, "levels": 8, "codebook_size": 1024, "activation": "elu",
              "weight_norm": True, "sample_rate": 24000},
}
SHAPES = {"image-train": (16, 3, 128, 128), "image-encode": (1, 3, 512, 768), "image-decode": (1, 3, 512, 768),
          "audio-train": (8, 1, 24000), "audio-encode": (1, 1, 60 * 24000), "audio-decode": (1, 1, 60 * 24000)}
TRAIN = {"beta": 0.25, "lr": 1e-4, "weight_decay": 1e-4, "clip": 1.0, "ema_decay": 0.99, "ema_eps": 1e-5,
         "dead_threshold": 0.0, "stft_weight": 1.0, "fft_sizes": [512, 1024, 2048]}


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_row(row, reps, threads, cfg_override, device="cpu", batch=1):
    import torch
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
    import vqz_torch as V

    torch.set_num_threads(threads)
    kind, what = row.split("-")
    cfg = dict(cfg_override) if cfg_override else dict(CONFIGS[kind])
    if cfg["kind"] != kind:
        raise SystemExit("torch_twin_bench: config kind %s for row %s" % (cfg["kind"], row))
    shape = SHAPES[row]
    if batch > 1 and what != "train":
        shape = (batch,) + tuple(shape[1:])
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(1)
    g = torch.Generator().manual_seed(1)
    model = V.VQZModel(cfg)
    V.init_weights(model, g)
    with torch.no_grad():
        model.rvq.codebooks.copy_(torch.randn(model.rvq.codebooks.shape, generator=g) * 0.1)
    model.rvq.reset_ema()
    model.to(dev)
    x = (torch.rand(shape, generator=g) * 1.6 - 0.8).to(dev)
    f = V.total_stride(cfg)
    lat = [shape[0], cfg["latent_dim"]] + [s // f for s in shape[2:]]
    S = 1
    for s in lat[2:]:
        S *= s
    idx = torch.randint(cfg["codebook_size"], (cfg["levels"], shape[0], S), generator=g).to(dev)
    tcfg = dict(TRAIN)
    if kind == "image":
        tcfg.pop("fft_sizes")
    opt = V.make_optimizer(model, tcfg["lr"], tcfg["weight_decay"]) if what == "train" else None
    base_rss = rss_mb()

    def once():
        if what == "train":
            V.train_step(model, x, tcfg, opt=opt, exact=False, ema=True, record=False)
        elif what == "encode":
            with torch.inference_mode():
                model.rvq.encode(model.enc(x), exact=False)
        else:
            with torch.inference_mode():
                model.dec(model.rvq.decode(idx, lat))

    times, cpu = [], []
    for _ in range(reps + 1):          # run 0 warms up (allocator, primitive caches)
        t0, c0 = time.perf_counter(), time.process_time()
        once()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    rest = sorted(times[1:])
    cpu_med = sorted(cpu[1:])[len(rest) // 2]   # CPU seconds of all threads: less sensitive to other load
    load = os.getloadavg()[0]   # other processes on the machine inflate the times: keep it with them
    return {"impl": "torch", "row": row, "n": shape[0], "h": shape[2], "w": shape[3] if len(shape) > 3 else 1,
            "threads": torch.get_num_threads(), "median_s": rest[len(rest) // 2], "min_s": rest[0],
            "first_s": times[0], "cpu_s": cpu_med, "reps": reps, "peak_rss_mb": rss_mb(), "base_rss_mb": base_rss,
            "loadavg_1m": load, "torch": torch.__version__, "config": cfg, "device": device,
            "gpu_peak_mb": torch.cuda.max_memory_allocated() / 1048576.0 if dev.type == "cuda" else 0.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("row", choices=ROWS + ["all"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", help="model config JSON (a string or a file) replacing the built-in one")
    ap.add_argument("--json", action="store_true", help="one JSON line per row")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--batch", type=int, default=1, help="items per encode/decode run")
    ap.add_argument("--label", help="name of the architecture, echoed in the JSON line (as bench_nn does)")
    a = ap.parse_args()
    cfg = None
    if a.config:
        cfg = json.loads(open(a.config).read() if os.path.exists(a.config) else a.config)
    if a.row == "all":
        # one process per row, so each row's peak RSS is its own
        for row in ROWS:
            cmd = [sys.executable, os.path.abspath(__file__), row, "--reps", str(a.reps),
                   "--threads", str(a.threads), "--json"]
            if a.config and cfg["kind"] == row.split("-")[0]:
                cmd += ["--config", json.dumps(cfg)]
            out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
            r = json.loads(out.splitlines()[-1])
            print(out if a.json else "%-13s median %8.3f s  min %8.3f s  cpu %8.3f s  peak RSS %7.1f MB (base %.1f MB)  load %.1f"
                  % (row, r["median_s"], r["min_s"], r["cpu_s"], r["peak_rss_mb"], r["base_rss_mb"],
                     r["loadavg_1m"]), flush=True)
        return
    r = run_row(a.row, a.reps, a.threads, cfg, a.device, a.batch)
    r["label"] = a.label or "%s-base" % a.row.split("-")[0]
    if a.json:
        print(json.dumps(r))
    else:
        print("%-13s median %8.3f s  min %8.3f s  first %8.3f s  peak RSS %7.1f MB (base %.1f MB), %d threads, "
              "load %.1f" % (r["row"], r["median_s"], r["min_s"], r["first_s"], r["peak_rss_mb"], r["base_rss_mb"],
                             r["threads"], r["loadavg_1m"]))


if __name__ == "__main__":
    main()
