"""kd3d experiment configs: each module defines ``CONFIG`` (an ``ExperimentConfig``).

Load one with ``kd3d.engine.load_config("synth/lidar_teacher")`` or ``kd3d train synth/lidar_teacher``.
"""
