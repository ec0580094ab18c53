#!/usr/bin/python3
# check_golden.py — reloads tests/golden/model_*.safetensors and checks them: (1) a model built from
# the stored config and weights reproduces every stored output, (2) independent numpy recomputations
# of the RVQ, losses, clipping, AdamW and EMA formulas agree, (3) float64 finite differences agree
# with the gradients. Guards against stale or inconsistent golden files.
# Runs with Debian's /usr/bin/python3 (python3-torch 1.13, numpy), offline, CPU only:
#   /usr/bin/python3 tests/reference/check_golden.py [files...]
"""Checks the golden files; exits 1 on the first inconsistency."""

import glob
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vqz_torch as V  # noqa: E402

F32_TOL = 2e-5       # make_golden.py keeps only cases where plain float32 lands this close
OUTPUT_NAMES = {"input", "z", "indices", "zq", "y", "dloss.y", "dloss.z"}
FAILS = []


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return math.inf
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)) if b.size else 0.0


def expect(case, what, err, tol):
    ok = err <= tol
    print("  %-4s %-40s rel %.2e (tol %.0e)" % ("ok" if ok else "FAIL", what, err, tol))
    if not ok:
        FAILS.append("%s: %s rel %.3g > %.0g" % (case, what, err, tol))


def expect_true(case, what, cond):
    print("  %-4s %s" % ("ok" if cond else "FAIL", what))
    if not cond:
        FAILS.append("%s: %s" % (case, what))


def np_t(t):
    return t.detach().numpy()


# ------------------------------------------------------------------------ independent numpy formulas

def np_vectors(z):
    N, D = z.shape[0], z.shape[1]
    return z.reshape(N, D, -1).transpose(0, 2, 1).reshape(-1, D)


def np_rvq(z, cb):
    """Spec §5 with float32 residuals and float64 distances: indices [L, M], residuals r_l, codewords."""
    r = np_vectors(z).astype(np.float32)
    idx, rs, qs = [], [], []
    for l in range(cb.shape[0]):
        d = ((r.astype(np.float64)[:, None, :] - cb[l].astype(np.float64)[None]) ** 2).sum(-1)
        i = np.argmin(d, axis=1)
        q = cb[l][i]
        idx.append(i)
        rs.append(r)
        qs.append(q)
        r = (r - q).astype(np.float32)
    return np.stack(idx), rs, qs


def np_stft_mag(sig, n):
    hop = n // 4
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
    frames = (sig.shape[-1] - n) // hop + 1
    seg = np.stack([sig[:, f * hop:f * hop + n] for f in range(frames)], axis=1) * win
    X = np.fft.rfft(seg, axis=-1)
    return np.sqrt(X.real ** 2 + X.imag ** 2 + 1e-7)


def np_stft_loss(x, y, sizes):
    xs = x.reshape(-1, x.shape[-1]).astype(np.float64)
    ys = y.reshape(-1, y.shape[-1]).astype(np.float64)
    tot = 0.0
    for n in sizes:
        mx, my = np_stft_mag(xs, n), np_stft_mag(ys, n)
        tot += np.linalg.norm(my - mx) / np.linalg.norm(my) + np.abs(np.log(my) - np.log(mx)).mean()
    return tot / len(sizes)


def np_adamw(p, g, m, v, t, lr, wd, b1, b2, eps):
    """nn/adamw.h: p -= lr wd p; m, v moments; p -= lr (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)."""
    p = p * (1 - lr * wd)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return p, m, v


def np_clip(grads, max_norm):
    norm = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads.values()))
    c = max_norm / (norm + 1e-6)
    if c < 1:
        grads = {k: g * c for k, g in grads.items()}
    return grads, norm


