"""Low-rank QK attention (seed 000): queries and keys pass through one shared U (d_k x r).

    Q' = Q U,  K' = K U,  scores = Q' K'^T / sqrt(d_k),  out = softmax(scores + causal) V

U is learnable, shared by every head, and starts orthonormal. It adds nothing to the
function class: W_q U ranges over every E x r matrix as W_q does, for any full-rank U, so
a fixed U computes the same family of functions. It changes only how training moves
through it, and on a CPU-sized MQAR a learnt U leaves the plateau later than a fixed one
(benchmarks/mqar_lowrank_u.py); `learn_u=False` (not in the seed) keeps U at a fixed
orthonormal matrix, a constant rather than a parameter. U is folded into the
projections (x (W_q,h U)), so the score matmul and the key cache are r wide instead
of d_k; the function is the same. The scores are still an L x L matrix: the cost is
O(L^2 r), not the O(L r) the seed states. On a GPU in bf16/fp16 the scores never exist
either: Q' and K' go r wide through cuDNN flash attention against the d_k-wide V
(core.cudnn_attention), zero-padded to d_k where cuDNN does not take unequal widths.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, ClassVar

import chex
import jax
import numpy as np
from flax import linen as nn

from lowrank_jax.attention import cache, core
from lowrank_jax.attention.base import Attention
from lowrank_jax.validation import check_flag, is_int, require

if TYPE_CHECKING:
    from lowrank_jax.config import ModelConfig


class LowRankQKAttention(Attention):
    DEFAULTS: ClassVar[dict] = {"r": None, "learn_u": True}
    EXAMPLES: ClassVar[tuple[dict, ...]] = ({"r": 2}, {"r": 4}, {"r": 2, "learn_u": False})

    @staticmethod
    def resolve(cfg: "ModelConfig", kwargs: dict) -> dict:
        r = kwargs["r"]
        require(is_int(r) and 1 <= r <= cfg.d_head,
                f"attention_kwargs.r={r!r} is not allowed; lowrank_qk needs an integer rank "
                f"from 1 to d_head={cfg.d_head} (d_model / n_heads).")
        check_flag("attention_kwargs.learn_u", kwargs["learn_u"])
        return kwargs

    @nn.compact
    def __call__(self, x_BLE: jax.Array, padding_mask_BL: jax.Array | None = None,
                 lengths_B: jax.Array | None = None) -> jax.Array:
        """`lengths_B`: decode mode only, each row's length once x's tokens are cached."""
        cfg = self.cfg
        chex.assert_rank(x_BLE, 3)
        shape = (cfg.d_head, cfg.attention_kwargs["r"])
        U_DR = (self.param("U", nn.initializers.orthogonal(), shape, cfg.storage_dtype)
                if cfg.attention_kwargs["learn_u"]
                else fixed_u(*shape).astype(cfg.storage_dtype))
        q_BLHR = core.HeadProjection(cfg, name="query")(x_BLE, U_DR)
        k_BLHR = core.HeadProjection(cfg, name="key")(x_BLE, U_DR)
        v_BLHD = core.HeadProjection(cfg, name="value")(x_BLE)
        # The cache keeps the r-wide K' = K U, not K.
        out_BLHD = cache.attention_over_tokens(self, q_BLHR, k_BLHR, v_BLHD, padding_mask_BL,
                                               lengths_B)
        return core.output_projection(cfg, cfg.use_bias)(out_BLHD)


@functools.lru_cache(maxsize=None)
def fixed_u(d_head: int, r: int) -> np.ndarray:
    """The U of learn_u=False: r orthonormal columns, the same for every layer and run (any
    orthonormal U gives the same function class), a NumPy constant of the compiled program."""
    q, upper = np.linalg.qr(np.random.default_rng(0).standard_normal((d_head, d_head)))
    return (q * np.sign(np.diag(upper)))[:, :r]
