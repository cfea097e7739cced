"""The training step: batch from (key, step, task data) on the device, loss, gradients, AdamW update.

`make_train_fn` jits `steps_per_call` of them under one lax.scan with in/out shardings
on the mesh and the state donated, so the host dispatches once per call and never
waits on a step it does not need to read. Metrics come back as sums with their
denominators; the host divides.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from lowrank_jax.tasks.labelled import PAD_ID
from lowrank_jax.training.state import (
    TrainState,
    batch_sharding,
    replicated,
    state_shardings,
)


# The step of a call's first non-finite loss or gradient (1-based: the update it would
# have made); NO_STEP when every one was finite. Its sum over steps is a minimum instead.
FIRST_NONFINITE = "first_nonfinite_step"
NO_STEP = jnp.iinfo(jnp.int32).max


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def cross_entropy_BT(logits_BTV, targets_BT, saved_dtype):
    """optax's softmax cross-entropy with integer labels, whose backward keeps the logits
    as `saved_dtype`. A bfloat16 model's float32 logits are bfloat16 values, so saving them
    in bfloat16 loses nothing and halves the largest tensor the step keeps for its backward
    (tokens x vocabulary): GPT-2 small at 1024 x 16 trains 3.7% faster on an H200."""
    return optax.softmax_cross_entropy_with_integer_labels(logits_BTV, targets_BT)


def _cross_entropy_fwd(logits_BTV, targets_BT, saved_dtype):
    lse_BT = jax.nn.logsumexp(logits_BTV, axis=-1)
    label_BT = jnp.take_along_axis(logits_BTV, targets_BT[..., None], axis=-1)[..., 0]
    return lse_BT - label_BT, (logits_BTV.astype(saved_dtype), lse_BT, targets_BT)


def _cross_entropy_bwd(saved_dtype, saved, g_BT):
    logits_BTV, lse_BT, targets_BT = saved
    probs_BTV = jnp.exp(logits_BTV.astype(lse_BT.dtype) - lse_BT[..., None])
    onehot_BTV = jax.nn.one_hot(targets_BT, logits_BTV.shape[-1], dtype=probs_BTV.dtype)
    grad_BTV = ((probs_BTV - onehot_BTV) * g_BT[..., None]).astype(saved_dtype)
    return grad_BTV.astype(lse_BT.dtype), None


cross_entropy_BT.defvjp(_cross_entropy_fwd, _cross_entropy_bwd)


def next_token_metrics(logits_BTV, targets_BT, saved_dtype=jnp.float32) -> tuple[jax.Array, dict]:
    """Mean cross-entropy of the next-token targets, and the sums behind it;
    `saved_dtype`: the dtype the logits were computed in (see cross_entropy_BT)."""
    nll_BT = cross_entropy_BT(logits_BTV, targets_BT, saved_dtype)
    sums = {"loss": nll_BT.sum(), "correct": (jnp.argmax(logits_BTV, axis=-1) == targets_BT).sum(),
            "targets": jnp.float32(nll_BT.size)}
    return nll_BT.mean(), sums


def label_metrics(logits_BC, labels_B) -> tuple[jax.Array, dict]:
    """Mean cross-entropy of a classifier's labels, and the sums behind it."""
    nll_B = optax.softmax_cross_entropy_with_integer_labels(logits_BC, labels_B)
    sums = {"loss": nll_B.sum(), "correct": (jnp.argmax(logits_BC, axis=-1) == labels_B).sum(),
            "targets": jnp.float32(nll_B.size)}
    return nll_B.mean(), sums


def make_loss_fn(model, task) -> Callable:
    """(params, rows_BT, dropout key) -> (mean loss, sums) for the task's rows: next tokens
    (at task.target_positions, read as task.model_inputs shows them), or, for a labelled
    task, each row's last token as the label of the tokens before it (0 pads; see
    lowrank_jax.tasks.Task)."""
    def loss_fn(params, rows_BT, dropout_key):
        inputs_BL = rows_BT[:, :-1] if task.model_inputs is None else task.model_inputs(rows_BT)
        rngs = {"dropout": dropout_key}
        if task.num_classes:
            logits_BC = model.apply({"params": params}, inputs_BL, inputs_BL != PAD_ID, rngs=rngs)
            with jax.named_scope("loss"):
                return label_metrics(logits_BC, rows_BT[:, -1])
        # N: the T - 1 next-token targets, or the P of them the task counts.
        at_BP = None if task.target_positions is None else task.target_positions(rows_BT)
        logits_BNV = model.apply({"params": params}, inputs_BL, logit_positions_BP=at_BP,
                                 rngs=rngs)
        with jax.named_scope("loss"):   # the scopes name the parts in a profile (train/perf.py)
            targets_BN = rows_BT[:, 1:] if at_BP is None else jnp.take_along_axis(
                rows_BT[:, 1:], at_BP, axis=1)
            return next_token_metrics(logits_BNV, targets_BN, model.cfg.compute_dtype)

    return loss_fn


def make_train_step(model, optimizer, task, batch_size: int, mesh) -> Callable:
    """One AdamW step on a batch of the task's rows (see make_loss_fn)."""
    loss_fn = make_loss_fn(model, task)

    def train_step(state: TrainState, data) -> tuple[TrainState, dict]:
        step_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        data_key, dropout_key = jax.random.split(step_key)
        rows_BT = jax.lax.with_sharding_constraint(task.make_batch(data_key, batch_size, data),
                                                   batch_sharding(mesh))
        (_, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, rows_BT,
                                                                     dropout_key)
        with jax.named_scope("optimizer"):
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(sums["loss"]) & jnp.isfinite(grad_norm)
        # A skipped update's figures stay out of the means (which then cover the others).
        sums = {k: jnp.where(finite, v, 0) for k, v in
                {**sums, "grad_norm": grad_norm, "steps": jnp.float32(1)}.items()}
        sums = {**sums, "nonfinite": (~finite).astype(jnp.float32),
                FIRST_NONFINITE: jnp.where(finite, NO_STEP, state.step + 1)}
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), sums

    return train_step


def make_train_fn(train_step: Callable, abstract: TrainState, mesh, steps_per_call: int):
    """jit((state, task data) -> (state after `steps_per_call` steps, summed metrics)),
    the state donated, the task data replicated on every device."""
    def run(state, data):
        state, sums = jax.lax.scan(lambda s, _: train_step(s, data), state, None,
                                   length=steps_per_call)
        return state, {k: v.min(0) if k == FIRST_NONFINITE else v.sum(0) for k, v in sums.items()}

    shardings = state_shardings(abstract)
    return jax.jit(run, in_shardings=(shardings, replicated(mesh)),
                   out_shardings=(shardings, replicated(mesh)),
                   donate_argnums=0)


def summarize(sums: dict) -> dict:
    """Host side: metric sums -> means (NaN over a window whose every update was skipped),
    and the updates skipped for a non-finite value."""
    def mean(total, count):
        return float(total) / float(count) if count else float("nan")

    return {"loss": mean(sums["loss"], sums["targets"]),
            "accuracy": mean(sums["correct"], sums["targets"]),
            "grad_norm": mean(sums["grad_norm"], sums["steps"]),
            "skipped_updates": int(sums["nonfinite"])}
