# vqz_torch.py — PyTorch twin of the vqz image and audio models, written from spec/models.md only,
# plus the training pieces the C engine is checked against (RVQ, EMA update, losses, AdamW, clipping).
# Runs with Debian's /usr/bin/python3 (python3-torch 1.13, numpy), offline, on the CPU. Reference
# and measurement only: the product is C.
"""PyTorch reference implementation of the vqz models (spec/models.md).

Module and parameter names are exactly the spec's tensor names, so `model.state_dict()` maps 1:1 to a
weight bundle (EMA state is kept out of the state dict: it belongs to a training checkpoint).
"""

import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIG_KEYS = {
    "image": ["kind", "in_channels", "channels", "strides", "res_blocks", "latent_dim", "levels",
              "codebook_size", "res_scale", "activation", "weight_norm"],
    "audio": ["kind", "in_channels", "channels", "strides", "res_blocks", "latent_dim", "levels",
              "codebook_size", "activation", "weight_norm", "sample_rate"],
}


def check_config(cfg):
    """Raises ValueError when cfg lacks a key or is inconsistent (spec §1)."""
    kind = cfg.get("kind")
    if kind not in CONFIG_KEYS:
        raise ValueError("config: kind must be image or audio, got %r" % (kind,))
    missing = [k for k in CONFIG_KEYS[kind] if k not in cfg]
    if missing:
        raise ValueError("config: missing keys %s" % missing)
    if len(cfg["channels"]) != len(cfg["strides"]) + 1:
        raise ValueError("config: len(channels) %d != len(strides) %d + 1"
                         % (len(cfg["channels"]), len(cfg["strides"])))
    if kind == "image":
        if any(s != 2 for s in cfg["strides"]):
            raise ValueError("config: image strides must all be 2, got %s" % cfg["strides"])
        if cfg["activation"] == "snake":
            raise ValueError("config: spec/models.md names no snake alpha tensors for images")
    if cfg["activation"] not in ("silu", "elu", "snake"):
        raise ValueError("config: unknown activation %r" % cfg["activation"])
    if kind == "audio":
        if any(c % 2 for c in cfg["channels"]):
            raise ValueError("config: audio channels must be even (ResUnit1d halves them): %s"
                             % cfg["channels"])


def total_stride(cfg):
    f = 1
    for s in cfg["strides"]:
        f *= s
    return f


# ----------------------------------------------------------------------------------- building blocks

class Snake(nn.Module):
    """snake(x) = x + sin^2(alpha_c x) / (alpha_c + 1e-9), alpha [C] (spec §2)."""

    def __init__(self, channels):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        a = self.alpha.view(1, -1, *([1] * (x.dim() - 2)))
        return x + torch.sin(a * x) ** 2 / (a + 1e-9)


class Fixed(nn.Module):
    """A parameter-free activation (silu or elu); holds no tensors, so it adds no names."""

    def __init__(self, name):
        super().__init__()
        self.name = name

    def forward(self, x):
        if self.name == "silu":
            return F.silu(x)
        if self.name == "elu":
            return F.elu(x, alpha=1.0)
        raise ValueError("activation %r" % self.name)


def make_act(name, channels):
    return Snake(channels) if name == "snake" else Fixed(name)


class Conv1dPad(nn.Conv1d):
    """conv1d(k, s, pl, pr, d): zero padding pl on the left and pr on the right (spec notation)."""

    def __init__(self, ci, co, k, stride, pl, pr, dilation):
        super().__init__(ci, co, k, stride=stride, padding=0, dilation=dilation, bias=True)
        self.pl, self.pr = pl, pr

    def forward(self, x):
        if self.pl == self.pr:          # let the convolution pad: no padded copy of x
            return F.conv1d(x, self.weight, self.bias, self.stride, self.pl, self.dilation)
        x = F.pad(x, (self.pl, self.pr))
        return F.conv1d(x, self.weight, self.bias, self.stride, 0, self.dilation)


