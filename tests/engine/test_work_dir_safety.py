"""A fresh run never destroys an earlier run's work nor its own: used work dirs are refused
unless --overwrite, and pruning removes only the current run's older checkpoints."""
import json

import pytest

from engine_helpers import toy_config
from kd3d.engine.checkpoint import WorkDirInUseError, list_checkpoints, load_checkpoint
from kd3d.engine.trainer import Trainer, run_experiment

LONG = {"optim.max_steps": 8, "runtime.ckpt_interval": 2, "runtime.keep_checkpoints": 2}
SHORT = {**LONG, "optim.max_steps": 4}


def _steps(work):
    return [load_checkpoint(p)["step"] for p in list_checkpoints(work)]


def test_fresh_run_refuses_a_used_work_dir(tmp_path):
    work = tmp_path / "run"
    run_experiment(toy_config(**LONG), work)
    assert _steps(work) == [6, 8]
    with pytest.raises(WorkDirInUseError, match=r"already holds 2 checkpoint\(s\).*ckpt_step00000008\.pth.*"
                                                 r"--resume.*--overwrite"):
        Trainer(toy_config(**SHORT), work)
    assert _steps(work) == [6, 8]  # nothing touched


def test_overwrite_clears_the_old_run_first(tmp_path):
    work = tmp_path / "run"
    run_experiment(toy_config(**LONG), work)
    run_experiment(toy_config(**SHORT), work, overwrite=True)
    # the new run keeps its own last two checkpoints (before: pruning kept the old 6 and 8 and
    # deleted the new run's 2 and 4, leaving the old weights beside the new config)
    assert _steps(work) == [2, 4]
    assert json.loads((work / "config.json").read_text())["optim"]["max_steps"] == 4
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == [
        "ckpt_step00000002.pth", "ckpt_step00000002.pth.sha256", "ckpt_step00000004.pth",
        "ckpt_step00000004.pth.sha256"]


def test_resume_prunes_its_older_files_and_cleans_temp_files(tmp_path):
    work = tmp_path / "run"
    Trainer(toy_config(**LONG), work, stop_after=4).fit()
    stale = work / "checkpoints" / f".ckpt_step00000006.pth.tmp{2 ** 22 + 4321}"  # an interrupted save
    stale.write_bytes(b"partial")
    run_experiment(toy_config(**LONG), work, resume=True)
    assert _steps(work) == [6, 8] and not stale.exists()


def test_cli_refuses_used_work_dir_in_one_line_and_overwrite_flag(tmp_path, capsys):
    from kd3d.cli.main import main
    from kd3d.testing import toy_config_path

    work = tmp_path / "run"
    sets = [f"--set={k}={v}" for k, v in {**SHORT, "runtime.tensorboard": "false", "runtime.progress": "false"}.items()]
    assert main(["train", toy_config_path(), *sets, "--work-dir", str(work)]) == 0
    capsys.readouterr()
    assert main(["train", toy_config_path(), *sets, "--work-dir", str(work)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err and "--resume" in err
    assert main(["train", toy_config_path(), *sets, "--work-dir", str(work), "--overwrite"]) == 0
    assert _steps(work) == [2, 4]
