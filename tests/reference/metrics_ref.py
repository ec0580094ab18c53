#!/usr/bin/python3
"""metrics_ref.py — reference values of vqz's evaluation metrics (codec/metrics.h) for tests/test_metrics.cpp.

Writes the degraded test images and sounds it measures to tests/golden/metrics_*.{png,wav} and the expected
values to tests/golden/metrics_expected.txt, so the C tests need no Python. Deterministic; about 5 s.

    /usr/bin/python3 tests/reference/metrics_ref.py

Debian packages: python3-numpy, python3-scipy, python3-skimage (0.19), python3-pil; python3-torch is used,
when present, for one extra cross-check of the STFT. python3-librosa is not packaged in Debian 12, so the mel
filterbank is librosa's code re-written in NumPy (below).

Where each number comes from:
  PSNR, PSNR-Y  skimage.metrics.peak_signal_noise_ratio (data_range 255 or 65535; Y from
                skimage.color.rgb2ycbcr, data_range 255): the published implementation itself.
  MS-SSIM       pytorch_msssim.ms_ssim (github.com/VainF/pytorch-msssim, pytorch_msssim/ssim.py: _fspecial_gauss_1d,
                gaussian_filter, _ssim, ms_ssim) re-implemented in float64 NumPy line by line: 11-tap Gaussian
                sigma 1.5 applied 'valid', K = (0.01, 0.03), relu on cs/ssim, weights (0.0448, 0.2856, 0.3001,
                0.2363, 0.1333), avg_pool2d(kernel 2, stride 2, padding = side % 2) between scales.
                Checked here against two published definitions: (1) TensorFlow's tf.image.ssim_multiscale
                (tensorflow/python/ops/image_ops_impl.py: _fspecial_gauss, _ssim_helper, _ssim_per_channel,
                ssim_multiscale with its SYMMETRIC end padding before a VALID 2x2 avg_pool) re-implemented the
                same way, which must agree to 1e-12 on images whose sides stay even through the four
                poolings; (2) skimage.metrics.structural_similarity (gaussian_weights=True, sigma=1.5,
                use_sample_covariance=False) for the single-scale SSIM, which must agree to 1e-9.
  SI-SDR        Le Roux, Wisdom, Erdogan, Hershey, "SDR - half-baked or well done?", ICASSP 2019, eq. (2),
                zero-mean: the formula below.
  mel distance  librosa.filters.mel (librosa 0.10, filters.py: mel, mel_frequencies, hz_to_mel, mel_to_hz with
                htk=False, norm='slaney') re-implemented in NumPy; STFT as torch.stft / librosa.stft with
                center=True, pad_mode='reflect', periodic Hann (scipy.signal.get_window('hann', n)); |X| @ fb.T;
                mean |log10(clamp(mel_test, 1e-5)) - log10(clamp(mel_ref, 1e-5))| (DAC's MelSpectrogramLoss
                with pow 1, mag_weight 0). One resolution (2048, hop 512, 80 bands) and DAC's seven
                (windows 32..2048, hop n/4, bands 5..320, summed; descript-audio-codec conf/base.yml).
  STFT distance nn/stft_loss.h's definition in NumPy float64 (sizes 512/1024/2048, hop n/4, no centring,
                magnitude sqrt(re^2 + im^2 + 1e-7), spectral convergence + mean |log| L1, mean over sizes),
                test as prediction, reference as target.
"""
import os
import sys

import numpy as np
import scipy.io.wavfile
import scipy.ndimage
import scipy.signal
from PIL import Image
from skimage.color import gray2rgb, rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden")
SAMPLES = os.path.join(ROOT, "samples", "images")

# ---------------------------------------------------------------------------------------------- MS-SSIM

WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])


