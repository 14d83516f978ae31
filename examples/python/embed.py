#!/usr/bin/env python3
"""Embed WAV files with an exported Tessera audio encoder, using only numpy, onnxruntime
and the standard library (wave, tomllib).

Everything is read from the export folder's model.toml: sample rate, clip duration,
log-mel parameters, normalisation statistics and the patch tokenizer. The steps are the
ones the Rust front end takes (domains/audio/src/frontend.rs): decode, mix to mono,
resample (torchaudio's windowed-sinc), zero-pad to the clip duration, log-mel, normalise,
centre-crop, patchify with (Hz, s) coordinates, then run model.onnx.

    python embed.py EXPORT_DIR a.wav b.wav              # prints one embedding per file
    python embed.py EXPORT_DIR --files files.txt --compare embeddings.npy
        # checks against `tessera-audio embed` output (exit 1 if max |diff| > --tol)
"""
import argparse
import math
import pathlib
import sys
import tomllib
import wave

import numpy as np
import onnxruntime as ort


def read_wav(path):
    """PCM WAV -> (mono float32 in [-1, 1], sample rate). Scaling as the Rust reader."""
    with wave.open(str(path), "rb") as w:
        ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        raw = w.readframes(n)
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / float(1 << 31)
    else:
        raise SystemExit(f"{path}: unsupported sample width {width} bytes")
    x = x.reshape(-1, ch)
    mono = x[:, 0] if ch == 1 else (x.sum(axis=1, dtype=np.float32) * np.float32(1.0 / ch))
    return mono.astype(np.float32), rate


def resample(x, from_hz, to_hz):
    """torchaudio.functional.resample (sinc_interp_hann, lowpass_filter_width=6, rolloff=0.99)."""
    if from_hz == to_hz:
        return x
    g = math.gcd(from_hz, to_hz)
    orig, new = from_hz // g, to_hz // g
    width_f, rolloff = 6, 0.99
    base = min(orig, new) * rolloff
    width = math.ceil(width_f * orig / base)
    idx = (np.arange(-width, width + orig, dtype=np.float32) / np.float32(orig))[None, :]
    t = (np.arange(0, -new, -1, dtype=np.float32) / np.float32(new))[:, None] + idx
    t = t * np.float32(base)
    t = np.clip(t, -width_f, width_f)
    window = np.cos(t * np.float32(math.pi) / np.float32(width_f) / 2).astype(np.float32) ** 2
    t = t * np.float32(math.pi)
    scale = np.float32(base / orig)
    with np.errstate(invalid="ignore", divide="ignore"):
        sinc = np.where(t == 0, np.float32(1.0), np.sin(t) / t).astype(np.float32)
    kernels = sinc * (window * scale)  # [new, 2*width+orig]
    padded = np.concatenate([np.zeros(width, np.float32), x, np.zeros(width + orig, np.float32)])
    n_periods = (len(padded) - kernels.shape[1]) // orig + 1
    frames = np.lib.stride_tricks.as_strided(
        padded, (n_periods, kernels.shape[1]), (padded.strides[0] * orig, padded.strides[0]))
    out = (frames.astype(np.float64) @ kernels.T.astype(np.float64)).astype(np.float32).reshape(-1)
    return out[: math.ceil(len(x) * new / orig)]


def hz_to_mel(f, scale):
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f = np.asarray(f, dtype=np.float64)
    logstep = math.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) / logstep, f / (200.0 / 3.0))


def mel_to_hz(m, scale):
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    m = np.asarray(m, dtype=np.float64)
    logstep = math.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), (200.0 / 3.0) * m)