class ConvTr1dCrop(nn.ConvTranspose1d):
    """convtr1d(k, s, cl, cr): ConvTranspose1d(stride=s, padding=0), then cl samples removed at the
    start and cr at the end (spec notation). Weight [Ci, Co, k]."""

    def __init__(self, ci, co, k, stride, cl, cr):
        super().__init__(ci, co, k, stride=stride, padding=0, bias=True)
        self.cl, self.cr = cl, cr

    def forward(self, x):
        y = F.conv_transpose1d(x, self.weight, self.bias, self.stride)
        return y[..., self.cl:y.shape[-1] - self.cr]


class ResBlock2d(nn.Module):
    """h = conv2(act(conv1(act(x)))); y = x + res_scale h (spec §2)."""

    def __init__(self, c, act, res_scale):
        super().__init__()
        self.act1 = make_act(act, c)
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1)
        self.act2 = make_act(act, c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1)
        self.res_scale = res_scale

    def forward(self, x):
        h = self.conv1(self.act1(x))
        h = self.conv2(self.act2(h))
        return x + self.res_scale * h


class ResUnit1d(nn.Module):
    """SEANet unit: h = conv2(act2(conv1(act1(x)))), conv1 C->C/2 k3 dilation d, conv2 C/2->C k1;
    y = x + h (spec §2)."""

    def __init__(self, c, d, act):
        super().__init__()
        self.act1 = make_act(act, c)
        self.conv1 = Conv1dPad(c, c // 2, 3, 1, d, d, d)
        self.act2 = make_act(act, c // 2)
        self.conv2 = Conv1dPad(c // 2, c, 1, 1, 0, 0, 1)

    def forward(self, x):
        h = self.conv1(self.act1(x))
        h = self.conv2(self.act2(h))
        return x + h


# ------------------------------------------------------------------------------------------ image model

class ImageEncStage(nn.Module):
    def __init__(self, ci, co, n_res, act, res_scale):
        super().__init__()
        self.res = nn.ModuleList([ResBlock2d(ci, act, res_scale) for _ in range(n_res)])
        self.down = nn.Conv2d(ci, co, 3, 2, 1)

    def forward(self, x):
        for b in self.res:
            x = b(x)
        return self.down(x)


class ImageDecStage(nn.Module):
    def __init__(self, ci, co, n_res, act, res_scale):
        super().__init__()
        self.up = nn.Conv2d(ci, co, 3, 1, 1)
        self.res = nn.ModuleList([ResBlock2d(co, act, res_scale) for _ in range(n_res)])

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.up(x)
        for b in self.res:
            x = b(x)
        return x


class ImageEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, S, R, act = cfg["channels"], len(cfg["strides"]), cfg["res_blocks"], cfg["activation"]
        rs = float(cfg["res_scale"])
        self.stem = nn.Conv2d(cfg["in_channels"], ch[0], 3, 1, 1)
        self.stages = nn.ModuleList([ImageEncStage(ch[i], ch[i + 1], R, act, rs) for i in range(S)])
        self.mid = nn.ModuleList([ResBlock2d(ch[S], act, rs) for _ in range(R)])
        self.proj_act = make_act(act, ch[S])
        self.proj = nn.Conv2d(ch[S], cfg["latent_dim"], 1, 1, 0)

    def forward(self, x):
        x = self.stem(x)
        for st in self.stages:
            x = st(x)
        for b in self.mid:
            x = b(x)
        return self.proj(self.proj_act(x))


class ImageDecoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, S, R, act = cfg["channels"], len(cfg["strides"]), cfg["res_blocks"], cfg["activation"]
        rs = float(cfg["res_scale"])
        self.proj = nn.Conv2d(cfg["latent_dim"], ch[S], 3, 1, 1)
        self.mid = nn.ModuleList([ResBlock2d(ch[S], act, rs) for _ in range(R)])
        # stages[i] maps C_{i+1} -> C_i; they run from S-1 down to 0
        self.stages = nn.ModuleList([ImageDecStage(ch[i + 1], ch[i], R, act, rs) for i in range(S)])
        self.out_act = make_act(act, ch[0])
        self.out = nn.Conv2d(ch[0], cfg["in_channels"], 3, 1, 1)

    def forward(self, x):
        x = self.proj(x)
        for b in self.mid:
            x = b(x)
        for i in reversed(range(len(self.stages))):
            x = self.stages[i](x)
        return self.out(self.out_act(x))


# ------------------------------------------------------------------------------------------ audio model

class AudioEncStage(nn.Module):
    def __init__(self, ci, co, s, n_res, act):
        super().__init__()
        self.res = nn.ModuleList([ResUnit1d(ci, 3 ** j, act) for j in range(n_res)])
        self.down_act = make_act(act, ci)
        self.down = Conv1dPad(ci, co, 2 * s, s, (s + 1) // 2, s // 2, 1)

    def forward(self, x):
        for u in self.res:
            x = u(x)
        return self.down(self.down_act(x))


class AudioDecStage(nn.Module):
    def __init__(self, ci, co, s, n_res, act):
        super().__init__()
        self.up_act = make_act(act, ci)
        self.up = ConvTr1dCrop(ci, co, 2 * s, s, (s + 1) // 2, s // 2)
        self.res = nn.ModuleList([ResUnit1d(co, 3 ** j, act) for j in range(n_res)])

    def forward(self, x):
        x = self.up(self.up_act(x))
        for u in self.res:
            x = u(x)
        return x


class AudioEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, st, R, act = cfg["channels"], cfg["strides"], cfg["res_blocks"], cfg["activation"]
        S = len(st)
        self.stem = Conv1dPad(cfg["in_channels"], ch[0], 7, 1, 3, 3, 1)
        self.stages = nn.ModuleList([AudioEncStage(ch[i], ch[i + 1], st[i], R, act) for i in range(S)])
        self.proj_act = make_act(act, ch[S])
        self.proj = Conv1dPad(ch[S], cfg["latent_dim"], 7, 1, 3, 3, 1)

    def forward(self, x):
        x = self.stem(x)
        for s in self.stages:
            x = s(x)
        return self.proj(self.proj_act(x))


class AudioDecoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, st, R, act = cfg["channels"], cfg["strides"], cfg["res_blocks"], cfg["activation"]
        S = len(st)
        self.proj = Conv1dPad(cfg["latent_dim"], ch[S], 7, 1, 3, 3, 1)
        self.stages = nn.ModuleList([AudioDecStage(ch[i + 1], ch[i], st[i], R, act) for i in range(S)])
        self.out_act = make_act(act, ch[0])
        self.out = Conv1dPad(ch[0], cfg["in_channels"], 7, 1, 3, 3, 1)

    def forward(self, x):
        x = self.proj(x)
        for i in reversed(range(len(self.stages))):
            x = self.stages[i](x)
        return self.out(self.out_act(x))


# ------------------------------------------------------------------------------------------------- RVQ

def rvq_nearest(r, cb, exact=True):
    """argmin_k ||r - cb_k||^2 for r [M, D], cb [K, D], ties to the smallest k.
    exact: distances of the float32 values evaluated in float64 as sums of squared differences (the
    decision the spec defines); otherwise the float32 GEMM form ||c||^2 - 2 r.c (fast, for benches)."""
    if exact:
        r64, c64 = r.detach().double(), cb.detach().double()
        out = torch.empty(r.shape[0], dtype=torch.long)
        step = max(1, (1 << 22) // max(1, cb.shape[0] * cb.shape[1]))
        for a in range(0, r.shape[0], step):
            d = ((r64[a:a + step, None, :] - c64[None, :, :]) ** 2).sum(-1)
            out[a:a + step] = torch.argmin(d, dim=1)   # first minimum on ties
        return out
    d = (cb * cb).sum(1)[None, :] - 2.0 * (r.detach() @ cb.t())
    return torch.argmin(d, dim=1)


def latent_vectors(z):
    """[N, D, ...] -> [N*S, D], vector order (n, s) with s the row-major latent position."""
    N, D = z.shape[0], z.shape[1]
    return z.reshape(N, D, -1).permute(0, 2, 1).reshape(-1, D)


def vectors_to_latent(v, shape):
    N, D = shape[0], shape[1]
    return v.reshape(N, -1, D).permute(0, 2, 1).reshape(shape)


class RVQ(nn.Module):
    """Residual vector quantizer (spec §5). rvq.codebooks [L, K, D] is a buffer: it follows the EMA
    update, never the gradient. The EMA state is kept outside the state dict."""

    def __init__(self, cfg):
        super().__init__()
        L, K, D = cfg["levels"], cfg["codebook_size"], cfg["latent_dim"]
        self.register_buffer("codebooks", torch.zeros(L, K, D))
        self.register_buffer("ema_count", torch.ones(L, K), persistent=False)
        self.register_buffer("ema_sum", torch.zeros(L, K, D), persistent=False)

    def reset_ema(self):
        """Initial EMA state: count = 1, sum = codeword."""
        self.ema_count.fill_(1.0)
        self.ema_sum.copy_(self.codebooks)

    def encode(self, z, n_levels=None, exact=True):
        """Indices [n, N, S] (int64) of the first n levels."""
        n = self.codebooks.shape[0] if n_levels is None else n_levels
        r = latent_vectors(z.detach())
        N = z.shape[0]
        idx = []
        for l in range(n):
            i = rvq_nearest(r, self.codebooks[l], exact)
            r = r - self.codebooks[l][i]
            idx.append(i.reshape(N, -1))
        return torch.stack(idx)

    def decode(self, idx, shape):
        """Sum of the chosen codewords, shaped like the latent `shape` [N, D, ...]."""
        acc = torch.zeros(idx.shape[1] * idx.shape[2], self.codebooks.shape[2],
                          dtype=self.codebooks.dtype)
        for l in range(idx.shape[0]):
            acc = acc + self.codebooks[l][idx[l].reshape(-1)]
        return vectors_to_latent(acc, shape)

    def train_forward(self, z, beta, n_levels=None, exact=True):
        """Training forward (spec §6): returns (zq_st, zq, idx, commit). zq_st = z + sg(zq - z) carries
        the straight-through gradient; commit = beta * mean_l mean((r_l - sg(q_l))^2), where r_l keeps
        its gradient path to z (the codewords are constants)."""
        n = self.codebooks.shape[0] if n_levels is None else n_levels
        r = latent_vectors(z)
        N = z.shape[0]
        idx, qsum, terms = [], None, []
        for l in range(n):
            i = rvq_nearest(r, self.codebooks[l], exact)
            q = self.codebooks[l][i].detach()
            terms.append(torch.mean((r - q) ** 2))
            r = r - q
            qsum = q if qsum is None else qsum + q
            idx.append(i.reshape(N, -1))
        zq = vectors_to_latent(qsum, z.shape)
        zq_st = z + (zq - z).detach()
        commit = beta * torch.stack(terms).mean()
        return zq_st, zq, torch.stack(idx), commit

    @torch.no_grad()
    def ema_update(self, z, idx, decay=0.99, eps=1e-5, dead_threshold=0.0, generator=None):
        """EMA codebook update of nn/rvq.h, level by level over the levels in idx:
            count = decay count + (1-decay) n_k;  sum = decay sum + (1-decay) sum_{assigned} r_l
            codeword = sum / ((count + eps) / (total + K eps) * total),  total = sum_k count
        r_l are the residuals of the encode that produced idx (codebooks before this update).
        Codewords with count < dead_threshold then split the busiest codeword that has residuals in the
        batch, when its count is at least 4 * dead_threshold: they move onto a random batch residual
        assigned to it and take half its count and sum (dead_threshold 0 disables restarts). Evaluated in
        float64, stored in the buffers' dtype. Returns the number of restarts per level."""
        K = self.codebooks.shape[1]
        r = latent_vectors(z.detach()).double()
        restarts = []
        old = self.codebooks.double().clone()
        for l in range(idx.shape[0]):
            i = idx[l].reshape(-1).long()
            n_k = torch.bincount(i, minlength=K).double()
            s_k = torch.zeros(K, r.shape[1], dtype=torch.float64).index_add_(0, i, r)
            count = decay * self.ema_count[l].double() + (1.0 - decay) * n_k
            ssum = decay * self.ema_sum[l].double() + (1.0 - decay) * s_k
            total = count.sum()
            smoothed = (count + eps) / (total + K * eps) * total
            cb = ssum / smoothed[:, None]
            nr = 0
            if dead_threshold > 0:
                for k in range(K):
                    if count[k] < dead_threshold:
                        present = (n_k > 0).clone()
                        present[k] = False
                        busy = int(torch.argmax(torch.where(present, count, -1.0))) if present.any() else -1
                        if busy < 0 or count[busy] < 4.0 * dead_threshold:
                            continue  # nothing worth splitting: it waits
                        members = torch.nonzero(i == busy).reshape(-1)
                        pick = int(torch.randint(members.numel(), (1,), generator=generator))
                        j = int(members[pick])
                        share = 0.5 * count[busy]
                        count[busy] -= share
                        ssum[busy] *= 0.5
                        cb[k] = r[j]
                        count[k] = share
                        ssum[k] = share * r[j]
                        nr += 1
            restarts.append(nr)
            self.ema_count[l].copy_(count)
            self.ema_sum[l].copy_(ssum)
            self.codebooks[l].copy_(cb)
            r = r - old[l][i]
        return restarts


# ----------------------------------------------------------------------------------------------- model

class VQZModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        check_config(cfg)
        self.cfg = dict(cfg)
        if cfg["kind"] == "image":
            self.enc, self.dec = ImageEncoder(cfg), ImageDecoder(cfg)
        else:
            self.enc, self.dec = AudioEncoder(cfg), AudioDecoder(cfg)
        self.rvq = RVQ(cfg)
        if cfg["weight_norm"]:
            for m in self.conv_modules():
                nn.utils.weight_norm(m, name="weight", dim=0)

    def conv_modules(self):
        return [m for m in self.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d))]

    def forward(self, x, n_levels=None):
        """Inference: x -> (indices, reconstruction)."""
        z = self.enc(x)
        idx = self.rvq.encode(z, n_levels)
        return idx, self.dec(self.rvq.decode(idx, z.shape))


def second_conv_names(model):
    """Module names of the second conv of every residual block/unit (init gain 0.1)."""
    return {n for n, m in model.named_modules()
            if isinstance(m, (ResBlock2d, ResUnit1d)) for n in [n + ".conv2"]}


@torch.no_grad()
def init_weights(model, generator):
    """Spec §6 initialisation (codebooks excepted): conv weights ~ N(0, (sqrt(2/fan_in) g)^2),
    fan_in = Ci k (k), Ci the conv's input channels, g = 0.1 on the second conv of each residual
    block/unit else 1; biases 0; weight_g = ||weight_v|| over all dims but the first; alpha = 1.
    Draws in named_modules() order, one tensor per conv."""
    second = second_conv_names(model)
    for name, m in model.named_modules():
        if not isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d)):
            continue
        ci = m.in_channels
        ksz = 1
        for k in m.kernel_size:
            ksz *= k
        sigma = math.sqrt(2.0 / (ci * ksz)) * (0.1 if name in second else 1.0)
        shape = (m.weight_v if hasattr(m, "weight_v") else m.weight).shape
        w = torch.randn(shape, generator=generator, dtype=torch.float32) * sigma
        if hasattr(m, "weight_v"):
            m.weight_v.copy_(w)
            m.weight_g.copy_(torch.norm_except_dim(w, 2, 0))
        else:
            m.weight.copy_(w)
        m.bias.zero_()
    for m in model.modules():
        if isinstance(m, Snake):
            m.alpha.fill_(1.0)


# ----------------------------------------------------------------------------------------------- losses

def stft_mag(sig, n):
    """|STFT| of [B, T] signals: periodic Hann of length n, hop n/4, no centring or padding,
    magnitude sqrt(re^2 + im^2 + 1e-7). Returns [B, n/2+1, frames]."""
    win = torch.hann_window(n, periodic=True, dtype=sig.dtype)
    S = torch.stft(sig, n_fft=n, hop_length=n // 4, win_length=n, window=win, center=False,
                   normalized=False, onesided=True, return_complex=True)
    ri = torch.view_as_real(S)
    return torch.sqrt(ri[..., 0] ** 2 + ri[..., 1] ** 2 + 1e-7)


def stft_loss(x, y, sizes):
    """Multi-resolution STFT loss (the C definition), x = model output, y = target, both [N, C, T]:
    L_n = ||m_y - m_x||_F / ||m_y||_F + mean|log m_y - log m_x|; total = mean over sizes."""
    xs, ys = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    terms = []
    for n in sizes:
        mx, my = stft_mag(xs, n), stft_mag(ys, n)
        sc = torch.linalg.norm((my - mx).reshape(-1)) / torch.linalg.norm(my.reshape(-1))
        lm = torch.mean(torch.abs(torch.log(my) - torch.log(mx)))
        terms.append(sc + lm)
    return torch.stack(terms).mean()


def recon_loss(kind, y, x, tcfg):
    """Returns (recon, parts): images mse(y, x); audio l1(y, x) + stft_weight * stft_loss(y, x)."""
    if kind == "image":
        mse = F.mse_loss(y, x)
        return mse, {"mse": mse}
    l1 = F.l1_loss(y, x)
    st = stft_loss(y, x, tcfg["fft_sizes"])
    return l1 + tcfg["stft_weight"] * st, {"l1": l1, "stft": st}


# ------------------------------------------------------------------------------------------- optimiser

def is_decayed(name):
    """Weight decay applies to conv weights (weight, weight_v) only."""
    return name.endswith(".weight") or name.endswith(".weight_v")


def make_optimizer(model, lr, wd, betas=(0.9, 0.999), eps=1e-8):
    """AdamW with two groups: conv weights with wd, everything else trainable (biases, weight_g,
    alpha) with 0. Codebooks are buffers, so never in the optimiser."""
    dec = [p for n, p in model.named_parameters() if is_decayed(n)]
    nodec = [p for n, p in model.named_parameters() if not is_decayed(n)]
    return torch.optim.AdamW([{"params": dec, "weight_decay": wd},
                              {"params": nodec, "weight_decay": 0.0}],
                             lr=lr, betas=betas, eps=eps)


def train_step(model, x, tcfg, opt=None, exact=True, ema=True, record=True):
    """One training step: forward, losses, backward, clip, AdamW (when opt), EMA (when ema).
    record: return copies of the intermediate tensors, every gradient and the float64 gradient norm
    (before the optimiser and EMA change state); otherwise only the losses and clip_grad_norm_'s norm."""
    model.zero_grad(set_to_none=True)
    z = model.enc(x)
    zq_st, zq, idx, commit = model.rvq.train_forward(z, tcfg["beta"], exact=exact)
    if record:
        z.retain_grad()
    y = model.dec(zq_st)
    if record:
        y.retain_grad()
    recon, parts = recon_loss(model.cfg["kind"], y, x, tcfg)
    total = recon + commit
    total.backward()
    out = {"recon": recon.detach(), "commit": commit.detach(), "total": total.detach(), "idx": idx,
           "parts": {k: v.detach() for k, v in parts.items()}}
    if record:
        params = [p for p in model.parameters() if p.grad is not None]
        out.update({"z": z.detach().clone(), "zq": zq.detach().clone(), "y": y.detach().clone(),
                    "dz": z.grad.detach().clone(), "dy": y.grad.detach().clone(),
                    "grads": {n: p.grad.detach().clone() for n, p in model.named_parameters()},
                    "grad_norm": math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in params))})
    if tcfg.get("clip", 0) > 0:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg["clip"])
        out.setdefault("grad_norm", float(norm))
    if opt is not None:
        opt.step()
    if ema:
        model.rvq.ema_update(z.detach(), idx, tcfg["ema_decay"], tcfg["ema_eps"],
                             tcfg.get("dead_threshold", 0.0))
    return out


