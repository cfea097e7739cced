"""Orbax checkpoints of the training state plus a JSON record of the run that made them.

Saves are asynchronous, keep the newest `keep`, and are atomic: Orbax writes into a
temporary folder and renames it when complete, so an interrupted save is never the latest.
A checkpoint whose files are damaged is reported by step and file, and readers fall back
to the newest older one that restores.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from typing import Any

import orbax.checkpoint as ocp
from flax import traverse_util

from train.errors import UserError

CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "damaged_checkpoints"
# A failed restore's cut-short reads report themselves within moments (seen: at once).
QUIET_SECONDS, LONGEST_WAIT_SECONDS = 0.5, 5.0


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


class DamagedCheckpoint(Exception):
    """A checkpoint that cannot be read back: `step` and the file at fault, as one clause."""

    def __init__(self, step: int, what: str):
        super().__init__(f"the checkpoint at step {step} cannot be restored ({what})")
        self.step = step


def damage(err: Exception, step_dir: str) -> str:
    """Which file of a step's folder a restore error names (the most specific one), else
    the folder itself."""
    paths = re.findall(re.escape(step_dir) + r"[^\s'\"\\\]\),:]*", str(err))
    files = sorted((p.rstrip("/") for p in paths), key=len)
    where = os.path.relpath(files[-1] if files else step_dir, os.path.dirname(step_dir))
    return f"{CHECKPOINT_DIR}/{where} is damaged: {type(err).__name__}"


def wait_until_quiet(capture) -> None:
    """Until nothing has been written to `capture` for QUIET_SECONDS (at most LONGEST_WAIT)."""
    start = last_change = time.monotonic()
    size = -1
    while time.monotonic() - last_change < QUIET_SECONDS:
        if time.monotonic() - start > LONGEST_WAIT_SECONDS:
            return
        now = os.fstat(capture.fileno()).st_size
        if now != size:
            size, last_change = now, time.monotonic()
        time.sleep(0.05)


class ToldFailures(logging.Filter):
    """Drops asyncio's 'exception was never retrieved' reports of reads in a checkpoint
    folder whose failure was already told in one sentence. They come when the read's task
    is collected, which may be long after the restore (at exit, say)."""

    def __init__(self, step_dir: str):
        super().__init__()
        self.step_dir = step_dir

    def filter(self, record: logging.LogRecord) -> bool:
        return self.step_dir not in record.getMessage()


def read_quietly(read, step: int, step_dir: str):
    """`read()`, with stderr kept off the terminal while it runs. A restore that fails
    leaves tensorstore reads in flight, whose threads report 'Event loop is closed' and
    whose tasks report their errors to asyncio's logger, and leaves coroutines that are
    never awaited: the failure is told as DamagedCheckpoint instead, so those reports are
    waited for and dropped. On success whatever was written is replayed."""
    sys.stderr.flush()
    saved = os.dup(2)
    failure = None
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            try:
                return read()
            except Exception as err:  # tensorstore and orbax raise many types for damaged files
                failure = damage(err, step_dir)
            logging.getLogger("asyncio").addFilter(ToldFailures(step_dir))
            warnings.filterwarnings("ignore", r"coroutine '.*' was never awaited", RuntimeWarning)
            wait_until_quiet(capture)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failure is None:
                capture.seek(0)
                sys.stderr.write(capture.read().decode("utf-8", errors="replace"))
    raise DamagedCheckpoint(step, failure)


class Checkpointer:
    def __init__(self, workdir: str, keep: int, read_only: bool = False):
        options = (ocp.CheckpointManagerOptions(read_only=True, create=False) if read_only else
                   ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))
        self.workdir = workdir
        self.path = os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))
        self.manager = ocp.CheckpointManager(self.path, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def steps(self) -> list[int]:
        """Every finished checkpoint's step, newest first."""
        return sorted(self.manager.all_steps(), reverse=True)

    def read_meta(self, step: int) -> dict[str, Any]:
        restored = read_quietly(lambda: self.manager.restore(
            step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())), step, self.step_dir(step))
        return dict(restored["meta"])

    def restore(self, step: int, abstract_state):
        restored = read_quietly(lambda: self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))),
            step, self.step_dir(step))
        return restored["state"]

    def step_dir(self, step: int) -> str:
        return os.path.join(self.path, str(step))

    def newest(self, read, below: int | None = None, warn=None):
        """(step, read(step)) of the newest checkpoint (at or below `below`) that reads; each
        damaged one skipped on the way is reported through `warn`. (None, None) with no
        checkpoint; a UserError naming them when every one is damaged."""
        warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
        damaged = []
        for step in [s for s in self.steps() if below is None or s <= below]:
            try:
                value = read(step)
            except DamagedCheckpoint as err:
                damaged.append(err)
                continue
            for err in damaged:
                warn(f"{err}; falling back to the one at step {step}.")
            return step, value
        if damaged:
            raise UserError(f"every checkpoint in {self.path} is damaged ("
                            + "; ".join(map(str, damaged)) + f"); move {CHECKPOINT_DIR}/ aside "
                            "to start over, or pass another --workdir.")
        return None, None

    def set_aside_after(self, step: int) -> None:
        """Moves the checkpoints newer than `step` (damaged: the run falls back past them)
        into WORKDIR/damaged_checkpoints, so training can save those steps again and
        nothing that was on disk is lost."""
        newer = [s for s in self.steps() if s > step]
        if not newer:
            return
        self.manager.wait_until_finished()
        aside = os.path.join(self.workdir, DAMAGED_DIR)
        os.makedirs(aside, exist_ok=True)
        for s in newer:
            target = os.path.join(aside, f"{s}-{int(time.time())}")
            shutil.move(os.path.join(self.path, str(s)), target)
            print(f"moved the damaged checkpoint at step {s} to {target}", file=sys.stderr)
        self.manager.reload()

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
    what = describe_differences(saved, current, prefix="model.", limit=3)
    if not what:
        name = next(k for k in sorted(set(saved_shapes) | set(current_shapes))
                    if saved_shapes.get(k) != current_shapes.get(k))
        what = f"parameter {name} is {saved_shapes.get(name)} there but {current_shapes.get(name)} here"
    return f"workdir holds a checkpoint of a different model ({what})"


def describe_differences(there: dict, here: dict, prefix: str = "", limit: int | None = None,
                         keys=None) -> str:
    """'F is A there but B here, ...' for each of `keys` (default: every key of either) whose
    values differ, the first `limit` of them; '' when none does."""
    keys = sorted(set(there) | set(here)) if keys is None else keys
    differing = [k for k in keys if there.get(k) != here.get(k)]
    return ", ".join(f"{prefix}{k} is {there.get(k)!r} there but {here.get(k)!r} here"
                     for k in differing[:limit])


def check_vocab(saved_meta: dict, vocab_size: int) -> None:
    """The tokenizer read from a workdir must be the one its checkpoint was trained with."""
    saved = saved_meta.get("vocab_size", vocab_size)
    if saved != vocab_size:
        raise UserError(f"the tokenizer has {vocab_size} tokens but the checkpoint in the "
                        f"workdir was trained with {saved}; put back the tokenizer.json the "
                        "run was trained with.")
