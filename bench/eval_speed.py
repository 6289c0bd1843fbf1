"""Evaluation speed, measured side by side in one run, with an equality check.

nuScenes detection: the same generated GT and predictions (``--samples`` samples, ``--gt`` GT and
``--preds`` predictions per sample; defaults 6000 / 100 / 300, the size of a full val set with a
dense detector) go through

* kd3d: :func:`kd3d.eval.nuscenes_det.evaluate_boxes` (matching, curves, AP, TP errors, summary);
* nuscenes-devkit: its own ``accumulate`` for every class and threshold + ``calc_ap`` + ``calc_tp``
  + ``DetectionMetrics`` on in-memory ``EvalBoxes`` (:func:`kd3d.testing.devkit_ref.devkit_metrics`).

Timed on both sides: the metric computation only, after loading and filtering (the filtering
needs a ``NuScenes`` object; it is linear and cheap next to the matching). Building the devkit's
``EvalBoxes`` objects is not timed. Every label AP, TP error, mAP and NDS must agree to 1e-9.

KITTI: ``--kitti-frames`` generated label/result pairs (default 3769, the val split) are
evaluated by :func:`kd3d.eval.kitti.evaluate_kitti` (2D, BEV, 3D, AOS at R11 and R40); timed
including parsing the text files.

Usage: ``python bench/eval_speed.py [--samples 300] [--kitti-frames 3769] [--skip-devkit]``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time


def bench_nuscenes(samples: int, n_gt: int, n_pred: int, skip_devkit: bool, seed: int = 0) -> int:
    from kd3d.eval.nuscenes_det import evaluate_boxes
    from kd3d.testing.nuscenes_cases import make_case

    gt, pred = make_case(samples, n_gt, n_pred, seed=seed)
    print(f"nuScenes detection: {samples} samples, {len(gt)} GT, {len(pred)} predictions")
    t0 = time.perf_counter()
    ours = evaluate_boxes(gt, pred)
    t_ours = time.perf_counter() - t0
    print(f"  kd3d   : {t_ours:8.2f} s   mAP {ours.mean_ap:.6f}  NDS {ours.nds:.6f}")
    if skip_devkit:
        return 0
    from kd3d.testing.devkit_ref import compare_summaries, devkit_metrics, to_eval_boxes

    ref, _, t_ref = devkit_metrics(to_eval_boxes(gt, True), to_eval_boxes(pred, False))
    print(f"  devkit : {t_ref:8.2f} s   mAP {ref['mean_ap']:.6f}  NDS {ref['nd_score']:.6f}")
    print(f"  speed-up: {t_ref / t_ours:.1f}x")
    bad = compare_summaries(ours.summary, ref)
    print("  metrics equal (1e-9): " + ("yes" if not bad else "NO\n    " + "\n    ".join(bad[:10])))
    return 1 if bad else 0


def bench_kitti(frames: int, seed: int = 0) -> int:
    from kd3d.eval.kitti import evaluate_kitti
    from kd3d.testing.kitti_cases import write_kitti_case

    with tempfile.TemporaryDirectory() as tmp:
        gt_dir, res_dir, split = write_kitti_case(tmp, frames, seed=seed)
        t0 = time.perf_counter()
        res = evaluate_kitti(gt_dir, res_dir, split_file=split, progress=False)
        t = time.perf_counter() - t0
    mod = res.table["Car"]["3d"]["R40"][1]
    print(f"KITTI: {frames} frames evaluated in {t:.2f} s (Car 3D R40 moderate {mod:.2f})")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=6000)
    p.add_argument("--gt", type=int, default=100)
    p.add_argument("--preds", type=int, default=300)
    p.add_argument("--skip-devkit", action="store_true", help="time kd3d only")
    p.add_argument("--kitti-frames", type=int, default=3769, help="0 to skip the KITTI part")
    args = p.parse_args(argv)
    rc = bench_nuscenes(args.samples, args.gt, args.preds, args.skip_devkit)
    if args.kitti_frames > 0:
        rc |= bench_kitti(args.kitti_frames)
    return rc


if __name__ == "__main__":
    sys.exit(main())
