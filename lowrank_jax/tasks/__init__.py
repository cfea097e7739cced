"""Tasks: where training batches come from and how a trained model is judged.

A task's batches are a pure function of a key, made on the device inside the
jitted step; its `evaluate` is jittable and returns counts (the host divides).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax

from lowrank_jax.tasks import abc_sort, random_tokens

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


def abc_sort_task(model_cfg) -> Task:
    del model_cfg  # the task fixes its own vocabulary and length
    return Task(abc_sort.VOCAB_SIZE, abc_sort.SEQ_LEN, abc_sort.make_batch, abc_sort_evaluate,
                abc_sort.report)


def random_tokens_task(model_cfg) -> Task:
    """Rows of max_len + 1 tokens, so the model reads max_len of them."""
    vocab, seq_len = model_cfg.vocab_size, model_cfg.max_len + 1
    return Task(vocab, seq_len, random_tokens.make_batch_fn(vocab, seq_len), lambda logits_fn: {},
                lambda model, params: random_tokens.report(vocab))


# name -> a function of the ModelConfig that builds the task
TASKS = {"abc_sort": abc_sort_task, "random_tokens": random_tokens_task}
