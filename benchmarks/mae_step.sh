#!/usr/bin/env bash
# Side-by-side MAE training step, Tessera vs PyTorch, in one run (alternating, so machine
# load hits both alike). Config: ViT-tiny (192/12/3), decoder 128/2/4, 1x128x1024 log-mel,
# 16x16 patches (512 tokens), mask 0.75, batch 8. Prints both JSON lines per round and the
# ratio of medians. Usage: benchmarks/mae_step.sh [threads] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
rounds=${2:-3}
cargo build --release -q -p tessera-audio-cli
PY=$(benchmarks/setup_torch.sh)
tessera_step() { "${CARGO_TARGET_DIR:-target}/release/tessera-audio" bench-step --preset audio-tiny-mae --config benchmarks/infer_10s.toml --batch-size 8 --threads "$threads" --warmup 2 --timed-steps 8; }
torch_step() { "$PY" benchmarks/mae_step_torch.py --threads "$threads" --steps 8 --warmup 2; }
. benchmarks/side_by_side.sh
side_by_side "$rounds"
