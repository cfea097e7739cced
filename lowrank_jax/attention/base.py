"""The contract every attention variant follows; the registry (attention/__init__.py) and
everything built on it (ModelConfig, the GPT, decoding, tests, benchmarks) rely on it.

A variant is a Linen module built as `cls(cfg, shared=...)` and called as
`module(x_BLE, padding_mask_BL=None, lengths_B=None) -> y_BLE`:

- `x_BLE` (B, L, E) in, (B, L, E) out. `padding_mask_BL` (bool, True for real tokens):
  padded positions must never reach a real one. A causal variant (cfg.causal) must never
  let position i see a position after i, bit for bit.
- Decoding (cfg.mode): in "prefill" the call is the ordinary forward pass and also fills
  the variant's cache in the "cache" collection; in "step" x holds one token a row,
  `lengths_B` is each row's length once that token is in the cache, and the output must
  equal the forward pass's at that position. cache.attention_over_tokens does both for a
  variant that attends to every earlier token (a K/V cache); a variant with another
  memory keeps its own (the causal Linformer's slots).
- Weights: when the caller asks for mutable=["intermediates"], the module sows its
  attention weights (core.sow_weights), (B, H, L, S), so traces and the seed-004 analysis
  read real attention; TOKEN_COLUMNS says whether column j is the key at position j.

Class attributes and hooks (defaults here):
- DEFAULTS: its attention_kwargs and their defaults; unknown keys are refused.
- resolve(cfg, kwargs): validates the options (one sentence naming the field, via
  lowrank_jax.validation.require) and fills in values derived from the model.
- EXAMPLES: a few option sets that fit a small model (max_len 16, d_head 4); the test
  suite runs every check on each of them that fits the model at hand, so a new variant
  is tested by being registered. An example with "causal": False is for encoders.
- fast_path(cfg, backend=None): whether a forward pass takes a GPU fast path.
- shared_module(cfg): a module every layer's attention shares (e.g. the layerwise
  Linformer's E), or None; the GPT creates it once under SHARED_NAME and passes it to
  each layer as `shared`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from flax import linen as nn

from lowrank_jax.attention import core

if TYPE_CHECKING:
    from lowrank_jax.config import ModelConfig


class Attention(nn.Module):
    cfg: "ModelConfig"
    shared: Any = None

    DEFAULTS: ClassVar[dict] = {}
    EXAMPLES: ClassVar[tuple[dict, ...]] = ({},)
    TOKEN_COLUMNS: ClassVar[bool] = True
    SHARED_NAME: ClassVar[str | None] = None

    @staticmethod
    def resolve(cfg: "ModelConfig", kwargs: dict) -> dict:
        del cfg
        return kwargs

    @staticmethod
    def fast_path(cfg: "ModelConfig", backend: str | None = None) -> bool:
        return core.token_fast_path(cfg, backend)

    @classmethod
    def shared_module(cls, cfg: "ModelConfig") -> nn.Module | None:
        del cfg
        return None
