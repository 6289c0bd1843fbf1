"""DistillBEV, LiDAR -> camera, nuScenes trainval (GPU).

Pair: teacher ``nuscenes/centerpoint_voxel01`` (CenterPoint voxel 0.1, 10 sweeps) -> student
``nuscenes/lss_r50_256x704`` (LSS R50, single frame). Levels, each with a 1x1 adapter
(camera -> LiDAR channels), maps on the same metric range: ``bev_stage1`` 128 -> 128
(128 x 128), ``bev_stage2`` 256 -> 256 (64 x 64), ``bev_neck`` (head input) 256 -> 512
(128 x 128). Region/attention-weighted imitation with the paper's weights a_fg 6e-3,
a_bg 4e-2, a_fp 6e-2 (false-positive region on the head level only), spatial term a_sp 2.5e-3
on every level. The data loads the teacher's 10 LiDAR sweeps next to the images.

Head inheritance (``inherit_head="task_heads"``, as the authors' code): the student's per-task
head branches (after the shared 3x3 conv) start from the teacher's. They have equal shapes here
(both shared convs are 64 wide; 6 tasks, 336 tensors); only the shared conv itself differs (it
reads 256 camera channels against the teacher's 512) and keeps its fresh initialisation.
Paper / authors' code / kd3d defaults per term (FP region GT radius >= 2, teacher channel
attention on the FP term): ``docs/methods.md``, DistillBEV section.

Train the teacher first; its work dir is the checkpoint::

    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/centerpoint_voxel01
    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/distill_distillbev
"""
import dataclasses

from kd3d.distill import DistillConfig
from kd3d.engine.config import load_base

LIDAR = load_base("nuscenes/centerpoint_voxel01")
CAMERA = load_base("nuscenes/lss_r50_256x704")

CONFIG = dataclasses.replace(
    CAMERA,
    name="nusc_lss_r50_256x704_distillbev",
    data=dataclasses.replace(CAMERA.data, kwargs={**CAMERA.data.kwargs, "sweeps": LIDAR.data.kwargs["sweeps"]}),
    distill=DistillConfig(
        method="distillbev", teacher_model=LIDAR.model.name, teacher_kwargs=dict(LIDAR.model.kwargs),
        teacher_checkpoint=f"work_dirs/{LIDAR.name}",
        method_kwargs={"levels": ["bev_stage1", "bev_stage2", "bev_neck"],
                       "a_fg": 6e-3, "a_bg": 4e-2, "a_fp": 6e-2, "a_sp": 2.5e-3, "fp_levels": ["bev_neck"]},
        inherit_head="task_heads",
    ),
)
