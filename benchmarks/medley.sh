#!/usr/bin/env bash
# Medley-solos-DB (issue 18): music MAE pretraining (preset audio-music-mae) on the training
# clips of a stratified split (no labels), then frozen-feature linear and kNN probes of the
# instrument (8 classes) on the split's test clips, against random initialisation and the
# pooled log-mel baseline; one split and one pretraining seed per seed.
# Usage: benchmarks/medley.sh [minutes] [seeds...]
#   MEDLEY=/path/to/medley_solos_db_small OUT=runs/medley THREADS=1 benchmarks/medley.sh 20 0 1 2
#   PRESET=audio-music-cqt-mae benchmarks/medley.sh 15 0 1   (the CQT front end; its
#   no-network baseline is then the pooled CQT, named logmel-audio-music-cqt-mae)
# Seeds run two at a time with THREADS threads each.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${PRESET:-audio-music-mae}
minutes=${1:-20}
shift $(( $# > 1 ? 1 : $# ))
seeds=("${@:-0 1 2}")
seeds=(${seeds[*]})
MEDLEY=${MEDLEY:-../shared/data/audio/medley_solos_db_small}
OUT=${OUT:-runs/medley}
THREADS=${THREADS:-1}
py=benchmarks/.venv/bin/python
bin="${CARGO_TARGET_DIR:-target}/release/tessera-audio"
cargo build --release -q -p tessera-audio-cli
mkdir -p "$OUT"
for s in "${seeds[@]}"; do $py benchmarks/medley_make_manifest.py "$MEDLEY" "$OUT" "$s" > /dev/null; done
i=0
for s in "${seeds[@]}"; do
  "$bin" pretrain --preset "$preset" --data "$OUT/medley-s$s.csv" --split-column split --seed "$s" \
    --threads "$THREADS" --minutes "$minutes" --out "$OUT/$preset-s$s" > "$OUT/$preset-s$s.log" 2>&1 &
  i=$((i + 1))
  if (( i % 2 == 0 )); then wait; fi
done
wait
for s in "${seeds[@]}"; do
  m="$OUT/medley-s$s.csv"
  "$bin" probe --checkpoint "$OUT/$preset-s$s" --data "$m" --label-column instrument --split-column split \
    --name "$preset" --out "$OUT/results" --threads 2 > /dev/null
  "$bin" probe --random-init --preset "$preset" --seed "$s" --data "$m" --label-column instrument \
    --split-column split --name "$preset-random-init" --out "$OUT/results" --threads 2 > /dev/null
  "$bin" probe --baseline logmel --preset "$preset" --data "$m" --label-column instrument --split-column split \
    --name "logmel-$preset" --out "$OUT/results" --threads 2 > /dev/null
done
cat "$OUT/results/results.md"
