#!/usr/bin/env python3
"""From-scratch 3-D U-Net peer for few-label hippocampus segmentation (MSD Task04) in PyTorch on CPU.

Split: benchmarks/msd_hippocampus_split.csv (image,label,split; paths relative to the CSV's
folder). Trains on the `labelled` cases only (26, 10%) and evaluates on the `test` cases (52);
the `unlabelled` cases are not used (this is the no-pretraining baseline).

- loading: nibabel, reoriented with as_closest_canonical (RAS); spacing from the header zooms;
- normalisation (Tessera's MRI normalisation): clip to the 0.5/99.5 percentiles of the
  non-zero voxels, z-score over the non-zero voxels, background (zero voxels) set to 0;
- model: 3-D U-Net 16-32-64, per level two (3x3x3 conv + InstanceNorm(affine) + LeakyReLU(0.01)),
  2x max-pool down, 2x transposed conv up, skip concatenation, 1x1x1 conv to 3 classes;
- training: random crops (32^3), volumes smaller than the crop zero-padded (labels with 0),
  2/3 of the crops centred on a random foreground voxel, optional random flips, AdamW,
  loss = cross-entropy + soft Dice over the foreground classes (computed over the batch),
  for a wall-clock budget (--minutes) or a step count (--steps);
- evaluation: whole-volume inference (each spatial dim zero-padded up to a multiple of 4,
  then cropped back), argmax, per class (1 anterior, 2 posterior) Dice and HD95 in mm.

HD95 follows medpy.metric.binary: surface = mask XOR binary_erosion(mask, 6-connectivity),
directed distances via scipy.ndimage.distance_transform_edt with the voxel spacing. Two
summaries are reported: `hd95` = medpy's hd95 (95th percentile of both directed distance
sets pooled) and `hd95_maxdir` = max of the two directed 95th percentiles. If the prediction
of a class is empty, medpy raises; here that case's HD95 is set to the volume diagonal in mm
and counted in `hd95_empty`.
"""

import argparse
import csv
import json
import math
import os
import time

import nibabel as nib
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
CLASS_NAMES = {1: "anterior", 2: "posterior"}


# ---------------------------------------------------------------- data
def normalise_mri(img):
    """Clip to the 0.5/99.5 percentiles of the non-zero voxels, z-score over them, background 0."""
    img = img.astype(np.float32)
    nz = img != 0
    if not nz.any():
        return np.zeros_like(img)
    lo, hi = np.percentile(img[nz], [0.5, 99.5])
    x = np.clip(img, lo, hi)
    vals = x[nz]
    mean, std = float(vals.mean()), float(vals.std())
    out = (x - mean) / max(std, 1e-8)
    out[~nz] = 0.0
    return out.astype(np.float32)


def load_case(image_path, label_path):
    im = nib.as_closest_canonical(nib.load(image_path))
    lb = nib.as_closest_canonical(nib.load(label_path))
    img = np.asarray(im.get_fdata(dtype=np.float32))
    lab = np.rint(np.asarray(lb.get_fdata(dtype=np.float32))).astype(np.int64)
    if img.shape != lab.shape:
        raise SystemExit(f"shape mismatch {image_path} {img.shape} vs {label_path} {lab.shape}")
    spacing = tuple(float(z) for z in im.header.get_zooms()[:3])
    name = os.path.basename(image_path).split(".")[0]
    return {"name": name, "image": normalise_mri(img), "label": lab, "spacing": spacing}


def read_split(path):
    base = os.path.dirname(os.path.abspath(path))
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["split"], []).append(
                (os.path.join(base, row["image"]), os.path.join(base, row["label"])))
    return out


