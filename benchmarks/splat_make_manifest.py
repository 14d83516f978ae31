"""Manifest of ModelNet10 clouds for tessera-splat: one row per cloud of the two .npy stacks
(`points_train.npy#index=i`), with the class and split from the dataset's labels.csv.
Usage: python3 benchmarks/splat_make_manifest.py ../shared/data/splat runs/splat"""
import csv
import pathlib
import sys

src = pathlib.Path(sys.argv[1]).resolve() / "modelnet10_pcd1024"
out = pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
rows = list(csv.DictReader(open(src / "labels.csv")))
with open(out / "modelnet10.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["path", "label", "split"])
    for r in rows:
        w.writerow([f"{src}/points_{r['split']}.npy#index={r['index']}", r["class"], r["split"]])
print(f"{len(rows)} clouds -> {out / 'modelnet10.csv'}")
