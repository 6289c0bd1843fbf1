"""``kd3d vis``: headless pictures, an offline HTML viewer, open3d export and evaluation plots.

Subcommands::

    kd3d vis scene    --dataroot D --version V --sample-idx 0 [--results R.json] [--color-by height] --out bev.png
    kd3d vis cameras  --dataroot D --version V --sample-idx 0 [--results R.json] --out cams.png
    kd3d vis html     --dataroot D --version V --sample-idx 0 [--results R.json] --out sample.html
    kd3d vis export   --dataroot D --version V --sample-idx 0 [--results R.json] --out scene.ply
    kd3d vis show     --dataroot D --version V --sample-idx 0          (open3d window; needs a display)
    kd3d vis eval     --metrics-dir DIR --out-dir PLOTS
    kd3d vis distill  --maps maps.npz --out distill.png                (saved teacher/student maps)
    kd3d vis distill  --config C [--checkpoint K] [--split S] --sample-idx 0 --out distill.png  (a live Distiller)
    kd3d vis distill  --dataroot D --version V --sample-idx 0 --out distill.png  (GT-derived masks)

``--format kitti`` reads a KITTI root instead (``--dataroot`` = the folder with training/).
``--results`` is a nuScenes submission JSON (global frame); its boxes of the chosen sample are
converted to the sample's LiDAR frame.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from kd3d.vis.colors import COLOR_BY


def _dataset_args(p: argparse.ArgumentParser, results: bool = True) -> None:
    p.add_argument("--format", choices=("nuscenes", "kitti"), default="nuscenes")
    p.add_argument("--dataroot", required=True, help="nuScenes dataroot, or the KITTI root with --format kitti")
    p.add_argument("--version", default="v1.0-mini", help="nuScenes version folder")
    p.add_argument("--split", default=None, help="split (default: all for nuScenes, train for KITTI)")
    p.add_argument("--sweeps", type=int, default=10, help="LiDAR sweeps per sample (nuScenes)")
    p.add_argument("--sample-idx", type=int, default=0, help="index of the sample in the split")
    p.add_argument("--sample-token", default=None, help="nuScenes sample token / KITTI frame id (overrides --sample-idx)")
    if results:
        p.add_argument("--results", default=None, help="nuScenes detection results JSON to draw as predictions")
        p.add_argument("--score-thresh", type=float, default=0.0, help="hide predictions scoring below this")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="vis_command", metavar="WHAT", required=True)
    p = sub.add_parser("scene", help="points + GT/predicted boxes in BEV and/or 3D perspective (PNG)")
    _dataset_args(p)
    p.add_argument("--color-by", choices=COLOR_BY, default="height")
    p.add_argument("--view", choices=("bev", "3d", "both"), default="bev")
    p.add_argument("--range", type=float, default=51.2, help="BEV half-extent in metres")
    p.add_argument("--resolution", type=float, default=0.1, help="BEV metres per pixel")
    p.add_argument("--out", required=True)
    p = sub.add_parser("cameras", help="camera images in a grid with projected points and boxes (PNG)")
    _dataset_args(p)
    p.add_argument("--tile-width", type=int, default=480)
    p.add_argument("--out", required=True)
    p = sub.add_parser("html", help="self-contained offline HTML viewer of a sample")
    _dataset_args(p)
    p.add_argument("--color-by", choices=COLOR_BY, default="height")
    p.add_argument("--max-points", type=int, default=100_000)
    p.add_argument("--out", required=True)
    p = sub.add_parser("export", help="coloured point cloud (PLY/PCD) and box LineSets via open3d")
    _dataset_args(p)
    p.add_argument("--color-by", choices=COLOR_BY, default="height")
    p.add_argument("--out", required=True, help="scene.ply or scene.pcd; boxes go next to it")
    p = sub.add_parser("show", help="interactive open3d window (needs a display)")
    _dataset_args(p)
    p.add_argument("--color-by", choices=COLOR_BY, default="height")
    p = sub.add_parser("eval", help="PR and TP-error curves from metrics_details.json / metrics_summary.json")
    p.add_argument("--metrics-dir", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--dist-th", type=float, default=2.0, help="matching distance of the TP-error curves")
    p = sub.add_parser("distill", help="teacher/student BEV maps and the distillers' masks (PNG)")
    p.add_argument("--maps", default=None, help="npz with 'teacher', 'student' [(C,H,W)], optional "
                   "'teacher_heatmap', 'student_heatmap', 'keypoints', 'points', 'point_groups', 'mask_<name>', "
                   "and 'grid' = [xmin, ymin, xmax, ymax, dx, dy]")
    p.add_argument("--config", default=None, help="a distillation config (.py or name under configs/): run its "
                   "Distiller on one sample and draw the teacher/student features and the methods' masks")
    p.add_argument("--checkpoint", default=None, help="with --config: a kd3d checkpoint of the distiller")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="with --config: override a config field (repeatable)")
    p.add_argument("--term", default=None, help="with --config: the distillation term to show (default: first dense)")
    p.add_argument("--dataroot", default=None, help="without --maps/--config: masks from a sample's GT boxes")
    p.add_argument("--format", choices=("nuscenes", "kitti"), default="nuscenes")
    p.add_argument("--version", default="v1.0-mini")
    p.add_argument("--split", default=None)
    p.add_argument("--sweeps", type=int, default=10, help="sample mode: the 'teacher' map uses all sweeps, "
                   "the 'student' map the key frame")
    p.add_argument("--sample-idx", type=int, default=0)
    p.add_argument("--sample-token", default=None)
    p.add_argument("--range", type=float, default=51.2, help="BEV half-extent (sample mode)")
    p.add_argument("--cell", type=float, default=0.8, help="BEV cell size in metres (sample mode)")
    p.add_argument("--mode", choices=("pca", "mean"), default="pca")
    p.add_argument("--out", required=True)


# ----------------------------------------------------------------------------- data
def load_sample(args):
    """The Sample chosen by ``--sample-idx`` / ``--sample-token`` and the dataset it came from."""
    if args.format == "kitti":
        from kd3d.data.kitti import KittiDataset

        ds = KittiDataset(args.dataroot, args.split or "train", load_images=getattr(args, "vis_command", "") == "cameras")
        keys = list(ds.ids)
    else:
        from kd3d.data.nuscenes import NuScenesDataset

        ds = NuScenesDataset(args.dataroot, args.version, args.split or "all", sweeps=args.sweeps,
                             load_images=getattr(args, "vis_command", "") == "cameras")
        keys = [e["token"] if isinstance(e, dict) and "token" in e else None for e in ds.entries]
    idx = args.sample_idx
    if args.sample_token:
        if args.sample_token not in keys:
            raise SystemExit(f"kd3d vis: sample {args.sample_token!r} is not in split {ds.split!r} of {args.dataroot}")
        idx = keys.index(args.sample_token)
    if not 0 <= idx < len(ds):
        raise SystemExit(f"kd3d vis: --sample-idx {idx} outside [0, {len(ds)}) for {args.dataroot}")
    return ds[idx], ds


def load_predictions(path, sample) -> dict:
    """Boxes of ``sample`` from a nuScenes results JSON, in the sample's LiDAR frame:
    ``{"boxes": Boxes3D, "scores": (K,), "labels": (K,)}`` (empty when the sample has none)."""
    from kd3d.eval.formats import load_submission
    from kd3d.structures import Boxes3D

    _, boxes = load_submission(path)
    if sample.token not in boxes.sample_tokens:
        print(f"kd3d vis: {path} has no boxes for sample {sample.token}")
        return {"boxes": Boxes3D(), "scores": np.zeros(0), "labels": np.zeros(0, np.int64)}
    rows = boxes.select(boxes.sample_idx == boxes.sample_tokens.index(sample.token))
    # the sample's (possibly BEV-augmented) LiDAR frame -> ego: lidar2ego @ inv(bev_aug)
    aug2ego = np.asarray(sample.lidar2ego) @ np.linalg.inv(sample.bev_aug)
    lidar = Boxes3D.from_nuscenes(rows.translation, rows.size, rows.rotation, rows.velocity, aug2ego, sample.ego2global)
    return {"boxes": lidar, "scores": rows.score, "labels": rows.label}


def _preds(args, sample):
    if not getattr(args, "results", None):
        return None
    if args.format != "nuscenes":
        raise SystemExit("kd3d vis: --results reads nuScenes results JSON; use --format nuscenes")
    return load_predictions(args.results, sample)


# ----------------------------------------------------------------------------- commands
def run(args: argparse.Namespace) -> int:
    cmd = args.vis_command
    if cmd == "eval":
        from kd3d.vis.plots import render_eval_plots

        for f in render_eval_plots(args.metrics_dir, args.out_dir, dist_th=args.dist_th):
            print(f"wrote {f}")
        return 0
    if cmd == "distill":
        return _run_distill(args)
    sample, ds = load_sample(args)
    preds = _preds(args, sample)
    names = list(getattr(ds, "class_names", [])) or None
    if cmd == "scene":
        from kd3d.vis._raster import save_png
        from kd3d.vis.bev import render_scene

        r = args.range
        img = render_scene(sample, preds, color_by=args.color_by, view=args.view, xy_range=(-r, -r, r, r),
                           resolution=args.resolution, score_thresh=args.score_thresh, class_names=names)
        print(f"wrote {save_png(img, args.out)}")
    elif cmd == "cameras":
        from kd3d.vis._raster import save_png
        from kd3d.vis.camera import render_cameras

        img = render_cameras(sample, preds, tile_width=args.tile_width, score_thresh=args.score_thresh,
                             class_names=names)
        print(f"wrote {save_png(img, args.out)}")
    elif cmd == "html":
        from kd3d.vis.html import render_html

        if preds is not None and args.score_thresh > 0:
            keep = preds["scores"] >= args.score_thresh
            preds = {"boxes": preds["boxes"][np.flatnonzero(keep)], "scores": preds["scores"][keep],
                     "labels": preds["labels"][keep]}
        render_html(sample, preds, out=args.out, color_by=args.color_by, max_points=args.max_points, class_names=names)
        print(f"wrote {args.out} (open it in a browser; works offline)")
    elif cmd == "export":
        from kd3d.vis.o3d import export_scene

        for kind, f in export_scene(sample, args.out, preds, color_by=args.color_by,
                                    score_thresh=args.score_thresh, class_names=names).items():
            print(f"wrote {kind}: {f}")
    elif cmd == "show":
        from kd3d.vis.o3d import show_scene

        try:
            show_scene(sample, preds, color_by=args.color_by, score_thresh=args.score_thresh, class_names=names)
        except RuntimeError as err:
            print(f"kd3d vis show: {err}")
            return 2
    else:  # pragma: no cover - argparse restricts the choices
        raise SystemExit(f"kd3d vis: unknown subcommand {cmd!r}")
    return 0


def _run_distill(args) -> int:
    from kd3d.vis._raster import save_png
    from kd3d.vis.distill import render_distill_maps
    from kd3d.vis.distill_masks import sample_distill_maps

    if args.maps:
        path = Path(args.maps)
        if not path.is_file():
            raise SystemExit(f"kd3d vis distill: {path} not found")
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        for key in ("teacher", "student"):
            if key not in data:
                raise SystemExit(f"kd3d vis distill: {path} lacks '{key}' (C, H, W) array (has {sorted(data)})")
        grid = None
        if "grid" in data:
            from kd3d.structures import BEVGrid

            grid = BEVGrid(*[float(v) for v in data["grid"]])
        masks = {k[len("mask_"):]: v for k, v in data.items() if k.startswith("mask_")}
        img = render_distill_maps(data["teacher"], data["student"], masks, keypoints=data.get("keypoints"),
                                  points=data.get("points"), point_groups=data.get("point_groups"),
                                  teacher_heatmap=data.get("teacher_heatmap"),
                                  student_heatmap=data.get("student_heatmap"), grid=grid, mode=args.mode)
    elif args.config:
        img = _distill_from_config(args)
    elif args.dataroot:
        sample, _ = load_sample(args)
        img = sample_distill_maps(sample, half_range=args.range, cell=args.cell, mode=args.mode)
    else:
        raise SystemExit("kd3d vis distill: give --maps FILE.npz, --config (a distillation config) or --dataroot "
                         "(GT-derived masks of a sample)")
    print(f"wrote {save_png(img, args.out)}")
    return 0


def _distill_from_config(args) -> np.ndarray:
    """Build the config's Distiller (and load ``--checkpoint``), run it on sample ``--sample-idx``
    of ``--split`` (default: the config's val split) and render it."""
    from kd3d.engine.builders import build_dataset, build_train_module
    from kd3d.models.build import build_model
    from kd3d.engine.checkpoint import CheckpointError, load_checkpoint, load_module_state
    from kd3d.engine.config import ConfigError, load_config
    from kd3d.structures.sample import collate
    from kd3d.vis.distill_masks import render_distiller

    try:
        cfg = load_config(args.config, args.overrides)
        if cfg.distill is None:
            raise SystemExit(f"kd3d vis distill: config {args.config} has no distill section (cfg.distill is None)")
        module = build_train_module(cfg, build_model(cfg.model))
        if not hasattr(module, "terms"):
            raise SystemExit(f"kd3d vis distill: config {args.config} did not build a Distiller "
                             f"(got {type(module).__name__})")
        if args.checkpoint:
            load_module_state(module, load_checkpoint(args.checkpoint), args.checkpoint)  # teacher by reference
        ds = build_dataset(cfg.data, args.split or cfg.data.val_split, train=False)
    except (ConfigError, CheckpointError) as exc:
        raise SystemExit(f"kd3d vis distill: {exc}") from exc
    if not 0 <= args.sample_idx < len(ds):
        raise SystemExit(f"kd3d vis distill: --sample-idx {args.sample_idx} outside [0, {len(ds)})")
    return render_distiller(module, collate([ds[args.sample_idx]]), term=args.term, mode=args.mode)
