#!/usr/bin/env bash
# Few-label hippocampus segmentation (MSD Task04, 26 labelled / 52 test cases, split in
# benchmarks/msd_hippocampus_split.csv): pretrain 3-D MAE and Volume Fusion on all 260
# images (no masks) for the same wall-clock budget, then train the segmentation head with
# the encoder fine-tuned and frozen, from each and from random initialisation; finally the
# from-scratch PyTorch U-Net in the same time. Two 1-thread jobs at a time on 2 cores.
# Part `decoder`: Volume Fusion pretrained longer (1800 steps, ~45 min on one core) with
# MIS-FM's boxes (benchmarks/vf_misfm.toml), then segmentation with the light convolutional
# decoder (benchmarks/seg_conv.toml) from random initialisation and from each encoder.
# Prints one JSON line per run. Usage: benchmarks/msd_seg.sh [runs-dir] [all|linear|decoder]
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-runs/msd}
HIP=../shared/data/medical/msd_hippocampus
S=benchmarks/msd_hippocampus_split.csv
cargo build --release -q -p tessera-medical-cli
M="${CARGO_TARGET_DIR:-target}/release/tessera-medical"
PART=${2:-all}
mkdir -p "$R"
seg() { # name, init flags...
  local name=$1; shift
  $M segment "$@" --data $S --train-split labelled --steps 800 --threads 1 --name "$name" --out "$R/seg-$name" 2>/dev/null | grep '^{'
}
if [ "$PART" != decoder ]; then
$M pretrain --data $HIP --preset medical-micro-mae --steps 1500 --threads 1 --out "$R/mae" > "$R/mae.log" 2>&1 &
$M pretrain --data $HIP --preset medical-micro-fusion --config benchmarks/vf_small_boxes.toml --steps 750 --threads 1 --out "$R/vf" > "$R/vf.log" 2>&1 &
wait
L=benchmarks/seg_linear.toml
seg random-finetune --random-init --config $L & seg mae-finetune --checkpoint "$R/mae" --config $L & wait
seg vf-finetune --checkpoint "$R/vf" --config $L & seg random-frozen --random-init --freeze --config benchmarks/seg_frozen.toml & wait
seg mae-frozen --checkpoint "$R/mae" --freeze --config benchmarks/seg_frozen.toml &
seg vf-frozen --checkpoint "$R/vf" --freeze --config benchmarks/seg_frozen.toml & wait
seg random-finetune-s1 --random-init --seed 1 --config $L & seg mae-finetune-s1 --checkpoint "$R/mae" --seed 1 --config $L & wait
seg vf-finetune-s1 --checkpoint "$R/vf" --seed 1 --config $L
PY=$(benchmarks/setup_torch.sh)
"$PY" -m pip install -q nibabel scipy
(cd benchmarks && "$PY" seg_unet_torch.py --threads 1 --minutes 10 --seed 0 | grep '^{')
(cd benchmarks && "$PY" seg_vit_torch.py --threads 1 --steps 800 --minutes 10 --seed 0 | grep '^{')
fi
[ "$PART" = linear ] && exit 0
PY=$(benchmarks/setup_torch.sh)
C=benchmarks/seg_conv.toml
$M pretrain --data $HIP --preset medical-micro-fusion --config benchmarks/vf_misfm.toml --steps 1800 --threads 1 --out "$R/vf-long" > "$R/vf-long.log" 2>&1 &
seg random-ft-conv --random-init --config $C; wait
seg random-ft-conv-s1 --random-init --seed 1 --config $C &
seg vf-long-ft-conv --checkpoint "$R/vf-long" --config $C & wait
seg vf-long-ft-conv-s1 --checkpoint "$R/vf-long" --seed 1 --config $C &
seg vf-long-ft --checkpoint "$R/vf-long" --config benchmarks/seg_linear.toml & wait
seg random-ft-conv-s2 --random-init --seed 2 --config $C &
seg vf-long-ft-conv-s2 --checkpoint "$R/vf-long" --seed 2 --config $C & wait
[ -d "$R/mae" ] || $M pretrain --data $HIP --preset medical-micro-mae --steps 1500 --threads 1 --out "$R/mae" > "$R/mae.log" 2>&1
[ -d "$R/vf" ] || $M pretrain --data $HIP --preset medical-micro-fusion --config benchmarks/vf_small_boxes.toml --steps 750 --threads 1 --out "$R/vf" > "$R/vf.log" 2>&1
seg mae-ft-conv --checkpoint "$R/mae" --config $C & seg vf-ft-conv --checkpoint "$R/vf" --config $C & wait
seg vf-ft-ld75 --checkpoint "$R/vf" --config benchmarks/seg_llrd.toml &
seg vf-long-frozen-conv --checkpoint "$R/vf-long" --freeze --config benchmarks/seg_conv_frozen.toml & wait
seg random-frozen-conv --random-init --freeze --config benchmarks/seg_conv_frozen.toml &
(cd benchmarks && "$PY" seg_vit_torch.py --threads 1 --steps 800 --seed 0 --decoder conv | grep '^{') & wait
