#!/usr/bin/env bash
# GPU check (issue 12, "GPU"): spconv's CUDA build, kd3d's CUDA tests, one training step's time and
# peak memory of the nuScenes-scale LiDAR teacher and camera student. A few minutes on one GPU.
#
#   bash bench/gpu_check.sh [WHEEL_DIR] [--out FILE] [--device cuda|cpu] [--small]
#
# WHEEL_DIR (optional): wheels installed with `pip install --no-index --no-deps` into
#   $KD3D_SITE (default /tmp/kd3d_site, put first on PYTHONPATH). A wheel too large to carry in one
#   call may arrive split as NAME.whl.part-aa, NAME.whl.part-ab, ... (`split -b 40m NAME.whl
#   NAME.whl.part-`): the pieces are joined in name order; a SHA256SUMS file there, if present, is
#   checked after joining (sha256sum -c).
# --out: the JSON of bench/gpu_step.py (default: $OUT/gpu_step.json when $OUT is set, else
#   ./gpu_step.json). --device cpu --small: test this script without a GPU (CUDA tests are then
#   listed but not run unless KD3D_GPU_CHECK_RUN_TESTS=1; the step figures are at reduced sizes
#   and are not results).
# Steps: 1. install wheels, check the spconv build (CUDA build present, CPU build absent), print
# versions; 2. pytest -rs the tests marked skipif-without-CUDA, failing if any is skipped;
# 3. bench/gpu_step.py (1 warm-up + median of 3 synchronised steps, batch 1 and the configs' batch).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WHEELS="" OUT_JSON="" DEVICE="cuda" SMALL=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT_JSON="$2"; shift 2 ;;
    --device) DEVICE="$2"; shift 2 ;;
    --small) SMALL="--small"; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) WHEELS="$1"; shift ;;
  esac
done
[ -n "$OUT_JSON" ] || OUT_JSON="${OUT:+$OUT/}gpu_step.json"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
T0=$(date +%s)
step() { echo; echo "== $1 ($(( $(date +%s) - T0 )) s)"; }

step "1. wheels, spconv build, versions"
if [ -n "$WHEELS" ]; then
  [ -d "$WHEELS" ] || { echo "gpu_check.sh: wheel folder $WHEELS does not exist" >&2; exit 2; }
  for first in "$WHEELS"/*.whl.part-aa; do
    [ -e "$first" ] || continue
    whl="${first%.part-aa}"
    cat "$whl".part-* > "$whl.tmp" && mv "$whl.tmp" "$whl"
    echo "joined $(ls "$whl".part-* | wc -l) pieces into $(basename "$whl")"
  done
  if [ -f "$WHEELS/SHA256SUMS" ]; then
    (cd "$WHEELS" && sha256sum -c SHA256SUMS) || {
      echo "gpu_check.sh: a wheel in $WHEELS does not match SHA256SUMS (a piece missing or cut? carry it again)" >&2
      exit 2; }
  fi
  ls "$WHEELS"/*.whl >/dev/null 2>&1 || { echo "gpu_check.sh: no *.whl in $WHEELS" >&2; exit 2; }
  SITE="${KD3D_SITE:-/tmp/kd3d_site}"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$WHEELS"/*.whl
  export PYTHONPATH="$SITE:$PYTHONPATH"
  echo "installed $(ls "$WHEELS"/*.whl | wc -l) wheels into $SITE"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total \
  --format=csv,noheader || true
python3 bench/gpu_step.py --check-env --device "$DEVICE"

step "2. kd3d's CUDA tests"
mapfile -t TESTS < <(python3 bench/gpu_step.py --list-cuda-tests)
[ "${#TESTS[@]}" -gt 0 ] || { echo "gpu_check.sh: no CUDA tests found under tests/" >&2; exit 1; }
printf '  %s\n' "${TESTS[@]}"
if [ "$DEVICE" = "cuda" ] || [ -n "${KD3D_GPU_CHECK_RUN_TESTS:-}" ]; then  # the env var: the test of this script
  LOG="$(mktemp)"
  set +e
  python3 -m pytest -q -rs -p no:cacheprovider "${TESTS[@]}" 2>&1 | tee "$LOG"
  rc=${PIPESTATUS[0]}
  set -e
  if grep -qi "^SKIPPED.*cuda" "$LOG"; then
    echo "gpu_check.sh: FAILED: CUDA tests were skipped for lack of CUDA (lines above)" >&2; exit 1
  fi
  [ "$rc" -eq 0 ] || { echo "gpu_check.sh: FAILED: pytest exited $rc" >&2; exit 1; }
else
  echo "(not run: --device $DEVICE)"
fi

step "3. one training step: time and peak memory"
python3 bench/gpu_step.py --device "$DEVICE" $SMALL --out "$OUT_JSON"
step "done"
