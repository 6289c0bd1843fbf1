"""``kd3d synth`` command line."""
from __future__ import annotations

from pathlib import Path

import pytest

from kd3d.cli.main import main


def test_cli_nuscenes_and_kitti(tmp_path, capsys):
    out = tmp_path / "nusc"
    args = ["synth", "--format", "nuscenes", "--out", str(out), "--scenes", "2", "--samples-per-scene", "1",
            "--sweeps", "0", "--image-size", "32x24", "--seed", "2", "--no-progress"]
    assert main(args) == 0
    assert (out / "v1.0-mini" / "sample.json").is_file()
    assert len(list((out / "samples" / "CAM_BACK").iterdir())) == 2
    assert main(args) == 2
    assert "not empty" in capsys.readouterr().out
    assert main(args + ["--overwrite"]) == 0
    k = tmp_path / "kitti"
    assert main(["synth", "--format", "kitti", "--out", str(k), "--frames", "2", "--image-size", "62x19",
                 "--no-progress"]) == 0
    assert sorted(p.name for p in (k / "training" / "label_2").iterdir()) == ["000000.txt", "000001.txt"]
    assert main(["synth", "--format", "nuscenes", "--out", str(tmp_path / "x"), "--scenes", "11",
                 "--version", "v1.0-mini", "--no-progress"]) == 2
    assert "at most 10 scenes" in capsys.readouterr().out


def test_cli_bad_image_size(tmp_path):
    with pytest.raises(SystemExit):
        main(["synth", "--format", "kitti", "--out", str(Path(tmp_path) / "k"), "--image-size", "big"])
