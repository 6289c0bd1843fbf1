"""Config loading, typed ``--set`` overrides and their errors."""
import dataclasses

import pytest

from kd3d.engine.config import (ConfigError, ExperimentConfig, apply_overrides, config_to_dict, load_config,
                                override)
from kd3d.testing import toy_config_path

TOY = toy_config_path()


def test_load_by_name_and_path():
    a = load_config("synth/lidar_teacher")
    b = load_config(str(load_config.__globals__["configs_dir"]() / "synth" / "lidar_teacher.py"))
    assert isinstance(a, ExperimentConfig) and a == b
    assert a.model.name == "centerpoint_voxel"
    assert load_config(TOY).model.name == "kd3d.testing.toy:make_toy_model"


def test_typed_overrides():
    cfg = load_config(TOY, ["optim.lr=3e-3", "optim.epochs=5", "runtime.progress=false",
                              "optim.betas=(0.8, 0.9)", "model.kwargs.channels=8", "model.kwargs.new_key=abc",
                              "data.kwargs={'num_samples': 4}", "name=variant"])
    assert cfg.optim.lr == 3e-3 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.epochs == 5 and isinstance(cfg.optim.epochs, int)
    assert cfg.runtime.progress is False
    assert cfg.optim.betas == (0.8, 0.9)
    assert cfg.model.kwargs == {"channels": 8, "dropout": 0.1, "new_key": "abc"}
    assert cfg.data.kwargs == {"num_samples": 4}
    assert cfg.name == "variant"
    base = load_config(TOY)
    assert base.optim.lr == 1e-2, "overrides must not mutate the base config"


@pytest.mark.parametrize("item, words", [
    ("optim.lrr=1", ["unknown key 'lrr'", "OptimConfig", "'lr'"]),
    ("optim.epochs=two", ["optim.epochs", "int"]),
    ("runtime.progress=maybe", ["boolean"]),
    ("optim.lr", ["KEY=VALUE"]),
    ("model.kwargs.channels.x=1", ["cannot set"]),
])
def test_override_errors(item, words):
    with pytest.raises(ConfigError) as err:
        apply_overrides(load_config(TOY), [item])
    for w in words:
        assert w in str(err.value)


def test_variant_with_override_and_replace():
    base = load_config(TOY)
    v = override(base, {"model.kwargs.channels": 4, "optim.max_steps": 3})
    v2 = dataclasses.replace(base, optim=dataclasses.replace(base.optim, max_steps=3),
                             model=dataclasses.replace(base.model, kwargs={**base.model.kwargs, "channels": 4}))
    assert v == v2
    d = config_to_dict(v)
    assert d["model"]["kwargs"]["channels"] == 4 and d["optim"]["betas"] == [0.9, 0.99]


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config("does/not/exist")
    p = tmp_path / "empty_cfg.py"
    p.write_text("X = 1\n")
    with pytest.raises(ConfigError, match="neither CONFIG nor config"):
        load_config(str(p))
    p.write_text("CONFIG = {'name': 'x'}\n")
    with pytest.raises(ConfigError, match="must be an ExperimentConfig"):
        load_config(str(p))
    p.write_text("from kd3d.engine.config import ExperimentConfig\ndef config():\n    return ExperimentConfig(name='fn')\n")
    assert load_config(str(p)).name == "fn"


def test_cli_reports_config_errors(capsys, tmp_path):
    from kd3d.cli.main import main

    assert main(["train", TOY, "--set", "optim.lrr=1", "--work-dir", str(tmp_path)]) == 2
    assert "unknown key 'lrr'" in capsys.readouterr().err
    assert main(["test", TOY, "--checkpoint", str(tmp_path / "none.pth")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["train", "no/such/config"]) == 2


@pytest.mark.parametrize("item, words", [
    ("optim.max_steps=2.7", ["optim.max_steps=2.7", "expected an integer"]),  # was truncated to 2
    ("optim.epochs=True", ["expected an integer"]),
    ("optim=3", ["'optim' is a section (OptimConfig)", "optim.lr"]),
    ("data=abc", ["'data' is a section (DataConfig)"]),
    ("optim.lr=fast", ["optim.lr", "expected a number"]),
    ("model.kwargs.channels=abc", ["model.kwargs.channels", "expected a number"]),
])
def test_set_rejects_wrong_types(item, words):
    with pytest.raises(ConfigError) as err:
        apply_overrides(load_config(TOY), [item])
    for w in words:
        assert w in str(err.value)


def test_set_numbers_are_never_truncated():
    cfg = load_config(TOY, ["optim.max_steps=1e3", "model.kwargs.channels=2.5", "optim.lr=1"])
    assert cfg.optim.max_steps == 1000 and type(cfg.optim.max_steps) is int
    assert cfg.model.kwargs["channels"] == 2.5  # a free-form int entry takes a float as given
    assert cfg.optim.lr == 1.0 and type(cfg.optim.lr) is float


def test_set_optional_fields():
    cfg = load_config("synth/distill_bevdistill", ["distill.max_ratio=none", "distill.warmup_steps=5"])
    assert cfg.distill.max_ratio is None and cfg.distill.warmup_steps == 5
    assert load_config("synth/distill_bevdistill", ["distill.max_ratio=0.5"]).distill.max_ratio == 0.5
    with pytest.raises(ConfigError, match="expected a number"):
        load_config("synth/distill_bevdistill", ["distill.max_ratio=big"])
    assert load_config("synth/distill_bevdistill", ["distill=None"]).distill is None


def test_every_shipped_config_round_trips_through_json(tmp_path):
    """config.json (what a run saves) loads back into the same typed config, distill included."""
    import json

    from kd3d.distill.config import DistillConfig
    from kd3d.engine.config import config_from_dict, config_to_json
    from kd3d.engine.config_files import list_configs

    names = list_configs()
    assert "synth/lidar_teacher" in names and "synth/distill_bevdistill" in names and len(names) >= 30
    for name in names:
        cfg = load_config(name)
        text = config_to_json(cfg)
        (tmp_path / "config.json").write_text(text)
        back = load_config(tmp_path / "config.json")
        assert config_to_json(back) == text, name
        assert isinstance(back.optim.betas, tuple)
        if cfg.distill is not None:
            assert isinstance(back.distill, DistillConfig) and back.distill == cfg.distill, name
        assert back.model == cfg.model and back.optim == cfg.optim and back.runtime == cfg.runtime, name
    with pytest.raises(ConfigError, match=r"x.json.*unknown field\(s\) \['lrr'\] in OptimConfig"):
        config_from_dict({"optim": {"lrr": 1}}, source="x.json")
    with pytest.raises(ConfigError, match=r"x.json.optim.max_steps: expected int"):
        config_from_dict(json.loads('{"optim": {"max_steps": "ten"}}'), source="x.json")
