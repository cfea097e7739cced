"""Where a trained MQAR model is right: answer accuracy by the order of asking, by which
context pair is asked, and by the query's position, on 512 fresh rows.

    PYTHONPATH=. python benchmarks/mqar_probe.py WORKDIR
"""
import sys

import jax
import jax.numpy as jnp
import numpy as np

from lowrank_jax.model import GPT
from lowrank_jax.tasks import mqar
from train.pretrained import load_latest


def main(workdir: str) -> None:
    run = load_latest(workdir)
    cfg, pairs = run.model_cfg, run.config.mqar.num_pairs
    rows = mqar.make_batch(jax.random.key(5), 512, cfg.vocab_size, cfg.max_len + 1, pairs)
    logits = GPT(cfg).apply({"params": run.params},
                            mqar.model_inputs(rows, cfg.vocab_size, pairs))
    asked = np.asarray(mqar.answer_weights(rows, cfg.vocab_size, pairs)) > 0
    right = np.asarray(jnp.argmax(logits, -1) == rows[:, 1:])
    order = np.cumsum(asked, axis=1) * asked          # 1 at the first query asked, ...
    rows = np.asarray(rows)
    pair = np.full(asked.shape, -1)
    for b, t in zip(*np.nonzero(asked)):
        pair[b, t] = list(rows[b, :2 * pairs:2]).index(rows[b, t])
    for k in range(1, pairs + 1):
        print(f"query {k} asked: {right[order == k].mean():.3f}")
    for i in range(pairs):
        print(f"pair {i} (positions {2 * i}-{2 * i + 1}): {right[pair == i].mean():.3f}")
    position = np.broadcast_to(np.arange(asked.shape[1]), asked.shape)
    for start in range(2 * pairs, asked.shape[1], 8):
        near = asked & (position >= start) & (position < start + 8)
        print(f"query at {start}-{start + 7}: {right[near].mean():.3f} of {near.sum()}")


if __name__ == "__main__":
    main(sys.argv[1])
