#!/usr/bin/env bash
# Side-by-side segmentation fine-tuning step, Tessera vs PyTorch, in one run (alternating, so
# machine load hits both alike). The hippocampus protocol of msd_seg.sh: the micro encoder
# (192/6/3) on 32^3 crops of 4^3 patches (512 tokens), the convolutional decoder
# (benchmarks/seg_conv.toml: 8 features per voxel + the intensities, Conv3d 3^3 to 16, ReLU,
# Conv3d 1^3 to 3 classes), cross-entropy + soft Dice, batch 4 crops of the labelled cases,
# random init. Prints both JSON lines per round and the ratio of medians.
# Usage: benchmarks/seg_step.sh [threads] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
rounds=${2:-3}
cargo build --release -q -p tessera-medical-cli
PY=$(benchmarks/setup_torch.sh)
"$PY" -c "import nibabel, scipy" 2>/dev/null || "$PY" -m pip install -q nibabel scipy
S=benchmarks/msd_hippocampus_split.csv
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
tessera_step() {
  "${CARGO_TARGET_DIR:-target}/release/tessera-medical" segment --random-init --config benchmarks/seg_conv.toml \
    --data $S --train-split labelled --batch-size 4 --threads "$threads" --out "$out" \
    --bench-steps 8 --bench-warmup 2 2>/dev/null
}
torch_step() {
  (cd benchmarks && "$PY" seg_vit_torch.py --decoder conv --batch-size 4 --threads "$threads" \
    --bench-steps 8 --warmup 2 | grep '^{')
}
. benchmarks/side_by_side.sh
side_by_side "$rounds"