def np_ema(z, idx, cb, decay, eps):
    """nn/rvq.h EMA from count = 1, sum = codebook; residuals from the pre-update codebooks."""
    L, K, D = cb.shape
    r = np_vectors(z).astype(np.float64)
    count = np.ones((L, K))
    ssum = cb.astype(np.float64).copy()
    new = cb.astype(np.float64).copy()
    for l in range(L):
        i = idx[l].reshape(-1)
        n_k = np.bincount(i, minlength=K).astype(np.float64)
        s_k = np.zeros((K, D))
        np.add.at(s_k, i, r)
        count[l] = decay * count[l] + (1 - decay) * n_k
        ssum[l] = decay * ssum[l] + (1 - decay) * s_k
        total = count[l].sum()
        new[l] = ssum[l] / ((count[l] + eps) / (total + K * eps) * total)[:, None]
        r = r - cb[l].astype(np.float64)[i]
    return new, count, ssum


# --------------------------------------------------------------------------------------- model cases

def check_model(path, t, meta):
    case = meta["case"]
    cfg = json.loads(meta["config"])
    tcfg = json.loads(meta["train"])
    expect_true(case, "config has exactly the spec keys for %s" % cfg["kind"],
                list(cfg.keys()) == V.CONFIG_KEYS[cfg["kind"]])
    model = V.VQZModel(cfg)
    names = set(model.state_dict().keys())
    pnames = [n for n, _ in model.named_parameters()]
    stored = {k for k in t if not k.startswith(("grad.", "step1.", "ema.")) and k not in OUTPUT_NAMES}
    expect_true(case, "bundle tensors == model state_dict names (%d)" % len(names), stored == names)
    expect_true(case, "every trainable parameter has grad.* and step1.*",
                all(("grad." + n) in t and ("step1." + n) in t for n, _ in model.named_parameters()))
    x = t["input"]
    L = cfg["levels"]
    N = x.shape[0]
    f = V.total_stride(cfg)
    S = int(np.prod([s // f for s in x.shape[2:]]))
    expect_true(case, "indices int32 [L,N,S] = %s" % [L, N, S],
                t["indices"].dtype == torch.int32 and list(t["indices"].shape) == [L, N, S])

    # (1) the twin rebuilt from the file reproduces every output: in float64 (how the references
    # were made) to the rounding of the stored float32 values, in float32 to F32_TOL
    for dt, tol in ((torch.float64, 1e-6), (torch.float32, F32_TOL)):
        tag = "rebuilt f%d:" % (64 if dt == torch.float64 else 32)
        model = V.VQZModel(cfg)
        model.load_state_dict({n: t[n] for n in names}, strict=True)
        model.to(dt)
        model.rvq.reset_ema()
        opt = V.make_optimizer(model, tcfg["lr"], tcfg["weight_decay"], tuple(tcfg["betas"]), tcfg["adam_eps"])
        out = V.train_step(model, x.to(dt), tcfg, opt=opt, exact=True, ema=True)
        expect_true(case, tag + " indices equal", torch.equal(out["idx"].int(), t["indices"]))
        for k, o in (("z", "z"), ("zq", "zq"), ("y", "y"), ("dloss.y", "dy"), ("dloss.z", "dz")):
            expect(case, tag + " " + k, rel(out[o], t[k]), tol)
        for k in ["recon", "commit", "total"] + sorted(out["parts"]):
            o = out[k] if k in out else out["parts"][k]
            expect(case, tag + " loss.%s" % k, rel(float(o), float(meta["loss." + k])), tol)
        expect(case, tag + " grad_norm", rel(out["grad_norm"], float(meta["grad_norm"])), tol)
        expect(case, tag + " grads (worst tensor)",
               max(rel(out["grads"][n], t["grad." + n]) for n, _ in model.named_parameters()), tol)
        expect(case, tag + " step1 (worst tensor)",
               max(rel(p.detach(), t["step1." + n]) for n, p in model.named_parameters()), tol)
        expect(case, tag + " ema.codebooks", rel(model.rvq.codebooks, t["ema.codebooks"]), tol)
        expect(case, tag + " ema.count", rel(model.rvq.ema_count, t["ema.count"]), tol)
        expect(case, tag + " ema.sum", rel(model.rvq.ema_sum, t["ema.sum"]), tol)
        with torch.no_grad():
            model.load_state_dict({n: t[n] for n in names}, strict=True)
            idx_inf, y_inf = model(x.to(dt))
            expect_true(case, tag + " inference: same indices", torch.equal(idx_inf.int(), t["indices"]))
            expect(case, tag + " inference: decode(indices) = y", rel(y_inf, t["y"]), tol)

    # (2) independent numpy recomputation from the stored tensors
    z, cb = np_t(t["z"]), np_t(t["rvq.codebooks"])
    idx, rs, qs = np_rvq(z, cb)
    expect_true(case, "numpy: indices = argmin of the residual chain",
                np.array_equal(idx, np_t(t["indices"]).reshape(L, -1)))
    zq = sum(q.astype(np.float64) for q in qs)
    expect(case, "numpy: zq = sum of chosen codewords",
           rel(zq, np_vectors(np_t(t["zq"]).astype(np.float64))), 1e-6)
    commit = tcfg["beta"] * np.mean([np.mean((r.astype(np.float64) - q) ** 2) for r, q in zip(rs, qs)])
    expect(case, "numpy: loss.commit", rel(commit, float(meta["loss.commit"])), 1e-5)
    y, xx = np_t(t["y"]).astype(np.float64), np_t(x).astype(np.float64)
    if cfg["kind"] == "image":
        recon = np.mean((y - xx) ** 2)
        expect(case, "numpy: dloss.y = 2 (y - x) / numel", rel(2 * (y - xx) / y.size, np_t(t["dloss.y"])), 1e-5)
    else:
        l1 = np.mean(np.abs(y - xx))
        st = np_stft_loss(y, xx, tcfg["fft_sizes"])
        expect(case, "numpy: loss.l1", rel(l1, float(meta["loss.l1"])), 1e-5)
        expect(case, "numpy: loss.stft (rfft framing)", rel(st, float(meta["loss.stft"])), 1e-5)
        recon = l1 + tcfg["stft_weight"] * st
    expect(case, "numpy: loss.recon", rel(recon, float(meta["loss.recon"])), 1e-5)
    expect(case, "numpy: loss.total = recon + commit",
           rel(recon + commit, float(meta["loss.total"])), 1e-5)
    grads = {n: np_t(t["grad." + n]).astype(np.float64) for n in pnames}
    grads, norm = np_clip(grads, tcfg["clip"])
    expect(case, "numpy: grad_norm", rel(norm, float(meta["grad_norm"])), 1e-7)
    worst = 0.0
    for n in pnames:
        wd = tcfg["weight_decay"] if V.is_decayed(n) else 0.0
        p0 = np_t(t[n]).astype(np.float64)
        p1, _, _ = np_adamw(p0, grads[n], 0.0, 0.0, 1, tcfg["lr"], wd, tcfg["betas"][0], tcfg["betas"][1],
                            tcfg["adam_eps"])
        worst = max(worst, rel(p1, np_t(t["step1." + n])))
    expect(case, "numpy: step1 = AdamW(clip(grad)) (worst tensor)", worst, 1e-6)
    new, count, ssum = np_ema(z, idx, cb, tcfg["ema_decay"], tcfg["ema_eps"])
    expect(case, "numpy: ema.codebooks", rel(new, np_t(t["ema.codebooks"])), 1e-6)
    expect(case, "numpy: ema.count", rel(count, np_t(t["ema.count"])), 1e-6)
    expect(case, "numpy: ema.sum", rel(ssum, np_t(t["ema.sum"])), 1e-6)

    # (3) float64 central differences on a few parameter elements of every kind
    m64 = V.VQZModel(cfg).double()
    m64.load_state_dict({n: t[n].double() for n in names}, strict=True)
    x64 = x.double()
    tc = dict(tcfg, clip=0)

    # the straight-through estimator is not a derivative of the forward value (zq is piecewise
    # constant in z); differentiate its surrogate instead: dec(z + e) with e = zq - z frozen at the
    # base point, which has the same value there and exactly the straight-through gradient
    with torch.no_grad():
        z_base = m64.enc(x64)
        e = m64.rvq.train_forward(z_base, tc["beta"], exact=True)[1] - z_base

    def loss_of():
        z = m64.enc(x64)
        _, _, idx, commit = m64.rvq.train_forward(z, tc["beta"], exact=True)
        if not torch.equal(idx.int(), t["indices"]):
            raise RuntimeError("finite-difference step changed an index")
        y = m64.dec(z + e)
        return V.recon_loss(cfg["kind"], y, x64, tc)[0] + commit

    m64.zero_grad()
    loss_of().backward()
    g = torch.Generator().manual_seed(7)
    picks = [n for n in pnames if n.endswith((".bias", ".weight_g", ".alpha"))][:3] + \
            [n for n in pnames if n.startswith("enc.") and n.endswith(("weight", "weight_v"))][:2] + \
            [n for n in pnames if n.startswith("dec.") and n.endswith(("weight", "weight_v"))][-2:]
    params = dict(m64.named_parameters())
    worst_fd, worst_32 = 0.0, 0.0
    for n in picks:
        p = params[n]
        scale = float(p.grad.abs().max())
        for _ in range(2):
            k = int(torch.randint(p.numel(), (1,), generator=g))
            h = 1e-6
            with torch.no_grad():
                old = float(p.view(-1)[k])
                p.view(-1)[k] = old + h
                lp = float(loss_of())
                p.view(-1)[k] = old - h
                lm = float(loss_of())
                p.view(-1)[k] = old
            fd = (lp - lm) / (2 * h)
            worst_fd = max(worst_fd, abs(fd - float(p.grad.view(-1)[k])) / scale)
            worst_32 = max(worst_32, abs(float(t["grad." + n].view(-1)[k]) - float(p.grad.view(-1)[k])) / scale)
    expect(case, "float64 finite differences vs autograd (%d params)" % (2 * len(picks)), worst_fd, 1e-6)
    expect(case, "stored grads vs float64 autograd (same elements)", worst_32, 1e-6)


def check_adamw(path, t, meta):
    case = meta["case"]
    tc = json.loads(meta["train"])
    p = {"w": np_t(t["p0.w"]).astype(np.float64), "b": np_t(t["p0.b"]).astype(np.float64)}
    m = {k: 0.0 for k in p}
    v = {k: 0.0 for k in p}
    for s in range(1, tc["steps"] + 1):
        grads = {k: np_t(t["g%d.%s" % (s, k)]).astype(np.float64) for k in p}
        grads, norm = np_clip(grads, tc["clip"])
        expect(case, "grad_norm.%d" % s, rel(norm, float(meta["grad_norm.%d" % s])), 1e-9)
        for k in p:
            p[k], m[k], v[k] = np_adamw(p[k], grads[k], m[k], v[k], s, tc["lr"], tc["weight_decay"][k],
                                        tc["betas"][0], tc["betas"][1], tc["adam_eps"])
            expect(case, "p%d.%s" % (s, k), rel(p[k], np_t(t["p%d.%s" % (s, k)])), 1e-6)


def main():
    torch.set_num_threads(1)
    here = os.path.dirname(os.path.abspath(__file__))
    files = sys.argv[1:] or sorted(glob.glob(os.path.join(here, "..", "golden", "model_*.safetensors")))
    if not files:
        print("no golden files found")
        return 1
    for path in files:
        t, meta = V.read_safetensors(path)
        print("%s (%s)" % (os.path.relpath(path), meta.get("case")))
        if meta.get("format") != "vqz-golden-1":
            FAILS.append("%s: format %r" % (path, meta.get("format")))
            continue
        (check_adamw if meta["case"] == "adamw" else check_model)(path, t, meta)
    print("%d failure(s)" % len(FAILS))
    for f in FAILS:
        print("  " + f)
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
