"""PVD's compressed segmenter: the sparse UNet teacher at 0.5x channels."""
from configs.synth.seg_teacher import CONFIG as BASE
from kd3d.engine.config import override

CONFIG = override(BASE, {"name": "synth_seg_student_050", "model.kwargs.width": 0.5})
