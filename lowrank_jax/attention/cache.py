"""Decode caches (cfg.mode "prefill" and "step"): what a causal attention keeps between calls.

A prefill runs the right-padded prompts through the ordinary causal attention in one
pass and fills the cache. A step passes the cache back and adds one token a row.
`lengths_B` is each row's length once this call's tokens are in the cache, so a step's
token sits at position lengths_B - 1 and sees the keys at positions < lengths_B; rows
move independently. The caches live in the Flax "cache" collection.

Here: the key/value cache of the variants that attend to every earlier token (standard,
deep_qkv, lowrank_qk). The causal Linformer keeps compressed slots instead (linformer.py).
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

from lowrank_jax.attention import core

CACHE = "cache"

Attend = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def cache_variable(module: nn.Module, name: str, shape, dtype):
    return module.variable(CACHE, name, jnp.zeros, shape, dtype)


def write_at(cache_BSHD: jax.Array, x_B1HD: jax.Array, index_B: jax.Array) -> jax.Array:
    """Row b's one new entry goes in at cache row index_B[b]."""
    return cache_BSHD.at[jnp.arange(cache_BSHD.shape[0]), index_B].set(x_B1HD[:, 0])


def pad_rows(x_BLHD: jax.Array, rows: int) -> jax.Array:
    return jnp.pad(x_BLHD, ((0, 0), (0, rows - x_BLHD.shape[1]), (0, 0), (0, 0)))


def kv_cached_attention(module: nn.Module, attend: Attend, q_BLHD, k_BLHD, v_BLHD, lengths_B,
                        scale) -> jax.Array:
    """The decode-mode attention of a variant whose cache is every key and value so far.

    `attend(q, k, v) -> out_BLHD` is the module's own causal attention, which the prefill
    uses as-is. Cache: "cached_key" (B, max_len, H, Dk) and "cached_value" (B, max_len, H,
    Dv) in the compute dtype; Dk is r for lowrank_qk, whose keys are already multiplied by U.
    """
    step = module.cfg.mode == "step"
    batch, max_len = q_BLHD.shape[0], module.cfg.max_len
    key, value = (cache_variable(module, name, (batch, max_len, *x.shape[2:]), x.dtype)
                  for name, x in (("cached_key", k_BLHD), ("cached_value", v_BLHD)))
    if not step:
        # Positions past a row's length hold padding; a step overwrites them before they are seen.
        key.value, value.value = pad_rows(k_BLHD, max_len), pad_rows(v_BLHD, max_len)
        return attend(q_BLHD, k_BLHD, v_BLHD)
    key.value = write_at(key.value, k_BLHD, lengths_B - 1)
    value.value = write_at(value.value, v_BLHD, lengths_B - 1)
    visible_B11S = (jnp.arange(max_len) < lengths_B[:, None])[:, None, None, :]
    out_BLHD, probs_BH1S = core.softmax_attention(q_BLHD, key.value, value.value, visible_B11S,
                                                  scale)
    core.sow_weights(module, probs_BH1S)
    return out_BLHD


def attention_over_tokens(module: nn.Module, q_BLHD, k_BLHD, v_BLHD, padding_mask_BL,
                          lengths_B) -> jax.Array:
    """The attention of a variant that attends to every earlier token (1/sqrt(d_head) scale):
    cuDNN flash attention where core.token_fast_path allows and the weights are not asked
    for (under a padding mask too: padded_cudnn_attention), else masked softmax attention;
    through the K/V cache in decode mode."""
    cfg = module.cfg
    scale = cfg.d_head ** -0.5
    if core.token_fast_path(cfg) and not core.wants_weights(module):
        if padding_mask_BL is None:
            attend = functools.partial(core.cudnn_attention, causal=cfg.causal, scale=scale)
        else:
            attend = functools.partial(core.padded_cudnn_attention,
                                       padding_mask_BL=padding_mask_BL, causal=cfg.causal,
                                       scale=scale)
    else:
        attend = functools.partial(core.self_attention, module, causal=cfg.causal,
                                   padding_mask_BL=padding_mask_BL, scale=scale)
    if cfg.decoding:
        return kv_cached_attention(module, attend, q_BLHD, k_BLHD, v_BLHD, lengths_B, scale)
    return attend(q_BLHD, k_BLHD, v_BLHD)
