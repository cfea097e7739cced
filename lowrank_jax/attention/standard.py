"""Standard multi-head softmax attention (causal unless the model is an encoder).

On GPU with bf16/fp16 compute it runs cuDNN flash attention through
`jax.nn.dot_product_attention` (core.token_fast_path), under a padding mask too
(core.padded_cudnn_attention); elsewhere, and whenever the caller asks for the attention
weights (which flash attention never materialises), the XLA einsum path.
"""
from __future__ import annotations

import chex
import jax
from flax import linen as nn

from lowrank_jax.attention import cache, core
from lowrank_jax.attention.base import Attention

class StandardAttention(Attention):
    """No options: the base class's DEFAULTS, resolve and fast path."""

    @nn.compact
    def __call__(self, x_BLE: jax.Array, padding_mask_BL: jax.Array | None = None,
                 lengths_B: jax.Array | None = None) -> jax.Array:
        """`lengths_B`: decode mode only, each row's length once x's tokens are cached."""
        cfg = self.cfg
        chex.assert_rank(x_BLE, 3)
        q_BLHD, k_BLHD, v_BLHD = (core.HeadProjection(cfg, name=n)(x_BLE)
                                  for n in ("query", "key", "value"))
        out_BLHD = cache.attention_over_tokens(self, q_BLHD, k_BLHD, v_BLHD, padding_mask_BL,
                                               lengths_B)
        return core.output_projection(cfg, cfg.use_bias)(out_BLHD)
