"""Orbax checkpoints of the training state plus a JSON record of the run that made them.

Saves are asynchronous, keep the newest `keep`, and are atomic: Orbax writes into a
temporary folder and renames it when complete, so an interrupted save is never the latest.
"""
from __future__ import annotations

import os
from typing import Any

import orbax.checkpoint as ocp
from flax import traverse_util

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


def check_vocab(saved_meta: dict, vocab_size: int) -> None:
    """The tokenizer read from a workdir must be the one its checkpoint was trained with."""
    saved = saved_meta.get("vocab_size", vocab_size)
    if saved != vocab_size:
        raise UserError(f"the tokenizer has {vocab_size} tokens but the checkpoint in the "
                        f"workdir was trained with {saved}; put back the tokenizer.json the "
                        "run was trained with.")
