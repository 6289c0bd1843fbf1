"""PointDistiller on the SECOND-style voxel detector: 0.5x student from the 1.0x teacher on the
last sparse stage ``voxel`` (64 -> 128 channels), top-256 voxels by point count, K neighbours
in teacher feature space, tau 1e-4 (the paper's SECOND setting). Train ``synth/lidar_teacher``
first."""
from kd3d.distill import DistillConfig
from kd3d.engine.config import load_base, load_base_module, override

STUDENT = load_base("synth/lidar_student_050")
LIDAR = load_base("synth/lidar_teacher")
POINT_RANGE = load_base_module("synth/lidar_teacher").POINT_RANGE

CONFIG = override(STUDENT, {
    "name": "synth_lidar_student_050_pointdistiller",
    "distill": DistillConfig(
        method="pointdistiller", teacher_model=LIDAR.model.name, teacher_kwargs=dict(LIDAR.model.kwargs),
        teacher_checkpoint=f"work_dirs/{LIDAR.name}",
        method_kwargs={"student_channels": 64, "teacher_channels": 128, "feature_key": "voxel",
                       "preset": "second", "k": 16, "point_range": list(POINT_RANGE)},
    ),
})
