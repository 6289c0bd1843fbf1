"""LiDAR segmentation teacher (sparse UNet, 0.2 m cubic voxels, point branch) on synthetic
nuScenes-lidarseg (16 classes + ignore), evaluated by mIoU."""
import dataclasses

from kd3d.engine.config import EvalConfig, ModelConfig, load_base, load_base_module

LIDAR = load_base("synth/lidar_teacher")
POINT_RANGE = load_base_module("synth/lidar_teacher").POINT_RANGE

TRAIN_TRANSFORMS = [
    ["GlobalRotScaleTrans", {"rot_range": [-0.785, 0.785], "scale_range": [0.95, 1.05]}],
    ["RandomFlip3D", {"p_x": 0.5, "p_y": 0.5}],
    ["PointRangeFilter", {"point_range": POINT_RANGE}],
]

CONFIG = dataclasses.replace(
    LIDAR,
    name="synth_seg_teacher",
    data=dataclasses.replace(
        LIDAR.data, kwargs={"sweeps": 1, "load_images": False, "load_lidarseg": True},
        train_kwargs={"transforms": TRAIN_TRANSFORMS}, val_kwargs={}),
    model=ModelConfig(name="sparse_unet_seg", kwargs={"scale": "synthetic", "width": 1.0}),
    eval=EvalConfig(evaluator="nuscenes_seg"),
)
