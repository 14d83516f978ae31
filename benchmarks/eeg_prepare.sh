#!/usr/bin/env bash
# Manifests of the EEGMAT benchmark (tessera-bench dataset `eegmat`), from the shared EEG
# folder: OUT/eegmat.csv, 4 s windows back to back (`tessera-eeg epochs`), training
# subjects 00-19 and held-out test subjects 20-26, with a `subject` column (the peers'
# band-power baseline chooses its L2 by cross-validation grouped by subject, as in
# BENCHMARKS.md); OUT/pretrain.txt, the 40 training recordings whole (unlabelled
# pretraining; no test subject).
# Usage: benchmarks/eeg_prepare.sh TESSERA_EEG DATA OUT
set -euo pipefail
bin=$1 data=$2 out=$3
mkdir -p "$out"
tmp="$out/eegmat.csv.part"
rm -f "$tmp"
"$bin" epochs --data "$data/eegmat/labels.csv" --label-column condition --window 4 --split train --out "$tmp"
"$bin" epochs --data "$data/eegmat_s20_26/labels.csv" --label-column condition --window 4 --split test --append --out "$tmp"
for f in "$data"/eegmat/edf/*.edf; do realpath "$f"; done > "$out/pretrain.txt"
python3 - "$tmp" "$out/eegmat.csv" <<'PY'
import csv, os, re, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
with open(sys.argv[2] + ".tmp", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(rows[0] + ["subject"])
    for r in rows[1:]:
        m = re.match(r"(Subject\d+)_", os.path.basename(r[3]))
        if not m:
            sys.exit(f"{r[3]}: not an EEGMAT recording name (SubjectNN_K.edf)")
        w.writerow(r + [m.group(1)])
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
os.remove(sys.argv[1])
PY
