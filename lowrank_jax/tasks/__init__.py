"""Tasks: where training batches come from and how a trained model is judged.

A task's batches are a pure function of a key and the task's device arrays (`data`,
passed into the jitted step as an argument so a corpus is never baked into the program);
`evaluate` is jittable and returns sums, which the host turns into metrics with
`finish_eval`.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lowrank_jax.tasks import abc_sort, labelled, listops, mqar, random_tokens, text
from lowrank_jax.tasks.labelled import PAD_ID
from lowrank_jax.tasks.text import TextData
from lowrank_jax.validation import require

LogitsFn = Callable[..., jax.Array]  # model.apply with the params bound


class Task(NamedTuple):
    """A task's rows are int32 (B, seq_len). For a language model the model reads all but
    the last token and predicts the next ones; for a labelled task (num_classes > 0) the
    last token is the label of the ones before it, padded with PAD_ID
    (lowrank_jax/tasks/labelled.py), and the model is a Classifier."""
    vocab_size: int
    seq_len: int                                            # tokens per training row
    make_batch: Callable[[jax.Array, int, Any], jax.Array]  # (key, batch, data) -> int32 (B, T)
    evaluate: Callable[[LogitsFn, Any], dict]               # (logits_fn, data) -> sums
    finish_eval: Callable[[dict], dict]                     # host: sums -> named metrics
    report: Callable                                        # (model, params) -> text
    data: Any = ()                                          # host arrays the step reads
    # (tokens (B, T)) -> int (B, P) the positions of the next-token targets that count
    # (the model's LM head sees those alone); None: all T - 1
    target_positions: Callable[[jax.Array], jax.Array] | None = None
    # (tokens (B, T)) -> (B, T - 1) what the model reads; None: all but the last token
    model_inputs: Callable[[jax.Array], jax.Array] | None = None
    num_classes: int = 0                                    # > 0: a labelled task


def abc_sort_task(model_cfg, options=None, data=None) -> Task:
    del model_cfg, options, data  # the task fixes its own vocabulary and length

    def evaluate(logits_fn, _):
        return {"correct": abc_sort.count_correct(logits_fn, jnp.asarray(abc_sort.all_triples()))}

    def finish_eval(sums):
        correct = int(sums["correct"])
        return {"triples_correct": correct, "triples_correct_fraction": correct / 27}

    return Task(abc_sort.VOCAB_SIZE, abc_sort.SEQ_LEN,
                lambda key, batch, _: abc_sort.make_batch(key, batch), evaluate, finish_eval,
                abc_sort.report)


def random_tokens_task(model_cfg, options=None, data=None) -> Task:
    """Rows of max_len + 1 tokens, so the model reads max_len of them."""
    del options, data
    vocab, seq_len = model_cfg.vocab_size, model_cfg.max_len + 1
    make_batch = random_tokens.make_batch_fn(vocab, seq_len)
    return Task(vocab, seq_len, lambda key, batch, _: make_batch(key, batch),
                lambda logits_fn, _: {}, lambda sums: {},
                lambda model, params: random_tokens.report(vocab))


def text_task(model_cfg, options=None, data: TextData | None = None) -> Task:
    """Windows of max_len + 1 tokens of a corpus (see lowrank_jax.tasks.text)."""
    del options  # the corpus and how it is read are the run's data section
    require(data is not None, "task 'text' needs its corpus (TextData); the training entry point reads it.")
    seq_len = model_cfg.max_len + 1
    require(len(data.train_tokens) > seq_len,
            f"the training split has {len(data.train_tokens)} tokens, fewer than one window of "
            f"model.max_len + 1 = {seq_len}; give more text or a smaller max_len.")
    require(len(data.val_tokens) >= seq_len,
            f"the validation split has {len(data.val_tokens)} tokens, fewer than one window of "
            f"model.max_len + 1 = {seq_len}; raise data.val_fraction or give more text.")
    return Task(len(data.byte_lengths), seq_len,
                functools.partial(text.make_batch, seq_len=seq_len), text.evaluate,
                text.finish_eval, lambda model, params: "",
                text.device_arrays(data, seq_len))


def mqar_task(model_cfg, options, data=None) -> Task:
    """Multi-query associative recall (see lowrank_jax.tasks.mqar), rows of max_len + 1
    tokens, scored on the answers alone; `options`: the run's MqarSpec (num_pairs,
    eval_examples, eval_batch_size)."""
    del data  # the task makes its rows
    vocab, seq_len, pairs = model_cfg.vocab_size, model_cfg.max_len + 1, options.num_pairs
    problem = mqar.check_shape(vocab, seq_len, pairs)
    require(problem is None, problem or "")
    batches = -(-options.eval_examples // options.eval_batch_size)
    held_out = mqar.make_batch(jax.random.key(EVAL_SEED), batches * options.eval_batch_size,
                               vocab, seq_len, pairs)
    rows = np.asarray(held_out).reshape(batches, options.eval_batch_size, seq_len)

    def make_batch(key, batch, _):
        return mqar.make_batch(key, batch, vocab, seq_len, pairs)

    return Task(vocab, seq_len, make_batch,
                lambda logits_fn, data: mqar.evaluate(logits_fn, data, vocab, pairs),
                mqar.finish_eval, lambda model, params: "", rows,
                lambda tokens_BT: mqar.answer_positions(tokens_BT, vocab, pairs),
                lambda tokens_BT: mqar.model_inputs(tokens_BT, vocab, pairs))


def listops_task(model_cfg, options=None, data=None) -> Task:
    """ListOps (lowrank_jax/tasks/listops.py) as labelled rows of max_len tokens and the
    label; `data`: {"train": rows (N, max_len + 1), "val" and "test": their eval batches
    (labelled.eval_batches)}, read from LRA's files by the training entry point (None: a
    task to build the model by, not to train or evaluate)."""
    del options  # read by the entry point: where the files are, the eval batch size
    return Task(len(listops.VOCAB), model_cfg.max_len + 1,
                lambda key, batch, rows: labelled.sample(key, batch, rows["train"]),
                lambda logits_fn, rows: labelled.evaluate(
                    logits_fn, {"val": rows["val"], "test": rows["test"]}),
                labelled.finish_eval, lambda model, params: "", data,
                num_classes=NUM_CLASSES["listops"])


# The held-out rows' key: training keys fold the step into the run's seed, so a training
# row matches a held-out one only by chance.
EVAL_SEED = 2**31 - 1

# The labelled tasks' classes (known before their data is read, e.g. to size a model).
NUM_CLASSES = {"listops": listops.NUM_CLASSES}

# name -> a function of (ModelConfig, the task's options section or None, its data or
# None) that builds the task
TASKS = {"abc_sort": abc_sort_task, "random_tokens": random_tokens_task, "text": text_task,
         "mqar": mqar_task, "listops": listops_task}
