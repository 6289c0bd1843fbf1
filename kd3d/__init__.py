"""kd3d: 3D and multi-modal knowledge distillation for driving perception.

Importing ``kd3d`` only exposes the version; subpackages import torch and optional
dependencies lazily.
"""

__version__ = "0.1.0"
