"""LiDAR-camera fusion teacher (BEV concatenation + conv fuser, CenterHead) on synthetic nuScenes,
for UniDistill's fusion -> camera / fusion -> LiDAR pairs. Same head grid as the LiDAR teacher."""
import dataclasses

from kd3d.engine.config import ModelConfig, load_base, load_base_module

CAMERA = load_base("synth/camera_student")
IMAGE_SIZE = load_base_module("synth/camera_student").IMAGE_SIZE
LIDAR = load_base("synth/lidar_teacher")

CONFIG = dataclasses.replace(
    LIDAR,
    name="synth_fusion_teacher",
    data=dataclasses.replace(CAMERA.data, kwargs={**CAMERA.data.kwargs, "sweeps": LIDAR.data.kwargs["sweeps"]}),
    model=ModelConfig(name="fusion_centerpoint", kwargs={"scale": "synthetic", "width": 1.0,
                                                         "camera": {"image_size": IMAGE_SIZE}}),
)
