#!/usr/bin/python3
# losses_ref.py — writes tests/golden/losses.txt: PyTorch reference values of the multi-resolution STFT
# loss (nn/stft_loss.h) and of MS-SSIM (nn/msssim.h, pytorch_msssim's definition), with gradients, for
# fixed small inputs that tests/test_loss.cpp rebuilds bit for bit (integer hashing and float32
# operations that are exact or rounded once). Computed in float64, so the golden values are the
# definitions themselves, not another float32 implementation.
# Runs with Debian's /usr/bin/python3 (python3-torch 1.13, numpy), offline, CPU only:
#   /usr/bin/python3 tests/reference/losses_ref.py [--out tests/golden/losses.txt]
"""Golden values for the STFT and MS-SSIM losses."""

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F

# ------------------------------------------------------------------------------------------- inputs

M32 = 0xFFFFFFFF


def hash_unit(n, seed):
    """The test's hash_unit(i, seed) for i = 0..n-1: float32 in [-1, 1), 24-bit exact."""
    i = np.arange(n, dtype=np.uint64)
    h = ((i * 2654435761) & M32) ^ ((seed * 2246822519) & M32)
    h ^= h >> 15
    h = (h * 2246822519) & M32
    h ^= h >> 13
    h = (h * 3266489917) & M32
    h ^= h >> 16
    return ((h >> 8).astype(np.float32) / np.float32(8388608.0) - np.float32(1.0)).astype(np.float32)


def stft_inputs():
    """x, y [2, 1, 4096]: y = hashed noise through a one-pole low-pass (pole 15/16), x = y + noise / 8."""
    N, T = 2, 4096
    x = (np.float32(0.125) * hash_unit(N * T, 1)).reshape(N, T)
    y = hash_unit(N * T, 2).reshape(N, T)
    for t in range(1, T):
        prev = y[:, t - 1]
        y[:, t] = (prev - prev * np.float32(0.0625)) + y[:, t] * np.float32(0.0625)
    x = y + x
    assert x.dtype == np.float32 and y.dtype == np.float32
    return x.reshape(N, 1, T), y.reshape(N, 1, T)


def msssim_inputs():
    """x, y [1, 2, 176, 176]: hashed noise smoothed twice by halving averages with wrap-around,
    x = clamp(y + noise / 4, -1, 1)."""
    P, H, W = 2, 176, 176
    y = hash_unit(P * H * W, 3).reshape(P, H, W)
    for _ in range(2):
        t = (y + np.roll(y, -1, axis=2)) * np.float32(0.5)
        y = (t + np.roll(t, -1, axis=1)) * np.float32(0.5)
    n = hash_unit(P * H * W, 4).reshape(P, H, W)
    x = np.clip(y + np.float32(0.25) * n, np.float32(-1.0), np.float32(1.0))
    assert x.dtype == np.float32 and y.dtype == np.float32
    return x.reshape(1, P, H, W), y.reshape(1, P, H, W)

# ------------------------------------------------------------------------------------------ STFT loss


def stft_mag(sig, n):
    win = torch.hann_window(n, periodic=True, dtype=sig.dtype)
    S = torch.stft(sig, n_fft=n, hop_length=n // 4, win_length=n, window=win, center=False,
                   normalized=False, onesided=True, return_complex=True)
    return torch.sqrt(S.real ** 2 + S.imag ** 2 + 1e-7)


def stft_loss(x, y, sizes=(512, 1024, 2048)):
    """nn/stft_loss.h: mean over sizes of ||m_y - m_x||_F / ||m_y||_F + mean |log m_y - log m_x|."""
    xs, ys = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    terms = []
    for n in sizes:
        mx, my = stft_mag(xs, n), stft_mag(ys, n)
        sc = torch.linalg.norm((my - mx).reshape(-1)) / torch.linalg.norm(my.reshape(-1))
        lm = torch.mean(torch.abs(torch.log(my) - torch.log(mx)))
        terms.append(sc + lm)
    return torch.stack(terms).mean()

# -------------------------------------------------------------------------------------------- MS-SSIM
# pytorch_msssim 1.0's ms_ssim (not packaged in Debian), transcribed: Gaussian window 11 / sigma 1.5
# applied separably with 'valid' convolutions per channel, K = (0.01, 0.03), relu on cs and ssim.


