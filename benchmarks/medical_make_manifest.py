#!/usr/bin/env python3
"""Manifests of the hippocampus benchmark (tessera-bench dataset `hippocampus`) for a copy
of MSD Task04 anywhere: the fixed split of benchmarks/msd_hippocampus_split.csv (26
labelled / 182 unlabelled / 52 test cases) with its paths re-rooted at DATA.

Writes OUT/split.csv (image,label,split; absolute paths) and OUT/pretrain.txt (every image
of the split, unlabelled, for pretraining: the 260 images without their masks).
Usage: python3 benchmarks/medical_make_manifest.py DATA OUT
"""
import csv
import os
import sys

data, out = os.path.abspath(sys.argv[1]), sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
os.makedirs(out, exist_ok=True)
rows = list(csv.DictReader(open(os.path.join(here, "msd_hippocampus_split.csv"))))
missing = []
with open(os.path.join(out, "split.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["image", "label", "split"])
    for r in rows:
        image = os.path.join(data, "images", os.path.basename(r["image"]))
        label = os.path.join(data, "labels", os.path.basename(r["label"]))
        missing += [p for p in (image, label) if not os.path.isfile(p)]
        w.writerow([image, label, r["split"]])
if missing:
    sys.exit(f"{len(missing)} files of the split are missing under {data}, e.g. {missing[0]}")
with open(os.path.join(out, "pretrain.txt"), "w") as f:
    for r in rows:
        f.write(os.path.join(data, "images", os.path.basename(r["image"])) + "\n")
print(f"{len(rows)} cases: split.csv and pretrain.txt in {out}")
