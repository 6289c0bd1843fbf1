"""Output folder handling and image encoding shared by the nuScenes and KITTI writers."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np


def prepare_out_dir(out_dir, owned: tuple[str, ...], overwrite: bool) -> Path:
    """Create ``out_dir``; refuse a non-empty one unless ``overwrite``.

    With ``overwrite`` only the entries the generator writes (``owned``, relative names) are
    removed; anything else in the folder is left alone.
    """
    root = Path(out_dir).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"output path {root} exists and is not a directory")
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"output directory {root} is not empty; pass overwrite=True (--overwrite) "
                                  f"to replace the generated data in it")
        for name in owned:
            p = root / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_jpeg(path: Path, image: np.ndarray, quality: int = 90) -> None:
    """(H, W, 3) uint8 RGB -> JPEG."""
    from PIL import Image

    Image.fromarray(image).save(_parent(Path(path)), format="JPEG", quality=quality)


def save_png(path: Path, image: np.ndarray) -> None:
    """(H, W) or (H, W, 3) uint8 -> PNG."""
    from PIL import Image

    Image.fromarray(image).save(_parent(Path(path)), format="PNG")
