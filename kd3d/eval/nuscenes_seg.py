"""nuScenes-lidarseg evaluation: per-class IoU and mIoU on the 16 challenge classes.

Protocol (the devkit's ``LidarSegEval``): GT labels (32 general classes, uint8 per point, indices
from ``category.json``) are mapped to the 16 challenge classes + ignore (0) with the fine -> coarse
table (``kd3d.structures.classes``, identical to the devkit's ``LidarsegClassMapper``);
predictions are uint8 in 1..16, one per point of the key-frame LIDAR_TOP scan, stored as
``<results>/lidarseg/<split>/<lidar_sample_data_token>_lidarseg.bin``. One confusion matrix
(rows GT, cols prediction) is summed over all scans with row and column 0 zeroed;
``IoU_c = TP / (TP + FP + FN)`` (the devkit divides by the union cast to float32, and so does
kd3d); mIoU is the nanmean over classes (classes absent from GT and prediction, and the ignore
class, are NaN and drop out); frequency-weighted IoU weights by GT points.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kd3d.structures.classes import NUSC_LIDARSEG_CATEGORIES, NUSC_LIDARSEG_CLASSES, NUSC_LIDARSEG_FINE_TO_COARSE

log = logging.getLogger(__name__)

NUM_CLASSES = len(NUSC_LIDARSEG_CLASSES)  # 17 incl. ignore
IGNORE = 0
_FINE_NAME_TO_COARSE = dict(zip(NUSC_LIDARSEG_CATEGORIES, NUSC_LIDARSEG_FINE_TO_COARSE))


def fine_to_coarse_lut(categories) -> np.ndarray:
    """(256,) int64 lookup fine label -> coarse label from category records with ``name`` and
    ``index`` (a dataset's ``category.json``); unknown indices map to -1 (rejected later)."""
    lut = np.full(256, -1, np.int64)
    for rec in categories:
        if "index" not in rec:
            continue
        name = rec["name"]
        if name not in _FINE_NAME_TO_COARSE:
            raise ValueError(f"category.json: lidarseg class {name!r} is not one of the 32 nuScenes-lidarseg classes")
        lut[int(rec["index"])] = _FINE_NAME_TO_COARSE[name]
    return lut


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, name: str = "scan") -> np.ndarray:
    """(17, 17) int64 counts (rows GT, cols prediction) with row/column 0 zeroed.

    ``gt`` (N,) coarse labels 0..16; ``pred`` (N,) predictions 1..16.
    """
    gt = np.asarray(gt).reshape(-1)
    pred = np.asarray(pred).reshape(-1)
    if gt.shape != pred.shape:
        raise ValueError(f"{name}: {pred.size} predicted labels for {gt.size} points; expected one label per point")
    if gt.size and (gt.min() < 0 or gt.max() >= NUM_CLASSES):
        raise ValueError(f"{name}: GT labels must be in 0..{NUM_CLASSES - 1}, found {gt.min()}..{gt.max()}")
    bad = (pred < 1) | (pred >= NUM_CLASSES)
    if bad.any():
        raise ValueError(f"{name}: {int(bad.sum())} predicted label(s) outside 1..{NUM_CLASSES - 1} "
                         f"(e.g. {int(pred[bad][0])}); 0 is the ignore class and may not be predicted")
    cm = np.bincount(NUM_CLASSES * gt.astype(np.int64) + pred.astype(np.int64),
                     minlength=NUM_CLASSES ** 2).reshape(NUM_CLASSES, NUM_CLASSES)
    cm[IGNORE, :] = 0
    cm[:, IGNORE] = 0
    return cm


@dataclass
class SegResult:
    """``confusion`` (17, 17) int64 summed over scans; metrics in the devkit's result layout."""

    confusion: np.ndarray

    @property
    def iou(self) -> np.ndarray:
        """(17,) per-class IoU, NaN for classes with an empty union (always for ignore)."""
        cm = self.confusion
        inter = np.diagonal(cm)
        union = cm.sum(axis=1) + cm.sum(axis=0) - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            return inter / union.astype(np.float32)

    @property
    def miou(self) -> float:
        return float(np.nanmean(self.iou))

    @property
    def fwiou(self) -> float:
        cm = self.confusion
        return float(np.nansum(cm.sum(axis=1) * self.iou) / cm.sum())

    def to_dict(self) -> dict:
        return {"iou_per_class": {NUSC_LIDARSEG_CLASSES[i]: float(v) for i, v in enumerate(self.iou)},
                "miou": self.miou, "freq_weighted_iou": self.fwiou}

    def format(self) -> str:
        lines = [f"{'class':<20s} IoU"]
        for i in range(1, NUM_CLASSES):
            lines.append(f"{NUSC_LIDARSEG_CLASSES[i]:<20s} {self.iou[i]:.4f}")
        lines.append(f"{'mIoU':<20s} {self.miou:.4f}")
        lines.append(f"{'fwIoU':<20s} {self.fwiou:.4f}")
        return "\n".join(lines)

    def write(self, out_dir) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "lidarseg_metrics.json"
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path


