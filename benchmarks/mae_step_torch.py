#!/usr/bin/env python3
"""Times one MAE training step (mask + forward + backward + AdamW) in PyTorch on CPU.

The model mirrors Tessera's (crates/core/src/{layers,encoder,posenc}.rs and
crates/recipes/src/mae.rs, crates/train/src/optim.rs):

- tokens: [B, 1, F, T] spectrogram -> N = (F/pf)*(T/pt) patches of P = pf*pt values,
  frequency-major, row-major inside a patch; coords (centre Hz, centre s) per token;
- masking on the data before the network: per sample a random permutation, the first
  round(N*ratio) are masked, the rest visible, each set sorted by original index;
- encoder: patch_embed Linear(P, D) + fixed Fourier coordinate encoding
  (coords @ W [K, K*F] block-diagonal, F = D/(2K), wavelengths geometric from
  scale/128 to 4*scale, then cat(sin, cos), zero-padded to D), CLS prepended,
  pre-norm blocks (LN eps 1e-6, qkv with bias, exact GELU MLP ratio 4), final LN;
- decoder: Linear(D, Dd) on CLS and visible outputs (+ Fourier encoding at Dd for the
  visible ones), learned mask token + Fourier encoding of masked coords, cat
  [cls, visible, masked] -> pre-norm blocks -> LN -> Linear(Dd, P) on the masked part;
- loss: MSE against per-token normalised targets (unbiased var, +1e-6), mean over P,
  then mean over masked tokens;
- AdamW(lr 1e-4, betas (0.9, 0.95), eps 1e-8, wd 0.05 on Linear weights only, like
  Tessera's Decay::Yes/No split), global-norm clipping to 1.0.

All samples have the same length, so Tessera's padding attention bias is all zeros and
is omitted here. Tokenisation happens once (Tessera does it in the data loader); the
masking, gathers and target normalisation are inside the timed step.
"""

import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- coordinates
class FourierEncoding(nn.Module):
    """coords [B, N, K] -> [B, N, dim]; fixed (a buffer, not a parameter)."""

    def __init__(self, scales, dim, min_wavelength=1.0 / 128.0, max_wavelength=4.0):
        super().__init__()
        k = len(scales)
        f = dim // (2 * k)
        w = torch.zeros(k, k * f, dtype=torch.float64)
        for a, s in enumerate(scales):
            lo, hi = s * min_wavelength, s * max_wavelength
            for j in range(f):
                t = j / (f - 1) if f > 1 else 0.0
                lam = lo * (hi / lo) ** t
                w[a, a * f + j] = 2.0 * math.pi / lam
        self.register_buffer("w", w.float())
        self.dim = dim
        self.used = 2 * k * f

    def forward(self, coords):
        ang = coords @ self.w
        parts = [torch.sin(ang), torch.cos(ang)]
        if self.used < self.dim:
            parts.append(ang.new_zeros(*ang.shape[:-1], self.dim - self.used))
        return torch.cat(parts, dim=-1)


# ---------------------------------------------------------------- blocks
class Attention(nn.Module):
    def __init__(self, dim, heads, sdpa=False):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)
        self.sdpa = sdpa

    def forward(self, x):
        b, n, d = x.shape
        h = self.heads
        dh = d // h
        qkv = self.qkv(x).reshape(b, n, 3, h, dh).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v)
        else:
            att = (q * (1.0 / math.sqrt(dh))) @ k.transpose(-2, -1)
            att = att.softmax(dim=-1)
            y = att @ v
        y = y.transpose(1, 2).reshape(b, n, d)
        return self.proj(y)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact (erf)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio=4.0, eps=1e-6, sdpa=False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, sdpa)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(round(dim * mlp_ratio)))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


