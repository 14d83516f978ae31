#!/usr/bin/env python3
"""Golden values for each operator pattern the ONNX exporter emits (crates/export).

For every pattern (linear, layer norm, GELU, attention with a padding bias, Fourier
coordinate encoding, masked mean, grid patchify), this writes seeded inputs, parameters
and the float64 NumPy reference output to crates/export/tests/golden/ops.json. The Rust
test builds the one-pattern graph with `GraphBuilder`, runs it in ONNX Runtime and
compares. Needs only numpy (and scipy-free math.erf).

    python3 scripts/golden_onnx.py
"""
import json, math, pathlib
import numpy as np

rng = np.random.RandomState(7)
out = {}

def arr(a):
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "data": [float(v) for v in a.astype(np.float32).ravel()]}

def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)

# linear: y = x W^T + b
x = f32(rng.randn(2, 3, 5)); w = f32(rng.randn(4, 5)); b = f32(rng.randn(4))
out["linear"] = {"x": arr(x), "w": arr(w), "b": arr(b), "y": arr(x @ w.T + b)}

# layer norm over the last axis
x = f32(rng.randn(2, 3, 8) * 3 + 1); g = f32(rng.rand(8) + 0.5); bb = f32(rng.randn(8)); eps = 1e-6
m = x.mean(-1, keepdims=True); v = ((x - m) ** 2).mean(-1, keepdims=True)
out["layer_norm"] = {"x": arr(x), "w": arr(g), "b": arr(bb), "eps": eps,
                     "y": arr((x - m) / np.sqrt(v + eps) * g + bb)}

# exact GELU
x = f32(np.concatenate([rng.randn(16) * 3, [-8.0, -0.5, 0.0, 6.0]]))
erf = np.vectorize(math.erf)
out["gelu"] = {"x": arr(x), "y": arr(0.5 * x * (1 + erf(x / math.sqrt(2))))}

# attention on packed qkv [B,T,3D], heads H, key padding (1 = filler) -> [B,T,D]
B, T, D, H = 2, 5, 8, 2
qkv = f32(rng.randn(B, T, 3 * D)); pad = np.zeros((B, T)); pad[1, 3:] = 1
dh = D // H
q, k, vv = qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:]
split = lambda a: a.reshape(B, T, H, dh).transpose(0, 2, 1, 3)
q, k, vv = split(q), split(k), split(vv)
s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh) + (pad * -1e9)[:, None, None, :]
s = s - s.max(-1, keepdims=True); p = np.exp(s); p /= p.sum(-1, keepdims=True)
o = (p @ vv).transpose(0, 2, 1, 3).reshape(B, T, D)
out["attention"] = {"qkv": arr(qkv), "padding": arr(pad), "heads": H, "dim": D, "y": arr(o)}

# Fourier encoding: coords [B,N,K] @ W [K,F] -> [sin, cos, zeros] of width dim
K, Fa, dim = 2, 3, 14
W = np.zeros((K, K * Fa))
for a in range(K):
    W[a, a * Fa:(a + 1) * Fa] = f32(rng.rand(Fa) * 5)
c = f32(rng.rand(2, 4, K) * 10)
ang = c @ W
y = np.concatenate([np.sin(ang), np.cos(ang), np.zeros((2, 4, dim - 2 * K * Fa))], -1)
out["fourier"] = {"coords": arr(c), "w": arr(W), "dim": dim, "y": arr(y)}

# masked mean over real tokens
x = f32(rng.randn(2, 4, 3)); pad = np.zeros((2, 4)); pad[0, 2:] = 1
keep = 1 - pad
out["masked_mean"] = {"x": arr(x), "padding": arr(pad),
                      "y": arr((x * keep[..., None]).sum(1) / np.maximum(keep.sum(1, keepdims=True), 1))}

# grid front: [B,C,S1,S2] -> normalise, crop to whole patches, patchify, coordinates
B, C, S1, S2, p1, p2 = 2, 2, 7, 8, 2, 3
grid = f32(rng.randn(B, C, S1, S2) * 2 + 1); mean, std = 0.5, 2.0
n1, n2 = S1 // p1, S2 // p2
xn = (grid - mean) / std
xc = xn[:, :, :n1 * p1, :n2 * p2].reshape(B, C, n1, p1, n2, p2).transpose(0, 2, 4, 1, 3, 5)
values = xc.reshape(B, n1 * n2, C * p1 * p2)
table = f32([100.0, 250.0, 700.0, 1500.0])  # longer than n1: the graph slices it
off, step = 0.015, 0.03
cc = np.stack(np.meshgrid(table[:n1], off + step * np.arange(n2), indexing="ij"), -1).reshape(1, -1, 2)
out["grid_front"] = {"grid": arr(grid), "patch": [p1, p2], "channels": C, "mean": mean, "std": std,
                     "table": [float(t) for t in table], "offset": off, "step": step,
                     "values": arr(values), "coords": arr(np.repeat(cc, B, 0))}

path = pathlib.Path(__file__).resolve().parent.parent / "crates/export/tests/golden/ops.json"
path.write_text(json.dumps(out, indent=1) + "\n")
print("wrote", path)