def log_mel(x, c):
    """torchaudio MelSpectrogram (periodic Hann, reflect padding) then ln(mel + log_offset)."""
    sr, n_fft, win, hop, n_mels = c["sample_rate_hz"], c["n_fft"], c["win_length"], c["hop_length"], c["n_mels"]
    f_max = c.get("f_max", sr // 2)
    scale = c["mel_scale"]
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left:left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    if c["center"]:
        x = np.pad(x, n_fft // 2, mode="reflect")
    n_frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    spec = np.fft.rfft(x.astype(np.float64)[idx] * window, axis=1)
    p = np.abs(spec) ** 2 if c["power"] == 2.0 else np.abs(spec) ** c["power"]
    n_freqs = n_fft // 2 + 1
    freqs = np.linspace(0, sr // 2, n_freqs)
    m_pts = np.linspace(hz_to_mel(float(c["f_min"]), scale), hz_to_mel(float(f_max), scale), n_mels + 2)
    f_pts = mel_to_hz(m_pts, scale)
    up = (freqs[None, :] - f_pts[:-2, None]) / (f_pts[1:-1] - f_pts[:-2])[:, None]
    down = (f_pts[2:, None] - freqs[None, :]) / (f_pts[2:] - f_pts[1:-1])[:, None]
    fb = np.maximum(0.0, np.minimum(up, down))
    if c["slaney_norm"]:
        fb *= (2.0 / (f_pts[2:] - f_pts[:-2]))[:, None]
    return np.log(fb @ p.T + c["log_offset"]).astype(np.float32)  # [n_mels, frames]


def bin_centres_hz(c):
    scale = c["mel_scale"]
    lo, hi = hz_to_mel(float(c["f_min"]), scale), hz_to_mel(float(c.get("f_max", c["sample_rate_hz"] / 2)), scale)
    n = c["n_mels"]
    return np.array([mel_to_hz(lo + (hi - lo) * i / (n + 1), scale) for i in range(1, n + 1)], np.float32)


class Frontend:
    def __init__(self, card):
        fe = card["frontend"]
        self.feat = fe["features"]
        if self.feat["kind"] != "log_mel":
            raise SystemExit(f"this client computes log-mel features; the card asks for `{self.feat['kind']}`")
        self.sr = self.feat["sample_rate_hz"]
        self.duration = fe["duration_s"]
        self.patch, self.stride = fe["tokenizer"]["patch"], fe["tokenizer"]["stride"]
        self.norm = fe.get("norm")
        hop, n_fft = self.feat["hop_length"], self.feat["n_fft"]
        n = round(self.duration * self.sr)
        self.target_frames = 1 + (n + 2 * (n_fft // 2) - n_fft) // hop if self.feat["center"] else 1 + (n - n_fft) // hop
        self.hop_s = hop / self.sr
        self.t0 = 0.0 if self.feat["center"] else max(self.feat["win_length"], n_fft) / 2 / self.sr
        self.bin_hz = bin_centres_hz(self.feat)

    def spectrogram(self, path):
        x, rate = read_wav(path)
        x = resample(x, rate, self.sr)
        n = round(self.duration * self.sr)
        if len(x) < n:
            x = np.concatenate([x, np.zeros(n - len(x), np.float32)])
        s = log_mel(x, self.feat)
        if self.norm is not None:
            s = ((s - np.float32(self.norm["mean"])) / np.float32(self.norm["std"])).astype(np.float32)
        t = self.target_frames
        if s.shape[1] > t:
            start = (s.shape[1] - t) // 2
            s = s[:, start:start + t]
        return s

    def tokens(self, s):
        (pf, pt), (sf, st) = self.patch, self.stride
        rows, cols = (s.shape[0] - pf) // sf + 1, (s.shape[1] - pt) // st + 1
        values, coords = [], []
        for r in range(rows):
            hz = self.bin_hz[r * sf:r * sf + pf].mean(dtype=np.float64)
            for c in range(cols):
                values.append(s[r * sf:r * sf + pf, c * st:c * st + pt].reshape(-1))
                coords.append([hz, self.t0 + (c * st + (pt - 1) / 2) * self.hop_s])
        return np.stack(values).astype(np.float32), np.array(coords, np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("export_dir", type=pathlib.Path)
    ap.add_argument("wavs", nargs="*", type=pathlib.Path)
    ap.add_argument("--files", type=pathlib.Path, help="a files.txt listing WAV paths (as `embed` writes)")
    ap.add_argument("--compare", type=pathlib.Path, help="embeddings.npy from `tessera-audio embed` for the same files")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N files")
    args = ap.parse_args()

    card = tomllib.loads((args.export_dir / "model.toml").read_text())
    fe = Frontend(card)
    sess = ort.InferenceSession(str(args.export_dir / card["onnx"]["tokens_model"]), providers=["CPUExecutionProvider"])
    files = list(args.wavs)
    if args.files:
        files += [pathlib.Path(l) for l in args.files.read_text().splitlines() if l.strip()]
    if args.limit:
        files = files[: args.limit]
    if not files:
        raise SystemExit("no WAV files given")

    embs, specs = [], []
    for f in files:
        s = fe.spectrogram(f)
        v, c = fe.tokens(s)
        out = sess.run(["embedding"], {"values": v[None], "coords": c[None],
                                       "padding": np.zeros((1, len(v)), np.float32)})[0]
        embs.append(out[0])
        specs.append(s)
    embs = np.stack(embs)

    grid_model = card["onnx"].get("grid_model")
    if grid_model:  # the in-graph front takes the unnormalised log-mel [B, 1, mels, frames]
        g = ort.InferenceSession(str(args.export_dir / grid_model), providers=["CPUExecutionProvider"])
        n = card["frontend"].get("norm") or {"mean": 0.0, "std": 1.0}
        raw = np.stack([s * np.float32(n["std"]) + np.float32(n["mean"]) for s in specs])[:, None]
        ge = g.run(["embedding"], {"grid": raw.astype(np.float32)})[0]
        print(f"grid model vs token model: max |diff| = {np.abs(ge - embs).max():.2e}")

    if args.compare is not None:
        ref = np.load(args.compare)[: len(files)]
        diff = float(np.abs(ref - embs).max())
        print(f"{len(files)} files: max |python - rust| = {diff:.2e} (tolerance {args.tol:g})")
        return 0 if diff <= args.tol else 1
    for f, e in zip(files, embs):
        print(f, " ".join(f"{v:.6f}" for v in e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
