"""CPU-sized pillar detector on synthetic KITTI (``kd3d synth --format kitti``): 0.32 m pillars
over x 0..69.12, y +-39.68 m, Car / Pedestrian / Cyclist, official-protocol KITTI evaluation."""
from kd3d.engine.config import load_base, override

BASE = load_base("kitti/pointpillars")

CONFIG = override(BASE, {
    "name": "synth_kitti_pillar", "data.root": "datasets/synth/kitti", "data.batch_size": 2,
    "data.eval_batch_size": 2, "data.num_workers": 0, "runtime.amp": "none", "runtime.ckpt_interval": 50,
    "runtime.log_interval": 10, "optim.epochs": 20,
    "model.kwargs": {**BASE.model.kwargs, "pillar_size": [0.32, 0.32], "scale": "synthetic", "max_pillars": 12000},
})
