"""Building blocks shared by every model: norms and the feed-forward network."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from lowrank_jax.attention.core import torch_linear_init
from lowrank_jax.partitioning import logical

if TYPE_CHECKING:
    from lowrank_jax.config import ModelConfig

# PyTorch's LayerNorm epsilon; the seeds train with it.
NORM_EPS = 1e-5
ACTIVATIONS = {"relu": jax.nn.relu, "gelu": jax.nn.gelu}
v_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform", in_axis=1, out_axis=0)


def make_norm(cfg: "ModelConfig", name: str) -> nn.Module:
    kinds = {"layernorm": nn.LayerNorm, "rmsnorm": nn.RMSNorm}
    extra = {"use_fast_variance": False} if cfg.norm == "layernorm" else {}
    return kinds[cfg.norm](epsilon=NORM_EPS, dtype=cfg.compute_dtype, **extra,
                           param_dtype=cfg.storage_dtype, name=name)


def dense(cfg: "ModelConfig", features: int, name: str, axes: tuple) -> nn.Module:
    return nn.Dense(features, use_bias=cfg.use_bias, kernel_init=logical(torch_linear_init, *axes),
                    dtype=cfg.compute_dtype, param_dtype=cfg.storage_dtype, name=name)


class LowRankLinear(nn.Module):
    """y = x W with W = U V^T (seed 003): U (d_in x r), V (d_out x r), no bias.

    x U V^T costs r (d_in + d_out) per token instead of d_in d_out, and so do the parameters.
    """

    features: int
    rank: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    axes: tuple = (None, None)   # the logical names of d_in and d_out

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        # Each factor keeps PyTorch's fan-in scaling: U by d_in, V by r.
        U = self.param("U", logical(torch_linear_init, self.axes[0], "rank"),
                       (x.shape[-1], self.rank), self.param_dtype)
        V = self.param("V", logical(v_init, self.axes[1], "rank"), (self.features, self.rank),
                       self.param_dtype)
        x = x.astype(self.dtype)
        return (x @ U.astype(self.dtype)) @ V.T.astype(self.dtype)


def ffn_layer(cfg: "ModelConfig", features: int, name: str, axes: tuple) -> nn.Module:
    if cfg.ffn == "lowrank":
        return LowRankLinear(features, cfg.ffn_rank, cfg.compute_dtype, cfg.storage_dtype, axes,
                             name=name)
    return dense(cfg, features, name, axes)


class FeedForward(nn.Module):
    """down(act(up(x))): E -> d_ff -> E, dense or factorized (ffn="lowrank")."""

    cfg: "ModelConfig"

    @nn.compact
    def __call__(self, x_BLE: jax.Array) -> jax.Array:
        cfg = self.cfg
        up = ffn_layer(cfg, cfg.d_ff, "up", ("embed", "mlp"))
        h_BLF = ACTIVATIONS[cfg.activation](up(x_BLE))
        return ffn_layer(cfg, cfg.d_model, "down", ("mlp", "embed"))(h_BLF)
