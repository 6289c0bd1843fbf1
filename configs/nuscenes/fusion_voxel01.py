"""LiDAR-camera fusion teacher on nuScenes: voxel 0.1 LiDAR branch + LSS R50 camera branch at
256 x 704, BEV concatenation + conv fuser, CenterHead on the 0.8 m grid (GPU)."""
import dataclasses

from kd3d.engine.config import ModelConfig, load_base

LIDAR = load_base("nuscenes/centerpoint_voxel01")
CAMERA = load_base("nuscenes/lss_r50_256x704")

CONFIG = dataclasses.replace(
    LIDAR,
    name="nusc_fusion_voxel01",
    data=dataclasses.replace(CAMERA.data, kwargs={**CAMERA.data.kwargs, "sweeps": 10}, batch_size=4),
    model=ModelConfig(name="fusion_centerpoint", kwargs={"scale": "nuscenes", "width": 1.0}),
    optim=dataclasses.replace(LIDAR.optim, lr=2e-4, grad_clip=35.0, epochs=20),
)
