"""Tasks: where training batches come from and how a trained model is judged.

A task's batches are a pure function of a key, made on the device inside the
jitted step; its `evaluate` is jittable and returns counts (the host divides).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax

from lowrank_jax.tasks import abc_sort

LogitsFn = Callable[[jax.Array], jax.Array]


class Task(NamedTuple):
    vocab_size: int
    seq_len: int                                                   # tokens per training row
    make_batch: Callable[[jax.Array, int], jax.Array]              # (key, batch) -> int32 (B, T)
    evaluate: Callable[[LogitsFn], dict[str, jax.Array]]           # name -> (count, total)
    report: Callable                                               # (model, params) -> text


def abc_sort_evaluate(logits_fn: LogitsFn) -> dict:
    triples_N3 = jax.numpy.asarray(abc_sort.all_triples())
    return {"triples_correct": (abc_sort.count_correct(logits_fn, triples_N3), len(triples_N3))}


TASKS = {
    "abc_sort": Task(abc_sort.VOCAB_SIZE, abc_sort.SEQ_LEN, abc_sort.make_batch, abc_sort_evaluate,
                     abc_sort.report),
}
