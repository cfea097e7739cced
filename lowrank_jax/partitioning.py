"""Logical axis names on the weights (Flax logical partitioning): each initializer is
wrapped with the names of its weight's axes, and lowrank_jax.training.state maps the names
onto a device mesh. Names: "embed" (d_model), "vocab", "seq" (max_len), "mlp" (d_ff),
"heads", "head_dim", "rank" (a factorization's r), "classes"; the training rules split
"embed" over the fsdp axis and keep the rest whole.

The names are attached only inside `named_axes()`, where the training state is built:
everywhere else `init` returns plain arrays, as a Flax user expects."""
from __future__ import annotations

import contextlib
import contextvars

from flax import linen as nn

_NAMING = contextvars.ContextVar("naming_axes", default=False)


@contextlib.contextmanager
def named_axes():
    """Inside: weights come out of `init` boxed in their logical axis names."""
    token = _NAMING.set(True)
    try:
        yield
    finally:
        _NAMING.reset(token)


def logical(init, *axes: str | None):
    """`init`, naming its weight's axes `axes` when inside named_axes()."""
    named = nn.with_logical_partitioning(init, axes)

    def initialize(key, shape, dtype=None):
        make = named if _NAMING.get() else init
        return make(key, shape) if dtype is None else make(key, shape, dtype)
    return initialize
