#!/usr/bin/env bash
# NIfTI reading: a 256x256x160 int16 volume (scl set) from .nii and .nii.gz to f32,
# volumes/s for Tessera (read_volume, release build) and nibabel, in one run.
# Usage: PY=/path/to/python-with-nibabel benchmarks/nifti_read.sh [repeat] [dir]
#   (default PY: /tmp/medref/bin/python, made by
#    python3 -m venv /tmp/medref && /tmp/medref/bin/pip install nibabel numpy scipy)
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${1:-20}
dir=${2:-/tmp/tessera-nifti-bench}
PY=${PY:-/tmp/medref/bin/python}
cargo build --release -q -p tessera-medical --example read_bench
"$PY" benchmarks/nifti_read.py --make "$dir" > /dev/null
files=("$dir/phantom.nii" "$dir/phantom.nii.gz")
nproc_=$(nproc)
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $nproc_ cores"
rust=$("${CARGO_TARGET_DIR:-target}/release/examples/read_bench" --repeat "$repeat" "${files[@]}")
py=$("$PY" benchmarks/nifti_read.py --repeat "$repeat" "${files[@]}")
echo "$rust"
echo "$py"
"$PY" - "$rust" "$py" <<'PYEOF'
import json, sys
r = {json.loads(l)["file"]: json.loads(l) for l in sys.argv[1].splitlines()}
p = {json.loads(l)["file"]: json.loads(l) for l in sys.argv[2].splitlines()}
print(f"{'file':<40} {'tessera vol/s':>14} {'nibabel vol/s':>14} {'ratio':>7}")
for f in r:
    a, b = r[f]["volumes_per_s"], p[f]["volumes_per_s"]
    assert abs(r[f]["check"] - p[f]["check"]) < 1e-3, (r[f]["check"], p[f]["check"])
    print(f"{f:<40} {a:>14.2f} {b:>14.2f} {a / b:>6.2f}x")
PYEOF
