"""Where a small model's training step loses its time on a GPU: the training loss of
MQAR's model (2 layers, d 128, 2 heads, bfloat16, vocabulary 8192, 64 tokens, 4 pairs),
its gradient and an AdamW update on a batch made beforehand, then the same step with one
thing changed at a time; and a profiler trace of the first (OUT/trace) whose longest
events are listed.

    PYTHONPATH=. python benchmarks/mqar_step_time.py OUT [BATCH]

benchmarks/embedding_scatter_h200.log was made before the step's LM head saw the answers
alone, with every position's logits weighted, which "logits everywhere" measures now.
"""
import gzip
import glob
import json
import os
import sys
import time
from collections import Counter
from types import SimpleNamespace

import jax
import optax

from lowrank_jax import GPT, ModelConfig
from lowrank_jax.tasks import mqar_task
from lowrank_jax.training.step import make_loss_fn

BASE = dict(vocab_size=8192, max_len=64, d_model=128, n_layers=2, n_heads=2, d_ff=256,
            dtype="bfloat16")
# name: (model fields, whether the LM head sees the answers alone, as training does)
CHANGES = {"as MQAR trains": ({}, True), "logits everywhere": ({}, False),
           "vocabulary 512": (dict(vocab_size=512), True),
           "float32": (dict(dtype="float32"), True),
           "d_model 512": (dict(d_model=512, d_ff=1024), True),
           "lowrank_qk": (dict(attention="lowrank_qk", attention_kwargs={"r": 16}), True),
           "1 layer": (dict(n_layers=1), True)}
PAIRS = 4


def seconds_per_call(fn, *args, calls: int = 10) -> float:
    jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    for _ in range(calls):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls


def bare_step(fields: dict, at_answers: bool, batch: int):
    cfg = ModelConfig(**{**BASE, **fields})
    model = GPT(cfg)
    task = mqar_task(cfg, SimpleNamespace(num_pairs=PAIRS, eval_examples=1, eval_batch_size=1))
    if not at_answers:  # every position's logits, as many targets: the same work as weighting
        task = task._replace(target_positions=None)
    rows_BT = task.make_batch(jax.random.key(2), batch, task.data)
    params = model.init(jax.random.key(0), rows_BT[:, :-1])["params"]
    optimizer = optax.adamw(1e-3)
    loss_fn = make_loss_fn(model, task)

    def loss(params):
        return loss_fn(params, rows_BT, jax.random.key(3))[0]

    @jax.jit
    def step(params, opt_state):
        updates, opt_state = optimizer.update(jax.grad(loss)(params), opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    forward = jax.jit(loss)
    return step, forward, (params, optimizer.init(params))


def longest_events(folder: str, count: int = 25) -> list[str]:
    """The trace's events by total time, each named with its process (the GPU's are its
    kernels), from the trace JSON that jax.profiler writes."""
    paths = glob.glob(os.path.join(folder, "**", "*.trace.json.gz"), recursive=True)
    if not paths:
        return [f"no trace file under {folder}"]
    with gzip.open(paths[0]) as f:
        events = json.load(f)["traceEvents"]
    process = {e["pid"]: e.get("args", {}).get("name", "") for e in events
               if e.get("ph") == "M" and e.get("name") == "process_name"}
    total, calls = Counter(), Counter()
    for e in events:
        if e.get("ph") == "X":
            key = (process.get(e.get("pid"), "?")[:24], e["name"][:100])
            total[key] += e.get("dur", 0)
            calls[key] += 1
    return [f"{us / 1e3:9.2f} ms  {calls[key]:5d} x  {key[0]:24s} {key[1]}"
            for key, us in total.most_common(count)]


def main(out: str, batch: int = 256) -> None:
    print(jax.devices()[0].device_kind)
    for name, (fields, at_answers) in CHANGES.items():
        step, forward, (params, opt_state) = bare_step(fields, at_answers, batch)
        stepped = seconds_per_call(step, params, opt_state)
        forwarded = seconds_per_call(forward, params)
        print(f"{name:18s} step {1e3 * stepped:8.2f} ms ({batch * BASE['max_len'] / stepped:12,.0f}"
              f" tokens/s), forward and loss {1e3 * forwarded:8.2f} ms", flush=True)
    step, _, (params, opt_state) = bare_step({}, True, batch)
    jax.block_until_ready(step(params, opt_state))
    folder = os.path.join(out, "trace")
    with jax.profiler.trace(folder, create_perfetto_trace=True):
        jax.block_until_ready(step(params, opt_state))
    print("\n".join(longest_events(folder)))


if __name__ == "__main__":
    main(sys.argv[1], *map(int, sys.argv[2:]))
