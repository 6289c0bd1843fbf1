"""LSS / BEVDepth view transformer: image features -> depth distribution x context -> BEV map.

Conventions (see :mod:`kd3d.structures.sample`):

* pixel coordinates ``(u, v)``: column, row, continuous, pixel ``i`` spans ``[i, i+1)`` (as in
  :mod:`kd3d.data.transforms`);
* ``img_aug`` (3, 3) maps original-image pixels to network-input pixels,
  ``[u' v' 1] = img_aug @ [u v 1]``;
* ``cam_intrinsics`` K (3, 3) of the original image; camera frame x right, y down, z forward;
* ``cam2lidar`` (4, 4) maps camera-frame points to the LiDAR frame.

Feature cell ``(i, j)`` of a stride-``s`` map covers input pixels ``[j*s, (j+1)*s)``, so its
frustum rays go through ``u' = (j + 0.5) * s`` (and likewise ``v'``). Depth bin ``k`` covers
``[dmin + k*step, dmin + (k+1)*step)`` and its frustum point sits at the bin centre.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd3d.models.camera.backbone import conv_bn_relu
from kd3d.ops.bev_pool import bev_pool
from kd3d.structures.bev import BEVGrid


class DepthBins:
    """Uniform depth bins ``[dmin, dmax)`` of size ``step`` (D = (dmax - dmin) / step)."""

    def __init__(self, dmin: float, dmax: float, step: float):
        n = (dmax - dmin) / step
        if dmin <= 0 or step <= 0 or n < 1 or abs(n - round(n)) > 1e-6:
            raise ValueError(f"DepthBins: need 0 < dmin < dmax and (dmax - dmin) a multiple of step, got {dmin}, {dmax}, {step}")
        self.dmin, self.dmax, self.step, self.num = float(dmin), float(dmax), float(step), int(round(n))

    def centers(self) -> torch.Tensor:
        """(D,) float32 bin centres in metres."""
        return self.dmin + (torch.arange(self.num, dtype=torch.float32) + 0.5) * self.step

    def index(self, depth: torch.Tensor) -> torch.Tensor:
        """Metric depth -> bin index (long), -1 outside ``[dmin, dmax)``."""
        k = torch.floor((depth - self.dmin) / self.step).long()
        return torch.where((k >= 0) & (k < self.num), k, torch.full_like(k, -1))


def make_frustum(image_size: tuple[int, int], stride: int, bins: DepthBins) -> torch.Tensor:
    """(D, h, w, 3) float32 ``(u', v', depth)`` of every frustum point, network-input pixels."""
    height, width = image_size
    if height % stride or width % stride:
        raise ValueError(f"make_frustum: image_size {image_size} must be a multiple of the stride {stride}")
    h, w = height // stride, width // stride
    u = (torch.arange(w, dtype=torch.float32) + 0.5) * stride
    v = (torch.arange(h, dtype=torch.float32) + 0.5) * stride
    d = bins.centers()
    dd, vv, uu = torch.meshgrid(d, v, u, indexing="ij")
    return torch.stack([uu, vv, dd], dim=-1)


def frustum_to_lidar(
    frustum: torch.Tensor, cam_intrinsics: torch.Tensor, cam2lidar: torch.Tensor, img_aug: torch.Tensor
) -> torch.Tensor:
    """Frustum points to the LiDAR frame.

    frustum: (D, h, w, 3) ``(u', v', depth)``; cam_intrinsics (B, NC, 3, 3); cam2lidar
    (B, NC, 4, 4); img_aug (B, NC, 3, 3). Returns (B*NC, D, h, w, 3) LiDAR-frame xyz.
    ``[u v 1] ~ img_aug^-1 [u' v' 1]``, ``p_cam = depth * K^-1 [u v 1]``, ``p = R p_cam + t``.
    Matrix algebra runs in float64.
    """
    b, nc = cam_intrinsics.shape[:2]
    for name, t, shape in (("cam_intrinsics", cam_intrinsics, (3, 3)), ("cam2lidar", cam2lidar, (4, 4)), ("img_aug", img_aug, (3, 3))):
        if tuple(t.shape) != (b, nc, *shape):
            raise ValueError(f"batch.{name} must be (B={b}, NC={nc}, {shape[0]}, {shape[1]}), got {tuple(t.shape)}")
    f = frustum.double()
    # K^-1 img_aug^-1 maps [u' v' 1] to a ray (up to scale); normalising z_cam = 1 removes the
    # scale, then the point is depth * ray in the camera frame.
    uv1 = torch.cat([f[..., :2], torch.ones_like(f[..., :1])], -1)  # (D, h, w, 3)
    back = torch.linalg.inv(cam_intrinsics.double()) @ torch.linalg.inv(img_aug.double())  # (B, NC, 3, 3)
    ray = torch.einsum("bcij,dhwj->bcdhwi", back, uv1)
    p_cam = ray / ray[..., 2:3] * f[..., 2:3]
    c2l = cam2lidar.double()
    p = torch.einsum("bcij,bcdhwj->bcdhwi", c2l[..., :3, :3], p_cam) + c2l[..., None, None, None, :3, 3]
    p = p.reshape(b * nc, *f.shape)
    return p.to(frustum.dtype)


class DepthNet(nn.Module):
    """Per-pixel depth logits and context from image features.

    in: (N, Cin, h, w) [+ camera parameters (N, 27) when ``cam_aware``] -> depth logits
    (N, D, h, w), context (N, C, h, w). Camera-aware (BEVDepth): an MLP of K, img_aug and
    cam2lidar gates the hidden channels (squeeze-excitation style).
    """

    def __init__(self, *, in_channels: int, mid_channels: int, depth_bins: int, context_channels: int, cam_aware: bool = True):
        super().__init__()
        self.reduce = conv_bn_relu(in_channels, mid_channels, 3)
        self.cam_aware = cam_aware
        if cam_aware:
            self.cam_mlp = nn.Sequential(nn.Linear(27, mid_channels), nn.ReLU(inplace=True), nn.Linear(mid_channels, mid_channels))
        self.body = nn.Sequential(conv_bn_relu(mid_channels, mid_channels, 3), conv_bn_relu(mid_channels, mid_channels, 3))
        self.depth = nn.Conv2d(mid_channels, depth_bins, 1)
        self.context = nn.Conv2d(mid_channels, context_channels, 1)
        self.depth_bins = depth_bins

    def forward(self, x: torch.Tensor, cam_params: torch.Tensor | None = None):
        x = self.reduce(x)
        if self.cam_aware:
            if cam_params is None:
                raise ValueError("DepthNet(cam_aware=True) needs cam_params (N, 27)")
            x = x * torch.sigmoid(self.cam_mlp(cam_params))[:, :, None, None]
        x = x + self.body(x)
        return self.depth(x), self.context(x)


def camera_params(cam_intrinsics, cam2lidar, img_aug, image_size) -> torch.Tensor:
    """(B, NC, ...) matrices -> (B*NC, 27) float features for the camera-aware depth net:
    fx, fy, cx, cy, skew (in input pixels / image width), img_aug rows 0-1 (6), cam2lidar 3x4 (12),
    plus 4 zeros reserved."""
    b, nc = cam_intrinsics.shape[:2]
    scale = float(max(image_size))
    k = cam_intrinsics.reshape(b * nc, 3, 3).float()
    intr = torch.stack([k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2], k[:, 0, 1]], 1) / scale
    aug = img_aug.reshape(b * nc, 3, 3)[:, :2].float().reshape(b * nc, 6)
    aug = torch.cat([aug[:, [0, 1, 3, 4]], aug[:, [2, 5]] / scale], 1)
    ext = cam2lidar.reshape(b * nc, 4, 4)[:, :3].float()
    ext = torch.cat([ext[:, :, :3].reshape(b * nc, 9), ext[:, :, 3] / 50.0], 1)
    return torch.cat([intr, aug, ext, intr.new_zeros(b * nc, 4)], 1)


class LSSViewTransformer(nn.Module):
    """Lift-splat: (B*NC, Cin, h, w) image features + camera matrices -> (B, C, ny, nx) BEV map.

    Returns ``(bev, depth)`` with depth (B*NC, D, h, w) the softmax distribution.
    """

    def __init__(
        self, *, in_channels: int, context_channels: int, mid_channels: int, image_size: tuple[int, int],
        stride: int, depth_bins: DepthBins, grid: BEVGrid, z_range: tuple[float, float] = (-5.0, 3.0),
        cam_aware: bool = True,
    ):
        super().__init__()
        self.image_size, self.stride, self.bins, self.grid = tuple(image_size), stride, depth_bins, grid
        self.z_range = tuple(z_range)
        self.out_channels = context_channels
        self.depth_net = DepthNet(
            in_channels=in_channels, mid_channels=mid_channels, depth_bins=depth_bins.num,
            context_channels=context_channels, cam_aware=cam_aware,
        )
        self.register_buffer("frustum", make_frustum(self.image_size, stride, depth_bins), persistent=False)

    def geometry(self, batch) -> torch.Tensor:
        """(B*NC, D, h, w, 3) LiDAR-frame frustum points for ``batch``."""
        return frustum_to_lidar(self.frustum, batch.cam_intrinsics, batch.cam2lidar, batch.img_aug)

    def forward(self, feats: torch.Tensor, batch) -> tuple[torch.Tensor, torch.Tensor]:
        b, nc = batch.cam_intrinsics.shape[:2]
        d, h, w, _ = self.frustum.shape
        if tuple(feats.shape[-2:]) != (h, w) or feats.shape[0] != b * nc:
            raise ValueError(f"LSSViewTransformer: feats must be (B*NC={b * nc}, C, {h}, {w}), got {tuple(feats.shape)}")
        params = camera_params(batch.cam_intrinsics, batch.cam2lidar, batch.img_aug, self.image_size)
        depth_logits, context = self.depth_net(feats, params.to(feats.device))
        depth = depth_logits.softmax(1)
        geom = self.geometry(batch)
        bev = bev_pool(depth, context, geom, self.grid, num_cams=nc, z_range=self.z_range)
        return bev, depth


@torch.no_grad()
def depth_targets(
    points: list[torch.Tensor], cam_intrinsics, cam2lidar, img_aug, image_size: tuple[int, int], stride: int, bins: DepthBins
) -> torch.Tensor:
    """Depth-bin targets per feature patch from LiDAR points (key frame: dt == 0).

    points: list[B] of (Ni, 5) LiDAR-frame ``x y z i dt``. Each point is projected into each
    camera (network-input pixels); per stride-``s`` patch the minimum depth wins.
    Returns (B*NC, h, w) int64 bin index, -1 where no point (or depth outside the bins).
    """
    height, width = image_size
    h, w = height // stride, width // stride
    b, nc = cam_intrinsics.shape[:2]
    out = torch.full((b * nc, h * w), float("inf"), device=cam_intrinsics.device)
    for i in range(b):
        p = points[i]
        p = p[p[:, 4] == 0, :3].double() if p.shape[1] > 4 else p[:, :3].double()
        if p.shape[0] == 0:
            continue
        l2c = torch.linalg.inv(cam2lidar[i].double())  # (NC, 4, 4)
        pc = torch.einsum("cij,nj->cni", l2c[:, :3, :3], p) + l2c[:, None, :3, 3]  # (NC, N, 3) camera frame
        z = pc[..., 2]
        uv = torch.einsum("cij,cnj->cni", cam_intrinsics[i].double(), pc)
        uv = uv / uv[..., 2:3].clamp(min=1e-6)
        uv = torch.einsum("cij,cnj->cni", img_aug[i].double(), uv)
        uv = uv[..., :2] / uv[..., 2:3]
        col = torch.floor(uv[..., 0] / stride).long()
        row = torch.floor(uv[..., 1] / stride).long()
        ok = (z > 1e-3) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        cam = torch.arange(nc, device=p.device)[:, None].expand_as(z)
        flat = ((i * nc + cam) * (h * w) + row * w + col)[ok]
        out.view(-1).scatter_reduce_(0, flat, z[ok].float(), reduce="amin")
    idx = bins.index(out)
    idx[~torch.isfinite(out)] = -1
    return idx.view(b * nc, h, w)


def depth_loss(depth: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE between depth probabilities (N, D, h, w) and one-hot targets (N, h, w) (-1 ignored),
    summed over bins and averaged over supervised patches (0 when none)."""
    valid = target >= 0
    if not valid.any():
        return depth.sum() * 0.0
    prob = depth.permute(0, 2, 3, 1)[valid].clamp(1e-6, 1 - 1e-6)  # (K, D)
    onehot = F.one_hot(target[valid], depth.shape[1]).to(prob.dtype)
    return F.binary_cross_entropy(prob, onehot, reduction="sum") / valid.sum()
