import math

import numpy as np
import pytest
import torch

from kd3d.models.heads import CenterHead
from kd3d.models.heads.losses import gaussian_focal_loss
from kd3d.models.heads.targets import (
    build_task_targets, decode_boxes, draw_gaussian, encode_boxes, gaussian_radius,
)
from kd3d.structures import BEVGrid

GRID = BEVGrid(-8.0, -8.0, 8.0, 8.0, 0.5, 0.5)  # 32 x 32
CLASSES = ("car", "pedestrian", "barrier")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # intra-op threads thrash on a shared 2-core machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _boxes():
    # x y z l w h yaw vx vy
    return torch.tensor([
        [1.3, -2.1, -0.5, 4.2, 1.8, 1.6, 0.3, 1.0, -0.5],
        [-5.6, 4.4, -0.9, 0.7, 0.6, 1.8, -2.8, float("nan"), float("nan")],
        [6.2, 6.9, -1.0, 2.0, 0.4, 1.0, 1.2, 0.0, 0.0],
    ], dtype=torch.float64)


def test_gaussian_radius_golden():
    # square 10 x 10 cells, min overlap 0.1: min of the three CenterNet cases is case 3
    # a3 = 4 * 0.1, b3 = -2 * 0.1 * 20 = -4, c3 = -0.9 * 100
    r3 = (-4.0 + math.sqrt(16.0 + 4 * 0.4 * 90.0)) / 2
    assert gaussian_radius(np.array([10.0]), np.array([10.0]), 0.1)[0] == pytest.approx(r3)
    assert gaussian_radius(torch.tensor([10.0]), torch.tensor([10.0]), 0.1)[0].item() == pytest.approx(r3, rel=1e-6)
    # bigger boxes -> bigger radius; larger overlap -> smaller radius
    assert gaussian_radius(np.array(20.0), np.array(20.0), 0.1) > gaussian_radius(np.array(10.0), np.array(10.0), 0.1)
    assert gaussian_radius(np.array(10.0), np.array(10.0), 0.7) < gaussian_radius(np.array(10.0), np.array(10.0), 0.1)


def test_draw_gaussian_hand_checked():
    hm = torch.zeros(11, 13)
    draw_gaussian(hm, col=6, row=5, radius=2)
    assert hm[5, 6] == 1.0 and hm.max() == 1.0
    sigma = 5 / 6
    assert hm[5, 8].item() == pytest.approx(math.exp(-4 / (2 * sigma ** 2)), rel=1e-6)
    assert hm[7, 8].item() == pytest.approx(math.exp(-8 / (2 * sigma ** 2)), rel=1e-6)
    nz = hm.nonzero()
    assert nz[:, 0].min() == 3 and nz[:, 0].max() == 7 and nz[:, 1].min() == 4 and nz[:, 1].max() == 8
    # clipped at the border, element-wise max with an existing peak
    draw_gaussian(hm, col=0, row=0, radius=3)
    assert hm[0, 0] == 1.0 and hm[5, 6] == 1.0


def test_targets_peak_at_centre_cell_and_radius():
    boxes = _boxes()
    labels = torch.tensor([0, 1, 2])
    tg = build_task_targets([boxes], [labels], [0, 2], GRID, min_overlap=0.1, min_radius=2)
    assert tg["heatmap"].shape == (1, 2, 32, 32)
    # car centre (1.3, -2.1) -> col floor(9.3/0.5)=18, row floor(5.9/0.5)=11
    assert tg["heatmap"][0, 0, 11, 18] == 1.0
    assert (tg["heatmap"][0, 0] == 1).sum() == 1
    r = max(2, int(gaussian_radius(np.array(4.2 / 0.5), np.array(1.8 / 0.5), 0.1)))
    nz = tg["heatmap"][0, 0].nonzero()
    assert nz[:, 1].min() == 18 - r and nz[:, 1].max() == 18 + r
    # barrier in channel 1, pedestrian (not in this task) absent
    assert tg["heatmap"][0, 1].max() == 1.0 and tg["mask"].sum() == 2
    assert tg["ind"][0, 0] == 11 * 32 + 18
    # unknown velocity is masked, known is not
    assert tg["code_mask"][0, 0].all()


