"""Where a small model's training step loses its time on a GPU: the training loss of
MQAR's model (2 layers, d 128, 2 heads, bfloat16, vocabulary 8192, 64 tokens, 4 pairs),
its gradient and an AdamW update on a batch made beforehand, then the same step with one
thing changed at a time (median ms, train.perf's timing); then the first one's device time
per HLO op, from a profiler trace (train.perf.device_op_ns), longest first.

    PYTHONPATH=. python benchmarks/mqar_step_time.py [BATCH]

benchmarks/embedding_scatter_h200.log was made by this script's first form (commit e51ba0d:
its own timing loop and trace reader, an OUT folder for the trace), before the step's LM
head saw the answers alone; it weighted every position's logits, which "logits
everywhere" measures now.
"""
import sys
from types import SimpleNamespace

import jax
import optax

from lowrank_jax import GPT, ModelConfig
from lowrank_jax.tasks import mqar_task
from lowrank_jax.training.step import make_loss_fn
from train.perf import device_op_ns, median_ms

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


def main(batch: int = 256) -> None:
    print(jax.devices()[0].device_kind)
    for name, (fields, at_answers) in CHANGES.items():
        step, forward, (params, opt_state) = bare_step(fields, at_answers, batch)
        stepped = median_ms(step, (params, opt_state))
        print(f"{name:18s} step {stepped:8.2f} ms ({batch * BASE['max_len'] / stepped * 1e3:12,.0f}"
              f" tokens/s), forward and loss {median_ms(forward, (params,)):8.2f} ms", flush=True)
    step, _, (params, opt_state) = bare_step({}, True, batch)
    jax.block_until_ready(step(params, opt_state))
    for op, ns in device_op_ns(lambda: step(params, opt_state)).most_common(15):
        print(f"{ns / 1e6:9.3f} ms  {op}")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
