"""Orbax checkpoints of the training state plus a JSON record of the run that made them.

Saves are asynchronous, keep the newest `keep`, and are atomic: Orbax writes into a
temporary folder and renames it when complete, so an interrupted save is never the latest.
"""
from __future__ import annotations

import os
from typing import Any

import ml_collections
import orbax.checkpoint as ocp
from flax import traverse_util

from lowrank_jax.model import GPT
from lowrank_jax.training.config import check_train_config
from lowrank_jax.training.optim import make_optimizer
from lowrank_jax.training.state import abstract_state, make_mesh
from train.errors import UserError

CHECKPOINT_DIR = "checkpoints"


def param_shapes(params) -> dict[str, list[int]]:
    return {"/".join(path): list(leaf.shape)
            for path, leaf in traverse_util.flatten_dict(params).items()}


def check_workdir_writable(workdir: str) -> None:
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, ".write_probe")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as err:
        raise UserError(f"workdir {workdir!r} is not a writable folder ({err.strerror}); "
                        "pass --workdir with a folder you can write to.") from None


class Checkpointer:
    def __init__(self, workdir: str, keep: int, read_only: bool = False):
        options = (ocp.CheckpointManagerOptions(read_only=True, create=False) if read_only else
                   ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))
        self.path = os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))
        self.manager = ocp.CheckpointManager(self.path, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def read_meta(self, step: int) -> dict[str, Any]:
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            return dict(restored["meta"])
        except Exception as err:  # orbax raises many types for a damaged or foreign folder
            raise UserError(f"the checkpoint at {self.path}/{step} cannot be read ({type(err).__name__}); "
                            "pass --workdir with a folder this program wrote.") from None

    def restore(self, step: int, abstract_state):
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
        return restored["state"]

    def save(self, step: int, state, meta: dict) -> None:
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)))

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def explain_mismatch(saved: dict, current: dict, saved_shapes: dict, current_shapes: dict) -> str | None:
    """None when the checkpoint fits the model; else one sentence on how they differ."""
    if saved_shapes == current_shapes:
        return None
    differing = [k for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    if differing:
        what = ", ".join(f"model.{k} is {saved.get(k)!r} there but {current.get(k)!r} here"
                         for k in differing[:3])
    else:
        name = next(k for k in sorted(set(saved_shapes) | set(current_shapes))
                    if saved_shapes.get(k) != current_shapes.get(k))
        what = f"parameter {name} is {saved_shapes.get(name)} there but {current_shapes.get(name)} here"
    return f"workdir holds a checkpoint of a different model ({what})"



def load_latest(workdir: str):
    """(config, model config, params, step) of the newest checkpoint in `workdir`, on one device."""
    if not os.path.isdir(os.path.join(workdir, CHECKPOINT_DIR)):
        raise UserError(f"workdir {workdir!r} holds no checkpoint; train one first with "
                        f"python -m train --workdir {workdir}.")
    ckpt = Checkpointer(workdir, keep=1, read_only=True)
    try:
        step = ckpt.latest_step()
        if step is None:
            raise UserError(f"workdir {workdir!r} holds no finished checkpoint; train one first.")
        config = ml_collections.ConfigDict(ckpt.read_meta(step)["config"])
        model_cfg, task = check_train_config(config)
        abstract = abstract_state(GPT(model_cfg), make_optimizer(config), config.seed,
                                  task.seq_len, make_mesh(1))
        params = ckpt.restore(step, abstract).params
    finally:
        ckpt.close()
    return config, model_cfg, params, step
