"""Deep-QKV attention (seed 001): each head's Q/K/V weight is made from a factorized pair.

For head h and each of Q, K, V:
    W[h] = softmax(A[h] @ B[h] / temp, axis=-1)            (E x D, rows sum to 1)
    W[h] = base[h] * W[h]   unless strict                  (elementwise gate of a free weight)
    W[h] = D * W[h]         with unit_gate                 (not in the seed; see below)
with A[h] (E x r), B[h] (r x D). Scores are q k^T / sqrt(D) with a causal mask;
the output projection is E x E. There are no biases in this module. Once the weights
are made it is plain softmax attention, so it takes standard attention's cuDNN path.

The seed's gate has rows summing to 1, so its entries start within 1% of 1/D: W starts D
times smaller than its base, the scores D^2 smaller, and attention is uniform; AdamW's steps
on the base move W D times less than a plain weight's. `unit_gate` scales the gate by D
(entries averaging 1), so W starts at the base's scale and learns at a plain weight's pace
(benchmarks/deep_qkv_init_scale.py shows the seed's scale).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import chex
import jax
import jax.numpy as jnp
from flax import linen as nn

from lowrank_jax.attention import cache, core
from lowrank_jax.attention.base import Attention
from lowrank_jax.partitioning import logical
from lowrank_jax.validation import check_flag, is_int, is_number, require

if TYPE_CHECKING:
    from lowrank_jax.config import ModelConfig

# The seed initialises (H, E, r) / (H, r, D) tensors with PyTorch's kaiming_uniform(a=sqrt(5))
# and (H, E, D) bases with xavier_uniform; PyTorch takes dim 1 as fan-in, dim 0 as fan-out
# and the rest as receptive field, which these axes reproduce.
factor_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform", in_axis=1, out_axis=0)
base_init = nn.initializers.xavier_uniform(in_axis=1, out_axis=0)
base_init_2d = nn.initializers.xavier_uniform()
# Keeps the division finite when a user sets temp to 0, as the seed does.
MIN_TEMP = 1e-6


def factorized_weight(A_HER, B_HRD, base_HED, temp, unit_gate=False):
    W_HED = jax.nn.softmax(jnp.einsum("her,hrd->hed", A_HER, B_HRD) / max(temp, MIN_TEMP), axis=-1)
    if unit_gate:
        W_HED = W_HED * W_HED.shape[-1]
    return W_HED if base_HED is None else base_HED * W_HED


class DeepQKVAttention(Attention):
    DEFAULTS: ClassVar[dict] = {"rank": 3, "temp": 1.0, "strict": False, "unit_gate": False}
    EXAMPLES: ClassVar[tuple[dict, ...]] = ({}, {"rank": 2, "temp": 0.5, "strict": True})

    @staticmethod
    def resolve(cfg: "ModelConfig", kwargs: dict) -> dict:
        rank, temp = kwargs["rank"], kwargs["temp"]
        require(is_int(rank) and rank >= 1,
                f"attention_kwargs.rank={rank!r} is not allowed; it must be a positive integer.")
        require(is_number(temp) and temp >= 0,
                f"attention_kwargs.temp={temp!r} is not allowed; it must be a number >= 0.")
        for flag in ("strict", "unit_gate"):
            check_flag(f"attention_kwargs.{flag}", kwargs[flag])
        return kwargs

    def head_weight(self, name: str) -> jax.Array:
        cfg, kw = self.cfg, self.cfg.attention_kwargs
        H, E, D, r = cfg.n_heads, cfg.d_model, cfg.d_head, kw["rank"]
        A_HER = self.param(f"{name}_A", logical(factor_init, "heads", "embed", "rank"), (H, E, r),
                           cfg.storage_dtype)
        B_HRD = self.param(f"{name}_B", factor_init, (H, r, D), cfg.storage_dtype)
        base_HED = None if kw["strict"] else self.param(
            f"{name}_base", logical(base_init, "heads", "embed", "head_dim"), (H, E, D),
            cfg.storage_dtype)
        W_HED = factorized_weight(A_HER, B_HRD, base_HED, kw["temp"], kw["unit_gate"])
        return W_HED.astype(cfg.compute_dtype)

    @nn.compact
    def __call__(self, x_BLE: jax.Array, padding_mask_BL: jax.Array | None = None,
                 lengths_B: jax.Array | None = None) -> jax.Array:
        """`lengths_B`: decode mode only, each row's length once x's tokens are cached."""
        cfg = self.cfg
        chex.assert_rank(x_BLE, 3)
        x_BLE = x_BLE.astype(cfg.compute_dtype)
        q_BLHD, k_BLHD, v_BLHD = (jnp.einsum("ble,hed->blhd", x_BLE, self.head_weight(n))
                                  for n in ("query", "key", "value"))
        out_BLHD = cache.attention_over_tokens(self, q_BLHD, k_BLHD, v_BLHD, padding_mask_BL,
                                               lengths_B)
        return core.output_projection(cfg, use_bias=False, kernel_init=base_init_2d)(out_BLHD)
