"""PointDistiller on the SECOND-style voxel detector, 0.25x student from the 1.0x teacher: the
same terms as ``synth/distill_pointdistiller`` (``bev_stage1`` / ``bev_stage2``, top-64 cells
by the teacher's channel max, K 32, equal weights; channels from the feature specs). See
docs/methods.md (PointDistiller). Train ``synth/lidar_teacher`` first."""
from kd3d.engine.config import load_base, override

W050 = load_base("synth/distill_pointdistiller")

# the 0.5x config with the student at 0.25x width (= synth/lidar_student_025)
CONFIG = override(W050, {"name": "synth_lidar_student_025_pointdistiller", "model.kwargs.width": 0.25})
