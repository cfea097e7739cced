"""The GPT decoder: embeddings, N blocks of (attention, feed-forward), final norm, LM head."""
from __future__ import annotations

import functools
from collections import Counter
from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import linen as nn
from flax import traverse_util
from flax.linen.linear import default_kernel_init

from lowrank_jax.attention import ATTENTIONS, cache, shared_module_names
from lowrank_jax.attention.core import ATTENTION_WEIGHTS, at_least_float32
from lowrank_jax.config import ModelConfig
from lowrank_jax.validation import UserError
from lowrank_jax.layers import FeedForward, make_norm
from lowrank_jax.partitioning import logical


class Block(nn.Module):
    """x + attn(norm(x)), then x + ffn(norm(x)) (pre-norm), or norm(x + f(x)) (post-norm)."""

    cfg: ModelConfig
    shared: Any = None  # a module every layer's attention shares, if the variant has one

    @nn.compact
    def __call__(self, x_BLE: jax.Array, padding_mask_BL: jax.Array | None = None,
                 lengths_B: jax.Array | None = None) -> jax.Array:
        cfg = self.cfg
        attention = ATTENTIONS[cfg.attention](cfg, shared=self.shared, name="attention")
        sublayers = ((functools.partial(attention, padding_mask_BL=padding_mask_BL,
                                        lengths_B=lengths_B),
                      make_norm(cfg, "norm1")),
                     (FeedForward(cfg, name="ffn"), make_norm(cfg, "norm2")))
        for sublayer, norm in sublayers:
            if cfg.norm_position == "pre":
                x_BLE = x_BLE + self.dropout(sublayer(norm(x_BLE)))
            else:
                x_BLE = norm(x_BLE + self.dropout(sublayer(x_BLE)))
        return x_BLE

    def dropout(self, x):
        return nn.Dropout(self.cfg.dropout)(x, deterministic=self.cfg.deterministic)


def decode_positions(module: nn.Module, cfg: ModelConfig, tokens_BL, padding_mask_BL):
    """Prefill or step: (positions_BL of the tokens, lengths_B once they are in the cache).

    The cache's "lengths" (B,) counts each row's tokens. A prefill has positions 0..L-1,
    the real tokens a prefix of each row (right padding); a step is one token a row, at
    the row's own position, through the cache a prefill made.
    """
    batch, length = tokens_BL.shape
    if cfg.mode == "step" and not module.has_variable(cache.CACHE, "lengths"):
        raise UserError("mode='step' needs the cache a prefill made; apply the model with "
                          "mode='prefill' first and pass its 'cache' collection back.")
    lengths = cache.cache_variable(module, "lengths", (batch,), jnp.int32)
    if cfg.mode == "step":
        if length != 1:
            raise UserError(f"a decode step of {length} tokens is not allowed; after the prefill "
                              "each call adds exactly one token a row.")
        positions_BL = lengths.value[:, None]
        lengths.value = lengths.value + 1
    else:
        positions_BL = jnp.arange(length)[None, :]
        lengths.value = (jnp.full((batch,), length, jnp.int32) if padding_mask_BL is None
                         else padding_mask_BL.sum(1, dtype=jnp.int32))
    return positions_BL, lengths.value


