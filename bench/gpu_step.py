"""Time one training step and the peak memory of the nuScenes-scale LiDAR teacher and camera student.

Models, optimiser, gradient clip and autocast come from the configs ``nuscenes/centerpoint_voxel01``
(teacher) and ``nuscenes/lss_r50_256x704`` (camera student); the step mirrors
``kd3d.engine.trainer.Trainer._train_step``: host->device copy, forward + loss under the config's
autocast (bf16 on CUDA), backward, gradient clip, AdamW step, scheduler step.

Batches are synthetic but in the form the data loader produces (:class:`kd3d.structures.sample.Batch`
after collate, ``PointRangeFilter`` applied): per frame a 32-beam LiDAR-like cloud (beams from -30 to
+10 degrees, 1084 azimuths, ground at z = -1.8 m) over 10 sweeps (key sweep first, ``dt`` in column 4,
ego moving at 5 m/s), 30 boxes of the 10 detection classes with surface points, and for the camera
6 ring cameras at 256 x 704 (ImageNet-normalised random images, identity image augmentation). Step
times depend on the occupied voxels, so they are for this cloud, not a real nuScenes frame.

Per (model, batch size): 1 warm-up step, then ``--repeats`` timed steps (``torch.cuda.synchronize``
before and after each), median reported; peak memory is ``torch.cuda.max_memory_allocated`` over
warm-up and timed steps (reset before each batch size). Batch sizes: 1 and the config's.

``--device cpu --small`` (for the CPU test only): synthetic-scale models, 4 beams x 256 azimuths x
2 sweeps, 2 cameras, batch sizes 1 and 2.

    python3 bench/gpu_step.py --out gpu_step.json                 # on a CUDA machine
    python3 bench/gpu_step.py --device cpu --small --out /tmp/s.json
"""
from __future__ import annotations

import argparse
import ast
import importlib.metadata
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kd3d.engine.builders import TrainStep, build_optimizer, build_scheduler  # noqa: E402
from kd3d.engine.config import load_base  # noqa: E402
from kd3d.engine.evaluation import autocast_context  # noqa: E402
from kd3d.models.build import ModelConfig, build_model  # noqa: E402
from kd3d.models.camera.rig import ring_rig  # noqa: E402
from kd3d.structures.classes import NUSC_DET_CLASSES  # noqa: E402
from kd3d.structures.sample import Batch  # noqa: E402

# key -> (config name, model used in --small mode)
MODELS = {
    "lidar_teacher": ("nuscenes/centerpoint_voxel01",
                      ModelConfig(name="centerpoint_voxel", kwargs={"scale": "synthetic", "width": 0.25})),
    "camera_student": ("nuscenes/lss_r50_256x704", ModelConfig(name="camera_bev_synthetic", kwargs={})),
}
POINT_RANGE = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class _SampleInfo:
    """The two ``Sample`` fields models read from ``batch.samples``."""

    def __init__(self, token: str, num_key_points: int):
        self.token, self.num_key_points = token, num_key_points


def lidar_frame(gen: np.random.Generator, *, beams: int, azimuths: int, sweeps: int,
                boxes: np.ndarray) -> tuple[np.ndarray, int]:
    """((N, 5) float32 ``x y z intensity dt`` in the key frame's LiDAR frame, key sweep first; key-sweep rows).

    Each sweep: ``beams`` x ``azimuths`` rays from (0, 0, 0); a ray going down hits the ground plane
    z = -1.8 m, one going up ends at 60 m; plus 80 points on each box's surface. Sweep ``s`` is
    0.05 s older and its cloud shifted back by 5 m/s x dt (ego motion); points outside
    ``POINT_RANGE`` are dropped as ``PointRangeFilter`` does."""
    elev = np.radians(np.linspace(-30.0, 10.0, beams))
    azim = np.linspace(-math.pi, math.pi, azimuths, endpoint=False)
    e, a = np.meshgrid(elev, azim, indexing="ij")
    rng = np.where(e < 0, 1.8 / np.maximum(np.sin(-e), 1e-6), 60.0).clip(max=60.0)
    ray = np.stack([rng * np.cos(e) * np.cos(a), rng * np.cos(e) * np.sin(a), rng * np.sin(e)], -1).reshape(-1, 3)
    out = []
    for s in range(sweeps):
        dt = 0.05 * s
        surf = boxes[:, None, :3] + gen.uniform(-0.5, 0.5, (len(boxes), 80, 3)) * boxes[:, None, 3:6]
        xyz = np.concatenate([ray + gen.normal(0, 0.02, ray.shape), surf.reshape(-1, 3)])
        xyz[:, 0] -= 5.0 * dt
        pts = np.column_stack([xyz, gen.uniform(0, 1, len(xyz)), np.full(len(xyz), dt)])
        lo, hi = np.array(POINT_RANGE[:3]), np.array(POINT_RANGE[3:])
        out.append(pts[np.all((pts[:, :3] >= lo) & (pts[:, :3] < hi), axis=1)])
    return np.concatenate(out).astype(np.float32), len(out[0])


