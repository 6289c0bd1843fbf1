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
  ``scores``, ``labels`` (mmdet3d class order), ``num_voxels``, and the voxels mmdet3d's
  data preprocessor made: ``voxel_coors`` (V, 4) ``b z y x``, ``voxel_num_points``,
  ``voxel_point_index`` (V, max_num_points) the row of ``points.npy`` in each slot, -1 empty
  (mmcv's hard voxelization, the config's ``voxel_layer``, test ``max_voxels``); for the students, the exported kd3d files ``students/*_mmdet3d.pth`` were
  loaded with ``strict=True`` first;
* ``voxelization_cases.npz``: mmcv's ``Voxelization`` on ``points.npy`` with small caps
  (``{case}_{voxels,coors,num_points}`` and the case's settings), so that the first ``max_points``
  per voxel and the first ``max_voxels`` voxels are checked in mmcv's own order;
* ``metadata.json``: versions (mmdet3d, mmcv, mmengine, torch, spconv) and the voxelizer used.

Voxelization is mmcv 2.1.0's own compiled ``hard_voxelize_forward`` (CPU): this venv has
mmcv-lite plus a partial build of mmcv's voxelization sources
(``tools/mmdet3d_fixtures/build_mmcv_voxelization.sh``; the script refuses to run on the stub).
Each model's ``Det3DDataPreprocessor`` voxelizes the raw points (as mmdet3d's ``test_step``
does); the recorded intermediates are taken module by module from those voxels, and the boxes of
mmdet3d's whole ``test_step`` must equal the recorded ones (checked here).
The fixture cloud has a dense blob (60 points in a 4 cm cube, spread through the file order),
more than any config's ``max_num_points``, so the kept points are mmcv's choice.
Runs with one torch thread (spconv's CPU kernels race with more, see :func:`main`).

Oracle-checked by tests/interop/test_mmdet3d_oracle.py from these files (mmdet3d 1.x, CPU):
voxels (as a set), BEV, SECOND stages, neck, head maps and boxes -- measured max abs 0.0 at every
stage, boxes 6e-8 relative. Not oracle-checked (hand-built inputs instead): mmdet3d 0.x
checkpoints, OpenPCDet (CUDA-only extensions), mmcv's CUDA voxelization kernel, rotated NMS.
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
    pts = np.concatenate([xyz, feats], axis=1)
    # a blob of 60 points inside one voxel of every config (x 3.03..3.07, y -2.07..-2.03, z
    # -0.92..-0.88), inserted at random places in the file order: more than max_num_points
    blob = np.concatenate([rng.uniform([3.03, -2.07, -0.92], [3.07, -2.03, -0.88], size=(60, 3)),
                           rng.uniform(0, 1, size=(60, 2))], axis=1).astype(np.float32)
    return np.insert(pts, np.sort(rng.integers(0, len(pts), size=60)), blob, axis=0)


VOXELIZATION_CASES = {  # name: (voxel_size, max_num_points, max_voxels): caps that truncate
    "voxel_trunc": ([0.1, 0.1, 0.2], 3, 3000),
    "pillar_trunc": ([0.2, 0.2, 8.0], 5, 2000),
}


def require_mmcv_voxelization() -> str:
    """The compiled module behind mmcv._ext.hard_voxelize_forward (refuses the mmcv-lite stub)."""
    import mmcv._ext as ext

    mod = getattr(ext.hard_voxelize_forward, "__module__", None)
    if mod != "mmcv._ext_vox":
        raise SystemExit("mmcv._ext.hard_voxelize_forward is not mmcv's compiled op (got the stub?): run "
                         "tools/mmdet3d_fixtures/build_mmcv_voxelization.sh first")
    import mmcv._ext_vox

    return mmcv._ext_vox.__file__


def voxelize(model, points: np.ndarray) -> dict:
    """mmdet3d's own data preprocessor (``Det3DDataPreprocessor.voxelize``: mmcv's hard
    voxelization with the config's ``voxel_layer``; eval mode, so the test ``max_voxels``)."""
    assert not model.data_preprocessor.training
    return model.data_preprocessor.voxelize([torch.from_numpy(points)], None)


def point_index(points: np.ndarray, voxels: np.ndarray, num: np.ndarray) -> np.ndarray:
    """(V, P) int32: the row of ``points`` in each voxel slot, -1 for padding (the voxels' float
    data is the points' own: stored as indices to keep the fixtures small; checked exact here)."""
    rows = {r.tobytes(): i for i, r in enumerate(points)}
    assert len(rows) == len(points), "points.npy has duplicate rows"
    idx = np.full(voxels.shape[:2], -1, dtype=np.int32)
    for v in range(len(voxels)):
        for k in range(int(num[v])):
            idx[v, k] = rows[voxels[v, k].tobytes()]
    assert np.array_equal(np.where(idx[..., None] >= 0, points[idx], 0), voxels)
    return idx


@torch.no_grad()
def run(model, points: np.ndarray) -> dict:
    from mmdet3d.structures import Det3DDataSample, LiDARInstance3DBoxes

    vd = voxelize(model, points)
    out = {"num_voxels": np.asarray(len(vd["voxels"])), "voxel_coors": vd["coors"], "voxel_num_points": vd["num_points"],
           "voxel_point_index": point_index(points, vd["voxels"].numpy(), vd["num_points"].numpy())}
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
    # mmdet3d's whole test path (data preprocessor -> predict) gives the same boxes
    sample = Det3DDataSample(metainfo={"box_type_3d": LiDARInstance3DBoxes})
    full = model.test_step({"inputs": {"points": [torch.from_numpy(points)]}, "data_samples": [sample]})[0]
    assert torch.equal(full.pred_instances_3d.bboxes_3d.tensor, out["boxes"]), "test_step boxes differ"
    assert torch.equal(full.pred_instances_3d.labels_3d, out["labels"])
    return {k: (v.detach().cpu().numpy() if torch.is_tensor(v) else v) for k, v in out.items()}


def write_voxelization_cases(points: np.ndarray) -> None:
    from mmcv.ops import Voxelization

    out = {}
    for name, (vs, max_points, max_voxels) in VOXELIZATION_CASES.items():
        layer = Voxelization(vs, RANGE, max_points, max_voxels=max_voxels).eval()
        v, c, n = layer(torch.from_numpy(points))
        assert len(v) == max_voxels and int(n.max()) == max_points, (name, len(v), int(n.max()))
        out.update({f"{name}_voxels": v.numpy(), f"{name}_coors": c.numpy(), f"{name}_num_points": n.numpy(),
                    f"{name}_voxel_size": np.asarray(vs), f"{name}_max_points": np.asarray(max_points),
                    f"{name}_max_voxels": np.asarray(max_voxels)})
    out["point_cloud_range"] = np.asarray(RANGE)
    np.savez_compressed(FIX / "voxelization_cases.npz", **out)


def write_metadata(so: str) -> None:
    import hashlib
    import json

    import mmcv
    import mmdet3d
    import mmengine
    import spconv

    meta = {"generator": "tools/mmdet3d_fixtures/generate.py",
            "versions": {"mmdet3d": mmdet3d.__version__, "mmcv": mmcv.__version__, "mmengine": mmengine.__version__,
                         "torch": torch.__version__, "spconv": spconv.__version__},
            "voxelizer": {"op": "mmcv._ext.hard_voxelize_forward (CPU), called by Det3DDataPreprocessor.voxelize",
                          "build": "tools/mmdet3d_fixtures/build_mmcv_voxelization.sh",
                          "sources": ["mmcv-2.1.0/mmcv/ops/csrc/pytorch/voxelization.cpp",
                                      "mmcv-2.1.0/mmcv/ops/csrc/pytorch/cpu/voxelization.cpp"],
                          "sdist_sha256": "d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f",
                          "module": Path(so).name, "module_sha256": hashlib.sha256(Path(so).read_bytes()).hexdigest()}}
    (FIX / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")


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
    so = require_mmcv_voxelization()
    FIX.mkdir(parents=True, exist_ok=True)
    points = make_points()
    np.save(FIX / "points.npy", points)
    write_voxelization_cases(points)
    write_metadata(so)
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
        np.savez_compressed(FIX / f"teacher_{kind}_outputs.npz", **run(model, points))
        print("teacher", kind, "written")
    for kind in ("voxel", "pillar"):
        cfg = Config.fromfile(str(FIX / "students" / f"{kind}_mmdet3d_config.py"))
        model = MODELS.build(cfg.model)
        load_checkpoint(model, str(FIX / "students" / f"{kind}_mmdet3d.pth"), map_location="cpu", strict=True)
        model.eval()
        np.savez_compressed(FIX / f"student_{kind}_outputs.npz", **run(model, points))
        print("student", kind, "loaded strict=True, outputs written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
