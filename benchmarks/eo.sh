#!/usr/bin/env bash
# Earth observation (issue 11): MSTAR SOC (train 17 deg, test 15 deg, 10 classes).
# An eo-mstar-mae encoder pretrained on the training chips (test chips never seen) against
# random initialisation and the no-network baselines (`pixels`: 16x16 pooled dB image;
# `bandstats`): frozen linear probe on all labels and few-shot (1, 5, 10 chips per class,
# repeated seeded draws), and fine-tuning (10 per class and all labels) for each seed.
# The PyTorch CNN peer runs on the same split with benchmarks/eo_peers.py.
# Usage: benchmarks/eo.sh [pretrain_steps] [seeds...]
#   EO=../shared/data/eo OUT=runs/eo benchmarks/eo.sh 800 0
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-800}
shift $(( $# > 0 ? 1 : 0 ))
seeds=("${@:-0}")
EO=${EO:-../shared/data/eo}
OUT=${OUT:-runs/eo}
bin="${CARGO_TARGET_DIR:-target}/release/tessera-eo"
cargo build --release -q -p tessera-eo-cli
python3 benchmarks/eo_make_manifest.py "$EO" "$OUT"
m="$OUT/mstar.csv"
res="$OUT/results-mstar"
for s in "${seeds[@]}"; do
  run="$OUT/mstar-mae-s$s"
  [ -f "$run/done" ] || { "$bin" pretrain --data "$m" --preset eo-mstar-mae --steps "$steps" --seed "$s" --out "$run" && touch "$run/done"; }
  "$bin" probe --checkpoint "$run" --data "$m" --seed "$s" --out "$res"
  "$bin" probe --random-init --preset eo-mstar-mae --data "$m" --seed "$s" --name mstar-random --out "$res"
  for k in 1 5 10; do
    "$bin" probe --checkpoint "$run" --data "$m" --few-shot "$k" --seed "$s" --out "$res"
    "$bin" probe --random-init --preset eo-mstar-mae --data "$m" --few-shot "$k" --seed "$s" --name mstar-random --out "$res"
  done
done
for b in pixels bandstats; do
  "$bin" probe --baseline "$b" --preset eo-mstar-mae --data "$m" --out "$res"
  for k in 1 5 10; do "$bin" probe --baseline "$b" --preset eo-mstar-mae --data "$m" --few-shot "$k" --out "$res"; done
done
# Fine-tuning: 10 chips per class (100 steps of 32) and all labels (300 steps).
for s in "${seeds[@]}"; do
  run="$OUT/mstar-mae-s$s"
  for init in pretrained random; do
    if [ "$init" = pretrained ]; then src=(--checkpoint "$run"); name="mstar-mae-s$s"; else src=(--random-init --preset eo-mstar-mae); name=mstar-random; fi
    "$bin" finetune "${src[@]}" --data "$m" --config benchmarks/eo_finetune.toml --shots 10 --steps 100 --seed "$s" --name "$name" --out "$res-ft"
    "$bin" finetune "${src[@]}" --data "$m" --config benchmarks/eo_finetune.toml --steps 300 --seed "$s" --name "$name" --out "$res-ft"
  done
done
# OpenSARShip (Cargo / Tanker / Other, split by Sentinel-1 product) and BigEarthNet
# (multi-label, end to end): random init, baselines, and the MSTAR encoder transferred.
s="$OUT/opensarship.csv"
"$bin" probe --random-init --preset eo-tiny-mae --config benchmarks/eo_ship.toml --data "$s" --name ship-random --out "$OUT/results-ship"
for b in pixels bandstats; do "$bin" probe --baseline "$b" --preset eo-tiny-mae --config benchmarks/eo_ship.toml --data "$s" --out "$OUT/results-ship"; done
"$bin" probe --checkpoint "$OUT/mstar-mae-s${seeds[0]}" --data "$s" --name mstar-mae-transfer --out "$OUT/results-ship"
"$bin" probe --random-init --preset eo-tiny-mae --data "$OUT/bigearthnet.csv" --multi-label --name ben-random --out "$OUT/results-ben"
"$bin" probe --baseline bandstats --preset eo-tiny-mae --data "$OUT/bigearthnet.csv" --multi-label --out "$OUT/results-ben"
