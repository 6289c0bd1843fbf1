"""Cost columns of the distillation benchmark: parameters, counted MACs per frame, CPU latency per
frame, and the training-step overhead of each method (live and cached teacher).

* **MACs** are counted with forward hooks on real frames (:class:`MacCounter`), per category:

  - ``conv`` (Conv1d/Conv2d/Conv3d): output elements x Cin/groups x kernel taps;
  - ``deconv`` (ConvTranspose*): input elements x Cout/groups x kernel taps (each input scatters);
  - ``linear``: output elements x in_features;
  - ``norm`` (BatchNorm*, optional): one multiply-add per element;
  - ``sparse_conv`` (spconv SubMConv3d / SparseConv3d): the (input site, output site) pairs of
    active sites, summed over kernel offsets, x Cin/groups x Cout, counted from the input and
    output coordinates. This equals spconv's indice pairs (tested: ``indice_pair_num`` for a
    strided conv; for a submanifold conv spconv's CPU build stores one direction of each
    symmetric offset pair and handles the centre tap directly, so its pairs = 2 x sum + sites).
    Inverse convs reuse the pairs of the conv they invert (``indice_dict``);
  - ``view_transform`` (LSS lift-splat, ``bev_pool``): frustum points inside the BEV grid x C
    (each point adds depth x feature to its cell: one MAC per channel).

  Anything else (activations, pooling, sorting, voxelisation, NMS) is not counted.
* **Latency**: forward at batch 1 (eval, no grad), one thread, all models of a suite in one
  process, interleaved repetitions (teacher, student, teacher, ...), median per model.
* **Step overhead**: distilled step / baseline step on the same batches, teacher live and cached
  (:func:`step_overhead`; ``bench/distill_overhead.py`` prints the same measurement as a table).

Results are appended as ``kind == "cost"`` records to the results file, which ``bench/report.py``
reads::

    python3 bench/cost.py --suite synth-camera --data-root datasets/synth/nuscenes --frames 4 --repeats 5
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import runlog  # noqa: E402  (bench/runlog.py)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _sparse_conv_class():
    try:
        from kd3d.ops.spconv import get_spconv

        get_spconv()
        from spconv.pytorch.conv import SparseConvolution
    except ImportError:
        return None
    return SparseConvolution


def _keys(idx: torch.Tensor, shape) -> torch.Tensor:
    """(N, 1 + ndim) ``b, z, y, x`` int coordinates -> (N,) int64 linear keys on ``shape``."""
    key = idx[:, 0].long()
    for d, size in enumerate(shape):
        key = key * int(size) + idx[:, d + 1].long()
    return key


def sparse_pairs_from_coords(in_idx, in_shape, out_idx, *, kernel, stride, padding, dilation, subm) -> int:
    """(input, output) site pairs of a sparse convolution, counted from coordinates.

    in_idx/out_idx: (N, 1 + ndim) int ``b, z, y, x``; an output site ``o`` reads input
    ``o * stride - padding + k * dilation`` for every kernel offset ``k`` (submanifold:
    stride 1, padding ``(kernel // 2) * dilation``, output sites = input sites)."""
    nd = len(in_shape)
    if subm:
        stride, padding = [1] * nd, [(k // 2) * d for k, d in zip(kernel, dilation)]
    in_keys = _keys(in_idx, in_shape)
    shape = torch.tensor(list(in_shape))
    base = out_idx[:, 1:].long() * torch.tensor(list(stride)) - torch.tensor(list(padding))
    total = 0
    for k in itertools.product(*[range(s) for s in kernel]):
        p = base + torch.tensor(k) * torch.tensor(list(dilation))
        ok = ((p >= 0) & (p < shape)).all(1)
        cand = torch.cat([out_idx[ok, :1].long(), p[ok]], 1)
        total += int(torch.isin(_keys(cand, in_shape), in_keys).sum())
    return total


class MacCounter:
    """Context manager: counts multiply-accumulates of every forward of ``model`` inside it.

    ``macs`` maps category -> MACs summed over the forwards (divide by the frames seen);
    ``norm=True`` also counts BatchNorm/LayerNorm elements."""

    def __init__(self, model: nn.Module, *, norm: bool = False):
        self.model, self.norm = model, norm
        self.macs: dict[str, int] = defaultdict(int)
        self._handles = []
        self._sparse = _sparse_conv_class()

    def __enter__(self) -> "MacCounter":
        from kd3d.models.camera.view_transformer import LSSViewTransformer

        for m in self.model.modules():
            hook = None
            if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
                hook = self._deconv
            elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                hook = self._conv
            elif isinstance(m, nn.Linear):
                hook = self._linear
            elif self.norm and isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)):
                hook = self._normh
            elif self._sparse is not None and isinstance(m, self._sparse):
                hook = self._spconv
            elif isinstance(m, LSSViewTransformer):
                hook = self._lss
            if hook is not None:
                self._handles.append(m.register_forward_hook(hook))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    @property
    def total(self) -> int:
        return sum(self.macs.values())

    def _conv(self, m, inputs, out):
        taps = 1
        for k in m.kernel_size:
            taps *= k
        self.macs["conv"] += out.numel() * (m.in_channels // m.groups) * taps

    def _deconv(self, m, inputs, out):
        taps = 1
        for k in m.kernel_size:
            taps *= k
        self.macs["deconv"] += inputs[0].numel() * (m.out_channels // m.groups) * taps

    def _linear(self, m, inputs, out):
        self.macs["linear"] += out.numel() * m.in_features

    def _normh(self, m, inputs, out):
        self.macs["norm"] += out.numel()

    def _spconv(self, m, inputs, out):
        x = inputs[0]
        key = getattr(m, "indice_key", None)
        if not getattr(m, "inverse", False):
            pairs = sparse_pairs_from_coords(x.indices, x.spatial_shape, out.indices, kernel=list(m.kernel_size),
                                             stride=list(m.stride), padding=list(m.padding),
                                             dilation=list(m.dilation), subm=bool(m.subm))
        elif key is not None and key in out.indice_dict:  # inverse: the pairs of the conv it inverts
            pairs = int(out.indice_dict[key].indice_pair_num.sum())
        else:
            raise ValueError(f"MacCounter: inverse sparse conv {type(m).__name__} without indice pairs "
                             f"(indice_key {key!r} not in the output's indice_dict)")
        self.macs["sparse_conv"] += pairs * (m.in_channels // m.groups) * m.out_channels

    def _lss(self, m, inputs, out):
        from kd3d.ops.bev_pool import build_bev_pool_index

        batch = inputs[1]
        nc = batch.cam_intrinsics.shape[1]
        index = build_bev_pool_index(m.geometry(batch), m.grid, num_cams=nc, z_range=m.z_range)
        self.macs["view_transform"] += index.num_points * m.out_channels


def count_macs(model: nn.Module, batches, *, norm: bool = False) -> dict[str, float]:
    """Mean MACs per frame of ``model``'s forward over ``batches`` (eval, no grad), per category
    and ``total``."""
    model.eval()
    frames = 0
    with MacCounter(model, norm=norm) as mc, torch.no_grad():
        for b in batches:
            model(b)
            frames += len(b)
    out = {k: v / frames for k, v in mc.macs.items()}
    out["total"] = sum(out.values())
    return out


def interleaved_latency(models: dict[str, nn.Module], inputs: dict[str, list], *, repeats: int,
                        threads: int = 1) -> dict[str, float]:
    """Median forward milliseconds per frame of every model (eval, no grad) on its own
    ``inputs[name]`` batches, measured side by side: each repetition runs frame i of every model
    in turn, so load changes on a shared machine hit all models alike."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    times: dict[str, list[float]] = {k: [] for k in models}
    n = min(len(v) for v in inputs.values())
    try:
        with torch.no_grad():
            for k, m in models.items():
                m.eval()
                m(inputs[k][0])  # warm-up: allocator, index caches
            for _ in range(repeats):
                for i in range(n):
                    for k, m in models.items():
                        b = inputs[k][i]
                        t0 = time.perf_counter()
                        m(b)
                        times[k].append((time.perf_counter() - t0) * 1e3 / len(b))
    finally:
        torch.set_num_threads(old)
    return {k: statistics.median(v) for k, v in times.items()}


def _time_steps(module, params, batches, repeats: int) -> float:
    """Median seconds of one training step (forward, loss, backward, AdamW) of ``module`` over
    ``repeats`` passes of ``batches``, after one warm-up step."""
    opt = torch.optim.AdamW([p for p in params if p.requires_grad], lr=1e-4)
    module.train()

    def step(batch):
        losses = module(batch)
        if not isinstance(losses, dict):  # a bare model returns ModelOutput
            losses = module.loss(losses, batch)
        total = sum(v for v in losses.values())
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()

    step(batches[0])  # warm-up (index caches, allocator)
    times = []
    for _ in range(repeats):
        for b in batches:
            t0 = time.perf_counter()
            step(b)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def step_overhead(cfg, batches, *, repeats: int) -> dict:
    """Training-step time of ``cfg``'s distilled student vs its student alone on the same
    ``batches``, with the teacher live and read from a filled cache (untrained teacher: the
    timing does not depend on the weights). ``bench/distill_overhead.py`` prints it per method."""
    import dataclasses
    import tempfile

    from kd3d.distill.build import build_distiller
    from kd3d.distill.cache import TeacherCache
    from kd3d.models.build import build_model

    torch.manual_seed(0)
    student = build_model(cfg.model)
    base = _time_steps(student, student.parameters(), batches, repeats)
    dcfg = dataclasses.replace(cfg.distill, teacher_checkpoint="", allow_untrained_teacher=True, cache_dir="")
    torch.manual_seed(0)
    distiller = build_distiller(dcfg, student=build_model(cfg.model))
    live = _time_steps(distiller, distiller.parameters(), batches, repeats)
    with tempfile.TemporaryDirectory() as tmp:
        distiller.teacher_cache = TeacherCache.for_teacher(tmp, distiller.teacher, distiller.terms)
        for b in batches:  # fill once (the first epoch of a cached run)
            distiller.teacher_cache.fill(distiller.teacher, b)
        cached = _time_steps(distiller, distiller.parameters(), batches, repeats)
    return {"step_ms_baseline": base * 1e3, "step_ms_live": live * 1e3, "step_ms_cached": cached * 1e3,
            "overhead_live": live / base, "overhead_cached": cached / base}


def _frames(cfg, n: int, batch_size: int = 1):
    """The first ``n`` val frames of ``cfg`` (val transforms: the teacher cache applies) as batches."""
    from kd3d.engine.builders import build_dataset
    from kd3d.structures.sample import collate

    ds = build_dataset(cfg.data, cfg.data.val_split, train=False)
    idx = list(range(min(n, len(ds))))
    return [collate([ds[i] for i in idx[k:k + batch_size]]) for k in range(0, len(idx), batch_size)]


def measure_suite(name: str, suite: dict, *, frames: int, repeats: int, overhead_batches: int, data_root: str = "",
                  norm: bool = False) -> list[dict]:
    """Cost records of a suite: teacher, baseline student and (overhead only) every method."""
    import distill  # bench/distill.py: suite table and config loading
    from kd3d.engine.config import override
    from kd3d.models.build import build_model

    def cfg_of(config):
        cfg = distill._load(config)
        return override(cfg, {"data.root": data_root}) if data_root and not cfg.data.dataset.startswith("kd3d.testing.") else cfg

    cfgs = {"teacher": cfg_of(suite["teacher"]), "baseline": cfg_of(suite["baseline"])}
    torch.manual_seed(0)
    models = {k: build_model(c.model) for k, c in cfgs.items()}
    data = {k: _frames(c, frames) for k, c in cfgs.items()}
    recs = {k: {"kind": "cost", "suite": name, "arm": k, "config": suite[k], "params": count_params(m),
                "macs": count_macs(m, data[k], norm=norm), "frames": len(data[k])} for k, m in models.items()}
    lat = interleaved_latency(models, data, repeats=repeats)  # side by side, one process, one thread
    for k, r in recs.items():
        r.update(macs_total=r["macs"]["total"], latency_ms=lat[k], latency_threads=1, latency_repeats=repeats)
    out = list(recs.values())
    for label, config in suite["methods"].items():
        cfg = cfg_of(config)
        batches = _frames(cfg, overhead_batches * cfg.data.batch_size, batch_size=cfg.data.batch_size)
        out.append({"kind": "cost", "suite": name, "arm": label, "config": config,
                    **step_overhead(cfg, batches, repeats=max(1, repeats // 2))})
    return out


def main(argv=None) -> int:
    import distill

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", choices=sorted(distill.SUITES), default="toy")
    p.add_argument("--data-root", default="")
    p.add_argument("--frames", type=int, default=4, help="val frames for MACs and latency (batch 1)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved latency repetitions")
    p.add_argument("--overhead-batches", type=int, default=2)
    p.add_argument("--norm", action="store_true", help="also count BatchNorm/LayerNorm elements")
    p.add_argument("--results", default=str(runlog.DEFAULT_RESULTS))
    args = p.parse_args(argv)
    for rec in measure_suite(args.suite, distill.SUITES[args.suite], frames=args.frames, repeats=args.repeats,
                             overhead_batches=args.overhead_batches, data_root=args.data_root, norm=args.norm):
        rec["id"] = f"cost:{args.suite}/{rec['arm']}/{time.time():.0f}"
        runlog.append(args.results, rec)
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rec.items() if k != "macs"}, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