# ------------------------------------------------------------------------------- receptive field (§7)

def layer_chain(cfg):
    """(encoder, decoder) lists of (kernel, stride, dilation) in order; the decoder's upsampling is a
    layer of kernel 1 and stride 1/2 (images) or, for a transposed conv of stride s, stride 1/s
    followed by its kernel at the output rate."""
    R, st = cfg["res_blocks"], cfg["strides"]
    enc, dec = [], []
    if cfg["kind"] == "image":
        enc.append((3, 1, 1))
        for s in st:
            enc += [(3, 1, 1)] * (2 * R) + [(3, 2, 1)]
        enc += [(3, 1, 1)] * (2 * R) + [(1, 1, 1)]
        dec.append((3, 1, 1))
        dec += [(3, 1, 1)] * (2 * R)
        for s in reversed(st):
            dec += [(1, 0.5, 1), (3, 1, 1)] + [(3, 1, 1)] * (2 * R)
        dec.append((3, 1, 1))
    else:
        enc.append((7, 1, 1))
        for s in st:
            for j in range(R):
                enc += [(3, 1, 3 ** j), (1, 1, 1)]
            enc.append((2 * s, s, 1))
        enc.append((7, 1, 1))
        dec.append((7, 1, 1))
        for s in reversed(st):
            dec += [(1, 1.0 / s, 1), (2 * s, 1, 1)]
            for j in range(R):
                dec += [(3, 1, 3 ** j), (1, 1, 1)]
        dec.append((7, 1, 1))
    return enc, dec


