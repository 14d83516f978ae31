#!/usr/bin/env bash
# EEG (issue 12): cross-subject EEGMAT (rest vs mental arithmetic; train subjects 00-19,
# test 20-26), EEGMMIDB S001 left vs right fist (imagery: runs 4, 8 train, 12 test;
# execution: 3, 7 train, 11 test), and montage transfer (an encoder pretrained on
# EEGMMIDB's 64 channels probing EEGMAT's 8). Frozen linear (class-balanced) and kNN
# probes, balanced accuracy, against random initialisation and the band-power baseline;
# the PyTorch peers run on the same windows with benchmarks/eeg_peers.py.
# Usage: benchmarks/eeg.sh [mat_steps] [mmidb_steps] [seeds...]
#   EEG=/path/to/shared/data/eeg OUT=runs/eeg MMIDB_SEEDS="0 1 2" benchmarks/eeg.sh 3000 600 0 1 2 3 4
# Pretraining runs two at a time with one thread each; EEGMMIDB encoders are pretrained
# for the seeds in MMIDB_SEEDS (default: the same seeds). A run with a `done` marker is
# not pretrained again.
set -euo pipefail
cd "$(dirname "$0")/.."
mat_steps=${1:-3000}
mmidb_steps=${2:-1000}
shift $(( $# > 2 ? 2 : $# ))
seeds=("${@:-0 1 2 3 4}")
seeds=(${seeds[*]})
read -r -a mmidb_seeds <<< "${MMIDB_SEEDS:-${seeds[*]}}"
EEG=${EEG:-../shared/data/eeg}
OUT=${OUT:-runs/eeg}
PRESET=${PRESET:-eeg-tiny-mae}
bin="${CARGO_TARGET_DIR:-target}/release/tessera-eeg"
cargo build --release -q -p tessera-eeg-cli
mkdir -p "$OUT"
mmidb="$EEG/eegmmidb_s001/edf"

# Epoch manifests: 4 s windows (EEGMAT: back to back; EEGMMIDB: from each T1/T2 cue).
"$bin" epochs --data "$EEG/eegmat/labels.csv" --label-column condition --window 4 --split train --out "$OUT/eegmat.csv"
"$bin" epochs --data "$EEG/eegmat_s20_26/labels.csv" --label-column condition --window 4 --split test --append --out "$OUT/eegmat.csv"
for task in imagery:04:08:12 execution:03:07:11; do
  IFS=: read -r name a b t <<< "$task"
  m="$OUT/mmidb_$name.csv"
  rm -f "$m"
  for r in "$a" "$b"; do
    "$bin" epochs --data "$mmidb/S001R$r.edf" --events T1=left_fist,T2=right_fist --window 4 --split train --append --out "$m"
  done
  "$bin" epochs --data "$mmidb/S001R$t.edf" --events T1=left_fist,T2=right_fist --window 4 --split test --append --out "$m"
done
# Unlabelled pretraining data: EEGMAT's training subjects (whole recordings); EEGMMIDB's
# runs except the two test runs.
realpath "$mmidb"/*.edf | grep -v -e R11 -e R12 > "$OUT/mmidb_pretrain.txt"

jobs=()
for s in "${seeds[@]}"; do jobs+=("mat:$EEG/eegmat/labels.csv:$mat_steps:$s"); done
for s in "${mmidb_seeds[@]}"; do jobs+=("mmidb:$OUT/mmidb_pretrain.txt:$mmidb_steps:$s"); done
i=0
for job in "${jobs[@]}"; do
  IFS=: read -r name data steps s <<< "$job"
  run="$OUT/$name-$PRESET-s$s"
  if [ ! -f "$run/done" ]; then
    ( "$bin" pretrain --preset "$PRESET" --data "$data" --seed "$s" --steps "$steps" --threads 1 --out "$run" > "$run.log" 2>&1 && touch "$run/done" ) &
    i=$((i + 1))
    if (( i % 2 == 0 )); then wait; fi
  fi
done
wait

probe() { "$bin" probe "$@" --config benchmarks/eeg_probe.toml --threads 2 --out "$OUT/results" > /dev/null; }
for s in "${seeds[@]}"; do
  probe --checkpoint "$OUT/mat-$PRESET-s$s" --data "$OUT/eegmat.csv" --name "eegmat-pretrained-eegmat"
  probe --random-init --preset "$PRESET" --seed "$s" --data "$OUT/eegmat.csv" --name "eegmat-random-init"
done
for s in "${mmidb_seeds[@]}"; do
  probe --checkpoint "$OUT/mmidb-$PRESET-s$s" --data "$OUT/eegmat.csv" --name "eegmat-pretrained-mmidb-64ch"
  for name in imagery execution; do
    probe --checkpoint "$OUT/mmidb-$PRESET-s$s" --data "$OUT/mmidb_$name.csv" --name "mmidb-$name-pretrained-mmidb"
    probe --random-init --preset "$PRESET" --seed "$s" --data "$OUT/mmidb_$name.csv" --name "mmidb-$name-random-init"
  done
done
for d in eegmat mmidb_imagery mmidb_execution; do
  probe --baseline bandpower --preset "$PRESET" --data "$OUT/$d.csv" --name "${d/_/-}-bandpower"
done
cat "$OUT/results/results.md"
