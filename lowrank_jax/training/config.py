"""Checks a training config (ml_collections) and builds the ModelConfig and Task it names."""
from __future__ import annotations

from lowrank_jax.config import ModelConfig
from lowrank_jax.tasks import TASKS, Task
from lowrank_jax.validation import check_choice, is_int, is_number, require

WEIGHT_DECAY_ON = ("all", "matrices")
POSITIVE_INTS = ("steps", "batch_size", "log_every", "eval_every", "checkpoint_every",
                 "keep_checkpoints")


def check_train_config(config) -> tuple[ModelConfig, Task]:
    """Raises ConfigError with one sentence for the first bad field; returns (model config, task)."""
    for field in POSITIVE_INTS:
        value = config[field]
        require(is_int(value) and value >= 1,
                f"{field}={value!r} is not allowed; it must be a positive integer.")
    for field in ("seed", "warmup_steps", "num_devices"):
        require(is_int(config[field]) and config[field] >= 0,
                f"{field}={config[field]!r} is not allowed; it must be an integer >= 0.")
    require(config.warmup_steps < config.steps,
            f"warmup_steps={config.warmup_steps} is not allowed with steps={config.steps}; "
            "warmup must end before the last step.")
    require(is_number(config.lr) and config.lr > 0,
            f"lr={config.lr!r} is not allowed; it must be a positive number.")
    require(is_number(config.end_lr_ratio) and 0 <= config.end_lr_ratio <= 1,
            f"end_lr_ratio={config.end_lr_ratio!r} is not allowed; it must be in [0, 1].")
    require(is_number(config.weight_decay) and config.weight_decay >= 0,
            f"weight_decay={config.weight_decay!r} is not allowed; it must be a number >= 0.")
    check_choice("weight_decay_on", config.weight_decay_on, WEIGHT_DECAY_ON)
    require(is_number(config.grad_clip) and config.grad_clip > 0,
            f"grad_clip={config.grad_clip!r} is not allowed; it must be a positive number.")
    check_choice("task", config.task, tuple(TASKS))
    model_cfg = ModelConfig.from_dict(config.model.to_dict())
    task = TASKS[config.task](model_cfg)
    require(model_cfg.vocab_size == task.vocab_size,
            f"model.vocab_size={model_cfg.vocab_size} is not allowed for task {config.task!r}; "
            f"its vocabulary has {task.vocab_size} tokens.")
    require(model_cfg.max_len >= task.seq_len - 1,
            f"model.max_len={model_cfg.max_len} is not allowed for task {config.task!r}; "
            f"it must be at least {task.seq_len - 1}.")
    return model_cfg, task


def check_devices(config, available: int) -> int:
    """The number of devices the run uses; the global batch must split evenly over them."""
    n = config.num_devices or available
    require(n <= available, f"num_devices={n} is not allowed; this machine has {available}.")
    require(config.batch_size % n == 0,
            f"batch_size={config.batch_size} is not allowed on {n} devices; "
            "it must be a multiple of the device count.")
    return n

