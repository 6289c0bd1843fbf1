"""PVD's compressed segmenter on nuScenes-lidarseg: sparse UNet at 0.5x channels."""
from kd3d.engine.config import load_base, override

BASE = load_base("nuscenes/seg_unet")

CONFIG = override(BASE, {"name": "nusc_seg_unet_w050", "model.kwargs.width": 0.5})
