#!/usr/bin/env python3
"""From-scratch transformer segmentation peer of Tessera's protocol on MSD hippocampus, PyTorch on CPU.

Same split, loading, normalisation, crop sampling and metrics as seg_unet_torch.py (imported),
with Tessera's ViT segmentation model in place of the U-Net, to separate implementation from
architecture when comparing Tessera's transformer against the U-Net.

- tokens: a 32^3 crop (1 channel) -> N = 512 patches of 4^3 = 64 values; inside a patch the
  values are ordered (z, y, x) with x fastest; tokens are row-major over the 8x8x8 patch grid
  with z slowest; coords per token = (x, y, z) mm of the patch centre from the crop's first
  voxel, (g*4 + 1.5) * 1.0; Fourier coordinate scales (32, 32, 32);
- encoder: mae_step_torch.Encoder(64, scales, dim 192, depth 6, heads 3);
- head: LayerNorm(192) -> Linear(192, 64*3) per patch token (class-major, index c*64 + v)
  plus a skip Linear(64, 64*3, bias=False) on the token's own voxel values; logits summed;
- with --decoder conv (Tessera's `conv_layers = 1`): Linear(192, 64*8) per token (feature-major)
  -> 8 features per voxel, concatenated with the image -> Conv3d(9, 16, 3, padding 1) -> ReLU ->
  Conv3d(16, 3, 1); conv weights trunc-normal with std sqrt(2 / fan_in), biases 0;
- loss: voxel cross-entropy + soft Dice over all 3 classes over the whole batch;
- init: Linear weights Xavier-uniform, biases 0, LN 1/0, cls token trunc-normal(0.02);
- AdamW(lr 5e-4, betas (0.9, 0.999), wd 0.05 on Linear weights only), linear warmup 100
  steps then cosine to 1e-5 over --steps, global-norm clipping 1.0, batch 4;
- training stops at --steps or --minutes, whichever first;
- evaluation: sliding 32^3 windows, stride 16 (last window flush with the volume end;
  axes shorter than 32 zero-padded at the end), softmax averaged over overlaps, argmax.
"""

import argparse
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seg_unet_torch as U  # noqa: E402
from mae_step_torch import Encoder  # noqa: E402

CROP, PATCH, N_CLASSES = 32, 4, 3


# ---------------------------------------------------------------- tokens
def tokenize(x):
    """x [B, X, Y, Z] (canonical array axes) -> values [B, N, 64], N over (gz, gy, gx), z slowest;
    inside a patch (z, y, x) with x fastest."""
    b, nx, ny, nz = x.shape
    g = CROP // PATCH
    zyx = x.permute(0, 3, 2, 1)  # [B, Z, Y, X]
    t = zyx.reshape(b, g, PATCH, g, PATCH, g, PATCH)  # b gz pz gy py gx px
    t = t.permute(0, 1, 3, 5, 2, 4, 6)  # b gz gy gx pz py px
    return t.reshape(b, g * g * g, PATCH ** 3).contiguous()


def untokenize(logits, ch=N_CLASSES):
    """logits [B, N, C*64] (class-major) -> [B, C, X, Y, Z]."""
    b = logits.shape[0]
    g = CROP // PATCH
    t = logits.reshape(b, g, g, g, ch, PATCH, PATCH, PATCH)  # b gz gy gx c pz py px
    t = t.permute(0, 4, 1, 5, 2, 6, 3, 7)  # b c gz pz gy py gx px
    t = t.reshape(b, ch, CROP, CROP, CROP)  # b c Z Y X
    return t.permute(0, 1, 4, 3, 2)  # b c X Y Z


def token_coords(spacing=(1.0, 1.0, 1.0)):
    g = CROP // PATCH
    c = (torch.arange(g, dtype=torch.float32) * PATCH + (PATCH - 1) / 2.0)
    gz, gy, gx = torch.meshgrid(c, c, c, indexing="ij")
    xyz = torch.stack([gx * spacing[0], gy * spacing[1], gz * spacing[2]], dim=-1)
    return xyz.reshape(1, g * g * g, 3)


