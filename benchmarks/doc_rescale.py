#!/usr/bin/env python3
"""The physical-coordinate check of BENCHMARKS.md ("Documents"): the test pages of a box
manifest written again at `factor` times their resolution (Pillow, Lanczos), with their
boxes scaled and `#dpi=` multiplied, next to the unchanged training rows. A probe fitted on
the training pages at the original resolution is then scored on test pages at the new one.

Usage: benchmarks/.venv/bin/python benchmarks/doc_rescale.py IN.csv FACTOR OUT_DIR
Writes OUT_DIR/pages/*.png and OUT_DIR/boxes.csv.
"""
import csv
import os
import sys

from PIL import Image

src, factor, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
os.makedirs(os.path.join(out, "pages"), exist_ok=True)
rows = list(csv.DictReader(open(src)))
done = {}
with open(os.path.join(out, "boxes.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["path", "x0", "y0", "x1", "y1", "label", "split"])
    for r in rows:
        path = r["path"]
        if r["split"] == "test":
            file, _, frag = path.partition("#")
            dpi = float(dict(kv.split("=") for kv in frag.split("&") if kv).get("dpi", 0))
            if file not in done:
                im = Image.open(file)
                im = im.resize((round(im.width * factor), round(im.height * factor)), Image.LANCZOS)
                name = os.path.join(os.path.abspath(out), "pages", os.path.basename(file).rsplit(".", 1)[0] + ".png")
                im.save(name)
                done[file] = name + (f"#dpi={dpi * factor:g}" if dpi else "")
            path = done[file]
            box = [float(r[k]) * factor for k in ("x0", "y0", "x1", "y1")]
        else:
            box = [r[k] for k in ("x0", "y0", "x1", "y1")]
        w.writerow([path, *box, r["label"], r["split"]])
print(f"{len(done)} test pages at x{factor:g} in {out}")
