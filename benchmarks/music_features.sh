#!/usr/bin/env bash
# Music front-end speed: Tessera's CQT (librosa's defaults: 84 bins from C1, hop 512),
# chroma_stft and chroma_cqt against librosa on the same 30 s music-like signal at 22.05 kHz
# (float32, one thread each side: librosa's numpy/scipy paths here are single-threaded).
# Each line is the best of REPEAT runs; the last block is librosa's time over Tessera's.
# Usage: benchmarks/music_features.sh [repeat]
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${1:-5}
OUT=${OUT:-runs/music_features}
py=${PY:-benchmarks/.venv/bin/python}
mkdir -p "$OUT"
sig="$OUT/mix30s.f32"
[ -f "$sig" ] || $py benchmarks/music_features.py make "$sig" 30
cargo build --release -q -p tessera-audio --example music_bench
ex="${CARGO_TARGET_DIR:-target}/release/examples/music_bench"
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
  $py benchmarks/music_features.py time "$sig" "$repeat" > "$OUT/librosa.csv"
"$ex" "$repeat" "$sig" > "$OUT/tessera.csv"
cat "$OUT/librosa.csv" "$OUT/tessera.csv"
echo "feature,librosa_s,tessera_s,speedup"
join -t, <(tail -n +2 "$OUT/librosa.csv" | cut -d, -f2,5 | sort) \
         <(tail -n +2 "$OUT/tessera.csv" | cut -d, -f2,5 | sort) |
  awk -F, '{printf "%s,%s,%s,%.2f\n", $1, $2, $3, $2 / $3}'
