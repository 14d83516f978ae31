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
t=(); p=(); tm=(); pm=()
for r in $(seq "$rounds"); do
  a=$("${CARGO_TARGET_DIR:-target}/release/tessera-audio" bench-step --preset audio-tiny-mae --config benchmarks/infer_10s.toml --batch-size 8 --threads "$threads" --warmup 2 --timed-steps 8)
  b=$("$PY" benchmarks/mae_step_torch.py --threads "$threads" --steps 8 --warmup 2)
  echo "$a"; echo "$b"
  t+=("$(echo "$a" | sed -E 's/.*"samples_per_s": ([0-9.]+).*/\1/')")
  p+=("$(echo "$b" | sed -E 's/.*"samples_per_s": ([0-9.]+).*/\1/')")
  tm+=("$(echo "$a" | sed -E 's/.*"peak_rss_mib": ([0-9.]+).*/\1/')")
  pm+=("$(echo "$b" | sed -E 's/.*"peak_rss_mib": ([0-9.]+).*/\1/')")
done
python3 - "${t[*]}" "${p[*]}" "${tm[*]}" "${pm[*]}" <<'PY'
import statistics, sys
t, p, tm, pm = ([float(x) for x in arg.split()] for arg in sys.argv[1:5])
mt, mp = statistics.median(t), statistics.median(p)
print(f"tessera median {mt:.2f} samples/s, pytorch median {mp:.2f} samples/s, ratio tessera/pytorch {mt/mp:.2f}")
rt, rp = statistics.median(tm), statistics.median(pm)
print(f"peak RSS of the process: tessera {rt:.0f} MiB, pytorch {rp:.0f} MiB, ratio {rt/rp:.2f}")
PY
