#!/usr/bin/env bash
# FSDD: MAE pretraining on the 2,700 training clips (no labels), then frozen-feature
# linear and kNN probes of digit and speaker on the official test split (takes 0-4),
# against random initialisation and the pooled log-mel baseline, for several seeds.
# Usage: benchmarks/fsdd.sh [preset] [minutes] [seeds...]
#   FSDD=/path/to/fsdd OUT=runs/fsdd THREADS=1 benchmarks/fsdd.sh audio-tiny-mae 20 0 1 2
# Seeds run two at a time with THREADS threads each (default 1: on 2 cores this gives
# more samples/s in total than one run on 2 threads).
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-audio-tiny-mae}
minutes=${2:-20}
shift $(( $# > 2 ? 2 : $# ))
seeds=("${@:-0 1 2}")
seeds=(${seeds[*]})
FSDD=${FSDD:-../shared/data/audio/fsdd}
OUT=${OUT:-runs/fsdd}
THREADS=${THREADS:-1}
bin="${CARGO_TARGET_DIR:-target}/release/tessera-audio"
cargo build --release -q -p tessera-audio-cli
m="$FSDD/labels.csv"
mkdir -p "$OUT"
i=0
for s in "${seeds[@]}"; do
  "$bin" pretrain --preset "$preset" --data "$m" --split-column official_split --seed "$s" \
    --threads "$THREADS" --minutes "$minutes" --out "$OUT/$preset-s$s" > "$OUT/$preset-s$s.log" 2>&1 &
  i=$((i + 1))
  if (( i % 2 == 0 )); then wait; fi
done
wait
for task in digit speaker; do
  for s in "${seeds[@]}"; do
    "$bin" probe --checkpoint "$OUT/$preset-s$s" --data "$m" --label-column "$task" --split-column official_split \
      --name "$preset" --out "$OUT/results" --threads 2 > /dev/null
    "$bin" probe --random-init --preset "$preset" --seed "$s" --data "$m" --label-column "$task" \
      --split-column official_split --name "$preset-random-init" --out "$OUT/results" --threads 2 > /dev/null
  done
  "$bin" probe --baseline logmel --preset "$preset" --data "$m" --label-column "$task" --split-column official_split \
    --name logmel --out "$OUT/results" --threads 2 > /dev/null
done
cat "$OUT/results/results.md"
