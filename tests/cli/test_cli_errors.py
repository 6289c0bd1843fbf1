"""Every CLI error is one line on stderr naming the file/field (``--debug``: the traceback);
``kd3d eval`` checks ``--out`` first; ``kd3d train --help`` says how to list fields and cap steps;
``kd3d config list/show``."""
import json

import pytest

from kd3d.cli.main import main


def _one_error_line(capsys, command: str) -> str:
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip() and " INFO " not in ln and " WARNING " not in ln]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"kd3d {command}: error: "), lines[0]
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    return lines[0]


def test_data_errors_are_one_line(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["info", "--dataroot", str(missing), "--version", "v1.0-mini"]) == 2
    assert str(missing) in _one_error_line(capsys, "info")
    assert main(["vis", "scene", "--dataroot", str(missing), "--out", str(tmp_path / "s.png")]) == 2
    assert str(missing) in _one_error_line(capsys, "vis")
    assert main(["train", "synth/lidar_teacher", "--set", f"data.root={missing}", "--set", "optim.max_steps=1",
                 "--work-dir", str(tmp_path / "w")]) == 2
    assert str(missing) in _one_error_line(capsys, "train")


def test_debug_shows_the_traceback(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["--debug", "info", "--dataroot", str(missing)]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    assert main(["info", "--dataroot", str(missing), "--debug"]) == 2  # after the command too
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_missing_teacher_is_one_line_with_the_path_rule(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "synth/distill_pointdistiller", "--set", "optim.max_steps=1"]) == 2
    line = _one_error_line(capsys, "train")
    assert "distill.teacher_checkpoint='work_dirs/synth_lidar_teacher'" in line
    assert str(tmp_path / "work_dirs" / "synth_lidar_teacher") in line and "train the teacher first" in line


def test_long_messages_are_capped(tmp_path, capsys):
    from kd3d.cli import main as cli_main

    line = cli_main._one_line(ValueError("checkpoint x does not match:\n  missing keys: " + "k, " * 20000))
    assert "\n" not in line and len(line) < 700 and "--debug shows all" in line


def test_eval_checks_out_before_computing(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    # the ground truth folder does not exist either: the --out error must come first
    assert main(["eval", "kitti", "--gt-dir", str(tmp_path / "no_gt"), "--result-dir", str(tmp_path),
                 "--out", str(blocker / "metrics")]) == 2
    line = _one_error_line(capsys, "eval")
    assert f"--out {blocker / 'metrics'}: not a writable folder" in line


def test_train_help_says_how_to_list_fields_and_cap_steps(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "kd3d config show CONFIG" in out and "--set optim.max_steps=N" in out


def test_config_list_and_show(capsys):
    assert main(["config", "list"]) == 0
    names = capsys.readouterr().out.splitlines()
    assert "synth/lidar_teacher" in names and "synth/distill_bevdistill" in names
    assert main(["config", "show", "synth/distill_bevdistill", "--set", "optim.max_steps=7"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["optim"]["max_steps"] == 7 and shown["distill"]["method"] == "bevdistill"
    assert set(shown["runtime"]) >= {"seed", "ckpt_interval", "work_dir"}  # every field, defaults included
    assert main(["config", "show", "synth/nope"]) == 2
    assert "no config named 'synth/nope'" in _one_error_line(capsys, "config")