# ---------------------------------------------------------------- model
class Encoder(nn.Module):
    def __init__(self, patch_dim, scales, dim, depth, heads, eps=1e-6, sdpa=False):
        super().__init__()
        self.patch_embed = nn.Linear(patch_dim, dim)
        self.coord_enc = FourierEncoding(scales, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, 4.0, eps, sdpa) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, values, coords):
        x = self.patch_embed(values) + self.coord_enc(coords)
        b, _, d = x.shape
        x = torch.cat([self.cls_token.expand(b, 1, d), x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return x[:, :1], x[:, 1:]  # cls [B,1,D], patches [B,N,D]


class Mae(nn.Module):
    def __init__(self, a, patch_dim, scales):
        super().__init__()
        self.encoder = Encoder(patch_dim, scales, a.dim, a.depth, a.heads, sdpa=a.sdpa)
        dd = a.decoder_dim
        self.decoder_embed = nn.Linear(a.dim, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.coord_enc = FourierEncoding(scales, dd)
        self.decoder_blocks = nn.ModuleList([Block(dd, a.decoder_heads, 4.0, 1e-6, a.sdpa) for _ in range(a.decoder_depth)])
        self.decoder_norm = nn.LayerNorm(dd, eps=1e-6)
        self.decoder_pred = nn.Linear(dd, patch_dim)
        self._init()

    def _init(self):
        # Tessera: Linear weights Xavier-uniform, biases 0, LN 1/0, tokens trunc-normal(0.02).
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for p in (self.encoder.cls_token, self.mask_token):
            nn.init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04)

    def forward(self, vis_v, vis_c, msk_c):
        cls, patches = self.encoder(vis_v, vis_c)
        nv, nm = vis_c.shape[1], msk_c.shape[1]
        cls = self.decoder_embed(cls)
        visible = self.decoder_embed(patches) + self.coord_enc(vis_c)
        queries = self.coord_enc(msk_c) + self.mask_token
        x = torch.cat([cls, visible, queries], dim=1)
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x[:, 1 + nv:1 + nv + nm])
        return self.decoder_pred(x)


# ---------------------------------------------------------------- data
def tokenize(spec, pf, pt, hop_s=0.01, f_max=8000.0):
    """[B, 1, Fb, T] -> values [B, N, pf*pt], coords [B, N, 2] (Hz, s)."""
    b, _, fb, t = spec.shape
    rows, cols = fb // pf, t // pt
    x = spec[:, 0, : rows * pf, : cols * pt].reshape(b, rows, pf, cols, pt)
    values = x.permute(0, 1, 3, 2, 4).reshape(b, rows * cols, pf * pt).contiguous()
    bin_hz = torch.arange(1, fb + 1, dtype=torch.float32) * f_max / (fb + 1)  # monotone bin centres
    hz = bin_hz[: rows * pf].reshape(rows, pf).mean(1)  # [rows]
    sec = (torch.arange(cols, dtype=torch.float32) * pt + (pt - 1) / 2.0) * hop_s  # [cols]
    coords = torch.stack(torch.broadcast_tensors(hz[:, None], sec[None, :]), dim=-1).reshape(1, rows * cols, 2)
    return values, coords.expand(b, -1, -1).contiguous()


def random_mask(values, coords, ratio, gen):
    b, n, _ = values.shape
    n_mask = int(round(n * ratio))
    n_mask = min(max(n_mask, 1), n - 1) if n >= 2 else 0
    perm = torch.rand(b, n, generator=gen).argsort(dim=1)
    m_idx = perm[:, :n_mask].sort(dim=1).values
    v_idx = perm[:, n_mask:].sort(dim=1).values
    rows = torch.arange(b)[:, None]
    return values[rows, v_idx], coords[rows, v_idx], values[rows, m_idx], coords[rows, m_idx]


def norm_targets(v):
    mean = v.mean(dim=-1, keepdim=True)
    var = v.var(dim=-1, keepdim=True, unbiased=True)
    return (v - mean) / torch.sqrt(var + 1e-6)


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--freq-bins", type=int, default=128)
    ap.add_argument("--frames", type=int, default=1024)
    ap.add_argument("--patch", type=int, nargs=2, default=[16, 16])
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--decoder-dim", type=int, default=128)
    ap.add_argument("--decoder-depth", type=int, default=2)
    ap.add_argument("--decoder-heads", type=int, default=4)
    ap.add_argument("--mask-ratio", type=float, default=0.75)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sdpa", action="store_true", help="use F.scaled_dot_product_attention instead of matmul-softmax")
    ap.add_argument("--profile", metavar="JSON", help="profile the timed steps with torch.profiler and write self-CPU time per operator to JSON")
    a = ap.parse_args()
    if a.steps < 1:
        ap.error("--steps must be >= 1")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    pf, pt = a.patch
    hop_s, f_max = 0.01, 8000.0
    scales = [f_max, max(a.frames * hop_s, 0.1)]  # Tessera: (sample_rate/2 Hz, duration s)
    spec = torch.randn(a.batch_size, 1, a.freq_bins, a.frames, generator=gen)  # normalised log-mel
    values, coords = tokenize(spec, pf, pt, hop_s, f_max)

    model = Mae(a, pf * pt, scales)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim == 2]  # Linear weights
    no_decay = [p for n, p in model.named_parameters() if p.ndim != 2]  # biases, LN, tokens
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-4, betas=(0.9, 0.95), eps=1e-8,
    )
    params = list(model.parameters())

    phases = [0.0, 0.0, 0.0]  # forward + loss, backward, clipping + optimiser (seconds)

    def step():
        t0 = time.perf_counter()
        vis_v, vis_c, msk_v, msk_c = random_mask(values, coords, a.mask_ratio, gen)
        target = norm_targets(msk_v)
        pred = model(vis_v, vis_c, msk_c)
        loss = (pred - target).pow(2).mean(dim=-1).mean()
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        out = loss.item()
        for i, dt in enumerate((t1 - t0, t2 - t1, time.perf_counter() - t2)):
            phases[i] += dt
        return out

    for _ in range(a.warmup):
        step()
    phases[:] = [0.0, 0.0, 0.0]
    prof = None
    if a.profile:
        from torch.profiler import ProfilerActivity, profile
        prof = profile(activities=[ProfilerActivity.CPU])
        prof.__enter__()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    elapsed = time.perf_counter() - t0
    if prof is not None:
        prof.__exit__(None, None, None)
        ops = {e.key: e.self_cpu_time_total / 1e3 / a.steps for e in prof.key_averages()}
        with open(a.profile, "w") as f:
            json.dump({"step_ms": 1000.0 * elapsed / a.steps, "self_ms_per_step": ops}, f, indent=1)
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
        "forward_ms": round(1000.0 * phases[0] / a.steps, 1),
        "backward_ms": round(1000.0 * phases[1] / a.steps, 1),
        "optimiser_ms": round(1000.0 * phases[2] / a.steps, 1),
        "params_encoder": sum(p.numel() for p in model.encoder.parameters()),
        "attention": "sdpa" if a.sdpa else "matmul",
        "batch_size": a.batch_size,
        "tokens": values.shape[1],
        "steps": a.steps,
        "loss": round(loss, 5),
    }))


if __name__ == "__main__":
    main()
