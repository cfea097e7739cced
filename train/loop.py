"""train_and_evaluate(config, workdir): the whole training run, resumable from the workdir."""
from __future__ import annotations

import math
import time

import jax

from lowrank_jax.model import GPT, count_parameters, describe_parameters
from lowrank_jax.training.config import check_devices, check_train_config
from lowrank_jax.training.optim import make_optimizer, make_schedule
from lowrank_jax.training.state import abstract_state, create_state, make_mesh
from lowrank_jax.training.step import make_train_fn, make_train_step
from train.checkpoint import Checkpointer, check_workdir_writable, explain_mismatch, param_shapes
from train.errors import UserError
from train.metrics import TrainLogger


def chunk_lengths(start: int, steps: int, period: int) -> list[int]:
    """Steps per jitted call: calls end on every multiple of `period` and at `steps`."""
    lengths, step = [], start
    while step < steps:
        end = min((step // period + 1) * period, steps)
        lengths.append(end - step)
        step = end
    return lengths


def restore_or_init(ckpt: Checkpointer, meta: dict, config, init_state, abstract):
    step = ckpt.latest_step()
    if step is None:
        return init_state(), 0
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
    abstract = abstract_state(train_model, optimizer, config.seed, task.seq_len, mesh)
    meta = {"config": config.to_dict(), "param_shapes": param_shapes(abstract.params)}
    ckpt = Checkpointer(workdir, config.keep_checkpoints)
    try:
        state, start = restore_or_init(
            ckpt, meta, config, lambda: create_state(train_model, optimizer, config.seed,
                                                     task.seq_len, abstract), abstract)
        print(describe_parameters(state.params, model_cfg))
        if start:
            print(f"resuming from the checkpoint at step {start}")
        lengths = chunk_lengths(start, config.steps,
                                math.gcd(config.log_every, config.eval_every, config.checkpoint_every))
        train_step = make_train_step(train_model, optimizer, task.make_batch, config.batch_size, mesh)
        t0 = time.perf_counter()
        calls = {n: make_train_fn(train_step, abstract, mesh, n).lower(abstract).compile()
                 for n in sorted(set(lengths))}
        compile_seconds = time.perf_counter() - t0
        logger = TrainLogger(workdir, start, config.steps, make_schedule(config))
        t0 = time.perf_counter()
        state, last_eval = run_calls(config, state, start, lengths, calls, logger,
                                     make_eval_fn(eval_model, task),
                                     lambda step, s: ckpt.save(step, s, meta))
        train_seconds = time.perf_counter() - t0
    finally:
        ckpt.close()
    print(task.report(eval_model, state.params))
    return {"step": int(state.step), "parameters": count_parameters(state.params),
            "train": logger.last, "eval": last_eval,
            "compile_seconds": compile_seconds, "train_seconds": train_seconds}


def run_calls(config, state, step, lengths, calls, logger, evaluate, save):
    """Runs the compiled calls, logging, evaluating and saving on schedule; returns
    (final state, last eval record)."""
    last_eval = None
    for n in lengths:
        state, sums = calls[n](state)            # dispatched; runs while we read the last window
        step += n
        logger.add(sums, n)
        logger.flush()
        done = step == config.steps
        if step % config.log_every == 0 or done:
            logger.close_window(step)
        if step % config.eval_every == 0 or done:
            logger.flush()
            last_eval = eval_record(step, evaluate(state.params))
            logger.log.write(last_eval)
        if step % config.checkpoint_every == 0 or done:
            save(step, state)
    logger.close()
    jax.block_until_ready(state)
    if last_eval is None:  # already trained to `steps`: evaluate what is there
        last_eval = eval_record(step, evaluate(state.params))
    return state, last_eval
