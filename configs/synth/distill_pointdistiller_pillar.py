"""PointDistiller on PointPillars: 0.5x pillar student from the 1.0x pillar teacher on the
pillar features ``voxel`` before the scatter to BEV (the authors' PointPillars setting;
channels from the feature specs): top-N pillars by the points the voxelizer kept (at most
``max_points_per_pillar``), K nearest pillars in teacher feature space (among all pillars of
the sample, the centre first), per-edge graph loss, ``phi = N softmax(count / 1e-2)``
(``preset="pointpillars"``).

N 512 / K 32 instead of the paper's 6000 / 128: a synthetic sample has a few thousand
non-empty pillars (about 3600 from one sweep), and the authors' 6000 are chosen from a
batch of six KITTI frames (about a tenth of its pillars); K is scaled with N.
Option: ``--set distill.method_kwargs.feature_key=bev`` distils the scattered map with
channel-max importance (the earlier kd3d default). Term by term: docs/methods.md
(PointDistiller). Train ``synth/lidar_teacher_pillar`` first."""
from kd3d.distill import DistillConfig
from kd3d.engine.config import load_base, override

TEACHER = load_base("synth/lidar_teacher_pillar")
STUDENT = load_base("synth/pillar_student_050")

CONFIG = override(STUDENT, {
    "name": "synth_pillar_student_050_pointdistiller",
    "distill": DistillConfig(
        method="pointdistiller", teacher_model=TEACHER.model.name, teacher_kwargs=dict(TEACHER.model.kwargs),
        teacher_checkpoint=f"work_dirs/{TEACHER.name}",
        method_kwargs={"feature_key": "voxel", "preset": "pointpillars", "num_items": 512, "k": 32},
    ),
})