def halo_formula(cfg):
    """Spec §7: sum_i ((k_i - 1) d_i / 2) prod_{j<i} s_j, encoder in input units, decoder in latent
    units."""
    res = []
    for chain in layer_chain(cfg):
        r, p = 0.0, 1.0
        for k, s, d in chain:
            r += (k - 1) * d / 2.0 * p
            p *= s
        res.append(r)
    return tuple(res)


# -------------------------------------------------------------------------------------- safetensors

_DT = {torch.float32: "F32", torch.int32: "I32", torch.float64: "F64", torch.int64: "I64"}
_NP = {"F32": np.float32, "I32": np.int32, "F64": np.float64, "I64": np.int64}


def write_safetensors(path, tensors, metadata):
    """Writes a safetensors file: u64 LE header length, JSON header {name: {dtype, shape,
    data_offsets}} plus __metadata__ (string values), padded with spaces to 8 bytes, then the data,
    in the order given."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        if t.dtype not in _DT:
            raise ValueError("%s: dtype %s not supported" % (name, t.dtype))
        b = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    for k, v in metadata.items():
        if not isinstance(v, str):
            raise ValueError("metadata %s must be a string" % k)
    full = {"__metadata__": metadata}
    full.update(header)
    h = json.dumps(full, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Returns (tensors {name: torch tensor}, metadata {str: str}); checks offsets are contiguous."""
    with open(path, "rb") as f:
        data = f.read()
    (hl,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hl].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + hl
    out, spans = {}, []
    for name, e in header.items():
        a, b = e["data_offsets"]
        dt = _NP[e["dtype"]]
        n = int(np.prod(e["shape"])) if e["shape"] else 1
        if b - a != n * np.dtype(dt).itemsize or base + b > len(data):
            raise ValueError("%s: bad data_offsets %s" % (name, e["data_offsets"]))
        arr = np.frombuffer(data[base + a:base + b], dtype=np.dtype(dt).newbyteorder("<"))
        out[name] = torch.from_numpy(arr.astype(dt).reshape(e["shape"]))
        spans.append((a, b))
    spans.sort()
    pos = 0
    for a, b in spans:
        if a != pos:
            raise ValueError("%s: data not contiguous at %d" % (path, a))
        pos = b
    if base + pos != len(data):
        raise ValueError("%s: %d trailing bytes" % (path, len(data) - base - pos))
    return out, meta


def config_json(cfg):
    """The config as the bundle stores it: the spec's keys for its kind, in the spec's order."""
    return json.dumps({k: cfg[k] for k in CONFIG_KEYS[cfg["kind"]]})
