"""rasterio side of benchmarks/eo_read.sh: the same windows as `eo_read read`, all bands
as float32 (the dtype Tessera hands to its tokenizer)."""
import json
import sys
import time

import numpy as np
import rasterio
from rasterio.windows import Window

path, win, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = time.perf_counter()
checksum = 0.0
with rasterio.open(path) as src:
    w, h, c = src.width, src.height, src.count
    for i in range(count):
        x = i * 7919 % (w - win)
        y = i * 104729 % (h - win)
        v = src.read(window=Window(x, y, win, win)).astype(np.float32)
        checksum += float(v.flat[0]) + float(v.flat[-1])
dt = time.perf_counter() - t
print(json.dumps({"impl": "rasterio", "windows_per_s": round(count / dt, 1), "mb_per_s": round(count * win * win * c * 2 / 1e6 / dt, 1), "checksum": checksum}))
