"""Each distillation term alone, for a distillation config and a checkpointed student (issue 12
item 4: "when a method does not help, find out why").

Usage::

    python3 bench/term_probe.py bench/camera_bevdistill --student work_dirs/bench_camera_student \
        [--teacher work_dirs/bench_lidar_teacher] [--batches 4] [--split train] [--json out.json]

For ``--batches`` batches of the split (training transforms, the config's batch size) it prints

* per term: its weighted value, the L2 norm of its gradient on the student's parameters alone,
  that norm over the norm of the student's own losses' gradient, and the cosine between the two
  gradients (negative: the term pulls against the detection losses);
* the student's own losses and their gradient norm; the Distiller's cap factor (``max_ratio``)
  at full warm-up;
* for BEV detectors with a CenterHead: where the teacher beats the student. The per-cell
  CenterNet focal loss of each model's heatmap against the GT Gaussian targets (the student
  head's grid and radius rule), summed over classes, averaged inside each map of the method's
  visualisation hook (``METHODS[m].maps``: the term's masks / weights, e.g. BEVDistill's
  foreground Gaussian) and over the whole map, with the share of mask cells where the teacher's
  loss is lower. A term that looks where the teacher is no better has nothing to teach there.

The student runs in training mode (BatchNorm batch statistics, as in a training step); nothing
is saved.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch


def cell_focal_loss(logits: torch.Tensor, target: torch.Tensor, *, alpha: float = 2.0, beta: float = 4.0,
                    eps: float = 1e-4) -> torch.Tensor:
    """Per-cell CenterNet focal loss (the summand of
    :func:`kd3d.models.heads.losses.gaussian_focal_loss`, not normalised), summed over classes.

    logits, target: (B, K, H, W) -> (B, H, W): ``-(1-p)^a log p`` where t == 1, else
    ``-(1-t)^b p^a log(1-p)``, with ``p = clamp(sigmoid(logits), eps, 1-eps)``."""
    p = torch.sigmoid(logits.float()).clamp(eps, 1 - eps)
    t = target.float()
    pos = t.eq(1)
    loss = torch.where(pos, -torch.log(p) * (1 - p).pow(alpha), -torch.log(1 - p) * p.pow(alpha) * (1 - t).pow(beta))
    return loss.sum(1)


def gt_heatmap(head, batch) -> torch.Tensor:
    """(B, K, H, W) GT Gaussian heatmaps in ``head.class_names`` order on ``head.grid``."""
    from kd3d.models.heads.targets import build_task_targets

    boxes = [torch.as_tensor(getattr(b, "data", b), dtype=torch.float32).reshape(-1, 9) for b in batch.gt_boxes]
    labels = [torch.as_tensor(x, dtype=torch.int64) for x in batch.gt_labels]
    maps = [build_task_targets(boxes, labels, [c], head.grid, min_overlap=head.min_overlap,
                               min_radius=head.min_radius)["heatmap"] for c in range(len(head.class_names))]
    return torch.cat(maps, dim=1)


def where_teacher_beats(t_loss: np.ndarray, s_loss: np.ndarray, masks: dict[str, np.ndarray]) -> dict:
    """Mask name -> {"cells" (weight sum), "teacher", "student" (weighted mean per-cell loss),
    "teacher_better" (weighted share of cells where the teacher's loss is lower)}; ``"all"`` is
    the whole map. Masks of another shape than the loss maps are reported as skipped."""
    out = {}
    for name, m in {"all": np.ones_like(t_loss), **masks}.items():
        m = np.asarray(m, dtype=np.float64)
        if m.shape != t_loss.shape:
            out[name] = {"skipped": f"mask {m.shape} vs heatmap {t_loss.shape}"}
            continue
        w = np.clip(m, 0, None)
        total = float(w.sum())
        if total <= 0:
            out[name] = {"cells": 0.0}
            continue
        out[name] = {"cells": total, "teacher": float((w * t_loss).sum() / total),
                     "student": float((w * s_loss).sum() / total),
                     "teacher_better": float((w * (t_loss < s_loss)).sum() / total)}
    return out


def _grad(value: torch.Tensor, params: list) -> list:
    if not value.requires_grad:
        return [torch.zeros_like(p) for p in params]
    gs = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs)]


def _norm(gs: list) -> float:
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in gs)))


def _cos(a: list, b: list) -> float:
    dot = float(sum((x.double() * y.double()).sum() for x, y in zip(a, b)))
    den = _norm(a) * _norm(b)
    return dot / den if den > 0 else float("nan")


def probe_batch(distiller, batch) -> dict:
    """Term values, gradient norms and (for CenterHead detectors) the teacher-vs-student focal
    loss comparison on one batch."""
    distiller.train()
    distiller.set_step(10 ** 9)  # full warm-up
    _, s_out, t_out = distiller.forward_with_outputs(batch)
    student_losses = distiller.student.loss(s_out, batch)
    params = [p for p in distiller.student.parameters() if p.requires_grad]
    own = sum(student_losses.values())
    g_own = _grad(own, params)
    rec = {"student": {k: float(v.detach()) for k, v in student_losses.items()}, "student_grad_norm": _norm(g_own),
           "cap_factor": float(distiller.last_distill_scale), "terms": {}}
    for key, value in distiller.distill_losses(s_out, t_out, batch).items():
        g = _grad(value, params)
        rec["terms"][key] = {"value": float(value.detach()), "grad_norm": _norm(g),
                             "grad_ratio": _norm(g) / max(rec["student_grad_norm"], 1e-12), "cos_student": _cos(g, g_own)}
    head = getattr(distiller.student, "head", None)
    hm_s, hm_t = s_out.feats.get("heatmap"), t_out.feats.get("heatmap")
    if head is not None and hasattr(head, "grid") and hm_s is not None and hm_t is not None:
        if hm_s.shape != hm_t.shape:
            rec["bev"] = {"skipped": f"heatmaps differ: student {tuple(hm_s.shape)} teacher {tuple(hm_t.shape)}"}
        else:
            from kd3d.vis.distill_masks import distiller_maps

            target = gt_heatmap(head, batch)
            with torch.no_grad():
                ls, lt = cell_focal_loss(hm_s.detach(), target), cell_focal_loss(hm_t.detach(), target)
            rec["bev"] = []
            for b in range(hm_s.shape[0]):
                masks = distiller_maps(distiller, batch, batch_index=b)["masks"]
                rec["bev"].append(where_teacher_beats(lt[b].numpy(), ls[b].numpy(), masks))
    return rec


def summarise(records: list[dict]) -> dict:
    """Means over batches (and samples for the BEV comparison)."""
    mean = lambda xs: float(np.mean([x for x in xs if x is not None and not math.isnan(x)])) if xs else float("nan")
    out = {"student": {k: mean([r["student"][k] for r in records]) for k in records[0]["student"]},
           "student_grad_norm": mean([r["student_grad_norm"] for r in records]),
           "cap_factor": mean([r["cap_factor"] for r in records]), "terms": {}}
    for key in records[0]["terms"]:
        out["terms"][key] = {f: mean([r["terms"][key][f] for r in records])
                             for f in ("value", "grad_norm", "grad_ratio", "cos_student")}
    bev = [s for r in records if isinstance(r.get("bev"), list) for s in r["bev"]]
    if bev:
        out["bev"] = {}
        for name in bev[0]:
            rows = [s[name] for s in bev if "teacher" in s.get(name, {})]
            if rows:
                out["bev"][name] = {f: mean([x[f] for x in rows]) for f in ("cells", "teacher", "student", "teacher_better")}
    elif records[0].get("bev"):
        out["bev"] = records[0]["bev"]
    return out


def format_summary(s: dict) -> str:
    lines = ["student losses: " + ", ".join(f"{k} {v:.4f}" for k, v in s["student"].items()) +
             f"; gradient norm {s['student_grad_norm']:.4g}; distill cap factor {s['cap_factor']:.3f}", "",
             f"{'term':<34}{'value':>10}{'grad norm':>12}{'/ student':>11}{'cos':>8}"]
    for k, t in s["terms"].items():
        lines.append(f"{k:<34}{t['value']:>10.4f}{t['grad_norm']:>12.4g}{t['grad_ratio']:>11.3f}{t['cos_student']:>8.3f}")
    if isinstance(s.get("bev"), dict) and "skipped" not in s["bev"]:
        lines += ["", "per-cell heatmap focal loss vs GT (mean inside each map; teacher better = share of cells)",
                  f"{'map':<40}{'cells':>9}{'teacher':>10}{'student':>10}{'teacher better':>16}"]
        for name, r in s["bev"].items():
            lines.append(f"{name:<40}{r['cells']:>9.1f}{r['teacher']:>10.4f}{r['student']:>10.4f}{r['teacher_better']:>16.2f}")
    elif s.get("bev"):
        lines += ["", f"BEV comparison skipped: {s['bev']}"]
    return "\n".join(lines)


def build(config: str, student: str | None, teacher: str | None, sets: list[str]):
    """(Distiller with the student's and teacher's weights, config)."""
    from kd3d.distill.build import build_distiller
    from kd3d.engine.config import load_config, override
    from kd3d.models.build import build_model
    from kd3d.models.checkpoint import load_weights

    cfg = load_config(config, sets)
    if cfg.distill is None:
        raise SystemExit(f"bench/term_probe.py: {config} has no distill section (a distillation config is needed)")
    if teacher:
        cfg = override(cfg, {"distill.teacher_checkpoint": teacher})
    cfg = override(cfg, {"distill.cache_dir": None}) if getattr(cfg.distill, "cache_dir", None) else cfg
    model = build_model(cfg.model)
    if student:
        load_weights(model, student)
    return build_distiller(cfg.distill, student=model), cfg


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="distillation config (name or .py)")
    p.add_argument("--student", default=None, help="student checkpoint or work dir (default: untrained student)")
    p.add_argument("--teacher", default=None, help="teacher checkpoint or work dir (default: the config's)")
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--split", default=None, help="default: data.train_split")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", default=None, help="also write the per-batch records and the summary here")
    args = p.parse_args(argv)
    from kd3d.engine.builders import build_dataset
    from kd3d.structures.sample import collate

    torch.manual_seed(0)
    distiller, cfg = build(args.config, args.student, args.teacher, args.sets)
    split = args.split or cfg.data.train_split
    ds = build_dataset(cfg.data, split, train=split == cfg.data.train_split)
    bs = cfg.data.batch_size
    n = min(args.batches, len(ds) // bs)
    if n < 1:
        raise SystemExit(f"bench/term_probe.py: split {split!r} has {len(ds)} samples, fewer than a batch of {bs}")
    records = [probe_batch(distiller, collate([ds[i * bs + j] for j in range(bs)])) for i in range(n)]
    summary = summarise(records)
    print(f"{args.config}: {n} batches of {bs} from {split!r}; student {args.student or '(untrained)'}")
    print(format_summary(summary))
    if args.json:
        Path(args.json).write_text(json.dumps({"records": records, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
