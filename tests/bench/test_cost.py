"""bench/cost.py: the MAC counter against hand counts (dense convs, a transposed conv, a linear
layer, batch norm, sparse convs on a known active set: from spconv's indice pairs and from the
coordinates), and the side-by-side latency."""
import importlib
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
cost = importlib.import_module("cost")


def test_dense_layers_hand_counts():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4),
                        nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2),
                        nn.ConvTranspose2d(4, 2, 2, stride=2), nn.Flatten(), nn.Linear(2 * 6 * 6, 5))
    x = torch.randn(2, 3, 5, 5)  # two frames
    with cost.MacCounter(net, norm=True) as mc, torch.no_grad():
        net.eval()(x)
    # conv1: 2*4*5*5 outputs x 3 x 9 = 5400; conv2 (groups 2): 2*4*3*3 outputs x 2 x 9 = 1296
    assert mc.macs["conv"] == 5400 + 1296
    assert mc.macs["norm"] == 2 * 4 * 5 * 5
    assert mc.macs["deconv"] == 2 * 4 * 3 * 3 * 2 * 4  # inputs x Cout x 2x2 taps (6x6 output)
    assert mc.macs["linear"] == 2 * 5 * 72
    assert mc.total == 5400 + 1296 + 200 + 576 + 720
    assert "norm" not in cost.count_macs(net, [x])  # norm only on request
    assert cost.count_macs(net, [x])["total"] == (5400 + 1296 + 576 + 720) / 2  # per frame


@pytest.mark.parametrize("key", [None, "k"])
def test_sparse_convs_count_active_pairs(key):
    pytest.importorskip("spconv")
    from kd3d.ops.spconv import sparse_conv3d, sparse_tensor, subm_conv3d

    # active sites (z, y, x) in a 4^3 grid: (0,0,0), (0,0,1), (0,1,1), (2,2,2)
    idx = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1], [0, 2, 2, 2]], dtype=torch.int32)
    x = sparse_tensor(torch.randn(4, 2), idx, (4, 4, 4), 1)
    subm = subm_conv3d(2, 3, 3, indice_key=key and key + "1")
    down = sparse_conv3d(2, 5, 3, stride=2, padding=1, indice_key=key and key + "2")
    with cost.MacCounter(nn.ModuleList([subm, down])) as mc, torch.no_grad():
        subm(x)
        y = down(x)
    # submanifold 3x3x3: 4 centre taps + both directions of the three neighbouring pairs
    # (0,0,0)-(0,0,1), (0,0,0)-(0,1,1), (0,0,1)-(0,1,1) = 10 pairs x 2 x 3
    # stride 2, pad 1: input coordinate p feeds outputs o with 2o - 1 <= p <= 2o + 1 (o in 0..1):
    # per axis 0 -> {0}, 1 -> {0, 1}, 2 -> {1}: 1 + 2 + 4 + 1 = 8 pairs x 2 x 5
    assert mc.macs["sparse_conv"] == 10 * 2 * 3 + 8 * 2 * 5
    assert y.indices.shape[0] == 5  # output sites (0,0,0), (0,0,1), (0,1,0), (0,1,1), (1,1,1)
    if key is not None:  # spconv's own indice pairs agree with the coordinate count
        assert int(y.indice_dict["k2"].indice_pair_num.sum()) == 8
        half = int(subm(x).indice_dict["k1"].indice_pair_num.sum())  # one direction per symmetric offset pair
        assert 2 * half + 4 == 10


def test_interleaved_latency_reports_every_model():
    a, b = nn.Linear(8, 8), nn.Sequential(nn.Linear(8, 64), nn.Linear(64, 8))
    lat = cost.interleaved_latency({"a": a, "b": b}, {"a": [torch.randn(1, 8)] * 2, "b": [torch.randn(1, 8)] * 2},
                                   repeats=2)
    assert set(lat) == {"a", "b"} and all(v > 0 for v in lat.values())
    assert torch.get_num_threads() >= 1
