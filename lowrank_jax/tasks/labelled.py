"""Labelled rows: a classification example as one int32 row, its tokens padded with
PAD_ID to the model's length, then its label in the last column. Batches stay one array
(sharded and sampled like a language model's), and the train step reads the label off
the end (lowrank_jax/training/step.py)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

PAD_ID = 0   # a labelled task's padding token: the model's padding mask hides it


def sample(key: jax.Array, batch_size: int, rows_NT) -> jax.Array:
    """batch_size rows drawn uniformly, with replacement, as int32."""
    index_B = jax.random.randint(key, (batch_size,), 0, rows_NT.shape[0])
    return rows_NT[index_B].astype(jnp.int32)


def eval_batches(rows_NT: np.ndarray, batch_size: int) -> np.ndarray:
    """(batches, batch_size, T): the last batch filled with rows of padding, which
    `evaluate` does not count."""
    batches = -(-len(rows_NT) // batch_size)
    filled = np.zeros((batches * batch_size, rows_NT.shape[1]), rows_NT.dtype)
    filled[:len(rows_NT)] = rows_NT
    return filled.reshape(batches, batch_size, -1)


def evaluate(logits_fn, splits: dict) -> dict:
    """{split: {correct, loss, examples}} over each split's eval_batches; logits_fn(tokens,
    padding mask) -> class logits."""
    def batch_sums(rows_BT):
        rows_BT = rows_BT.astype(jnp.int32)
        tokens_BL, labels_B = rows_BT[:, :-1], rows_BT[:, -1]
        real_B = tokens_BL[:, 0] != PAD_ID      # a filler row is all padding
        logits_BC = logits_fn(tokens_BL, tokens_BL != PAD_ID)
        nll_B = jnp.where(real_B, -jnp.take_along_axis(jax.nn.log_softmax(logits_BC),
                                                       labels_B[:, None], axis=1)[:, 0], 0)
        return {"correct": ((jnp.argmax(logits_BC, -1) == labels_B) & real_B).sum(),
                "loss": nll_B.sum(), "examples": real_B.sum()}

    return {name: jax.tree.map(lambda x: x.sum(0), jax.lax.map(batch_sums, batches))
            for name, batches in splits.items()}


def finish_eval(sums: dict) -> dict:
    """{split}_accuracy and {split}_loss for each split."""
    out = {}
    for name, s in sums.items():
        out[f"{name}_accuracy"] = float(s["correct"]) / float(s["examples"])
        out[f"{name}_loss"] = float(s["loss"]) / float(s["examples"])
    return out
