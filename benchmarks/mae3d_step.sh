#!/usr/bin/env bash
# Side-by-side 3-D MAE training step, Tessera vs PyTorch, in one run (alternating, so machine
# load hits both alike). Config: Tessera's micro encoder (192/6/3), decoder 128/2/4, 1x96^3
# crops at 1 mm, 16^3 patches (216 tokens of 4096 values), mask 0.75, batch 4. Prints both
# JSON lines per round and the ratio of medians. Usage: benchmarks/mae3d_step.sh [threads] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
rounds=${2:-3}
cargo build --release -q -p tessera-medical-cli
PY=$(benchmarks/setup_torch.sh)
tessera_step() { "${CARGO_TARGET_DIR:-target}/release/tessera-medical" bench-step --preset medical-micro-mae-bench --batch-size 4 --threads "$threads" --warmup 2 --timed-steps 6; }
torch_step() { "$PY" benchmarks/mae3d_step_torch.py --threads "$threads" --batch-size 4 --crop 96 --patch 16 --steps 6 --warmup 2; }
. benchmarks/side_by_side.sh
side_by_side "$rounds"
