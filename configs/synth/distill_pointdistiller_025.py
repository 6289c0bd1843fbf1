"""PointDistiller on the SECOND-style voxel detector, 0.25x student from the 1.0x teacher: the
same term as ``synth/distill_pointdistiller`` (last sparse stage ``voxel``, 32 -> 128 channels,
top-256 voxels by point count, K 16 neighbours in teacher feature space, tau 1e-4, the paper's
SECOND setting). Train ``synth/lidar_teacher`` first."""
from configs.synth.lidar_student_025 import CONFIG as STUDENT
from configs.synth.lidar_teacher import CONFIG as LIDAR
from configs.synth.lidar_teacher import POINT_RANGE
from kd3d.distill import DistillConfig
from kd3d.engine.config import override

CONFIG = override(STUDENT, {
    "name": "synth_lidar_student_025_pointdistiller",
    "distill": DistillConfig(
        method="pointdistiller", teacher_model=LIDAR.model.name, teacher_kwargs=dict(LIDAR.model.kwargs),
        teacher_checkpoint=f"work_dirs/{LIDAR.name}",
        method_kwargs={"student_channels": 32, "teacher_channels": 128, "feature_key": "voxel",
                       "preset": "second", "k": 16, "point_range": list(POINT_RANGE)},
    ),
})
