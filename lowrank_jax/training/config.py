"""RunSpec: a training run's settings, checked once and typed. The entry points turn the
ml_collections config into one with run_spec(); everything after takes the spec (and
the ModelConfig and Task that check_train_config builds from it)."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from lowrank_jax.config import ModelConfig
from lowrank_jax.tasks import TASKS, Task
from lowrank_jax.tokenizer import MIN_BPE_VOCAB
from lowrank_jax.validation import (check_choice, check_positive_int, is_int, is_number,
                                   require)

WEIGHT_DECAY_ON = ("all", "matrices")
POSITIVE_INTS = ("steps", "batch_size", "log_every", "eval_every", "checkpoint_every",
                 "keep_checkpoints")
TOKENIZERS = ("bytes", "bpe")
MAX_SEED = 2**32 - 1   # what jax.random.key takes
SWITCHES = ("allow_schedule_change", "skip_nonfinite")   # optional, false when absent
MESH_DEFAULTS = {"data": 0, "fsdp": 1}   # optional, and the least each may be (data 0: all)
# Fields a config may leave out (a workdir's config.json from before they existed).
OPTIONAL_FIELDS = (*SWITCHES, "mesh", "cpu_single_thread")
RUN_FIELDS = ("seed", "steps", "batch_size", "log_every", "eval_every", "checkpoint_every",
              "keep_checkpoints", "num_devices")


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """AdamW with warmup-cosine and clipping (training/optim.py)."""
    lr: float
    warmup_steps: int
    steps: int
    end_lr_ratio: float
    weight_decay: float
    weight_decay_on: str
    grad_clip: float


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Where a text run's tokens come from and how evaluation reads them (train/data.py)."""
    path: Any                   # a file or folder, "stdlib", or a tuple of them
    glob: str
    val_fraction: float
    tokenizer: str
    vocab_size: int
    tokenizer_path: str
    cache_dir: str
    eval_windows: int
    eval_batch_size: int


@dataclasses.dataclass(frozen=True)
class MqarSpec:
    """The recall task's rows (lowrank_jax/tasks/mqar.py) and its held-out set."""
    num_pairs: int
    eval_examples: int
    eval_batch_size: int
    IDENTITY: ClassVar[tuple] = ("num_pairs",)   # the fields that decide what is learnt


@dataclasses.dataclass(frozen=True)
class ListOpsSpec:
    """Where LRA's ListOps files are (python -m train.listops writes them) and how many
    held-out examples the model reads at once."""
    path: str
    eval_batch_size: int
    IDENTITY: ClassVar[tuple] = ("path",)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    task: str
    seed: int
    steps: int
    batch_size: int
    log_every: int
    eval_every: int
    checkpoint_every: int
    keep_checkpoints: int
    num_devices: int            # 0: every local device
    model: ModelConfig          # with vocab_from_tokenizer, its vocab_size waits for the tokenizer
    optimizer: OptimizerSpec
    data: DataSpec | None       # the text task's
    options: MqarSpec | ListOpsSpec | None = None   # the config section named as the task
    vocab_from_tokenizer: bool = False
    allow_schedule_change: bool = False
    skip_nonfinite: bool = False     # skip an update with a NaN/inf loss or gradient, not stop
    mesh_data: int = 0               # devices on the data axis (0: num_devices // mesh_fsdp)
    mesh_fsdp: int = 1               # devices each weight is split over along d_model

    def model_for(self, vocab_size: int | None) -> ModelConfig:
        """The model, with the tokenizer's vocabulary where the config left it to it."""
        if self.vocab_from_tokenizer and vocab_size is not None:
            return self.model.replace(vocab_size=vocab_size)
        return self.model


def fields_of(cls, section) -> dict:
    return {f.name: section[f.name] for f in dataclasses.fields(cls)}


def run_spec(config) -> RunSpec:
    """Checks every field a run needs before its data is read (one sentence, UserError, for
    the first bad one) and returns them typed."""
    check_training_fields(config)
    text = config.task == "text"
    data = None
    if text:
        require(config.get("data") is not None, "task 'text' needs the config section data "
                "(see configs/lm_standard.py).")
        check_data_config(config.data)
        data = fields_of(DataSpec, config.data)
        path = data["path"]
        data = DataSpec(**{**data, "path": tuple(path) if isinstance(path, list) else path})
    options = None
    if config.task in TASK_OPTIONS:
        require(config.get(config.task) is not None,
                f"task {config.task!r} needs the config section {config.task} (see its config "
                "in configs/).")
        options = TASK_OPTIONS[config.task](config[config.task])
    model = config.model.to_dict()
    pending = text and model["vocab_size"] == 0
    model_cfg = ModelConfig.from_dict({**model, "vocab_size": 1 if pending
                                       else model["vocab_size"]})
    switches = {name: config.get(name, False) for name in SWITCHES}
    for name, value in switches.items():
        require(isinstance(value, bool), f"{name}={value!r} is not allowed; it must be true or "
                                         "false.")
    mesh = {**MESH_DEFAULTS, **config.get("mesh", {})}
    for name, value in mesh.items():
        require(is_int(value) and value >= MESH_DEFAULTS[name],
                f"mesh.{name}={value!r} is not allowed; mesh has data (an integer >= 0, 0: "
                "every device fsdp leaves) and fsdp (an integer >= 1).")
    return RunSpec(task=config.task, model=model_cfg,
                   optimizer=OptimizerSpec(**fields_of(OptimizerSpec, config)), data=data,
                   options=options,
                   vocab_from_tokenizer=pending, **switches,
                   mesh_data=mesh["data"], mesh_fsdp=mesh["fsdp"],
                   **{name: config[name] for name in RUN_FIELDS})


