"""LiDAR segmentation teacher on nuScenes-lidarseg: sparse UNet on 0.1 m cubic voxels with a
point branch, 16 classes + ignore; PVD's teacher. (GPU; needs the lidarseg extension.)"""
import dataclasses

from kd3d.engine.config import EvalConfig, ModelConfig, load_base, load_base_module

LIDAR = load_base("nuscenes/centerpoint_voxel01")
POINT_RANGE = load_base_module("nuscenes/centerpoint_voxel01").POINT_RANGE

TRAIN_TRANSFORMS = [
    ["GlobalRotScaleTrans", {"rot_range": [-0.785, 0.785], "scale_range": [0.95, 1.05]}],
    ["RandomFlip3D", {"p_x": 0.5, "p_y": 0.5}],
    ["PointRangeFilter", {"point_range": POINT_RANGE}],
]

CONFIG = dataclasses.replace(
    LIDAR,
    name="nusc_seg_unet",
    data=dataclasses.replace(LIDAR.data, kwargs={"sweeps": 1, "load_images": False, "load_lidarseg": True},
                             train_kwargs={"transforms": TRAIN_TRANSFORMS}, val_kwargs={}),
    model=ModelConfig(name="sparse_unet_seg", kwargs={"scale": "nuscenes", "width": 1.0}),
    optim=dataclasses.replace(LIDAR.optim, lr=2e-3, epochs=36),
    eval=EvalConfig(evaluator="nuscenes_seg"),
)