# ---------------------------------------------------------------- model
class VitSeg(nn.Module):
    def __init__(self, dim=192, depth=6, heads=3, scales=(32.0, 32.0, 32.0), decoder="linear"):
        super().__init__()
        p = PATCH ** 3
        self.encoder = Encoder(p, list(scales), dim, depth, heads)
        self.head_norm = nn.LayerNorm(dim, eps=1e-6)
        self.conv = decoder == "conv"
        if self.conv:
            self.head = nn.Linear(dim, p * 8)
            self.dec = nn.Sequential(nn.Conv3d(9, 16, 3, padding=1), nn.ReLU(), nn.Conv3d(16, N_CLASSES, 1))
        else:
            self.head = nn.Linear(dim, p * N_CLASSES)
            self.skip = nn.Linear(p, p * N_CLASSES, bias=False)
        self.register_buffer("coords", token_coords())
        self._init()

    def _init(self):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv3d):
                std = math.sqrt(2.0 / (m.weight[0].numel()))
                nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.encoder.cls_token, std=0.02, a=-0.04, b=0.04)

    def forward(self, x):
        """x [B, 1, 32, 32, 32] -> logits [B, 3, 32, 32, 32]."""
        v = tokenize(x[:, 0])
        _, patches = self.encoder(v, self.coords.expand(v.shape[0], -1, -1))
        if self.conv:
            feats = untokenize(self.head(self.head_norm(patches)), 8)
            return self.dec(torch.cat([feats, x], dim=1))
        logits = self.head(self.head_norm(patches)) + self.skip(v)
        return untokenize(logits)


def dice_ce_all(logits, target, smooth=1e-5):
    ce = F.cross_entropy(logits, target)
    prob = logits.softmax(dim=1)
    onehot = F.one_hot(target, N_CLASSES).permute(0, 4, 1, 2, 3).to(prob.dtype)
    dims = (0, 2, 3, 4)
    inter = (prob * onehot).sum(dims)
    denom = prob.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + smooth) / (denom + smooth)
    return ce + (1.0 - dice.mean())


def lr_at(step, total, peak=5e-4, floor=1e-5, warmup=100):
    if step < warmup:
        return peak * (step + 1) / warmup
    prog = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * prog))


