"""kd3d create-data / info: the JSON index, restricted pkl reading, GT databases, summaries."""
import json
import pickle
import shutil
from collections import OrderedDict

import numpy as np
import pytest

from kd3d.cli.create_data import create_kitti, create_nuscenes
from kd3d.cli.info import format_summary, summarize
from kd3d.cli.main import main
from kd3d.data import nuscenes_index as nidx
from kd3d.data.gt_database import GTDatabaseSampler
from kd3d.data.kitti import KittiDataset
from kd3d.data.nuscenes import NuScenesDataset
from kd3d.data.pkl import UnsafePickleError, load_pkl
from tiny_datasets import write_tiny_kitti, write_tiny_nuscenes

V = "v1.0-mini"


@pytest.fixture(scope="module")
def nroot(tmp_path_factory):
    root = tmp_path_factory.mktemp("nusc_cd")
    write_tiny_nuscenes(root, seed=1)
    return root


def _same(a, b):
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.gt_boxes.data, b.gt_boxes.data)
    np.testing.assert_array_equal(a.cam2lidar, b.cam2lidar)
    np.testing.assert_array_equal(a.points_label, b.points_label)
    assert a.meta["scene"] == b.meta["scene"] and a.token == b.token


def test_index_is_used_and_equivalent(nroot, tmp_path, monkeypatch):
    direct = NuScenesDataset(nroot, V, "mini_val", load_images=False)
    out = tmp_path / "idx.json"
    res = create_nuscenes(nroot, V, out=out, log=lambda *_: None)
    assert res["splits"] == {"mini_train": 3, "mini_val": 3, "all": 6}
    lines = out.read_text().splitlines()
    index = json.loads(lines[0])
    assert index["format"] == nidx.INDEX_FORMAT and index["num_samples"] == len(lines) - 1 == 6

    def no_tables(*a, **k):
        raise AssertionError("tables must not be read when an index is given")

    monkeypatch.setattr(nidx, "NuScenesTables", no_tables)
    fast = NuScenesDataset(nroot, V, "mini_val", load_images=False, index_file=out)
    assert fast.index_path == out and direct.index_path is None
    for i in range(3):
        _same(direct[i], fast[i])
    with pytest.raises(ValueError, match="split 'mini_train_x' not in the index"):
        NuScenesDataset(nroot, V, "mini_train_x", index_file=out)
    with pytest.raises(ValueError, match="holds 10 sweeps, dataset asks for 12"):
        NuScenesDataset(nroot, V, "all", sweeps=12, index_file=out)


def test_default_index_location_and_staleness(nroot, tmp_path):
    root = tmp_path / "n"
    shutil.copytree(nroot, root)
    create_nuscenes(root, V, log=lambda *_: None)
    assert NuScenesDataset(root, V, "all", load_images=False).index_path == nidx.default_index_path(root, V)
    path = nidx.default_index_path(root, V)
    head, *rest = path.read_text().splitlines(keepends=True)
    idx = json.loads(head)
    idx["version"] = "v1.0-trainval"
    (tmp_path / "other.json").write_text(json.dumps(idx) + "\n" + "".join(rest))
    with pytest.raises(ValueError, match="built for version 'v1.0-trainval'"):
        NuScenesDataset(root, V, "all", index_file=tmp_path / "other.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt kd3d index"):
        NuScenesDataset(root, V, "all", index_file=tmp_path / "junk.json")
    (tmp_path / "trunc.json").write_text(head + "".join(rest[:-2]))
    with pytest.raises(ValueError, match="truncated"):
        NuScenesDataset(root, V, "all", index_file=tmp_path / "trunc.json")
    (tmp_path / "badline.json").write_text(head + "".join(rest[:-1]) + rest[-1].replace('"cams"', '"ca'))
    with pytest.raises(ValueError, match="corrupt sample entry"):
        NuScenesDataset(root, V, "all", index_file=tmp_path / "badline.json")[5]
    with (root / V / "sample.json").open("a") as f:
        f.write(" ")
    with pytest.raises(ValueError, match="stale"):
        NuScenesDataset(root, V, "all")
    sweep = next((root / "sweeps" / "LIDAR_TOP").iterdir())
    sweep.unlink()
    with pytest.raises(FileNotFoundError, match="1 files referenced by the v1.0-mini tables are missing"):
        create_nuscenes(root, V, log=lambda *_: None)


