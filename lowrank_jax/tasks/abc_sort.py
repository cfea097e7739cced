"""Seed 001's task: read three letters from {a, b, c}, a separator, then write them sorted.

A sequence is `x1 x2 x3 SEP s1 s2 s3` (T = 7 tokens). Batches are made on the device
from a key, so a training step needs no host work.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lowrank_jax.attention import weights_are_per_token
from lowrank_jax.model import apply_with_attention

VOCAB = ("<sep>", "a", "b", "c")
SEP = 0
LETTERS = "abc"
PROMPT_LEN = 4  # three letters and SEP
SEQ_LEN = 7
VOCAB_SIZE = len(VOCAB)


def make_batch(key: jax.Array, batch_size: int) -> jax.Array:
    """int32 (batch_size, 7): random triples (repeats allowed), SEP, the sorted triple."""
    letters_B3 = jax.random.randint(key, (batch_size, 3), 1, VOCAB_SIZE, dtype=jnp.int32)
    sep_B1 = jnp.full((batch_size, 1), SEP, jnp.int32)
    return jnp.concatenate([letters_B3, sep_B1, jnp.sort(letters_B3, axis=-1)], axis=-1)


def encode(letters: str) -> list[int]:
    return [VOCAB.index(ch) for ch in letters]


def decode(ids) -> str:
    return "".join(VOCAB[int(i)] if int(i) != SEP else "|" for i in ids)


def parse_triple(text: str) -> str:
    """Normalises user input to three letters from a, b, c, or raises ValueError saying what is allowed."""
    letters = text.strip().lower()
    if len(letters) != 3 or set(letters) - set(LETTERS):
        raise ValueError(f"{text.strip()!r} is not a triple; type exactly three letters from a, b, c "
                         "(for example cab).")
    return letters


def all_triples() -> np.ndarray:
    """int32 (27, 3): every triple in lexicographic order."""
    return np.array([encode("".join(t)) for t in itertools.product(LETTERS, repeat=3)], np.int32)


def greedy_sort(logits_fn: Callable[[jax.Array], jax.Array], triples_N3: jax.Array) -> jax.Array:
    """Greedy decoding of the three outputs, SEP forbidden (as the seed). Returns int32 (N, 3).

    Decodes in a fixed (N, 7) buffer: the model is causal, so the unwritten tail
    cannot influence the logits read at the last written position.
    """
    n = triples_N3.shape[0]
    tokens_NT = jnp.concatenate([triples_N3, jnp.full((n, SEQ_LEN - 3), SEP, jnp.int32)], axis=1)
    for pos in range(PROMPT_LEN, SEQ_LEN):
        logits_NV = logits_fn(tokens_NT)[:, pos - 1]
        next_N = jnp.argmax(logits_NV.at[:, SEP].set(-jnp.inf), axis=-1).astype(jnp.int32)
        tokens_NT = tokens_NT.at[:, pos].set(next_N)
    return tokens_NT[:, PROMPT_LEN:]


def count_correct(logits_fn, triples_N3) -> jax.Array:
    predicted_N3 = greedy_sort(logits_fn, triples_N3)
    return jnp.sum(jnp.all(predicted_N3 == jnp.sort(triples_N3, axis=-1), axis=-1))


class TraceStep(NamedTuple):
    probs_abc: np.ndarray        # p(a), p(b), p(c) at the last position
    choice: int                  # the token picked (argmax, SEP forbidden)
    context: str                 # the tokens the model saw
    weights_HT: np.ndarray       # each head's attention weights of the last query


def traceable(model, params) -> Callable:
    """tokens (1, T) -> (the next-token probabilities after the last position (V,), the
    last block's attention weights of the last query (H, columns)); one program per T."""
    @jax.jit
    def probs_and_weights(tokens_1T):
        logits_1TV, weights = apply_with_attention(model, params, tokens_1T)
        return jax.nn.softmax(logits_1TV[0, -1]), weights[-1][0][:, -1]
    return probs_and_weights


def trace(apply_with_weights, letters: str) -> list[TraceStep]:
    """Seed 001's autoregressive trace; `apply_with_weights` as made by `traceable`."""
    ids = encode(letters) + [SEP]
    steps = []
    while len(ids) < SEQ_LEN:
        probs_V, weights_HT = map(np.asarray, apply_with_weights(jnp.array([ids], jnp.int32)))
        choice = int(np.argmax(np.where(np.arange(VOCAB_SIZE) == SEP, -np.inf, probs_V)))
        steps.append(TraceStep(probs_V[1:], choice, decode(ids), weights_HT))
        ids.append(choice)
    return steps


def label_weights(context: str, weights_T, per_token: bool) -> str:
    """Weights labelled by their token; a variant whose columns are not tokens (the
    Linformer: compressed slots, then the current block) gets numbered columns."""
    if per_token:
        return ", ".join(f"{tok}:{w:.2f}" for tok, w in zip(context, weights_T, strict=True))
    return ", ".join(f"#{j}:{w:.2f}" for j, w in enumerate(weights_T))


def format_trace(letters: str, steps: list[TraceStep], per_token: bool = True) -> str:
    lines = [f"trace {letters}:"]
    for i, step in enumerate(steps, 1):
        p_a, p_b, p_c = step.probs_abc
        lines.append(f"  step {i}: p(a)={p_a:.3f} p(b)={p_b:.3f} p(c)={p_c:.3f} -> "
                     f"{VOCAB[step.choice]!r}")
        for h, weights_T in enumerate(step.weights_HT):
            lines.append(f"    head {h}: [{label_weights(step.context, weights_T, per_token)}]")
    answer = "".join(VOCAB[s.choice] for s in steps)
    lines.append(f"  output {answer} (sorted: {''.join(sorted(letters))})")
    return "\n".join(lines)


TRACED = ("caa", "bac", "ccb")


def report(model, params) -> str:
    """Seed 001's end-of-training report: every triple greedily decoded, then three traces."""
    sort_all = jax.jit(lambda t: greedy_sort(lambda x: model.apply({"params": params}, x), t))
    triples_N3 = all_triples()
    predicted_N3 = np.asarray(sort_all(jnp.asarray(triples_N3)))
    lines, correct = [], 0
    for triple, predicted in zip(triples_N3, predicted_N3, strict=True):
        ok = bool(np.all(predicted == np.sort(triple)))
        correct += ok
        lines.append(f"  {decode(triple)} -> {decode(predicted)} {'ok' if ok else 'WRONG'}")
    lines.append(f"accuracy on all 27 triples: {correct}/27")
    apply_with_weights = traceable(model, params)
    for letters in TRACED:
        lines.append(format_trace(letters, trace(apply_with_weights, letters),
                                  weights_are_per_token(model.cfg)))
    return "\n".join(lines)
