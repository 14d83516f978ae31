#!/usr/bin/env python3
"""The peer of domains/doc/examples/doc_read.rs: Pillow decodes each page, converts it to
grey, resizes it to 100 dpi (BILINEAR, which filters when reducing, as Tessera does), and
NumPy cuts the padded page into 16 × 16 patches with (x mm, y mm) centres, standardised.
Usage: python3 doc_read.py LIST ROUNDS   (one thread; prints one JSON line)
"""
import json
import sys
import time

import numpy as np
from PIL import Image

pages = [l.strip() for l in open(sys.argv[1]) if l.strip()]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
P, DPI, MEAN, STD = 16, 100.0, 0.05, 0.2
t = time.perf_counter()
tokens, check = 0, 0.0
for _ in range(rounds):
    for p in pages:
        file, _, frag = p.partition("#")
        opts = dict(kv.split("=") for kv in frag.split("&") if kv)
        im = Image.open(file)
        dpi = float(opts.get("dpi", im.info.get("dpi", (100, 100))[0]))
        im = im.convert("L")
        w, h = round(im.width * DPI / dpi), round(im.height * DPI / dpi)
        im = im.resize((w, h), Image.BILINEAR)
        ink = 1.0 - np.asarray(im, dtype=np.float32) / 255.0
        gh, gw = -(-h // P), -(-w // P)
        pad = np.zeros((gh * P, gw * P), np.float32)
        pad[:h, :w] = ink
        values = ((pad.reshape(gh, P, gw, P).transpose(0, 2, 1, 3).reshape(gh * gw, P * P)) - MEAN) / STD
        mm = 25.4 / DPI
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        coords = np.stack([(xs.ravel() * P + P / 2) * mm, (ys.ravel() * P + P / 2) * mm], 1)
        tokens += values.shape[0]
        check += float(values.ravel()[values.size // 2])
dt = time.perf_counter() - t
n = len(pages) * rounds
print(json.dumps({"impl": "pillow+numpy", "pages": n, "seconds": round(dt, 3), "pages_per_s": round(n / dt, 2), "tokens": tokens, "check": round(check, 3)}))
