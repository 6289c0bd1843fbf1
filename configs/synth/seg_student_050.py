"""PVD's compressed segmenter: the sparse UNet teacher at 0.5x channels."""
from kd3d.engine.config import load_base, override

BASE = load_base("synth/seg_teacher")

CONFIG = override(BASE, {"name": "synth_seg_student_050", "model.kwargs.width": 0.5})
