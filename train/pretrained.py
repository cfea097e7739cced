"""Reading a trained run back from its workdir: config, tokenizer, task and parameters."""
from __future__ import annotations

import os
from typing import Any, NamedTuple

import ml_collections

from lowrank_jax.config import ModelConfig
from lowrank_jax.model import GPT, model_for_task
from lowrank_jax.tasks import Task
from lowrank_jax.training.config import check_train_config, run_spec
from lowrank_jax.training.optim import make_optimizer
from lowrank_jax.training.state import abstract_state, make_mesh
from train.checkpoint import CHECKPOINT_DIR, Checkpointer, check_vocab
from train.data import load_task_data, read_tokenizer, tokenizer_path
from train.errors import UserError


class Run(NamedTuple):
    config: ml_collections.ConfigDict
    model_cfg: ModelConfig
    task: Task | None       # None for a text run loaded without its data
    params: Any
    step: int
    tokenizer: Any          # None for tasks with their own vocabulary

    @property
    def num_classes(self) -> int:
        """0 for a language model, else the classes its Classifier tells apart."""
        return self.task.num_classes if self.task else 0

    def model(self):
        return model_for_task(self.model_cfg, self.num_classes)


def load_latest(workdir: str, data_overrides: dict | None = None, with_data: bool = True) -> Run:
    """The newest checkpoint in `workdir` with everything needed to use it, on one device.
    `data_overrides` changes how a text task reads its data (e.g. eval_windows), not which.
    `with_data=False` (generation) reads the workdir alone: the corpus may be gone."""
    if not os.path.isdir(os.path.join(workdir, CHECKPOINT_DIR)):
        raise UserError(f"workdir {workdir!r} holds no checkpoint; train one first with "
                        f"python -m train --workdir {workdir}.")
    ckpt = Checkpointer(workdir, keep=1, read_only=True)
    try:
        step, meta = ckpt.newest(ckpt.read_meta)
        if step is None:
            raise UserError(f"workdir {workdir!r} holds no finished checkpoint; train one first.")
        config = ml_collections.ConfigDict(meta["config"])
        if data_overrides:
            if config.get("data") is None:
                raise UserError(f"workdir {workdir!r} holds a run of task {config.task!r}, "
                                f"which reads no text corpus; leave out "
                                f"{', '.join(data_overrides)}.")
            config.data.update(data_overrides)
        spec = run_spec(config)
        if with_data:
            tokenizer, data = load_task_data(spec, workdir, resuming=True)
            model_cfg, task = check_train_config(spec, data)
        else:
            tokenizer, task = without_data(spec, workdir)
            model_cfg = spec.model_for(tokenizer and tokenizer.vocab_size)
        check_vocab(meta, model_cfg.vocab_size)
        # Parameter shapes do not depend on the length the model is traced at.
        model = model_for_task(model_cfg, task.num_classes if task else 0)
        abstract = abstract_state(model, make_optimizer(spec.optimizer), spec.seed,
                                  model_cfg.max_len + 1, make_mesh(1))
        step, state = ckpt.newest(lambda s: ckpt.restore(s, abstract), below=step)
        params = state.params
    finally:
        ckpt.close()
    return Run(config, model_cfg, task, params, step, tokenizer)


def without_data(spec, workdir: str):
    """(tokenizer, task) without reading a corpus: a text run's tokenizer is in its workdir
    and its task needs the data (None); other tasks make their own."""
    if spec.data is not None:
        return read_tokenizer(tokenizer_path(workdir)), None
    return None, check_train_config(spec)[1]


def load_pretrained(workdir: str):
    """(model, params, tokenizer, config) of the newest checkpoint in a training workdir;
    the workdir alone is read (its tokenizer.json), not the training corpus."""
    run = language_model(load_latest(workdir, with_data=False), workdir)
    return GPT(run.model_cfg), run.params, run.tokenizer, run.config


def language_model(run: Run, workdir: str) -> Run:
    """`run`, if it is of a language model (not a classifier); else UserError."""
    if run.num_classes:
        raise UserError(f"workdir {workdir!r} holds a classifier (task {run.config.task!r}), "
                        "not a language model: it predicts labels, not tokens.")
    return run
