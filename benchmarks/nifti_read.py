#!/usr/bin/env python3
"""NIfTI reading benchmark: nibabel side, and the test volume generator.

`--make DIR` writes DIR/phantom.nii and DIR/phantom.nii.gz: a 256x256x160 int16 head-like
phantom (nested smooth ellipsoids + Gaussian noise) with scl_slope 0.5 and scl_inter
-1024 set, sform RAS 1x1x1.2 mm; the .gz is gzip level 6 (the gzip tool's default). Otherwise, times nibabel reading each FILE to float32
(`np.asanyarray(img.dataobj, dtype=np.float32)`, scaling applied) and prints JSON lines
like the Rust example `read_bench`.
"""

import argparse
import gzip
import json
import os
import struct
import time

import nibabel as nib
import numpy as np


def make(out):
    os.makedirs(out, exist_ok=True)
    shape = (256, 256, 160)
    rng = np.random.default_rng(0)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij", sparse=True)
    r = (x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.85) ** 2
    vol = np.where(r < 1, 1800.0, 0.0) + np.where(r < 0.8, -600.0 + 300 * np.cos(6 * x) * np.sin(5 * y), 0.0)
    vol = vol + np.where(r < 0.2, 500.0, 0.0) + rng.normal(0, 25, shape)
    raw = np.clip(vol, 0, 32767).astype(np.int16)
    aff = np.diag([1.0, 1.0, 1.2, 1.0])
    aff[:3, 3] = [-128.0, -128.0, -96.0]
    path = os.path.join(out, "phantom.nii")
    img = nib.Nifti1Image(raw, aff)
    img.set_data_dtype(np.int16)
    img.header.set_xyzt_units("mm")
    nib.save(img, path)
    # Set the scaling in the written header (nibabel's save decides it from the data).
    little = img.header.endianness == "<"
    with open(path, "r+b") as f:
        f.seek(112)
        f.write(struct.pack("<ff" if little else ">ff", 0.5, -1024.0))
    with open(path, "rb") as f, gzip.open(path + ".gz", "wb", compresslevel=6) as g:
        g.write(f.read())
    for p in (path, path + ".gz"):
        proxy = nib.load(p).dataobj  # nibabel moves the scaling from the header to the proxy
        assert (float(proxy.slope), float(proxy.inter)) == (0.5, -1024.0), (proxy.slope, proxy.inter)
        print(p, os.path.getsize(p), "bytes")


def bench(files, repeat):
    for f in files:
        read = lambda: np.asanyarray(nib.load(f).dataobj, dtype=np.float32)
        v = read()  # warm-up
        t = time.perf_counter()
        check = 0.0
        for _ in range(repeat):
            a = read()
            check += float(a.ravel(order="F")[a.size // 2])
        s = time.perf_counter() - t
        print(json.dumps({"impl": "nibabel " + nib.__version__, "file": f, "dims": list(v.shape),
                          "volumes_per_s": round(repeat / s, 2), "ms_per_volume": round(1e3 * s / repeat, 2),
                          "check": check / repeat}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--make", metavar="DIR")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    if a.make:
        make(a.make)
    bench(a.files, a.repeat)
