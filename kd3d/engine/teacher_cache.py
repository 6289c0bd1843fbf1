"""Filling a distillation config's teacher cache before training (engine side of
:mod:`kd3d.distill.cache`: it builds the config's dataset and loader, which live in the engine).

    python3 -m kd3d.engine.teacher_cache CONFIG [--set a.b=v ...] [--split train] [--device cpu]
"""
from __future__ import annotations

import logging

from kd3d.engine.config import ConfigError, ExperimentConfig

log = logging.getLogger(__name__)


def build_cache_for_config(cfg: ExperimentConfig, *, split: str | None = None, device: str = "cpu",
                           progress: bool = False) -> int:
    """Pre-compute the teacher cache of an experiment config (``cfg.distill.cache_dir``) over
    ``split`` (default the train split, with the train-time dataset settings, which must be
    deterministic). Returns the number of entries written; training then replays them."""
    from kd3d.distill.build import build_teacher, teacher_checkpoint_file
    from kd3d.distill.cache import TeacherCache
    from kd3d.distill.distiller import load_checkpoint_into
    from kd3d.distill.specs import build_terms_for_models
    from kd3d.engine.builders import build_dataset
    from kd3d.engine.data import SeededDataset, make_loader
    from kd3d.models.build import build_model

    dc = cfg.distill
    if dc is None or not dc.cache_dir:
        raise ConfigError("distill.cache_dir: the config has no teacher cache folder (build_cache_for_config)")
    if not dc.teacher_checkpoint:
        raise ConfigError("distill.teacher_checkpoint is empty: the cache needs a trained teacher")
    teacher = build_teacher(dc)
    path = teacher_checkpoint_file(dc.teacher_checkpoint)
    load_checkpoint_into(teacher, path)
    log.info("teacher %s: loaded weights from %s", dc.teacher_model, path)
    terms, _ = build_terms_for_models(dc.method, dc.method_kwargs, student=build_model(cfg.model), teacher=teacher)
    cache = TeacherCache.for_teacher(dc.cache_dir, teacher, terms, region_margin=dc.cache_region_margin)
    teacher.to(device).eval()
    d = cfg.data
    ds = SeededDataset(build_dataset(d, split or d.train_split, train=True), seed=cfg.runtime.seed)
    loader, _ = make_loader(ds, batch_size=d.eval_batch_size, shuffle=False, seed=cfg.runtime.seed, rank=0,
                            world_size=1, num_workers=d.num_workers, drop_last=False)
    written = 0
    for batch in loader:
        written += cache.fill(teacher, batch.to(device))
    (log.info if progress else log.debug)("teacher cache %s: %d entries written, %d in total",
                                          cache.root, written, len(cache))
    return written


def main(argv: list[str] | None = None) -> int:
    import argparse

    from kd3d.engine.config import load_config

    parser = argparse.ArgumentParser(description="pre-compute the teacher cache of a distillation config")
    parser.add_argument("config")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--split", default=None)
    parser.add_argument("--device", default="cpu")
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    n = build_cache_for_config(load_config(a.config, a.set), split=a.split, device=a.device, progress=True)
    log.info("%d teacher cache entries written", n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
