"""Tile sweep of the causal Linformer kernel (b 128, c 8; 65,536 tokens, 16 heads of 64,
bf16, forward + backward), cuDNN causal in the same process:
    PYTHONPATH=. python benchmarks/causal_kernel_tiles.py
"""
import functools
import itertools

import jax
import jax.numpy as jnp

from lowrank_jax.attention import core
from lowrank_jax.attention import linformer_ops as linformer
from lowrank_jax.attention.linformer_kernel import causal_linformer_attention
from train.perf import forward_backward, median_ms, with_projections

B_, C_ = 128, 8


def kernel_case(slot_tile, warps, stages):
    def attend(q, k, v, E, F):
        ks = linformer.compress_blocks(linformer.to_blocks(k, B_), E)
        vs = linformer.compress_blocks(linformer.to_blocks(v, B_), F)
        return causal_linformer_attention(q, k, v, ks, vs, block_size=B_, slots=C_, scale=0.125,
                                          slot_tile=slot_tile, warps=warps, stages=stages)
    return attend


for length in (4096, 32768):
    batch = 65536 // length
    inputs = with_projections(C_, B_)(jax.random.key(0), batch, length)
    ct = jax.random.normal(jax.random.key(1), (batch, length, 16, 64), jnp.bfloat16)
    ref = median_ms(forward_backward(functools.partial(core.cudnn_attention, causal=True,
                                                       scale=0.125)), (inputs[:3], ct))
    print(f"L={length}: cuDNN causal {ref:.2f} ms")
    for slot_tile, warps, stages in itertools.product((32, 64, 128), (4, 8), (2, 3)):
        try:
            ms = median_ms(forward_backward(kernel_case(slot_tile, warps, stages)), (inputs, ct))
            print(f"  slot_tile {slot_tile:3d} warps {warps} stages {stages}: {ms:6.2f} ms "
                  f"({ref / ms:.2f}x cuDNN)")
        except Exception as err:  # noqa: BLE001
            print(f"  slot_tile {slot_tile:3d} warps {warps} stages {stages}: "
                  f"{str(err).splitlines()[0][:120]}")
