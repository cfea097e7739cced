"""Checks a training config (ml_collections) and builds the ModelConfig and Task it names."""
from __future__ import annotations

from lowrank_jax.config import ModelConfig
from lowrank_jax.tasks import TASKS, Task
from lowrank_jax.tokenizer import MIN_BPE_VOCAB
from lowrank_jax.validation import check_choice, is_int, is_number, require

WEIGHT_DECAY_ON = ("all", "matrices")
POSITIVE_INTS = ("steps", "batch_size", "log_every", "eval_every", "checkpoint_every",
                 "keep_checkpoints")


TOKENIZERS = ("bytes", "bpe")


def check_train_config(config, data=None) -> tuple[ModelConfig, Task]:
    """Raises UserError with one sentence for the first bad field; returns (model config,
    task). `data` is what the task reads (the text task's corpus), made by train/."""
    check_training_fields(config)
    model_cfg = model_config(config, None if data is None else len(data.byte_lengths))
    task = TASKS[config.task](model_cfg, data)
    hint = " (0 takes the tokenizer's)" if config.task == "text" else ""
    require(model_cfg.vocab_size == task.vocab_size,
            f"model.vocab_size={model_cfg.vocab_size} is not allowed for task {config.task!r}; "
            f"its vocabulary has {task.vocab_size} tokens{hint}.")
    require(model_cfg.max_len >= task.seq_len - 1,
            f"model.max_len={model_cfg.max_len} is not allowed for task {config.task!r}; "
            f"it must be at least {task.seq_len - 1}.")
    return model_cfg, task


def model_config(config, vocab_size: int | None = None) -> ModelConfig:
    """The text task's model.vocab_size 0 means the tokenizer's, `vocab_size`; until the
    tokenizer is known, every other field is still checked."""
    model = config.model.to_dict()
    if model["vocab_size"] == 0 and config.task == "text":
        model["vocab_size"] = vocab_size or 1
    return ModelConfig.from_dict(model)


def check_training_fields(config) -> None:
    """Every field a run needs before its data is read: the schedule, the optimizer, the
    task and its data settings, and the model (but for a vocabulary still to come)."""
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
    if config.task == "text":
        check_data_config(config.data)
    model_config(config)


def check_data_config(data) -> None:
    require(isinstance(data.path, str) and data.path or
            isinstance(data.path, (list, tuple)) and data.path and
            all(isinstance(p, str) and p for p in data.path),
            f"data.path={data.path!r} is not allowed; give a file, a folder, a list of them, "
            "or 'stdlib'.")
    require(isinstance(data.glob, str) and data.glob,
            f"data.glob={data.glob!r} is not allowed; give a pattern such as '**/*.txt'.")
    require(is_number(data.val_fraction) and 0 < data.val_fraction < 1,
            f"data.val_fraction={data.val_fraction!r} is not allowed; it must be in (0, 1).")
    check_choice("data.tokenizer", data.tokenizer, TOKENIZERS)
    require(not data.tokenizer_path or data.tokenizer == "bpe",
            f"data.tokenizer_path={data.tokenizer_path!r} is read only with data.tokenizer='bpe'.")
    require(data.tokenizer != "bpe" or data.tokenizer_path or
            is_int(data.vocab_size) and data.vocab_size >= MIN_BPE_VOCAB,
            f"data.vocab_size={data.vocab_size!r} is not allowed; a BPE tokenizer trained here "
            f"needs at least {MIN_BPE_VOCAB} (256 bytes plus merges).")
    require(is_int(data.eval_windows) and data.eval_windows >= 0,
            f"data.eval_windows={data.eval_windows!r} is not allowed; it must be an integer >= 0 "
            "(0: the whole validation split).")
    require(is_int(data.eval_batch_size) and data.eval_batch_size >= 1,
            f"data.eval_batch_size={data.eval_batch_size!r} is not allowed; it must be a positive "
            "integer.")


def check_devices(config, available: int) -> int:
    """The number of devices the run uses; the global batch must split evenly over them."""
    n = config.num_devices or available
    require(n <= available, f"num_devices={n} is not allowed; this machine has {available}.")
    require(config.batch_size % n == 0,
            f"batch_size={config.batch_size} is not allowed on {n} devices; "
            "it must be a multiple of the device count.")
    return n