def make_batch(batch_size: int, *, seed: int, beams: int, azimuths: int, sweeps: int,
               num_cams: int = 0, image_size: tuple[int, int] | None = None) -> Batch:
    """A collated batch of ``batch_size`` frames (see the module docstring); cameras when ``num_cams``."""
    gen = np.random.default_rng(seed)
    points, boxes, labels, attrs, samples = [], [], [], [], []
    for b in range(batch_size):
        n = 30
        xy = gen.uniform(-48.0, 48.0, (n, 2))
        lwh = np.column_stack([gen.uniform(0.6, 5.0, n), gen.uniform(0.6, 2.2, n), gen.uniform(1.4, 2.2, n)])
        box = np.column_stack([xy, -1.8 + lwh[:, 2] / 2, lwh, gen.uniform(-math.pi, math.pi, n),
                               gen.normal(0, 2, (n, 2))])
        pts, key = lidar_frame(gen, beams=beams, azimuths=azimuths, sweeps=sweeps, boxes=box)
        points.append(torch.from_numpy(pts))
        boxes.append(torch.tensor(box, dtype=torch.float32))
        labels.append(torch.tensor(gen.integers(0, len(NUSC_DET_CLASSES), n), dtype=torch.int64))
        attrs.append(torch.full((n,), -1, dtype=torch.int64))
        samples.append(_SampleInfo(f"gpu_step_{seed}_{b}", key))
    batch = Batch(points=points, points_label=[None] * batch_size, gt_boxes=boxes, gt_labels=labels,
                  gt_attrs=attrs, bev_aug=torch.eye(4).repeat(batch_size, 1, 1), samples=samples)
    if num_cams:
        intr, c2l = ring_rig(num_cams, image_size)
        rep = lambda a: torch.tensor(np.repeat(a[None], batch_size, 0), dtype=torch.float32)  # noqa: E731
        img = torch.rand(batch_size, num_cams, 3, *image_size, generator=torch.Generator().manual_seed(seed))
        mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
        batch.images = (img - mean) / std
        batch.cam_intrinsics, batch.cam2lidar = rep(intr), rep(c2l)
        batch.img_aug = torch.eye(3).repeat(batch_size, num_cams, 1, 1)
    return batch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(key: str, *, device: torch.device, small: bool, repeats: int, seed: int = 0) -> list[dict]:
    """One record per batch size (1 and the config's; 1 and 2 in --small mode)."""
    config_name, small_model = MODELS[key]
    cfg = load_base(config_name)
    model_cfg = small_model if small else cfg.model
    amp = cfg.runtime.amp if device.type == "cuda" else "none"
    camera = key == "camera_student"
    beams, azimuths, sweeps = (4, 256, 2) if small else (32, 1084, cfg.data.kwargs.get("sweeps", 10))
    num_cams = (2 if small else 6) if camera else 0
    records = []
    for bs in sorted({1, 2 if small else cfg.data.batch_size}):
        torch.manual_seed(seed)
        model = build_model(model_cfg).to(device).train()
        image_size = tuple(model.camera.view_transformer.image_size) if camera else None
        step_module = TrainStep(model)
        opt = build_optimizer(cfg.optim, model)
        sched = build_scheduler(cfg.optim, opt, total_steps=1000)
        params = [p for g in opt.param_groups for p in g["params"]]
        clip = cfg.optim.grad_clip
        host = make_batch(bs, seed=seed, beams=beams, azimuths=azimuths, sweeps=sweeps, num_cams=num_cams,
                          image_size=image_size)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for i in range(1 + repeats):
            _sync(device)
            t0 = time.perf_counter()
            batch = host.to(device)
            with autocast_context(device, amp):
                losses = step_module(batch)
            loss = sum(v.float() for v in losses.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
            opt.step()
            sched.step()
            _sync(device)
            if i > 0:  # the first step is the warm-up
                times.append(time.perf_counter() - t0)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"gpu_step: {key} batch {bs}: non-finite loss {float(loss)}")
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        records.append({
            "model": key, "config": config_name, "model_name": model_cfg.name, "batch_size": bs,
            "amp": amp, "points_per_frame": round(sum(len(p) for p in host.points) / bs),
            "sweeps": sweeps, "cameras": num_cams, "image_size": list(image_size) if image_size else None,
            "params": sum(p.numel() for p in model.parameters()),
            "step_s": statistics.median(times), "step_s_all": times, "peak_mem_mib": peak,
            "loss": float(loss.detach()),
        })
        del model, opt, sched, step_module, batch, losses, loss
    return records


