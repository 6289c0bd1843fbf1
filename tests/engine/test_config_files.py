"""Configs are found by name in the checkout or in an installed wheel, never from the current
directory first, and load without a ``configs`` package on ``sys.path``."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kd3d.engine.config import ConfigError, load_config
from kd3d.engine.config_files import configs_dir, list_configs

REPO = Path(__file__).resolve().parents[2]

# A decoy: what an unrelated project's configs/ folder in the current directory might hold.
DECOY = "from kd3d.engine.config import ExperimentConfig\nCONFIG = ExperimentConfig(name='decoy')\n"

PROBE = """
import sys
from kd3d.engine.config import load_config
from kd3d.engine.config_files import configs_dir
cfg = load_config("synth/distill_bevdistill")          # loads its bases by name
assert cfg.name != "decoy" and cfg.distill.teacher_model == "centerpoint_voxel", cfg.name
assert load_config("synth/lidar_teacher").name == "synth_lidar_teacher"
assert "configs" not in sys.modules and not any(m.startswith("configs.") for m in sys.modules)
print(configs_dir())
"""


def _decoy_cwd(tmp_path: Path) -> Path:
    cwd = tmp_path / "cwd"
    (cwd / "configs" / "synth").mkdir(parents=True)
    for f in ("configs/__init__.py", "configs/synth/__init__.py"):
        (cwd / f).write_text("")
    (cwd / "configs/synth/lidar_teacher.py").write_text(DECOY)
    (cwd / "configs/synth/distill_bevdistill.py").write_text(DECOY)
    return cwd


def test_name_is_not_resolved_from_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(_decoy_cwd(tmp_path))
    assert load_config("synth/lidar_teacher").name == "synth_lidar_teacher"
    assert load_config("synth.lidar_teacher").name == "synth_lidar_teacher"
    # an explicit path still works, relative to the current directory
    assert load_config("configs/synth/lidar_teacher.py").name == "decoy"
    assert "configs" not in sys.modules


def test_unknown_name_suggests_close_names():
    with pytest.raises(ConfigError, match=r"no config named 'lidar_teacher'.*did you mean .*synth/lidar_teacher"):
        load_config("lidar_teacher")


def test_variants_load_their_base_by_name():
    text = "\n".join(p.read_text() for p in configs_dir().rglob("*.py"))
    assert "from configs" not in text and "import configs" not in text
    student = load_config("synth/lidar_student_050")
    assert student.model.kwargs["width"] == 0.5 and student.data == load_config("synth/lidar_teacher").data


def test_config_cycle_is_reported(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text(f"from kd3d.engine.config import load_base\nCONFIG = load_base({str(b)!r})\n")
    b.write_text(f"from kd3d.engine.config import load_base\nCONFIG = load_base({str(a)!r})\n")
    with pytest.raises(ConfigError, match="loads itself through its bases"):
        load_config(a)


def test_wheel_ships_the_configs_and_an_install_loads_them(tmp_path):
    """Build a wheel from a copy of the sources, install it into a bare folder and load configs
    from a directory without configs/ (and from one with a decoy configs/)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "kd3d", src / "kd3d", ignore=ignore)
    shutil.copytree(REPO / "configs", src / "configs", ignore=ignore)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("kd3d-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n[len("kd3d/configs/"):-3] for n in names if n.startswith("kd3d/configs/") and n.endswith(".py")}
    assert set(list_configs()) <= shipped
    assert not any(n.startswith("configs/") for n in names)
    requires = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    spconv_lines = [ln for ln in requires.splitlines() if ln.startswith("Requires-Dist: spconv")]
    assert spconv_lines and all("extra ==" in ln for ln in spconv_lines), spconv_lines  # extras only

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(site)}
    for cwd in (tmp_path / "empty", _decoy_cwd(tmp_path)):
        cwd.mkdir(exist_ok=True)
        out = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert Path(out.stdout.strip()) == site / "kd3d" / "configs"


def test_missing_spconv_gives_a_one_line_install_hint():
    code = ("import sys; sys.modules['spconv'] = None\n"
            "import kd3d.ops.spconv as s\n"
            "try:\n    s.get_spconv()\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and 'kd3d[cpu]' in lines[0] and "cu121" in lines[0], out.stdout + out.stderr
