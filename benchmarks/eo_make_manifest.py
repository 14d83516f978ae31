"""Manifests for the EO benchmarks (issue 11), from ../shared/data/eo.

- mstar.csv: MSTAR SOC, train = 17 deg depression (2,747 chips), test = 15 deg (2,425).
- opensarship.csv: OpenSARShip chips with their polarisations in the path
  (`#bands=VH,VV` or `#bands=VV`), Cargo / Tanker / Other (every other AIS type), split by
  Sentinel-1 product (chips of one product share a scene): the packages in
  TEST_PACKAGES are the test set.
- bigearthnet.csv: every BigEarthNet S1 and S2 patch folder, multi-label (`;`), every
  third patch test.
- joint.txt: unlabelled pretraining files of every sensor (MSTAR train chips,
  OpenSARShip non-test chips, BigEarthNet non-test patches), with per-file settings.

Usage: python benchmarks/eo_make_manifest.py ../shared/data/eo runs/eo
"""
import csv
import os
import sys

root, out = os.path.abspath(sys.argv[1]), sys.argv[2]
os.makedirs(out, exist_ok=True)

MSTAR = "#sensor=mstar&pixel_m=0.3&sar=amplitude"
with open(os.path.join(root, "mstar_soc/labels.csv")) as f, open(os.path.join(out, "mstar.csv"), "w", newline="") as g:
    w = csv.writer(g)
    w.writerow(["path", "label", "split"])
    for r in csv.DictReader(f):
        w.writerow([os.path.join(root, "mstar_soc", r["path"]), r["class_name"], "train" if r["split"] == "train" else "test"])

rows = list(csv.DictReader(open(os.path.join(root, "opensarship_s1/labels.csv"))))
packages = sorted({r["package"] for r in rows})
# Four products held out (121 of 351 chips: 69 Cargo, 44 Tanker, 8 Other; dual- and
# single-polarisation, GRD and SLC): train 230 (125, 68, 37).
TEST_PACKAGES = [p for p in packages if any(t in p for t in ("20161018T095407", "SLC__1SSV_20150217", "20150823T221233", "20150902T102505"))]
with open(os.path.join(out, "opensarship.csv"), "w", newline="") as g:
    w = csv.writer(g)
    w.writerow(["path", "label", "split", "package"])
    for r in rows:
        bands = "VH,VV" if r["bands"] == "2" else "VV"
        label = r["class_name"] if r["class_name"] in ("Cargo", "Tanker") else "Other"
        split = "test" if r["package"] in TEST_PACKAGES else "train"
        w.writerow([os.path.join(root, "opensarship_s1", r["path"]) + f"#sensor=sentinel1&pixel_m=10&bands={bands}", label, split, r["package"]])

ben = list(csv.DictReader(open(os.path.join(root, "bigearthnet_mm/labels.csv"))))
with open(os.path.join(out, "bigearthnet.csv"), "w", newline="") as g:
    w = csv.writer(g)
    w.writerow(["path", "label", "split", "sensor"])
    for i, r in enumerate(sorted(ben, key=lambda r: r["patch"])):
        w.writerow([os.path.join(root, "bigearthnet_mm", r["sensor"], r["patch"]), r["labels"], "test" if i % 3 == 2 else "train", r["sensor"]])

with open(os.path.join(out, "joint.txt"), "w") as g:
    for r in csv.DictReader(open(os.path.join(out, "mstar.csv"))):
        if r["split"] == "train":
            g.write(r["path"] + MSTAR + "\n")
    for r in csv.DictReader(open(os.path.join(out, "opensarship.csv"))):
        if r["split"] == "train":
            g.write(r["path"] + "&sar=intensity\n")
    for r in csv.DictReader(open(os.path.join(out, "bigearthnet.csv"))):
        if r["split"] == "train":
            g.write(r["path"] + ("#sar=db" if r["sensor"] == "S1" else "") + "\n")
print("manifests in", out, "; OpenSARShip test packages:", TEST_PACKAGES)
