#!/usr/bin/env python3
"""Generate the golden values for tessera-audio's music front ends (domains/audio/tests/golden/).

Reference: librosa 0.11 (cqt, feature.chroma_stft, feature.chroma_cqt, filters.chroma) run in
float64 (the signals are converted from int16 to float64 before the call, so librosa works in
complex128), tuning always given (never estimated). Made with librosa 0.11.0, numpy 2.4.6,
scipy 1.17.1, soxr 1.1.0:

    python3 -m venv /tmp/musicref && /tmp/musicref/bin/pip install librosa==0.11.0
    /tmp/musicref/bin/python scripts/golden_music.py

Signals: four one-second clips at 22 050 Hz (a logarithmic chirp, a sequence of harmonic
tones, white noise and a music-like mix of notes, bass and noise bursts), each with 20 ms
fades at both ends, stored as base64 of little-endian int16 (value / 32768), so the Rust
tests need no Python. Outputs are float32 values as their shortest decimal form: CQT
magnitudes |C| (the test takes the log itself), chroma as librosa returns it.
"""

import argparse
import base64
import json
import os

import librosa
import numpy as np
import scipy
import scipy.signal
import soxr

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "domains", "audio", "tests", "golden")
SR = 22050
SEED = 20262
C1 = float(librosa.note_to_hz("C1"))


def f32(values):
    """float32 array -> list of Python floats that print as their shortest float32 form."""
    return [float(str(v)) for v in np.asarray(values, dtype=np.float32).ravel()]


def g7(values):
    """Seven significant digits (5e-8 relative): enough for tolerances of 1e-5 and above."""
    return [float(f"{v:.7g}") for v in np.asarray(values, dtype=np.float64).ravel()]


def fade(n, sr=SR, seconds=0.02):
    i = np.arange(n)
    return np.minimum(1.0, np.minimum(i, i[::-1]) / (seconds * sr))


def note(t, f0, start, dur, amp, n_harm=6, decay=3.0):
    env = np.where((t >= start) & (t < start + dur), np.exp(-decay * (t - start)), 0.0)
    env *= np.minimum(1.0, np.maximum(0.0, t - start) / 0.01)  # 10 ms attack
    return amp * env * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, n_harm + 1))


def make_signals(seconds=1.0):
    rng = np.random.default_rng(SEED)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    chirp = 0.5 * scipy.signal.chirp(t, 40.0, seconds, 8000.0, method="logarithmic")
    tones = sum(
        note(t, librosa.note_to_hz(name), start, 0.25, 0.25)
        for name, start in [("A3", 0.0), ("C#4", 0.25), ("E4", 0.5), ("A4", 0.75)]
    )
    noise = 0.1 * rng.standard_normal(n)
    mix = (
        note(t, librosa.note_to_hz("C3"), 0.0, 1.0, 0.2, n_harm=8, decay=1.0)
        + note(t, librosa.note_to_hz("E4"), 0.1, 0.4, 0.15)
        + note(t, librosa.note_to_hz("G4"), 0.5, 0.45, 0.15)
        + note(t, librosa.note_to_hz("B5"), 0.3, 0.6, 0.08, n_harm=3)
        + 0.3 * np.sin(2 * np.pi * librosa.note_to_hz("C2") * t)
    )
    for start in (0.05, 0.3, 0.55, 0.8):
        burst = (t >= start) & (t < start + 0.03)
        mix[burst] += 0.2 * rng.standard_normal(burst.sum()) * np.exp(-(t[burst] - start) / 0.01)
    out = {}
    for name, x in [("chirp", chirp), ("tones", tones), ("noise", noise), ("mix", mix)]:
        x = x * fade(n)
        out[name] = np.clip(np.round(x * 32768), -32768, 32767).astype("<i2")
    return out


def cqt_config(**kw):
    cfg = {
        "sample_rate_hz": SR, "hop_length": 512, "f_min_hz": C1, "n_bins": 84,
        "bins_per_octave": 12, "filter_scale": 1.0, "tuning": 0.0, "sparsity": 0.01,
        "power": 2.0, "log_offset": 1e-6,
    }
    cfg.update(kw)
    return cfg


def librosa_cqt(y, c):
    return np.abs(librosa.cqt(
        y, sr=c["sample_rate_hz"], hop_length=c["hop_length"], fmin=c["f_min_hz"],
        n_bins=c["n_bins"], bins_per_octave=c["bins_per_octave"], filter_scale=c["filter_scale"],
        tuning=c["tuning"], sparsity=c["sparsity"], norm=1, window="hann", scale=True,
        pad_mode="constant", res_type="soxr_hq",
    ))


def chroma_config(**kw):
    cfg = {
        "source": "stft", "sample_rate_hz": SR, "hop_length": 512, "n_chroma": 12,
        "tuning": 0.0, "n_fft": 2048, "win_length": 2048, "center": True, "f_min_hz": C1,
        "bins_per_octave": 36, "n_octaves": 7,
    }
    cfg.update(kw)
    return cfg


