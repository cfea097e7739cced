"""train_and_evaluate(config, workdir): the whole training run, resumable from the workdir."""
from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import time

from collections.abc import Iterator

import jax

from lowrank_jax.model import count_parameters, describe_parameters, model_for_task
from lowrank_jax.training.config import check_devices, check_train_config, run_spec
from lowrank_jax.training.optim import make_optimizer, make_schedule
from lowrank_jax.training.state import (
    abstract_state,
    create_state,
    make_mesh,
    replicated,
)
from lowrank_jax.training.step import FIRST_NONFINITE, NO_STEP, make_train_fn, make_train_step
from train.checkpoint import (
    Checkpointer,
    check_vocab,
    explain_mismatch,
    param_shapes,
)
from train.data import DATA_IDENTITY, load_task_data, write_atomically
from train.distributed import is_primary
from train.errors import UserError
from train.fresh_workdir import held_and_undone_if_refused
from train.preemption import Preempted, StopSignals
from train.metrics import TrainLogger


CONFIG_FILE = "config.json"  # the run's resolved config, rewritten at every start
LOG_WINDOW = "log_window"    # in a checkpoint's record: the metric sums since the last log step


def chunk_lengths(start: int, steps: int, period: int) -> Iterator[int]:
    """Steps per jitted call, one at a time (steps may be huge): calls end on every
    multiple of `period` and at `steps`."""
    step = start
    while step < steps:
        end = min((step // period + 1) * period, steps)
        yield end - step
        step = end


def distinct_chunk_lengths(start: int, steps: int, period: int) -> set[int]:
    """The lengths chunk_lengths yields, without walking it: the first call's, a whole
    period's and the last call's (which starts at the last multiple of `period`)."""
    if start >= steps:
        return set()
    last_start = max(start, (steps - 1) // period * period)
    return set(itertools.islice(chunk_lengths(start, steps, period), 2)) | {steps - last_start}


def saved_run(ckpt: Checkpointer) -> tuple[int, dict] | tuple[None, None]:
    """(step, record) of the newest checkpoint whose record reads, or (None, None)."""
    return ckpt.newest(ckpt.read_meta)


def check_same_inputs(saved: dict, spec) -> None:
    """Before anything is written to the workdir: the checkpoint there must be of this task
    and data."""
    saved_config = saved.get("config", {})
    if saved_config.get("task") != spec.task:
        raise UserError("workdir holds a checkpoint of another task; pass another --workdir, "
                        "or the settings of the run that made it.")
    if spec.options is not None:
        saved_options = saved_config.get(spec.task, {})
        for k in spec.options.IDENTITY:
            here, there = getattr(spec.options, k), saved_options.get(k)
            if there != here:
                raise UserError(f"workdir holds a checkpoint trained on other data ({spec.task}."
                                f"{k} is {there!r} there but {here!r} here); pass another "
                                "--workdir, or the settings of the run that made it.")
    if spec.data is None:
        return
    saved_data = saved_config.get("data", {})
    for k in DATA_IDENTITY:
        here, there = getattr(spec.data, k), saved_data.get(k)
        if (tuple(there) if isinstance(there, list) else there) != here:
            raise UserError(f"workdir holds a checkpoint trained on other data (data.{k} is "
                            f"{there!r} there but {here!r} here); pass another --workdir, or "
                            "the settings of the run that made it.")


SCHEDULE = ("steps", "lr", "warmup_steps", "end_lr_ratio")


def check_same_schedule(saved: dict, spec) -> None:
    """A resumed run keeps its checkpoint's learning-rate schedule unless told otherwise."""
    if spec.allow_schedule_change:
        return
    for field in SCHEDULE:
        there, here = saved["config"].get(field), getattr(spec.optimizer, field)
        if there is not None and there != here:
            raise UserError(f"{field}={here!r} differs from the {there!r} of the checkpoint in the "
                            "workdir; changing the schedule on resume re-shapes the learning "
                            "rate, so pass --config.allow_schedule_change=true to do it anyway, "
                            "or another --workdir.")


def check_same_model(saved: dict, meta: dict) -> None:
    check_vocab(saved, meta["vocab_size"])
    mismatch = explain_mismatch(saved["config"].get("model", {}), meta["config"]["model"],
                                saved.get("param_shapes", {}), meta["param_shapes"])
    if mismatch:
        raise UserError(f"{mismatch}; pass another --workdir, or the settings of the run that "
                        "made it.")


def make_eval_fn(model, task):
    return jax.jit(lambda params, data: task.evaluate(
        lambda *inputs, **options: model.apply({"params": params}, *inputs, **options), data))


def eval_record(step: int, task, sums: dict) -> dict:
    finished = task.finish_eval(jax.device_get(sums))
    return {"step": step, **{f"eval/{name}": value for name, value in finished.items()}}


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains (or resumes) the run `config` describes in `workdir`; returns its summary."""
    spec = run_spec(config)
    # Of several hosts' processes, the primary alone holds the lock (train/distributed.py).
    held = held_and_undone_if_refused(workdir) if is_primary() else contextlib.nullcontext()
    with held, out_of_memory_told(spec):
        return train_locked(config, spec, workdir)


@contextlib.contextmanager
def out_of_memory_told(spec):
    """Device memory running out (XLA's RESOURCE_EXHAUSTED), as one sentence naming the
    settings that size the run."""
    try:
        yield
    except jax.errors.JaxRuntimeError as err:
        if not re.search(r"RESOURCE_EXHAUSTED|Out of memory", str(err)):
            raise
        needed = re.search(r"allocat\w* (\d+) bytes", str(err))
        amount = f" ({int(needed[1]) / 2**30:,.1f} GiB at once)" if needed else ""
        raise UserError(
            f"the run does not fit in device memory{amount}; lower batch_size="
            f"{spec.batch_size}, model.max_len={spec.model.max_len}, model.d_model="
            f"{spec.model.d_model} or model.n_layers={spec.model.n_layers}, or set "
            "model.remat=block.") from None


def train_locked(config, spec, workdir: str) -> dict:
    """train_and_evaluate's body, run while this process holds the workdir's lock."""
    mesh = make_mesh(*check_devices(spec, jax.device_count()))
    ckpt = Checkpointer(workdir, spec.keep_checkpoints)
    try:
        start, saved = saved_run(ckpt)
        if saved is not None:
            check_same_inputs(saved, spec)
        _, data = load_task_data(spec, workdir, resuming=saved is not None)
        model_cfg, task = check_train_config(spec, data)
        train_model = model_for_task(model_cfg.replace(deterministic=False), task.num_classes)
        eval_model = model_for_task(model_cfg, task.num_classes)
        optimizer = make_optimizer(spec.optimizer)
        abstract = abstract_state(train_model, optimizer, spec.seed, task.seq_len, mesh)
        meta = {"config": config.to_dict(), "param_shapes": param_shapes(abstract.params),
                "vocab_size": model_cfg.vocab_size}
        if saved is None:
            state, start = create_state(train_model, optimizer, spec.seed, task.seq_len,
                                        abstract), 0
        else:
            check_same_model(saved, meta)
            check_same_schedule(saved, spec)
            start, state = ckpt.newest(lambda step: ckpt.restore(step, abstract), below=start)
            ckpt.set_aside_after(start)
        if is_primary():
            write_atomically(os.path.join(workdir, CONFIG_FILE), config.to_json(indent=2))
        print(describe_parameters(state.params, model_cfg))
        if start >= spec.steps:
            print(f"the checkpoint in the workdir is at step {start}, which steps={spec.steps} "
                  "does not pass: nothing to train; evaluating it")
        elif start:
            print(f"resuming from the checkpoint at step {start}")
        task_data = jax.device_put(task.data, replicated(mesh))
        period = math.gcd(spec.log_every, spec.eval_every, spec.checkpoint_every)
        train_step = make_train_step(train_model, optimizer, task, spec.batch_size, mesh)
        t0 = time.perf_counter()
        calls = {n: make_train_fn(train_step, abstract, mesh, n).lower(abstract, task_data).compile()
                 for n in sorted(distinct_chunk_lengths(start, spec.steps, period))}
        compile_seconds = time.perf_counter() - t0
        logger = TrainLogger(workdir, start, spec.steps, make_schedule(spec.optimizer),
                             spec.batch_size * (task.seq_len - 1))
        if start:  # a run stopped by a signal between log steps left its open window
            logger.resume_window(ckpt.read_meta(start).get(LOG_WINDOW))
        evaluate = make_eval_fn(eval_model, task)
        t0 = time.perf_counter()
        with StopSignals() as stop:
            state, last_eval = run_calls(
                spec, state, start, chunk_lengths(start, spec.steps, period),
                lambda n, s: calls[n](s, task_data), logger,
                lambda step, params: eval_record(step, task, evaluate(params, task_data)),
                lambda step, s, extra: ckpt.save(step, s, {**meta, **extra}), stop)
        train_seconds = time.perf_counter() - t0
    finally:
        ckpt.close()
    report = task.report(eval_model, state.params)
    if report:
        print(report)
    return {"step": int(state.step), "parameters": count_parameters(state.params),
            "train": logger.last, "eval": last_eval,
            "compile_seconds": compile_seconds, "train_seconds": train_seconds}


class FiniteGuard:
    """Stops the run at its first NaN or infinite loss or gradient (unless the spec skips
    such updates). Each call's first bad step is read one call late, as the metrics are,
    so the device never waits; before anything is saved or evaluated, every call is read."""

    def __init__(self, spec, last_saved: int | None):
        self.skip, self.last_saved, self.unread = spec.skip_nonfinite, last_saved, []

    def add(self, sums) -> None:
        self.unread.append(sums[FIRST_NONFINITE])

    def check(self, leave_newest: bool = False) -> None:
        ready = self.unread[:-1] if leave_newest else self.unread
        self.unread = self.unread[len(ready):]
        first = min((int(s) for s in jax.device_get(ready)), default=NO_STEP)
        if first != NO_STEP and not self.skip:
            saved = (f"the last good checkpoint is at step {self.last_saved}"
                     if self.last_saved else "no checkpoint was saved before it")
            raise UserError(f"the loss or a gradient became NaN or infinite at step {first}; "
                            f"the run stopped there and saved nothing of it ({saved}); lower "
                            "lr, or set --config.skip_nonfinite=true to skip such updates.")

    def saved(self, step: int) -> None:
        self.last_saved = step


def run_calls(spec, state, step, lengths, run, logger, evaluate, save, stop):
    """Runs `run(n, state)` over the call lengths, logging, evaluating and saving on
    schedule; returns (final state, last eval record). `save(step, state, extra)`; once
    `stop.agreed()` (a signal, to any host), the current step is saved and Preempted raised."""
    last_eval, guard = None, FiniteGuard(spec, step or None)
    try:
        for n in lengths:
            state, sums = run(n, state)          # dispatched; runs while we read the last window
            step += n
            logger.add(sums, n)
            guard.add(sums)
            guard.check(leave_newest=True)
            logger.flush()
            done = step == spec.steps
            if step % spec.log_every == 0 or done:
                logger.close_window(step)
            if step % spec.eval_every == 0 or done:
                guard.check()
                logger.flush()
                last_eval = evaluate(step, state.params)
                logger.write_eval(last_eval)
            due = step % spec.checkpoint_every == 0 or done
            signum = stop.agreed()
            if due or signum:
                guard.check()
                # The open log window rides along, so a resumed run logs what an unbroken one does.
                save(step, state, {LOG_WINDOW: logger.open_window()})
                guard.saved(step)
            if signum and not done:
                raise Preempted(step, signum)
    finally:
        logger.close()
    jax.block_until_ready(state)
    if last_eval is None:  # already trained to `steps`: evaluate what is there
        last_eval = evaluate(step, state.params)
    return state, last_eval