def test_encode_decode_roundtrip_and_outside():
    boxes = _boxes()
    cells, codes, inside = encode_boxes(boxes, GRID)
    assert inside.all()
    dec = decode_boxes(cells, codes, GRID).double()
    np.testing.assert_allclose(dec[:, :7].numpy(), boxes[:, :7].numpy(), atol=1e-5)
    far = torch.tensor([[9.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]])
    assert not encode_boxes(far, GRID)[2].any()


def _perfect_preds(head, boxes, labels):
    B = 1
    heat, regs = [], []
    for ids in head.task_class_ids:
        tg = build_task_targets([boxes], [labels], ids, GRID)
        hm = torch.full((B, len(ids), 32, 32), -20.0)
        hm[tg["heatmap"] == 1] = 20.0
        reg = torch.zeros(B, 10, 32 * 32)
        for m in range(tg["mask"].shape[1]):
            if tg["mask"][0, m]:
                reg[0, :, tg["ind"][0, m]] = tg["codes"][0, m]
        heat.append(hm)
        regs.append(reg.view(B, 10, 32, 32))
    return {"heatmaps": heat, "regs": regs}


@pytest.mark.parametrize("nms", ["circle", "rotated", "none"])
def test_decode_inverts_targets(nms):
    head = CenterHead(in_channels=8, tasks=[["car"], ["pedestrian", "barrier"]], grid=GRID, class_names=CLASSES,
                      nms=nms, nms_radius=[2.0, 0.5])
    boxes, labels = _boxes(), torch.tensor([0, 1, 2])
    dets = head.decode(_perfect_preds(head, boxes, labels))[0]
    assert len(dets["boxes"]) == 3
    order = np.argsort(dets["labels"])
    assert dets["labels"][order].tolist() == [0, 1, 2]
    np.testing.assert_allclose(dets["boxes"].data[order, :7], boxes[:, :7].numpy(), atol=1e-4)
    np.testing.assert_allclose(dets["boxes"].data[order[0], 7:9], [1.0, -0.5], atol=1e-5)
    assert (dets["attrs"] == -1).all() and dets["scores"].min() > 0.99


def test_focal_loss_golden_and_perfect():
    t = torch.zeros(1, 1, 2, 2)
    t[0, 0, 0, 0] = 1.0
    t[0, 0, 0, 1] = 0.5
    logits = torch.zeros(1, 1, 2, 2)
    # p = 0.5 everywhere: pos: -log(.5)*.25; negs: -log(.5)*.25*(1-t)^4
    expected = math.log(2) * 0.25 * (1 + 0.5 ** 4 + 1 + 1)
    assert gaussian_focal_loss(logits, t).item() == pytest.approx(expected, rel=1e-5)
    good = torch.where(t == 1, torch.tensor(20.0), torch.tensor(-20.0))
    assert gaussian_focal_loss(good, t).item() < 1e-3


def test_head_forward_loss_backward_and_fit():
    torch.manual_seed(0)
    head = CenterHead(in_channels=8, tasks=[["car"], ["pedestrian", "barrier"]], grid=GRID, class_names=CLASSES,
                      share_channels=16, head_channels=16)
    x = torch.randn(2, 8, 32, 32)
    boxes = [_boxes().float(), _boxes()[:1].float()]
    labels = [torch.tensor([0, 1, 2]), torch.tensor([0])]
    preds = head(x)
    assert [h.shape[1] for h in preds["heatmaps"]] == [1, 2]
    feats = head.named_feats(preds)
    assert feats["heatmap"].shape == (2, 3, 32, 32) and feats["reg"].shape == (2, 20, 32, 32)
    # named heatmap channels follow class_names: pedestrian is task 1 channel 0
    assert torch.equal(feats["heatmap"][:, 1], preds["heatmaps"][1][:, 0])
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        losses = head.loss(head(x), boxes, labels)
        total = sum(losses.values())
        assert torch.isfinite(total)
        if first is None:
            first = total.item()
        opt.zero_grad()
        total.backward()
        opt.step()
    assert total.item() < 0.5 * first