def pad_to_at_least(img, lab, size):
    pads = []
    for s in img.shape:
        extra = max(size - s, 0)
        pads.append((extra // 2, extra - extra // 2))
    if any(p != (0, 0) for p in pads):
        img = np.pad(img, pads, constant_values=0)
        lab = np.pad(lab, pads, constant_values=0)
    return img, lab


class CropSampler:
    def __init__(self, cases, crop, fg_fraction, flip, rng):
        self.crop, self.fg_fraction, self.flip, self.rng = crop, fg_fraction, flip, rng
        self.items = []
        for c in cases:
            img, lab = pad_to_at_least(c["image"], c["label"], crop)
            self.items.append((img, lab, np.argwhere(lab > 0)))

    def sample(self, batch):
        c = self.crop
        xs = np.empty((batch, 1, c, c, c), np.float32)
        ys = np.empty((batch, c, c, c), np.int64)
        for i in range(batch):
            img, lab, fg = self.items[self.rng.integers(len(self.items))]
            shape = np.array(img.shape)
            if len(fg) and self.rng.random() < self.fg_fraction:
                centre = fg[self.rng.integers(len(fg))]
                start = np.clip(centre - c // 2, 0, shape - c)
            else:
                start = np.array([self.rng.integers(s - c + 1) for s in shape])
            sl = tuple(slice(int(s), int(s) + c) for s in start)
            x, y = img[sl], lab[sl]
            if self.flip:
                for ax in range(3):
                    if self.rng.random() < 0.5:
                        x, y = np.flip(x, ax), np.flip(y, ax)
            xs[i, 0], ys[i] = x, y
        return torch.from_numpy(xs), torch.from_numpy(ys)


# ---------------------------------------------------------------- model
class ConvBlock(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(
            nn.Conv3d(cin, cout, 3, padding=1), nn.InstanceNorm3d(cout, affine=True), nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(cout, cout, 3, padding=1), nn.InstanceNorm3d(cout, affine=True), nn.LeakyReLU(0.01, inplace=True),
        )


class UNet3d(nn.Module):
    def __init__(self, in_ch=1, n_classes=3, widths=(16, 32, 64)):
        super().__init__()
        self.down = nn.ModuleList()
        c = in_ch
        for w in widths:
            self.down.append(ConvBlock(c, w))
            c = w
        self.ups = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.ups.append(nn.ConvTranspose3d(c, w, 2, stride=2))
            self.up_blocks.append(ConvBlock(2 * w, w))
            c = w
        self.head = nn.Conv3d(c, n_classes, 1)

    def forward(self, x):
        skips = []
        for i, blk in enumerate(self.down):
            x = blk(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = F.max_pool3d(x, 2)
        for up, blk in zip(self.ups, self.up_blocks):
            x = up(x)
            x = blk(torch.cat([skips.pop(), x], dim=1))
        return self.head(x)


def dice_ce_loss(logits, target, n_classes=3, smooth=1e-5):
    ce = F.cross_entropy(logits, target)
    prob = logits.softmax(dim=1)
    onehot = F.one_hot(target, n_classes).permute(0, 4, 1, 2, 3).to(prob.dtype)
    dims = (0, 2, 3, 4)  # batch dice: sums over batch and space
    inter = (prob * onehot).sum(dims)
    denom = prob.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + smooth) / (denom + smooth)
    return ce + (1.0 - dice[1:].mean()), ce


# ---------------------------------------------------------------- metrics
def surface_distances(result, reference, spacing):
    """medpy.metric.binary.__surface_distances with connectivity 1."""
    fp = ndimage.generate_binary_structure(result.ndim, 1)
    r_border = result ^ ndimage.binary_erosion(result, structure=fp, iterations=1)
    g_border = reference ^ ndimage.binary_erosion(reference, structure=fp, iterations=1)
    dt = ndimage.distance_transform_edt(~g_border, sampling=spacing)
    return dt[r_border]


def hd95_both(pred, ref, spacing):
    """(medpy hd95 = 95th pct of pooled directed distances, max of directed 95th pcts)."""
    d1 = surface_distances(pred, ref, spacing)
    d2 = surface_distances(ref, pred, spacing)
    pooled = float(np.percentile(np.hstack((d1, d2)), 95))
    maxdir = float(max(np.percentile(d1, 95), np.percentile(d2, 95)))
    return pooled, maxdir


def dice(pred, ref):
    s = pred.sum() + ref.sum()
    return 1.0 if s == 0 else float(2.0 * np.logical_and(pred, ref).sum() / s)


@torch.no_grad()
def predict(model, img):
    shape = img.shape
    padded = [int(math.ceil(s / 4) * 4) for s in shape]
    x = np.zeros(padded, np.float32)
    x[: shape[0], : shape[1], : shape[2]] = img
    logits = model(torch.from_numpy(x)[None, None])
    return logits[0, :, : shape[0], : shape[1], : shape[2]].argmax(0).numpy()


def evaluate(model, cases, predict_fn=predict):
    """Per-case Dice and HD95 (both conventions) of `predict_fn(model, image)` labels."""
    model.eval()
    rows = []
    for c in cases:
        pred = predict_fn(model, c["image"])
        row = {"case": c["name"]}
        diag = float(np.sqrt(sum((n * s) ** 2 for n, s in zip(pred.shape, c["spacing"]))))
        for k in CLASS_NAMES:
            p, g = pred == k, c["label"] == k
            row[f"dice_{k}"] = dice(p, g)
            if p.any() and g.any():
                row[f"hd95_{k}"], row[f"hd95_maxdir_{k}"] = hd95_both(p, g, c["spacing"])
                row[f"empty_{k}"] = 0
            else:
                row[f"hd95_{k}"] = row[f"hd95_maxdir_{k}"] = diag
                row[f"empty_{k}"] = 1
        rows.append(row)
    model.train()
    return rows


def train_loop(step, max_steps, budget_s):
    """Runs `step(i) -> loss` until `max_steps` (None: no cap) or `budget_s` seconds (None: no
    cap), logging a smoothed loss every 50 steps. Returns (steps, seconds, smoothed loss)."""
    steps, loss_ema = 0, None
    t0 = time.perf_counter()
    while max_steps is None or steps < max_steps:
        if budget_s is not None and time.perf_counter() - t0 >= budget_s:
            break
        lv = step(steps)
        steps += 1
        if not math.isfinite(lv):
            raise SystemExit(f"non-finite loss {lv} at step {steps}")
        loss_ema = lv if loss_ema is None else 0.95 * loss_ema + 0.05 * lv
        if steps % 50 == 0:
            print(f"step {steps} loss {loss_ema:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return steps, time.perf_counter() - t0, loss_ema


def scores(rows):
    """The result-line fields of per-case rows: mean Dice and HD95 per class and overall."""
    def mean(key):
        return round(float(np.mean([r[key] for r in rows])), 4)

    d1, d2 = mean("dice_1"), mean("dice_2")
    h1, h2 = mean("hd95_1"), mean("hd95_2")
    return {
        "dice_1": d1,
        "dice_2": d2,
        "hd95_1": h1,
        "hd95_2": h2,
        "dice_anterior": d1,
        "dice_posterior": d2,
        "dice_mean": round((d1 + d2) / 2, 4),
        "hd95_anterior": h1,
        "hd95_posterior": h2,
        "hd95_mean": round((h1 + h2) / 2, 4),
        "hd95_maxdir_anterior": mean("hd95_maxdir_1"),
        "hd95_maxdir_posterior": mean("hd95_maxdir_2"),
        "hd95_empty": [sum(r["empty_1"] for r in rows), sum(r["empty_2"] for r in rows)],
    }


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default=os.path.join(HERE, "msd_hippocampus_split.csv"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=12.0, help="training wall-clock budget (ignored with --steps)")
    ap.add_argument("--steps", type=int, default=None, help="train exactly this many steps instead of --minutes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (torch default)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--crop", type=int, default=32)
    ap.add_argument("--fg-fraction", type=float, default=2.0 / 3.0, help="share of crops centred on a foreground voxel")
    ap.add_argument("--flip", action="store_true", help="random flips along each axis (off by default)")
    ap.add_argument("--out", default=None, help="write per-case metrics CSV here")
    a = ap.parse_args()
    if a.crop % 4:
        ap.error("--crop must be a multiple of 4")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    split = read_split(a.split)
    t_load = time.perf_counter()
    train_cases = [load_case(i, l) for i, l in split["labelled"]]
    test_cases = [load_case(i, l) for i, l in split["test"]]
    load_s = time.perf_counter() - t_load

    model = UNet3d()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"seg_unet_torch: U-Net 16-32-64, {n_params} parameters; {len(train_cases)} labelled, "
          f"{len(test_cases)} test cases (loaded in {load_s:.1f} s)", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    sampler = CropSampler(train_cases, a.crop, a.fg_fraction, a.flip, rng)

    model.train()

    def step(_):
        x, y = sampler.sample(a.batch_size)
        loss, _ = dice_ce_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    budget = None if a.steps is not None else a.minutes * 60.0
    steps, train_s, loss_ema = train_loop(step, a.steps, budget)

    t1 = time.perf_counter()
    rows = evaluate(model, test_cases)
    eval_s = time.perf_counter() - t1

    if a.out:
        with open(a.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            w.writeheader()
            for r in rows:
                w.writerow({k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()})

    print(json.dumps({
        "impl": "pytorch-unet3d",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "params": n_params,
        "train_cases": len(train_cases),
        "test_cases": len(test_cases),
        **scores(rows),
        "steps": steps,
        "train_seconds": round(train_s, 1),
        "eval_seconds": round(eval_s, 1),
        "final_loss": round(loss_ema, 4) if loss_ema is not None else None,
        "batch_size": a.batch_size,
        "crop": a.crop,
        "lr": a.lr,
        "seed": a.seed,
    }))


if __name__ == "__main__":
    main()
