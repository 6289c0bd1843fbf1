#!/bin/bash
# Partial build of mmcv 2.1.0's compiled ops for kd3d's mmdet3d oracle (side venv only, never CI):
# only hard + dynamic voxelization (CPU), the one compiled mmcv op mmdet3d 1.4's CenterPoint
# (voxel and pillar) calls on CPU: Det3DDataPreprocessor -> VoxelizationByGridShape ->
# mmcv._ext.hard_voxelize_forward. Sparse convs are spconv 2, circle NMS is numba, so nothing
# else is needed. Why partial: the full mmcv CPU build (77 C++ files) ran ~2.5 min per file at
# -j1 on the loaded 2-core machine (about 3 hours); these 3 files take ~2 minutes.
# Sources, compiled unmodified from the PyPI sdist mmcv-2.1.0.tar.gz
# (sha256 d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f):
#   mmcv/ops/csrc/pytorch/voxelization.cpp      (entry points, device dispatch)
#   mmcv/ops/csrc/pytorch/cpu/voxelization.cpp  (CPU kernels, registered for kCPU)
#   headers mmcv/ops/csrc/common/pytorch_cpp_helper.hpp, pytorch_device_registry.hpp
# plus vox_pybind.cpp, written below (kd3d's own: exports the two functions under mmcv's names).
# Usage: KD3D=/path/to/kd3d bash build_mmcv_voxelization.sh  (~2 min; the side venv of
# tools/mmdet3d_fixtures/generate.py must exist).
# Against the side venv's torch (2.13.0 CPU), g++ 12, -O2, one job, nice 10.
# The .so goes into the venv's mmcv package as mmcv/_ext_vox*.so and mmcv/_ext.py (the stub)
# resolves hard_voxelize_forward / dynamic_voxelize_forward to it; any other op still raises.
set -euo pipefail
SIDE=/work/side
VENV=$SIDE/mmdet3d-venv
SRC=$SIDE/src/mmcv-2.1.0
OUT=$SIDE/mmcv_vox
. $VENV/bin/activate
mkdir -p $SIDE/src
if [ ! -d $SRC ]; then
  (cd $SIDE/src && pip download mmcv==2.1.0 --no-deps --no-binary :all: -d . && tar xzf mmcv-2.1.0.tar.gz)
fi
echo "d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f  $SIDE/src/mmcv-2.1.0.tar.gz" | sha256sum -c
CSRC=$SRC/mmcv/ops/csrc
mkdir -p $OUT
cat > $OUT/vox_pybind.cpp <<'CPP'
// kd3d side-venv build: Python bindings for the two voxelization entry points of mmcv 2.1.0's
// ops/csrc/pytorch/voxelization.cpp (CPU kernels in ops/csrc/pytorch/cpu/voxelization.cpp).
// Written for kd3d; exported under the names mmcv's Python wrappers look up in mmcv._ext.
#include <torch/extension.h>

void hard_voxelize_forward(const at::Tensor &points, const at::Tensor &voxel_size,
                           const at::Tensor &coors_range, at::Tensor &voxels, at::Tensor &coors,
                           at::Tensor &num_points_per_voxel, at::Tensor &voxel_num,
                           const int max_points, const int max_voxels, const int NDim,
                           const bool deterministic);

void dynamic_voxelize_forward(const at::Tensor &points, const at::Tensor &voxel_size,
                              const at::Tensor &coors_range, at::Tensor &coors, const int NDim);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mmcv 2.1.0 hard / dynamic voxelization (CPU), partial build for kd3d's oracle";
  m.def("hard_voxelize_forward", &hard_voxelize_forward, "mmcv hard voxelization (CPU)",
        py::arg("points"), py::arg("voxel_size"), py::arg("coors_range"), py::arg("voxels"),
        py::arg("coors"), py::arg("num_points_per_voxel"), py::arg("voxel_num"),
        py::arg("max_points"), py::arg("max_voxels"), py::arg("NDim") = 3,
        py::arg("deterministic") = true);
  m.def("dynamic_voxelize_forward", &dynamic_voxelize_forward, "mmcv dynamic voxelization (CPU)",
        py::arg("points"), py::arg("voxel_size"), py::arg("coors_range"), py::arg("coors"),
        py::arg("NDim") = 3);
}
CPP
cat > $OUT/setup.py <<PY
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

setup(name="mmcv_ext_vox", ext_modules=[CppExtension(
    "_ext_vox",
    ["$OUT/vox_pybind.cpp", "$CSRC/pytorch/voxelization.cpp", "$CSRC/pytorch/cpu/voxelization.cpp"],
    include_dirs=["$CSRC/common"], define_macros=[("MMCV_WITH_CPU", None)],
    extra_compile_args=["-O2"])], cmdclass={"build_ext": BuildExtension.with_options(use_ninja=False)})
PY
cd $OUT
MAX_JOBS=1 nice -n 10 python setup.py build_ext --inplace
MMCV=$(python -c "import mmcv, os; print(os.path.dirname(mmcv.__file__))")
cp $OUT/_ext_vox*.so $MMCV/
cat > $MMCV/_ext.py <<'PY'
"""mmcv._ext for kd3d's side venv (mmcv-lite + a partial build, see /work/side/build_vox.sh).

hard_voxelize_forward and dynamic_voxelize_forward are mmcv 2.1.0's own compiled CPU ops
(mmcv/ops/csrc/pytorch/{,cpu/}voxelization.cpp); any other op raises when called.
"""
from mmcv._ext_vox import dynamic_voxelize_forward, hard_voxelize_forward  # noqa: F401

BUILT = ("hard_voxelize_forward", "dynamic_voxelize_forward")


def __getattr__(name):
    def _missing(*a, **k):
        raise NotImplementedError(f"mmcv._ext.{name}: not built in this side venv (only {BUILT})")
    return _missing
PY
python -c "import mmcv._ext as e; print('mmcv._ext:', e.hard_voxelize_forward.__module__, e.hard_voxelize_forward.__doc__.splitlines()[0])"
python ${KD3D:-/work/main}/tools/mmdet3d_fixtures/check_mmcv_voxelization.py
echo BUILD_VOX_DONE
