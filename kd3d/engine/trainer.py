"""The training loop: AdamW + one-cycle, grad clipping, AMP (CUDA), DDP, exact resume.

Exact resume: a checkpoint holds model/optimizer/scheduler/scaler states, the step, and every
rank's Python/numpy/torch RNG states. Data order and augmentation depend only on
``(seed, epoch, index)`` (:mod:`kd3d.engine.data`), and the loop restarts inside the epoch at the
saved step, so train k steps -> kill -> resume -> finish gives the weights of an uninterrupted
run (bit-for-bit on CPU).

Launch under DDP with ``torchrun --nproc_per_node N -m kd3d.cli.main train CONFIG`` (gloo on CPU,
NCCL on CUDA); ``data.batch_size`` is per process.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from kd3d.engine import dist
from kd3d.engine.builders import TrainStep, build_dataset, build_optimizer, build_scheduler, build_train_module
from kd3d.engine.checkpoint import (FORMAT, CheckpointError, RunCheckpoints, capture_rng, checkpoint_path,
                                    latest_checkpoint, load_checkpoint, load_state_dict_checked, restore_rng)
from kd3d.engine.config import ConfigError, ExperimentConfig, config_to_dict, config_to_json
from kd3d.engine.data import SeededDataset, make_loader
from kd3d.engine.evaluation import autocast_context, evaluate_results, run_inference
from kd3d.engine.logging import RunLogger, get_logger
from kd3d.engine.resume import check_resume_config, restore_schedule
from kd3d.models.build import build_model


def default_work_dir(cfg: ExperimentConfig) -> Path:
    return Path(cfg.runtime.work_dir or Path("work_dirs") / cfg.name)


def _seed_all(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Trains ``cfg`` in ``work_dir``.

    ``resume``: False (fresh run: a work dir holding checkpoints is refused unless ``overwrite``,
    which deletes them first), True (continue from the ``ckpt_step<N>.pth`` with the largest N;
    fresh start when there is none) or a checkpoint path. Pruning (``runtime.keep_checkpoints``)
    removes only this run's older files (:class:`kd3d.engine.checkpoint.RunCheckpoints`).
    ``stop_after``: stop (after checkpointing) once this global step is reached -- a simulated
    interruption for tests.
    """

    def __init__(self, cfg: ExperimentConfig, work_dir: str | Path | None = None, *, resume: bool | str = False,
                 stop_after: int | None = None, overwrite: bool = False):
        self.cfg = cfg
        self.work_dir = Path(work_dir) if work_dir is not None else default_work_dir(cfg)
        rt = cfg.runtime
        self.device = dist.resolve_device(rt.device)
        self.distributed = dist.init_from_env(self.device)
        self.rank, self.world = dist.rank(), dist.world_size()
        self.log = get_logger(self.work_dir, main=dist.is_main())
        if self.device.type == "cpu":
            threads, why = dist.configure_cpu_threads(rt.threads)
            self.log.info("%d CPU thread(s) per process (%s)", threads, why)
        self.stop_after = stop_after
        if rt.amp not in ("none", "bf16", "fp16"):
            raise ConfigError(f"runtime.amp: expected 'none', 'bf16' or 'fp16', got {rt.amp!r}")
        self.amp = rt.amp if self.device.type == "cuda" else "none"
        if rt.amp != self.amp:
            self.log.info("runtime.amp=%s ignored on %s (autocast is used on CUDA only)", rt.amp, self.device)

        _seed_all(rt.seed)  # identical initial weights on every rank
        self.model = build_model(cfg.model)
        self.module = build_train_module(cfg, self.model).to(self.device)
        _seed_all(rt.seed + 1000 * self.rank)  # per-rank stream for dropout etc.

        d = cfg.data
        self.train_set = SeededDataset(build_dataset(d, d.train_split, train=True), seed=rt.seed)
        self.loader, self.sampler = make_loader(
            self.train_set, batch_size=d.batch_size, shuffle=True, seed=rt.seed, rank=self.rank,
            world_size=self.world, num_workers=d.num_workers, drop_last=True)
        self.steps_per_epoch = len(self.sampler) // d.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(f"data.batch_size={d.batch_size} x {self.world} processes exceeds the "
                              f"{len(self.train_set)} samples of split {d.train_split!r}")
        o = cfg.optim
        self.total_steps = o.max_steps if o.max_steps > 0 else o.epochs * self.steps_per_epoch
        if self.total_steps <= 0:
            raise ConfigError("optim: set optim.epochs or optim.max_steps to a positive value")
        self.optimizer = build_optimizer(o, self.module)
        self.scheduler = build_scheduler(o, self.optimizer, self.total_steps)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == "fp16" else None
        self.step = 0
        self._val = None
        self.metrics: dict[str, float] = {}

        self.ckpts = RunCheckpoints(self.work_dir, rt.keep_checkpoints, self.log)
        ckpt = self._find_resume(resume)
        if ckpt is not None:
            self._load(ckpt)
            self.ckpts.adopt(ckpt, main=dist.is_main())
        else:
            self.ckpts.start_fresh(overwrite=overwrite, main=dist.is_main())
            dist.barrier()
        self.step_module: nn.Module = TrainStep(self.module)
        if self.distributed:
            self.step_module = nn.parallel.DistributedDataParallel(
                self.step_module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=rt.find_unused_parameters)
        self.runlog = RunLogger(self.work_dir, enabled=dist.is_main(), tensorboard=rt.tensorboard,
                                resume_step=self.step if ckpt is not None else None)
        if dist.is_main():
            self.work_dir.mkdir(parents=True, exist_ok=True)
            (self.work_dir / "config.json").write_text(config_to_json(cfg))

    # ------------------------------------------------------------------ checkpoints
    def _find_resume(self, resume) -> Path | None:
        if resume is False or resume is None:
            return None  # a fresh run: RunCheckpoints.start_fresh refuses (or clears) a used work dir
        if resume is True:
            path = latest_checkpoint(self.work_dir)
            if path is None:
                self.log.info("resume: no checkpoint in %s, starting from scratch", self.work_dir)
            return path
        return Path(resume)

    def state_dict(self) -> dict:
        rngs = dist.all_gather_object(capture_rng())
        model_state, teacher = self.ckpts.module_state(self.module)  # a Distiller: its teacher by reference
        state = {
            "format": FORMAT, "step": self.step, "epoch": self.step // self.steps_per_epoch,
            "world_size": self.world, "model": model_state,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rngs, "config": config_to_json(self.cfg), "metrics": dict(self.metrics),
        }
        if teacher is not None:
            state["teacher"] = teacher
        if self.module is not self.model and hasattr(self.module, "student_state_dict"):
            state["student"] = self.module.student_state_dict()
        return state

    def save(self) -> Path:
        state = self.state_dict()  # collective (RNG gather): every rank calls it
        if dist.is_main():
            self.ckpts.save(state, self.step)  # prunes only this run's older files
        dist.barrier()
        return checkpoint_path(self.work_dir, self.step)

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path)
        if state.get("format") != FORMAT:
            raise CheckpointError(f"checkpoint {path}: not a kd3d training checkpoint (format {state.get('format')!r})")
        self.ckpts.load_module(self.module, state, path)  # a recorded teacher must match the one loaded now
        check_resume_config(state.get("config"), self.cfg, path)  # refuse changes a resume cannot honour
        self.optimizer.load_state_dict(state["optimizer"])
        restore_schedule(self.scheduler, state["scheduler"], int(state["step"]), self.total_steps, path, self.log)
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.metrics = dict(state.get("metrics", {}))
        rngs = state["rng"]
        if len(rngs) != self.world:
            self.log.warning("checkpoint %s was written by %d processes, resuming with %d: data order is "
                             "kept, dropout RNG streams are re-derived", path, len(rngs), self.world)
            _seed_all(self.cfg.runtime.seed + 1000 * self.rank + self.step)
        else:
            restore_rng(rngs[self.rank])
        self.log.info("resumed from %s at step %d", path, self.step)

    # ------------------------------------------------------------------ loop
    def _train_step(self, batch) -> tuple[dict[str, float], float]:
        batch = batch.to(self.device)
        set_step = getattr(self.module, "set_step", None)
        if callable(set_step):  # e.g. a Distiller's warm-up of its distillation terms
            set_step(self.step)
        with autocast_context(self.device, self.amp):
            losses = self.step_module(batch)
        if not losses:
            raise RuntimeError(f"{type(self.module).__name__} returned an empty loss dict")
        loss = sum(v.float() for v in losses.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {self.step}: non-finite loss "
                                     f"{ {k: float(v) for k, v in losses.items()} }")
        self.optimizer.zero_grad(set_to_none=True)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        clip = self.cfg.optim.grad_clip
        gnorm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        values = {f"loss/{k}": float(v.detach()) for k, v in losses.items()}
        values["loss"] = float(loss.detach())
        return values, float(gnorm)

    def fit(self) -> dict[str, float]:
        """Train to ``total_steps`` (or ``stop_after``); returns the last evaluation metrics
        (rank 0; ``{}`` on other ranks)."""
        rt = self.cfg.runtime
        bs = self.cfg.data.batch_size
        if dist.is_main():
            self.log.info("training %s: %d steps (%d per epoch), %d process(es), device %s, work dir %s",
                          self.cfg.name, self.total_steps, self.steps_per_epoch, self.world, self.device, self.work_dir)
        bar = None
        if rt.progress and dist.is_main():
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step, desc=self.cfg.name, dynamic_ncols=True)
        self.module.train()
        acc: dict[str, float] = {}
        n_acc, t0 = 0, time.perf_counter()
        stopped = False
        while self.step < self.total_steps and not stopped:
            epoch, offset = divmod(self.step, self.steps_per_epoch)
            self.train_set.set_epoch(epoch)
            self.sampler.set_epoch(epoch)
            self.sampler.set_start(offset * bs)
            for batch in self.loader:
                values, gnorm = self._train_step(batch)
                self.step += 1
                for k, v in values.items():
                    acc[k] = acc.get(k, 0.0) + v
                n_acc += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{values['loss']:.4f}")
                last = self.step >= self.total_steps
                stopped = self.stop_after is not None and self.step >= self.stop_after
                if (rt.log_interval > 0 and self.step % rt.log_interval == 0) or last or stopped:
                    mean = dist.reduce_mean({k: v / n_acc for k, v in acc.items()}, self.device)
                    mean.update(lr=self.optimizer.param_groups[0]["lr"], grad_norm=gnorm, epoch=epoch,
                                sec_per_step=(time.perf_counter() - t0) / n_acc)
                    self.runlog.log("train", self.step, mean)
                    acc, n_acc, t0 = {}, 0, time.perf_counter()
                if (rt.ckpt_interval > 0 and self.step % rt.ckpt_interval == 0) or last or stopped:
                    self.save()
                if rt.eval_interval > 0 and self.step % rt.eval_interval == 0 and not last:
                    self.evaluate()
                if last or stopped:
                    break
        if bar is not None:
            bar.close()
        if self.step >= self.total_steps:
            self.evaluate()
            if dist.is_main():
                (self.work_dir / "metrics.json").write_text(json.dumps(self.metrics, indent=2, sort_keys=True))
        self.runlog.close()
        return self.metrics if dist.is_main() else {}

    # ------------------------------------------------------------------ evaluation
    def _val_loader(self):
        if self._val is None:
            d = self.cfg.data
            ds = build_dataset(d, d.val_split, train=False)
            loader, _ = make_loader(SeededDataset(ds, seed=self.cfg.runtime.seed), batch_size=d.eval_batch_size,
                                    shuffle=False, seed=self.cfg.runtime.seed, rank=self.rank,
                                    world_size=self.world, num_workers=d.num_workers, drop_last=False)
            self._val = (ds, loader)
        return self._val

    def evaluate(self) -> dict[str, float]:
        """Evaluate the (student) model on ``data.val_split``; logs and returns the metrics."""
        if self.cfg.eval.evaluator == "none":
            return {}
        ds, loader = self._val_loader()
        results = run_inference(self.model, loader, self.device, amp=self.amp, progress=self.cfg.runtime.progress)
        metrics = {}
        if dist.is_main():
            out = self.work_dir / "eval" / f"step{self.step:08d}"
            metrics = evaluate_results(results, ds, self.cfg.eval.evaluator, out, **self.cfg.eval.kwargs)
            self.runlog.log("eval", self.step, metrics)
            self.log.info("step %d eval: %s", self.step,
                          ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if math.isfinite(v)))
        self.metrics = dist.broadcast_object(metrics)
        self.module.train()
        return self.metrics


