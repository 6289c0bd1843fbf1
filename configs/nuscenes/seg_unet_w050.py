"""PVD's compressed segmenter on nuScenes-lidarseg: sparse UNet at 0.5x channels."""
from configs.nuscenes.seg_unet import CONFIG as BASE
from kd3d.engine.config import override

CONFIG = override(BASE, {"name": "nusc_seg_unet_w050", "model.kwargs.width": 0.5})
