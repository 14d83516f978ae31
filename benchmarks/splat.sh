#!/usr/bin/env bash
# Splats and point sets (issue 13): ModelNet10, 400 training clouds (40 per class) and the
# full official test split (908). A Point-MAE encoder (splat-tiny-pointmae, positions only:
# benchmarks/splat_modelnet.toml) pretrained on the 400 training clouds (test clouds never
# seen), against random initialisation and the no-network `shape` baseline: frozen linear
# probe and kNN, and fine-tuning; the PyTorch PointNet peer (benchmarks/splat_pointnet.py)
# trains from scratch on the same split.
# Usage: benchmarks/splat.sh [pretrain_steps] [finetune_steps] [seeds...]
#   SPLAT=../shared/data/splat OUT=runs/splat benchmarks/splat.sh 1500 600 0 1 2
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-1500}
ft=${2:-600}
shift $(( $# > 1 ? 2 : $# ))
seeds=("${@:-0}")
SPLAT=${SPLAT:-../shared/data/splat}
OUT=${OUT:-runs/splat}
bin="${CARGO_TARGET_DIR:-target}/release/tessera-splat"
cargo build --release -q -p tessera-splat-cli
python3 benchmarks/splat_make_manifest.py "$SPLAT" "$OUT"
m="$OUT/modelnet10.csv"
cfg=(--preset splat-tiny-pointmae --config benchmarks/splat_modelnet.toml)
res="$OUT/results"
"$bin" probe --baseline shape "${cfg[@]}" --data "$m" --out "$res"
for s in "${seeds[@]}"; do
  run="$OUT/pointmae-s$s"
  [ -f "$run/done" ] || { "$bin" pretrain --data "$m" "${cfg[@]}" --steps "$steps" --seed "$s" --out "$run" && touch "$run/done"; }
  "$bin" probe --checkpoint "$run" --data "$m" --seed "$s" --out "$res"
  "$bin" probe --random-init "${cfg[@]}" --data "$m" --seed "$s" --name modelnet-random --out "$res"
  "$bin" finetune --checkpoint "$run" --data "$m" --config benchmarks/splat_finetune.toml --steps "$ft" --seed "$s" --name "pointmae-s$s" --out "$res-ft"
  "$bin" finetune --random-init --preset splat-tiny-pointmae --data "$m" --config benchmarks/splat_finetune.toml --steps "$ft" --seed "$s" --name modelnet-random --out "$res-ft"
done
# The PyTorch peer on the same split, the same number of fine-tuning steps of 32.
benchmarks/.venv/bin/python benchmarks/splat_pointnet.py "$SPLAT" "$ft" "${seeds[@]}" | tee "$OUT/pointnet.csv"
