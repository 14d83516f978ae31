#!/usr/bin/env bash
# Prints the path of a Python interpreter with torch for the benchmarks in this folder.
# Uses $TORCH_PYTHON if it points at an interpreter that can import torch; otherwise
# creates benchmarks/.venv (if missing) and installs torch + numpy from PyPI into it.
# Idempotent: a second run installs nothing. Progress goes to stderr, the path to stdout.
#   PY=$(benchmarks/setup_torch.sh) && "$PY" benchmarks/mae_step_torch.py
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"

if [[ -n "${TORCH_PYTHON:-}" ]]; then
    if [[ -x "$TORCH_PYTHON" ]] && "$TORCH_PYTHON" -c 'import torch' >/dev/null 2>&1; then
        echo "$TORCH_PYTHON"
        exit 0
    fi
    echo "setup_torch: TORCH_PYTHON=$TORCH_PYTHON cannot import torch; using $venv" >&2
fi

py="$venv/bin/python"
if [[ ! -x "$py" ]]; then
    echo "setup_torch: creating $venv" >&2
    python3 -m venv "$venv"
fi
if ! "$py" -c 'import torch, numpy' >/dev/null 2>&1; then
    echo "setup_torch: installing torch and numpy into $venv (large download)" >&2
    "$py" -m pip install --upgrade pip >&2
    "$py" -m pip install torch numpy >&2
fi
echo "$py"