def librosa_chroma(y, c):
    if c["source"] == "stft":
        return librosa.feature.chroma_stft(
            y=y, sr=c["sample_rate_hz"], n_fft=c["n_fft"], hop_length=c["hop_length"],
            win_length=c["win_length"], window="hann", center=c["center"], pad_mode="constant",
            tuning=c["tuning"], n_chroma=c["n_chroma"], norm=np.inf,
        )
    # Our tuning is in chroma bins; librosa's CQT counts in CQT bins.
    return librosa.feature.chroma_cqt(
        y=y, sr=c["sample_rate_hz"], hop_length=c["hop_length"], fmin=c["f_min_hz"],
        tuning=c["tuning"] * c["bins_per_octave"] / c["n_chroma"], n_chroma=c["n_chroma"],
        n_octaves=c["n_octaves"], bins_per_octave=c["bins_per_octave"], norm=np.inf,
    )


CQT_PLAN = [
    # librosa's defaults: 7 octaves from C1, hop 512 (halved every octave, no early downsampling).
    ("chirp", cqt_config()),
    ("tones", cqt_config()),
    ("mix", cqt_config()),
    # 24 bins per octave from A2, hop 256.
    ("mix", cqt_config(f_min_hz=110.0, n_bins=72, bins_per_octave=24, hop_length=256)),
    # Early downsampling by 2, shorter filters, tuning.
    ("tones", cqt_config(f_min_hz=110.0, n_bins=48, hop_length=384, filter_scale=0.8, tuning=0.2)),
    ("noise", cqt_config(f_min_hz=110.0, n_bins=48, hop_length=384, filter_scale=0.8, tuning=0.2)),
    # Early downsampling by 8 (top bin B3).
    ("mix", cqt_config(f_min_hz=float(librosa.note_to_hz("C2")), n_bins=36, hop_length=256)),
    # Odd hop: every octave at the full rate.
    ("mix", cqt_config(f_min_hz=55.0, n_bins=48, hop_length=441)),
    # No sparsification (early downsampling by 2).
    ("mix", cqt_config(f_min_hz=float(librosa.note_to_hz("C2")), n_bins=60, sparsity=0.0)),
]

CHROMA_PLAN = [
    ("chirp", chroma_config()),
    ("tones", chroma_config()),
    ("noise", chroma_config()),
    ("mix", chroma_config()),
    ("mix", chroma_config(n_fft=1024, win_length=800, hop_length=256, tuning=0.3, center=False)),
    ("tones", chroma_config(n_chroma=24, n_fft=4096, win_length=4096)),
    ("tones", chroma_config(source="cqt")),
    ("mix", chroma_config(source="cqt")),
    ("mix", chroma_config(source="cqt", bins_per_octave=12, n_octaves=6,
                          f_min_hz=float(librosa.note_to_hz("C2")), tuning=-0.2, hop_length=256)),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    signals = make_signals()
    meta = {
        "generator": "scripts/golden_music.py", "librosa": librosa.__version__,
        "numpy": np.__version__, "scipy": scipy.__version__, "soxr": soxr.__version__,
        "seed": SEED,
    }
    as_f64 = {k: v.astype(np.float64) / 32768.0 for k, v in signals.items()}

    cqt_cases = []
    for name, c in CQT_PLAN:
        mag = librosa_cqt(as_f64[name], c)
        cqt_cases.append({"signal": name, "config": c, "shape": list(mag.shape),
                          "magnitude": g7(mag)})
    # One float32 run (librosa's usual mode: complex64 throughout) for the record.
    mag32 = librosa_cqt(as_f64["mix"].astype(np.float32), cqt_config())
    cqt_cases.append({"signal": "mix", "config": cqt_config(), "shape": list(mag32.shape),
                      "magnitude": g7(mag32), "librosa_dtype": "float32"})

    chroma_cases = []
    for name, c in CHROMA_PLAN:
        ch = librosa_chroma(as_f64[name], c)
        chroma_cases.append({"signal": name, "config": c, "shape": list(ch.shape),
                             "expected": g7(ch)})
    filterbanks = []
    for c in [chroma_config(n_fft=256), chroma_config(n_fft=510, tuning=0.3),
              chroma_config(n_chroma=24, n_fft=128)]:
        fb = librosa.filters.chroma(sr=c["sample_rate_hz"], n_fft=c["n_fft"], tuning=c["tuning"],
                                    n_chroma=c["n_chroma"])
        filterbanks.append({"config": c, "shape": list(fb.shape), "weights": f32(fb)})
    freqs = [{"config": c, "hz": librosa.cqt_frequencies(
        n_bins=c["n_bins"], fmin=c["f_min_hz"] * 2 ** (c["tuning"] / c["bins_per_octave"]),
        bins_per_octave=c["bins_per_octave"]).tolist()} for _, c in CQT_PLAN[2:5]]

    files = {
        "music_signals.json": {"meta": meta, "sample_rate_hz": SR, "signals": {
            k: base64.b64encode(v.tobytes()).decode() for k, v in signals.items()}},
        "cqt.json": {"meta": meta, "cases": cqt_cases, "frequencies": freqs},
        "chroma.json": {"meta": meta, "cases": chroma_cases, "filterbanks": filterbanks},
    }
    for name, content in files.items():
        path = os.path.join(args.out, name)
        with open(path, "w") as f:
            json.dump(content, f, separators=(",", ":"))
            f.write("\n")
        print(f"{path}: {os.path.getsize(path) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
