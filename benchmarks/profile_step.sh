#!/usr/bin/env bash
# Profiles the audio MAE step (the configuration of mae_step.sh) on both sides: `perf` on
# `tessera-audio bench-step`, torch.profiler on mae_step_torch.py, then prints each side's
# forward/backward/optimiser split and the share of time by category (profile_step.py).
# Needs `perf` (Debian linux-perf). Usage: benchmarks/profile_step.sh [threads] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
steps=${2:-8}
out=${TMPDIR:-/tmp}/tessera-profile
mkdir -p "$out"
cargo build --release -q -p tessera-audio-cli
PY=$(benchmarks/setup_torch.sh)
bin="${CARGO_TARGET_DIR:-target}/release/tessera-audio"
perf record -q -o "$out/perf.data" -F 999 -- "$bin" bench-step --preset audio-tiny-mae \
  --config benchmarks/infer_10s.toml --batch-size 8 --threads "$threads" --warmup 2 --timed-steps "$steps"
perf report -i "$out/perf.data" --no-children --sort sym 2>/dev/null > "$out/perf.txt"
"$PY" benchmarks/mae_step_torch.py --threads "$threads" --steps "$steps" --warmup 2 \
  --profile "$out/torch.json" 2>/dev/null | grep impl
python3 benchmarks/profile_step.py "$out/perf.txt" "$out/torch.json"
