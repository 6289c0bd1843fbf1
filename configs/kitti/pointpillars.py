"""PointPillars-style detector (pillar CenterPoint) on KITTI: the teacher of PointDistiller's
PointPillars setting. Range x 0..69.12, y +-39.68, z -3..1 m, 0.16 m pillars (432 x 496),
classes Car / Pedestrian / Cyclist, evaluated with kd3d's official-protocol KITTI evaluation
(R11/R40, 2D/BEV/3D/AOS). AdamW lr 2e-3 one-cycle, 80 epochs, per-GPU batch 6 (GPU)."""
from kd3d.engine.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig, OptimConfig, RuntimeConfig
from kd3d.structures.classes import KITTI_CLASSES

POINT_RANGE = [0.0, -39.68, -3.0, 69.12, 39.68, 1.0]

TRAIN_TRANSFORMS = [
    ["GlobalRotScaleTrans", {"rot_range": [-0.785, 0.785], "scale_range": [0.95, 1.05]}],
    ["RandomFlip3D", {"p_x": 0.0, "p_y": 0.5}],
    ["PointRangeFilter", {"point_range": POINT_RANGE}],
    ["BoxRangeFilter", {"xy_range": [0.0, -39.68, 69.12, 39.68]}],
    ["PointShuffle", {}],
]
VAL_TRANSFORMS = [["PointRangeFilter", {"point_range": POINT_RANGE}]]

CONFIG = ExperimentConfig(
    name="kitti_pointpillars",
    data=DataConfig(dataset="kitti", root="datasets/kitti", version="", train_split="train", val_split="val",
                    kwargs={"load_images": False}, train_kwargs={"transforms": TRAIN_TRANSFORMS},
                    val_kwargs={"transforms": VAL_TRANSFORMS}, batch_size=6, eval_batch_size=6, num_workers=4),
    model=ModelConfig(name="centerpoint_pillar", kwargs={
        "scale": "nuscenes", "class_names": list(KITTI_CLASSES), "point_range": POINT_RANGE,
        "pillar_size": [0.16, 0.16], "max_pillars": 16000, "max_points_per_pillar": 32}),
    optim=OptimConfig(lr=2e-3, weight_decay=0.01, grad_clip=10.0, epochs=80),
    runtime=RuntimeConfig(amp="bf16", ckpt_interval=2000, log_interval=50),
    eval=EvalConfig(evaluator="kitti"),
)