# ---------------------------------------------------------------- evaluation
def starts(n):
    if n <= CROP:
        return [0]
    s = list(range(0, n - CROP + 1, CROP // 2))
    if s[-1] != n - CROP:
        s.append(n - CROP)
    return s


@torch.no_grad()
def predict(model, img, batch=8):
    shape = img.shape
    padded = [max(s, CROP) for s in shape]
    x = np.zeros(padded, np.float32)
    x[: shape[0], : shape[1], : shape[2]] = img
    xt = torch.from_numpy(x)
    acc = torch.zeros((N_CLASSES, *padded))
    cnt = torch.zeros(padded)
    pos = [(a, b, c) for a in starts(padded[0]) for b in starts(padded[1]) for c in starts(padded[2])]
    for i in range(0, len(pos), batch):
        chunk = pos[i:i + batch]
        xs = torch.stack([xt[a:a + CROP, b:b + CROP, c:c + CROP] for a, b, c in chunk])[:, None]
        prob = model(xs).softmax(dim=1)
        for (a, b, c), p in zip(chunk, prob):
            acc[:, a:a + CROP, b:b + CROP, c:c + CROP] += p
            cnt[a:a + CROP, b:b + CROP, c:c + CROP] += 1
    prob = acc / cnt
    return prob[:, : shape[0], : shape[1], : shape[2]].argmax(0).numpy()


def bench(model, opt, params, sampler, a):
    """Times whole steps (forward and loss, backward, clipping and AdamW at a fixed rate) on
    one batch of crops, split as Tessera's bench lines are."""
    x, y = sampler.sample(a.batch_size)
    for gr in opt.param_groups:
        gr["lr"] = 1e-4
    phases = [0.0, 0.0, 0.0]
    for i in range(a.warmup + a.bench_steps):
        t0 = time.perf_counter()
        loss = dice_ce_all(model(x), y)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        t3 = time.perf_counter()
        if i >= a.warmup:
            for k, d in enumerate((t1 - t0, t2 - t1, t3 - t2)):
                phases[k] += d
    total = sum(phases)
    n = a.bench_steps
    print(json.dumps({
        "impl": "pytorch",
        "threads": torch.get_num_threads(),
        "tokens": (CROP // PATCH) ** 3,
        "samples_per_s": round(a.batch_size * n / total, 3),
        "step_ms": round(1000 * total / n, 1),
        "forward_ms": round(1000 * phases[0] / n, 1),
        "backward_ms": round(1000 * phases[1] / n, 1),
        "optimiser_ms": round(1000 * phases[2] / n, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "decoder": a.decoder,
        "torch": torch.__version__,
    }), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default=os.path.join(U.HERE, "msd_hippocampus_split.csv"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=800, help="step budget (also the cosine schedule length)")
    ap.add_argument("--minutes", type=float, default=None, help="wall-clock training cap")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--fg-fraction", type=float, default=2.0 / 3.0)
    ap.add_argument("--decoder", choices=["linear", "conv"], default="linear")
    ap.add_argument("--bench-steps", type=int, default=None,
                    help="time this many steps on one batch of crops (after --warmup) and print "
                         "the JSON line of Tessera's `segment --bench-steps` instead of training")
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    split = U.read_split(a.split)
    t_load = time.perf_counter()
    train_cases = [U.load_case(i, l) for i, l in split["labelled"]]
    test_cases = [] if a.bench_steps else [U.load_case(i, l) for i, l in split["test"]]
    load_s = time.perf_counter() - t_load

    model = VitSeg(decoder=a.decoder)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"seg_vit_torch: ViT-seg d192x6h3, {n_params} parameters; {len(train_cases)} labelled, "
          f"{len(test_cases)} test cases (loaded in {load_s:.1f} s)", flush=True)
    decay, no_decay = [], []
    for m in model.modules():
        for name, p in m.named_parameters(recurse=False):
            weight = isinstance(m, (nn.Linear, nn.Conv3d)) and name == "weight"
            (decay if weight else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=5e-4, betas=(0.9, 0.999), eps=1e-8)
    params = list(model.parameters())
    sampler = U.CropSampler(train_cases, CROP, a.fg_fraction, False, rng)

    model.train()
    if a.bench_steps:
        bench(model, opt, params, sampler, a)
        return

    def step(i):
        for gr in opt.param_groups:
            gr["lr"] = lr_at(i, a.steps)
        x, y = sampler.sample(a.batch_size)
        loss = dice_ce_all(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    budget = None if a.minutes is None else a.minutes * 60.0
    steps, train_s, loss_ema = U.train_loop(step, a.steps, budget)

    t1 = time.perf_counter()
    rows = U.evaluate(model, test_cases, predict)
    eval_s = time.perf_counter() - t1

    print(json.dumps({
        "impl": "pytorch-vit-seg",
        "decoder": a.decoder,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "params": n_params,
        "train_cases": len(train_cases),
        "test_cases": len(test_cases),
        **U.scores(rows),
        "steps": steps,
        "step_budget": a.steps,
        "train_seconds": round(train_s, 1),
        "eval_seconds": round(eval_s, 1),
        "final_loss": round(loss_ema, 4) if loss_ema is not None else None,
        "batch_size": a.batch_size,
        "crop": CROP,
        "lr": 5e-4,
        "seed": a.seed,
    }))


if __name__ == "__main__":
    main()
