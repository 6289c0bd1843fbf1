"""The HTML viewer, opened offline in a real headless Chromium: the screenshot shows the points
and boxes, toggles hide them, and the BEV view puts them where the LiDAR frame says."""
import re
import shutil
import subprocess

import numpy as np
import pytest

from kd3d.vis.colors import CLASS_COLORS
from kd3d.vis.html import render_html, scene_payload

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
W, H = 800, 600


def _screenshot(html_path, tmp_path, fragment=""):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); the viewer test needs a real browser")
    png = tmp_path / f"shot{abs(hash(fragment))}.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--screenshot={png}", f"--window-size={W},{H}",
           f"file://{html_path}{fragment}"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=90)
    from PIL import Image
    return np.asarray(Image.open(png).convert("RGB"))


def _mask(img, color, tol=30):
    return (np.abs(img.astype(int) - np.asarray(color, dtype=int)).max(-1) <= tol)


@pytest.fixture
def page(sample, preds, tmp_path):
    path = tmp_path / "sample.html"
    text = render_html(sample, preds, out=path, color_by="none", class_names=["car", "truck"])
    return path, text


def test_page_is_self_contained(page, sample):
    _, text = page
    assert not re.search(r"https?://|src=|<link", text)
    payload = scene_payload(sample, None, color_by="none")
    assert payload["n"] == len(sample.points) and len(payload["boxes"]) == 2


def test_viewer_shows_points_and_boxes(page, tmp_path):
    path, _ = page
    img = _screenshot(path, tmp_path)
    assert img.shape[:2] == (H, W)
    body = img[80:H - 30]  # below the control panel, above the info bar
    assert _mask(body, CLASS_COLORS[0]).sum() > 50   # the car (GT and prediction)
    assert _mask(body, CLASS_COLORS[1]).sum() > 30   # the false-positive truck
    assert _mask(body, CLASS_COLORS[5]).sum() > 30   # the pedestrian
    assert _mask(body, (200, 200, 200), tol=3).sum() > 500  # grey points of the ground
    # toggles from the URL fragment: boxes off, points stay
    off = _screenshot(path, tmp_path, "#gt=0&pred=0")[80:H - 30]
    assert _mask(off, CLASS_COLORS[0]).sum() == 0 and _mask(off, CLASS_COLORS[1]).sum() == 0
    assert _mask(off, (200, 200, 200), tol=3).sum() > 500
    # a score threshold above 0.3 hides only the truck
    thr = _screenshot(path, tmp_path, "#thr=0.5")[80:H - 30]
    assert _mask(thr, CLASS_COLORS[1]).sum() == 0 and _mask(thr, CLASS_COLORS[0]).sum() > 50


def test_viewer_bev_layout(page, tmp_path):
    path, _ = page
    img = _screenshot(path, tmp_path, "#view=bev&points=0").copy()
    img[:80] = 0
    img[H - 30:] = 0
    cy, cx = H / 2, W / 2

    def centroid(color):
        v, u = np.nonzero(_mask(img, color))
        assert len(u) > 10, color
        return u.mean(), v.mean()

    u, v = centroid(CLASS_COLORS[0])  # car at x = +10: above the centre
    assert v < cy - 40 and abs(u - cx) < 30
    u, v = centroid(CLASS_COLORS[1])  # truck at y = -12: right of the centre
    assert u > cx + 40 and abs(v - cy) < 30
    u, v = centroid(CLASS_COLORS[5])  # pedestrian at (-8, +6): below and left
    assert v > cy + 20 and u < cx - 15


def test_color_schemes(sample, tmp_path):
    from kd3d.vis.colors import LIDARSEG_COLORS

    path = tmp_path / "c.html"
    render_html(sample, None, out=path, color_by="height")
    payload = scene_payload(sample, None, color_by="height")
    assert list(payload["colors"])[:1] == ["height"] and {"intensity", "time", "label"} <= set(payload["colors"])
    import base64
    lab = np.frombuffer(base64.b64decode(payload["colors"]["label"]), np.uint8).reshape(-1, 3)
    assert (lab[:3000] == LIDARSEG_COLORS[11]).all() and (lab[sample.num_key_points:] == 128).all()
    # in the browser: the label scheme paints the ground in the driveable-surface colour
    img = _screenshot(path, tmp_path, "#color=label&gt=0&pred=0")[80:H - 30]
    assert _mask(img, LIDARSEG_COLORS[11], tol=3).sum() > 500
    img = _screenshot(path, tmp_path, "#gt=0&pred=0")[80:H - 30]
    assert _mask(img, LIDARSEG_COLORS[11], tol=3).sum() == 0


def test_bev_view_follows_ego_forward(sample, tmp_path):
    """With LiDAR x pointing right of the car (real nuScenes LIDAR_TOP: lidar2ego rotates by +90
    degrees), the BEV view still shows the ego's forward (LiDAR +y) up."""
    import dataclasses

    from kd3d.structures import Boxes3D
    from kd3d.structures.geometry import pose_matrix, rotation_z

    rot = np.eye(4)
    rot[:3, :3] = rotation_z(np.pi / 2)  # move the scene into a LiDAR frame with forward = +y
    pts = sample.points.copy()
    pts[:, :3] = pts[:, :3] @ rot[:3, :3].T
    s = dataclasses.replace(sample, points=pts, gt_boxes=Boxes3D(sample.gt_boxes.transform(rot).data),
                            lidar2ego=pose_matrix(rotation_z(-np.pi / 2), [0.0, 0.0, 1.8]))
    path = tmp_path / "ego.html"
    render_html(s, None, out=path, color_by="none")
    img = _screenshot(path, tmp_path, "#view=bev&points=0").copy()
    img[:80] = 0
    img[H - 30:] = 0
    v, u = np.nonzero(_mask(img, CLASS_COLORS[0]))
    assert len(u) > 10 and v.mean() < H / 2 - 40 and abs(u.mean() - W / 2) < 30  # the car ahead is up
