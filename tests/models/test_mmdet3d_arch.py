"""kd3d's CenterPoint networks equal MMDetection3D's ``centerpoint_voxel01_second_secfpn_nus`` and
``centerpoint_pillar02_second_secfpn_nus`` (issue 13 item 1).

The expected state dicts (key, shape, in mmdet3d's order) are written here by hand from
mmdet3d's configs and module sources (SparseEncoder basicblock, SparseBasicBlock, SECOND,
SECONDFPN with use_conv_for_no_stride, CenterHead/SeparateHead, PillarFeatureNet/PFNLayer), not
from kd3d's code. ``to_mmdet3d`` is the one-to-one key map the converter relies on. The residual
block and the pillar decoration are checked on hand-derived values."""
import math
import re

import numpy as np
import pytest
import torch

from kd3d.engine.config import load_config
from kd3d.models.backbones.sparse_resnet import SparseBasicBlock
from kd3d.models.lidar.pillar_net import DecoratedPillarFeatureNet
from kd3d.models.lidar.presets import MMDET3D_PILLAR, MMDET3D_VOXEL, centerpoint_pillar, centerpoint_voxel
from kd3d.ops.spconv import sparse_tensor
from kd3d.structures.sample import Batch

TASK_CLASSES = (1, 2, 2, 1, 2, 2)  # car | truck, cv | bus, trailer | barrier | moto, bike | ped, cone


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------- mmdet3d state dicts, by hand
def _bn(prefix, c):
    return [(f"{prefix}.{k}", (c,)) for k in ("weight", "bias", "running_mean", "running_var")] + \
        [(f"{prefix}.num_batches_tracked", ())]


def _sparse_encoder(in_ch=5):
    """SparseEncoder(encoder_channels=((16,16,32),(32,32,64),(64,64,128),(128,128)), basicblock,
    output_channels=128); spconv 2.x weights (out, k, k, k, in)."""
    p = "pts_middle_encoder"
    out = [(f"{p}.conv_input.0.weight", (16, 3, 3, 3, in_ch))] + _bn(f"{p}.conv_input.1", 16)
    chans = ((16, 16, 32), (32, 32, 64), (64, 64, 128), (128, 128))
    cin = 16
    for i, stage in enumerate(chans):
        for j, c in enumerate(stage):
            q = f"{p}.encoder_layers.encoder_layer{i + 1}.{j}"
            if j == len(stage) - 1 and i != len(chans) - 1:  # strided SparseConv3d + BN1d + ReLU
                out += [(f"{q}.0.weight", (c, 3, 3, 3, cin))] + _bn(f"{q}.1", c)
            else:  # SparseBasicBlock(c, c)
                out += [(f"{q}.conv1.weight", (c, 3, 3, 3, c))] + _bn(f"{q}.bn1", c)
                out += [(f"{q}.conv2.weight", (c, 3, 3, 3, c))] + _bn(f"{q}.bn2", c)
            cin = c
    return out + [(f"{p}.conv_out.0.weight", (128, 3, 1, 1, 128))] + _bn(f"{p}.conv_out.1", 128)


def _second(in_ch, outs, nums):
    out, cin = [], in_ch
    for i, (c, n) in enumerate(zip(outs, nums)):
        for j in range(n + 1):  # conv, bn, relu triples
            out += [(f"pts_backbone.blocks.{i}.{3 * j}.weight", (c, cin if j == 0 else c, 3, 3))]
            out += _bn(f"pts_backbone.blocks.{i}.{3 * j + 1}", c)
        cin = c
    return out


def _fpn(ins, outs, ups):
    out = []
    for i, (ci, co, u) in enumerate(zip(ins, outs, ups)):
        if u > 1:  # ConvTranspose2d(ci, co, u, u): weight (in, out, k, k)
            shape = (ci, co, u, u)
        else:  # Conv2d (stride 1: use_conv_for_no_stride; stride 0.5: kernel 2): weight (out, in, k, k)
            k = round(1 / u)
            shape = (co, ci, k, k)
        out += [(f"pts_neck.deblocks.{i}.0.weight", shape)] + _bn(f"pts_neck.deblocks.{i}.1", co)
    return out


