"""Linformer attention (seed 002), bidirectional and truly causal.

Bidirectional: learnable E, F in R^{max_len x k}, sliced to the input length L, compress
keys and values along the sequence: K' = E^T K, V' = F^T V (k x d). Each query attends
to the k compressed rows: softmax(Q K'^T / sqrt(d)) V'. A padding mask zeroes padded
keys and values before the projection, so padding never leaks into K' or V'.

Causal: E is block-diagonal. The sequence is cut into blocks of `block_size` b; block j
is compressed to `block_slots` c rows, K'_j = E_j^T K_j (E_j is b x c). A query at
position i attends to the slots of the completed blocks j < block(i) plus the exact keys
of its own block at positions <= i, with one softmax over the union. No position after
i reaches i. There are k = (max_len / b) * c slots in all.

Sharing (as in the paper and fairseq): "none", one E and F per head; "headwise", one
E and F per layer for all heads; "kv", E = F per layer; "layerwise", one E (= F) for
every layer and head, owned by the GPT and passed in as `shared`.

projection="pool" (not in the seed; the paper names pooling among its general
projections) fixes E = F to mean pooling: slot s of the sequence (causal: of each block)
is the mean of its s-th contiguous segment, so there are no projection weights and
`sharing` has nothing to share. A learnt E is a linear map of the whole sequence, weights
per position, and a classifier can fit its training rows through it: on ListOps the
learnt E overfits past a few thousand steps, and on a CPU-sized run pooling did not
(README, "ListOps").

This file is the module (options, projections, the decode cache); the math is in
linformer_ops.py. Fast paths (a GPU, bf16/fp16, weights not asked for): the bidirectional
form compresses, then runs cuDNN flash attention over the k slots; the causal form runs
the fused Pallas kernel of linformer_kernel.py, which never builds the (B, H, L, k + b)
scores. Both take padding masks, and both compute the same function as the einsum forms.
"""
from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, ClassVar

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from lowrank_jax.attention import cache, core, linformer_kernel
from lowrank_jax.attention import linformer_ops as ops
from lowrank_jax.attention.base import Attention
from lowrank_jax.validation import check_choice, is_int, require

if TYPE_CHECKING:
    from lowrank_jax.config import ModelConfig

SHARING = ("none", "headwise", "kv", "layerwise")
PROJECTIONS = ("learnt", "pool")
DEFAULT_K = 64
LARGEST_DEFAULT_BLOCK = 64