def check_train_config(spec: RunSpec, data=None) -> tuple[ModelConfig, Task]:
    """(model config, task) of the run; `data` is what the task reads (the text task's
    corpus, made by train/). Raises UserError if the model does not fit the task."""
    model_cfg = spec.model_for(len(data.byte_lengths) if spec.vocab_from_tokenizer and data
                               else None)
    task = TASKS[spec.task](model_cfg, spec.options, data)
    hint = " (0 takes the tokenizer's)" if spec.vocab_from_tokenizer else ""
    require(model_cfg.vocab_size == task.vocab_size,
            f"model.vocab_size={model_cfg.vocab_size} is not allowed for task {spec.task!r}; "
            f"its vocabulary has {task.vocab_size} tokens{hint}.")
    require(model_cfg.max_len >= task.seq_len - 1,
            f"model.max_len={model_cfg.max_len} is not allowed for task {spec.task!r}; "
            f"it must be at least {task.seq_len - 1}.")
    return model_cfg, task


def check_training_fields(config) -> None:
    """The schedule, the optimizer and the task (run_spec checks the data and the model)."""
    for field in POSITIVE_INTS:
        check_positive_int(field, config[field])
    require(is_int(config.seed) and 0 <= config.seed <= MAX_SEED,
            f"seed={config.seed!r} is not allowed; it must be an integer from 0 to {MAX_SEED}.")
    for field in ("warmup_steps", "num_devices"):
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


def check_data_config(data) -> None:
    require(isinstance(data.path, str) and data.path or
            isinstance(data.path, (list, tuple)) and data.path and
            all(isinstance(p, str) and p for p in data.path),
            f"data.path={data.path!r} is not allowed; give a file, a folder, a list of them, "
            "or 'stdlib'.")
    require(isinstance(data.glob, str),
            f"data.glob={data.glob!r} is not allowed; give a pattern such as '**/*.txt', or '' "
            "for every file.")
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


def check_mqar_config(section) -> MqarSpec:
    for name in ("num_pairs", "eval_examples", "eval_batch_size"):
        require(is_int(section.get(name)) and section[name] >= 1,
                f"mqar.{name}={section.get(name)!r} is not allowed; it must be a positive integer.")
    return MqarSpec(**fields_of(MqarSpec, section))


def check_listops_config(section) -> ListOpsSpec:
    require(isinstance(section.get("path"), str) and section["path"],
            f"listops.path={section.get('path')!r} is not allowed; give the folder holding "
            "basic_train.tsv, basic_val.tsv and basic_test.tsv (python -m train.listops "
            "writes them).")
    require(is_int(section.get("eval_batch_size")) and section["eval_batch_size"] >= 1,
            f"listops.eval_batch_size={section.get('eval_batch_size')!r} is not allowed; it "
            "must be a positive integer.")
    return ListOpsSpec(**fields_of(ListOpsSpec, section))


# task -> the check of its options, the config section named as the task
TASK_OPTIONS = {"mqar": check_mqar_config, "listops": check_listops_config}


def check_devices(spec: RunSpec, available: int) -> tuple[int, int]:
    """The mesh (data, fsdp) the run uses: its devices multiply to num_devices, the global
    batch splits evenly over them, and fsdp divides d_model (the axis weights split on)."""
    n = spec.num_devices or available
    require(n <= available, f"num_devices={n} is not allowed; this machine has {available}.")
    fsdp = spec.mesh_fsdp
    require(n % fsdp == 0, f"mesh.fsdp={fsdp} is not allowed on {n} devices; it must divide "
                           "the device count.")
    data = spec.mesh_data or n // fsdp
    require(data * fsdp == n, f"mesh.data={data} is not allowed with mesh.fsdp={fsdp} on {n} "
                              f"devices; data x fsdp must be {n} (or leave data 0).")
    require(spec.model.d_model % fsdp == 0,
            f"mesh.fsdp={fsdp} is not allowed with model.d_model={spec.model.d_model}; it must "
            "divide d_model, along which the weights are split.")
    require(spec.batch_size % n == 0,
            f"batch_size={spec.batch_size} is not allowed on {n} devices; "
            "it must be a multiple of the device count.")
    return data, fsdp

