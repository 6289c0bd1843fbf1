"""Image backbone for camera BEV students: a ResNet with configurable depth and width, and an FPN
that fuses strides 8/16/32 into one stride-16 map.

Parameter names follow torchvision's ResNet layout (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0`` ...), so ImageNet weights saved by torchvision load directly with
:func:`load_torchvision_resnet` (torchvision itself is optional and never required).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# depth -> (block, blocks per stage), as in He et al. 2016
RESNET_LAYOUTS = {
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """ResNet trunk without the classifier.

    Args: ``depth`` in :data:`RESNET_LAYOUTS` or explicit ``layers`` (blocks per stage, 4 stages)
    with ``block`` ("basic" | "bottleneck"); ``width``: channels of the first stage (64 in the
    paper; 16 or 32 for CPU-sized students).

    forward: images (N, 3, H, W) -> list of 4 maps at strides 4, 8, 16, 32 with channels
    :attr:`out_channels`. H and W must be multiples of 32.
    """

    def __init__(self, *, depth: int | None = 18, layers: tuple[int, ...] | None = None, block: str = "basic", width: int = 64):
        super().__init__()
        if layers is None:
            if depth not in RESNET_LAYOUTS:
                raise ValueError(f"ResNet: depth must be one of {sorted(RESNET_LAYOUTS)} or give layers=, got {depth}")
            block, layers = RESNET_LAYOUTS[depth]
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"ResNet: layers must be 4 positive block counts, got {layers}")
        blocks = {"basic": BasicBlock, "bottleneck": Bottleneck}
        if block not in blocks:
            raise ValueError(f"ResNet: block must be 'basic' or 'bottleneck', got {block!r}")
        cls = blocks[block]
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        self.out_channels: list[int] = []
        for i, n in enumerate(layers):
            w = width * 2**i
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != w * cls.expansion:
                down = nn.Sequential(nn.Conv2d(cin, w * cls.expansion, 1, stride, bias=False), nn.BatchNorm2d(w * cls.expansion))
            mods = [cls(cin, w, stride, down)]
            cin = w * cls.expansion
            mods += [cls(cin, w) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*mods))
            self.out_channels.append(cin)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(f"ResNet: images must be (N, 3, H, W) with H, W multiples of 32, got {tuple(x.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
            outs.append(x)
        return outs


class FPN16(nn.Module):
    """Fuse the stride-8/16/32 maps into one stride-16 map.

    1x1 laterals to ``out_channels``; the stride-8 map is average-pooled by 2, the stride-32
    map bilinearly upsampled by 2; sum; 3x3 conv + BN + ReLU.
    in: list of 4 maps (strides 4, 8, 16, 32) -> (N, out_channels, H/16, W/16)
    """

    stride = 16

    def __init__(self, *, in_channels: list[int], out_channels: int):
        super().__init__()
        self.lat8 = nn.Conv2d(in_channels[1], out_channels, 1)
        self.lat16 = nn.Conv2d(in_channels[2], out_channels, 1)
        self.lat32 = nn.Conv2d(in_channels[3], out_channels, 1)
        self.out = conv_bn_relu(out_channels, out_channels, 3)
        self.out_channels = out_channels

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        _, c8, c16, c32 = feats
        x = self.lat16(c16)
        x = x + F.avg_pool2d(self.lat8(c8), 2)
        x = x + F.interpolate(self.lat32(c32), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(x)


def load_torchvision_resnet(backbone: ResNet, source: str | Path) -> list[str]:
    """Load ImageNet weights into ``backbone`` (torchvision parameter names).

    ``source``: a ``.pth`` state dict saved by torchvision (e.g. ``resnet50-0676ba61.pth``),
    read with ``weights_only=True``; or a torchvision model name (``"resnet18"``, ``"resnet50"``)
    which imports torchvision lazily and downloads its default weights. The classifier
    (``fc.*``) is dropped. Returns the backbone keys that were not in the file (empty when the
    layouts match); raises ValueError naming the first key whose shape differs.
    """
    path = Path(source)
    if path.suffix in (".pth", ".pt") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"load_torchvision_resnet: no weight file at {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        try:
            import torchvision
        except ImportError as exc:
            raise ImportError(
                f"load_torchvision_resnet({source!r}) needs torchvision (`pip install torchvision`), "
                "or pass the path of a downloaded torchvision .pth file instead"
            ) from exc
        state = torchvision.models.get_model(str(source), weights="DEFAULT").state_dict()
    if not isinstance(state, dict):
        raise ValueError(f"load_torchvision_resnet: {source} does not hold a state dict")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = backbone.state_dict()
    for k, v in state.items():
        if k not in own:
            raise ValueError(f"load_torchvision_resnet: {source} has key {k!r} that this ResNet lacks (different depth?)")
        if own[k].shape != v.shape:
            raise ValueError(
                f"load_torchvision_resnet: {source} key {k!r} has shape {tuple(v.shape)}, "
                f"backbone expects {tuple(own[k].shape)} (different width?)"
            )
    backbone.load_state_dict(state, strict=False)
    return [k for k in own if k not in state]
