#!/usr/bin/env bash
# Page decode + tokenise throughput (issue 14): Tessera against Pillow + NumPy on the same
# pages (the 100 FUNSD PNG scans and the 20 PubLayNet JPEGs), side by side, three rounds
# each, one thread.
# Usage: benchmarks/doc_read.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
OUT=${OUT:-runs/doc/read}
PY=${PY:-benchmarks/.venv/bin/python}
DATA=${TESSERA_DATA:-../shared/data}/document
"$PY" -c "import PIL, numpy" 2>/dev/null || "$PY" -m pip install -q pillow numpy
cargo build --release -q -p tessera-doc --example doc_read
bin="${CARGO_TARGET_DIR:-target}/release/examples/doc_read"
mkdir -p "$OUT"
ls "$DATA"/funsd_ec_roor/images/*.png | sed 's/$/#dpi=90/' > "$OUT/funsd.txt"
ls "$DATA"/publaynet_examples/images/*.jpg | sed 's/$/#dpi=72/' > "$OUT/publaynet.txt"
for set in funsd publaynet; do
  for round in $(seq "$rounds"); do
    echo "{\"set\": \"$set\", \"round\": $round}"
    RAYON_NUM_THREADS=1 "$bin" "$OUT/$set.txt" 2
    OMP_NUM_THREADS=1 "$PY" benchmarks/doc_read.py "$OUT/$set.txt" 2
  done
done
