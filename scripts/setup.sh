#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine that has rustup: installs the C toolchain
# some dependencies compile with, if it is missing. Safe to run any number of times.
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
# A TrueType font for the text of PNG plots (plots are drawn without text otherwise).
ls /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf >/dev/null 2>&1 || need_apt+=(fonts-dejavu-core)
# GDAL for the Earth-observation domain (tessera-eo links libgdal; no other crate does).
command -v gdal-config >/dev/null 2>&1 || need_apt+=(libgdal-dev)
# Poppler's pdfinfo/pdftoppm render PDF pages for the document domain (run as tools, not linked).
command -v pdftoppm >/dev/null 2>&1 || need_apt+=(poppler-utils)
# libopus decodes Opus audio (tessera-audio opens it at run time, never links it).
# (The library list is read whole first: `ldconfig -p | grep -q` fails under pipefail when
# grep stops reading early.)
libs=$(/sbin/ldconfig -p 2>/dev/null || ldconfig -p 2>/dev/null || true)
grep -q 'libopus\.so\.0' <<<"$libs" || need_apt+=(libopus0)
# OpenMPI and libclang (for the mpi crate's bindings) when data-parallel training is wanted:
# the test script asks for them (TESSERA_SETUP_MPI=1); the quick start does not need them.
if [ "${TESSERA_SETUP_MPI:-0}" = 1 ]; then
  command -v mpirun >/dev/null 2>&1 || need_apt+=(openmpi-bin)
  [ -e /usr/include/x86_64-linux-gnu/openmpi/mpi.h ] || [ -e /usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h ] || need_apt+=(libopenmpi-dev)
  grep -q 'libclang\(-[0-9.]*\)\?\.so' <<<"$libs" || need_apt+=(libclang-dev)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: cargo not found; install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
  fi
fi

# ONNX Runtime for the ort-only runtime and the export tests, plus the Python client's
# packages: a virtual environment in the cache holding numpy, onnx and the onnxruntime
# wheel, whose shared library ort loads (its own binary download does not work offline).
ORT_VERSION=1.31.1
TESSERA_CACHE="${TESSERA_CACHE:-$HOME/.cache/tessera}"
VENV="$TESSERA_CACHE/venv"
if ! "$VENV/bin/python" -c "import numpy, onnx, onnxruntime as o; assert o.__version__ == '$ORT_VERSION'" >/dev/null 2>&1; then
  command -v python3 >/dev/null 2>&1 || { echo "setup: python3 is needed for ONNX Runtime; install python3 and python3-venv" >&2; exit 1; }
  echo "setup: installing numpy, onnx and onnxruntime==$ORT_VERSION into $VENV" >&2
  mkdir -p "$TESSERA_CACHE"
  python3 -m venv "$VENV" 2>/dev/null || {
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv && python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install -q --disable-pip-version-check numpy onnx "onnxruntime==$ORT_VERSION"
fi
ORT_DYLIB_PATH="$(ls "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION | head -1)"
export ORT_DYLIB_PATH TESSERA_CACHE
export TESSERA_PYTHON="$VENV/bin/python"
