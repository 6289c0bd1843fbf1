"""PointDistiller on the SECOND-style voxel detector, 0.25x student from the 1.0x teacher: the
same term as ``synth/distill_pointdistiller`` (last sparse stage ``voxel``, 32 -> 128 channels,
top-256 voxels by point count, K 16 neighbours in teacher feature space, tau 1e-4, the paper's
SECOND setting). Train ``synth/lidar_teacher`` first."""
from kd3d.engine.config import load_base, override

W050 = load_base("synth/distill_pointdistiller")

# the 0.5x config with the student at 0.25x width (= synth/lidar_student_025)
CONFIG = override(W050, {"name": "synth_lidar_student_025_pointdistiller", "model.kwargs.width": 0.25,
                         "distill.method_kwargs.student_channels": 32})