def test_head_bad_inputs():
    with pytest.raises(ValueError, match="class_names"):
        CenterHead(in_channels=8, tasks=[["car", "tram"]], grid=GRID, class_names=CLASSES)
    head = CenterHead(in_channels=8, tasks=[["car"]], grid=GRID)
    with pytest.raises(ValueError, match="grid shape"):
        head(torch.zeros(1, 8, 16, 16))


def test_attribute_branch_loss_and_decode():
    from kd3d.structures.classes import NUSC_ATTRIBUTES

    head = CenterHead(in_channels=8, tasks=[["car"], ["pedestrian", "barrier"]], grid=GRID, class_names=CLASSES,
                      attributes=NUSC_ATTRIBUTES, nms="none")
    boxes, labels = _boxes(), torch.tensor([0, 1, 2])
    attrs = torch.tensor([1, 7, -1])  # car stopped, pedestrian moving, barrier none
    preds = _perfect_preds(head, boxes, labels)
    # attribute logits favouring a wrong, disallowed attribute everywhere except the right one
    preds["attrs"] = []
    for ids in head.task_class_ids:
        a = torch.zeros(1, 8, 32, 32)
        a[:, 3] = 5.0  # cycle.with_rider: not allowed for car / pedestrian
        tg = build_task_targets([boxes], [labels], ids, GRID, gt_attrs=[attrs])
        for m in range(tg["mask"].shape[1]):
            if tg["mask"][0, m] and tg["attr"][0, m] >= 0:
                a.view(1, 8, -1)[0, tg["attr"][0, m], tg["ind"][0, m]] = 3.0
        preds["attrs"].append(a)
    dets = head.decode(preds)[0]
    by_label = dict(zip(dets["labels"].tolist(), dets["attrs"].tolist()))
    assert by_label == {0: 1, 1: 7, 2: -1}
    x = torch.randn(1, 8, 32, 32)
    losses = head.loss(head(x), [boxes.float()], [labels], gt_attrs=[attrs])
    assert set(losses) == {"heatmap", "bbox", "attr"}
    # 8 attributes at init: CE near log(8), times the 0.2 weight, summed over the two tasks
    assert 0.1 < losses["attr"].item() < 2 * 0.2 * 2 * np.log(8)
    assert head.loss(head(x), [boxes.float()], [labels])["attr"].item() == 0.0


def test_bbox_loss_golden():
    head = CenterHead(in_channels=8, tasks=[["car"]], grid=GRID, class_names=CLASSES)
    box = torch.tensor([[1.3, -2.1, -0.5, 4.2, 1.8, 1.6, 0.3, 1.0, -0.5]])
    preds = {"heatmaps": [torch.zeros(1, 1, 32, 32)], "regs": [torch.zeros(1, 10, 32, 32)]}
    losses = head.loss(preds, [box], [torch.tensor([0])])
    # codes: offsets (0.6, 0.8), z -0.5, log dims, sin/cos yaw, velocity (weight 0.2)
    t = [0.6, 0.8, 0.5, math.log(4.2), math.log(1.8), math.log(1.6), math.sin(0.3), math.cos(0.3), 0.2 * 1.0, 0.2 * 0.5]
    assert losses["bbox"].item() == pytest.approx(0.25 * sum(abs(v) for v in t), rel=1e-5)
    # NaN velocity drops the velocity terms
    box[0, 7:9] = float("nan")
    losses = head.loss(preds, [box], [torch.tensor([0])])
    assert losses["bbox"].item() == pytest.approx(0.25 * sum(abs(v) for v in t[:8]), rel=1e-5)
