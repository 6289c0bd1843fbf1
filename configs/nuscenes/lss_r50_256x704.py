"""Camera BEV student, BEVDepth-R50-like: 6 cameras at 256 x 704, 59 depth bins (1-60 m),
BEV 128 x 128 at 0.8 m (= the voxel-0.1 teacher's head grid), depth supervision from LiDAR.

AdamW lr 2e-4, wd 1e-2, grad clip 5, 24 epochs, per-GPU batch 8, bf16 on CUDA.
Image augmentation: resize 0.386..0.556 of 900 x 1600 (= base 0.44 + [-0.06, 0.11]),
random crop, BEV rot/scale/flip (cameras kept aligned by the transforms).
"""
import dataclasses

from kd3d.engine.config import ModelConfig, load_base, load_base_module, override

LIDAR = load_base("nuscenes/centerpoint_voxel01")
POINT_RANGE = load_base_module("nuscenes/centerpoint_voxel01").POINT_RANGE

IMAGE_SIZE = [256, 704]

TRAIN_TRANSFORMS = [
    ["ImageResizeCrop", {"final_size": IMAGE_SIZE, "resize_range": [-0.06, 0.11], "random_crop": True}],
    ["GlobalRotScaleTrans", {"rot_range": [-0.3925, 0.3925], "scale_range": [0.95, 1.05]}],
    ["RandomFlip3D", {"p_x": 0.5, "p_y": 0.5}],
    ["PointRangeFilter", {"point_range": POINT_RANGE}],
    ["BoxRangeFilter", {"xy_range": [-51.2, -51.2, 51.2, 51.2]}],
]
VAL_TRANSFORMS = [["ImageResizeCrop", {"final_size": IMAGE_SIZE}], ["PointRangeFilter", {"point_range": POINT_RANGE}]]

CONFIG = dataclasses.replace(
    override(LIDAR, {"optim.lr": 2e-4, "optim.grad_clip": 5.0, "optim.epochs": 24}),
    name="nusc_lss_r50_256x704",
    data=dataclasses.replace(
        LIDAR.data, kwargs={"sweeps": 1, "load_images": True, "load_lidarseg": False}, batch_size=8,
        train_kwargs={"transforms": TRAIN_TRANSFORMS}, val_kwargs={"transforms": VAL_TRANSFORMS}),
    model=ModelConfig(name="camera_bev_nuscenes", kwargs={}),
)
