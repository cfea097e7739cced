"""The registry of attention variants: one module per file, chosen by ModelConfig.attention.

Each entry is a Linen module class built as `cls(cfg)` and called on x (B, L, E); it
declares DEFAULTS (its attention_kwargs) and check(cfg, kwargs) (their validation).
"""
from lowrank_jax.attention.deep_qkv import DeepQKVAttention
from lowrank_jax.attention.lowrank_qk import LowRankQKAttention
from lowrank_jax.attention.standard import StandardAttention

ATTENTIONS = {
    "standard": StandardAttention,
    "deep_qkv": DeepQKVAttention,
    "lowrank_qk": LowRankQKAttention,
}

__all__ = ["ATTENTIONS", "DeepQKVAttention", "LowRankQKAttention", "StandardAttention"]