def test_restricted_pkl(nroot, tmp_path):
    tokens = NuScenesDataset(nroot, V, "mini_val", load_images=False).tokens[:2]
    infos = {"infos": [{"token": t, "gt_boxes": np.zeros((2, 7), np.float32), "gt_names": np.array(["car", "car"]),
                        "sweeps": [{"data_path": "x", "timestamp": 1}]} for t in tokens],
             "metadata": {"version": V}}
    for proto in (2, 4, 5):
        (tmp_path / f"p{proto}.pkl").write_bytes(pickle.dumps(infos, protocol=proto))
        back = load_pkl(tmp_path / f"p{proto}.pkl")
        np.testing.assert_array_equal(back["infos"][0]["gt_boxes"], infos["infos"][0]["gt_boxes"])
        assert back["infos"][1]["gt_names"].dtype.kind == "U"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"infos": [Evil()]}))
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl: refuses to unpickle global '(posix|os)\.system'"):
        load_pkl(tmp_path / "evil.pkl")
    (tmp_path / "od.pkl").write_bytes(pickle.dumps(OrderedDict(a=1)))
    with pytest.raises(UnsafePickleError, match="collections.OrderedDict"):
        load_pkl(tmp_path / "od.pkl")
    (tmp_path / "trunc.pkl").write_bytes(pickle.dumps(infos)[:50])
    with pytest.raises(ValueError, match="not a readable pickle"):
        load_pkl(tmp_path / "trunc.pkl")
    out = tmp_path / "idx.json"
    res = create_nuscenes(nroot, V, from_infos={"custom": str(tmp_path / "p2.pkl")}, out=out, log=lambda *_: None)
    assert res["splits"]["custom"] == 2
    assert NuScenesDataset(nroot, V, "custom", index_file=out, load_images=False).tokens == tokens


def test_cli_create_data_and_info(nroot, tmp_path, capsys):
    root = tmp_path / "n"
    shutil.copytree(nroot, root)
    assert main(["create-data", "nuscenes", "--dataroot", str(root), "--version", V, "--splits", "mini_train",
                 "--max-sweeps", "3", "--gt-database"]) == 0
    db = root / f"kd3d_gt_database_{V}_mini_train.npz"
    with np.load(db, allow_pickle=False) as z:
        assert set(z["names"]) <= {"car", "pedestrian"} and z["offsets"][-1] == len(z["points"])
    assert main(["info", "--dataroot", str(root), "--version", V, "--split", "all", "--sweeps", "3"]) == 0
    out = capsys.readouterr().out
    assert "samples: 6 (loaded 6)" in out and "car 6, truck 0" in out and "pedestrian 6" in out
    assert "load throughput" in out and "(H, W): (36, 64)" in out
    # the default index (3 sweeps) cannot serve 10 sweeps: warn and read the tables
    with pytest.warns(UserWarning, match="holds 3 sweeps.*reading the tables instead"):
        ds = NuScenesDataset(root, V, "mini_train", sweeps=10, load_images=False)
    assert ds.index_path is None and len(np.unique(ds[2].points[:, 4])) > 3


def test_summarize_dict(nroot):
    ds = NuScenesDataset(nroot, V, "mini_train", sweeps=2, load_images=False)
    s = summarize(ds, max_samples=2)
    assert s["num_samples"] == 3 and s["num_loaded"] == 2
    assert s["boxes_per_class"]["car"] == 2 and s["boxes_per_class"]["pedestrian"] == 2
    assert s["key_points_per_sample"] == {"mean": 300.0, "min": 300, "max": 300}
    assert sum(s["lidarseg_histogram"].values()) == 600 and s["image_size"] is None
    assert len(s["cameras"]) == 6 and s["samples_per_s"] > 0
    assert "boxes per class: car 2" in format_summary(s)


def test_kitti_create_data_gt_database_and_sampling(tmp_path):
    root = tmp_path / "kitti"
    write_tiny_kitti(root, frames=3)
    res = create_kitti(root, gt_database=True, log=lambda *_: None)
    assert res["splits"] == {"train": 2, "val": 1, "trainval": 3}
    assert res["gt_counts"] == {"Car": 2, "Cyclist": 2, "Pedestrian": 2}
    index = json.loads((root / "kd3d_index_kitti.json").read_text())
    assert index["frames"]["training/000000"]["num_objects"] == 3
    # paste into a frame emptied of its objects: the sampler restores up to the requested counts
    ds = KittiDataset(root, "val", load_images=False)
    from kd3d.data.transforms import select_boxes

    s = ds[0]
    inside = s.gt_boxes.points_in_boxes(s.points).any(1)
    s.points, s.num_key_points = s.points[~inside], int((~inside).sum())
    s = select_boxes(s, np.zeros(3, bool))
    sampler = GTDatabaseSampler(res["gt_database"], ds.class_names, {"Car": 1, "Pedestrian": 1, "Cyclist": 1},
                                min_points=10, max_difficulty=2, seed=0)
    out = sampler(s).validate()
    assert sorted(out.gt_labels) == [0, 1, 2] and (out.gt_num_points == 40).all()
    assert out.gt_boxes.points_in_boxes(out.points).sum() == 120
    assert main(["info", "--format", "kitti", "--dataroot", str(root), "--split", "val"]) == 0
