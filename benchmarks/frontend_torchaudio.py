"""Peer side of benchmarks/frontend.sh: torchaudio's log-mel (MelSpectrogram + log(x + 1e-6)),
Kaldi fbank (torchaudio.compliance.kaldi.fbank) and resampling (transforms.Resample, kernel
built once) with the same parameters and the same 10 s clip as
domains/audio/examples/frontend_bench.rs, on one thread; best of REPEAT passes of 20 clips,
as clips per second.
Usage: python frontend_torchaudio.py REPEAT"""
import sys
import time

import numpy as np
import torch
import torchaudio

torch.set_num_threads(1)
repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 5
i = np.arange(160_000)
x = (np.sin(i.astype(np.float32) * np.float32(0.0123)) * 0.5
     + ((i * 7919 % 1000).astype(np.float32) / 1000.0 - 0.5) * 0.1).astype(np.float32)
wave = torch.from_numpy(x)[None, :]

mel = torchaudio.transforms.MelSpectrogram(
    sample_rate=16000, n_fft=400, win_length=400, hop_length=160, n_mels=128, f_min=0.0,
    f_max=None, power=2.0, center=True, pad_mode="reflect", mel_scale="htk", norm=None)


def logmel():
    return torch.log(mel(wave) + 1e-6)


def fbank():
    return torchaudio.compliance.kaldi.fbank(
        wave, num_mel_bins=128, sample_frequency=16000, frame_length=25.0, frame_shift=10.0,
        low_freq=20.0, high_freq=0.0, preemphasis_coefficient=0.97, remove_dc_offset=True,
        window_type="povey", snip_edges=True, dither=0.0, use_energy=False)


ops = [("logmel", logmel), ("fbank", fbank)]
for a, b in [(16000, 44100), (44100, 16000), (48000, 16000)]:
    rs = torchaudio.transforms.Resample(a, b)
    ops.append((f"resample_{a}_{b}", lambda rs=rs: rs(wave)))

print("side,operation,clips_per_s")
with torch.inference_mode():
    for name, f in ops:
        f()
        best = 0.0
        for _ in range(repeat):
            t = time.perf_counter()
            for _ in range(20):
                f()
            best = max(best, 20 / (time.perf_counter() - t))
        print(f"torchaudio,{name},{best:.1f}")
