#!/usr/bin/env bash
# Set up this checkout on a fresh Debian/Ubuntu machine: the system library that pyrealsense2 loads
# (libusb-1.0, only when the deploy extra is asked for), a virtual environment in .venv and this
# package with the extras given as the first argument (default: train,deploy,dev).
#
#   bash setup.sh                  # training, deploy and tests (the README's quick start)
#   bash setup.sh deploy           # the robot laptop: deploy only (no JAX, no MuJoCo)
#   bash setup.sh train,cuda13,dev # a GPU machine (CUDA 13; cuda12 for CUDA 12)
#
# PYTHON picks the interpreter (default python3; Python >= 3.11).
set -euo pipefail
cd "$(dirname "$0")"
extras="${1:-train,deploy,dev}"
python="${PYTHON:-python3}"

"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  { echo "error: $python is Python $("$python" -c 'import platform; print(platform.python_version())'); mjx-reach needs >= 3.11 (set PYTHON)" >&2; exit 1; }

has_libusb() { { ldconfig -p 2>/dev/null || /sbin/ldconfig -p; } | grep -q 'libusb-1\.0\.so\.0'; }
if [[ ",$extras," == *",deploy,"* ]] && ! has_libusb; then
  echo "installing libusb-1.0-0 (pyrealsense2 loads it)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q libusb-1.0-0
  elif command -v sudo >/dev/null; then sudo apt-get update -q && sudo apt-get install -y -q libusb-1.0-0
  else echo "error: libusb-1.0-0 is missing and installing it needs root: run 'apt-get install libusb-1.0-0' as root, then this again" >&2; exit 1
  fi
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
echo "set up: .venv with mjx-reach[$extras]" >&2
