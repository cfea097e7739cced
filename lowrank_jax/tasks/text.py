"""Language modelling on a token stream: random training windows, fixed validation windows.

The training split lives on the device as one flat array (uint8/uint16 when the
vocabulary allows, to save memory) and a batch is B random windows of seq_len tokens
whose starts are drawn from the step's key, so batches are a pure function of
(seed, step). Validation reads fixed windows spread evenly over the validation split;
each token in them is predicted once.

Bits per byte divide the summed loss (in bits) by the UTF-8 bytes the predicted
tokens stand for, which makes tokenizers with different vocabularies comparable.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax


class TextData(NamedTuple):
    """Host-side arrays the text task is built from (the I/O that makes them is in train/)."""
    train_tokens: np.ndarray         # (N,) the training split, documents end to end
    val_tokens: np.ndarray           # (M,) the validation split
    byte_lengths: np.ndarray         # (vocab,) UTF-8 bytes each token stands for
    eval_windows: int = 64           # validation windows per evaluation; 0: all of them
    eval_batch_size: int = 16


def token_dtype(vocab_size: int):
    """The narrowest unsigned dtype that holds every token id."""
    return next(t for t in (np.uint8, np.uint16, np.uint32) if vocab_size <= np.iinfo(t).max + 1)


def validation_windows(val_tokens: np.ndarray, seq_len: int, count: int) -> np.ndarray:
    """(count, seq_len) windows at evenly spaced starts, consecutive windows sharing one
    token so every token after the first is a target once; count 0 or too large: all."""
    n_all = (len(val_tokens) - 1) // (seq_len - 1)
    picked = np.arange(n_all) if count == 0 or count >= n_all else \
        np.linspace(0, n_all - 1, count).round().astype(int)
    starts = picked * (seq_len - 1)
    return np.stack([val_tokens[s:s + seq_len] for s in starts])


def device_arrays(data: TextData, seq_len: int) -> dict[str, np.ndarray]:
    """What the jitted step and evaluation read, as host arrays to put on the device."""
    windows = validation_windows(data.val_tokens, seq_len, data.eval_windows)
    usable = len(windows) // data.eval_batch_size * data.eval_batch_size or len(windows)
    batch = min(data.eval_batch_size, usable)
    dtype = token_dtype(len(data.byte_lengths))
    return {"train": np.asarray(data.train_tokens, dtype),
            "val_NbxBxT": windows[:usable].reshape(-1, batch, seq_len).astype(dtype),
            "byte_lengths": np.asarray(data.byte_lengths, np.int32)}


def make_batch(key: jax.Array, batch_size: int, arrays: dict, seq_len: int) -> jax.Array:
    train = arrays["train"]
    starts_B = jax.random.randint(key, (batch_size,), 0, train.shape[0] - seq_len + 1)
    window = lambda start: jax.lax.dynamic_slice_in_dim(train, start, seq_len)
    return jax.vmap(window)(starts_B).astype(jnp.int32)


def evaluate(logits_fn, arrays: dict) -> dict[str, jax.Array]:
    """Sums over the validation windows: nats of loss, target tokens, target bytes."""
    def batch_sums(tokens_BT):
        tokens_BT = tokens_BT.astype(jnp.int32)
        targets_BT = tokens_BT[:, 1:]
        nll_BT = optax.softmax_cross_entropy_with_integer_labels(
            logits_fn(tokens_BT[:, :-1]).astype(jnp.float32), targets_BT)
        return {"nll": nll_BT.sum(), "tokens": jnp.float32(nll_BT.size),
                "bytes": jnp.asarray(arrays["byte_lengths"])[targets_BT].sum().astype(jnp.float32)}

    per_batch = jax.lax.map(batch_sums, arrays["val_NbxBxT"])
    return jax.tree.map(lambda x: x.sum(0), per_batch)


def finish_eval(sums: dict) -> dict[str, float]:
    loss = float(sums["nll"] / sums["tokens"])
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)),
            "bits_per_byte": float(sums["nll"] / math.log(2) / sums["bytes"])}
