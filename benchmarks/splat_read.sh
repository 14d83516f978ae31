#!/usr/bin/env bash
# Splat reading and grouping speed (issue 13), side by side in one run: tessera-splat
# against plyfile + NumPy (reading 3DGS PLY into activated arrays) and PyTorch (FPS + kNN).
# Files: the real splats of ../shared/data/splat and a generated 1,000,000-Gaussian SH-3
# binary PLY (62 float properties, 248 MB). Rounds alternate between the two sides.
# Usage: benchmarks/splat_read.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
SPLAT=${SPLAT:-../shared/data/splat}
OUT=${OUT:-runs/splat}
py=benchmarks/.venv/bin/python
mkdir -p "$OUT"
big="$OUT/million_sh3.ply"
[ -f "$big" ] || $py - "$big" <<'PY'
import sys
import numpy as np
from plyfile import PlyData, PlyElement
n = 1_000_000
rng = np.random.default_rng(0)
names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)] + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
a = np.empty(n, dtype=[(k, "<f4") for k in names])
for k in names:
    a[k] = rng.standard_normal(n).astype(np.float32)
PlyData([PlyElement.describe(a, "vertex")]).write(sys.argv[1])
PY
cargo build --release -q -p tessera-splat --example splat_read
ex="${CARGO_TARGET_DIR:-target}/release/examples/splat_read"
files=("$SPLAT/v3dg_donut/fused.ply" "$SPLAT/supersplat_fruit_drops_labelled/fruit_drops_minimal.ply" "$big")
for r in $(seq "$rounds"); do
  echo "# round $r"
  "$ex" read 5 "${files[@]}" | sed 's/^/tessera,/'
  $py benchmarks/splat_read.py read 5 "${files[@]}" | sed 's/^/plyfile,/'
  "$ex" group 3 64 32 "$SPLAT/v3dg_donut/fused.ply" | sed 's/^/tessera,/'
  $py benchmarks/splat_read.py group 3 64 32 "$SPLAT/v3dg_donut/fused.ply" | sed 's/^/torch,/'
  "$ex" group 1 1024 32 "$big" | sed 's/^/tessera,/'
  $py benchmarks/splat_read.py group 1 1024 32 "$big" | sed 's/^/torch,/'
done
