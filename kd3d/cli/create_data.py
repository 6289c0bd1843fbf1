"""``kd3d create-data``: build kd3d's fast sample index (JSON) and optionally the GT database.

    kd3d create-data nuscenes --dataroot D --version V [--splits train val] [--max-sweeps 10]
                              [--from-infos NAME=infos.pkl ...] [--gt-database] [--out PATH]
    kd3d create-data kitti --root R [--gt-database]

nuScenes: reads the devkit tables once, writes ``D/kd3d_index_<V>.json`` (all splits plus
``all``), checks every file it references exists. ``--from-infos`` adds a split holding the sample
tokens of an mmdet3d info ``.pkl`` (read with kd3d's restricted unpickler, never plain pickle).
KITTI: validates every frame of every ImageSets split (velodyne size, calib, labels) and writes
``R/kd3d_index_kitti.json`` with per-frame point/object counts.
``--gt-database`` cuts the training split's objects into ``kd3d_gt_database_<...>.npz``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_SPLITS = {"v1.0-mini": ["mini_train", "mini_val"], "v1.0-trainval": ["train", "val"], "v1.0-test": ["test"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    nu = sub.add_parser("nuscenes", help="index a nuScenes version folder")
    nu.add_argument("--dataroot", required=True)
    nu.add_argument("--version", default="v1.0-mini")
    nu.add_argument("--splits", nargs="+", default=None,
                    help="devkit splits to index (default: by version, e.g. mini_train mini_val); 'all' is always added")
    nu.add_argument("--max-sweeps", type=int, default=10)
    nu.add_argument("--from-infos", nargs="+", default=[], metavar="NAME=PKL",
                    help="add split NAME with the sample tokens of an mmdet3d info .pkl (restricted unpickler)")
    nu.add_argument("--out", default=None, help="index path (default DATAROOT/kd3d_index_VERSION.json)")
    nu.add_argument("--gt-database", action="store_true", help="also build the GT database from the first split")
    nu.add_argument("--no-check-files", action="store_true", help="skip checking that referenced files exist")
    ki = sub.add_parser("kitti", help="validate and index a KITTI object root")
    ki.add_argument("--root", required=True)
    ki.add_argument("--gt-database", action="store_true", help="also build the GT database from the train split")


def create_nuscenes(dataroot, version: str, splits: list[str] | None = None, *, max_sweeps: int = 10,
                    from_infos: dict[str, str] | None = None, out: str | Path | None = None,
                    gt_database: bool = False, check_files: bool = True, log=print) -> dict:
    """Build and write the nuScenes index (and GT database). Returns ``{'index': path, 'splits':
    {name: n_samples}, 'gt_database': path or None, 'gt_counts': {...}}``."""
    from kd3d.data import nuscenes_index as nidx
    from kd3d.data.pkl import load_pkl, sample_tokens_from_infos

    tables = nidx.NuScenesTables(dataroot, version)
    if splits is None:
        splits = []
        for name in DEFAULT_SPLITS.get(version, []):
            try:
                nidx.resolve_split(tables, name)
                splits.append(name)
            except ValueError:
                log(f"create-data: default split {name!r} has no scenes in {version}; skipped")
    splits = list(dict.fromkeys(list(splits) + ["all"]))
    extra = {name: sample_tokens_from_infos(load_pkl(path), str(path)) for name, path in (from_infos or {}).items()}
    index = nidx.build_index(dataroot, version, splits, max_sweeps=max_sweeps, tables=tables, extra_splits=extra)
    if check_files:
        _check_nuscenes_files(Path(dataroot), index)
    path = nidx.write_index(index, out or nidx.default_index_path(dataroot, version))
    counts = {k: len(v) for k, v in index["splits"].items()}
    log(f"create-data: wrote {path} ({len(index['samples'])} samples; splits {counts})")
    result = {"index": path, "splits": counts, "gt_database": None, "gt_counts": {}}
    if gt_database:
        from kd3d.data.gt_database import build_gt_database
        from kd3d.data.nuscenes import NuScenesDataset

        split = splits[0]
        ds = NuScenesDataset(dataroot, version, split, sweeps=max_sweeps, load_images=False, load_lidarseg=False,
                             index_file=path)
        db = Path(dataroot) / f"kd3d_gt_database_{version}_{split}.npz"
        result["gt_counts"] = build_gt_database(ds, db, log=log)
        result["gt_database"] = db
        log(f"create-data: wrote {db} ({result['gt_counts']})")
    return result


def _check_nuscenes_files(root: Path, index: dict) -> None:
    paths: set[str] = set()
    for e in index["samples"].values():
        paths.update([e["lidar"]["path"]] + [s["path"] for s in e["sweeps"]] + [c["path"] for c in e["cams"].values()])
        if e["lidar"]["lidarseg"]:
            paths.add(e["lidar"]["lidarseg"])
    missing = sorted(p for p in paths if not (root / p).is_file())
    if missing:
        raise FileNotFoundError(f"{len(missing)} files referenced by the {index['version']} tables are missing under "
                                f"{root}, e.g. {[str(root / p) for p in missing[:3]]}")


def create_kitti(root, *, gt_database: bool = False, log=print) -> dict:
    """Validate every frame of every split and write ``root/kd3d_index_kitti.json``."""
    from kd3d.data.kitti import KITTI_SPLITS, KittiDataset

    root = Path(root)
    found = [s for s in KITTI_SPLITS if (root / "ImageSets" / f"{s}.txt").is_file()]
    if not found:
        raise FileNotFoundError(f"{root / 'ImageSets'}: no split files ({', '.join(s + '.txt' for s in KITTI_SPLITS)})")
    index = {"format": "kd3d-kitti-index", "format_version": 1, "splits": {}, "frames": {}}
    for split in found:
        ds = KittiDataset(root, split, load_images=False)
        index["splits"][split] = ds.ids
        for i, fid in enumerate(ds.ids):
            key = f"{'testing' if split == 'test' else 'training'}/{fid}"
            if key not in index["frames"]:
                s = ds.get_raw(i)
                index["frames"][key] = {"num_points": len(s.points), "num_objects": len(s.gt_boxes),
                                        "image_shape": s.meta["image_shape"]}
    path = root / "kd3d_index_kitti.json"
    path.write_text(json.dumps(index, separators=(",", ":")))
    log(f"create-data: wrote {path} (splits { {k: len(v) for k, v in index['splits'].items()} })")
    result = {"index": path, "splits": {k: len(v) for k, v in index["splits"].items()}, "gt_database": None,
              "gt_counts": {}}
    if gt_database:
        from kd3d.data.gt_database import build_gt_database

        if "train" not in found:
            raise FileNotFoundError(f"{root / 'ImageSets' / 'train.txt'}: needed for --gt-database")
        db = root / "kd3d_gt_database_train.npz"
        result["gt_counts"] = build_gt_database(KittiDataset(root, "train", load_images=False), db, log=log)
        result["gt_database"] = db
        log(f"create-data: wrote {db} ({result['gt_counts']})")
    return result


def run(args: argparse.Namespace) -> int:
    if args.dataset == "kitti":
        create_kitti(args.root, gt_database=args.gt_database)
        return 0
    infos = {}
    for item in args.from_infos:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--from-infos expects NAME=PATH.pkl, got {item!r}")
        infos[name] = path
    create_nuscenes(args.dataroot, args.version, args.splits, max_sweeps=args.max_sweeps, from_infos=infos,
                    out=args.out, gt_database=args.gt_database, check_files=not args.no_check_files)
    return 0
