"""Golden values of real EDF+ files read with pyEDFlib, for domains/eeg/tests/reader.rs.

For each file: the signal labels, rates, record count, the first 8 physical samples and
the sum of every EEG signal, and the annotations. Run with an interpreter that has
pyedflib (e.g. benchmarks/.venv after `pip install pyedflib`):
    python scripts/golden_edf.py ../shared/data/eeg > domains/eeg/tests/golden_edf.json
"""
import json
import sys
from pathlib import Path

import pyedflib

root = Path(sys.argv[1])
files = ["eegmmidb_s001/edf/S001R04.edf", "eegmat/edf/Subject00_1.edf", "eegmat/edf/Subject00_2.edf"]
out = {"pyedflib": pyedflib.__version__, "files": {}}
for rel in files:
    f = pyedflib.EdfReader(str(root / rel))
    n = f.signals_in_file
    sigs = []
    for i in range(n):
        x = f.readSignal(i)
        sigs.append({
            "label": f.getLabel(i),
            "rate_hz": f.getSampleFrequency(i),
            "unit": f.getPhysicalDimension(i),
            "n": int(len(x)),
            "first": [float(v) for v in x[:8]],
            "sum": float(x.sum()),
            "sum_sq": float((x * x).sum()),
        })
    onsets, durations, texts = f.readAnnotations()
    out["files"][rel] = {
        "records": f.datarecords_in_file,
        "record_duration_s": f.datarecord_duration,
        "signals": sigs,
        "annotations": [[float(o), float(d), t] for o, d, t in zip(onsets, durations, texts)],
    }
    f.close()
json.dump(out, sys.stdout)
