"""PointDistiller on the SECOND-style voxel detector, nuScenes trainval (GPU): 0.5x student.

Pair: teacher ``nuscenes/centerpoint_voxel01`` (1.0x) -> student
``nuscenes/centerpoint_voxel01_w050`` (0.5x channels, same architecture and voxel grid).
One term, weight 1.0, on the last sparse stage ``voxel`` (stride 8, 64 -> 128 channels;
per-side edge convs to 64 graph channels, no adapter): top N 256 voxels by point count
(stage voxel size from ``point_range``), kNN graph with K 128 in teacher feature space,
reweighting tau 1e-4 (``preset="second"``: the paper's SECOND setting N 256 / tau 1e-4; K is
the preset's, the paper's K for SECOND is not verified). Same data as the teacher (10 sweeps).

Train the teacher first; its work dir is the checkpoint::

    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/centerpoint_voxel01
    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/distill_pointdistiller_voxel_w050
"""
from kd3d.distill import DistillConfig
from kd3d.engine.config import load_base, load_base_module, override

TEACHER = load_base("nuscenes/centerpoint_voxel01")
POINT_RANGE = load_base_module("nuscenes/centerpoint_voxel01").POINT_RANGE
STUDENT = load_base("nuscenes/centerpoint_voxel01_w050")

CONFIG = override(STUDENT, {
    "name": "nusc_centerpoint_voxel01_w050_pointdistiller",
    "distill": DistillConfig(
        method="pointdistiller", teacher_model=TEACHER.model.name, teacher_kwargs=dict(TEACHER.model.kwargs),
        teacher_checkpoint=f"work_dirs/{TEACHER.name}",
        method_kwargs={"student_channels": 64, "teacher_channels": 128, "feature_key": "voxel",
                       "preset": "second", "point_range": list(POINT_RANGE), "weight": 1.0},
    ),
})
