"""kd3d: 3D and multi-modal knowledge distillation for driving perception."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
CONFIG_PACKAGES = ["kd3d.configs"] + [f"kd3d.configs.{p}" for p in find_packages(str(HERE / "configs"))]
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "kd3d" / "__init__.py").read_text()).group(1)

setup(
    name="kd3d",
    version=VERSION,
    description="3D and multi-modal knowledge distillation for driving perception (BEVDistill, "
    "DistillBEV, UniDistill, PointDistiller, PVD) on shared spconv backbones",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The experiment configs stay in the top-level configs/ folder of the checkout and ship inside
    # the package as kd3d/configs/ (kd3d.engine.config_files finds either).
    packages=find_packages(include=["kd3d", "kd3d.*"]) + CONFIG_PACKAGES,
    package_dir={"kd3d.configs": "configs"},
    install_requires=[
        # torch is pinned by tools/setup.sh (torch==2.13.0); any 2.x satisfies the package itself.
        "torch>=2.1",
        "numpy>=1.24,<2",  # nuscenes-devkit 1.2 requires numpy<2
        "nuscenes-devkit>=1.1.11",
        "pyquaternion>=0.9.9",
        "shapely>=2.0",
        "pillow>=9",
        "tqdm>=4.60",
        "tensorboard>=2.12",
        "matplotlib>=3.6",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-timeout>=2"],
        "vis": ["open3d>=0.18", "pandas<3"],  # open3d imports pandas; pandas 3 needs numpy>=2
        # spconv comes from exactly one of these (its CPU and CUDA builds install into the same
        # package folder and must not be installed together): `pip install "kd3d[cpu]"` or the
        # extra matching the machine's CUDA, e.g. `pip install "kd3d[cu121]"`.
        "cpu": ["spconv>=2.3.6"],
        "cu120": ["spconv-cu120>=2.3.6"],
        "cu121": ["spconv-cu121>=2.3.6"],
        "cu124": ["spconv-cu124>=2.3.6"],
        "cu126": ["spconv-cu126>=2.3.6"],
    },
    entry_points={"console_scripts": ["kd3d=kd3d.cli.main:main"]},
)
