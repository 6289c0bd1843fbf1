"""``kd3d synth``: generate a synthetic dataset in the real nuScenes or KITTI format.

Examples::

    kd3d synth --format nuscenes --out datasets/synth_nusc --scenes 2 --samples-per-scene 5
    kd3d synth --format kitti --out datasets/synth_kitti --frames 20 --seed 1
"""
from __future__ import annotations

import argparse
import json


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--image-size expects WxH such as 640x360, got {text!r}") from exc
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("nuscenes", "kitti"), required=True, help="dataset format to write")
    parser.add_argument("--out", required=True, help="output folder (created; must be empty unless --overwrite)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (output is deterministic per seed)")
    parser.add_argument("--scenes", type=int, default=2, help="nuScenes: number of scenes")
    parser.add_argument("--samples-per-scene", type=int, default=10, help="nuScenes: key frames (2 Hz) per scene")
    parser.add_argument("--sweeps", type=int, default=9, help="nuScenes: 20 Hz LiDAR sweeps before each key frame")
    parser.add_argument("--version", default=None, choices=("v1.0-mini", "v1.0-trainval"),
                        help="nuScenes version folder (default: v1.0-mini up to 10 scenes, else v1.0-trainval)")
    parser.add_argument("--frames", type=int, default=20, help="KITTI: number of frames")
    parser.add_argument("--image-size", type=_size, default=None,
                        help="WxH (default 640x360 for nuScenes, 1242x375 for KITTI)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace previously generated data in a non-empty --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from kd3d.data.synth import generate_kitti, generate_nuscenes

    try:
        if args.format == "nuscenes":
            summary = generate_nuscenes(
                args.out, scenes=args.scenes, samples_per_scene=args.samples_per_scene, seed=args.seed,
                version=args.version, image_size=args.image_size or (640, 360), sweeps=args.sweeps,
                overwrite=args.overwrite, progress=not args.no_progress)
        else:
            summary = generate_kitti(
                args.out, frames=args.frames, seed=args.seed, image_size=args.image_size or (1242, 375),
                overwrite=args.overwrite, progress=not args.no_progress)
    except (ValueError, FileExistsError, NotADirectoryError) as exc:
        print(f"kd3d synth: error: {exc}")
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "scenes"}, indent=1))
    return 0
