"""AdamW with linear warmup, cosine decay and global-norm clipping."""
from __future__ import annotations

import jax
import optax


def make_schedule(opt) -> optax.Schedule:
    """0 -> lr over warmup_steps, then cosine to lr * end_lr_ratio at `steps`.

    optax counts the warmup inside decay_steps, so decay_steps is the total step count.
    """
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=opt.lr, warmup_steps=opt.warmup_steps,
        decay_steps=opt.steps, end_value=opt.lr * opt.end_lr_ratio)


def decay_mask(weight_decay_on: str):
    """'all' decays every parameter (PyTorch AdamW's default); 'matrices' spares norms and biases."""
    if weight_decay_on == "all":
        return None
    return lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)


# apply_if_finite counts its skips in an int32; a run never has this many updates in a row.
NEVER_GIVE_UP = 2 ** 31 - 1


def make_optimizer(opt) -> optax.GradientTransformation:
    """`opt`: the run's OptimizerSpec (training/config.py). An update with a NaN or infinite
    gradient is never applied (apply_if_finite), so the parameters and optimizer state stay
    finite; whether the run then stops or goes on is the training loop's choice."""
    return optax.apply_if_finite(optax.chain(
        optax.clip_by_global_norm(opt.grad_clip),
        optax.adamw(make_schedule(opt), weight_decay=opt.weight_decay,
                    mask=decay_mask(opt.weight_decay_on)),
    ), max_consecutive_errors=NEVER_GIVE_UP)
