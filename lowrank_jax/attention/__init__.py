"""The registry of attention variants: one module per file, chosen by ModelConfig.attention.

Each entry is a Linen module class built as `cls(cfg)` and called on x (B, L, E); it
declares DEFAULTS (its attention_kwargs), resolve(cfg, kwargs), which validates them
and returns them with any value derived from the model filled in, and fast_path(cfg,
padded, backend=None), whether a forward pass takes its GPU fast path.
"""
from lowrank_jax.attention.deep_qkv import DeepQKVAttention
from lowrank_jax.attention.linformer import LinformerAttention, LinformerProjection
from lowrank_jax.attention.lowrank_qk import LowRankQKAttention
from lowrank_jax.attention.standard import StandardAttention

ATTENTIONS = {
    "standard": StandardAttention,
    "deep_qkv": DeepQKVAttention,
    "lowrank_qk": LowRankQKAttention,
    "linformer": LinformerAttention,
}


def weights_are_per_token(cfg) -> bool:
    """True when column j of the sown attention weights is the key at position j."""
    return getattr(ATTENTIONS[cfg.attention], "TOKEN_COLUMNS", True)


def attention_path(cfg, padded: bool = False, backend: str | None = None) -> str:
    """"fast" or "plain": the path cfg's attention takes in a forward pass on `backend`
    (default: this machine's) when the attention weights are not asked for."""
    return "fast" if ATTENTIONS[cfg.attention].fast_path(cfg, padded, backend) else "plain"


def layer_shared_module(cfg):
    """A module every layer's attention shares (the layerwise Linformer E), or None."""
    kw = cfg.attention_kwargs
    if cfg.attention == "linformer" and kw["sharing"] == "layerwise":
        return LinformerProjection(cfg, name="linformer_shared")
    return None

__all__ = ["ATTENTIONS", "DeepQKVAttention", "attention_path", "LinformerAttention", "LowRankQKAttention",
           "StandardAttention", "layer_shared_module", "weights_are_per_token"]