def versions(device: torch.device) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    try:
        import spconv

        info["spconv"] = getattr(spconv, "__version__", "unknown")
    except ImportError:
        info["spconv"] = None
    return info


def spconv_builds() -> dict[str, str]:
    """Installed spconv/cumm distributions on ``sys.path``: normalised name -> version."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name == "spconv" or name.startswith(("spconv-", "cumm")):
            found[name] = dist.version
    return found


def build_problems(builds: dict[str, str], device_type: str, cuda_available: bool) -> list[str]:
    """What is wrong with the installed spconv ``builds`` (from :func:`spconv_builds`) for a run on
    ``device_type`` ('cuda' or 'cpu'); empty when fine."""
    cpu = [n for n in builds if n == "spconv"]
    gpu = [n for n in builds if n.startswith("spconv-cu")]
    problems = []
    if cpu and gpu:
        problems.append(f"both spconv's CPU build ({cpu[0]}) and a CUDA build ({gpu[0]}) are installed: they write the "
                        "same spconv/ folder, so the last installed wins and uninstalling either breaks the other; "
                        "uninstall both, then install only the CUDA build")
    if device_type == "cuda":
        if not cuda_available:
            problems.append("torch.cuda.is_available() is False (no GPU, or torch is a CPU build)")
        if not gpu:
            problems.append("no spconv CUDA build (spconv-cuXXX) is installed; pass the wheel folder to gpu_check.sh")
    if not builds:
        problems.append("spconv is not installed (no spconv or spconv-cuXXX distribution on sys.path)")
    return problems


def check_env(device: torch.device) -> list[str]:
    """Problems with the spconv build for ``device`` (empty when fine); prints versions.

    On CUDA: exactly one spconv build, the CUDA one, and a submanifold conv runs on the GPU."""
    builds = spconv_builds()
    print(f"spconv/cumm distributions: {builds or 'none'}")
    problems = build_problems(builds, device.type, torch.cuda.is_available())
    info = versions(device) if not problems else {"torch": torch.__version__, "cuda": torch.version.cuda}
    print(f"versions: {json.dumps(info)}")
    if problems:
        return problems
    from kd3d.ops.spconv import sparse_tensor, subm_conv3d

    gen = torch.Generator().manual_seed(0)
    idx = torch.unique(torch.randint(0, 16, (200, 3), generator=gen), dim=0)
    idx = torch.cat([torch.zeros(len(idx), 1, dtype=idx.dtype), idx], 1).int().to(device)
    conv = subm_conv3d(4, 8, indice_key="check").to(device)
    out = conv(sparse_tensor(torch.randn(len(idx), 4, generator=gen).to(device), idx, (16, 16, 16), 1)).features
    if out.device.type != device.type or out.shape != (len(idx), 8) or not torch.isfinite(out).all():
        problems.append(f"a SubMConv3d on {device} gave {tuple(out.shape)} on {out.device} (finite: "
                        f"{bool(torch.isfinite(out).all())}); expected ({len(idx)}, 8) finite on {device}")
    else:
        print(f"spconv SubMConv3d ran on {device}: {tuple(out.shape)}")
    return problems


def cuda_tests(root: Path = ROOT / "tests") -> list[str]:
    """pytest node ids of the tests skipped without CUDA: functions, methods of test classes, or
    every test of a module with such a ``pytestmark``, marked ``skipif(not <...cuda...>)``."""
    ids = []
    for path in sorted(root.rglob("test_*.py")):
        tree = ast.parse(path.read_text(), str(path))
        rel = path.relative_to(root.parent).as_posix()
        module_mark = any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
                          and _mentions_cuda_skip(n.value) for n in tree.body)
        for node in tree.body:
            funcs = [node] if isinstance(node, ast.FunctionDef) else (
                [(f, node.name) for f in node.body if isinstance(f, ast.FunctionDef)]
                if isinstance(node, ast.ClassDef) else [])
            for item in funcs:
                func, cls = item if isinstance(item, tuple) else (item, None)
                if not func.name.startswith("test"):
                    continue
                if module_mark or any(_mentions_cuda_skip(d) for d in func.decorator_list):
                    ids.append(f"{rel}::{cls}::{func.name}" if cls else f"{rel}::{func.name}")
    return ids


def _mentions_cuda_skip(node: ast.AST) -> bool:
    """``pytest.mark.skipif(not <...cuda...>, ...)``: skipped when CUDA is absent (a test that is
    skipped when CUDA is present, e.g. this script's own CPU test, is not one)."""
    if not (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("skipif") and node.args):
        return False
    cond = node.args[0]
    return isinstance(cond, ast.UnaryOp) and isinstance(cond.op, ast.Not) and "cuda" in ast.unparse(cond).lower()


def _commit() -> str | None:
    """The checkout's HEAD, or None where there is no git repository (a copied working tree)."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def table(records: list[dict]) -> str:
    head = f"{'model':<16} {'batch':>5} {'amp':>5} {'points/frame':>12} {'step s (median)':>16} {'peak MiB':>9}"
    rows = [head, "-" * len(head)]
    for r in records:
        peak = f"{r['peak_mem_mib']:.0f}" if r["peak_mem_mib"] is not None else "-"
        rows.append(f"{r['model']:<16} {r['batch_size']:>5} {r['amp']:>5} {r['points_per_frame']:>12} "
                    f"{r['step_s']:>16.4f} {peak:>9}")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--small", action="store_true", help="reduced sizes (allowed with --device cpu only)")
    ap.add_argument("--repeats", type=int, default=3, help="timed steps after the warm-up (median reported)")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {list(MODELS)}")
    ap.add_argument("--out", help="JSON file to write (required unless --check-env / --list-cuda-tests)")
    ap.add_argument("--check-env", action="store_true", help="only check the spconv build and print versions")
    ap.add_argument("--list-cuda-tests", action="store_true", help="only print the CUDA tests' node ids")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if args.list_cuda_tests:
        print("\n".join(cuda_tests()))
        return 0
    if args.check_env:
        problems = check_env(device)
        for p in problems:
            print(f"gpu_step: {p}")
        return 1 if problems else 0
    if not args.out:
        ap.error("--out is required")
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_step: --device cuda but torch.cuda.is_available() is False")
        return 2
    if args.small and device.type != "cpu":
        print("gpu_step: --small is for the CPU test only (figures at reduced sizes are not the benchmark's)")
        return 2
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    unknown = [k for k in keys if k not in MODELS]
    if unknown or args.repeats < 1:
        print(f"gpu_step: --models expects names from {list(MODELS)} (got {unknown}); --repeats >= 1")
        return 2
    records = [r for k in keys for r in time_steps(k, device=device, small=args.small, repeats=args.repeats)]
    result = {"kind": "gpu_step", "device": str(device), "small": args.small, "repeats": args.repeats,
              "warmup": 1, "versions": versions(device), "commit": _commit(),
              "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "records": records}
    print(f"versions: {json.dumps(result['versions'])}")
    print(table(records))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
