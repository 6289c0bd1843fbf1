"""CenterHead convs per branch through the camera presets (issue 12: the calibrated camera student
uses one 3x3 conv per branch)."""
import pytest
import torch
from torch import nn

from kd3d.engine.config import load_base
from kd3d.models.build import ModelConfig, build_model
from kd3d.models.camera.presets import camera_bev_synthetic
from kd3d.models.lidar.presets import NUSC_NMS_RADIUS, NUSC_TASKS
from kd3d.structures.classes import NUSC_ATTRIBUTES


def _branch_convs(head):
    return [[m for m in br.modules() if isinstance(m, nn.Conv2d)] for th in head.task_heads for br in th.values()]


def test_one_conv_per_branch_keeps_the_preset_head_layout():
    one, two = camera_bev_synthetic(num_head_convs=1).head, camera_bev_synthetic().head
    # 6 tasks x (heatmap + 5 regression groups + attribute) branches
    assert len(_branch_convs(one)) == len(_branch_convs(two)) == 6 * 7
    assert all(len(c) == 1 for c in _branch_convs(one)) and all(len(c) == 2 for c in _branch_convs(two))
    # the single conv reads the shared 32-channel map directly; the heatmap bias prior is kept
    hm = one.task_heads[0]["heatmap"][0]
    assert isinstance(hm, nn.Conv2d) and hm.in_channels == 32 and hm.kernel_size == (3, 3)
    assert torch.allclose(hm.bias, torch.full_like(hm.bias, -2.19))
    assert one.attributes == tuple(NUSC_ATTRIBUTES) and one.nms_radius == [float(r) for r in NUSC_NMS_RADIUS]
    # parameters removed: per branch the 3x3 32->32 conv (no bias) and its BN (2 x 32)
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(two) - n(one) == 6 * 7 * (9 * 32 * 32 + 2 * 32)
    x = torch.randn(1, 64, 64, 64)
    po, pt = one(x), two(x)
    assert [h.shape for h in po["heatmaps"]] == [h.shape for h in pt["heatmaps"]] == \
        [(1, len(t), 64, 64) for t in NUSC_TASKS]
    assert [r.shape for r in po["regs"]] == [(1, 10, 64, 64)] * 6


def test_num_head_convs_from_a_config_and_rejects_zero():
    model = build_model(load_base("bench/camera_student").model)
    assert all(len(c) == 1 for c in _branch_convs(model.head))
    with pytest.raises(Exception, match="num_head_convs must be >= 1"):
        build_model(ModelConfig(name="camera_bev_synthetic", kwargs={"num_head_convs": 0}))
