"""Building blocks shared by every model: norms and the feed-forward network."""
from __future__ import annotations

from typing import TYPE_CHECKING

import jax
from flax import linen as nn

from lowrank_jax.attention.core import torch_linear_init

if TYPE_CHECKING:
    from lowrank_jax.config import ModelConfig

# PyTorch's LayerNorm epsilon; the seeds train with it.
NORM_EPS = 1e-5
ACTIVATIONS = {"relu": jax.nn.relu, "gelu": jax.nn.gelu}


def make_norm(cfg: "ModelConfig", name: str) -> nn.Module:
    kinds = {"layernorm": nn.LayerNorm, "rmsnorm": nn.RMSNorm}
    extra = {"use_fast_variance": False} if cfg.norm == "layernorm" else {}
    return kinds[cfg.norm](epsilon=NORM_EPS, dtype=cfg.compute_dtype, **extra,
                           param_dtype=cfg.params_dtype, name=name)


def dense(cfg: "ModelConfig", features: int, name: str) -> nn.Module:
    return nn.Dense(features, use_bias=cfg.use_bias, kernel_init=torch_linear_init,
                    dtype=cfg.compute_dtype, param_dtype=cfg.params_dtype, name=name)


class FeedForward(nn.Module):
    """down(act(up(x))): E -> d_ff -> E."""

    cfg: "ModelConfig"

    @nn.compact
    def __call__(self, x_BLE: jax.Array) -> jax.Array:
        cfg = self.cfg
        h_BLF = ACTIVATIONS[cfg.activation](dense(cfg, cfg.d_ff, "up")(x_BLE))
        return dense(cfg, cfg.d_model, "down")(h_BLF)
