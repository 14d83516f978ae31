#!/usr/bin/env bash
# EDF read throughput side by side: Tessera's reader (examples/edf_read.rs) against
# pyEDFlib and MNE (benchmarks/edf_read.py), alternating for ROUNDS rounds on the same
# files; prints each JSON line and the median ratios.
# Usage: benchmarks/edf_read.sh [rounds] [files...]   (default: the EEGMMIDB and EEGMAT files)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shift $(( $# > 0 ? 1 : 0 ))
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(../shared/data/eeg/eegmmidb_s001/edf/*.edf ../shared/data/eeg/eegmat/edf/*.edf ../shared/data/eeg/eegmat_s20_26/edf/*.edf)
fi
PY=$(benchmarks/setup_torch.sh)
"$PY" -c 'import pyedflib, mne' 2>/dev/null || "$PY" -m pip install -q pyedflib mne >&2
cargo build --release -q -p tessera-eeg --example edf_read
bin="${CARGO_TARGET_DIR:-target}/release/examples/edf_read"
log=$(mktemp)
for r in $(seq "$rounds"); do
  "$bin" "${files[@]}" --repeat 5 | tee -a "$log"
  OMP_NUM_THREADS=1 "$PY" benchmarks/edf_read.py "${files[@]}" --repeat 5 | tee -a "$log"
done
"$PY" - "$log" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
med = {lib: statistics.median(r["mb_per_s"] for r in rows if r["lib"] == lib) for lib in {r["lib"] for r in rows}}
for lib in ("pyedflib", "mne"):
    print(f"tessera / {lib}: {med['tessera'] / med[lib]:.2f}x  (median MB/s {med['tessera']:.0f} vs {med[lib]:.0f})")
PY
