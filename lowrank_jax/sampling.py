"""Next-token sampling with Hugging Face semantics, batched and jittable.

Order, as HF's generate: repetition penalty, then temperature, then top-k, then top-p.
- repetition_penalty p: a token already in the row has its logit divided by p when
  positive and multiplied by p when negative (so p > 1 always makes it less likely).
- temperature 0 is greedy decoding.
- top_k 0 keeps every token; otherwise the k largest logits (ties at the k-th kept).
- top_p keeps the smallest set of most likely tokens whose probability reaches p; the
  token that crosses p is kept, so at least one token always survives.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lowrank_jax.validation import INT32_MAX, is_int, is_number, require


class SamplingConfig(NamedTuple):
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0

    def check(self) -> "SamplingConfig":
        require(is_number(self.temperature) and self.temperature >= 0,
                f"temperature={self.temperature!r} is not allowed; it must be a number >= 0 "
                "(0 is greedy decoding).")
        require(is_int(self.top_k) and 0 <= self.top_k <= INT32_MAX,
                f"top_k={self.top_k!r} is not allowed; it must be an integer from 0 to "
                f"{INT32_MAX} (0 keeps every token).")
        require(is_number(self.top_p) and 0 < self.top_p <= 1,
                f"top_p={self.top_p!r} is not allowed; it must be in (0, 1].")
        require(is_number(self.repetition_penalty) and self.repetition_penalty > 0,
                f"repetition_penalty={self.repetition_penalty!r} is not allowed; it must be a "
                "positive number (1 is no penalty).")
        return self


def penalize_repeats(logits_BV, seen_BV, penalty):
    penalized = jnp.where(logits_BV > 0, logits_BV / penalty, logits_BV * penalty)
    return jnp.where(seen_BV, penalized, logits_BV)


def keep_top_k(logits_BV, k):
    """k may be traced; 0 keeps everything."""
    vocab = logits_BV.shape[-1]
    sorted_BV = jnp.sort(logits_BV, axis=-1)[:, ::-1]
    index = jnp.clip(k - 1, 0, vocab - 1)
    kth_B1 = sorted_BV[:, index][:, None]
    return jnp.where((k == 0) | (logits_BV >= kth_B1), logits_BV, -jnp.inf)


def keep_top_p(logits_BV, p):
    """p may be traced; 1 keeps every token (the cumulative sum's rounding never drops one)."""
    order_BV = jnp.argsort(-logits_BV, axis=-1)
    sorted_BV = jnp.take_along_axis(logits_BV, order_BV, axis=-1)
    probs_BV = jax.nn.softmax(sorted_BV, axis=-1)
    before_BV = jnp.cumsum(probs_BV, axis=-1) - probs_BV   # mass of the tokens ranked above
    keep_sorted_BV = (before_BV < p) | (p >= 1)             # the crossing token stays
    keep_BV = jnp.zeros_like(keep_sorted_BV).at[
        jnp.arange(logits_BV.shape[0])[:, None], order_BV].set(keep_sorted_BV)
    return jnp.where(keep_BV, logits_BV, -jnp.inf)


def next_token_logits(logits_BV, seen_BV, sampling: SamplingConfig):
    """The filtered, temperature-scaled logits sampling draws from (greedy: unscaled)."""
    logits_BV = penalize_repeats(logits_BV.astype(jnp.float32), seen_BV,
                                 sampling.repetition_penalty)
    if sampling.temperature > 0:
        logits_BV = logits_BV / sampling.temperature
    return keep_top_p(keep_top_k(logits_BV, sampling.top_k), sampling.top_p)


def sample(key, logits_BV, seen_BV, sampling: SamplingConfig):
    """int32 (B,) next tokens; `seen_BV` marks tokens already in each row."""
    filtered_BV = next_token_logits(logits_BV, seen_BV, sampling)
    if sampling.temperature == 0:
        return jnp.argmax(filtered_BV, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, filtered_BV, axis=-1).astype(jnp.int32)
