"""LiDAR semantic segmentation: sparse UNet on cubic voxels with a point branch."""
from kd3d.models.seg.segmenter import LidarSegmenter, sparse_unet_seg
from kd3d.models.seg.sparse_unet import SparseUNet, voxelize_points

__all__ = ["LidarSegmenter", "SparseUNet", "sparse_unet_seg", "voxelize_points"]
