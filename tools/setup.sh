#!/usr/bin/env bash
# Install kd3d and everything it needs on a fresh machine. Idempotent: re-running is cheap.
#   bash tools/setup.sh            # library + tests + visualisation extras
# torch is pinned to 2.13.0: on the kd3d CPU machines that version resolves to a local CPU wheel,
# while an unpinned torch would pull gigabytes of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

# System packages: libusb for open3d, chromium for the HTML-viewer browser test.
need_apt=()
ldconfig -p 2>/dev/null | grep -q libusb-1.0 || need_apt+=(libusb-1.0-0)
if [ "${KD3D_SKIP_CHROMIUM:-0}" != "1" ] && ! command -v chromium >/dev/null 2>&1; then need_apt+=(chromium); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "[kd3d setup] apt-get install ${need_apt[*]}"
    $SUDO apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null \
      || echo "[kd3d setup] warning: could not install ${need_apt[*]} (open3d / browser tests will skip)"
  else
    echo "[kd3d setup] warning: no apt-get; install ${need_apt[*]} yourself for open3d / browser tests"
  fi
fi

if ! $PY -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  $PY -m pip install -q "torch==2.13.0"
fi
$PY -m pip install -q -e ".[cpu,test,vis]"  # spconv CPU build; on CUDA use .[cu121,test,vis] etc.
echo "[kd3d setup] ok: $($PY -c 'import kd3d, torch; print("kd3d", kd3d.__version__, "torch", torch.__version__)')"
