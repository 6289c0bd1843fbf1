"""KITTI evaluation on hand-built cases with known answers (official devkit rules)."""
import numpy as np
import pytest

from kd3d.eval.kitti import evaluate_kitti, load_labels


def obj(typ="Car", x=0.0, z=20.0, l=4.0, w=2.0, h=1.5, ry=0.0, y=1.6, bbox=(100, 100, 200, 160), trunc=0.0, occ=0,
        alpha=0.0, score=None):
    f = [typ, f"{trunc:.2f}", str(occ), f"{alpha:.6f}", *[f"{v:.2f}" for v in bbox],
         *[f"{v:.6f}" for v in (h, w, l, x, y, z, ry)]]
    if score is not None:
        f.append(f"{score:.6f}")
    return " ".join(f)


def write_case(tmp_path, frames_gt, frames_det):
    gt_dir, det_dir = tmp_path / "label", tmp_path / "result"
    gt_dir.mkdir(exist_ok=True)
    det_dir.mkdir(exist_ok=True)
    for i, (g, d) in enumerate(zip(frames_gt, frames_det)):
        (gt_dir / f"{i:06d}.txt").write_text("\n".join(g) + "\n")
        (det_dir / f"{i:06d}.txt").write_text("\n".join(d) + ("\n" if d else ""))
    return gt_dir, det_dir


def ev(tmp_path, gts, dets, **kw):
    g, d = write_case(tmp_path, gts, dets)
    return evaluate_kitti(g, d, progress=False, **kw).table


def test_identical_boxes_41_gt_give_100(tmp_path):
    gts = [[obj(x=3.0 * i - 60, ry=0.1 * i)] for i in range(41)]
    dets = [[obj(x=3.0 * i - 60, ry=0.1 * i, score=0.5 + 0.01 * i)] for i in range(41)]
    t = ev(tmp_path, gts, dets)["Car"]
    for m in ("bbox", "bev", "3d", "aos"):
        assert t[m]["R40"] == pytest.approx([100.0] * 3) and t[m]["R11"] == pytest.approx([100.0] * 3)


@pytest.mark.parametrize("n,r11,r40", [(1, 100 / 11, 0.0), (40, 1000 / 11, 97.5), (20, 500 / 11, 47.5)])
def test_fewer_than_41_gt(tmp_path, n, r11, r40):
    gts = [[obj(x=5.0 * i)] for i in range(n)]
    dets = [[obj(x=5.0 * i, score=0.9 - 0.01 * i)] for i in range(n)]
    t = ev(tmp_path, gts, dets)["Car"]
    assert t["3d"]["R11"][0] == pytest.approx(r11) and t["3d"]["R40"][0] == pytest.approx(r40)


def test_rotated_and_shifted_overlaps(tmp_path):
    # square 4x4 rotated 45 deg over itself: IoU = 2(sqrt2-1)*16 / (32 - that) = 0.7071 > 0.7
    g = [[obj(l=4, w=4)], [obj(l=4, w=2, x=10)], [obj(l=4, w=2, x=20)], [obj(l=4, w=2, x=30)]]
    d = [[obj(l=4, w=4, ry=np.pi / 4, score=0.9)],
         [obj(l=4, w=2, x=10.6, score=0.8)],         # IoU 3.4/4.6 = 0.739: TP
         [obj(l=4, w=2, x=20.8, score=0.7)],         # IoU 3.2/4.8 = 0.667: FP (BEV and 3D)
         [obj(l=4, w=2, x=30, y=2.1, score=0.6)]]    # same footprint, half height overlap: BEV TP, 3D FP
    table = ev(tmp_path, g * 11, d * 11)["Car"]
    # BEV: 3 of 4 GT found, precision 3/4 over recall up to 0.75 (thresholds: 33 TPs -> 33 of 41 samples)
    bev, d3 = table["bev"]["R40"][0], table["3d"]["R40"][0]
    assert bev > d3 > 0
    assert table["bbox"]["R40"][0] > bev  # 2D boxes identical: everything matches in the image


def test_dontcare_absorbs_false_positive(tmp_path):
    gts = [[obj(x=2.0 * i), "DontCare -1 -1 -10 300.00 100.00 400.00 200.00 -1 -1 -1 -1000 -1000 -1000 -10"]
           for i in range(41)]
    dets = [[obj(x=2.0 * i, score=0.5), obj(x=50, bbox=(310, 110, 390, 190), score=0.9)] for i in range(41)]
    with_dc = ev(tmp_path, gts, dets)["Car"]
    assert with_dc["bbox"]["R40"][0] == pytest.approx(100.0)
    # BEV/3D: a DontCare has no 3D extent, so the far detection stays a false positive
    assert with_dc["bev"]["R40"][0] == pytest.approx(50.0)
    no_dc = ev(tmp_path / "x" if (tmp_path / "x").mkdir() is None else None,
               [[g[0]] for g in gts], dets)["Car"]
    assert no_dc["bbox"]["R40"][0] == pytest.approx(50.0)


