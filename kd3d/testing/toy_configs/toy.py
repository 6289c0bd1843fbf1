"""The engine's smoke test: a tiny BEV detector on an in-memory toy dataset (seconds on a CPU).

    kd3d train kd3d/testing/toy_configs/toy.py --work-dir work_dirs/toy

Test scaffolding (:mod:`kd3d.testing.toy`), not a shipped experiment: tests find this file with
``kd3d.testing.toy_config_path("toy")``.
"""
from kd3d.engine.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig, OptimConfig, RuntimeConfig
from kd3d.testing.toy import TOY_DATASET, TOY_EVALUATOR, TOY_MODEL

CONFIG = ExperimentConfig(
    name="toy",
    data=DataConfig(dataset=TOY_DATASET, root="", version="", kwargs={"num_samples": 16}, batch_size=2,
                    num_workers=0),
    model=ModelConfig(name=TOY_MODEL, kwargs={"channels": 16, "dropout": 0.1}),
    optim=OptimConfig(lr=1e-2, weight_decay=0.01, grad_clip=10.0, epochs=8),
    runtime=RuntimeConfig(ckpt_interval=16, eval_interval=0, log_interval=8, progress=False),
    eval=EvalConfig(evaluator=TOY_EVALUATOR),
)