def encode(module: nn.Module, cfg: ModelConfig, tokens_BL, padding_mask_BL):
    """The trunk every head shares: embeddings, the blocks, the final norm.

    Called inside a head's compact __call__, so its parameters sit at the top level of
    that head (token_embed, pos_embed, block_i, final_norm). Returns (x_BLE, token_embed).
    In the decode modes (cfg.mode prefill or step) the attention layers keep caches (see
    attention/cache.py).
    """
    chex.assert_rank(tokens_BL, 2)
    length = tokens_BL.shape[1]
    if length > cfg.max_len:
        raise UserError(f"a sequence of length {length} is longer than max_len={cfg.max_len}; "
                          "pass at most max_len tokens or build the model with a larger max_len.")
    if padding_mask_BL is not None:
        chex.assert_shape(padding_mask_BL, tokens_BL.shape)
        padding_mask_BL = padding_mask_BL.astype(bool)
    embed_init = nn.initializers.normal(cfg.embed_init_std)
    token_embed = nn.Embed(cfg.vocab_size, cfg.d_model,
                           embedding_init=logical(embed_init, "vocab", "embed"),
                           dtype=cfg.compute_dtype, param_dtype=cfg.storage_dtype,
                           name="token_embed")
    pos_embed_LE = module.param("pos_embed", logical(embed_init, "seq", "embed"),
                                (cfg.max_len, cfg.d_model),
                                cfg.storage_dtype)
    # Looked up in the storage dtype and cast after: the lookup's gradient is a scatter-add
    # over the table, which in bfloat16 runs 16-bit atomics that a GPU serialises (MQAR's
    # d-128 step at batch 256 x 64: 258 ms in bfloat16, the float32 step 2.2 ms on an H200).
    tokens_BLE = jnp.take(token_embed.embedding, tokens_BL, axis=0).astype(cfg.compute_dtype)
    lengths_B = None
    if cfg.decoding:
        positions_BL, lengths_B = decode_positions(module, cfg, tokens_BL, padding_mask_BL)
        pos_BLE = pos_embed_LE[positions_BL]
        padding_mask_BL = None  # right padding sits in the causal future of every real token
    else:
        pos_BLE = pos_embed_LE[:length]
    x_BLE = tokens_BLE + pos_BLE.astype(cfg.compute_dtype)
    x_BLE = nn.Dropout(cfg.dropout)(x_BLE, deterministic=cfg.deterministic)
    shared = ATTENTIONS[cfg.attention].shared_module(cfg)
    block = nn.remat(Block) if cfg.remat == "block" else Block
    for i in range(cfg.n_layers):
        x_BLE = block(cfg, shared, name=f"block_{i}")(x_BLE, padding_mask_BL, lengths_B)
    return make_norm(cfg, "final_norm")(x_BLE), token_embed


class GPT(nn.Module):
    """tokens int32 (B, L) -> logits (B, L, vocab_size), float32 (float64 in float64 mode).

    `padding_mask_BL` (True for real tokens) hides padded positions from every query.
    To decode, apply with mutable=["cache"]: a mode="prefill" model on the right-padded
    prompts (the mask marks each row's length), then a mode="step" model with the returned
    cache on one new token a row per call; lowrank_jax.generate does this.
    """

    cfg: ModelConfig

    @nn.compact
    def __call__(self, tokens_BL: jax.Array, padding_mask_BL: jax.Array | None = None,
                 logit_positions_BP: jax.Array | None = None) -> jax.Array:
        """`logit_positions_BP`: int (B, P) positions of each row whose logits alone are
        wanted, (B, P, vocab_size): the LM head is then applied to those P only, which is
        most of a small model's step when its vocabulary is large (MQAR scores 4-64 of
        64-512 positions)."""
        cfg = self.cfg
        x_BLE, token_embed = encode(self, cfg, tokens_BL, padding_mask_BL)
        # N: every position L, or the P asked for (gathered in float32, so that the
        # gradient's scatter is float32 too; see encode).
        x_BNE = x_BLE if logit_positions_BP is None else jnp.take_along_axis(
            x_BLE.astype(jnp.float32), logit_positions_BP[..., None], axis=1).astype(x_BLE.dtype)
        if cfg.tie_embeddings:
            logits_BNV = token_embed.attend(x_BNE)
        else:
            logits_BNV = nn.Dense(cfg.vocab_size, use_bias=cfg.use_bias, dtype=cfg.compute_dtype,
                                  kernel_init=logical(default_kernel_init, "embed", "vocab"),
                                  param_dtype=cfg.storage_dtype, name="lm_head")(x_BNE)
        chex.assert_shape(logits_BNV, (*x_BNE.shape[:2], cfg.vocab_size))
        return logits_BNV.astype(at_least_float32(cfg.compute_dtype))