def test_neighbour_class_is_ignored_not_false(tmp_path):
    base_g = [[obj(x=2.0 * i)] for i in range(41)]
    base_d = [[obj(x=2.0 * i, score=0.5)] for i in range(41)]
    van_g = [g + [obj("Van", x=40.0, z=30)] for g in base_g]
    truck_g = [g + [obj("Truck", x=40.0, z=30)] for g in base_g]
    dets = [d + [obj(x=40.0, z=30, score=0.9)] for d in base_d]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert ev(tmp_path / "a", van_g, dets)["Car"]["3d"]["R40"][0] == pytest.approx(100.0)
    assert ev(tmp_path / "b", truck_g, dets)["Car"]["3d"]["R40"][0] == pytest.approx(50.0)


def test_height_exactly_at_limit_is_ignored(tmp_path):
    # 2D height exactly 40 px: ignored for easy (height <= 40), valid for moderate (> 25)
    gts = [[obj(x=2.0 * i, bbox=(100, 100, 200, 140))] for i in range(41)]
    dets = [[obj(x=2.0 * i, bbox=(100, 100, 200, 140), score=0.5)] for i in range(41)]
    t = ev(tmp_path, gts, dets)["Car"]
    assert np.isnan(t["3d"]["R40"][0])
    assert t["3d"]["R40"][1] == pytest.approx(100.0) and t["3d"]["R40"][2] == pytest.approx(100.0)


def test_aos_half_for_perpendicular_alpha(tmp_path):
    gts = [[obj("Pedestrian", x=2.0 * i, l=0.8, w=0.6, alpha=0.3)] for i in range(41)]
    dets = [[obj("Pedestrian", x=2.0 * i, l=0.8, w=0.6, alpha=0.3 + np.pi / 2, score=0.5)] for i in range(41)]
    t = ev(tmp_path, gts, dets)["Pedestrian"]
    assert t["bbox"]["R40"][0] == pytest.approx(100.0) and t["aos"]["R40"][0] == pytest.approx(50.0)


def test_errors_name_the_file(tmp_path):
    g, d = write_case(tmp_path, [[obj()]], [[obj(score=0.5)]])
    (d / "000000.txt").write_text("Car 0 0 0 1 2 3\n")
    with pytest.raises(ValueError, match=r"000000\.txt:1: expected 16 fields .*got 7"):
        evaluate_kitti(g, d, progress=False)
    (d / "000000.txt").unlink()
    with pytest.raises(FileNotFoundError, match="result file not found"):
        evaluate_kitti(g, d, progress=False)
    lab = load_labels(g, ["000000"], is_result=False)
    assert lab.type.tolist() == ["car"] and lab.dims.tolist() == [[1.5, 2.0, 4.0]]


def test_camera_frame_overlaps_exact(tmp_path):
    from kd3d.eval.kitti import _overlaps

    g, d = write_case(tmp_path, [[obj(l=4, w=4, ry=0.3), obj(l=4, w=2, y=1.6)]],
                      [[obj(l=4, w=4, ry=0.3 + np.pi / 4, score=1), obj(l=4, w=2, y=2.1, score=1)]])
    gt = load_labels(g, ["000000"], is_result=False)
    det = load_labels(d, ["000000"], is_result=True)
    ov = _overlaps(det, np.array([0, 1]), gt, np.array([0, 1]), own=False)
    inter = 2 * (np.sqrt(2) - 1) * 16
    assert ov["bev"][0] == pytest.approx(inter / (32 - inter), abs=1e-12)
    assert ov["3d"][0] == pytest.approx(inter / (32 - inter), abs=1e-12)
    assert ov["bev"][1] == pytest.approx(1.0, abs=1e-12)  # identical footprints give exactly 1
    assert ov["3d"][1] == pytest.approx(1.0 / 2.0, abs=1e-12)  # y ranges [0.1, 1.6] vs [0.6, 2.1]
    assert ov["bbox"][1] == 1.0


@pytest.mark.parametrize("y2,easy", [(140.0, float("nan")), (140.01, 100.0)])
def test_40px_gt_is_ignored_at_easy(tmp_path, y2, easy):
    """The devkit ignores a GT box of height <= 40 px at easy (no valid GT: NaN), keeps it at moderate."""
    gts = [[obj(x=3.0 * i - 60, bbox=(100, 100, 200, y2))] for i in range(41)]
    dets = [[obj(x=3.0 * i - 60, bbox=(100, 100, 200, y2), score=0.5 + 0.01 * i)] for i in range(41)]
    r40 = ev(tmp_path, gts, dets)["Car"]["3d"]["R40"]
    np.testing.assert_allclose(r40, [easy, 100.0, 100.0])


def test_result_line_errors_name_file_and_line(tmp_path):
    g, d = write_case(tmp_path, [[obj()]], [[obj(score=0.5), obj(score=0.4)]])
    (d / "000000.txt").write_text(obj(score=0.5) + "\n" + obj(score=0.4) + " 7\n")
    with pytest.raises(ValueError, match=r"result/000000\.txt:2: expected 16 fields .*got 17"):
        evaluate_kitti(g, d, progress=False)
    (d / "000000.txt").write_text(obj(score=0.5).replace("1.500000", "1.5m") + "\n")
    with pytest.raises(ValueError, match=r"result/000000\.txt:1: field 9 \(h\) is not a number: '1\.5m'"):
        evaluate_kitti(g, d, progress=False)


def test_no_import_cycle_between_kitti_modules():
    import ast
    import inspect

    import kd3d.eval.kitti as kitti

    tree = ast.parse(inspect.getsource(kitti))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "kd3d.eval.kitti_io" not in names and not any("kitti_io" in n for n in names)
