"""The model registry beside the models (kd3d/models/build.py) and the lazy name tables
(kd3d/registry.py): registered names, ``"module:callable"`` paths, one-line errors, and no test
scaffolding in the product's tables."""
import subprocess
import sys
import typing

import pytest
import torch

from kd3d.errors import ConfigError
from kd3d.models.build import MODELS, ModelConfig, as_grid, build_model
from kd3d.testing.toy import TOY_MODEL, ToyBEVDetector


def test_model_by_module_path_without_registration():
    assert not any("testing" in t for t in MODELS.values())
    model = build_model(ModelConfig(name=TOY_MODEL, kwargs={"channels": 4, "extent": 4.0, "cell": 1.0}))
    assert isinstance(model, ToyBEVDetector)
    assert model.conv1.out_channels == 4 and model.bev_grid.shape == (8, 8)  # 2 * 4 m / 1 m cells


def test_registered_model_by_name():
    model = build_model(ModelConfig(name="centerpoint_voxel", kwargs={"scale": "synthetic", "width": 0.25}))
    assert isinstance(model, torch.nn.Module) and callable(model.feature_specs)


@pytest.mark.parametrize("name, words", [
    ("toy_bev", ["model.name", "unknown name 'toy_bev'", "centerpoint_voxel", "module:callable"]),
    ("kd3d.testing.toy:no_such_factory", ["model.name", "cannot import kd3d.testing.toy:no_such_factory"]),
    ("no_such_pkg.mod:f", ["model.name", "cannot import no_such_pkg.mod:f"]),
    ("kd3d.testing.toy:", ["model.name", "expected 'package.module:callable'"]),
])
def test_unknown_model_errors_name_the_field(name, words):
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig(name=name))
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_bad_kwargs_name_the_model():
    with pytest.raises(ConfigError, match=r"model.kwargs for 'kd3d.testing.toy:make_toy_model'.*wrong"):
        build_model(ModelConfig(name=TOY_MODEL, kwargs={"wrong": 1}))


def test_as_grid_forms():
    g = as_grid([-4, -2, 4, 2, 0.5, 0.25])
    assert (g.xmin, g.ymin, g.xmax, g.ymax, g.dx, g.dy) == (-4.0, -2.0, 4.0, 2.0, 0.5, 0.25)
    assert as_grid(g) is g and as_grid(None) is None
    with pytest.raises(ConfigError, match=r"model.kwargs.grid: expected \[xmin, ymin, xmax, ymax, dx, dy\]"):
        as_grid([0, 1, 2])


def test_product_tables_hold_no_test_scaffolding():
    from kd3d.engine.builders import DATASETS
    from kd3d.engine.evaluation import EVALUATORS

    for table in (MODELS, DATASETS, EVALUATORS):
        assert not [k for k, v in table.items() if "toy" in k or "kd3d.testing" in v], table


def test_config_types_are_light_and_typed():
    """ExperimentConfig.distill is typed, and the config module imports neither torch nor the
    engine's heavy parts (it pulls ModelConfig / DistillConfig from torch-free modules)."""
    from kd3d.distill.config import DistillConfig
    from kd3d.engine.config import ExperimentConfig

    hints = typing.get_type_hints(ExperimentConfig)
    assert hints["distill"] == typing.Optional[DistillConfig]
    assert hints["model"] is ModelConfig
    code = "import sys, kd3d.engine.config, kd3d.distill.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_engine_builds_a_distiller_only_from_a_distill_config():
    from kd3d.distill.config import DistillConfig
    from kd3d.distill.distiller import Distiller
    from kd3d.engine.builders import build_train_module
    from kd3d.engine.config import ExperimentConfig

    student = build_model(ModelConfig(name=TOY_MODEL, kwargs={"channels": 4}))
    dc = DistillConfig(method="generic", teacher_model=TOY_MODEL, teacher_kwargs={"channels": 8},
                       allow_untrained_teacher=True,
                       method_kwargs={"terms": [{"name": "kd", "loss": "cwd", "student_key": "heatmap",
                                                 "teacher_key": "heatmap", "tau": 4.0}]})
    module = build_train_module(ExperimentConfig(distill=dc), student)
    assert isinstance(module, Distiller) and module.student is student
    assert not hasattr(DistillConfig, "build")

    class HandMade:  # the old duck-typed ``.build(student=...)`` hook is gone
        def build(self, *, student):
            return student

    with pytest.raises(ConfigError, match="distill: expected a kd3d.distill.DistillConfig"):
        build_train_module(ExperimentConfig(distill=HandMade()), student)
