"""train_and_evaluate(config, workdir): the whole training run, resumable from the workdir."""
from __future__ import annotations

import math
import time

import jax
import numpy as np

from lowrank_jax.model import GPT, describe_parameters
from lowrank_jax.training.config import check_devices, check_train_config
from lowrank_jax.training.optim import make_optimizer, make_schedule
from lowrank_jax.training.state import abstract_state, create_state, make_mesh
from lowrank_jax.training.step import make_train_fn, make_train_step, summarize
from train.checkpoint import Checkpointer, check_workdir_writable, explain_mismatch, param_shapes
from train.errors import UserError
from train.metrics import MetricsLog, progress_bar


def chunk_lengths(start: int, steps: int, period: int) -> list[int]:
    """Steps per jitted call: calls end on every multiple of `period` and at `steps`."""
    lengths, step = [], start
    while step < steps:
        end = min((step // period + 1) * period, steps)
        lengths.append(end - step)
        step = end
    return lengths


def restore_or_init(ckpt: Checkpointer, meta: dict, model, optimizer, config, task, mesh, abstract):
    step = ckpt.latest_step()
    if step is None:
        return create_state(model, optimizer, config.seed, task.seq_len, mesh), 0
    saved = ckpt.read_meta(step)
    mismatch = explain_mismatch(saved.get("config", {}).get("model", {}), meta["config"]["model"],
                                saved.get("param_shapes", {}), meta["param_shapes"])
    if mismatch or saved["config"].get("task") != config.task:
        raise UserError(f"{mismatch or 'workdir holds a checkpoint of another task'}; "
                        "pass another --workdir, or the settings of the run that made it.")
    return ckpt.restore(step, abstract), step


def make_eval_fn(model, task):
    return jax.jit(lambda params: task.evaluate(lambda t: model.apply({"params": params}, t)))


def eval_record(step: int, counts: dict) -> dict:
    record = {"step": step}
    for name, (count, total) in jax.device_get(counts).items():
        record[f"eval/{name}"] = int(count)
        record[f"eval/{name}_fraction"] = float(count / total)
    return record


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains (or resumes) the run `config` describes in `workdir`; returns its summary."""
    model_cfg, task = check_train_config(config)
    mesh = make_mesh(check_devices(config, jax.local_device_count()))
    check_workdir_writable(workdir)
    train_model, eval_model = GPT(model_cfg.replace(deterministic=False)), GPT(model_cfg)
    optimizer = make_optimizer(config)
    schedule = make_schedule(config)
    abstract = abstract_state(train_model, optimizer, config.seed, task.seq_len, mesh)
    meta = {"config": config.to_dict(), "param_shapes": param_shapes(abstract.params)}
    ckpt = Checkpointer(workdir, config.keep_checkpoints)
    try:
        state, start = restore_or_init(ckpt, meta, train_model, optimizer, config, task, mesh,
                                       abstract)
        print(describe_parameters(state.params, model_cfg))
        if start:
            print(f"resuming from the checkpoint at step {start}")
        summary = run_steps(config, task, mesh, abstract, state, start, ckpt, meta, workdir,
                            train_model, eval_model, optimizer, schedule)
    finally:
        ckpt.close()
    print(task.report(eval_model, summary.pop("params")))
    return summary


def run_steps(config, task, mesh, abstract, state, start, ckpt, meta, workdir, train_model,
              eval_model, optimizer, schedule) -> dict:
    period = math.gcd(config.log_every, config.eval_every, config.checkpoint_every)
    lengths = chunk_lengths(start, config.steps, period)
    train_step = make_train_step(train_model, optimizer, task.make_batch, config.batch_size, mesh)
    t0 = time.perf_counter()
    compiled = {n: make_train_fn(train_step, abstract, mesh, n).lower(abstract).compile()
                for n in sorted(set(lengths))}
    compile_seconds = time.perf_counter() - t0
    evaluate = make_eval_fn(eval_model, task)
    log = MetricsLog(workdir, start)
    bar = progress_bar(config.steps, start)
    window, pending, last_train, last_eval = [], None, {}, {}
    step, t_window = start, time.perf_counter()
    t_start = time.perf_counter()

    def flush(pending):
        nonlocal last_train, t_window
        log_step, sums_list = pending
        totals = jax.tree.map(lambda *xs: np.sum(xs, axis=0), *jax.device_get(sums_list))
        now = time.perf_counter()
        last_train = {"step": log_step, **summarize(totals),
                      "lr": float(schedule(log_step - 1)),
                      "steps_per_second": float(totals["steps"]) / (now - t_window)}
        t_window = now
        log.write(last_train)
        bar.set_postfix(loss=f"{last_train['loss']:.4f}", lr=f"{last_train['lr']:.2e}")

    for n in lengths:
        state, sums = compiled[n](state)            # dispatched; runs while we read the last one
        step += n
        window.append(sums)
        if pending:
            flush(pending)
            pending = None
        bar.update(n)
        done = step == config.steps
        if step % config.log_every == 0 or done:
            pending, window = (step, window), []
        if step % config.eval_every == 0 or done:
            if pending:
                flush(pending)
                pending = None
            last_eval = eval_record(step, evaluate(state.params))
            log.write(last_eval)
        if step % config.checkpoint_every == 0 or done:
            ckpt.save(step, state, meta)
    if pending:
        flush(pending)
    jax.block_until_ready(state)
    train_seconds = time.perf_counter() - t_start
    bar.close()
    if not lengths:  # already trained to `steps`: evaluate what is there
        last_eval = eval_record(step, evaluate(state.params))
    return {"step": step, "train": last_train, "eval": last_eval, "params": state.params,
            "compile_seconds": compile_seconds, "train_seconds": train_seconds}
