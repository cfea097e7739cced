"""The causal Linformer as one fused flash-attention kernel (Pallas, Triton backend).

The same function as `linformer_ops.causal_attention`, without its (B, H, L, k + b) score
tensor: a query tile of block j runs one online softmax over the j * c slots of the
blocks before it, then over its own block's keys up to itself, and keeps only its
output and its log-sum-exp. The backward recomputes the probabilities from that
log-sum-exp tile by tile (FlashAttention-2) in three kernels: dQ over query tiles, dK/dV
of the raw keys over key tiles (each seen only by its own block), and dK/dV of the slots
over slot tiles (each seen by every later block).

Query tiles never straddle a Linformer block, so every query of a tile sees the same
slots: the slot mask is one comparison per slot column. Everything accumulates in
float32; the probabilities meet V (and dS meets K, Q) in the input dtype, as in flash
attention. `interpret=True` runs the same kernels on the CPU (tests).
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

LOG2E = math.log2(math.e)
# Finite, so a masked score minus a running max never makes a NaN; exp2 of it is 0.
MASKED = -0.7 * float(np.finfo(np.float32).max)
LARGEST_TILE = 128
SLOT_TILE = 64


@dataclasses.dataclass(frozen=True)
class Tiles:
    block_size: int   # the Linformer block b
    slots: int        # c slots per block
    query: int        # query tile, also the tile of the raw keys: a power of two dividing b
    slot: int         # slot tile
    warps: int = 4
    stages: int = 2


def query_tile(block_size: int) -> int:
    """The largest power of two that divides the block, up to 128 (16 at least for the MMA)."""
    return math.gcd(block_size, LARGEST_TILE)


def supports(block_size: int, d_head: int) -> bool:
    """Whether the kernel takes this shape: blocks of a multiple of 16, a power-of-two head
    width from 16 to 128 (what Triton's matrix instructions take)."""
    return (block_size % 16 == 0 and 16 <= d_head <= 128 and d_head & (d_head - 1) == 0)


def _cdiv(a, b: int):
    return lax.div(a + b - 1, b)


def _local_mask(q_start, k_start, size: int, real_ref):
    """(size, size): query q sees raw key k of its block when k <= q and the key is real
    (padding hidden), a query always seeing itself."""
    q_pos = q_start + jnp.arange(size)
    k_pos = k_start + jnp.arange(size)
    mask = q_pos[:, None] >= k_pos[None, :]
    if real_ref is not None:
        real_k = real_ref[pl.ds(k_start, size)] != 0
        mask = mask & (real_k[None, :] | (q_pos[:, None] == k_pos[None, :]))
    return mask


def _tile_range(tile, t: Tiles):
    """For query tile `tile`: (its first position, slots it sees, its block's first key tile)."""
    start = tile * t.query
    block = lax.div(start, t.block_size)
    return start, block * t.slots, lax.div(block * t.block_size, t.query)


def _over_visible_keys(update, carry, tile, k_ref, v_ref, ks_ref, vs_ref, real_ref, t: Tiles):
    """Folds `update(carry, keys, values, mask)` over what query tile `tile` sees: the slot
    tiles holding its block's visible slots, then its block's raw key tiles up to itself."""
    start, n_slots, first_local = _tile_range(tile, t)

    def slot_tile(i, carry):
        rows = pl.ds(i * t.slot, t.slot)
        visible = (i * t.slot + jnp.arange(t.slot) < n_slots)[None, :]
        return update(carry, ks_ref[rows, :], vs_ref[rows, :], visible)

    def local_tile(i, carry):
        rows = pl.ds(i * t.query, t.query)
        return update(carry, k_ref[rows, :], v_ref[rows, :],
                      _local_mask(start, i * t.query, t.query, real_ref))

    carry = lax.fori_loop(0, _cdiv(n_slots, t.slot), slot_tile, carry)
    return lax.fori_loop(first_local, tile + 1, local_tile, carry)


def _forward_kernel(q_ref, k_ref, v_ref, ks_ref, vs_ref, real_ref, o_ref, lse_ref, *,
                    t: Tiles, scale: float, n_tiles: int):
    tile = n_tiles - 1 - pl.program_id(0)  # the longest rows first: a shorter tail
    q = q_ref[...]
    head = q.shape[-1]

    def update(carry, k, v, mask):
        acc, m, l = carry
        s = jnp.where(mask, plgpu.dot(q, k, trans_b=True) * (scale * LOG2E), MASKED)
        m_new = jnp.maximum(m, s.max(axis=-1))
        alpha = jnp.exp2(m - m_new)
        p = jnp.exp2(s - m_new[:, None])
        acc = alpha[:, None] * acc + plgpu.dot(p.astype(v.dtype), v)
        return acc, m_new, alpha * l + p.sum(axis=-1)

    carry = (jnp.zeros((t.query, head), jnp.float32),
             jnp.full((t.query,), -jnp.inf, jnp.float32), jnp.zeros((t.query,), jnp.float32))
    acc, m, l = _over_visible_keys(update, carry, tile, k_ref, v_ref, ks_ref, vs_ref, real_ref, t)
    o_ref[...] = (acc / l[:, None]).astype(o_ref.dtype)
    lse_ref[...] = m + jnp.log2(l)   # base 2, as the backward kernels use it


def _probs_and_ds(q, k, v, do, lse, delta, mask, scale):
    """Recomputed probabilities P and dS = P * (dO V^T - delta) of one tile pair."""
    s = jnp.where(mask, plgpu.dot(q, k, trans_b=True) * (scale * LOG2E), MASKED)
    p = jnp.exp2(s - lse[:, None])
    ds = p * (plgpu.dot(do, v, trans_b=True) - delta[:, None])
    return p, ds


def _dq_kernel(q_ref, k_ref, v_ref, ks_ref, vs_ref, real_ref, do_ref, lse_ref, delta_ref, dq_ref,
               *, t: Tiles, scale: float, n_tiles: int):
    tile = n_tiles - 1 - pl.program_id(0)
    q, do, lse, delta = q_ref[...], do_ref[...], lse_ref[...], delta_ref[...]

    def update(dq, k, v, mask):
        _, ds = _probs_and_ds(q, k, v, do, lse, delta, mask, scale)
        return dq + plgpu.dot(ds.astype(k.dtype), k)

    dq = _over_visible_keys(update, jnp.zeros(q.shape, jnp.float32), tile, k_ref, v_ref,
                            ks_ref, vs_ref, real_ref, t)
    dq_ref[...] = (dq * scale).astype(dq_ref.dtype)


def _key_grads(q_ref, do_ref, lse_ref, delta_ref, k, v, first, stop, rows_of, mask_of, scale):
    """dK, dV of one key tile from the query tiles first..stop-1 that see it."""
    def step(i, carry):
        dk, dv = carry
        rows = rows_of(i)
        q, do = q_ref[rows, :], do_ref[rows, :]
        p, ds = _probs_and_ds(q, k, v, do, lse_ref[rows], delta_ref[rows], mask_of(i), scale)
        dv = dv + plgpu.dot(p.astype(do.dtype), do, trans_a=True)
        dk = dk + plgpu.dot(ds.astype(q.dtype), q, trans_a=True)
        return dk, dv

    zeros = jnp.zeros(k.shape, jnp.float32)
    dk, dv = lax.fori_loop(first, stop, step, (zeros, zeros))
    return dk * scale, dv


def _dkv_local_kernel(q_ref, k_ref, v_ref, real_ref, do_ref, lse_ref, delta_ref, dk_ref, dv_ref,
                      *, t: Tiles, scale: float):
    """Raw key tile i is seen by the query tiles of its block from i on."""
    tile = pl.program_id(0)
    k_start = tile * t.query
    block_end = (lax.div(k_start, t.block_size) + 1) * t.block_size
    dk, dv = _key_grads(q_ref, do_ref, lse_ref, delta_ref, k_ref[...], v_ref[...], tile,
                        lax.div(block_end, t.query), lambda i: pl.ds(i * t.query, t.query),
                        lambda i: _local_mask(i * t.query, k_start, t.query, real_ref), scale)
    dk_ref[...], dv_ref[...] = dk.astype(dk_ref.dtype), dv.astype(dv_ref.dtype)


def _dkv_slot_kernel(q_ref, ks_ref, vs_ref, do_ref, lse_ref, delta_ref, dk_ref, dv_ref, *,
                     t: Tiles, scale: float, n_tiles: int):
    """Slot m (of block m // c) is seen by every query of the blocks after it."""
    tile = pl.program_id(0)
    slot_ids = tile * t.slot + jnp.arange(t.slot)
    first_block = lax.div(tile * t.slot, t.slots) + 1

    def visible(i):
        return (slot_ids < lax.div(i * t.query, t.block_size) * t.slots)[None, :]

    dk, dv = _key_grads(q_ref, do_ref, lse_ref, delta_ref, ks_ref[...], vs_ref[...],
                        jnp.minimum(lax.div(first_block * t.block_size, t.query), n_tiles),
                        n_tiles, lambda i: pl.ds(i * t.query, t.query), visible, scale)
    dk_ref[...], dv_ref[...] = dk.astype(dk_ref.dtype), dv.astype(dv_ref.dtype)


def _specs(t: Tiles, length: int, slots: int, head: int):
    """BlockSpecs over a (tile, batch, head) grid: one tile of a (B, L, H, D) array, a whole
    (b, h) sequence of one, of the slots, of a (B, H, L) statistic, of the (B, L) mask.
    The *_rev tiles count from the end: the query-tile kernels start with the longest rows,
    which shortens the tail of the grid."""
    last = length // t.query - 1
    return dict(
        q_tile=pl.BlockSpec((None, t.query, None, head), lambda i, b, h: (b, i, h, 0)),
        q_rev=pl.BlockSpec((None, t.query, None, head), lambda i, b, h: (b, last - i, h, 0)),
        stat_rev=pl.BlockSpec((None, None, t.query), lambda i, b, h: (b, h, last - i)),
        slot_tile=pl.BlockSpec((None, t.slot, None, head), lambda i, b, h: (b, i, h, 0)),
        seq=pl.BlockSpec((None, length, None, head), lambda i, b, h: (b, 0, h, 0)),
        slots=pl.BlockSpec((None, slots, None, head), lambda i, b, h: (b, 0, h, 0)),
        stat=pl.BlockSpec((None, None, length), lambda i, b, h: (b, h, 0)),
        real=pl.BlockSpec((None, length), lambda i, b, h: (b, 0)),
    )


def _call(kernel, grid, in_specs, out_specs, out_shape, t: Tiles, interpret: bool, name: str):
    return pl.pallas_call(kernel, grid=grid, in_specs=in_specs, out_specs=out_specs,
                          out_shape=out_shape, interpret=interpret, name=name,
                          compiler_params=plgpu.CompilerParams(num_warps=t.warps,
                                                               num_stages=t.stages))


def _forward(q, k, v, ks, vs, real, t: Tiles, scale: float, interpret: bool):
    batch, length, heads, head = q.shape
    n_tiles = length // t.query
    sp = _specs(t, length, ks.shape[1], head)
    grid = (n_tiles, batch, heads)
    kernel = functools.partial(_forward_kernel, t=t, scale=scale, n_tiles=n_tiles)
    return _call(kernel, grid,
                 [sp["q_rev"], sp["seq"], sp["seq"], sp["slots"], sp["slots"],
                  None if real is None else sp["real"]],
                 [sp["q_rev"], sp["stat_rev"]],
                 [jax.ShapeDtypeStruct(q.shape, q.dtype),
                  jax.ShapeDtypeStruct((batch, heads, length), jnp.float32)],
                 t, interpret, "causal_linformer_fwd")(q, k, v, ks, vs, real)


def _backward(q, k, v, ks, vs, real, out, lse, do, t: Tiles, scale: float, interpret: bool):
    batch, length, heads, head = q.shape
    n_slots = ks.shape[1]
    n_tiles = length // t.query
    sp = _specs(t, length, n_slots, head)
    real_spec = None if real is None else sp["real"]
    delta = jnp.einsum("blhd,blhd->bhl", out.astype(jnp.float32), do.astype(jnp.float32))
    dq = _call(functools.partial(_dq_kernel, t=t, scale=scale, n_tiles=n_tiles),
               (n_tiles, batch, heads),
               [sp["q_rev"], sp["seq"], sp["seq"], sp["slots"], sp["slots"], real_spec,
                sp["q_rev"], sp["stat_rev"], sp["stat_rev"]],
               sp["q_rev"], jax.ShapeDtypeStruct(q.shape, q.dtype), t, interpret,
               "causal_linformer_dq")(q, k, v, ks, vs, real, do, lse, delta)
    like = [jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)]
    dk, dv = _call(functools.partial(_dkv_local_kernel, t=t, scale=scale),
                   (n_tiles, batch, heads),
                   [sp["seq"], sp["q_tile"], sp["q_tile"], real_spec, sp["seq"], sp["stat"],
                    sp["stat"]],
                   [sp["q_tile"], sp["q_tile"]], like, t, interpret,
                   "causal_linformer_dkv")(q, k, v, real, do, lse, delta)
    like = [jax.ShapeDtypeStruct(ks.shape, ks.dtype), jax.ShapeDtypeStruct(vs.shape, vs.dtype)]
    dks, dvs = _call(functools.partial(_dkv_slot_kernel, t=t, scale=scale, n_tiles=n_tiles),
                     (n_slots // t.slot, batch, heads),
                     [sp["seq"], sp["slot_tile"], sp["slot_tile"], sp["seq"], sp["stat"],
                      sp["stat"]],
                     [sp["slot_tile"], sp["slot_tile"]], like, t, interpret,
                     "causal_linformer_dslots")(q, ks, vs, do, lse, delta)
    return dq, dk, dv, dks, dvs


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8))
def _attention(q, k, v, ks, vs, real, t, scale, interpret):
    return _forward(q, k, v, ks, vs, real, t, scale, interpret)[0]


