"""Restricted unpickler for mmdet3d-style info ``.pkl`` files.

Info files written by other toolboxes are pickles; ``pickle.load`` on an untrusted pickle can run
arbitrary code. kd3d never calls it: :func:`load_pkl` resolves only builtin containers and
scalars and numpy arrays / dtypes / scalars. Any other global (a class from mmdet3d, ``os.system``,
``collections.OrderedDict``, ...) raises :class:`UnsafePickleError` naming the file and the global.

kd3d itself writes JSON / npz, never pickle. Whole info files (points, sweeps, cameras, boxes)
are read as datasets by :mod:`kd3d.data.infos` through this unpickler.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

# (module, name) pairs a pickle may reference. Builtins: containers and scalar types only.
_BUILTINS = {
    "dict", "list", "tuple", "set", "frozenset", "str", "int", "float", "bool", "complex",
    "bytes", "bytearray", "slice", "range",
}
_NUMPY_MODULES = ("numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                  "numpy._core.numeric")
_NUMPY_NAMES = {"ndarray", "dtype", "_reconstruct", "scalar", "_frombuffer"}
# Protocol-2 pickles written by Python 3 encode ``bytes`` (numpy array buffers) through
# ``_codecs.encode(str, 'latin1')``; that function only converts a str to bytes.
_EXTRA = {("_codecs", "encode")}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle referenced a global outside kd3d's allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str):
        allowed = (
            (module == "builtins" and name in _BUILTINS)
            or (module in _NUMPY_MODULES and name in _NUMPY_NAMES)
            or (module.startswith("numpy.dtypes") and name.endswith("DType"))
            or (module, name) in _EXTRA
        )
        if not allowed:
            raise UnsafePickleError(
                f"{self._source}: refuses to unpickle global '{module}.{name}'; only builtin containers "
                "and numpy arrays/dtypes are allowed in info files (convert the file to plain dicts/lists/"
                "arrays, or build a kd3d index with `kd3d create-data`)"
            )
        return super().find_class(module, name)


def loads_pkl(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with the restricted unpickler (see module docstring)."""
    return _RestrictedUnpickler(io.BytesIO(data), source).load()


def load_pkl(path: str | Path) -> Any:
    """Load an info ``.pkl`` with the restricted unpickler.

    Raises FileNotFoundError when missing, :class:`UnsafePickleError` for a disallowed global,
    ValueError for a truncated / corrupt file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"info file not found: {path}")
    try:
        return loads_pkl(path.read_bytes(), str(path))
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from exc


def sample_tokens_from_infos(obj: Any, source: str = "<infos>") -> list[str]:
    """Sample tokens listed by an mmdet3d nuScenes info object.

    Accepts the v0.x layout ``{'infos': [{'token': ...}, ...], 'metadata': ...}``, the v1.x layout
    ``{'data_list': [{'token': ...}], 'metainfo': ...}`` and a bare list of info dicts.
    """
    if isinstance(obj, dict):
        for key in ("infos", "data_list"):
            if key in obj:
                obj = obj[key]
                break
        else:
            raise ValueError(f"{source}: expected a dict with 'infos' or 'data_list', got keys {sorted(obj)[:10]}")
    if not isinstance(obj, list):
        raise ValueError(f"{source}: expected a list of info dicts, got {type(obj).__name__}")
    tokens = []
    for i, info in enumerate(obj):
        if not isinstance(info, dict) or not isinstance(info.get("token", info.get("sample_token")), str):
            raise ValueError(f"{source}: info {i} has no string field 'token'")
        tokens.append(info.get("token", info.get("sample_token")))
    return tokens