def gauss_1d(size=11, sigma=1.5):
    coords = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def gaussian_filter(img, g):
    C = img.shape[1]
    out = F.conv2d(img, g.view(1, 1, 1, -1).repeat(C, 1, 1, 1), groups=C)     # along W
    return F.conv2d(out, g.view(1, 1, -1, 1).repeat(C, 1, 1, 1), groups=C)    # along H


def ssim_parts(X, Y, data_range, g):
    C1, C2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu1, mu2 = gaussian_filter(X, g), gaussian_filter(Y, g)
    s11 = gaussian_filter(X * X, g) - mu1 * mu1
    s22 = gaussian_filter(Y * Y, g) - mu2 * mu2
    s12 = gaussian_filter(X * Y, g) - mu1 * mu2
    cs_map = (2 * s12 + C2) / (s11 + s22 + C2)
    ssim_map = ((2 * mu1 * mu2 + C1) / (mu1 * mu1 + mu2 * mu2 + C1)) * cs_map
    return torch.flatten(ssim_map, 2).mean(-1), torch.flatten(cs_map, 2).mean(-1)


def ms_ssim(X, Y, data_range=2.0, weights=(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)):
    assert min(X.shape[-2:]) > 160, "5 scales need sides > 160"
    g = gauss_1d().to(X.dtype)
    w = torch.tensor(weights, dtype=X.dtype)
    mcs, factors = [], []
    for i in range(len(weights)):
        ssim_pc, cs = ssim_parts(X, Y, data_range, g)
        if i < len(weights) - 1:
            mcs.append(torch.relu(cs))
            factors.append(cs)
            pad = [s % 2 for s in X.shape[2:]]
            X = F.avg_pool2d(X, kernel_size=2, padding=pad)
            Y = F.avg_pool2d(Y, kernel_size=2, padding=pad)
    factors.append(ssim_pc)
    ssim_pc = torch.relu(ssim_pc)
    stacked = torch.stack(mcs + [ssim_pc], dim=0)                 # [levels, N, C]
    val = torch.prod(stacked ** w.view(-1, 1, 1), dim=0)          # [N, C]
    return val.mean(), torch.stack(factors, 0)

# --------------------------------------------------------------------------------------------- output


def fmt(name, values):
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return "%s %d %s\n" % (name, values.size, " ".join("%.10g" % v for v in values))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "golden", "losses.txt"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    x, y = stft_inputs()
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    st = stft_loss(xt, torch.tensor(y, dtype=torch.float64))
    st.backward()
    g_st = xt.grad.numpy().reshape(-1)

    a, b = msssim_inputs()
    at = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    ms, factors = ms_ssim(at, torch.tensor(b, dtype=torch.float64))
    (1 - ms).backward()
    g_ms = at.grad.numpy().reshape(-1)
    f = factors.detach().numpy()
    assert (f > 0).all(), "a clamped cs/ssim would make the gradient trivial: %s" % f

    with open(args.out, "w") as out:
        out.write("# written by tests/reference/losses_ref.py (PyTorch %s, float64); read by "
                  "tests/test_loss.cpp\n" % torch.__version__)
        out.write("# stft: inputs [2,1,4096], sizes 512/1024/2048; grad = dloss/dx at flat indices 0, 7, 14, ...\n")
        out.write(fmt("stft.loss", [st.item()]))
        out.write(fmt("stft.grad_stride7", g_st[::7]))
        out.write("# msssim: inputs [1,2,176,176]; value = MS-SSIM, grad = d(1 - MS-SSIM)/dx at flat "
                  "indices 0, 31, 62, ...; per-scale cs (scales 1-4) and ssim (scale 5) per plane\n")
        out.write(fmt("msssim.value", [ms.item()]))
        out.write(fmt("msssim.factors", f))
        out.write(fmt("msssim.grad_stride31", g_ms[::31]))
    print("stft loss %.9g, ms-ssim %.9g, written to %s" % (st.item(), ms.item(), args.out))


if __name__ == "__main__":
    main()
