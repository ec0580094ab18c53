#!/usr/bin/python3
# receptive_field.py — measures how far a one-pixel / one-sample change spreads through the encoder and
# decoder of the PyTorch twin and compares it with the halo formula of spec/models.md §7.
# Runs with Debian's /usr/bin/python3 (python3-torch 1.13, numpy), offline, on the CPU:
#   /usr/bin/python3 tests/reference/receptive_field.py [--json]
"""Empirical receptive fields of the vqz models versus spec §7.

Two measurements per network:
  support: the exact set of outputs that depend on one input. Weights are set positive (1/fan_in), biases
    0, the input is 0 except one element set to 1: every activation maps 0 to 0 and positives to
    positives, so an output is non-zero exactly when some path reaches it (no cancellation, no rounding
    to zero). This is the halo that makes tiled coding bit-identical to whole-input coding.
  visible: spec §6 random weights, a random input, one element changed by 1e-3 (float64); the outputs
    whose change exceeds 1e-7 of the largest change (what float32 arithmetic can notice).
Encoder: perturbing input position p changes latents qa..qb; latent q needs the input [q f - left,
(q+1) f - 1 + right], so left = max(qb f - p), right = max(p - (qa+1) f + 1) over every phase p mod f.
Decoder: perturbing latent q changes outputs a..b, whose latent cells are floor(a/f)..floor(b/f); a cell
u needs latents u - left .. u + right, so left = floor(b/f) - q, right = q - floor(a/f).
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vqz_torch as V  # noqa: E402

CONFIGS = {
    "image-tiny": {"kind": "image", "in_channels": 3, "channels": [8, 12, 14], "strides": [2, 2],
                   "res_blocks": 1, "latent_dim": 4, "levels": 3, "codebook_size": 16, "res_scale": 0.5,
                   "activation": "silu", "weight_norm": False},
    "audio-tiny": {"kind": "audio", "in_channels": 1, "channels": [4, 8, 16], "strides": [2, 4],
                   "res_blocks": 2, "latent_dim": 4, "levels": 3, "codebook_size": 16, "activation": "elu",
                   "weight_norm": False, "sample_rate": 24000},
    "image-base": {"kind": "image", "in_channels": 3, "channels": [64, 128, 192, 256], "strides": [2, 2, 2],
                   "res_blocks": 2, "latent_dim": 64, "levels": 8, "codebook_size": 1024, "res_scale": 1.0,
                   "activation": "silu", "weight_norm": False},
    "audio-base": {"kind": "audio", "in_channels": 1, "channels": [32, 64, 128, 256, 512],
                   "strides": [2, 4, 5, 8], "res_blocks": 3, "latent_dim": 128, "levels": 8,
                   "codebook_size": 1024, "activation": "elu", "weight_norm": False, "sample_rate": 24000},
}


@torch.no_grad()
def probe_weights(model):
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d)):
            m.weight.fill_(1.0 / (m.weight[0].numel()))
            m.bias.zero_()
    for n, p in model.named_parameters():
        if n.endswith(".alpha"):
            p.fill_(1.0)


def changed(a, b, mode):
    """Boolean mask over positions (channels reduced) of outputs that differ."""
    d = (a - b).abs().amax(dim=1)                       # [N, ...]
    if mode == "support":
        return d > 0
    return d > 1e-7 * d.amax()


def extent(mask_1d):
    nz = torch.nonzero(mask_1d).reshape(-1)
    return int(nz.min()), int(nz.max())


@torch.no_grad()
def measure(cfg, mode):
    """Returns (enc_left, enc_right) in input units and (dec_left, dec_right) in latent units; image
    radii are the maximum over both axes."""
    model = V.VQZModel(cfg).double()
    if mode == "support":
        probe_weights(model)
    else:
        V.init_weights(model, torch.Generator().manual_seed(5))
        model.double()
    f = V.total_stride(cfg)
    he, hd = V.halo_formula(cfg)
    image = cfg["kind"] == "image"
    g = torch.Generator().manual_seed(9)
    delta = 1.0 if mode == "support" else 1e-3

    # encoder: one batch item per phase p mod f (images: the diagonal phase (p, p))
    n_lat = 2 * int(math.ceil(he / f)) + 6
    side = n_lat * f
    c = (n_lat // 2) * f
    shape = (f, cfg["in_channels"], side, side) if image else (f, 1, side)
    base = torch.zeros(shape, dtype=torch.float64) if mode == "support" else \
        (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1)
    x = base.clone()
    for ph in range(f):
        if image:
            x[ph, :, c + ph, c + ph] += delta
        else:
            x[ph, 0, c + ph] += delta
    m = changed(model.enc(x), model.enc(base), mode)
    left = right = -math.inf
    for ph in range(f):
        p = c + ph
        axes = [m[ph].any(dim=1), m[ph].any(dim=0)] if image else [m[ph]]
        for ax in axes:
            qa, qb = extent(ax)
            if qa == 0 or qb == ax.numel() - 1:
                raise RuntimeError("encoder change reached the border: enlarge the input")
            left, right = max(left, qb * f - p), max(right, p - (qa + 1) * f + 1)
    enc = (left, right)

    # decoder: one latent position (all D channels) changed
    n_lat = 2 * int(math.ceil(hd)) + 7
    q = n_lat // 2
    shape = (1, cfg["latent_dim"], n_lat, n_lat) if image else (1, cfg["latent_dim"], n_lat)
    base = torch.zeros(shape, dtype=torch.float64) if mode == "support" else \
        torch.randn(shape, generator=g, dtype=torch.float64)
    zq = base.clone()
    if image:
        zq[0, :, q, q] += delta
    else:
        zq[0, :, q] += delta
    m = changed(model.dec(zq), model.dec(base), mode)[0]
    axes = [m.any(dim=1), m.any(dim=0)] if image else [m]
    left = right = -math.inf
    for ax in axes:
        a, b = extent(ax)
        if a == 0 or b == ax.numel() - 1:
            raise RuntimeError("decoder change reached the border: enlarge the latent grid")
        left, right = max(left, b // f - q), max(right, q - a // f)
    return enc, (left, right), (he, hd)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    a = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    for name in a.configs.split(","):
        cfg = CONFIGS[name]
        for mode in ("support", "visible"):
            t0 = time.time()
            enc, dec, (he, hd) = measure(cfg, mode)
            r = {"config": name, "mode": mode, "enc_left": enc[0], "enc_right": enc[1], "enc_formula": he,
                 "dec_left": dec[0], "dec_right": dec[1], "dec_formula": hd, "seconds": round(time.time() - t0, 1)}
            rows.append(r)
            if a.json:
                print(json.dumps(r), flush=True)
            else:
                print("%-11s %-8s encoder halo left %5d right %5d (formula %7.2f) input units | "
                      "decoder halo left %3d right %3d (formula %6.3f) latent units  [%.0f s]"
                      % (name, mode, enc[0], enc[1], he, dec[0], dec[1], hd, r["seconds"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
