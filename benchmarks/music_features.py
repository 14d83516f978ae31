#!/usr/bin/env python3
"""librosa side of benchmarks/music_features.sh: CQT (defaults), chroma_stft and chroma_cqt
(tuning 0, no estimation) of one mono float32 signal at 22 050 Hz, best of REPEAT runs each.

    music_features.py make FILE.f32 [SECONDS]   # write the shared test signal
    music_features.py time FILE.f32 [REPEAT]    # print side,feature,bins,frames,seconds
"""

import sys
import time

import numpy as np

SR = 22050


def make(path, seconds=30.0):
    """A music-like mix: a bass line, chords of harmonic notes with decays, noise bursts."""
    rng = np.random.default_rng(0)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    x = np.zeros(n)
    beat = 0.5
    for i, start in enumerate(np.arange(0, seconds, beat)):
        root = 110.0 * 2 ** ([0, 5, 7, 3][i // 4 % 4] / 12)
        on = (t >= start) & (t < start + beat)
        tt = t[on] - start
        env = np.exp(-4 * tt) * np.minimum(1, tt / 0.01)
        x[on] += 0.3 * env * np.sin(2 * np.pi * root / 2 * tt)
        for interval in (0, 4, 7):
            f0 = 2 * root * 2 ** (interval / 12)
            x[on] += 0.08 * env * sum(np.sin(2 * np.pi * f0 * k * tt) / k for k in range(1, 7))
        burst = on & (t < start + 0.03)
        x[burst] += 0.2 * rng.standard_normal(burst.sum()) * np.exp(-(t[burst] - start) / 0.01)
    x.astype("<f4").tofile(path)


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, min(times)


def time_librosa(path, repeat):
    import librosa

    y = np.fromfile(path, dtype="<f4")
    feats = {
        "cqt": lambda: np.abs(librosa.cqt(y, sr=SR, tuning=0.0)),
        "chroma_stft": lambda: librosa.feature.chroma_stft(y=y, sr=SR, tuning=0.0),
        "chroma_cqt": lambda: librosa.feature.chroma_cqt(y=y, sr=SR, tuning=0.0),
    }
    for fn in feats.values():  # warm caches and numba
        fn()
    print("side,feature,bins,frames,seconds")
    for name, fn in feats.items():
        out, s = best(fn, repeat)
        print(f"librosa {librosa.__version__},{name},{out.shape[0]},{out.shape[1]},{s:.5f}")


if __name__ == "__main__":
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "make":
        make(path, float(sys.argv[3]) if len(sys.argv) > 3 else 30.0)
    else:
        time_librosa(path, int(sys.argv[3]) if len(sys.argv) > 3 else 5)
