"""DistillBEV on the engine's toy dataset (head-input level; FP region from the teacher heatmap).

    kd3d train toy --work-dir work_dirs/toy
    kd3d train distill/toy_distillbev --work-dir work_dirs/toy_distillbev
"""
import dataclasses

from configs.distill.toy_fitnet import CONFIG as BASE
from kd3d.distill import DistillConfig

CONFIG = dataclasses.replace(BASE, name="toy_distillbev", distill=dataclasses.replace(
    BASE.distill, method="distillbev", method_kwargs={"levels": {"bev_neck": [8, 16]}}))