def _attention_fwd(q, k, v, ks, vs, real, t, scale, interpret):
    out, lse = _forward(q, k, v, ks, vs, real, t, scale, interpret)
    return out, (q, k, v, ks, vs, real, out, lse)


def _attention_bwd(t, scale, interpret, residuals, do):
    q, k, v, ks, vs, real, out, lse = residuals
    grads = _backward(q, k, v, ks, vs, real, out, lse, do, t, scale, interpret)
    return (*grads, None)


_attention.defvjp(_attention_fwd, _attention_bwd)


def causal_linformer_attention(q_BLHD, k_BLHD, v_BLHD, k_slots_BMHD, v_slots_BMHD, *,
                               block_size: int, slots: int, scale: float, real_BL=None,
                               slot_tile: int = SLOT_TILE, warps: int = 4, stages: int = 2,
                               interpret: bool = False):
    """out_BLHD of the causal Linformer: query i sees slots [0, block(i) * c) and the raw keys
    of its own block at positions <= i (real ones only, when `real_BL` marks padding).

    L must be a multiple of block_size (the caller pads the future); the slots are the
    blocks' compressed keys and values, (B, (L / b) * c, H, D). Differentiable in q, k, v
    and the slots.
    """
    length = q_BLHD.shape[1]
    if length % block_size or k_slots_BMHD.shape[1] != length // block_size * slots:
        raise ValueError(f"length {length} and {k_slots_BMHD.shape[1]} slots do not fit blocks "
                         f"of {block_size} with {slots} slots each.")
    slot_tile = min(slot_tile, pl.next_power_of_2(k_slots_BMHD.shape[1]))
    t = Tiles(block_size, slots, query_tile(block_size), max(16, slot_tile), warps, stages)
    pad = -k_slots_BMHD.shape[1] % t.slot   # padded slots lie past every query's range
    k_slots_BMHD, v_slots_BMHD = (jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0)))
                                  for x in (k_slots_BMHD, v_slots_BMHD))
    real = None if real_BL is None else real_BL.astype(jnp.int32)
    out = _attention(q_BLHD, k_BLHD, v_BLHD, k_slots_BMHD, v_slots_BMHD, real, t, scale,
                     interpret)
    return out
