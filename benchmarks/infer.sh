#!/usr/bin/env bash
# Encoder inference, side by side in one run: Tessera on candle, the exported ONNX graph
# on ONNX Runtime 1.31 (through ort), and PyTorch eager (inference mode). ViT-tiny on
# 1x128x1024 log-mel, 16x16 patches (512 tokens), batch 1 and 32, alternating rounds.
# Usage: benchmarks/infer.sh [threads] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
rounds=${2:-3}
source scripts/setup.sh
cargo build --release -q -p tessera-audio-cli
B="${CARGO_TARGET_DIR:-target}/release/tessera-audio"
PY=$(benchmarks/setup_torch.sh)
W=$(mktemp -d)
# A one-step run just to have a checkpoint with this input size, then its export.
python3 - "$W/wavs" <<'PY'
import sys, wave, struct, math, os
os.makedirs(sys.argv[1], exist_ok=True)
for i in range(4):
    with wave.open(f"{sys.argv[1]}/tone{i}.wav", "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * (200 + 100 * i) * t / 16000))) for t in range(16000 * 11)))
PY
"$B" pretrain --preset audio-tiny-mae --config benchmarks/infer_10s.toml --data "$W/wavs" --steps 1 --batch-size 2 --out "$W/run" >/dev/null
"$B" export --checkpoint "$W/run" --out "$W/export" >/dev/null
for r in $(seq "$rounds"); do
  "$B" bench-infer --checkpoint "$W/run" --onnx "$W/export" --batches 1,32 --reps 5 --threads "$threads" | tee -a "$W/lines"
  (cd benchmarks && "$PY" infer_torch.py --threads "$threads" --batches 1,32 --reps 5) | tee -a "$W/lines"
done
python3 - "$W/lines" <<'PY'
import json, statistics, sys, collections
m = collections.defaultdict(list)
for line in open(sys.argv[1]):
    d = json.loads(line)
    for k, v in d.items():
        if k.endswith("samples_per_s"):
            m[(d["batch"], k.replace("_samples_per_s", ""))].append(v)
for b in sorted({k[0] for k in m}):
    c, o, t = (statistics.median(m[(b, n)]) for n in ("candle", "ort", "torch"))
    print(f"batch {b}: candle {c:.1f}, ort {o:.1f}, pytorch {t:.1f} samples/s; ort/pytorch {o/t:.2f}, candle/pytorch {c/t:.2f}")
PY
rm -rf "$W"
