"""CenterPoint voxel (SECOND encoder) on nuScenes trainval, the standard 0.1 m setting (GPU).

Voxel 0.1 x 0.1 x 0.2 m, range +-51.2 m / z -5..3, 10 sweeps, head grid 128 x 128 at 0.8 m.
AdamW lr 1e-3 one-cycle (div 10, pct 0.4), wd 0.01, grad clip 35, 20 epochs, per-GPU batch 4
(8 GPUs in the reference setting; scale lr with the global batch). bf16 autocast on CUDA.

    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/centerpoint_voxel01
"""
from kd3d.engine.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig, OptimConfig, RuntimeConfig

POINT_RANGE = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]

TRAIN_TRANSFORMS = [
    ["GlobalRotScaleTrans", {"rot_range": [-0.3925, 0.3925], "scale_range": [0.95, 1.05]}],
    ["RandomFlip3D", {"p_x": 0.5, "p_y": 0.5}],
    ["PointRangeFilter", {"point_range": POINT_RANGE}],
    ["BoxRangeFilter", {"xy_range": [-51.2, -51.2, 51.2, 51.2]}],
    ["PointShuffle", {}],
]
VAL_TRANSFORMS = [["PointRangeFilter", {"point_range": POINT_RANGE}]]

DATA = DataConfig(
    dataset="nuscenes", root="datasets/nuscenes", version="v1.0-trainval", train_split="train", val_split="val",
    kwargs={"sweeps": 10, "load_images": False, "load_lidarseg": False},
    train_kwargs={"transforms": TRAIN_TRANSFORMS}, val_kwargs={"transforms": VAL_TRANSFORMS},
    batch_size=4, eval_batch_size=4, num_workers=6,
)

CONFIG = ExperimentConfig(
    name="nusc_centerpoint_voxel01",
    data=DATA,
    model=ModelConfig(name="centerpoint_voxel", kwargs={"scale": "nuscenes", "width": 1.0}),
    optim=OptimConfig(lr=1e-3, weight_decay=0.01, pct_start=0.4, div_factor=10.0, grad_clip=35.0, epochs=20),
    runtime=RuntimeConfig(amp="bf16", ckpt_interval=2000, eval_interval=0, log_interval=50),
    eval=EvalConfig(evaluator="nuscenes_det"),
)
