"""The Linformer's math as pure functions (linformer.py is the module): sequence
compression, the bidirectional and the causal attention in their plain einsum forms and
their GPU fast paths, and the causal form's decode-cache updates.

Shapes: B batch, L length, H heads, D head width, K slots, N blocks of b positions.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from lowrank_jax.attention import cache, core, linformer_kernel


def compress(x_BLHD, P):
    """Sequence-axis projection P^T x: P is (L, k) shared by heads or (H, L, k) per head."""
    if P.ndim == 2:
        return jnp.einsum("blhd,lk->bkhd", x_BLHD, P)
    return jnp.einsum("blhd,hlk->bkhd", x_BLHD, P)


def compress_sequence(k_BLHD, v_BLHD, E, F):
    """(E^T K, F^T V) with E and F sliced to the input length: (B, k, H, D) each."""
    length = k_BLHD.shape[1]
    return compress(k_BLHD, E[..., :length, :]), compress(v_BLHD, F[..., :length, :])


def bidirectional_attention(q_BLHD, k_BLHD, v_BLHD, E, F, scale):
    """Returns (out_BLHD, probs_BHLK)."""
    k_BKHD, v_BKHD = compress_sequence(k_BLHD, v_BLHD, E, F)
    every_slot_LK = jnp.ones((q_BLHD.shape[1], k_BKHD.shape[1]), bool)
    return core.softmax_attention(q_BLHD, k_BKHD, v_BKHD, every_slot_LK, scale)


def bidirectional_attention_fast(q_BLHD, k_BLHD, v_BLHD, E, F, scale):
    """bidirectional_attention's output through cuDNN: the k slots are just a shorter key
    axis. Few rows of many queries are first cut into more rows of fewer (query_fold)."""
    k_BKHD, v_BKHD = compress_sequence(k_BLHD, v_BLHD, E, F)
    batch, length, heads, _ = q_BLHD.shape
    return attend_in_chunks(functools.partial(core.cudnn_attention, causal=False, scale=scale),
                            q_BLHD, k_BKHD, v_BKHD, query_fold(batch, heads, length))


# cuDNN's backward shares its work out by (row, head, block of keys); k slots make one or
# two key blocks, so at 32K tokens x batch 2 x 16 heads an H200 had 64 tiles for its 132
# SMs. Cutting each row's queries in two took the step from 2.03 to 1.61 ms; cutting
# further, or below 64 (row, head) pairs, gained nothing (benchmarks/bidirectional_fold_h200.log).
MIN_ROW_HEADS = 64


def query_fold(batch: int, heads: int, length: int) -> int:
    """The chunks (a power of two dividing `length`) to cut each row's queries into, so
    there are at least MIN_ROW_HEADS (row, head) pairs."""
    fold = 1
    while batch * heads * fold < MIN_ROW_HEADS and length % (2 * fold) == 0:
        fold *= 2
    return fold


def attend_in_chunks(attend, q_BLHD, k_BKHD, v_BKHD, fold: int):
    """attend(q, k, v) with each row's queries in `fold` chunks of their own rows, the keys
    and values repeated for each (their gradients sum over the chunks): the same output, as
    every query sees the same k slots."""
    batch, length = q_BLHD.shape[:2]
    q_BLHD = q_BLHD.reshape(batch * fold, length // fold, *q_BLHD.shape[2:])
    k_BKHD, v_BKHD = (jnp.repeat(x, fold, axis=0) for x in (k_BKHD, v_BKHD))
    out_BLHD = attend(q_BLHD, k_BKHD, v_BKHD)
    return out_BLHD.reshape(batch, length, *out_BLHD.shape[2:])


def to_blocks(x_BLHD, block_size: int):
    """(B, N, b, H, D) with N = ceil(L / b); the padding is in the future of every real query."""
    batch, length, heads, _ = x_BLHD.shape
    n = -(-length // block_size)                        # blocks, the last one maybe partial
    x_BLHD = cache.pad_rows(x_BLHD, n * block_size)
    return x_BLHD.reshape(batch, n, block_size, heads, -1)


def compress_blocks(x_BNbHD, P):
    """Block j -> its c slots E_j^T x_j: (B, N*c, H, D). P is (max_len, c) or (H, max_len, c)."""
    batch, n, block_size, heads, _ = x_BNbHD.shape
    slots = P.shape[-1]
    P = P[..., :n * block_size, :].reshape(*P.shape[:-2], n, block_size, slots)
    spec = "bnihd,nic->bnchd" if P.ndim == 3 else "bnihd,hnic->bnchd"
    return jnp.einsum(spec, x_BNbHD, P).reshape(batch, n * slots, heads, -1)


def causal_attention(q_BLHD, k_BLHD, v_BLHD, E, F, block_size: int, slots: int, scale,
                     padding_mask_BL=None):
    """Returns (out_BLHD, probs_BHLM): M is the slots of the ceil(L / b) blocks present,
    then block_size columns for the keys of the query's own block."""
    batch, length, heads, _ = q_BLHD.shape
    n = -(-length // block_size)                        # blocks, the last one maybe partial
    padded = n * block_size
    q_BNbHD, k_BNbHD, v_BNbHD = (to_blocks(x, block_size) for x in (q_BLHD, k_BLHD, v_BLHD))
    k_BMHD, v_BMHD = compress_blocks(k_BNbHD, E), compress_blocks(v_BNbHD, F)
    wide = core.at_least_float32(q_BLHD.dtype)
    slot_scores = jnp.einsum("bnihd,bmhd->bhnim", q_BNbHD, k_BMHD, preferred_element_type=wide)
    local_scores = jnp.einsum("bnihd,bnjhd->bhnij", q_BNbHD, k_BNbHD, preferred_element_type=wide)
    completed_NM = jnp.arange(n * slots)[None, :] // slots < jnp.arange(n)[:, None]
    earlier = core.causal_mask_LS(block_size)
    if padding_mask_BL is not None:  # (B, 1, N, b, b): padded own-block keys hidden too
        real_BL = jnp.pad(padding_mask_BL, ((0, 0), (0, padded - length)))
        real_BNb = real_BL.reshape(batch, n, block_size)
        earlier = (earlier & real_BNb[:, None, :, None, :]) | jnp.eye(block_size, dtype=bool)
    scores = jnp.concatenate([jnp.where(completed_NM[:, None, :], slot_scores, -jnp.inf),
                              jnp.where(earlier, local_scores, -jnp.inf)], axis=-1) * scale
    probs = jax.nn.softmax(scores, axis=-1)             # one softmax over slots and local keys
    p = probs.astype(v_BLHD.dtype)
    out_BNbHD = (jnp.einsum("bhnim,bmhd->bnihd", p[..., :n * slots], v_BMHD)
                 + jnp.einsum("bhnij,bnjhd->bnihd", p[..., n * slots:], v_BNbHD))
    out_BLHD = out_BNbHD.reshape(batch, padded, heads, -1)[:, :length]
    probs_BHLM = probs.reshape(batch, heads, padded, -1)[:, :, :length]
    return out_BLHD, probs_BHLM


def causal_attention_fast(q_BLHD, k_BLHD, v_BLHD, E, F, block_size: int, slots: int, scale,
                          padding_mask_BL=None, interpret: bool = False):
    """causal_attention's output through the fused kernel (linformer_kernel.py); the
    sequence is padded to whole blocks, in the future of every real query."""
    length = q_BLHD.shape[1]
    padded = -(-length // block_size) * block_size
    q_BLHD, k_BLHD, v_BLHD = (cache.pad_rows(x, padded) for x in (q_BLHD, k_BLHD, v_BLHD))
    k_BMHD = compress_blocks(to_blocks(k_BLHD, block_size), E)
    v_BMHD = compress_blocks(to_blocks(v_BLHD, block_size), F)
    real_BL = (None if padding_mask_BL is None
               else jnp.pad(padding_mask_BL, ((0, 0), (0, padded - length))))
    out_BLHD = linformer_kernel.causal_linformer_attention(
        q_BLHD, k_BLHD, v_BLHD, k_BMHD, v_BMHD, block_size=block_size, slots=slots, scale=scale,
        real_BL=real_BL, interpret=interpret)
    return out_BLHD[:, :length]


def finished_slots(x_BLHD, P, lengths_B, block_size: int, total_slots: int):
    """The prefill's slots: E_j^T x_j for each block j that a row has finished, zeros for the
    rest; (B, total_slots, H, D)."""
    slots_BMHD = compress_blocks(to_blocks(x_BLHD, block_size), P)
    block_M = jnp.arange(slots_BMHD.shape[1]) // P.shape[-1]
    finished_BM = (block_M + 1) * block_size <= lengths_B[:, None]
    return cache.pad_rows(jnp.where(finished_BM[:, :, None, None], slots_BMHD, 0), total_slots)


def current_block(x_BLHD, lengths_B, block_size: int):
    """The raw rows of the block each row's next token goes to: (B, b, H, D)."""
    # Room for a whole block after the last one present: a row that ends a block starts a new one.
    x_BLHD = cache.pad_rows(x_BLHD, (x_BLHD.shape[1] // block_size + 1) * block_size)
    start_B = lengths_B // block_size * block_size
    return jax.vmap(lambda x, s: jax.lax.dynamic_slice_in_dim(x, s, block_size))(x_BLHD, start_B)


def store_finished_block(slots_BMHD, block_BbHD, P, block_B, finished_B):
    """Writes E_j^T x_j into the c slots of block j = block_B[b] of every row b that has just
    finished it; the other rows keep their slots."""
    batch, block_size = block_BbHD.shape[:2]
    slots = P.shape[-1]
    P_blocks = P.reshape(*P.shape[:-2], -1, block_size, slots)   # (N, b, c) or (H, N, b, c)
    if P.ndim == 2:
        new_BcHD = jnp.einsum("bihd,bic->bchd", block_BbHD, P_blocks[block_B])
    else:
        new_BcHD = jnp.einsum("bihd,hbic->bchd", block_BbHD, P_blocks[:, block_B])
    batch_B1, rows_Bc = jnp.arange(batch)[:, None], block_B[:, None] * slots + jnp.arange(slots)
    kept_BcHD = jnp.where(finished_B[:, None, None, None], new_BcHD, slots_BMHD[batch_B1, rows_Bc])
    return slots_BMHD.at[batch_B1, rows_Bc].set(kept_BcHD)
