"""What may change between a run and its resumption, and how a changed schedule length resumes.

Resuming restores the model, optimiser (with its learning rates), scheduler and RNG states from
the checkpoint, so most config changes would silently not take effect. :func:`check_resume_config`
compares the config a checkpoint was trained with (its ``config`` entry) with the one given now:

* fields in :data:`FREE_ON_RESUME` (logging, checkpoint/eval intervals, data location, workers,
  evaluation) take effect and may differ;
* the schedule length (``optim.max_steps`` / ``optim.epochs``) is honoured explicitly by
  :func:`restore_schedule`: the one-cycle schedule is rebuilt for the new length and continues at
  the checkpoint's step (logged, with the learning-rate jump);
* any other difference (``optim.lr``, the model, the data pipeline, the distillation section...)
  is refused with a :class:`~kd3d.errors.ConfigError` listing the fields, so the run's saved
  ``config.json`` never records a value the run did not use.
"""
from __future__ import annotations

import json
import warnings

from kd3d.engine.config import ConfigError, ExperimentConfig, config_to_dict

# Dotted prefixes of fields that may differ on resume (they only steer logging, I/O, evaluation).
FREE_ON_RESUME = (
    "name", "runtime.work_dir", "runtime.device", "runtime.ckpt_interval", "runtime.eval_interval",
    "runtime.log_interval", "runtime.keep_checkpoints", "runtime.progress", "runtime.tensorboard",
    "runtime.threads",
    "data.root", "data.num_workers", "data.eval_batch_size", "data.val_split", "data.val_kwargs", "eval",
    "distill.cache_dir",
)
SCHEDULE_FIELDS = ("optim.max_steps", "optim.epochs")


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _free(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") for p in FREE_ON_RESUME + SCHEDULE_FIELDS)


def config_changes(saved: dict, current: dict) -> list[tuple[str, object, object]]:
    """``(field, saved value, current value)`` for every leaf that differs (JSON forms)."""
    a, b = _flatten(saved), _flatten(current)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def check_resume_config(saved_json, cfg: ExperimentConfig, source) -> None:
    """Raise :class:`ConfigError` when ``cfg`` differs from the checkpoint's config (JSON text or
    dict; ``None`` for an old checkpoint without one: nothing to compare) in a field that a resumed
    run could not honour."""
    if saved_json is None:
        return
    saved = json.loads(saved_json) if isinstance(saved_json, str) else saved_json
    current = json.loads(json.dumps(config_to_dict(cfg)))  # tuples -> lists, as saved
    refused = [(k, old, new) for k, old, new in config_changes(saved, current) if not _free(k)]
    if refused:
        shown = ", ".join(f"{k} ({old!r} -> {new!r})" for k, old, new in refused[:6])
        more = f" and {len(refused) - 6} more" if len(refused) > 6 else ""
        raise ConfigError(
            f"resume from {source}: the config differs from the one this checkpoint was trained with in "
            f"{shown}{more}; resuming restores the optimiser, scheduler and weights, so the change would "
            "not take effect. Resume without it (kd3d train --resume --work-dir DIR uses the run's saved "
            "config) or start a fresh run in another work dir")


def restore_schedule(scheduler, saved_state: dict, step: int, total_steps: int, source, log) -> None:
    """Load the scheduler state, or, when the checkpoint's schedule length differs from
    ``total_steps``, keep the freshly built scheduler (for ``total_steps``) and move it to
    ``step``: the learning rate continues on the new schedule's curve from there."""
    old_total = saved_state.get("total_steps")
    if old_total is None or int(old_total) == int(total_steps):
        scheduler.load_state_dict(saved_state)
        return
    if step > total_steps:
        raise ConfigError(f"resume from {source}: the checkpoint is at step {step}, past the new schedule length "
                          f"of {total_steps} steps (optim.max_steps / optim.epochs); give a length >= {step}")
    old_lr = scheduler.optimizer.param_groups[0]["lr"]
    if step > 0:
        scheduler.last_epoch = step - 1
        with warnings.catch_warnings():  # no optimizer.step() yet in this process: expected here
            warnings.simplefilter("ignore", UserWarning)
            scheduler.step()
    log.warning("resume from %s: schedule length changed from %d to %d steps; the one-cycle LR schedule is "
                "rebuilt for %d steps and continues at step %d (lr %.3g -> %.3g). The result differs from an "
                "uninterrupted %d-step run", source, int(old_total), total_steps, total_steps, step, old_lr,
                scheduler.optimizer.param_groups[0]["lr"], total_steps)
