#!/usr/bin/env bash
# Runs the whole test suite (installs what it needs first).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
export TESSERA_REQUIRE_ORT=1 TESSERA_REQUIRE_OPUS=1
cargo test --workspace "$@"