class Classifier(nn.Module):
    """tokens (B, L) -> class logits (B, num_classes): the trunk, a mean over the real
    tokens, then a linear layer. Build it with `causal=False` for an encoder."""

    cfg: ModelConfig
    num_classes: int

    @nn.compact
    def __call__(self, tokens_BL: jax.Array, padding_mask_BL: jax.Array | None = None) -> jax.Array:
        cfg = self.cfg
        x_BLE, _ = encode(self, cfg, tokens_BL, padding_mask_BL)
        real_BL = jnp.ones(tokens_BL.shape, bool) if padding_mask_BL is None else padding_mask_BL
        weights_BL1 = real_BL[..., None].astype(x_BLE.dtype)
        pooled_BE = (x_BLE * weights_BL1).sum(1) / jnp.maximum(weights_BL1.sum(1), 1)
        logits_BC = nn.Dense(self.num_classes, dtype=cfg.compute_dtype,
                             kernel_init=logical(default_kernel_init, "embed", "classes"),
                             param_dtype=cfg.storage_dtype, name="classifier")(pooled_BE)
        return logits_BC.astype(at_least_float32(cfg.compute_dtype))


def model_for_task(cfg: ModelConfig, num_classes: int = 0) -> nn.Module:
    """The model a task trains: a GPT, or for a labelled task of `num_classes` classes a
    Classifier."""
    return Classifier(cfg, num_classes) if num_classes else GPT(cfg)


def parameter_groups(params) -> dict[str, int]:
    """Parameter counts by role: token_embed, pos_embed, attention, ffn, norms, lm_head."""
    counts, shared = Counter(), shared_module_names()
    for path, leaf in traverse_util.flatten_dict(params).items():
        role = next((p for p in path if p in ("attention", "ffn", "token_embed", "pos_embed",
                                              "lm_head", "classifier")), None)
        role = "attention" if path[0] in shared else role
        counts[role or "norms"] += leaf.size
    return dict(counts)


def count_parameters(params) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(params))


def attention_intermediates(model: nn.Module, params, tokens_BL: jax.Array):
    """Logits and, for every layer, what its attention sowed, {name: array} (names in
    lowrank_jax.attention.core: always the weights (B, H, L, S); the scaled queries and the
    values (B, L, H, D) where the weights are over tokens, in a forward pass, not a decode
    step)."""
    logits_BLV, state = model.apply({"params": params}, tokens_BL, mutable=["intermediates"])
    blocks = state["intermediates"]
    layers = [{name: sown[0] for name, sown in blocks[f"block_{i}"]["attention"].items()}
              for i in range(model.cfg.n_layers)]
    return logits_BLV, layers


def apply_with_attention(model: nn.Module, params, tokens_BL: jax.Array):
    """Logits and every layer's attention weights [(B, H, L, S)] read from the sown intermediates."""
    logits_BLV, layers = attention_intermediates(model, params, tokens_BL)
    return logits_BLV, [layer[ATTENTION_WEIGHTS] for layer in layers]


def describe_parameters(params, cfg: ModelConfig) -> str:
    """The parameter breakdown by role, as seed 001 prints it."""
    groups = parameter_groups(params)
    parts = [f"{role} {groups[role]}" for role in ("token_embed", "pos_embed", "attention", "ffn",
                                                    "norms", "lm_head", "classifier")
             if role in groups]
    if cfg.tie_embeddings and "classifier" not in groups:
        parts.append("lm_head tied (0)")
    kwargs = ", ".join(f"{k}={v}" for k, v in cfg.attention_kwargs.items())
    return (f"model: {cfg.n_layers} block(s), {cfg.n_heads} heads, d_model {cfg.d_model}, "
            f"head dim {cfg.d_head}, d_ff {cfg.d_ff}, context {cfg.max_len}, "
            f"attention {cfg.attention}({kwargs})\n"
            f"  {' | '.join(parts)}\n"
            f"trainable parameters: {count_parameters(params)}")
