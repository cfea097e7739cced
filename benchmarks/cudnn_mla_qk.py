"""jax.nn.dot_product_attention refuses queries and keys narrower than the values
(cudnn_narrow_qk.py), but jax's cuDNN binding underneath accepts a value width of its own
on Hopper with cuDNN >= 9.10 (its multi-head latent attention case). Does it take
lowrank_qk's r = 16 against d_v = 64, give the padded path's gradients, and run faster?
Forward + backward, 65,536 tokens per step, 16 heads, causal, cuDNN full width (64) in the
same process. `PYTHONPATH=. python benchmarks/cudnn_mla_qk.py` on a GPU; output in
cudnn_mla_qk_h200.log."""
import functools

import jax
import jax.numpy as jnp
from jax._src.cudnn import fused_attention_stablehlo as cudnn_fmha

from lowrank_jax.attention import core
from train import perf


def narrow(q, k, v):
    return cudnn_fmha.dot_product_attention(q, k, v, scale=perf.SCALE,
                                            mask_type=cudnn_fmha.MaskType.CAUSAL)


def largest_difference(a_tree, b_tree):
    return max(float(jnp.max(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32))))
               for a, b in zip(a_tree, b_tree, strict=True))


padded = perf.forward_backward(functools.partial(core.cudnn_attention, causal=True,
                                                 scale=perf.SCALE))
for L in (1024, 4096, 16384, 32768):
    B = perf.TOKENS // L
    inputs = perf.qkv(jax.random.key(L), B, L, d_qk=perf.LOWRANK_R)
    full = perf.qkv(jax.random.key(L), B, L)
    cot = jax.random.normal(jax.random.key(1), (B, L, perf.HEADS, perf.D_HEAD), jnp.bfloat16)
    ms_full = perf.median_ms(padded, (full, cot))
    ms_padded = perf.median_ms(padded, (inputs, cot))
    line = (f"L={L:6d} B={B:2d} cuDNN d 64: {ms_full:.3f} ms  r 16 padded to 64: "
            f"{ms_padded:.3f} ms ({ms_full / ms_padded:.2f}x)")
    try:
        fb = perf.forward_backward(narrow)
        ms = perf.median_ms(fb, (inputs, cot))
        diff = largest_difference(fb(inputs, cot), padded(inputs, cot))
        line += f"  r 16 against v 64: {ms:.3f} ms ({ms_full / ms:.2f}x), max abs grad diff {diff:.1e}"
    except Exception as err:  # noqa: BLE001 - refused is the answer
        line += f"  r 16 against v 64 refused: {str(err).strip().splitlines()[0][:200]}"
    print(line, flush=True)
