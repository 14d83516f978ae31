"""Peer side of benchmarks/splat_read.sh: plyfile + NumPy reading 3DGS PLY files into the same
activated arrays tessera-splat makes (positions, log-scales, sigmoid opacity, normalised
quaternions with w >= 0, f_dc, f_rest), and FPS + kNN grouping in PyTorch (the loop of
Point-MAE's CUDA-free fallback; kNN by cdist + topk) and NumPy.
Usage: python splat_read.py read REPEAT FILE... | group REPEAT GROUPS K FILE"""
import sys
import time

import numpy as np
from plyfile import PlyData



def best(f, repeat):
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        t.append(time.perf_counter() - t0)
    return min(t)


def read(path):
    v = PlyData.read(path)["vertex"].data
    pos = np.stack([v["x"], v["y"], v["z"]], 1)
    names = v.dtype.names
    if "opacity" in names:
        scale = np.stack([v[f"scale_{i}"] for i in range(3)], 1)
        op = 1 / (1 + np.exp(-v["opacity"]))
        q = np.stack([v[f"rot_{i}"] for i in range(4)], 1)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        q = np.where(q[:, :1] < 0, -q, q)
        dc = np.stack([v[f"f_dc_{i}"] for i in range(3)], 1)
        rest = [n for n in names if n.startswith("f_rest_")]
        sh = np.stack([v[n] for n in rest], 1) if rest else None
        return pos, scale, op, q, dc, sh
    return (pos,)


def fps_torch(x, m):
    n = x.shape[0]
    dist = torch.full((n,), float("inf"))
    idx = torch.empty(m, dtype=torch.long)
    cur = 0
    for i in range(m):
        idx[i] = cur
        dist = torch.minimum(dist, ((x - x[cur]) ** 2).sum(1))
        cur = int(torch.argmax(dist))
    return idx


def group(x, m, k):
    c = x[fps_torch(x, m)]
    return torch.cdist(c, x).topk(k, largest=False).indices


mode, repeat = sys.argv[1], int(sys.argv[2])
if mode == "read":
    for f in sys.argv[3:]:
        n = len(read(f)[0])
        print(f"read,{f},{n},{best(lambda: read(f), repeat):.4f}")
else:
    m, k, f = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    import torch  # only the grouping comparison needs PyTorch

    torch.set_num_threads(2)
    x = torch.from_numpy(np.ascontiguousarray(read(f)[0], dtype=np.float32))
    print(f"group,{len(x)},{m},{k},{best(lambda: group(x, m, k), repeat):.4f}")
