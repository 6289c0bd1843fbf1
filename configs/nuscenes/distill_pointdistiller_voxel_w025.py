"""PointDistiller on the SECOND-style voxel detector, nuScenes trainval (GPU): 0.25x student
(the paper's SECOND compression ratio).

Pair: teacher ``nuscenes/centerpoint_voxel01`` (1.0x) -> student
``nuscenes/centerpoint_voxel01_w025`` (0.25x channels, same architecture and voxel grid).
The same terms as ``nuscenes/distill_pointdistiller_voxel_w050`` (``bev_stage1`` /
``bev_stage2``, top 256 cells by the teacher's channel max, K 128, equal weights; channels
from the feature specs). Term by term: docs/methods.md (PointDistiller). Same data as the
teacher (10 sweeps).

Train the teacher first; its work dir is the checkpoint::

    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/centerpoint_voxel01
    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/distill_pointdistiller_voxel_w025
"""
from kd3d.engine.config import load_base, override

W050 = load_base("nuscenes/distill_pointdistiller_voxel_w050")

# the 0.5x config with the student at 0.25x width (= nuscenes/centerpoint_voxel01_w025)
CONFIG = override(W050, {"name": "nusc_centerpoint_voxel01_w025_pointdistiller", "model.kwargs.width": 0.25})
