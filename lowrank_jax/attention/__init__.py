"""The registry of attention variants: one module per file, chosen by ModelConfig.attention.

Each entry is a subclass of attention.base.Attention, whose docstring is the contract.
Adding a variant: its file, one line here, its float64 reference in tests/reference.py,
and configs/lm_<name>.py (README: "Adding an attention variant").
"""
from lowrank_jax.attention.deep_qkv import DeepQKVAttention
from lowrank_jax.attention.base import Attention
from lowrank_jax.attention.linformer import LinformerAttention
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
    return ATTENTIONS[cfg.attention].TOKEN_COLUMNS


def attention_path(cfg, backend: str | None = None) -> str:
    """"fast" or "plain": the path cfg's attention takes in a forward pass on `backend`
    (default: this machine's) when the attention weights are not asked for. Under a padding
    mask that is not right padding, standard, deep_qkv and lowrank_qk take the plain form."""
    return "fast" if ATTENTIONS[cfg.attention].fast_path(cfg, backend) else "plain"


def shared_module_names() -> set[str]:
    """The top-level parameter names of modules shared across layers (counted as attention)."""
    return {cls.SHARED_NAME for cls in ATTENTIONS.values() if cls.SHARED_NAME}


__all__ = ["ATTENTIONS", "Attention", "DeepQKVAttention", "attention_path", "LinformerAttention", "LowRankQKAttention",
           "StandardAttention", "shared_module_names", "weights_are_per_token"]
