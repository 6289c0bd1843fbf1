"""DistillBEV on the toy dataset (head-input level; FP region from the teacher heatmap).

    kd3d train kd3d/testing/toy_configs/toy.py --work-dir work_dirs/toy
    kd3d train kd3d/testing/toy_configs/distill_distillbev.py --work-dir work_dirs/toy_distillbev
"""
import dataclasses

from kd3d.testing.toy_configs.distill_fitnet import CONFIG as BASE

CONFIG = dataclasses.replace(BASE, name="toy_distillbev", distill=dataclasses.replace(
    BASE.distill, method="distillbev", method_kwargs={"levels": ["bev_neck"]}))
