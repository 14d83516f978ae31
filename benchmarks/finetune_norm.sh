#!/usr/bin/env bash
# Fine-tuning's feature normalisation ([finetune] feature_norm = "layer" or "batch") and
# MSTAR's training crops ([eo.augment] centre_jitter_px), seed 0, on MSTAR SOC (300 MAE
# steps, 300 fine-tuning steps of 32, all labels) and ModelNet10 (300 Point-MAE steps, 100
# fine-tuning steps of 32, fine-tuning seeds 0 and 1). Writes its configs under $OUT; BENCHMARKS.md has the figures.
# Usage: OUT=runs/ftnorm benchmarks/finetune_norm.sh   (manifests as eo.sh and splat.sh make them)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/ftnorm}
EO=${EO:-runs/eo/mstar.csv}
MN=${MN:-runs/splat/modelnet10.csv}
B="${CARGO_TARGET_DIR:-target}/release"
cargo build --release -q -p tessera-eo-cli -p tessera-splat-cli
mkdir -p "$OUT"
bn='s/^label_smoothing = 0.1/label_smoothing = 0.1\nfeature_norm = "batch"/'
sed "$bn" benchmarks/eo_finetune.toml > "$OUT/eo_bn.toml"
sed 's/^lr = 5e-4/lr = 6e-5/' benchmarks/eo_finetune.toml > "$OUT/eo_lr6e5.toml"
sed 's/^lr = 5e-4/lr = 6e-5/' "$OUT/eo_bn.toml" > "$OUT/eo_bn_lr6e5.toml"
sed 's/^label_smoothing = 0.1/label_smoothing = 0.1\nhead_init = "random"/' "$OUT/eo_lr6e5.toml" > "$OUT/eo_lr6e5_random_head.toml"
printf '[eo.augment]\nflip = true\ncentre_jitter_px = 8\n' > "$OUT/centre.toml"
cat "$OUT/centre.toml" "$OUT/eo_bn.toml" > "$OUT/centre_bn.toml"
sed "$bn" benchmarks/splat_finetune.toml > "$OUT/splat_bn.toml"
eo() { "$B/tessera-eo" "$@"; }
ft() { eo finetune --data "$EO" --steps 300 --seed 0 --out "$OUT/mstar" "$@"; }
[ -f "$OUT/mae/done" ] || { eo pretrain --data "$EO" --preset eo-mstar-mae --steps 300 --seed 0 --out "$OUT/mae" && touch "$OUT/mae/done"; }
[ -f "$OUT/maec/done" ] || { eo pretrain --data "$EO" --preset eo-mstar-mae --config "$OUT/centre.toml" --steps 300 --seed 0 --out "$OUT/maec" && touch "$OUT/maec/done"; }
ft --checkpoint "$OUT/mae" --config benchmarks/eo_finetune.toml --name pre-layer
ft --random-init --preset eo-mstar-mae --config benchmarks/eo_finetune.toml --name random-layer
ft --checkpoint "$OUT/mae" --config "$OUT/eo_lr6e5.toml" --name pre-layer-lr6e-5
ft --checkpoint "$OUT/mae" --config "$OUT/eo_lr6e5_random_head.toml" --name pre-layer-lr6e-5-random-head
ft --checkpoint "$OUT/mae" --config "$OUT/eo_bn.toml" --name pre-batch
ft --random-init --preset eo-mstar-mae --config "$OUT/eo_bn.toml" --name random-batch
ft --checkpoint "$OUT/mae" --config "$OUT/eo_bn_lr6e5.toml" --name pre-batch-lr6e-5
ft --checkpoint "$OUT/maec" --config "$OUT/eo_bn.toml" --name centre-pre-batch
ft --random-init --preset eo-mstar-mae --config "$OUT/centre_bn.toml" --name centre-random-batch
eo probe --checkpoint "$OUT/mae" --data "$EO" --seed 0 --out "$OUT/mstar-probe"
eo probe --checkpoint "$OUT/maec" --data "$EO" --seed 0 --out "$OUT/mstar-probe"
sp() { "$B/tessera-splat" "$@"; }
[ -f "$OUT/pointmae/done" ] || { sp pretrain --data "$MN" --preset splat-tiny-pointmae --config benchmarks/splat_modelnet.toml --steps 300 --seed 0 --out "$OUT/pointmae" && touch "$OUT/pointmae/done"; }
for s in 0 1; do
  sp finetune --checkpoint "$OUT/pointmae" --data "$MN" --config "$OUT/splat_bn.toml" --steps 100 --seed "$s" --name pre-batch --out "$OUT/modelnet"
  sp finetune --checkpoint "$OUT/pointmae" --data "$MN" --config benchmarks/splat_finetune.toml --steps 100 --seed "$s" --name pre-layer --out "$OUT/modelnet"
done
