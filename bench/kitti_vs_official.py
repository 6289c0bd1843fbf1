"""Compare kd3d's KITTI evaluation with a compiled official devkit binary on generated folders.

The official ``evaluate_object`` C++ tool is not shipped with kd3d. Build an offline variant
(e.g. ``evaluate_object_3d_offline.cpp``: ``apt-get install libboost-dev; g++ -O2 -o eval
evaluate_object_3d_offline.cpp``; for the 2019+ rules make the GT height test ``<=`` and print
the curves with ``%.12f``), then::

    python bench/kitti_vs_official.py --official-bin ./eval --frames 400 --seed 1

It writes ``label_2/`` + ``results/data/`` (the offline tool's layout), runs both, and prints the
largest difference of the 41-point precision / AOS curves (files ``plot/<class>_<metric>.txt``).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_FILES = {"bbox": "detection", "bev": "detection_ground", "3d": "detection_3d", "aos": "orientation"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--official-bin", required=True)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from kd3d.eval.kitti import evaluate_kitti
    from kd3d.testing.kitti_cases import write_kitti_case

    with tempfile.TemporaryDirectory() as tmp:
        g, r, s = write_kitti_case(tmp, args.frames, seed=args.seed, p_duplicate=0.3)
        off = Path(tmp) / "official"
        (off / "data").mkdir(parents=True)
        for f in r.glob("*.txt"):
            shutil.copy(f, off / "data" / f.name)
        subprocess.run([args.official_bin, str(g), str(off)], capture_output=True, text=True, check=True)
        ours = evaluate_kitti(g, r, split_file=s, progress=False)
        worst = 0.0
        for cls in ("Car", "Pedestrian", "Cyclist"):
            for metric, name in _FILES.items():
                path = off / "plot" / f"{cls.lower()}_{name}.txt"
                if not path.is_file():
                    print(f"official tool wrote no {path.name}")
                    continue
                ref = np.loadtxt(path)[:, 1:]
                mine = np.array([ours.curves[cls][metric][d] for d in ("easy", "moderate", "hard")]).T
                worst = max(worst, float(np.abs(ref - mine).max()))
    print(f"{args.frames} frames, seed {args.seed}: max |curve difference| vs official = {worst:.3g}")
    return 0 if worst < 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
