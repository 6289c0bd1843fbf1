"""``kd3d eval``: official-equivalent evaluation of result files.

Examples::

    kd3d eval nuscenes --dataroot D --version v1.0-trainval --split val --results R.json --out OUT
    kd3d eval lidarseg --dataroot D --version v1.0-trainval --split val --results RESULTS_DIR --out OUT
    kd3d eval kitti --gt-dir training/label_2 --result-dir RESULTS --split-file ImageSets/val.txt --out OUT

nuscenes: NDS/mAP (detection_cvpr_2019), writes ``metrics_summary.json`` and
``metrics_details.json``; lidarseg: per-class IoU and mIoU from ``RESULTS_DIR/lidarseg/<split>/
<lidar_sd_token>_lidarseg.bin``, writes ``lidarseg_metrics.json``; kitti: 2D/BEV/3D/AOS AP at R11
and R40, writes ``kitti_metrics.json``. Exit status 0 on success, 2 on invalid input (one line on
stderr, see :mod:`kd3d.cli.main`); ``--out`` is checked for writability before anything is computed.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, what in (("nuscenes", "a detection results JSON"), ("lidarseg", "a results folder")):
        p = sub.add_parser(name, help=f"nuScenes {'detection' if name == 'nuscenes' else 'lidarseg'}: {what}")
        p.add_argument("--dataroot", required=True, help="nuScenes root (holds the version folder)")
        p.add_argument("--version", default="v1.0-trainval", help="e.g. v1.0-trainval, v1.0-mini")
        p.add_argument("--split", default="val", help="devkit split: val, train, mini_val, mini_train, ...")
        p.add_argument("--results", required=True, help="results JSON" if name == "nuscenes" else
                       "folder holding lidarseg/<split>/*_lidarseg.bin")
        p.add_argument("--out", default=None, help="folder for the metric files")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
    p = sub.add_parser("kitti", help="KITTI 3D object detection: a result folder")
    p.add_argument("--gt-dir", required=True, help="label folder (label_2) with <id>.txt files")
    p.add_argument("--result-dir", required=True, help="folder with one <id>.txt result file per frame")
    p.add_argument("--split-file", default=None, help="image-set file listing frame ids (default: all labels)")
    p.add_argument("--out", default=None, help="folder for kitti_metrics.json")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _nusc(args):
    from pathlib import Path

    root = Path(args.dataroot)
    if not (root / args.version).is_dir():
        raise FileNotFoundError(f"nuScenes tables not found: {root / args.version}")
    try:
        from nuscenes import NuScenes
    except ImportError as err:  # pragma: no cover - devkit is a hard requirement of kd3d
        raise ImportError("nuscenes-devkit is required: pip install nuscenes-devkit") from err
    return NuScenes(version=args.version, dataroot=str(root), verbose=False)


def check_out_dir(out) -> None:
    """Fail before any work when ``--out`` cannot be created or written (metrics are never
    computed and then lost)."""
    import tempfile
    from pathlib import Path

    if out is None:
        return
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".kd3d_write_check"):
            pass
    except OSError as err:
        raise OSError(f"--out {folder}: not a writable folder ({err.strerror or err})") from err


def run(args: argparse.Namespace) -> int:
    import logging

    check_out_dir(args.out)
    logging.getLogger("kd3d.eval").setLevel(logging.WARNING)  # the summary is printed below, once
    if args.benchmark == "nuscenes":
        from kd3d.eval.nuscenes_det import evaluate_nuscenes

        res = evaluate_nuscenes(_nusc(args), args.split, args.results, out_dir=args.out, verbose=not args.quiet)
    elif args.benchmark == "lidarseg":
        from kd3d.eval.nuscenes_seg import evaluate_lidarseg

        res = evaluate_lidarseg(_nusc(args), args.split, args.results, out_dir=args.out, verbose=not args.quiet)
    else:
        from kd3d.eval.kitti import evaluate_kitti

        res = evaluate_kitti(args.gt_dir, args.result_dir, split_file=args.split_file, out_dir=args.out,
                             progress=not args.quiet)
    print(res.format())
    if args.out:
        print(f"metrics written to {args.out}")
    return 0
