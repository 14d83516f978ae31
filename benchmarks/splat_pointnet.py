"""PyTorch peer for the ModelNet10 benchmark (issue 13): PointNet (Qi et al. 2017, without
the T-nets) trained from scratch on the same 400 training clouds (40 per class) and scored
on the full official test split (908), with the same normalisation (centroid, unit sphere)
and the same training augmentation as tessera-splat (per-axis scale in [2/3, 3/2],
translation in +-0.2). Prints one CSV line per seed: seed,steps,accuracy,balanced_accuracy.
Usage: benchmarks/.venv/bin/python benchmarks/splat_pointnet.py ../shared/data/splat STEPS SEED..."""
import csv
import pathlib
import sys
import time

import numpy as np
import torch
from torch import nn

torch.set_num_threads(2)
root = pathlib.Path(sys.argv[1]) / "modelnet10_pcd1024"
steps = int(sys.argv[2])
seeds = [int(s) for s in sys.argv[3:]] or [0]
rows = list(csv.DictReader(open(root / "labels.csv")))
classes = sorted({r["class"] for r in rows})


def load(split):
    x = np.load(root / f"points_{split}.npy").astype(np.float32)
    x = x - x.mean(axis=1, keepdims=True)
    x = x / np.linalg.norm(x, axis=2).max(axis=1)[:, None, None]
    y = np.array([classes.index(r["class"]) for r in rows if r["split"] == split])
    return torch.from_numpy(x), torch.from_numpy(y)


xtr, ytr = load("train")
xte, yte = load("test")


class PointNet(nn.Module):
    def __init__(self, k):
        super().__init__()
        dims = [3, 64, 64, 64, 128, 1024]
        layers = []
        for a, b in zip(dims, dims[1:]):
            layers += [nn.Conv1d(a, b, 1), nn.BatchNorm1d(b), nn.ReLU()]
        self.feat = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(1024, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(512, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(256, k))

    def forward(self, x):  # x [B, N, 3]
        return self.head(self.feat(x.transpose(1, 2)).max(dim=2).values)


print("seed,steps,accuracy,balanced_accuracy,seconds")
for seed in seeds:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = PointNet(len(classes))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0 = time.time()
    net.train()
    for step in range(steps):
        idx = torch.randint(0, len(xtr), (32,), generator=g)
        x = xtr[idx]
        s = torch.empty(32, 1, 3).uniform_(2 / 3, 1.5, generator=g)
        t = torch.empty(32, 1, 3).uniform_(-0.2, 0.2, generator=g)
        loss = nn.functional.cross_entropy(net(x * s + t), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(xte[i:i + 128]).argmax(1) for i in range(0, len(xte), 128)])
    acc = (pred == yte).float().mean().item()
    bal = np.mean([(pred[yte == c] == c).float().mean().item() for c in range(len(classes))])
    print(f"{seed},{steps},{acc:.4f},{bal:.4f},{time.time() - t0:.0f}", flush=True)
