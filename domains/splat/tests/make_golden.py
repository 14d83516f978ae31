"""Golden values for the splat reader, from plyfile + NumPy reading the real files of
../shared/data/splat (run: benchmarks/.venv/bin/python domains/splat/tests/make_golden.py).

For each file: the Gaussian count, and the first, middle and last Gaussian activated as the
INRIA 3DGS viewer does (sigmoid opacity, log-scales as stored, quaternion normalised with
w >= 0, f_dc as stored, f_rest channel-major as stored), plus column sums in float64."""
import json
import pathlib

import numpy as np
from plyfile import PlyData

ROOT = pathlib.Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "splat"
OUT = pathlib.Path(__file__).with_name("golden.json")


def activated(v, i, rest):
    q = np.array([v[f"rot_{k}"][i] for k in range(4)], dtype=np.float64)
    q /= np.linalg.norm(q)
    if q[0] < 0 or (q[0] == 0 and q[np.nonzero(q)[0][0]] < 0):
        q = -q
    return {
        "index": int(i),
        "pos": [float(v[a][i]) for a in "xyz"],
        "log_scale": [float(v[f"scale_{k}"][i]) for k in range(3)],
        "rot": q.tolist(),
        "opacity": float(1 / (1 + np.exp(-np.float64(v["opacity"][i])))),
        "dc": [float(v[f"f_dc_{k}"][i]) for k in range(3)],
        "rest": [float(v[f"f_rest_{k}"][i]) for k in range(rest)],
    }


def splat(rel):
    v = PlyData.read(ROOT / rel)["vertex"].data
    n = len(v)
    rest = len([p for p in v.dtype.names if p.startswith("f_rest_")])
    op = 1 / (1 + np.exp(-v["opacity"].astype(np.float64)))
    return {
        "path": rel,
        "count": n,
        "sh_rest": rest,
        "samples": [activated(v, i, rest) for i in (0, n // 2, n - 1)],
        "sum_pos": [float(v[a].astype(np.float64).sum()) for a in "xyz"],
        "sum_opacity": float(op.sum()),
        "extra": [p for p in v.dtype.names if not (p in "xyz" or p.startswith(("f_", "scale_", "rot_")) or p == "opacity")],
    }


def modelnet():
    a = np.load(ROOT / "modelnet10_pcd1024" / "points_test.npy", mmap_mode="r")
    return {
        "path": "modelnet10_pcd1024/points_test.npy",
        "shape": list(a.shape),
        "index": 123,
        "first": a[123, 0].astype(np.float64).tolist(),
        "last": a[123, -1].astype(np.float64).tolist(),
        "sum": a[123].astype(np.float64).sum(axis=0).tolist(),
    }


OUT.write_text(
    json.dumps(
        {
            "splats": [splat("v3dg_donut/fused.ply"), splat("supersplat_fruit_drops_labelled/fruit_drops_minimal.ply")],
            "modelnet": modelnet(),
        },
        indent=1,
    )
    + "\n"
)
print("wrote", OUT)
