#!/usr/bin/env bash
# Few-label hippocampus segmentation (MSD Task04, 26 labelled / 52 test cases, split in
# benchmarks/msd_hippocampus_split.csv): pretrain 3-D MAE and Volume Fusion on all 260
# images (no masks) for the same wall-clock budget, then train the segmentation head with
# the encoder fine-tuned and frozen, from each and from random initialisation; finally the
# from-scratch PyTorch U-Net in the same time. Two 1-thread jobs at a time on 2 cores.
# Prints one JSON line per run. Usage: benchmarks/msd_seg.sh [runs-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-runs/msd}
HIP=../shared/data/medical/msd_hippocampus
S=benchmarks/msd_hippocampus_split.csv
cargo build --release -q -p tessera-medical-cli
M="${CARGO_TARGET_DIR:-target}/release/tessera-medical"
mkdir -p "$R"
$M pretrain --data $HIP --preset medical-micro-mae --steps 1500 --threads 1 --out "$R/mae" > "$R/mae.log" 2>&1 &
$M pretrain --data $HIP --preset medical-micro-fusion --steps 750 --threads 1 --out "$R/vf" > "$R/vf.log" 2>&1 &
wait
seg() { # name, init flags...
  local name=$1; shift
  $M segment "$@" --data $S --train-split labelled --steps 800 --threads 1 --name "$name" --out "$R/seg-$name" 2>/dev/null | grep '^{'
}
seg random-finetune --random-init & seg mae-finetune --checkpoint "$R/mae" & wait
seg vf-finetune --checkpoint "$R/vf" & seg random-frozen --random-init --freeze --config benchmarks/seg_frozen.toml & wait
seg mae-frozen --checkpoint "$R/mae" --freeze --config benchmarks/seg_frozen.toml &
seg vf-frozen --checkpoint "$R/vf" --freeze --config benchmarks/seg_frozen.toml & wait
seg random-finetune-s1 --random-init --seed 1 & seg mae-finetune-s1 --checkpoint "$R/mae" --seed 1 & wait
seg vf-finetune-s1 --checkpoint "$R/vf" --seed 1
PY=$(benchmarks/setup_torch.sh)
"$PY" -m pip install -q nibabel scipy
(cd benchmarks && "$PY" seg_unet_torch.py --threads 1 --minutes 10 --seed 0 | grep '^{')
(cd benchmarks && "$PY" seg_vit_torch.py --threads 1 --steps 800 --minutes 10 --seed 0 | grep '^{')
