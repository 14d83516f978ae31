#!/usr/bin/env python3
"""Times one 3-D MAE training step (mask + forward + backward + AdamW) in PyTorch on CPU.

The volume peer of mae_step_torch.py: the model, masking, loss and optimiser are imported
from there unchanged (Tessera's encoder/decoder, Fourier coordinate encoding, init,
weight-decay split, norm_pix_loss, global-norm clipping to 1.0). Only the tokenisation
differs:

- input: B crops [B, 1, C, C, C] (axes z, y, x), C = 96 by default, spacing 1 mm;
- tokens: patch p^3 (16 by default) -> N = (C/p)^3 = 216 patches of P = p^3 = 4096 values,
  values inside a patch ordered (z, y, x) with x fastest, patches row-major over the patch
  grid with z slowest;
- coords K = 3 per token: (x, y, z) in mm of the patch centre measured from the crop's first
  voxel, (g*p + (p-1)/2) * spacing along each axis;
- Fourier scales = crop extent in mm per axis (C*spacing, C*spacing, C*spacing).

Default model is Tessera's `micro` preset: encoder 192 wide, depth 6, 3 heads; decoder 128
wide, depth 2, 4 heads; mask ratio 0.75. Tokenisation happens once (Tessera does it in the
data loader); masking, gathers and target normalisation are inside the timed step.
"""

import argparse
import json
import math
import resource
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mae_step_torch import Mae, norm_targets, random_mask  # noqa: E402


def tokenize_volume(vol, p, spacing=1.0):
    """[B, 1, Z, Y, X] -> values [B, N, p^3] ((z, y, x) in-patch, x fastest; z-slowest grid),
    coords [B, N, 3] = (x, y, z) mm of patch centres from the first voxel."""
    b, _, zd, yd, xd = vol.shape
    gz, gy, gx = zd // p, yd // p, xd // p
    x = vol[:, 0, : gz * p, : gy * p, : gx * p].reshape(b, gz, p, gy, p, gx, p)
    values = x.permute(0, 1, 3, 5, 2, 4, 6).reshape(b, gz * gy * gx, p * p * p).contiguous()

    def centres(g):
        return (torch.arange(g, dtype=torch.float32) * p + (p - 1) / 2.0) * spacing

    cz, cy, cx = torch.meshgrid(centres(gz), centres(gy), centres(gx), indexing="ij")
    coords = torch.stack([cx, cy, cz], dim=-1).reshape(1, gz * gy * gx, 3)
    return values, coords.expand(b, -1, -1).contiguous()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--crop", type=int, default=96, help="crop edge in voxels (cubic)")
    ap.add_argument("--patch", type=int, default=16, help="patch edge in voxels (cubic)")
    ap.add_argument("--spacing", type=float, default=1.0, help="voxel spacing in mm")
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--decoder-dim", type=int, default=128)
    ap.add_argument("--decoder-depth", type=int, default=2)
    ap.add_argument("--decoder-heads", type=int, default=4)
    ap.add_argument("--mask-ratio", type=float, default=0.75)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sdpa", action="store_true", help="use F.scaled_dot_product_attention instead of matmul-softmax")
    a = ap.parse_args()
    if a.steps < 1:
        ap.error("--steps must be >= 1")
    if a.crop % a.patch:
        ap.error("--crop must be a multiple of --patch")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    extent = a.crop * a.spacing
    scales = [extent, extent, extent]  # (x, y, z) mm
    vol = torch.randn(a.batch_size, 1, a.crop, a.crop, a.crop, generator=gen)  # normalised MRI
    values, coords = tokenize_volume(vol, a.patch, a.spacing)
    del vol

    model = Mae(a, a.patch ** 3, scales)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim == 2]  # Linear weights
    no_decay = [p for n, p in model.named_parameters() if p.ndim != 2]  # biases, LN, tokens
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-4, betas=(0.9, 0.95), eps=1e-8,
    )
    params = list(model.parameters())

    def step():
        vis_v, vis_c, msk_v, msk_c = random_mask(values, coords, a.mask_ratio, gen)
        target = norm_targets(msk_v)
        pred = model(vis_v, vis_c, msk_c)
        loss = (pred - target).pow(2).mean(dim=-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    elapsed = time.perf_counter() - t0
    if not math.isfinite(loss):
        raise SystemExit(f"non-finite loss {loss}")

    print(json.dumps({
        "impl": "pytorch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "samples_per_s": round(a.batch_size * a.steps / elapsed, 3),
        "step_ms": round(1000.0 * elapsed / a.steps, 2),
        # Peak resident memory of the process (Linux reports KiB).
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "params_encoder": sum(p.numel() for p in model.encoder.parameters()),
        "attention": "sdpa" if a.sdpa else "matmul",
        "batch_size": a.batch_size,
        "crop": a.crop,
        "patch": a.patch,
        "tokens": values.shape[1],
        "patch_values": values.shape[2],
        "steps": a.steps,
        "loss": round(loss, 5),
    }))


if __name__ == "__main__":
    main()
