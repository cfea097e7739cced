"""Does cuDNN take queries and keys narrower than the values (lowrank_qk's r = 16 against
d_v = 64) without zero-padding them, and is it faster? Forward + backward at 65,536 tokens
per step, 16 heads, causal. `PYTHONPATH=. python benchmarks/cudnn_narrow_qk.py` on a GPU;
output in cudnn_narrow_qk_h200.log."""
import functools

import jax
import jax.numpy as jnp

from lowrank_jax.attention import core
from train import perf


def narrow(q, k, v):
    return jax.nn.dot_product_attention(q, k, v, scale=perf.SCALE, is_causal=True,
                                        implementation="cudnn")


for L in (1024, 4096, 16384, 32768):
    B = perf.TOKENS // L
    inputs = perf.qkv(jax.random.key(L), B, L, d_qk=perf.LOWRANK_R)
    cot = jax.random.normal(jax.random.key(1), (B, L, perf.HEADS, perf.D_HEAD), jnp.bfloat16)
    padded = perf.forward_backward(functools.partial(core.cudnn_attention, causal=True,
                                                     scale=perf.SCALE))
    line = f"L={L:6d} B={B:2d} padded to 64: {perf.median_ms(padded, (inputs, cot)):.3f} ms"
    try:
        fb = perf.forward_backward(narrow)
        ms = perf.median_ms(fb, (inputs, cot))
        diff = max(float(jnp.max(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32))))
                   for a, b in zip(fb(inputs, cot), padded(inputs, cot)))
        line += f"  narrow (16 / 64): {ms:.3f} ms, max abs grad diff {diff:.1e}"
    except Exception as err:  # noqa: BLE001 - refused is the answer
        line += f"  narrow refused: {str(err).splitlines()[0][:160]}"
    print(line, flush=True)
