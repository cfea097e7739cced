"""Where the bidirectional Linformer's forward + backward spends its time, op by op, at 4K
and 32K (65,536 tokens per step, k 256): `PYTHONPATH=. python benchmarks/bidirectional_profile.py`
on a GPU; output in bidirectional_profile_h200.log."""
import functools

import jax
import jax.numpy as jnp

from lowrank_jax.attention import linformer_ops as lo
from train import perf

for L in (4096, 32768):
    B = perf.TOKENS // L
    inputs = perf.with_projections(perf.BIDIRECTIONAL_K)(jax.random.key(L), B, L)
    cot = jax.random.normal(jax.random.key(1), (B, L, perf.HEADS, perf.D_HEAD), jnp.bfloat16)
    fb = perf.forward_backward(functools.partial(lo.bidirectional_attention_fast, scale=perf.SCALE))
    print(f"L={L} timed {perf.median_ms(fb, (inputs, cot)):.3f} ms")
    comp = fb.lower(inputs, cot).compile(perf.OP_BY_OP)
    comp(inputs, cot)
    ns = perf.device_op_ns(lambda: comp(inputs, cot))
    names = perf.op_names(comp)
    print(f"L={L} op-by-op device total {sum(ns.values())/1e6:.3f} ms")
    for op, t in sorted(ns.items(), key=lambda kv: -kv[1])[:14]:
        print(f"   {t/1e6:7.3f} ms {op:26s} {names.get(op, '')[-100:]}")
