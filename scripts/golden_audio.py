#!/usr/bin/env python3
"""Generate the golden values for tessera-audio's front end (domains/audio/tests/golden/).

Reference: torchaudio (functional.resample, functional.melscale_fbanks,
transforms.MelSpectrogram, compliance.kaldi.fbank); librosa (filters.mel) gives a second,
float64-built reference for the mel filterbanks. Made with torch 2.11.0, torchaudio 2.11.0, numpy 2.4.6, librosa 0.11.0:

    python3 -m venv /tmp/audioref && /tmp/audioref/bin/pip install \
        numpy torch==2.11.0 torchaudio==2.11.0 librosa
    /tmp/audioref/bin/python scripts/golden_audio.py

Inputs are stored in the JSON files (float32 values as their shortest decimal form, the
FSDD clip as int16), so the Rust tests need neither Python nor the data folder. The FSDD
clip is used when --fsdd points at an existing file (default: the shared data folder).
Every value is written as the shortest decimal that round-trips its float32.
"""

import argparse
import json
import math
import os
import wave

import numpy as np
import torch
import torchaudio
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as AF
import torchaudio.transforms as AT

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "domains", "audio", "tests", "golden")
DEFAULT_FSDD = "/work/shared/data/audio/fsdd/recordings/0_george_0.wav"
SEED = 20261


def f32(values):
    """float32 array -> list of Python floats that print as their shortest float32 form."""
    return [float(str(v)) for v in np.asarray(values, dtype=np.float32).ravel()]


def in_float64(fn):
    """Run fn with float64 as torch's default dtype, so torchaudio builds its windows and
    filterbanks in float64 too (with a float64 input, the whole computation is float64)."""
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return fn()
    finally:
        torch.set_default_dtype(prev)


def chirp_noise(sr=16000, seconds=0.5):
    """Linear chirp 100 Hz -> 0.45 sr, a 440 Hz tone and Gaussian noise, float32."""
    rng = np.random.default_rng(SEED)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    f0, f1 = 100.0, 0.45 * sr
    phase = 2 * np.pi * (f0 * t + 0.5 * (f1 - f0) / seconds * t**2)
    x = 0.5 * np.sin(phase) + 0.2 * np.sin(2 * np.pi * 440.0 * t) + 0.05 * rng.standard_normal(n)
    return x.astype(np.float32)