def gauss_1d(size=11, sigma=1.5):
    """pytorch_msssim._fspecial_gauss_1d."""
    coords = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(coords ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def filter_valid(img, g):
    """pytorch_msssim.gaussian_filter: the 1-D window along W, then along H, no padding (conv2d padding=0)."""
    k = len(g)
    H, W = img.shape
    tmp = sum(g[j] * img[:, j:j + W - k + 1] for j in range(k))
    return sum(g[i] * tmp[i:i + H - k + 1, :] for i in range(k))


def ssim_cs(x, y, data_range):
    """pytorch_msssim._ssim for one plane: (mean of the ssim map, mean of the cs map)."""
    g = gauss_1d()
    C1, C2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu1, mu2 = filter_valid(x, g), filter_valid(y, g)
    s11 = filter_valid(x * x, g) - mu1 * mu1
    s22 = filter_valid(y * y, g) - mu2 * mu2
    s12 = filter_valid(x * y, g) - mu1 * mu2
    cs_map = (2 * s12 + C2) / (s11 + s22 + C2)
    ssim_map = (2 * mu1 * mu2 + C1) / (mu1 * mu1 + mu2 * mu2 + C1) * cs_map
    return ssim_map.mean(), cs_map.mean()


def avg_pool_torch(x):
    """F.avg_pool2d(x, kernel_size=2, padding=[s % 2 for s in x.shape]) with count_include_pad=True."""
    ph, pw = x.shape[0] % 2, x.shape[1] % 2
    xp = np.pad(x, ((ph, ph), (pw, pw)))
    Ho, Wo = (xp.shape[0] - 2) // 2 + 1, (xp.shape[1] - 2) // 2 + 1
    return 0.25 * (xp[0:2 * Ho:2, 0:2 * Wo:2] + xp[1:2 * Ho:2, 0:2 * Wo:2] +
                   xp[0:2 * Ho:2, 1:2 * Wo:2] + xp[1:2 * Ho:2, 1:2 * Wo:2])


def avg_pool_tf(x):
    """tf.image.ssim_multiscale's downscaling: SYMMETRIC padding by side % 2 at the end, avg_pool 2x2 VALID."""
    ph, pw = x.shape[0] % 2, x.shape[1] % 2
    xp = np.pad(x, ((0, ph), (0, pw)), mode="symmetric")
    return 0.25 * (xp[0::2, 0::2] + xp[1::2, 0::2] + xp[0::2, 1::2] + xp[1::2, 1::2])


def ms_ssim_plane(x, y, data_range, pool=avg_pool_torch):
    """pytorch_msssim.ms_ssim for one plane."""
    assert min(x.shape) > 160
    mcs = []
    for i in range(5):
        ssim_v, cs = ssim_cs(x, y, data_range)
        if i < 4:
            mcs.append(max(cs, 0.0))
            x, y = pool(x), pool(y)
    vals = np.array(mcs + [max(ssim_v, 0.0)])
    return float(np.prod(vals ** WEIGHTS))


def planes(img):
    """H x W x C array -> list of float64 colour planes (alpha dropped)."""
    if img.ndim == 2:
        return [img.astype(np.float64)]
    c = img.shape[2]
    return [img[:, :, k].astype(np.float64) for k in range(1 if c <= 2 else 3)]


def image_metrics(ref, test, maxval):
    """The values vqz_eval_images reports for two integer arrays (H x W, or H x W x C)."""
    pr, pt = planes(ref), planes(test)
    a = np.stack(pr, axis=-1)
    b = np.stack(pt, axis=-1)
    psnr = peak_signal_noise_ratio(a, b, data_range=maxval)
    rgb_a = gray2rgb(pr[0] / maxval) if len(pr) == 1 else a / maxval
    rgb_b = gray2rgb(pt[0] / maxval) if len(pt) == 1 else b / maxval
    ya, yb = rgb2ycbcr(rgb_a)[..., 0], rgb2ycbcr(rgb_b)[..., 0]
    psnr_y = peak_signal_noise_ratio(ya, yb, data_range=255)
    H, W = ya.shape
    out = {"psnr": psnr, "psnr_y": psnr_y}
    norm_a, norm_b = [p / maxval for p in pr], [p / maxval for p in pt]
    # single-scale SSIM against scikit-image, for every pair
    for k in range(len(pr)):
        ours = ssim_cs(norm_a[k], norm_b[k], 1.0)[0]
        theirs = structural_similarity(norm_a[k], norm_b[k], data_range=1.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False)
        assert abs(ours - theirs) < 1e-9, (ours, theirs)
    if min(H, W) >= 161:
        out["scales"] = 5
        vals = [ms_ssim_plane(norm_a[k], norm_b[k], 1.0) for k in range(len(pr))]
        out["msssim"] = float(np.mean(vals))
        out["msssim_y"] = ms_ssim_plane(ya, yb, 255.0)
        even = all(s % (2 ** 4) == 0 for s in (H, W))
        if even:  # TensorFlow's definition agrees when no odd side is padded
            tf = np.mean([ms_ssim_plane(norm_a[k], norm_b[k], 1.0, avg_pool_tf) for k in range(len(pr))])
            assert abs(tf - out["msssim"]) < 1e-12, (tf, out["msssim"])
        else:  # an odd side pads differently (zeros at both ends vs a mirrored row at the end)
            tf = np.mean([ms_ssim_plane(norm_a[k], norm_b[k], 1.0, avg_pool_tf) for k in range(len(pr))])
            out["msssim_tf"] = float(tf)
    else:
        out["scales"] = 1
        out["msssim"] = float(np.mean([ssim_cs(norm_a[k], norm_b[k], 1.0)[0] for k in range(len(pr))]))
        out["msssim_y"] = ssim_cs(ya, yb, 255.0)[0]
        chan = structural_similarity(a / maxval, b / maxval, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, channel_axis=-1)
        assert abs(chan - out["msssim"]) < 1e-9, (chan, out["msssim"])
    return out


# ---------------------------------------------------------------------------------------------- audio


def si_sdr(ref, est):
    s = ref - ref.mean()
    e = est - est.mean()
    a = np.dot(e, s) / np.dot(s, s)
    t = a * s
    return 10 * np.log10(np.dot(t, t) / np.dot(t - e, t - e))


def snr(ref, est):
    return 10 * np.log10(np.dot(ref, ref) / np.dot(ref - est, ref - est))


def hz_to_mel(f):
    """librosa.hz_to_mel(htk=False)."""
    f = np.asanyarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, mels)


