"""Operators: sparse convolution shim, voxelization, BEV pooling, rotated IoU and NMS."""