def run_experiment(cfg: ExperimentConfig, work_dir: str | Path | None = None, *, resume: bool | str = False,
                   stop_after: int | None = None, overwrite: bool = False) -> dict[str, float]:
    """Train ``cfg`` (optionally resuming; ``overwrite``: a fresh run may clear a used work dir)
    and return the final evaluation metrics."""
    return Trainer(cfg, work_dir, resume=resume, stop_after=stop_after, overwrite=overwrite).fit()


def evaluate(cfg: ExperimentConfig, checkpoint: str | Path, out_dir: str | Path | None = None, *,
             split: str | None = None) -> dict[str, float]:
    """Run the model of ``cfg`` with weights from ``checkpoint`` on ``split`` (default
    ``data.val_split``), write the result files under ``out_dir`` and return the metrics.
    DDP-aware (predictions are gathered to rank 0); metrics are returned on every rank."""
    device = dist.resolve_device(cfg.runtime.device)
    dist.init_from_env(device)
    if device.type == "cpu":
        dist.configure_cpu_threads(cfg.runtime.threads)
    model = build_model(cfg.model)
    state = load_checkpoint(checkpoint)
    from kd3d.engine.checkpoint import model_state_from

    load_state_dict_checked(model, model_state_from(state, checkpoint), str(checkpoint))
    model.to(device)
    d = cfg.data
    ds = build_dataset(d, split or d.val_split, train=False)
    loader, _ = make_loader(SeededDataset(ds, seed=cfg.runtime.seed), batch_size=d.eval_batch_size, shuffle=False,
                            seed=cfg.runtime.seed, rank=dist.rank(), world_size=dist.world_size(),
                            num_workers=d.num_workers, drop_last=False)
    amp = cfg.runtime.amp if device.type == "cuda" else "none"
    results = run_inference(model, loader, device, amp=amp, progress=cfg.runtime.progress)
    metrics = {}
    if dist.is_main():
        metrics = evaluate_results(results, ds, cfg.eval.evaluator, out_dir, **cfg.eval.kwargs)
    return dist.broadcast_object(metrics)


__all__ = ["Trainer", "run_experiment", "evaluate", "default_work_dir", "config_to_dict"]
