"""Camera BEV students (LSS / BEVDepth style): image backbone + FPN, depth net, view transformer."""
from kd3d.models.camera.backbone import FPN16, ResNet, load_torchvision_resnet
from kd3d.models.camera.bev_encoder import BEVEncoder
from kd3d.models.camera.presets import NUSC_TASKS, camera_bev_nuscenes, camera_bev_synthetic
from kd3d.models.camera.student import CameraBEVDet, CameraToBEV, build_camera_branch, build_camera_bev
from kd3d.models.camera.view_transformer import DepthBins, LSSViewTransformer, depth_targets, frustum_to_lidar

__all__ = [
    "BEVEncoder", "CameraBEVDet", "CameraToBEV", "DepthBins", "FPN16", "LSSViewTransformer", "NUSC_TASKS", "ResNet",
    "build_camera_bev", "build_camera_branch", "camera_bev_nuscenes", "camera_bev_synthetic", "depth_targets", "frustum_to_lidar",
    "load_torchvision_resnet",
]
