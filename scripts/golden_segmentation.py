#!/usr/bin/env python3
"""Generate the golden values for tessera-eval's segmentation metrics
(evaluation/tests/golden/segmentation.json).

Reference: medpy.metric.binary (dc, hd95, hd), which computes surfaces as
`mask ^ binary_erosion(mask, generate_binary_structure(3, 1))` and distances with
scipy.ndimage.distance_transform_edt(~surface, sampling=spacing). medpy's hd95 is the 95th
percentile of both directed distance sets pooled; MONAI's
compute_hausdorff_distance(percentile=95, directed=False) is the larger of the two directed
95th percentiles (monai/metrics/hausdorff_distance.py), computed here from medpy's own
directed sets (MONAI's get_mask_edges/get_surface_distance use the same erosion and EDT). Made with medpy 0.5.2,
scipy 1.17.1, numpy 2.4.6:

    python3 -m venv /tmp/segref && /tmp/segref/bin/pip install numpy scipy medpy
    /tmp/segref/bin/python scripts/golden_segmentation.py

Each case stores its label volumes flat in C order (last axis fastest, numpy's `ravel()`),
its dims and spacing (mm per axis), and per foreground class the expected Dice, HD95 both
ways (MONAI, medpy) and HD (the 100th percentile). A class empty on either side is left out (medpy raises); the
Rust property tests cover the empty conventions.
"""

import json
import os

import numpy as np
from medpy.metric import binary
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "evaluation", "tests", "golden", "segmentation.json")
SEED = 20262
# medpy's directed surface distances (a module-level private function).
SURFACE_DISTANCES = getattr(binary, "__surface_distances")


def smooth_labels(rng, shape, sigma, thresholds):
    """Labels 0..len(thresholds) from thresholded smoothed noise: blob-like structures."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    f = (f - f.mean()) / f.std()
    return np.digitize(f, thresholds).astype(np.uint8)


def ellipsoid(shape, centre, radii, spacing):
    grid = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    r = sum(((g - c) / rad) ** 2 for g, c, rad in zip(grid, centre, radii))
    return r <= 1.0


def cases(rng):
    # 1. Blobs: three classes, prediction = truth's field plus noise.
    shape, spacing = (20, 17, 12), (0.8, 1.0, 2.5)
    f = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    g = f + 0.25 * ndimage.gaussian_filter(rng.standard_normal(shape), 1.0)
    th = [np.quantile(f, q) for q in (0.55, 0.75, 0.9)]
    yield "blobs", np.digitize(g, th), np.digitize(f, th), spacing, 3

    # 2. Ellipsoids in mm, the prediction shifted and resized; class 2 inside class 1.
    shape, spacing = (24, 22, 16), (1.5, 0.7, 3.0)
    t = np.zeros(shape, np.uint8)
    p = np.zeros(shape, np.uint8)
    t[ellipsoid(shape, (17, 8, 24), (9, 5, 15), spacing)] = 1
    t[ellipsoid(shape, (15, 7, 22), (4, 2.5, 7), spacing)] = 2
    p[ellipsoid(shape, (19, 8.5, 21), (8, 5.5, 16), spacing)] = 1
    p[ellipsoid(shape, (16, 6.3, 25), (4.5, 2, 9), spacing)] = 2
    yield "ellipsoids", p, t, spacing, 2

    # 3. Structures touching the volume border on several faces.
    shape, spacing = (9, 11, 7), (2.0, 0.5, 1.25)
    t = np.zeros(shape, np.uint8)
    p = np.zeros(shape, np.uint8)
    t[0:6, 3:11, 0:4] = 1
    p[0:5, 2:11, 0:5] = 1
    p[8, 0, 6] = 1
    yield "border", p, t, spacing, 1

    # 4. Smooth truth, prediction with scattered false-positive voxels (outliers that HD
    #    sees and HD95 mostly does not).
    shape, spacing = (16, 16, 16), (1.0, 1.0, 1.0)
    t = smooth_labels(rng, shape, 2.5, [0.6])
    p = t.copy()
    flip = rng.random(shape) < 0.01
    p[flip] = 1 - p[flip]
    yield "outliers", p, t, spacing, 1

    # 5. Random labels on a tiny grid with very anisotropic spacing.
    shape, spacing = (6, 5, 4), (0.3, 4.0, 1.7)
    yield "random", rng.integers(0, 3, shape), rng.integers(0, 3, shape), spacing, 2


def main():
    rng = np.random.default_rng(SEED)
    out = []
    for name, pred, truth, spacing, n_fg in cases(rng):
        pred = np.asarray(pred, np.uint8)
        truth = np.asarray(truth, np.uint8)
        classes = []
        for c in range(1, n_fg + 1):
            p, t = pred == c, truth == c
            if not p.any() or not t.any():
                continue
            d_pt = SURFACE_DISTANCES(p, t, spacing)
            d_tp = SURFACE_DISTANCES(t, p, spacing)
            classes.append(
                {
                    "class": c,
                    "dice": float(binary.dc(p, t)),
                    "hd95_monai_mm": float(max(np.percentile(d_pt, 95), np.percentile(d_tp, 95))),
                    "hd95_medpy_mm": float(binary.hd95(p, t, voxelspacing=spacing)),
                    "hd_mm": float(binary.hd(p, t, voxelspacing=spacing)),
                }
            )
        out.append(
            {
                "name": name,
                "dims": list(pred.shape),
                "spacing_mm": list(spacing),
                "pred": pred.ravel().tolist(),
                "truth": truth.ravel().tolist(),
                "classes": classes,
            }
        )
        print(name, pred.shape, [(c["class"], round(c["dice"], 4), round(c["hd95_monai_mm"], 4), round(c["hd95_medpy_mm"], 4), round(c["hd_mm"], 4)) for c in classes])
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"reference": "medpy 0.5.2 (scipy 1.17.1, numpy 2.4.6)", "seed": SEED, "cases": out}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