def _head(in_ch):
    p = "pts_bbox_head"
    out = [(f"{p}.shared_conv.conv.weight", (64, in_ch, 3, 3))] + _bn(f"{p}.shared_conv.bn", 64)
    for t, ncls in enumerate(TASK_CLASSES):
        for name, c in (("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2), ("heatmap", ncls)):
            q = f"{p}.task_heads.{t}.{name}"
            out += [(f"{q}.0.conv.weight", (64, 64, 3, 3))] + _bn(f"{q}.0.bn", 64)
            out += [(f"{q}.1.weight", (c, 64, 3, 3)), (f"{q}.1.bias", (c,))]
    return out


def mmdet3d_voxel01():
    return _sparse_encoder() + _second(256, (128, 256), (5, 5)) + _fpn((128, 256), (256, 256), (1, 2)) + _head(512)


def mmdet3d_pillar02():
    pfn = _bn("pts_voxel_encoder.pfn_layers.0.norm", 64) + [("pts_voxel_encoder.pfn_layers.0.linear.weight", (64, 11))]
    return (pfn + _second(64, (64, 128, 256), (3, 5, 5)) + _fpn((64, 128, 256), (128, 128, 128), (0.5, 1, 2))
            + _head(384))


# ----------------------------------------------------------------- kd3d -> mmdet3d key map
_HEAD_NAMES = {"heatmap": "heatmap", "offset": "reg", "z": "height", "dims": "dim", "rot": "rot", "vel": "vel"}


def to_mmdet3d(key: str) -> str:
    """kd3d LidarCenterPoint state-dict key -> mmdet3d CenterPoint key."""
    rules = [
        (r"^encoder\.sparse\.(.*)$", lambda m: f"pts_middle_encoder.{m[1]}"),
        (r"^encoder\.pfn\.(.*)$", lambda m: f"pts_voxel_encoder.{m[1]}"),
        (r"^backbone\.stages\.(\d+)\.(\d+)\.(\d)\.(.*)$",
         lambda m: f"pts_backbone.blocks.{m[1]}.{3 * int(m[2]) + int(m[3])}.{m[4]}"),
        (r"^neck\.blocks\.(.*)$", lambda m: f"pts_neck.deblocks.{m[1]}"),
        (r"^head\.shared\.0\.(.*)$", lambda m: f"pts_bbox_head.shared_conv.conv.{m[1]}"),
        (r"^head\.shared\.1\.(.*)$", lambda m: f"pts_bbox_head.shared_conv.bn.{m[1]}"),
        (r"^head\.task_heads\.(\d+)\.(\w+)\.0\.0\.(.*)$",
         lambda m: f"pts_bbox_head.task_heads.{m[1]}.{_HEAD_NAMES[m[2]]}.0.conv.{m[3]}"),
        (r"^head\.task_heads\.(\d+)\.(\w+)\.0\.1\.(.*)$",
         lambda m: f"pts_bbox_head.task_heads.{m[1]}.{_HEAD_NAMES[m[2]]}.0.bn.{m[3]}"),
        (r"^head\.task_heads\.(\d+)\.(\w+)\.1\.(.*)$",
         lambda m: f"pts_bbox_head.task_heads.{m[1]}.{_HEAD_NAMES[m[2]]}.1.{m[3]}"),
    ]
    for pattern, fn in rules:
        m = re.match(pattern, key)
        if m:
            return fn(m)
    raise KeyError(key)


def _compare(model, expected, transposed):
    """Same keys and shapes as ``expected`` (the keys in ``transposed`` hold the transposed
    ConvTranspose2d layout); encoder, backbone and neck keys in the same order."""
    ours = [(to_mmdet3d(k), tuple(v.shape)) for k, v in model.state_dict().items()]
    exp = dict(expected)
    assert len(ours) == len(expected) and {k for k, _ in ours} == set(exp)
    for k, shape in ours:
        want = exp[k]
        if k in transposed:
            want = (want[1], want[0]) + want[2:]
        assert shape == want, (k, shape, want)
    body = [k for k, _ in ours if not k.startswith("pts_bbox_head")]
    assert body == [k for k, _ in expected if not k.startswith("pts_bbox_head")]


def _num_params(entries):
    return sum(math.prod(s) for k, s in entries if not re.search(r"running_|num_batches", k))


def test_voxel01_state_dict_equals_mmdet3d():
    model = centerpoint_voxel(**MMDET3D_VOXEL)
    expected = mmdet3d_voxel01()
    # the stride-1 neck layer: mmdet3d Conv2d(128, 256, 1) (256, 128, 1, 1); kd3d ConvTranspose2d (128, 256, 1, 1)
    _compare(model, expected, transposed={"pts_neck.deblocks.0.0.weight"})
    n = sum(p.numel() for p in model.parameters())
    assert n == _num_params(expected)
    # the layer tables summed by hand (weights + BN scale/shift per layer)
    sparse = 5 * 16 * 27 + 32 + 2 * (2 * (16 * 16 * 27 + 32)) + 16 * 32 * 27 + 64 \
        + 2 * (2 * (32 * 32 * 27 + 64)) + 32 * 64 * 27 + 128 + 2 * (2 * (64 * 64 * 27 + 128)) + 64 * 128 * 27 + 256 \
        + 2 * (2 * (128 * 128 * 27 + 256)) + 128 * 128 * 3 + 256
    assert sum(p.numel() for p in model.encoder.parameters()) == sparse
    second = 256 * 128 * 9 + 256 + 5 * (128 * 128 * 9 + 256) + 128 * 256 * 9 + 512 + 5 * (256 * 256 * 9 + 512)
    assert sum(p.numel() for p in model.backbone.parameters()) == second
    fpn = 128 * 256 + 512 + 256 * 256 * 4 + 512
    assert sum(p.numel() for p in model.neck.parameters()) == fpn
    head = 512 * 64 * 9 + 128 + sum(6 * (64 * 64 * 9 + 128) + (2 + 1 + 3 + 2 + 2 + k) * (64 * 9 + 1)
                                    for k in TASK_CLASSES)
    assert n == sparse + second + fpn + head
    enc = model.encoder.sparse
    assert enc.spatial_shape == (41, 1024, 1024) and enc.voxel_shape == (5, 128, 128)
    assert model.encoder.bev_channels == 256 and model.head.grid.shape == (128, 128)
    bns = [m for name, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
           and not name.startswith("head.")]
    assert bns and all(m.eps == 1e-3 and m.momentum == 0.01 for m in bns)
    assert not model.head.attributes


def test_pillar02_state_dict_equals_mmdet3d():
    model = centerpoint_pillar(**MMDET3D_PILLAR)
    expected = mmdet3d_pillar02()
    # stride 1: mmdet3d Conv2d(128, 128, 1), kd3d ConvTranspose2d(128, 128, 1): same shape, transposed meaning
    _compare(model, expected, transposed={"pts_neck.deblocks.1.0.weight"})
    assert sum(p.numel() for p in model.parameters()) == _num_params(expected)
    assert model.encoder.bev_grid.shape == (512, 512) and model.head.grid.shape == (128, 128)
    assert model.encoder.pfn.pfn_layers[0].linear.in_features == 11


def test_plain_encoder_is_mmdet3d_conv_module():
    """kd3d's default encoder = SparseEncoder(block_type='conv_module', encoder_channels=((16,),
    (32,) * 3, (64,) * 3, (128,) * 3), encoder_paddings=((1,), (1, 1, 1), (1, 1, 1), ((0, 1, 1), 1, 1)),
    output_channels=128) on the voxel grid itself (40 in z -> 128 BEV channels): same shapes in order."""
    model = centerpoint_voxel(scale="nuscenes")
    want = [(16, 3, 3, 3, 5)] + [(16,)] * 4 + [()]
    cin = 16
    for c in (16, 32, 32, 32, 64, 64, 64, 128, 128, 128):
        want += [(c, 3, 3, 3, cin)] + [(c,)] * 4 + [()]
        cin = c
    want += [(128, 3, 1, 1, 128)] + [(128,)] * 4 + [()]
    assert [tuple(v.shape) for v in model.encoder.sparse.state_dict().values()] == want
    assert model.encoder.sparse.spatial_shape == (40, 1024, 1024) and model.encoder.bev_channels == 128
    # mmdet3d's own conv_module models use Z + 1 too: 41 -> 21 -> 11 -> 5 -> 2 z layers, 256 channels
    padded = centerpoint_voxel(scale="nuscenes", z_pad=1, width=0.25)
    assert padded.encoder.sparse.spatial_shape == (41, 1024, 1024) and padded.encoder.bev_channels == 32 * 2


def test_configs_build_the_presets():
    for name, kwargs in (("nuscenes/centerpoint_voxel01_mmdet3d", MMDET3D_VOXEL),
                         ("nuscenes/centerpoint_pillar02_mmdet3d", MMDET3D_PILLAR)):
        cfg = load_config(name)
        assert {k: cfg.model.kwargs[k] for k in kwargs} == kwargs and cfg.model.kwargs["width"] == 1.0


def _batch(points):
    n = len(points)
    return Batch(points=[torch.tensor(p, dtype=torch.float32) for p in points], points_label=[None] * n,
                 gt_boxes=[torch.zeros(0, 9)] * n, gt_labels=[torch.zeros(0, dtype=torch.int64)] * n,
                 gt_attrs=[torch.zeros(0, dtype=torch.int64)] * n)


def test_voxel_forward_at_nuscenes_scale_reduced_width():
    torch.manual_seed(0)
    model = centerpoint_voxel(**{**MMDET3D_VOXEL, "width": 0.25}).eval()
    rng = np.random.default_rng(0)
    pts = [np.column_stack([rng.uniform(-8, 8, (n, 2)), rng.uniform(-4.9, 2.9, n), rng.uniform(0, 1, (n, 2))])
           for n in (400, 300)]
    pts[0][0, 2] = 2.95  # the top voxel layer (z index 39) exists; layer 40 only pads
    with torch.no_grad():
        out = model(_batch(pts))
    f = out.feats
    assert f["bev"].shape == (2, 64, 128, 128)  # 32 channels x 2 z layers at width 0.25
    assert f["voxel"].spatial_shape == [5, 128, 128] and f["voxel"].features.shape[1] == 32
    assert f["heatmap"].shape == (2, 10, 128, 128) and f["reg"].shape == (2, 60, 128, 128)
    assert torch.isfinite(f["heatmap"]).all()


def test_residual_encoder_runs_in_float32_under_autocast():
    """mmdet3d's SparseEncoder is wrapped in autocast(enabled=False): so is kd3d's residual one."""
    model = centerpoint_voxel(scale="synthetic", width=0.25, block_type="basicblock").eval()
    rng = np.random.default_rng(2)
    pts = [np.column_stack([rng.uniform(-8, 8, (200, 2)), rng.uniform(-4.9, 2.9, 200), rng.uniform(0, 1, (200, 2))])]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(_batch(pts))
    assert out.feats["voxel"].features.dtype == torch.float32 and out.feats["bev"].dtype == torch.float32
    assert out.feats["heatmap"].dtype == torch.bfloat16


def test_pillar_forward_at_nuscenes_scale_reduced_width():
    torch.manual_seed(0)
    model = centerpoint_pillar(**{**MMDET3D_PILLAR, "width": 0.25}).eval()
    rng = np.random.default_rng(1)
    pts = [np.column_stack([rng.uniform(-8, 8, (300, 2)), rng.uniform(-4.9, 2.9, 300), rng.uniform(0, 1, (300, 2))])]
    with torch.no_grad():
        out = model(_batch(pts))
    assert out.feats["bev"].shape == (1, 16, 512, 512)
    assert out.feats["bev_neck"].shape == (1, 96, 128, 128) and out.feats["heatmap"].shape == (1, 10, 128, 128)


def test_basic_block_adds_its_input():
    """One voxel, 2 channels, centre taps 2 * I, BN eval (mean 0, var 1, eps 1e-3): x = (1, -2)
    -> relu(2x / s) = (2/s, 0) -> conv2 (4/s, 0) -> BN (4/s^2, 0) -> + x (4/1.001 + 1, -2) -> relu."""
    block = SparseBasicBlock(2).eval()
    with torch.no_grad():
        for conv in (block.conv1, block.conv2):
            conv.weight.zero_()
            conv.weight[:, 1, 1, 1, :] = 2 * torch.eye(2)  # (out, kD, kH, kW, in), centre tap
    x = sparse_tensor(torch.tensor([[1.0, -2.0]]), torch.tensor([[0, 2, 2, 2]], dtype=torch.int32), (5, 5, 5), 1)
    with torch.no_grad():
        y = block(x).features
    assert torch.allclose(y, torch.tensor([[4 / 1.001 + 1, 0.0]]), atol=1e-6)


def test_pillar_decoration_and_padded_slots():
    """nuScenes pillar (0.2, 0.2, 8) over -51.2..51.2, z -5..3: the pillar (x 256, y 255) has
    centre (0.1, -0.1, -1.0). Two kept points of four slots."""
    net = DecoratedPillarFeatureNet(in_channels=5, out_channels=1, voxel_size=(0.2, 0.2, 8.0),
                                    point_range=(-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)).eval()
    vox = torch.zeros(1, 4, 5)
    vox[0, 0] = torch.tensor([0.15, -0.12, 0.5, 0.3, 0.0])
    vox[0, 1] = torch.tensor([0.05, -0.18, -2.5, 0.7, 0.05])
    coords = torch.tensor([[0, 0, 255, 256]], dtype=torch.int32)
    num = torch.tensor([2])
    d = net.decorate(vox, num, coords)
    mean = torch.tensor([0.1, -0.15, -1.0])
    centre = torch.tensor([0.1, -0.1, -1.0])
    for s in range(2):
        want = torch.cat([vox[0, s], vox[0, s, :3] - mean, vox[0, s, :3] - centre])
        assert torch.allclose(d[0, s], want, atol=1e-5)  # float32 centres near 51 m
    assert d.shape == (1, 4, 11) and (d[0, 2:] == 0).all()
    assert abs(d[0, 0, 10].item() - 1.5) < 1e-5  # z offset to the pillar centre: 0.5 - (-1.0)
    # padded slots take part in the max: real points map below zero, relu(BN(0)) = 1 / sqrt(1.001) wins
    layer = net.pfn_layers[0]
    with torch.no_grad():
        layer.linear.weight.zero_()
        layer.linear.weight[0, 3] = -10.0  # -10 * intensity
        layer.norm.running_mean.fill_(-1.0)
    out = net(vox, num, coords)
    assert torch.allclose(out, torch.tensor([[1 / math.sqrt(1.001)]]), atol=1e-6)
    # a full pillar (no padded slot) gives relu((-10 * i + 1) / s) = 0 for these intensities
    vox_full = vox.clone()
    vox_full[0, 2:] = vox[0, :2]
    assert net(vox_full, torch.tensor([4]), coords).item() == 0.0
