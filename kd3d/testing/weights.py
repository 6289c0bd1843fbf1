"""Fixed-seed random weights for oracle fixtures (torch only, no other kd3d import, so the mmdet3d
side virtualenv can import it too: ``tools/mmdet3d_fixtures/generate.py``)."""
from __future__ import annotations

import torch


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Random weights and BatchNorm statistics with about unit gain per layer (uniform, fixed
    seed): init values or small weights make the outputs nearly constant over the map, which
    hides layout errors and ties the scores."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            r = torch.rand(t.shape, generator=g)
            if name.endswith("running_var") or (name.endswith("weight") and t.ndim == 1):
                t.copy_(0.5 + r)
            elif t.ndim == 1:  # biases, running means
                t.copy_((r - 0.5) * 0.4)
            else:
                gain = 0.2 if "heatmap" in name else 1.0  # scores not saturated at 1.0 (ties)
                t.copy_((r - 0.5) * gain * (24.0 / (t.numel() / t.shape[0])) ** 0.5)  # std sqrt(2 / fan_in)
