"""Step 2 of the mmdet3d oracle fixtures: run MMDetection3D itself and record what it computes.

Run with the side virtualenv that has mmdet3d 1.4 (never kd3d's environment, never CI):

    /work/side/mmdet3d-venv/bin/python tools/mmdet3d_fixtures/generate.py

(first ``python tools/mmdet3d_fixtures/make_students.py`` in kd3d's environment). Writes into
``tests/fixtures/mmdet3d/``:

* ``points.npy``: a fixed point cloud (N, 5) ``x y z intensity dt``, LiDAR frame;
* ``teacher_{voxel,pillar}.pth``: mmdet3d checkpoints (mmengine layout: ``meta`` with ``cfg``,
  ``state_dict`` with mmdet3d's own ``_metadata``, a ``message_hub``) of reduced-width (0.125)
  but architecture-identical ``centerpoint_voxel01_second_secfpn`` / ``centerpoint_pillar02``
  models over x, y in +-12.8 m, random weights and BN statistics (fixed seed);
* ``teacher_*_config.py``: their configs (text);
* ``{teacher,student}_{voxel,pillar}_outputs.npz``: mmdet3d's outputs on ``points.npy``:
  ``bev`` (middle encoder), ``stage{k}`` (SECOND), ``neck``, per task ``t{t}_{heatmap,reg,height,
  dim,rot,vel}`` and the decoded ``boxes`` (K, 9; bottom-centre z, mmdet3d 1.x LiDAR boxes),
  ``scores``, ``labels`` (mmdet3d class order), ``num_voxels``;
  for the students, the exported kd3d files ``students/*_mmdet3d.pth`` were loaded with
  ``strict=True`` first.

Voxelization: this venv has mmcv-lite (no compiled mmcv ops), so the points are voxelized with
spconv's ``PointToVoxel`` -- the op kd3d's Voxelizer uses -- with each config's voxel layer
settings, and the voxels enter mmdet3d's ``pts_voxel_encoder``; everything after is mmdet3d.
Runs with one torch thread (spconv's CPU kernels race with more, see :func:`main`).
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from kd3d.testing.weights import randomize  # noqa: E402  (torch only: importable in the side venv)

FIX = ROOT / "tests" / "fixtures" / "mmdet3d"
RANGE = [-12.8, -12.8, -5.0, 12.8, 12.8, 3.0]
WIDTH = 0.125
TASKS = [dict(num_class=1, class_names=["car"]), dict(num_class=2, class_names=["truck", "construction_vehicle"]),
         dict(num_class=2, class_names=["bus", "trailer"]), dict(num_class=1, class_names=["barrier"]),
         dict(num_class=2, class_names=["motorcycle", "bicycle"]),
         dict(num_class=2, class_names=["pedestrian", "traffic_cone"])]
CLASSES = [c for t in TASKS for c in t["class_names"]]


def s(c: int) -> int:
    return max(1, int(round(c * WIDTH)))


def head_cfg(in_channels: int, factor: int, voxel_size, post_range) -> dict:
    common = dict(reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2), vel=(2, 2))
    return dict(type="CenterHead", in_channels=in_channels, tasks=TASKS, common_heads=common,
                share_conv_channel=s(64),
                bbox_coder=dict(type="CenterPointBBoxCoder", post_center_range=post_range, max_num=500,
                                score_threshold=0.1, out_size_factor=factor, voxel_size=voxel_size[:2],
                                pc_range=RANGE[:2], code_size=9),
                separate_head=dict(type="SeparateHead", init_bias=-2.19, final_kernel=3, head_conv=s(64)),
                norm_bbox=True)


def test_cfg(factor: int, voxel_size, post_range) -> dict:
    return dict(pts=dict(post_center_limit_range=post_range, max_per_img=500, max_pool_nms=False,
                         min_radius=[4, 12, 10, 1, 0.85, 0.175], score_threshold=0.1, out_size_factor=factor,
                         voxel_size=voxel_size[:2], nms_type="circle", pre_max_size=1000, post_max_size=83,
                         nms_thr=0.2, pc_range=RANGE[:2]))


def teacher_cfgs() -> dict:
    bn = dict(type="BN", eps=1e-3, momentum=0.01)
    vs = [0.1, 0.1, 0.2]
    far = [-61.2, -61.2, -10.0, 61.2, 61.2, 10.0]
    voxel = dict(
        type="CenterPoint",
        data_preprocessor=dict(type="Det3DDataPreprocessor", voxel=True, voxel_layer=dict(
            max_num_points=10, voxel_size=vs, point_cloud_range=RANGE, max_voxels=(90000, 120000))),
        pts_voxel_encoder=dict(type="HardSimpleVFE", num_features=5),
        pts_middle_encoder=dict(type="SparseEncoder", in_channels=5, sparse_shape=[41, 256, 256],
                                output_channels=s(128), base_channels=s(16), order=("conv", "norm", "act"),
                                encoder_channels=((s(16), s(16), s(32)), (s(32), s(32), s(64)),
                                                  (s(64), s(64), s(128)), (s(128), s(128))),
                                encoder_paddings=((0, 0, 1), (0, 0, 1), (0, 0, [0, 1, 1]), (0, 0)),
                                block_type="basicblock"),
        pts_backbone=dict(type="SECOND", in_channels=s(128) * 2, out_channels=[s(128), s(256)], layer_nums=[5, 5],
                          layer_strides=[1, 2], norm_cfg=bn, conv_cfg=dict(type="Conv2d", bias=False)),
        pts_neck=dict(type="SECONDFPN", in_channels=[s(128), s(256)], out_channels=[s(256), s(256)],
                      upsample_strides=[1, 2], norm_cfg=bn, upsample_cfg=dict(type="deconv", bias=False),
                      use_conv_for_no_stride=True),
        pts_bbox_head=head_cfg(2 * s(256), 8, vs, far),
        test_cfg=test_cfg(8, vs, far))
    ps = [0.2, 0.2, 8.0]
    near = [-10.0, -10.0, -10.0, 10.0, 10.0, 10.0]  # a post-centre range that cuts the grid: exercised
    pillar = dict(
        type="CenterPoint",
        data_preprocessor=dict(type="Det3DDataPreprocessor", voxel=True, voxel_layer=dict(
            max_num_points=20, voxel_size=ps, point_cloud_range=RANGE, max_voxels=(30000, 40000))),
        pts_voxel_encoder=dict(type="PillarFeatureNet", in_channels=5, feat_channels=[s(64)], with_distance=False,
                               voxel_size=tuple(ps), point_cloud_range=RANGE,
                               norm_cfg=dict(type="BN1d", eps=1e-3, momentum=0.01), legacy=False),
        pts_middle_encoder=dict(type="PointPillarsScatter", in_channels=s(64), output_shape=(128, 128)),
        pts_backbone=dict(type="SECOND", in_channels=s(64), out_channels=[s(64), s(128), s(256)],
                          layer_nums=[3, 5, 5], layer_strides=[2, 2, 2], norm_cfg=bn,
                          conv_cfg=dict(type="Conv2d", bias=False)),
        pts_neck=dict(type="SECONDFPN", in_channels=[s(64), s(128), s(256)], out_channels=[s(128)] * 3,
                      upsample_strides=[0.5, 1, 2], norm_cfg=bn, upsample_cfg=dict(type="deconv", bias=False),
                      use_conv_for_no_stride=True),
        pts_bbox_head=head_cfg(3 * s(128), 4, ps, near),
        test_cfg=test_cfg(4, ps, near))
    return {"voxel": voxel, "pillar": pillar}


def make_points(seed: int = 7) -> np.ndarray:
    """Uniform clutter over the whole range (so no BEV cell is empty: empty regions give tied
    scores, and tied scores make NMS depend on each sort's tie order) plus box-like clusters."""
    rng = np.random.default_rng(seed)
    clutter = rng.uniform([-12.7, -12.7, -2.5], [12.7, 12.7, 1.5], size=(12000, 3))
    clusters = []
    for _ in range(12):
        c = rng.uniform([-10, -10, -1.5], [10, 10, 0.0])
        clusters.append(c + rng.normal(0, [0.9, 0.5, 0.4], size=(150, 3)))
    xyz = np.concatenate([clutter] + clusters).astype(np.float32)
    xyz = np.clip(xyz, [-12.79, -12.79, -4.99], [12.79, 12.79, 2.99]).astype(np.float32)
    feats = rng.uniform(0, 1, size=(len(xyz), 2)).astype(np.float32)
    return np.concatenate([xyz, feats], axis=1)


def voxelize(points: np.ndarray, layer: dict):
    from spconv.pytorch.utils import PointToVoxel

    gen = PointToVoxel(vsize_xyz=list(layer["voxel_size"]), coors_range_xyz=list(layer["point_cloud_range"]),
                       num_point_features=5, max_num_voxels=int(layer["max_voxels"][1]),
                       max_num_points_per_voxel=int(layer["max_num_points"]), device=torch.device("cpu"))
    voxels, coords, num = gen(torch.from_numpy(points))
    coords = torch.nn.functional.pad(coords, (1, 0), value=0)
    return {"voxels": voxels, "num_points": num, "coors": coords}


@torch.no_grad()
def run(model, cfg: dict, points: np.ndarray) -> dict:
    from mmdet3d.structures import LiDARInstance3DBoxes

    vd = voxelize(points, cfg["data_preprocessor"]["voxel_layer"])
    out = {"num_voxels": np.asarray(len(vd["voxels"]))}
    vf = model.pts_voxel_encoder(vd["voxels"], vd["num_points"], vd["coors"], None, None)
    bev = model.pts_middle_encoder(vf, vd["coors"], 1)
    out["bev"] = bev
    stages = model.pts_backbone(bev)
    for k, st in enumerate(stages, start=1):
        out[f"stage{k}"] = st
    neck = model.pts_neck(stages)
    out["neck"] = neck[0]
    preds = model.pts_bbox_head(neck)
    for t, p in enumerate(preds):
        for name, v in p[0].items():
            out[f"t{t}_{name}"] = v
    res = model.pts_bbox_head.predict_by_feat(copy.deepcopy(preds), [{"box_type_3d": LiDARInstance3DBoxes}])[0]
    out["boxes"] = res.bboxes_3d.tensor
    out["scores"] = res.scores_3d
    out["labels"] = res.labels_3d
    return {k: (v.detach().cpu().numpy() if torch.is_tensor(v) else v) for k, v in out.items()}


def main() -> int:
    # spconv's CPU gather-mm-scatter races with more than one torch thread (wrong rows; measured
    # here: 2022 of 15038 BEV cells of the voxel teacher off by up to 14% with 2 threads). kd3d's
    # shim (kd3d/ops/spconv.py) runs those ops single-threaded; mmdet3d does not, so run all of
    # it with one thread.
    torch.set_num_threads(1)
    import mmengine
    from mmengine.config import Config
    from mmengine.logging import MessageHub
    from mmengine.runner import load_checkpoint
    import mmdet.models  # noqa: F401  (mmdet's losses used by CenterHead)
    import mmdet3d.models  # noqa: F401  (registers CenterPoint; mmdet3d.utils.register_all_modules would also
    from mmengine.registry import init_default_scope  # import the evaluation code and its lyft dependency)
    from mmdet3d.registry import MODELS

    init_default_scope("mmdet3d")
    FIX.mkdir(parents=True, exist_ok=True)
    points = make_points()
    np.save(FIX / "points.npy", points)
    hub = MessageHub.get_instance("kd3d_fixture")
    hub.update_scalar("train/loss", 1.0)  # real mmengine files carry HistoryBuffer objects
    for i, (kind, mcfg) in enumerate(teacher_cfgs().items()):
        cfg = Config(dict(model=mcfg, class_names=CLASSES, point_cloud_range=RANGE))
        model = MODELS.build(cfg.model)
        randomize(model, 10 + i)
        model.eval()
        (FIX / f"teacher_{kind}_config.py").write_text(cfg.pretty_text)
        torch.save({"meta": {"mmengine_version": mmengine.__version__, "cfg": cfg.pretty_text,
                             "dataset_meta": {"classes": CLASSES}},
                    "state_dict": model.state_dict(), "message_hub": hub.state_dict()},
                   FIX / f"teacher_{kind}.pth")
        np.savez_compressed(FIX / f"teacher_{kind}_outputs.npz", **run(model, mcfg, points))
        print("teacher", kind, "written")
    for kind in ("voxel", "pillar"):
        cfg = Config.fromfile(str(FIX / "students" / f"{kind}_mmdet3d_config.py"))
        model = MODELS.build(cfg.model)
        load_checkpoint(model, str(FIX / "students" / f"{kind}_mmdet3d.pth"), map_location="cpu", strict=True)
        model.eval()
        np.savez_compressed(FIX / f"student_{kind}_outputs.npz", **run(model, cfg.model, points))
        print("student", kind, "loaded strict=True, outputs written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
