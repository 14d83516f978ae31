#!/usr/bin/env bash
# Volume reading across formats (issue 18): one 256x256x160 int16 phantom as NRRD (raw,
# gzip), MetaImage (raw, zlib) and a 160-slice DICOM series, read to f32 by Tessera
# (read_volume: format by magic bytes, RAS+ affine) and by SimpleITK (ReadImage;
# ImageSeriesReader for DICOM), volumes/s, side by side in one run (rounds alternate).
# Usage: benchmarks/volume_read.sh [repeat] [rounds] [dir]
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${1:-5}
rounds=${2:-3}
dir=${3:-runs/volume_read}
PY=${PY:-benchmarks/.venv/bin/python}
cargo build --release -q -p tessera-medical --example read_bench
[ -d "$dir/dicom" ] || "$PY" benchmarks/volume_read.py --make "$dir" > /dev/null
files=("$dir/phantom.nrrd" "$dir/phantom_gz.nrrd" "$dir/phantom.mha" "$dir/phantom_zlib.mha" "$dir/dicom")
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
for r in $(seq "$rounds"); do
  "${CARGO_TARGET_DIR:-target}/release/examples/read_bench" --repeat "$repeat" "${files[@]}"
  "$PY" benchmarks/volume_read.py --bench "$repeat" "${files[@]}"
done
