#!/usr/bin/env bash
# Benchmark v2 data (issue 12 item 1): generated synthetic nuScenes, idempotent.
#
#   datasets/bench_v2/nuscenes   seed 12, v1.0-trainval, 40 scenes x 8 key frames:
#                                split "train" = 32 scenes = 256 key frames,
#                                split "val"   =  8 other scenes = 64 key frames (devkit-evaluable)
#   datasets/bench_v2/heldout    seed 13, v1.0-mini, 10 scenes x 8 key frames: a second dataset from
#                                another seed; its "mini_train" split (8 scenes, 64 key frames) is a
#                                held-out set for final checkpoints (bench/distill.py --heldout-root)
#
# Each scene is drawn from (seed, scene index), so val scenes are other worlds than train scenes.
# 3 LiDAR sweeps per key frame (the synth configs load at most 3). ~1 s per key frame on an idle core.
# A dataset whose summary file exists is skipped; a partial one (no summary) is regenerated.
# Usage: bench/make_data_v2.sh [all|train|heldout]   (the two datasets may be made concurrently)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ROOT=${KD3D_BENCH_DATA:-datasets/bench_v2}

gen() {  # gen OUT SEED SCENES SAMPLES VERSION
  local out=$1 seed=$2 scenes=$3 samples=$4 version=$5
  if [ -f "$out/$version/scene.json" ] && [ -f "$out/.kd3d_bench_v2_done" ]; then
    echo "make_data_v2: $out exists, skipped"; return 0
  fi
  mkdir -p "$(dirname "$out")"
  nice -n 10 python3 -m kd3d.cli.main synth --format nuscenes --out "$out" --seed "$seed" --scenes "$scenes" \
    --samples-per-scene "$samples" --sweeps 3 --version "$version" --overwrite --no-progress
  echo "seed=$seed scenes=$scenes samples_per_scene=$samples version=$version" > "$out/.kd3d_bench_v2_done"
}

WHAT=${1:-all}
case "$WHAT" in all|train|heldout) ;; *) echo "make_data_v2: expected all, train or heldout, got '$WHAT'" >&2; exit 2;; esac
if [ "$WHAT" != heldout ]; then gen "$ROOT/nuscenes" 12 40 8 v1.0-trainval; fi
if [ "$WHAT" != train ]; then gen "$ROOT/heldout" 13 10 8 v1.0-mini; fi
