#!/usr/bin/env bash
# Runs the whole test suite (installs what it needs first).
set -euo pipefail
cd "$(dirname "$0")/.."
export TESSERA_SETUP_MPI=1
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
export TESSERA_REQUIRE_ORT=1 TESSERA_REQUIRE_OPUS=1
# Data-parallel training is built in, so its MPI test runs (2 processes on loopback).
cargo test --workspace --features tessera-train/mpi "$@"
# Again the core and recipe tests, through the composed fallbacks of the fused CPU kernels
# (the path a GPU device takes), forced on the CPU.
TESSERA_COMPOSED_OPS=1 cargo test -p tessera-core -p tessera-recipes --lib
