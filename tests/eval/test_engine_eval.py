"""The engine's evaluators (kd3d.engine.eval_adapters -> kd3d.eval) on generated datasets:
GT fed back as predictions must score (near) perfectly."""
from pathlib import Path

import numpy as np
import pytest


def test_lidarseg_engine_results(tiny_nusc, tmp_path):
    from kd3d.data.nuscenes import NuScenesDataset
    from kd3d.eval.nuscenes_seg import evaluate_engine_results, fine_to_coarse_lut

    nusc, summary = tiny_nusc
    ds = NuScenesDataset(summary["dataroot"], summary["version"], "mini_val", sweeps=1, load_images=False)
    lut = fine_to_coarse_lut(nusc.category)
    results = {}
    for token, e in zip(ds.tokens, ds.entries):
        fine = np.fromfile(Path(summary["dataroot"]) / nusc.get("lidarseg", e["lidar"]["sd_token"])["filename"],
                           np.uint8)
        coarse = lut[fine]
        results[token] = {"point_labels": np.where(coarse == 0, 11, coarse)}
    m = evaluate_engine_results(results, ds, tmp_path / "out")
    present = [k for k, v in m.items() if k.startswith("IoU/") and not np.isnan(v)]
    assert present and all(m[k] == 1.0 for k in present if k != "IoU/driveable_surface")
    assert 0.9 < m["mIoU"] <= 1.0
    with pytest.raises(ValueError, match="no predictions"):
        evaluate_engine_results({}, ds)


def test_kitti_engine_results(tmp_path):
    from kd3d.data.kitti import KittiDataset
    from kd3d.data.synth import generate_kitti
    from kd3d.eval.kitti_io import evaluate_engine_results

    summary = generate_kitti(tmp_path / "kitti", frames=4, seed=2, image_size=(621, 188), val_fraction=0.5,
                             progress=False)
    ds = KittiDataset(summary.get("root", tmp_path / "kitti"), "val", load_images=False)
    results = {}
    for i, fid in enumerate(ds.tokens):
        s = ds.get_raw(i)
        results[fid] = {"boxes": s.gt_boxes, "scores": np.linspace(0.9, 0.5, len(s.gt_boxes)),
                        "labels": s.gt_labels}
    m = evaluate_engine_results(results, ds, tmp_path / "out")
    assert (tmp_path / "out" / "kitti_results").is_dir() and (tmp_path / "out" / "kitti_metrics.json").is_file()
    car3d = [v for k, v in m.items() if k.startswith("Car/3d_R11") and not np.isnan(v)]
    assert car3d and max(car3d) > 0  # GT boxes round-tripped through LiDAR -> camera match the labels
