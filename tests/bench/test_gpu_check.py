"""bench/gpu_check.sh and bench/gpu_step.py without a GPU: the whole script in ``--device cpu
--small`` mode (wheel pieces joined, checksummed and installed; the step JSON's fields), skipped
CUDA tests failing the check, the CUDA-test finder and the spconv build rules."""
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import gpu_step  # noqa: E402  (bench/gpu_step.py)

SCRIPT = ROOT / "bench" / "gpu_check.sh"


def _env(tmp_path, **extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KD3D_SITE": str(tmp_path / "site"), **extra}
    env.pop("OUT", None)
    return env


def _probe_wheel(folder: Path) -> bytes:
    """A minimal pure-Python wheel (package ``kd3dprobe``), returned as bytes."""
    path = folder / "probe.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("kd3dprobe/__init__.py", "VALUE = 7\n")
        z.writestr("kd3dprobe-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: kd3dprobe\nVersion: 0.1\n")
        z.writestr("kd3dprobe-0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                   "Tag: py3-none-any\n")
        z.writestr("kd3dprobe-0.1.dist-info/RECORD", "")
    data = path.read_bytes()
    path.unlink()
    return data


def _split_wheel(folder: Path, data: bytes, *, corrupt: bool = False) -> None:
    """The wheel in two pieces (as `split` names them) and a SHA256SUMS of the whole wheel."""
    name = "kd3dprobe-0.1-py3-none-any.whl"
    half = len(data) // 2
    (folder / f"{name}.part-aa").write_bytes(data[:half])
    (folder / f"{name}.part-ab").write_bytes(data[half:-1] if corrupt else data[half:])
    (folder / "SHA256SUMS").write_text(f"{hashlib.sha256(data).hexdigest()}  {name}\n")


def test_whole_script_cpu_small(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _split_wheel(wheels, _probe_wheel(tmp_path))
    out = tmp_path / "res" / "gpu_step.json"
    run = subprocess.run(["bash", str(SCRIPT), str(wheels), "--device", "cpu", "--small", "--out", str(out)],
                         cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "joined 2 pieces into kd3dprobe-0.1-py3-none-any.whl" in run.stdout
    assert (tmp_path / "site" / "kd3dprobe" / "__init__.py").read_text() == "VALUE = 7\n"
    assert "tests/ops/test_spconv.py::test_sparse_conv_cuda_matches_cpu" in run.stdout
    assert "(not run: --device cpu)" in run.stdout

    res = json.loads(out.read_text())
    assert (res["kind"], res["device"], res["small"], res["repeats"], res["warmup"]) == ("gpu_step", "cpu", True, 3, 1)
    assert "commit" in res
    assert set(res["versions"]) == {"python", "torch", "cuda", "gpu", "spconv"}
    assert res["versions"]["torch"] == torch.__version__ and res["versions"]["gpu"] is None
    recs = res["records"]
    assert [(r["model"], r["batch_size"]) for r in recs] == [
        ("lidar_teacher", 1), ("lidar_teacher", 2), ("camera_student", 1), ("camera_student", 2)]
    for r in recs:
        assert r["config"] == {"lidar_teacher": "nuscenes/centerpoint_voxel01",
                               "camera_student": "nuscenes/lss_r50_256x704"}[r["model"]]
        assert len(r["step_s_all"]) == 3 and r["step_s"] == statistics.median(r["step_s_all"]) > 0
        assert r["peak_mem_mib"] is None and r["amp"] == "none"  # no autocast and no CUDA memory on CPU
        assert r["params"] > 0 and r["points_per_frame"] > 0
        camera = r["model"] == "camera_student"
        assert r["cameras"] == (2 if camera else 0) and r["sweeps"] == 2
        assert r["image_size"] == ([128, 224] if camera else None)
    # the table lists every record
    assert sum(line.startswith(("lidar_teacher", "camera_student")) for line in run.stdout.splitlines()) == 4


def test_cut_wheel_piece_is_refused(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _split_wheel(wheels, _probe_wheel(tmp_path), corrupt=True)
    run = subprocess.run(["bash", str(SCRIPT), str(wheels), "--device", "cpu", "--small"], cwd=tmp_path,
                         env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "does not match SHA256SUMS" in run.stderr
    assert not (tmp_path / "site").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the failure without CUDA")
def test_cuda_tests_skipped_fail_the_check(tmp_path):
    run = subprocess.run(["bash", str(SCRIPT), "--device", "cpu", "--small", "--out", str(tmp_path / "x.json")],
                         cwd=tmp_path, env=_env(tmp_path, KD3D_GPU_CHECK_RUN_TESTS="1"), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "CUDA tests were skipped for lack of CUDA" in run.stderr
    skipped = re.search(r"(\d+) skipped", run.stdout)  # the CUDA-only tests (their number grows with the suite)
    assert skipped and int(skipped.group(1)) >= 3 and not (tmp_path / "x.json").exists(), run.stdout


def test_cuda_test_finder(tmp_path):
    tests = tmp_path / "tests" / "sub"
    tests.mkdir(parents=True)
    (tests / "test_a.py").write_text(
        "import pytest, torch\n"
        "@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')\n"
        "def test_gpu(): pass\n"
        "@pytest.mark.skipif(True, reason='other')\n"
        "def test_other(): pass\n"
        "def test_plain(): pass\n"
        "class TestK:\n"
        "    @pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA not available')\n"
        "    def test_n(self): pass\n"
        "    @pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA present: checks the CPU path')\n"
        "    def test_m(self): pass\n")
    (tests / "test_b.py").write_text(
        "import pytest, torch\npytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU')\n"
        "def test_x(): pass\ndef helper(): pass\n")
    assert gpu_step.cuda_tests(tmp_path / "tests") == [
        "tests/sub/test_a.py::test_gpu", "tests/sub/test_a.py::TestK::test_n", "tests/sub/test_b.py::test_x"]
    found = gpu_step.cuda_tests()
    assert not any("test_gpu_check" in t for t in found)  # this file's CPU-only test would recurse
    assert {"tests/ops/test_spconv.py::test_sparse_conv_cuda_matches_cpu",
            "tests/ops/test_bev_pool.py::test_cuda_matches_cpu",
            "tests/models/test_camera_student.py::test_cuda_matches_cpu"} <= set(found)


def test_spconv_build_rules():
    cpu, cu = {"spconv": "2.3.8", "cumm": "0.7.11"}, {"spconv-cu126": "2.3.8", "cumm-cu126": "0.7.11"}
    assert gpu_step.build_problems(cpu, "cpu", False) == []
    assert gpu_step.build_problems(cu, "cuda", True) == []
    both = gpu_step.build_problems({**cpu, **cu}, "cuda", True)
    assert len(both) == 1 and "both spconv's CPU build (spconv) and a CUDA build (spconv-cu126)" in both[0]
    only_cpu = gpu_step.build_problems(cpu, "cuda", True)
    assert len(only_cpu) == 1 and "no spconv CUDA build" in only_cpu[0]
    assert any("not installed" in p for p in gpu_step.build_problems({}, "cpu", False))
    assert any("is_available() is False" in p for p in gpu_step.build_problems(cu, "cuda", False))
