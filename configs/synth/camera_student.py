"""Camera BEV student (LSS / BEVDepth style, thin ResNet-10) on synthetic nuScenes.

Its BEV grid is the LiDAR teachers' head grid (``grid="synthetic"``: +-51.2 m at 1.6 m), so
teacher and student maps coincide for distillation. Images are resized/cropped to 128 x 352.
"""
import dataclasses

from kd3d.engine.config import ModelConfig, load_base, load_base_module

LIDAR = load_base("synth/lidar_teacher")
POINT_RANGE = load_base_module("synth/lidar_teacher").POINT_RANGE

IMAGE_SIZE = [128, 352]

# Image augmentation only: no BEV rotation/flip on this synthetic benchmark (see
# configs/synth/lidar_teacher.py; the LiDAR input stays fixed, so a LiDAR teacher can be cached).
TRAIN_TRANSFORMS = [
    ["ImageResizeCrop", {"final_size": IMAGE_SIZE, "resize_range": [-0.06, 0.11], "random_crop": True}],
    ["PointRangeFilter", {"point_range": POINT_RANGE}],
    ["BoxRangeFilter", {"xy_range": [-51.2, -51.2, 51.2, 51.2]}],
]
# Balancing of the cross-modal distillers on this benchmark (kd3d.distill.Distiller): the papers'
# weights were tuned for their teachers' feature scales; on the synthetic LiDAR teacher the
# imitation terms start 1-50x above the detection losses of the untrained camera student. The
# distill terms ramp in over 100 steps and their sum is capped at 0.25x the student's losses.
DISTILL_BALANCE = {"warmup_steps": 100, "max_ratio": 0.25}

VAL_TRANSFORMS = [["ImageResizeCrop", {"final_size": IMAGE_SIZE}], ["PointRangeFilter", {"point_range": POINT_RANGE}]]

CONFIG = dataclasses.replace(
    LIDAR,
    name="synth_camera_student",
    data=dataclasses.replace(
        LIDAR.data, kwargs={"sweeps": 1, "load_images": True, "load_lidarseg": False},
        train_kwargs={"transforms": TRAIN_TRANSFORMS}, val_kwargs={"transforms": VAL_TRANSFORMS}),
    model=ModelConfig(name="camera_bev_synthetic", kwargs={"grid": "synthetic", "image_size": IMAGE_SIZE}),
    optim=dataclasses.replace(LIDAR.optim, lr=2e-3, grad_clip=5.0),
)
