"""Distillation smoke test on the toy dataset: FitNet on the neck + CWD on the heatmap,
teacher = ``toy.py`` beside this file (16 channels), student = the same model at 8 channels.

    kd3d train kd3d/testing/toy_configs/toy.py --work-dir work_dirs/toy                  # the teacher
    kd3d train kd3d/testing/toy_configs/distill_fitnet.py --work-dir work_dirs/toy_fitnet  # the student
"""
import dataclasses

from kd3d.distill.config import DistillConfig
from kd3d.engine.config import ModelConfig
from kd3d.testing.toy import TOY_MODEL
from kd3d.testing.toy_configs.toy import CONFIG as TOY

DISTILL = DistillConfig(
    method="generic",
    method_kwargs={"terms": [
        {"name": "fitnet", "loss": "mse", "student_key": "bev_neck", "teacher_key": "bev_neck",
         "weight": 1.0},
        {"name": "cwd", "loss": "cwd", "student_key": "heatmap", "teacher_key": "heatmap", "tau": 4.0, "weight": 1.0},
    ]},
    teacher_model=TOY_MODEL, teacher_kwargs={"channels": 16, "dropout": 0.1},
    teacher_checkpoint="work_dirs/toy",
)

CONFIG = dataclasses.replace(TOY, name="toy_fitnet", model=ModelConfig(name=TOY_MODEL, kwargs={"channels": 8}),
                             distill=DISTILL)
