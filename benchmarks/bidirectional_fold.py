"""Does folding query chunks into the batch speed up the bidirectional Linformer's cuDNN
backward at long L? (B, L) queries become (B * s, L / s), the k compressed keys and values
repeated s times (autodiff sums their gradients), so cuDNN's backward, which splits its
work over (batch, head, key block) tiles, gets s times as many of them.
`PYTHONPATH=. python benchmarks/bidirectional_fold.py` on a GPU; output in
bidirectional_fold_h200.log."""
import functools

import jax
import jax.numpy as jnp

from lowrank_jax.attention import core
from lowrank_jax.attention import linformer_ops as lo
from train import perf


def folded(q, k, v, E, F, scale, fold):
    k_c, v_c = lo.compress_sequence(k, v, E, F)
    batch, length = q.shape[:2]
    q = q.reshape(batch * fold, length // fold, *q.shape[2:])
    k_c, v_c = (jnp.repeat(x, fold, axis=0) for x in (k_c, v_c))
    out = core.cudnn_attention(q, k_c, v_c, causal=False, scale=scale)
    return out.reshape(batch, length, *out.shape[2:])


for L in (4096, 16384, 32768):
    B = perf.TOKENS // L
    inputs = perf.with_projections(perf.BIDIRECTIONAL_K)(jax.random.key(L), B, L)
    cot = jax.random.normal(jax.random.key(1), (B, L, perf.HEADS, perf.D_HEAD), jnp.bfloat16)
    plain = perf.forward_backward(functools.partial(lo.bidirectional_attention_fast,
                                                    scale=perf.SCALE))
    reference = plain(inputs, cot)
    print(f"L={L} B={B} unfolded {perf.median_ms(plain, (inputs, cot)):.3f} ms")
    for fold in (2, 4, 8, 16, 32):
        if L // fold < 512:
            continue
        fb = perf.forward_backward(functools.partial(folded, scale=perf.SCALE, fold=fold))
        grads = fb(inputs, cot)
        err = max(float(jnp.max(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32)))
                        / (float(jnp.max(jnp.abs(b.astype(jnp.float32)))) + 1e-9))
                  for a, b in zip(grads, reference))
        print(f"L={L} B={B} fold={fold:2d} (batch {B * fold}, {L // fold} queries) "
              f"{perf.median_ms(fb, (inputs, cot)):.3f} ms  max rel grad diff {err:.1e}")
