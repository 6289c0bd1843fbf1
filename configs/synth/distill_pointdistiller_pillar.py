"""PointDistiller on PointPillars: 0.5x pillar student from the 1.0x pillar teacher on the
scattered pillar map ``bev`` (32 -> 64 channels), top-6000 cells by the teacher's channel max,
K 128, tau 1e-2 (the paper's PointPillars setting). Train ``synth/lidar_teacher_pillar`` first."""
from kd3d.distill import DistillConfig
from kd3d.engine.config import load_base, override

TEACHER = load_base("synth/lidar_teacher_pillar")
STUDENT = load_base("synth/pillar_student_050")

CONFIG = override(STUDENT, {
    "name": "synth_pillar_student_050_pointdistiller",
    "distill": DistillConfig(
        method="pointdistiller", teacher_model=TEACHER.model.name, teacher_kwargs=dict(TEACHER.model.kwargs),
        teacher_checkpoint=f"work_dirs/{TEACHER.name}",
        method_kwargs={"student_channels": 32, "teacher_channels": 64, "feature_key": "bev",
                       "preset": "pointpillars"},
    ),
})
