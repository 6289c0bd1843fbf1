"""open3d export: files read back with open3d hold the same points, colours and box edges."""
import numpy as np
import pytest

o3d = pytest.importorskip("open3d", reason="open3d is not installed (pip install 'kd3d[vis]')")

from kd3d.vis.colors import CLASS_COLORS, point_colors  # noqa: E402
from kd3d.vis.o3d import LINESET_EDGES, display_available, export_scene, show_scene  # noqa: E402


@pytest.mark.parametrize("suffix", [".ply", ".pcd"])
def test_export_roundtrip(sample, preds, tmp_path, suffix):
    files = export_scene(sample, tmp_path / f"scene{suffix}", preds, color_by="intensity")
    pc = o3d.io.read_point_cloud(files["points"])
    np.testing.assert_allclose(np.asarray(pc.points), sample.points[:, :3], atol=1e-5)
    got = np.round(np.asarray(pc.colors) * 255).astype(np.uint8)
    np.testing.assert_array_equal(got, point_colors(sample.points, "intensity"))

    gt = o3d.io.read_line_set(files["gt_boxes"])
    verts, lines = np.asarray(gt.points), np.asarray(gt.lines)
    assert lines.shape == (2 * len(LINESET_EDGES), 2)
    np.testing.assert_allclose(verts.reshape(2, 10, 3)[:, :8], sample.gt_boxes.corners(), atol=1e-6)
    cols = np.round(np.asarray(gt.colors) * 255).astype(np.uint8)
    assert (cols[: len(LINESET_EDGES)] == CLASS_COLORS[0]).all() and (cols[len(LINESET_EDGES):] == CLASS_COLORS[5]).all()
    # heading segment: from the bottom centre to the front (+x for the car, yaw 0)
    a, b = verts[lines[len(LINESET_EDGES) - 1]]
    np.testing.assert_allclose(b - a, [2.0, 0.0, 0.0], atol=1e-9)
    pred = o3d.io.read_line_set(files["pred_boxes"])
    assert np.asarray(pred.lines).shape == (2 * len(LINESET_EDGES), 2)


def test_export_bad_suffix(sample, tmp_path):
    with pytest.raises(ValueError, match="extension"):
        export_scene(sample, tmp_path / "scene.obj")


def test_show_without_display(sample, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not display_available():
        with pytest.raises(RuntimeError, match="no display"):
            show_scene(sample)
