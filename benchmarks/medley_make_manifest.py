"""Medley-solos-DB (small subset, 97 clips, 8 instruments): a stratified random split per
seed, since the official test subset holds one clip per class. Writes
OUT/medley-s{SEED}.csv with `file,instrument,split`: per class a third of the clips (at
least one) are `test`, the rest `train`. Usage: python medley_make_manifest.py DATA OUT SEED"""
import csv
import os
import random
import sys

data, out, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = list(csv.DictReader(open(os.path.join(data, "labels.csv"))))
by_class = {}
for r in rows:
    by_class.setdefault(r["instrument"], []).append(r)
rng = random.Random(seed)
os.makedirs(out, exist_ok=True)
path = os.path.join(out, f"medley-s{seed}.csv")
with open(path, "w") as f:
    f.write("file,instrument,split\n")
    for c in sorted(by_class):
        clips = sorted(by_class[c], key=lambda r: r["file"])
        rng.shuffle(clips)
        n_test = max(1, len(clips) // 3)
        for i, r in enumerate(clips):
            wav = os.path.abspath(os.path.join(data, "wav", r["file"]))
            f.write(f"{wav},{c},{'test' if i < n_test else 'train'}\n")
print(path)
