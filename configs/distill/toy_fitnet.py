"""Distillation smoke test on the engine's toy dataset: FitNet on the neck + CWD on the heatmap,
teacher = ``configs/toy.py`` (16 channels), student = the same model at 8 channels.

    kd3d train toy --work-dir work_dirs/toy                       # the teacher
    kd3d train distill/toy_fitnet --work-dir work_dirs/toy_fitnet  # the student (latest teacher ckpt)
"""
import dataclasses

from configs.toy import CONFIG as TOY
from kd3d.distill import DistillConfig
from kd3d.engine.config import ModelConfig

DISTILL = DistillConfig(
    method="generic",
    method_kwargs={"terms": [
        {"name": "fitnet", "loss": "mse", "student_key": "bev_neck", "teacher_key": "bev_neck",
         "student_channels": 8, "teacher_channels": 16, "weight": 1.0},
        {"name": "cwd", "loss": "cwd", "student_key": "heatmap", "teacher_key": "heatmap", "tau": 4.0, "weight": 1.0},
    ]},
    teacher_model="toy_bev", teacher_kwargs={"channels": 16, "dropout": 0.1},
    teacher_checkpoint="work_dirs/toy",
)

CONFIG = dataclasses.replace(TOY, name="toy_fitnet", model=ModelConfig(name="toy_bev", kwargs={"channels": 8}),
                             distill=DISTILL)
