"""Uniformly random tokens: a smoke test of training at any vocabulary and length.

Nothing can be learned, so the loss should settle at ln(vocab_size), the entropy of
the data; a loss far from it points to a bug in the model or the step.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def make_batch_fn(vocab_size: int, seq_len: int):
    def make_batch(key: jax.Array, batch_size: int) -> jax.Array:
        return jax.random.randint(key, (batch_size, seq_len), 0, vocab_size, dtype=jnp.int32)
    return make_batch


def report(vocab_size: int) -> str:
    return f"random tokens: the best possible loss is ln({vocab_size}) = {math.log(vocab_size):.4f}"
