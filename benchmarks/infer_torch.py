#!/usr/bin/env python3
"""Encoder inference in PyTorch eager (no grad) for the model Tessera exports: ViT-tiny
(192/12/3) on 1x128x1024 log-mel, 16x16 patches (512 tokens), the same architecture as
mae_step_torch.py's Encoder. Prints one JSON line per batch size with samples/s."""
import argparse
import json
import time

import torch

from mae_step_torch import Encoder


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=512)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    enc = Encoder(256, [8000.0, 10.23], 192, 12, 3).eval()
    for b in [int(x) for x in a.batches.split(",")]:
        values = torch.randn(b, a.tokens, 256)
        coords = torch.rand(b, a.tokens, 2) * torch.tensor([8000.0, 10.0])
        with torch.inference_mode():
            enc(values, coords)
            start = time.perf_counter()
            for _ in range(a.reps):
                enc(values, coords)
            dt = time.perf_counter() - start
        print(json.dumps({"batch": b, "tokens": a.tokens, "torch_samples_per_s": round(b * a.reps / dt, 2),
                          "torch": torch.__version__}))


if __name__ == "__main__":
    main()
