"""PointDistiller on PointPillars-style CenterPoint, nuScenes trainval (GPU): 0.5x student
(the paper's PointPillars compression ratio).

Pair: teacher ``nuscenes/centerpoint_pillar02`` (1.0x) -> student ``nuscenes/pillar02_w050``
(0.5x channels, same architecture and 0.2 m pillar grid). One term, weight 1.0, on the pillar
features ``voxel`` before the scatter to BEV (channels from the models' feature specs;
per-side edge convs to 64 graph channels, no adapter): top N 6000 pillars per sample by the
points the voxelizer kept (at most 20 per pillar), kNN graph with K 128 in teacher feature
space among all pillars of the sample (the centre first), per-edge loss, reweighting
``N softmax(count / 1e-2)`` (``preset="pointpillars"``: the paper's PointPillars setting).
Option: ``feature_key="bev"`` (the scattered map, channel-max importance). Term by term
against the paper and the authors' code: docs/methods.md (PointDistiller). Same data as the
teacher (10 sweeps).

Train the teacher first; its work dir is the checkpoint::

    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/centerpoint_pillar02
    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/distill_pointdistiller_pillar_w050
"""
from kd3d.distill import DistillConfig
from kd3d.engine.config import load_base, override

TEACHER = load_base("nuscenes/centerpoint_pillar02")
STUDENT = load_base("nuscenes/pillar02_w050")

CONFIG = override(STUDENT, {
    "name": "nusc_pillar02_w050_pointdistiller",
    "distill": DistillConfig(
        method="pointdistiller", teacher_model=TEACHER.model.name, teacher_kwargs=dict(TEACHER.model.kwargs),
        teacher_checkpoint=f"work_dirs/{TEACHER.name}",
        method_kwargs={"feature_key": "voxel", "preset": "pointpillars", "weight": 1.0},
    ),
})
