#!/usr/bin/env python3
"""Write an EEG "epochs manifest" CSV (the format Tessera's EEG tool writes), for testing the peers
in eeg_peers.py without the Rust tool.

Format: header `path,label,split,source,onset_s,duration_s[,extra columns]`; `source` is the EDF file
(relative to the manifest's folder unless --absolute), `onset_s`/`duration_s` the window in seconds
from the recording start, `path` = `source#t=onset,end`.

  eegmat : 4 s windows, stride 4 s, last partial window dropped; `_1` -> rest, `_2` -> arithmetic;
           subjects from DATA/eegmat -> train, DATA/eegmat_s20_26 -> test; extra column `subject`.
  mmidb  : one 4 s window at each T1/T2 onset of DATA/eegmmidb_s001 (EDF+ annotations read with
           pyedflib); T1 -> left_fist, T2 -> right_fist. --task imagery: R04,R08 train, R12 test;
           execution: R03,R07 train, R11 test; both: the union. Extra columns `subject,run,task`.

  python benchmarks/eeg_make_manifest.py eegmat /tmp/eeg/eegmat.csv
  python benchmarks/eeg_make_manifest.py mmidb /tmp/eeg/mmidb_imagery.csv --task imagery
"""
import argparse
import csv
import math
import os
import re
import sys

import pyedflib

DATA = "/work/shared/data/eeg"
MMIDB_RUNS = {  # task -> (train runs, test runs); T1 = left fist, T2 = right fist in all of these
    "imagery": ([4, 8], [12]),
    "execution": ([3, 7], [11]),
}
MMIDB_LABEL = {"T1": "left_fist", "T2": "right_fist"}


def fmt(x):
    """Seconds as a short decimal string (no float noise such as 4.199999999)."""
    s = f"{x:.6f}".rstrip("0").rstrip(".")
    return s if s else "0"


def src_name(path, manifest_dir, absolute):
    path = os.path.abspath(path)
    return path if absolute else os.path.relpath(path, manifest_dir)


def eegmat_rows(data, win, stride, manifest_dir, absolute):
    rows = []
    for folder, split in (("eegmat", "train"), ("eegmat_s20_26", "test")):
        edf_dir = os.path.join(data, folder, "edf")
        names = sorted(n for n in os.listdir(edf_dir) if n.endswith(".edf"))
        for name in names:
            m = re.fullmatch(r"(Subject\d+)_([12])\.edf", name)
            if not m:
                continue
            subject, cond = m.group(1), m.group(2)
            label = "rest" if cond == "1" else "arithmetic"
            path = os.path.join(edf_dir, name)
            with pyedflib.EdfReader(path) as r:
                dur = r.getNSamples()[0] / r.getSampleFrequency(0)
            n = int(math.floor((dur - win) / stride + 1e-9)) + 1 if dur >= win else 0
            src = src_name(path, manifest_dir, absolute)
            for k in range(n):
                on = k * stride
                rows.append(dict(label=label, split=split, source=src, onset_s=on, duration_s=win, subject=subject))
    return rows, ["subject"]


def mmidb_rows(data, task, win, manifest_dir, absolute):
    tasks = ["imagery", "execution"] if task == "both" else [task]
    rows = []
    for t in tasks:
        train, test = MMIDB_RUNS[t]
        for run in train + test:
            split = "train" if run in train else "test"
            path = os.path.join(data, "eegmmidb_s001", "edf", f"S001R{run:02d}.edf")
            with pyedflib.EdfReader(path) as r:
                onsets, durs, descs = r.readAnnotations()
                rec_dur = r.file_duration
            src = src_name(path, manifest_dir, absolute)
            for on, desc in zip(onsets, descs):
                desc = str(desc).strip()
                if desc not in MMIDB_LABEL:
                    continue
                on = round(float(on), 6)
                if on + win > rec_dur + 1e-9:
                    print(f"skip {path} {desc}@{on}: window past end ({rec_dur} s)", file=sys.stderr)
                    continue
                rows.append(dict(label=MMIDB_LABEL[desc], split=split, source=src, onset_s=on,
                                 duration_s=win, subject="S001", run=f"R{run:02d}", task=t))
    return rows, ["subject", "run", "task"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", choices=["eegmat", "mmidb"])
    ap.add_argument("out", help="manifest CSV to write")
    ap.add_argument("--data", default=DATA, help=f"data root (default {DATA})")
    ap.add_argument("--task", choices=["imagery", "execution", "both"], default="imagery", help="mmidb only")
    ap.add_argument("--window", type=float, default=4.0, help="window length in s (default 4)")
    ap.add_argument("--stride", type=float, default=None, help="eegmat stride in s (default = window)")
    ap.add_argument("--absolute", action="store_true", help="write absolute source paths")
    a = ap.parse_args()

    out_dir = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(out_dir, exist_ok=True)
    if a.dataset == "eegmat":
        rows, extra = eegmat_rows(a.data, a.window, a.stride or a.window, out_dir, a.absolute)
    else:
        rows, extra = mmidb_rows(a.data, a.task, a.window, out_dir, a.absolute)

    cols = ["path", "label", "split", "source", "onset_s", "duration_s"] + extra
    with open(a.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            on, du = fmt(r["onset_s"]), fmt(r["duration_s"])
            r = dict(r, onset_s=on, duration_s=du, path=f"{r['source']}#t={on},{fmt(r['onset_s'] + r['duration_s'])}")
            w.writerow(r)
    counts = {}
    for r in rows:
        counts[(r["split"], r["label"])] = counts.get((r["split"], r["label"]), 0) + 1
    summary = ", ".join(f"{s}/{l}={n}" for (s, l), n in sorted(counts.items()))
    print(f"wrote {a.out}: {len(rows)} windows ({summary})", file=sys.stderr)


if __name__ == "__main__":
    main()
