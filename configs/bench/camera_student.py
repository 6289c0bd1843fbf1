"""Benchmark v2, camera suite: the calibrated camera BEV student (issue 12 item 1).

``synth/camera_student`` with one 3x3 conv per CenterHead branch (the head of 6 tasks x 8
branches x 2 convs on the 64 x 64 map cost more than the rest of the model; a step is about 1.7x
cheaper), training targets with >= 1 LiDAR point, the v2 data (256 train frames: 64 were
memorised) and 1500 steps at batch 2 (one seed of this recipe: mAP 0.155 / NDS 0.339 on 48 unseen
frames in about 15 single-thread CPU minutes). Teacher: ``bench/lidar_teacher``.
"""
from kd3d.engine.config import load_base, load_base_module, override

V2 = load_base_module("bench/lidar_teacher")
SYNTH = load_base_module("synth/camera_student")
DISTILL_BALANCE = SYNTH.DISTILL_BALANCE
NUM_HEAD_CONVS = 1
MAX_STEPS = 1500

CONFIG = override(load_base("synth/camera_student"), {
    **V2.DATA_V2, "name": "bench_camera_student",
    "data.train_kwargs": {"transforms": V2.with_min_points(SYNTH.TRAIN_TRANSFORMS)},
    "model.kwargs.num_head_convs": NUM_HEAD_CONVS,
    "optim.max_steps": MAX_STEPS,
})
