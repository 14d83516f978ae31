"""Supervised peer for the MSTAR SOC benchmark (issue 11): a small CNN in PyTorch trained
from scratch on the same split, the same labelled budget (1, 5, 10 chips per class or all)
and the same input as Tessera's views: the 8-bit magnitude in dB (20 log10), standardised,
64 x 64 px crops (training: random crops within +-8 px of the centre and the same 8
flips/rotations; test: the centre crop).

Needs torch and numpy (benchmarks/setup_torch.sh) plus pillow and scikit-learn
(`$PY -m pip install pillow scikit-learn`).
Usage: python benchmarks/eo_peers.py runs/eo/mstar.csv runs/eo/peers.csv [seeds...]
Environment: PEER_K (default `1,5,10,all`), PEER_STEPS_ALL (default 1500 steps of 32 with
all labels), PEER_STEPS_K (default 600 with k per class).
Writes one CSV row per (k, seed): k,seed,accuracy,macro_f1,train_s.
"""
import csv
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from sklearn.metrics import f1_score

torch.set_num_threads(2)
manifest, out = sys.argv[1], sys.argv[2]
seeds = [int(s) for s in sys.argv[3:]] or [0, 1, 2]
rows = list(csv.DictReader(open(manifest)))
classes = sorted({r["label"] for r in rows})


def load(r):
    a = np.asarray(Image.open(r["path"]), dtype=np.float32)
    return 20 * np.log10(np.maximum(a, 0) + 1e-10).clip(0, 50)


X = np.stack([load(r) for r in rows])
y = np.array([classes.index(r["label"]) for r in rows])
train = np.array([r["split"] == "train" for r in rows])
mu, sd = X[train].mean(), X[train].std()
X = (X - mu) / sd
C, S = 64, 128


def crop(x, rng=None):
    o = (S - C) // 2
    if rng is None:
        return x[:, o:o + C, o:o + C]
    dy, dx = rng.integers(-8, 9, 2)
    v = x[:, o + dy:o + dy + C, o + dx:o + dx + C]
    t = rng.integers(0, 8)
    if t & 4:
        v = v.transpose(0, 2, 1)
    if t & 1:
        v = v[:, :, ::-1]
    if t & 2:
        v = v[:, ::-1, :]
    return v


class Net(nn.Module):
    def __init__(self, n):
        super().__init__()
        def block(a, b, k, pool=True):
            layers = [nn.Conv2d(a, b, k, padding=k // 2), nn.BatchNorm2d(b), nn.ReLU()]
            return layers + ([nn.MaxPool2d(2)] if pool else [])
        self.f = nn.Sequential(*block(1, 16, 5), *block(16, 32, 5), *block(32, 64, 3), *block(64, 128, 3, False))
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(128, n))

    def forward(self, x):
        return self.head(self.f(x).mean((2, 3)))


def run(k, seed):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    idx = np.where(train)[0]
    if k:
        idx = np.concatenate([rng.permutation(idx[y[idx] == c])[:k] for c in range(len(classes))])
    steps = int(os.environ.get("PEER_STEPS_ALL", 1500)) if not k else int(os.environ.get("PEER_STEPS_K", 600))
    net = Net(len(classes))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t = time.perf_counter()
    net.train()
    for _ in range(steps):
        b = rng.choice(idx, size=min(32, len(idx)), replace=len(idx) < 32)
        xb = torch.from_numpy(np.stack([crop(X[i][None], rng).copy() for i in b]))
        loss = nn.functional.cross_entropy(net(xb), torch.from_numpy(y[b]), label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    train_s = time.perf_counter() - t
    net.eval()
    test = np.where(~train)[0]
    pred = []
    with torch.no_grad():
        for a in range(0, len(test), 256):
            xb = torch.from_numpy(np.stack([crop(X[i][None]).copy() for i in test[a:a + 256]]))
            pred.append(net(xb).argmax(1).numpy())
    pred = np.concatenate(pred)
    acc = float((pred == y[test]).mean())
    f1 = float(f1_score(y[test], pred, average="macro"))
    return acc, f1, train_s


with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["k", "seed", "accuracy", "macro_f1", "train_s"])
    for k in [0 if x == "all" else int(x) for x in os.environ.get("PEER_K", "1,5,10,all").split(",")]:
        for s in seeds:
            acc, f1, ts = run(k, s)
            w.writerow([k or "all", s, f"{acc:.4f}", f"{f1:.4f}", f"{ts:.0f}"])
            f.flush()
            print(f"k={k or 'all'} seed={s} acc={acc:.4f} f1={f1:.4f} ({ts:.0f} s)", flush=True)
            # The same row for tessera-bench (every JSON line of the output is a row).
            print(json.dumps({"features": f"{k} per class" if k else "all labels",
                              "seed": s, "accuracy": acc, "macro_f1": f1, "k": k, "train_s": ts}), flush=True)
