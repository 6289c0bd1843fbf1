"""The engine's smoke test: a tiny BEV detector on an in-memory toy dataset (seconds on a CPU).

    kd3d train toy --work-dir work_dirs/toy
"""
from kd3d.engine.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig, OptimConfig, RuntimeConfig

CONFIG = ExperimentConfig(
    name="toy",
    data=DataConfig(dataset="toy", root="", version="", kwargs={"num_samples": 16}, batch_size=2, num_workers=0),
    model=ModelConfig(name="toy_bev", kwargs={"channels": 16, "dropout": 0.1}),
    optim=OptimConfig(lr=1e-2, weight_decay=0.01, grad_clip=10.0, epochs=8),
    runtime=RuntimeConfig(ckpt_interval=16, eval_interval=0, log_interval=8, progress=False),
    eval=EvalConfig(evaluator="toy"),
)