def default_block_size(max_len: int) -> int:
    """The largest divisor of max_len up to min(64, max_len / 4): at least four blocks."""
    limit = max(1, min(LARGEST_DEFAULT_BLOCK, max_len // 4))
    return max(d for d in range(1, limit + 1) if max_len % d == 0)


def resolve_causal(cfg: "ModelConfig", kw: dict) -> dict:
    b = default_block_size(cfg.max_len) if kw["block_size"] is None else kw["block_size"]
    require(is_int(b) and b >= 1 and cfg.max_len % b == 0,
            f"attention_kwargs.block_size={b!r} is not allowed with max_len={cfg.max_len}; "
            "the causal Linformer needs a block size that divides max_len.")
    n_blocks = cfg.max_len // b
    c = kw["block_slots"]
    if c is None:
        k = kw["k"]
        require(k is None or (is_int(k) and k % n_blocks == 0),
                f"attention_kwargs.k={k!r} is not allowed with max_len={cfg.max_len} and "
                f"block_size={b}; the causal Linformer has block_slots x {n_blocks} slots.")
        c = max(1, b // 8) if k is None else k // n_blocks
    require(is_int(c) and 1 <= c <= b,
            f"attention_kwargs.block_slots={c!r} is not allowed; it must be an integer from 1 "
            f"to block_size={b}.")
    require(kw["k"] is None or kw["k"] == n_blocks * c,
            f"attention_kwargs.k={kw['k']!r} is not allowed with block_slots={c}; it must be "
            f"(max_len / block_size) * block_slots = {n_blocks * c}.")
    return {**kw, "k": n_blocks * c, "block_size": b, "block_slots": c}


def resolve_bidirectional(cfg: "ModelConfig", kw: dict) -> dict:
    k = min(DEFAULT_K, cfg.max_len) if kw["k"] is None else kw["k"]
    require(is_int(k) and 1 <= k <= cfg.max_len,
            f"attention_kwargs.k={k!r} is not allowed; it must be an integer from 1 to "
            f"max_len={cfg.max_len}.")
    for field in ("block_size", "block_slots"):
        require(kw[field] is None,
                f"attention_kwargs.{field}={kw[field]!r} is not allowed with causal=false; "
                "blocks belong to the causal Linformer.")
    return {**kw, "k": k}


def projection_shape(cfg: "ModelConfig") -> tuple[int, ...]:
    """(max_len, columns), with a leading head axis when every head has its own."""
    kw = cfg.attention_kwargs
    columns = kw["block_slots"] if kw["causal"] else kw["k"]
    heads = (cfg.n_heads,) if kw["sharing"] == "none" else ()
    return (*heads, cfg.max_len, columns)


def slot_span(cfg: "ModelConfig") -> int:
    """The positions one slot's column of E covers: a block (causal) or the sequence."""
    kw = cfg.attention_kwargs
    return kw["block_size"] if kw["causal"] else cfg.max_len


def projection_init(cfg: "ModelConfig"):
    """U(-1/sqrt(n), 1/sqrt(n)) with n the rows one slot sums over: PyTorch's linear init."""
    bound = 1 / math.sqrt(slot_span(cfg))
    return lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, -bound, bound)


@functools.lru_cache(maxsize=None)
def pooling(max_len: int, span: int, columns: int) -> np.ndarray:
    """E of projection="pool", (max_len, columns): within each `span` positions (a causal
    block, or the whole sequence), slot s is the mean of the s-th of `columns` contiguous
    segments; a NumPy constant of the compiled program. As with a learnt E, positions past
    a row's length or padded add nothing: their slots hold zero keys and values, and a
    slot they cut short is still divided by its whole segment."""
    slot_L = np.arange(max_len) % span * columns // span
    P = (slot_L[:, None] == np.arange(columns)).astype(np.float64)
    return P / P[:span].sum(0)


class LinformerProjection(nn.Module):
    """The one E (= F) that every layer shares under sharing="layerwise"."""

    cfg: Any

    @nn.compact
    def __call__(self) -> jax.Array:
        return self.param("E", projection_init(self.cfg), projection_shape(self.cfg),
                          self.cfg.storage_dtype)


class LinformerAttention(Attention):
    """`shared`: the LinformerProjection every layer uses under sharing="layerwise"."""

    # Its weights are over compressed slots (and, causal, the current block), not tokens.
    TOKEN_COLUMNS: ClassVar[bool] = False
    # causal None follows the model: a causal LM gets the causal Linformer, an encoder not.
    DEFAULTS: ClassVar[dict] = {"k": None, "causal": None, "sharing": "headwise",
                                "block_size": None, "block_slots": None, "projection": "learnt"}
    EXAMPLES: ClassVar[tuple[dict, ...]] = (
        {"block_size": 4, "block_slots": 2},
        {"block_size": 4, "block_slots": 3, "sharing": "none"},
        {"block_size": 2, "block_slots": 1, "sharing": "kv"},
        {"block_size": 4, "block_slots": 2, "sharing": "layerwise"},
        {"causal": False, "k": 6, "sharing": "none"},
        {"causal": False, "k": 6, "sharing": "kv"},
        {"block_size": 4, "block_slots": 3, "projection": "pool"},
        {"causal": False, "k": 6, "projection": "pool"},
    )
    SHARED_NAME: ClassVar[str] = "linformer_shared"

    @classmethod
    def shared_module(cls, cfg: "ModelConfig"):
        kw = cfg.attention_kwargs
        if kw["sharing"] == "layerwise" and kw["projection"] == "learnt":
            return LinformerProjection(cfg, name=cls.SHARED_NAME)
        return None

    @staticmethod
    def fast_path(cfg: "ModelConfig", backend: str | None = None) -> bool:
        """Half precision on a GPU, and a shape the kernel (causal) or cuDNN (bidirectional)
        takes; padding masks are handled on either path."""
        kw = cfg.attention_kwargs
        fits = (linformer_kernel.supports(kw["block_size"], cfg.d_head) if kw["causal"]
                else core.cudnn_head_fits(cfg.d_head))
        return core.fast_hardware(cfg.compute_dtype, backend) and fits

    @staticmethod
    def resolve(cfg: "ModelConfig", kwargs: dict) -> dict:
        check_choice("attention_kwargs.sharing", kwargs["sharing"], SHARING)
        check_choice("attention_kwargs.projection", kwargs["projection"], PROJECTIONS)
        causal = cfg.causal if kwargs["causal"] is None else kwargs["causal"]
        require(causal == cfg.causal,
                f"attention_kwargs.causal={causal!r} is not allowed in a model with "
                f"causal={cfg.causal!r}; a bidirectional Linformer would let a language model "
                "see the future, so set the model's causal=false for an encoder.")
        resolve = resolve_causal if causal else resolve_bidirectional
        return resolve(cfg, {**kwargs, "causal": causal})

    def projections(self):
        """(E, F); F is E itself under "kv" and "layerwise" sharing and for pooling."""
        cfg = self.cfg
        kw = cfg.attention_kwargs
        if kw["projection"] == "pool":
            P = jnp.asarray(pooling(cfg.max_len, slot_span(cfg), projection_shape(cfg)[-1]))
            return P, P
        sharing = kw["sharing"]
        if sharing == "layerwise":
            E = self.shared()
            return E, E
        def make(name):
            return self.param(name, projection_init(cfg), projection_shape(cfg), cfg.storage_dtype)

        E = make("E")
        return E, (E if sharing == "kv" else make("F"))

    def cached_attention(self, attend, q_BLHD, k_BLHD, v_BLHD, E, F, lengths_B, scale):
        """Decode mode (see cache.py). Cache: "key_slots"/"value_slots" (B, k, H, D), the slots
        of each row's finished blocks (zeros for the others), and "key_block"/"value_block"
        (B, b, H, D), the raw keys and values of the block each row is in: k + b rows, not
        max_len. A block is compressed when its last position is written."""
        kw = self.cfg.attention_kwargs
        size, slots, total = kw["block_size"], kw["block_slots"], kw["k"]
        step = self.cfg.mode == "step"
        batch, _, heads, _ = q_BLHD.shape

        def variable(name, rows, like):
            shape = (batch, rows, heads, like.shape[-1])
            return cache.cache_variable(self, name, shape, like.dtype)

        key_slots, value_slots = (variable(n, total, x) for n, x in (("key_slots", k_BLHD),
                                                                     ("value_slots", v_BLHD)))
        key_block, value_block = (variable(n, size, x) for n, x in (("key_block", k_BLHD),
                                                                    ("value_block", v_BLHD)))
        if not step:
            key_slots.value = ops.finished_slots(k_BLHD, E, lengths_B, size, total)
            value_slots.value = ops.finished_slots(v_BLHD, F, lengths_B, size, total)
            key_block.value = ops.current_block(k_BLHD, lengths_B, size)
            value_block.value = ops.current_block(v_BLHD, lengths_B, size)
            return attend(q_BLHD, k_BLHD, v_BLHD)
        block_B, offset_B = jnp.divmod(lengths_B - 1, size)
        key_block.value = cache.write_at(key_block.value, k_BLHD, offset_B)
        value_block.value = cache.write_at(value_block.value, v_BLHD, offset_B)
        # Rows of the block beyond the offset still hold the previous block: hidden.
        visible_BS = jnp.concatenate([jnp.arange(total) // slots < block_B[:, None],
                                      jnp.arange(size) <= offset_B[:, None]], axis=1)
        out_BLHD, probs_BH1S = core.softmax_attention(
            q_BLHD, jnp.concatenate([key_slots.value, key_block.value], axis=1),
            jnp.concatenate([value_slots.value, value_block.value], axis=1),
            visible_BS[:, None, None, :], scale)
        core.sow_weights(self, probs_BH1S)
        finished_B = offset_B == size - 1
        key_slots.value = ops.store_finished_block(key_slots.value, key_block.value, E, block_B,
                                               finished_B)
        value_slots.value = ops.store_finished_block(value_slots.value, value_block.value, F, block_B,
                                                 finished_B)
        return out_BLHD

    @nn.compact
    def __call__(self, x_BLE: jax.Array, padding_mask_BL: jax.Array | None = None,
                 lengths_B: jax.Array | None = None) -> jax.Array:
        """`padding_mask_BL` (bool, True for real tokens) keeps padding out of K' and V'.
        `lengths_B`: decode mode only, each row's length once x's tokens are cached."""
        cfg, kw = self.cfg, self.cfg.attention_kwargs
        chex.assert_rank(x_BLE, 3)
        q_BLHD, k_BLHD, v_BLHD = (core.HeadProjection(cfg, name=n)(x_BLE)
                                  for n in ("query", "key", "value"))
        if padding_mask_BL is not None:
            chex.assert_shape(padding_mask_BL, x_BLE.shape[:2])
            keep_BL11 = padding_mask_BL[:, :, None, None].astype(k_BLHD.dtype)
            k_BLHD, v_BLHD = k_BLHD * keep_BL11, v_BLHD * keep_BL11
        E, F = (P.astype(cfg.compute_dtype) for P in self.projections())
        scale = cfg.d_head ** -0.5
        fast = self.fast_path(cfg) and not core.wants_weights(self)

        def attend(q_BLHD, k_BLHD, v_BLHD):
            if fast and kw["causal"]:
                return ops.causal_attention_fast(q_BLHD, k_BLHD, v_BLHD, E, F, kw["block_size"],
                                             kw["block_slots"], scale, padding_mask_BL)
            if fast:
                return ops.bidirectional_attention_fast(q_BLHD, k_BLHD, v_BLHD, E, F, scale)
            if kw["causal"]:
                out_BLHD, probs = ops.causal_attention(q_BLHD, k_BLHD, v_BLHD, E, F, kw["block_size"],
                                                   kw["block_slots"], scale, padding_mask_BL)
            else:
                out_BLHD, probs = ops.bidirectional_attention(q_BLHD, k_BLHD, v_BLHD, E, F, scale)
            core.sow_weights(self, probs)
            return out_BLHD

        out_BLHD = (self.cached_attention(attend, q_BLHD, k_BLHD, v_BLHD, E, F, lengths_B, scale)
                    if cfg.decoding else attend(q_BLHD, k_BLHD, v_BLHD))
        return core.output_projection(cfg, cfg.use_bias)(out_BLHD)
