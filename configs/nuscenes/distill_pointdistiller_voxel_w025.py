"""PointDistiller on the SECOND-style voxel detector, nuScenes trainval (GPU): 0.25x student
(the paper's SECOND compression ratio).

Pair: teacher ``nuscenes/centerpoint_voxel01`` (1.0x) -> student
``nuscenes/centerpoint_voxel01_w025`` (0.25x channels, same architecture and voxel grid).
One term, weight 1.0, on the last sparse stage ``voxel`` (stride 8, 32 -> 128 channels;
per-side edge convs to 64 graph channels, no adapter): top N 256 voxels by point count
(stage voxel size from ``point_range``), kNN graph with K 128 in teacher feature space,
reweighting tau 1e-4 (``preset="second"``: the paper's SECOND setting N 256 / tau 1e-4; K is
the preset's, the paper's K for SECOND is not verified). Same data as the teacher (10 sweeps).

Train the teacher first; its work dir is the checkpoint::

    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/centerpoint_voxel01
    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/distill_pointdistiller_voxel_w025
"""
from kd3d.engine.config import load_base, override

W050 = load_base("nuscenes/distill_pointdistiller_voxel_w050")

# the 0.5x config with the student at 0.25x width (= nuscenes/centerpoint_voxel01_w025)
CONFIG = override(W050, {"name": "nusc_centerpoint_voxel01_w025_pointdistiller", "model.kwargs.width": 0.25,
                         "distill.method_kwargs.student_channels": 32})
