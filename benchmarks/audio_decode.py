"""Peer side of benchmarks/audio_decode.sh: decodes every file of each folder with
soundfile (libsndfile) or librosa.load (sr=None, mono=False: soundfile first, audioread
as its fallback), best of REPEAT, as float32.
Usage: python audio_decode.py soundfile|librosa REPEAT DIR..."""
import os
import sys
import time

import numpy as np

lib, repeat = sys.argv[1], int(sys.argv[2])
if lib == "soundfile":
    import soundfile as sf

    def load(p):
        return sf.read(p, dtype="float32", always_2d=True)[0]
else:
    import librosa

    def load(p):
        return librosa.load(p, sr=None, mono=False, dtype=np.float32)[0]

for d in sys.argv[3:]:
    files = sorted(os.path.join(d, f) for f in os.listdir(d))
    best, samples = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        samples = sum(load(f).size for f in files)
        best = min(best, time.perf_counter() - t0)
    print(f"{d},{len(files)},{samples},{best:.4f}")
