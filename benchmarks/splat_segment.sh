#!/usr/bin/env bash
# Per-Gaussian segmentation of a real splat scene (issue 13): the labelled supersplat
# fruit_drops crop (4,721 Gaussians, 9 segment ids; 0 = unlabelled, left out). A Point-MAE
# encoder pretrained on the unlabelled Gaussians of the two real splats (the scene itself
# and the donut; labels never read), its frozen group tokens propagated to every Gaussian
# and classified by a linear probe, scored by spatial cross-validation (4 × 4 blocks of the
# scene's footprint, 4 folds) as mIoU; against the same encoder at random init and the
# no-network `attributes` baseline, each with Gaussian attributes and with positions only.
# Usage: benchmarks/splat_segment.sh [pretrain_steps] [seeds...]
#   SPLAT=../shared/data/splat OUT=runs/splat-scene benchmarks/splat_segment.sh 300 0 1 2
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-300}
shift $(( $# > 0 ? 1 : 0 ))
seeds=("${@:-0}")
SPLAT=${SPLAT:-../shared/data/splat}
OUT=${OUT:-runs/splat-scene}
bin="${CARGO_TARGET_DIR:-target}/release/tessera-splat"
cargo build --release -q -p tessera-splat-cli
mkdir -p "$OUT"
scene="$SPLAT/supersplat_fruit_drops_labelled/fruit_drops_minimal.ply"
labels="$SPLAT/supersplat_fruit_drops_labelled/labels_per_gaussian.csv"
data="$OUT/unlabelled.txt"
printf '%s\n%s\n' "$(realpath "$scene")" "$(realpath "$SPLAT/v3dg_donut/fused.ply")" > "$data"
seg=(--data "$scene" --labels "$labels" --ignore 0 --out "$OUT/results")
for attrs in all positions; do
  cfg=(--preset splat-tiny-pointmae --config "benchmarks/splat_scene_$attrs.toml")
  "$bin" segment --baseline attributes "${cfg[@]}" "${seg[@]}" --name "attributes-$attrs"
  for s in "${seeds[@]}"; do
    run="$OUT/$attrs-s$s"
    [ -f "$run/done" ] || { "$bin" pretrain --data "$data" "${cfg[@]}" --steps "$steps" --seed "$s" --out "$run" && touch "$run/done"; }
    "$bin" segment --checkpoint "$run" "${seg[@]}" --seed "$s" --name "pretrained-$attrs"
    "$bin" segment --random-init "${cfg[@]}" "${seg[@]}" --seed "$s" --name "random-$attrs"
  done
done
