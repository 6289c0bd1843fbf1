"""Step 1 of the mmdet3d oracle fixtures (run with kd3d's environment, from the repo root):

    python tools/mmdet3d_fixtures/make_students.py

Builds two kd3d students with random weights (fixed seed) -- a plain-encoder voxel
CenterPoint and an 11-feature pillar CenterPoint, both at width 0.25 and the synthetic scale
-- and exports each with ``kd3d convert export`` into ``tests/fixtures/mmdet3d/students/``
(the tests rebuild the same kd3d weights from the seed: :func:`kd3d.testing.weights.randomize`). Step 2 (``generate.py``, side venv with mmdet3d)
loads the exported files in mmdet3d with strict=True and records mmdet3d's outputs.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "mmdet3d" / "students"

RANGE = [-25.6, -25.6, -5.0, 25.6, 25.6, 3.0]  # a 32 x 32 head grid keeps the fixtures small
STUDENTS = {
    "voxel": {"name": "centerpoint_voxel", "kwargs": {"scale": "synthetic", "width": 0.25, "with_attrs": False,
                                                      "point_range": RANGE}},
    "pillar": {"name": "centerpoint_pillar",
               "kwargs": {"scale": "synthetic", "width": 0.25, "pfn": "mmdet3d", "with_attrs": False,
                          "point_range": RANGE}},
}


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from kd3d.interop.export import export_student
    from kd3d.models.build import ModelConfig, build_model
    from kd3d.testing.weights import randomize

    OUT.mkdir(parents=True, exist_ok=True)
    for i, (kind, cfg) in enumerate(STUDENTS.items()):
        model = build_model(ModelConfig(name=cfg["name"], kwargs=cfg["kwargs"]))
        randomize(model, 100 + i)
        model.eval()
        (OUT / f"{kind}_kd3d.model.json").write_text(json.dumps(cfg, indent=2) + "\n")
        rep = export_student(model, OUT, name=kind)
        print(kind, rep["checkpoint"], rep["config"], rep["keys"], "tensors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
