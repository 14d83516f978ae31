#!/usr/bin/env python3
"""Time reading EDF/EDF+ files fully into float64 physical values with pyedflib and MNE.

  python benchmarks/edf_read.py FILES... [--repeat R] [--libs pyedflib mne] [--per-file]

(a) pyedflib: EdfReader, readSignal(i) (float64, physical units) for every signal, close.
(b) MNE:      mne.io.read_raw_edf(path, preload=True, verbose=False).get_data() (float64, volts).
For each library and file the best of R repeats is kept; the per-file bests are summed. Prints one
JSON line per library: files, bytes, samples, seconds, MB/s (1 MB = 1e6 bytes of EDF file) and
Msamples/s; the MNE line also gives the largest difference from pyedflib in uV (a value check).
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def read_pyedflib(path):
    import pyedflib
    r = pyedflib.EdfReader(path)
    try:
        sigs = [r.readSignal(i) for i in range(r.signals_in_file)]
        units = [r.getPhysicalDimension(i) for i in range(r.signals_in_file)]
    finally:
        r.close()
    return sigs, units


def read_mne(path):
    import mne
    raw = mne.io.read_raw_edf(path, preload=True, verbose=False)
    return raw.get_data()


def to_uv(sig, unit):
    u = unit.strip().lower()
    return sig * {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}.get(u, 1.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--libs", nargs="+", default=["pyedflib", "mne"], choices=["pyedflib", "mne"])
    ap.add_argument("--per-file", action="store_true", help="also print one JSON line per file and library")
    a = ap.parse_args()

    import mne
    import pyedflib
    versions = {"pyedflib": pyedflib.__version__, "mne": mne.__version__}
    readers = {"pyedflib": read_pyedflib, "mne": read_mne}
    # warm up imports / lazy modules so they are not charged to the first file
    for lib in a.libs:
        readers[lib](a.files[0])

    total = {lib: dict(seconds=0.0, bytes=0, samples=0) for lib in a.libs}
    maxdiff = 0.0
    for path in a.files:
        size = os.path.getsize(path)
        ref = None
        for lib in a.libs:
            best, out = float("inf"), None
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                out = readers[lib](path)
                best = min(best, time.perf_counter() - t0)
            if lib == "pyedflib":
                sigs, units = out
                n = sum(len(s) for s in sigs)
                ref = np.stack([to_uv(s, u) for s, u in zip(sigs, units)]) if len({len(s) for s in sigs}) == 1 else None
            else:
                n = out.size
                if ref is not None and ref.shape == out.shape:
                    maxdiff = max(maxdiff, float(np.abs(out * 1e6 - ref).max()))
            total[lib]["seconds"] += best
            total[lib]["bytes"] += size
            total[lib]["samples"] += n
            if a.per_file:
                print(json.dumps(dict(lib=lib, file=path, bytes=size, samples=n, seconds=round(best, 6),
                                      mb_per_s=round(size / best / 1e6, 2))))
    for lib in a.libs:
        t = total[lib]
        rec = dict(lib=lib, version=versions[lib], files=len(a.files), repeat=a.repeat, bytes=t["bytes"],
                   samples=t["samples"], seconds=round(t["seconds"], 6),
                   mb_per_s=round(t["bytes"] / t["seconds"] / 1e6, 2),
                   msamples_per_s=round(t["samples"] / t["seconds"] / 1e6, 2))
        if lib == "mne" and "pyedflib" in a.libs:
            rec["max_abs_diff_uV_vs_pyedflib"] = maxdiff
        print(json.dumps(rec))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
