"""The synthetic-benchmark distillation configs build a Distiller whose channel counts fit the
real models (one no-grad forward of every term on a small batch, untrained teacher)."""
import dataclasses
import math
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
import real_models as rm  # noqa: E402

from kd3d.engine.builders import build_train_module  # noqa: E402
from kd3d.models.build import build_model  # noqa: E402
from kd3d.engine.config import load_config  # noqa: E402

CONFIGS = ["synth/distill_bevdistill", "synth/distill_distillbev", "synth/distill_unidistill_fusion", "synth/distill_pointdistiller_025",
           "synth/distill_pointdistiller", "synth/distill_pointdistiller_pillar", "synth/distill_pvd",
           "synth/distill_unidistill"]


def _batch():
    from kd3d.models.camera.rig import ring_rig

    b = rm.real_batch(0, batch_size=1, num_cams=6)
    intr, c2l = ring_rig(6, (128, 352), hfov_deg=70.0)
    b.images = torch.randn(1, 6, 3, 128, 352, generator=torch.Generator().manual_seed(0))
    b.cam_intrinsics = torch.tensor(intr[None], dtype=torch.float32)
    b.cam2lidar = torch.tensor(c2l[None], dtype=torch.float32)
    b.img_aug = torch.eye(3).repeat(1, 6, 1, 1)
    b.points_label = [torch.as_tensor(np.full(len(b.points[0]), 11), dtype=torch.int64)]
    return b


@pytest.mark.parametrize("name", CONFIGS)
def test_config_channels_fit_the_models(name):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = load_config(name)
    kw = dict(cfg.distill.method_kwargs)
    if cfg.distill.method == "pointdistiller":
        kw["num_items"] = 512  # the channel check does not need the 6000-cell kNN graph (seconds on CPU)
    cfg = dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, teacher_checkpoint="", method_kwargs=kw,
                                                               allow_untrained_teacher=True))
    d = build_train_module(cfg, build_model(cfg.model)).eval()
    with torch.no_grad():
        losses = d(_batch())
    terms = [k for k in losses if k.startswith("distill/")]
    assert len(terms) == len(d.terms)
    assert all(math.isfinite(float(losses[k])) for k in terms)