def mel_to_hz(m):
    """librosa.mel_to_hz(htk=False)."""
    m = np.asanyarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


def mel_filterbank(sr, n_fft, n_mels, fmin=0.0, fmax=None):
    """librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin, fmax, htk=False, norm='slaney'), float64."""
    if fmax is None:
        fmax = float(sr) / 2
    weights = np.zeros((n_mels, 1 + n_fft // 2))
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, np.newaxis]
    return weights


def stft_centered(x, n):
    """|torch.stft(x, n, hop_length=n // 4, window=hann_window(n), center=True, pad_mode='reflect')|."""
    hop = n // 4
    w = scipy.signal.get_window("hann", n)  # periodic
    xp = np.pad(x, n // 2, mode="reflect")
    frames = 1 + len(x) // hop
    idx = np.arange(n)[None, :] + hop * np.arange(frames)[:, None]
    return np.abs(np.fft.rfft(xp[idx] * w, axis=1))  # [frames, n/2 + 1]


def mel_distance(ref, est, sr, n, n_mels):
    fb = mel_filterbank(sr, n, n_mels)
    mr = stft_centered(ref, n) @ fb.T
    me = stft_centered(est, n) @ fb.T
    return float(np.mean(np.abs(np.log10(np.maximum(me, 1e-5)) - np.log10(np.maximum(mr, 1e-5)))))


def mel_distance_dac(ref, est, sr):
    return sum(mel_distance(ref, est, sr, n, m)
               for n, m in zip([32, 64, 128, 256, 512, 1024, 2048], [5, 10, 20, 40, 80, 160, 320]))


def stft_distance(ref, est):
    """nn/stft_loss.h, x = est (prediction), y = ref (target)."""
    total = 0.0
    for n in (512, 1024, 2048):
        hop = n // 4
        w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
        F = (len(ref) - n) // hop + 1
        idx = np.arange(n)[None, :] + hop * np.arange(F)[:, None]
        X, Y = np.fft.rfft(est[idx] * w, axis=1), np.fft.rfft(ref[idx] * w, axis=1)
        mx = np.sqrt(X.real ** 2 + X.imag ** 2 + 1e-7)
        my = np.sqrt(Y.real ** 2 + Y.imag ** 2 + 1e-7)
        total += np.linalg.norm(my - mx) / np.linalg.norm(my) + np.mean(np.abs(np.log(my) - np.log(mx)))
    return total / 3


def check_stft_with_torch(x):
    try:
        import torch
    except ImportError:
        print("python3-torch not found: STFT not cross-checked against torch.stft")
        return
    for n in (32, 512, 2048):
        t = torch.stft(torch.from_numpy(x), n, hop_length=n // 4, window=torch.hann_window(n, dtype=torch.float64),
                       center=True, pad_mode="reflect", return_complex=True).abs().numpy().T
        d = np.abs(t - stft_centered(x, n)).max()
        assert d < 1e-9, (n, d)


def audio_metrics(ref, est, sr):
    """Per channel, then the mean. ref, est: float64 [channels, frames], already the same length."""
    rows = []
    for c in range(ref.shape[0]):
        r, e = ref[c], est[c]
        rows.append([si_sdr(r, e), snr(r, e), mel_distance(r, e, sr, 2048, 80), mel_distance_dac(r, e, sr),
                     stft_distance(r, e)])
    m = np.mean(np.array(rows), axis=0)
    return dict(zip(["si_sdr", "snr", "mel", "mel_dac", "stft"], m))


# ---------------------------------------------------------------------------------------------- test data


def crop(path, x, y, w, h):
    a = np.array(Image.open(path).convert("RGB"))
    return a[y:y + h, x:x + w]


def save_png(name, arr):
    path = os.path.join(GOLDEN, name)
    Image.fromarray(arr).save(path, optimize=True)
    back = np.array(Image.open(path))  # PIL reads 16-bit grey as int32 (mode "I")
    assert np.array_equal(back, arr), name
    return back.astype(arr.dtype)


def harmonic(sr, frames, f0, rng):
    """A voiced, speech-like tone: harmonics of a gliding f0 under a syllable envelope, plus a little noise."""
    t = np.arange(frames) / sr
    f = f0 * (1 + 0.08 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = sum((0.6 / k) * np.sin(k * phase + 0.3 * k) for k in range(1, 16) if k * f0 * 1.1 < sr / 2)
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 2.5 * t) ** 2
    return 0.5 * env * x + 0.01 * rng.standard_normal(frames)


def to_pcm16(x):
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)


def save_wav(name, sr, pcm):
    """pcm int16 [channels, frames]; returns the floats libsndfile reads (sample / 32768)."""
    path = os.path.join(GOLDEN, name)
    scipy.io.wavfile.write(path, sr, pcm.T.copy() if pcm.shape[0] > 1 else pcm[0])
    rate, back = scipy.io.wavfile.read(path)
    back = back.reshape(len(back), -1).T
    assert rate == sr and np.array_equal(back, pcm), name
    return back.astype(np.float64) / 32768.0


def fmt(v):
    return repr(float(v))


def main():
    rng = np.random.default_rng(20240611)
    lines = ["# metrics_expected.txt - written by tests/reference/metrics_ref.py (see there for the sources of",
             "# every value); read by tests/test_metrics.cpp. Do not edit."]
    coffee, chelsea = os.path.join(SAMPLES, "coffee.png"), os.path.join(SAMPLES, "chelsea.png")

    def img_line(name, ref_spec, test_file, ref, test, maxval):
        m = image_metrics(ref, test, maxval)
        extra = " msssim_tf=" + fmt(m["msssim_tf"]) if "msssim_tf" in m else ""
        lines.append(f"image {name} ref={ref_spec} test={test_file} psnr={fmt(m['psnr'])} "
                     f"psnr_y={fmt(m['psnr_y'])} msssim={fmt(m['msssim'])} msssim_y={fmt(m['msssim_y'])} "
                     f"scales={m['scales']}{extra}")
        print(lines[-1])

    # 1. JPEG at quality 30 (PIL, libjpeg-turbo, 4:2:0), decoded and stored losslessly
    ref = crop(coffee, 200, 100, 256, 256)
    import io
    buf = io.BytesIO()
    Image.fromarray(ref).save(buf, format="JPEG", quality=30)
    test = save_png("metrics_coffee_jpeg.png", np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    img_line("coffee_jpeg", "coffee.png@200,100,256x256", "metrics_coffee_jpeg.png", ref, test, 255)

    # 2. Gaussian blur sigma 1.2
    ref = crop(chelsea, 100, 20, 256, 256)
    blur = scipy.ndimage.gaussian_filter(ref.astype(np.float64), sigma=(1.2, 1.2, 0))
    test = save_png("metrics_chelsea_blur.png", np.clip(np.round(blur), 0, 255).astype(np.uint8))
    img_line("chelsea_blur", "chelsea.png@100,20,256x256", "metrics_chelsea_blur.png", ref, test, 255)

    # 3. additive Gaussian noise sigma 6 on an odd-sized crop (odd sides at several pyramid levels)
    ref = crop(chelsea, 30, 60, 211, 185)
    noisy = ref.astype(np.float64) + rng.normal(0, 6, ref.shape)
    test = save_png("metrics_chelsea_noise.png", np.clip(np.round(noisy), 0, 255).astype(np.uint8))
    img_line("chelsea_noise", "chelsea.png@30,60,211x185", "metrics_chelsea_noise.png", ref, test, 255)

    # 4. 16-bit grey (from the coffee crop's luma) with noise of sigma 900 / 65535
    rgb = crop(coffee, 300, 150, 177, 163).astype(np.float64)
    grey = np.round((0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) * 257.0)
    grey = np.clip(grey + np.round(rng.normal(0, 40, grey.shape)), 0, 65535).astype(np.uint16)
    ref = save_png("metrics_grey16_ref.png", grey)
    noisy = ref.astype(np.float64) + rng.normal(0, 900, ref.shape)
    test = save_png("metrics_grey16_test.png", np.clip(np.round(noisy), 0, 65535).astype(np.uint16))
    img_line("grey16_noise", "metrics_grey16_ref.png", "metrics_grey16_test.png", ref, test, 65535)

    # 5. small RGBA (single-scale SSIM); the alpha planes differ and must not count
    rgb = crop(chelsea, 250, 150, 120, 96)
    yy, xx = np.mgrid[0:96, 0:120]
    ref = save_png("metrics_small_rgba_ref.png", np.dstack([rgb, (xx * 2 + yy).astype(np.uint8)]))
    noisy = rgb.astype(np.float64) + rng.normal(0, 10, rgb.shape)
    alpha = (255 - xx - yy).astype(np.uint8)
    test = save_png("metrics_small_rgba_test.png", np.dstack([np.clip(np.round(noisy), 0, 255).astype(np.uint8),
                                                               alpha]))
    img_line("small_rgba", "metrics_small_rgba_ref.png", "metrics_small_rgba_test.png", ref, test, 255)

    def audio_line(name, ref_file, test_file, ref, est, sr):
        n = min(ref.shape[1], est.shape[1])
        longer = max(ref.shape[1], est.shape[1])
        m = audio_metrics(ref[:, :n], est[:, :n], sr)
        lines.append(f"audio {name} ref={ref_file} test={test_file} frames={n} "
                     f"mismatch={int(longer - n > 0.01 * longer)} si_sdr={fmt(m['si_sdr'])} snr={fmt(m['snr'])} "
                     f"mel={fmt(m['mel'])} mel_dac={fmt(m['mel_dac'])} stft={fmt(m['stft'])}")
        print(lines[-1])

    # 6. mono speech-like tone at 16 kHz: low-passed, scaled and noisy
    sr = 16000
    x = harmonic(sr, 24000, 140.0, rng)
    b, a = scipy.signal.butter(4, 3000, fs=sr)
    y = 0.8 * scipy.signal.lfilter(b, a, x) + 0.02 * rng.standard_normal(len(x))
    ref = save_wav("metrics_speech_ref.wav", sr, to_pcm16(x)[None, :])
    est = save_wav("metrics_speech_test.wav", sr, to_pcm16(y)[None, :])
    check_stft_with_torch(ref[0])
    audio_line("speech", "metrics_speech_ref.wav", "metrics_speech_test.wav", ref, est, sr)

    # 7. stereo at 22.05 kHz, the test 3% longer (cut to the reference): noise on the left, 6-bit
    #    quantisation and a one-sample delay on the right
    sr = 22050
    n = 11025
    left, right = harmonic(sr, n, 220.0, rng), harmonic(sr, n, 330.0, rng)
    ext = int(n * 1.03)
    tl = np.concatenate([left + 0.05 * rng.standard_normal(n), 0.01 * rng.standard_normal(ext - n)])
    rq = np.round(right * 32) / 32
    tr = np.concatenate([[0.0], rq, np.zeros(ext - n - 1)])
    ref = save_wav("metrics_stereo_ref.wav", sr, np.stack([to_pcm16(left), to_pcm16(right)]))
    est = save_wav("metrics_stereo_test.wav", sr, np.stack([to_pcm16(tl), to_pcm16(tr)]))
    audio_line("stereo", "metrics_stereo_ref.wav", "metrics_stereo_test.wav", ref, est, sr)

    # mel filterbanks, checked entry by entry
    for sr, n_fft, n_mels in ((16000, 64, 10), (22050, 32, 5), (44100, 2048, 80)):
        fb = mel_filterbank(sr, n_fft, n_mels)
        if n_fft > 64:  # too many entries for the file: row sums and a few entries
            pick = [(0, 1), (0, 2), (10, 20), (40, 100), (79, 1000), (79, 900)]
            vals = ",".join(f"{i}:{k}:{fmt(fb[i, k])}" for i, k in pick)
            sums = ",".join(fmt(s) for s in fb.sum(axis=1))
            lines.append(f"melfb sr={sr} n_fft={n_fft} n_mels={n_mels} entries={vals} rowsums={sums}")
        else:
            vals = ",".join(fmt(v) for v in fb.ravel())
            lines.append(f"melfb sr={sr} n_fft={n_fft} n_mels={n_mels} all={vals}")

    with open(os.path.join(GOLDEN, "metrics_expected.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
