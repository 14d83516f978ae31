#!/usr/bin/env bash
# Windowed GeoTIFF reading (issue 11): Tessera (GDAL through the gdal crate) against
# rasterio (its PyPI wheel, which bundles its own GDAL) on the same windows of the same
# files, side by side, three rounds each, single-threaded.
# Usage: benchmarks/eo_read.sh [side] [window] [count]
set -euo pipefail
cd "$(dirname "$0")/.."
side=${1:-8192}
win=${2:-256}
count=${3:-400}
OUT=${OUT:-runs/eo/read}
PY=${PY:-benchmarks/.venv/bin/python}
"$PY" -c "import rasterio" 2>/dev/null || "$PY" -m pip install -q rasterio
cargo build --release -q -p tessera-eo --example eo_read
bin="${CARGO_TARGET_DIR:-target}/release/examples/eo_read"
mkdir -p "$OUT"
for layout in tiled-deflate tiled striped; do
  f="$OUT/scene-$layout.tif"
  [ -f "$f" ] || "$bin" make "$f" "$side" 4 "$layout"
  for round in 1 2 3; do
    echo "{\"layout\": \"$layout\", \"round\": $round}"
    "$bin" read "$f" "$win" "$count"
    "$PY" benchmarks/eo_read.py "$f" "$win" "$count"
  done
done
