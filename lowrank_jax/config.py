"""ModelConfig: the one frozen description of a model, validated at construction.

Every check raises `UserError` with one sentence that names the field, the value given
and what is allowed, so command-line tools can print it as-is and exit 2.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax.core import FrozenDict

from lowrank_jax.attention import ATTENTIONS
from lowrank_jax.validation import (UserError, check_choice, check_flag, check_kwargs,
                                   check_positive_int, is_int, is_number, require)

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16,
          "float64": jnp.float64}
CHOICES = {
    "norm": ("layernorm", "rmsnorm"),
    "norm_position": ("pre", "post"),
    "ffn": ("dense", "lowrank"),
    "activation": ("relu", "gelu"),
    "dtype": tuple(DTYPES),
    "param_dtype": tuple(DTYPES),
    "remat": ("none", "block"),
    "mode": ("forward", "prefill", "step"),
}
POSITIVE_INTS = ("vocab_size", "max_len", "d_model", "n_layers", "n_heads", "d_ff")
BOOLS = ("causal", "use_bias", "tie_embeddings", "deterministic")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture and numerics of a GPT. Eval/train variants differ only by `.replace(...)`."""

    vocab_size: int = 256
    max_len: int = 512
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 1024
    attention: str = "standard"
    # False: an encoder (every position sees every other), e.g. under a classifier head.
    causal: bool = True
    attention_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    norm: str = "layernorm"
    norm_position: str = "pre"
    ffn: str = "dense"
    ffn_rank: int = 0  # the rank of both factorized FFN matrices when ffn="lowrank" (0: unset)
    activation: str = "gelu"
    dropout: float = 0.0
    use_bias: bool = True
    tie_embeddings: bool = True
    dtype: str = "float32"
    param_dtype: str = "float32"
    # PyTorch's nn.Embedding draws N(0, 1); GPT-style LMs want a small std.
    embed_init_std: float = 0.02
    # "block": each block's activations are recomputed in the backward pass instead of kept,
    # so long sequences fit (about a third more compute).
    remat: str = "none"
    # True: no dropout (eval, decode). Training uses cfg.replace(deterministic=False).
    deterministic: bool = True
    # "forward": whole sequences (training, evaluation). "prefill": the same pass, which also
    # fills the decode caches (the "cache" collection). "step": one token a row through the
    # caches a prefill made. lowrank_jax.generate uses the last two; never a training config.
    mode: str = "forward"

    def __post_init__(self):
        for field in POSITIVE_INTS:
            check_positive_int(field, getattr(self, field))
        for field, allowed in CHOICES.items():
            check_choice(field, getattr(self, field), allowed)
        for field in BOOLS:
            check_flag(field, getattr(self, field))
        if self.ffn == "lowrank":  # ffn_rank is ignored by the dense FFN
            largest = min(self.d_model, self.d_ff)
            require(is_int(self.ffn_rank) and 1 <= self.ffn_rank <= largest,
                    f"ffn_rank={self.ffn_rank!r} is not allowed with ffn='lowrank'; it must be an "
                    f"integer from 1 to min(d_model, d_ff)={largest}.")
        for field in ("dtype", "param_dtype"):
            # Without x64 mode JAX would silently compute in float32.
            require(getattr(self, field) != "float64" or jax.config.jax_enable_x64,
                    f"{field}='float64' needs JAX's x64 mode; set JAX_ENABLE_X64=1 or "
                    "jax.config.update('jax_enable_x64', True) first.")
        require(self.d_model % self.n_heads == 0,
                f"d_model={self.d_model} is not allowed with n_heads={self.n_heads}; "
                "d_model must be divisible by n_heads.")
        require(is_number(self.dropout) and 0.0 <= self.dropout < 1.0,
                f"dropout={self.dropout!r} is not allowed; it must be in [0, 1).")
        require(is_number(self.embed_init_std) and self.embed_init_std > 0,
                f"embed_init_std={self.embed_init_std!r} is not allowed; it must be positive.")
        if self.decoding:
            require(self.causal,
                    f"causal=False is not allowed with mode={self.mode!r} (decoding, as generate "
                    "uses); an encoder sees the whole sequence at once, so only a causal model "
                    "can generate.")
            require(self.deterministic,
                    f"mode={self.mode!r} is not allowed with deterministic=False; decoding never "
                    "uses dropout, so the decode modes belong in inference configs, not training "
                    "ones.")
        check_choice("attention", self.attention, tuple(ATTENTIONS))
        require(isinstance(self.attention_kwargs, Mapping),
                f"attention_kwargs={self.attention_kwargs!r} is not allowed; it must be a mapping.")
        variant = ATTENTIONS[self.attention]
        kwargs = check_kwargs(f"attention_kwargs for {self.attention!r}",
                              self.attention_kwargs, variant.DEFAULTS)
        kwargs = variant.resolve(self, kwargs)
        # Frozen and hashable, so a config can be a static argument of jit.
        object.__setattr__(self, "attention_kwargs", FrozenDict(kwargs))

    @property
    def decoding(self) -> bool:
        """Prefill or step: the attention layers keep caches."""
        return self.mode != "forward"

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def compute_dtype(self):
        """The jnp dtype activations are computed in (the field dtype names it)."""
        return DTYPES[self.dtype]

    @property
    def storage_dtype(self):
        """The jnp dtype parameters are stored in (the field param_dtype names it)."""
        return DTYPES[self.param_dtype]

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["attention_kwargs"] = dict(self.attention_kwargs)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"model.{unknown[0]} is not a model field; "
                              f"known fields are {', '.join(sorted(known))}.")
        return cls(**values)
