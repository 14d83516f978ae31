#!/usr/bin/env python3
"""Manifests for the document benchmarks (BENCHMARKS.md, "Documents"), from
../shared/data/document and the pages `tessera-doc render` wrote from Debian's TeX Live
documentation PDFs.

Writes into runs/doc/:
- funsd_words.csv    every word box of the 100 FUNSD pages (EC-FUNSD annotations):
                     path,x0,y0,x1,y1,label,split; label = the entity holding the word
                     (header / question / answer) or `other`; split = train / test (the
                     FUNSD test split). Pages carry `#dpi=90` (1000 px for 11 in).
- publaynet_regions.csv  the 193 layout regions of the 20 PubLayNet example pages
                     (text, title, list, table, figure): 14 pages train, 6 test (by file
                     name order). Pages carry `#dpi=72` (612 × 792 px letter / A4 at 72 dpi).
- pretrain.csv       unlabelled pages for pretraining: the rendered TeX Live pages, the 50
                     FUNSD training pages and the 14 PubLayNet training pages (no test page).
Usage: python3 benchmarks/doc_make_manifest.py [DATA_DIR] [RENDERED_DIR] [OUT_DIR]
(RENDERED_DIR may be absent: then only the FUNSD and PubLayNet training pages pretrain.)
"""
import csv
import json
import os
import sys

data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/document"
rendered = sys.argv[2] if len(sys.argv) > 2 else "runs/doc/texlive_pages"
out = sys.argv[3] if len(sys.argv) > 3 else "runs/doc"
os.makedirs(out, exist_ok=True)
data = os.path.abspath(data)

funsd = os.path.join(data, "funsd_ec_roor")
splits = {r["uid"]: r["split"] for r in csv.DictReader(open(os.path.join(funsd, "documents.csv")))}
pretrain = []
with open(os.path.join(out, "funsd_words.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["path", "x0", "y0", "x1", "y1", "label", "split"])
    n = {}
    for uid in sorted(splits):
        page = json.load(open(os.path.join(funsd, "jsons", uid + ".json")))
        label = {}
        for e in page["label_entities"]:
            for i in e["word_idx"]:
                label[i] = e["label"]
        path = os.path.join(funsd, "images", uid + ".png") + "#dpi=90"
        for seg in page["document"]:
            for word in seg["words"]:
                x0, y0, x1, y1 = word["box"]
                lab = label.get(word["id"], "other")
                w.writerow([path, x0, y0, x1, y1, lab, splits[uid]])
                n[(splits[uid], lab)] = n.get((splits[uid], lab), 0) + 1
        if splits[uid] == "train":
            pretrain.append(path)
    print("funsd words:", dict(sorted(n.items())))

pub = os.path.join(data, "publaynet_examples")
coco = json.load(open(os.path.join(pub, "samples.json")))
cats = {c["id"]: c["name"] for c in coco["categories"]}
images = sorted(coco["images"], key=lambda i: i["file_name"])
split_of = {im["id"]: ("train" if k < 14 else "test") for k, im in enumerate(images)}
with open(os.path.join(out, "publaynet_regions.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["path", "x0", "y0", "x1", "y1", "label", "split"])
    byid = {im["id"]: im for im in images}
    for a in coco["annotations"]:
        im = byid[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        path = os.path.join(pub, "images", im["file_name"]) + "#dpi=72"
        w.writerow([path, x, y, x + bw, y + bh, cats[a["category_id"]], split_of[im["id"]]])
    for im in images:
        if split_of[im["id"]] == "train":
            pretrain.append(os.path.join(pub, "images", im["file_name"]) + "#dpi=72")

rows = []
pages_csv = os.path.join(rendered, "pages.csv")
if os.path.exists(pages_csv):
    for r in csv.DictReader(open(pages_csv)):
        rows.append(os.path.abspath(os.path.join(rendered, r["path"])))
print(f"pretraining pages: {len(rows)} rendered + {len(pretrain)} FUNSD/PubLayNet training pages")
with open(os.path.join(out, "pretrain.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["path", "split"])
    for p in rows + pretrain:
        w.writerow([p, "train"])
