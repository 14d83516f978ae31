#!/usr/bin/env bash
# Quick start: builds tessera-audio, generates a small labelled dataset, pretrains an MAE
# encoder on it and probes it against random initialisation and the log-mel baseline.
# Pass a folder or manifest of your own WAV files with --data to use them instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
exec cargo run --release -q -p tessera-audio-cli -- demo --out runs/demo "$@"
