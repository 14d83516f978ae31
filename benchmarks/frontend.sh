#!/usr/bin/env bash
# Audio front-end speed (issue 15, item 4): log-mel, Kaldi fbank and resampling of a 10 s
# 16 kHz clip, Tessera (release build, one thread) against torchaudio (one thread) with the
# same parameters, rounds alternating between the sides; the summary is the median over
# rounds of each side's best-of-REPEAT clips/s, and Tessera over torchaudio.
# Usage: benchmarks/frontend.sh [rounds] [repeat]     (PY= a Python with torch + torchaudio)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
repeat=${2:-5}
py=${PY:-benchmarks/.venv/bin/python}
cargo build --release -q -p tessera-audio --example frontend_bench
ex="${CARGO_TARGET_DIR:-target}/release/examples/frontend_bench"
OUT=${OUT:-runs/frontend}
mkdir -p "$OUT"
: > "$OUT/rounds.csv"
for r in $(seq "$rounds"); do
  "$ex" "$repeat" | tail -n +2 >> "$OUT/rounds.csv"
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $py benchmarks/frontend_torchaudio.py "$repeat" | tail -n +2 >> "$OUT/rounds.csv"
done
$py - "$OUT/rounds.csv" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
ops = list(dict.fromkeys(r[1] for r in rows))
print("operation,tessera_clips_per_s,torchaudio_clips_per_s,tessera_over_torchaudio")
for op in ops:
    t = statistics.median(float(r[2]) for r in rows if r[0] == "tessera" and r[1] == op)
    p = statistics.median(float(r[2]) for r in rows if r[0] == "torchaudio" and r[1] == op)
    print(f"{op},{t:.1f},{p:.1f},{t / p:.2f}")
PY