def read_fsdd(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, "expected mono int16"
        sr = w.getframerate()
        i16 = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return sr, i16


def subset(n, limit=2500, edge=64):
    """All indices when n <= limit, else both edges plus every step-th index (step chosen so
    about 2000 values are kept). Returns (step, indices); step 1 means all."""
    if n <= limit:
        return 1, list(range(n))
    step = math.ceil(n / 2000)
    idx = sorted(set(range(edge)) | set(range(n - edge, n)) | set(range(0, n, step)))
    return step, idx


def resample_cases(signals):
    plan = [
        ("chirp_noise", 16000, 8000),
        ("chirp_noise", 16000, 22050),
        ("chirp_noise", 16000, 44100),
        ("chirp_noise", 44100, 16000),
        ("chirp_noise", 48000, 44100),
        ("chirp_noise", 22050, 16000),
        ("chirp_noise", 3, 2),
        ("chirp_noise", 8000, 8001),
        ("chirp_noise", 16000, 16000),
        ("fsdd", 8000, 16000),
    ]
    cases = []
    for name, fr, to in plan:
        if name not in signals:
            continue
        x = torch.from_numpy(signals[name][1])
        y = AF.resample(x, fr, to).numpy()
        assert len(y) == math.ceil(len(x) * to / fr)
        step, idx = subset(len(y))
        cases.append({
            "signal": name, "from_hz": fr, "to_hz": to, "expected_len": len(y),
            # expected[i] is output sample idx[i]; idx = 0..64, every index_step-th index
            # and the last 64 (all indices when index_step is 1), sorted and unique.
            "index_step": step, "index_edge": 64, "expected": f32(y[idx]),
        })
    return cases


def mel_config(**kw):
    cfg = {
        "sample_rate_hz": 16000,
        "n_fft": 400,
        "win_length": 400,
        "hop_length": 160,
        "n_mels": 128,
        "f_min": 0.0,
        "f_max": None,
        "mel_scale": "htk",
        "slaney_norm": False,
        "center": True,
        "power": 2.0,
        "log_offset": 1e-6,
    }
    cfg.update(kw)
    return cfg


def torch_logmel(x, c):
    t = AT.MelSpectrogram(
        sample_rate=c["sample_rate_hz"],
        n_fft=c["n_fft"],
        win_length=c["win_length"],
        hop_length=c["hop_length"],
        f_min=c["f_min"],
        f_max=c["f_max"],
        n_mels=c["n_mels"],
        window_fn=torch.hann_window,
        power=c["power"],
        center=c["center"],
        pad_mode="reflect",
        norm="slaney" if c["slaney_norm"] else None,
        mel_scale=c["mel_scale"],
    )
    return torch.log(t(torch.from_numpy(x)) + c["log_offset"]).numpy()  # [n_mels, frames]


def torch_fb(c):
    f_max = c["f_max"] if c["f_max"] is not None else float(c["sample_rate_hz"] // 2)
    fb = AF.melscale_fbanks(
        c["n_fft"] // 2 + 1,
        c["f_min"],
        f_max,
        c["n_mels"],
        c["sample_rate_hz"],
        "slaney" if c["slaney_norm"] else None,
        c["mel_scale"],
    )
    return fb.numpy().T  # [n_mels, n_freqs]


def logmel_cases(signals):
    fb_configs = [
        mel_config(),
        mel_config(n_fft=512, n_mels=80, f_min=20.0, f_max=7600.0, mel_scale="slaney", slaney_norm=True),
        mel_config(sample_rate_hz=8000, n_fft=256, win_length=200, hop_length=80, n_mels=40, slaney_norm=True),
        mel_config(sample_rate_hz=22050, n_fft=1024, n_mels=64, mel_scale="slaney"),
    ]
    def sparse(fb):
        rows, cols = np.nonzero(fb)
        return {"rows": rows.tolist(), "cols": cols.tolist(), "values": f32(fb[rows, cols])}

    filterbanks = []
    for c in fb_configs:
        fb = torch_fb(c)
        entry = {"config": c, "shape": list(fb.shape), "torchaudio": sparse(fb)}
        # librosa builds the filters in float64 (torchaudio in float32, ~1e-5 off the exact
        # weights); its frequency grid equals torchaudio's for even sample rates only.
        if c["sample_rate_hz"] % 2 == 0:
            import librosa

            f_max = c["f_max"] if c["f_max"] is not None else c["sample_rate_hz"] / 2
            lb = librosa.filters.mel(
                sr=c["sample_rate_hz"], n_fft=c["n_fft"], n_mels=c["n_mels"], fmin=c["f_min"],
                fmax=f_max, htk=c["mel_scale"] == "htk", norm="slaney" if c["slaney_norm"] else None,
            )
            assert np.abs(lb - fb).max() < 5e-5, "librosa and torchaudio disagree"
            entry["librosa"] = sparse(lb)
        filterbanks.append(entry)

    plan = [
        ("chirp_noise", mel_config()),
        ("chirp_noise", fb_configs[1]),
        ("chirp_noise", mel_config(n_fft=256, win_length=256, hop_length=128, n_mels=40, center=False, power=1.0, log_offset=1e-5)),
        ("chirp_noise", mel_config(n_fft=512, win_length=300, hop_length=100, n_mels=64, mel_scale="slaney", power=1.5)),
        ("fsdd", fb_configs[2]),
    ]
    cases = []
    for name, c in plan:
        if name not in signals:
            continue
        y = torch_logmel(signals[name][1], c)
        y64 = in_float64(lambda: torch_logmel(signals[name][1].astype(np.float64), c))
        cases.append({"signal": name, "config": c, "shape": list(y.shape), "expected": f32(y),
                      "expected_f64": f32(y64)})
    return filterbanks, cases


def fbank_config(**kw):
    cfg = {
        "sample_rate_hz": 16000,
        "frame_length_ms": 25.0,
        "frame_shift_ms": 10.0,
        "n_mels": 128,
        "low_freq": 20.0,
        "high_freq": 0.0,
        "preemphasis": 0.97,
        "remove_dc_offset": True,
        "window": "povey",
        "snip_edges": True,
        "dither": 0.0,
    }
    cfg.update(kw)
    return cfg


def torch_fbank(x, c):
    window = {"hann": "hanning"}.get(c["window"], c["window"])
    y = kaldi.fbank(
        torch.from_numpy(x)[None],
        sample_frequency=float(c["sample_rate_hz"]),
        frame_length=c["frame_length_ms"],
        frame_shift=c["frame_shift_ms"],
        num_mel_bins=c["n_mels"],
        low_freq=c["low_freq"],
        high_freq=c["high_freq"],
        preemphasis_coefficient=c["preemphasis"],
        remove_dc_offset=c["remove_dc_offset"],
        window_type=window,
        snip_edges=c["snip_edges"],
        dither=c["dither"],
        use_energy=False,
        use_log_fbank=True,
        use_power=True,
        round_to_power_of_two=True,
    )
    return y.numpy().T  # [n_mels, frames]


def fbank_cases(signals):
    plan = [
        ("chirp_noise", fbank_config()),
        ("chirp_noise", fbank_config(window="hann", snip_edges=False, remove_dc_offset=False,
                                     high_freq=-400.0, low_freq=60.0, n_mels=64, preemphasis=0.0)),
        ("chirp_noise", fbank_config(window="blackman", frame_length_ms=20.0, frame_shift_ms=12.5,
                                     high_freq=7000.0, preemphasis=0.5, n_mels=40, snip_edges=False)),
        ("fsdd", fbank_config(sample_rate_hz=8000, window="hamming", n_mels=23)),
    ]
    cases = []
    for name, c in plan:
        if name not in signals:
            continue
        y = torch_fbank(signals[name][1], c)
        y64 = in_float64(lambda: torch_fbank(signals[name][1].astype(np.float64), c))
        cases.append({"signal": name, "config": c, "shape": list(y.shape), "expected": f32(y),
                      "expected_f64": f32(y64)})
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fsdd", default=DEFAULT_FSDD, help="FSDD wav to include (skipped if absent)")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)

    signals = {"chirp_noise": (16000, chirp_noise())}
    stored = {"chirp_noise": {"sample_rate_hz": 16000, "samples": f32(signals["chirp_noise"][1])}}
    if os.path.exists(args.fsdd):
        sr, i16 = read_fsdd(args.fsdd)
        signals["fsdd"] = (sr, (i16.astype(np.float32) / 32768.0))
        stored["fsdd"] = {
            "sample_rate_hz": sr,
            "source": "FSDD recordings/" + os.path.basename(args.fsdd),
            "samples_i16": i16.tolist(),
        }

    meta = {
        "generator": "scripts/golden_audio.py",
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
        "numpy": np.__version__,
        "seed": SEED,
    }
    filterbanks, logmel = logmel_cases(signals)
    fbank = fbank_cases(signals)
    # "expected": torchaudio as usually run (float32); "expected_f64": the same functions in
    # float64, i.e. without torchaudio's own float32 rounding (up to ~7e-4 in the log domain
    # in bins ~80 dB below a frame's peak).
    split = lambda cases, key: [{k: v for k, v in c.items() if k not in ("expected", "expected_f64")}
                                | {"expected": c[key]} for c in cases]
    files = {
        "signals.json": {"meta": meta, "signals": stored},
        "resample.json": {"meta": meta, "cases": resample_cases(signals)},
        "mel_filterbanks.json": {"meta": meta, "filterbanks": filterbanks},
        "logmel.json": {"meta": meta, "cases": split(logmel, "expected")},
        "logmel_f64.json": {"meta": meta, "cases": split(logmel, "expected_f64")},
        "fbank.json": {"meta": meta, "cases": split(fbank, "expected")},
        "fbank_f64.json": {"meta": meta, "cases": split(fbank, "expected_f64")},
    }
    for name, content in files.items():
        path = os.path.join(args.out, name)
        with open(path, "w") as f:
            json.dump(content, f, separators=(",", ":"))
            f.write("\n")
        print(f"{path}: {os.path.getsize(path) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
