"""PointDistiller on the SECOND-style voxel detector, nuScenes trainval (GPU): 0.5x student.

Pair: teacher ``nuscenes/centerpoint_voxel01`` (1.0x) -> student
``nuscenes/centerpoint_voxel01_w050`` (0.5x channels, same architecture and voxel grid).
Two terms, weight 1.0 each, on the 2D BEV-backbone stages ``bev_stage1`` (128 x 128) and
``bev_stage2`` (64 x 64) (channels from the models' feature specs; per-side edge convs to 64
graph channels, no adapter): top N 256 cells per sample by the teacher's channel max, kNN
graph with K 128 in teacher feature space among all cells of the sample (the centre first),
per-edge loss, equal weights (``preset="second"``: the authors' SECOND setting).
Options: ``feature_key="voxel"`` (the last sparse stage, kept-point importance), ``tau=1e-4``
(softmax reweighting). Term by term against the paper and the authors' code: docs/methods.md
(PointDistiller). Same data as the teacher (10 sweeps).

Train the teacher first; its work dir is the checkpoint::

    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/centerpoint_voxel01
    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/distill_pointdistiller_voxel_w050
"""
from kd3d.distill import DistillConfig
from kd3d.engine.config import load_base, override

TEACHER = load_base("nuscenes/centerpoint_voxel01")
STUDENT = load_base("nuscenes/centerpoint_voxel01_w050")

CONFIG = override(STUDENT, {
    "name": "nusc_centerpoint_voxel01_w050_pointdistiller",
    "distill": DistillConfig(
        method="pointdistiller", teacher_model=TEACHER.model.name, teacher_kwargs=dict(TEACHER.model.kwargs),
        teacher_checkpoint=f"work_dirs/{TEACHER.name}",
        method_kwargs={"feature_key": ["bev_stage1", "bev_stage2"], "preset": "second", "weight": 1.0},
    ),
})