def evaluate_arrays(gts, preds, names=None) -> SegResult:
    """mIoU from in-memory labels: ``gts[i]`` (N_i,) coarse GT 0..16, ``preds[i]`` (N_i,) 1..16."""
    if len(gts) != len(preds):
        raise ValueError(f"{len(gts)} GT scans but {len(preds)} prediction scans")
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for i, (g, p) in enumerate(zip(gts, preds)):
        cm += confusion_matrix(g, p, names[i] if names else f"scan {i}")
    return SegResult(cm)


def read_labels(path, what: str = "labels") -> np.ndarray:
    """uint8 labels of a ``.bin`` file, with a clear error when missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ValueError(f"{path}: empty {what} file")
    return data


def evaluate_lidarseg(nusc, split: str, results_dir, out_dir=None, verbose: bool = True) -> SegResult:
    """Evaluate ``<results_dir>/lidarseg/<split>/<sd_token>_lidarseg.bin`` against the GT of
    ``split`` (the scenes of the devkit split present in ``nusc``)."""
    from kd3d.eval.nuscenes_gt import split_sample_tokens

    if len(getattr(nusc, "lidarseg", [])) == 0:
        raise ValueError(f"{nusc.dataroot}/{nusc.version}: no lidarseg annotations (lidarseg.json missing or empty)")
    pred_dir = Path(results_dir) / "lidarseg" / split
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"prediction folder not found: {pred_dir} (expected lidarseg/<split>/ under results)")
    lut = fine_to_coarse_lut(nusc.category)
    tokens = split_sample_tokens(nusc, split)
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    it = tokens
    if verbose:
        from tqdm import tqdm

        it = tqdm(tokens, desc="lidarseg", leave=False)
    for token in it:
        sd_token = nusc.get("sample", token)["data"]["LIDAR_TOP"]
        gt_path = Path(nusc.dataroot) / nusc.get("lidarseg", sd_token)["filename"]
        fine = read_labels(gt_path, "GT lidarseg")
        gt = lut[fine]
        if (gt < 0).any():
            raise ValueError(f"{gt_path}: label {int(fine[gt < 0][0])} is not a lidarseg class index of category.json")
        pred_path = pred_dir / f"{sd_token}_lidarseg.bin"
        cm += confusion_matrix(gt, read_labels(pred_path, "prediction"), str(pred_path))
    result = SegResult(cm)
    if out_dir is not None:
        result.write(out_dir)
    if verbose:
        log.info("nuScenes-lidarseg evaluation for %s (%d scans)\n%s", split, len(tokens), result.format())
    return result


def write_predictions(results_dir, split: str, sd_tokens, preds) -> Path:
    """Write per-scan predictions (N_i,) 1..16 in the devkit's layout; returns the folder."""
    out = Path(results_dir) / "lidarseg" / split
    out.mkdir(parents=True, exist_ok=True)
    for token, p in zip(sd_tokens, preds):
        p = np.asarray(p)
        if p.size and (p.min() < 1 or p.max() >= NUM_CLASSES):
            raise ValueError(f"scan {token}: predictions must be in 1..{NUM_CLASSES - 1}")
        p.astype(np.uint8).tofile(out / f"{token}_lidarseg.bin")
    return out


def evaluate_engine_results(results: dict, dataset, out_dir=None, verbose: bool = False) -> dict[str, float]:
    """Engine evaluator: ``results[token] = {"point_labels": (num_key_points,) int in 1..16}``
    for every sample of a :class:`kd3d.data.nuscenes.NuScenesDataset`; writes the devkit's
    ``.bin`` files (to ``out_dir`` or a temp folder) and returns ``mIoU``, ``fwIoU``, ``IoU/<class>``."""
    import tempfile

    from nuscenes import NuScenes

    tokens = list(dataset.tokens)
    missing = [t for t in tokens if t not in results]
    if missing:
        raise ValueError(f"nuscenes_seg: no predictions for {len(missing)} of {len(tokens)} samples, e.g. {missing[:3]}")
    sd_tokens = [e["lidar"]["sd_token"] for e in dataset.entries]
    nusc = NuScenes(version=dataset.version, dataroot=str(dataset.dataroot), verbose=False)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(out_dir) if out_dir is not None else Path(tmp)
        write_predictions(root, dataset.split, sd_tokens, [results[t]["point_labels"] for t in tokens])
        res = evaluate_lidarseg(nusc, dataset.split, root, out_dir=out_dir, verbose=verbose)
    out = {"mIoU": res.miou, "fwIoU": res.fwiou}
    out.update({f"IoU/{NUSC_LIDARSEG_CLASSES[i]}": float(res.iou[i]) for i in range(1, NUM_CLASSES)})
    return out
