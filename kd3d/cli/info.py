"""``kd3d info``: load a dataset through kd3d's loaders and print a summary.

Python API (used by the demo): :func:`summarize` and :func:`format_summary`.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from kd3d.structures.classes import NUSC_LIDARSEG_CLASSES


def summarize(dataset, max_samples: int | None = None) -> dict:
    """Load up to ``max_samples`` samples (all by default) of ``dataset`` and summarise them.

    Returns a dict: ``dataset`` (repr), ``num_samples`` (dataset length), ``num_loaded``,
    ``points_per_sample`` / ``key_points_per_sample`` (mean, min, max), ``boxes_per_class``
    (class -> count), ``boxes_per_sample`` (mean), ``cameras`` (names), ``image_size`` ((H, W) or
    None), ``lidarseg_histogram`` (16-class name -> point count, or None), ``samples_per_s``
    (load throughput, including transforms) and ``seconds``.
    """
    n = len(dataset) if max_samples is None else min(max_samples, len(dataset))
    if n == 0:
        raise ValueError(f"{dataset!r}: nothing to summarise (0 samples)")
    class_names = list(getattr(dataset, "class_names", []))
    npts, nkey, nbox = [], [], []
    per_class = {c: 0 for c in class_names}
    seg_hist = None
    cameras, image_size = [], None
    t0 = time.perf_counter()
    for i in range(n):
        s = dataset[i]
        npts.append(len(s.points))
        nkey.append(s.num_key_points)
        nbox.append(len(s.gt_boxes))
        for lab in s.gt_labels:
            name = class_names[lab] if 0 <= lab < len(class_names) else str(int(lab))
            per_class[name] = per_class.get(name, 0) + 1
        if s.points_label is not None:
            h = np.bincount(s.points_label, minlength=len(NUSC_LIDARSEG_CLASSES))
            seg_hist = h if seg_hist is None else seg_hist + h
        cameras = list(s.cam_names)
        if s.images is not None:
            image_size = tuple(int(v) for v in s.images.shape[1:3])
    seconds = time.perf_counter() - t0

    def stats(v):
        return {"mean": float(np.mean(v)), "min": int(np.min(v)), "max": int(np.max(v))}

    return {
        "dataset": repr(dataset), "num_samples": len(dataset), "num_loaded": n,
        "points_per_sample": stats(npts), "key_points_per_sample": stats(nkey),
        "boxes_per_sample": float(np.mean(nbox)), "boxes_per_class": per_class,
        "cameras": cameras, "image_size": image_size,
        "lidarseg_histogram": None if seg_hist is None else {
            NUSC_LIDARSEG_CLASSES[i] if i < len(NUSC_LIDARSEG_CLASSES) else str(i): int(c)
            for i, c in enumerate(seg_hist)},
        "samples_per_s": n / seconds if seconds > 0 else float("inf"), "seconds": seconds,
    }


def format_summary(summary: dict) -> str:
    """Human-readable text of a :func:`summarize` dict."""
    p, k = summary["points_per_sample"], summary["key_points_per_sample"]
    lines = [
        summary["dataset"],
        f"samples: {summary['num_samples']} (loaded {summary['num_loaded']})",
        f"points/sample: mean {p['mean']:.0f} min {p['min']} max {p['max']} "
        f"(key frame: mean {k['mean']:.0f} min {k['min']} max {k['max']})",
        f"boxes/sample: {summary['boxes_per_sample']:.1f}",
        "boxes per class: " + ", ".join(f"{c} {n}" for c, n in summary["boxes_per_class"].items()),
        f"cameras: {len(summary['cameras'])} {summary['cameras']} image size (H, W): {summary['image_size']}",
    ]
    if summary["lidarseg_histogram"] is not None:
        lines.append("lidarseg points: " + ", ".join(f"{c} {n}" for c, n in summary["lidarseg_histogram"].items()))
    lines.append(f"load throughput: {summary['samples_per_s']:.2f} samples/s ({summary['seconds']:.2f} s)")
    return "\n".join(lines)


def print_summary(summary: dict) -> None:
    print(format_summary(summary))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("nuscenes", "kitti"), default="nuscenes")
    parser.add_argument("--dataroot", required=True, help="nuScenes dataroot, or the KITTI root with --format kitti")
    parser.add_argument("--version", default="v1.0-mini", help="nuScenes version folder")
    parser.add_argument("--split", default=None, help="split (default: all for nuScenes, train for KITTI)")
    parser.add_argument("--sweeps", type=int, default=10)
    parser.add_argument("--no-images", action="store_true", help="do not decode camera images")
    parser.add_argument("--max-samples", type=int, default=None)
    parser.add_argument("--index-file", default=None)


def run(args: argparse.Namespace) -> int:
    if args.format == "kitti":
        from kd3d.data.kitti import KittiDataset

        ds = KittiDataset(args.dataroot, args.split or "train", load_images=not args.no_images)
    else:
        from kd3d.data.nuscenes import NuScenesDataset

        ds = NuScenesDataset(args.dataroot, args.version, args.split or "all", sweeps=args.sweeps,
                             load_images=not args.no_images, index_file=args.index_file)
    print_summary(summarize(ds, args.max_samples))
    return 0
