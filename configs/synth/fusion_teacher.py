"""LiDAR-camera fusion teacher (BEV concatenation + conv fuser, CenterHead) on synthetic nuScenes,
for UniDistill's fusion -> camera / fusion -> LiDAR pairs. Same head grid as the LiDAR teacher."""
import dataclasses

from configs.synth.camera_student import CONFIG as CAMERA
from configs.synth.camera_student import IMAGE_SIZE
from configs.synth.lidar_teacher import CONFIG as LIDAR
from kd3d.engine.config import ModelConfig

CONFIG = dataclasses.replace(
    LIDAR,
    name="synth_fusion_teacher",
    data=dataclasses.replace(CAMERA.data, kwargs={**CAMERA.data.kwargs, "sweeps": LIDAR.data.kwargs["sweeps"]}),
    model=ModelConfig(name="fusion_centerpoint", kwargs={"scale": "synthetic", "width": 1.0,
                                                         "camera": {"image_size": IMAGE_SIZE}}),
)
