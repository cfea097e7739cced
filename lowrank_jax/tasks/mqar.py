"""Multi-query associative recall (MQAR, Zoology): a row lists key-value pairs, then asks
for every key again at a random place; the model must answer each with its value. Only
the answers are scored.

A row of `seq_len` tokens: k_1 v_1 ... k_P v_P (P distinct keys from the lower half of the
vocabulary, values from the upper half), then the query region: P (key, value) pairs, each
key once in a random order, at random even offsets among filler tokens (0). The value after
a query key is that query's target, never an input: the model reads filler there
(`model_inputs`), as in Zoology, whose inputs hold the keys alone. Were the answers shown,
later queries could be answered by elimination (the values not yet shown), without recall:
a standard model that learnt only that scored 1/P sum_k 1/k (52% at 4 pairs, 21% at 16).
Zoology draws the query offsets from a power law that favours short gaps; here they are
uniform, so every distance in the region is asked about alike."""
from __future__ import annotations

import jax
import jax.numpy as jnp

FILLER = 0


def check_shape(vocab_size: int, seq_len: int, num_pairs: int) -> str | None:
    """Why a row of this shape cannot be made, or None."""
    if num_pairs < 1:
        return f"mqar.num_pairs={num_pairs} is not allowed; it must be at least 1."
    if vocab_size // 2 - 1 < num_pairs:
        return (f"mqar.num_pairs={num_pairs} is not allowed with model.vocab_size={vocab_size}; "
                f"the keys come from the lower half of the vocabulary, at most {vocab_size // 2 - 1}.")
    if seq_len < 4 * num_pairs:
        return (f"mqar.num_pairs={num_pairs} is not allowed with rows of {seq_len} tokens "
                f"(model.max_len + 1); a row holds the pairs and their queries, so it needs "
                f"at least {4 * num_pairs}.")
    return None


def make_row(key: jax.Array, vocab_size: int, seq_len: int, num_pairs: int) -> jax.Array:
    k_keys, k_values, k_order, k_slots = jax.random.split(key, 4)
    half = vocab_size // 2
    keys_P = jax.random.choice(k_keys, jnp.arange(1, half), (num_pairs,), replace=False)
    values_P = jax.random.randint(k_values, (num_pairs,), half, vocab_size)
    context = jnp.stack([keys_P, values_P], axis=1).reshape(-1)
    asked_P = jax.random.permutation(k_order, num_pairs)
    slots = (seq_len - 2 * num_pairs) // 2
    at_P = jax.random.permutation(k_slots, slots)[:num_pairs]
    queries_S2 = jnp.full((slots, 2), FILLER).at[at_P].set(
        jnp.stack([keys_P[asked_P], values_P[asked_P]], axis=1))
    row = jnp.concatenate([context, queries_S2.reshape(-1)])
    return jnp.pad(row, (0, seq_len - row.shape[0]), constant_values=FILLER).astype(jnp.int32)


def make_batch(key: jax.Array, batch_size: int, vocab_size: int, seq_len: int,
               num_pairs: int) -> jax.Array:
    """int32 (batch_size, seq_len) rows."""
    return jax.vmap(lambda k: make_row(k, vocab_size, seq_len, num_pairs))(
        jax.random.split(key, batch_size))


def answer_weights(tokens_BT: jax.Array, vocab_size: int, num_pairs: int) -> jax.Array:
    """(B, T - 1) float32: 1 where the next token is an answer (it follows a key in the
    query region), 0 elsewhere; aligned with the targets tokens_BT[:, 1:]."""
    position_T = jnp.arange(tokens_BT.shape[1] - 1)
    asked_BT = (tokens_BT[:, :-1] != FILLER) & (tokens_BT[:, :-1] < vocab_size // 2)
    return (asked_BT & (position_T >= 2 * num_pairs)).astype(jnp.float32)


def model_inputs(tokens_BT: jax.Array, vocab_size: int, num_pairs: int) -> jax.Array:
    """(B, T - 1): what the model reads of the rows, all but the last token with every
    answer (a query's value) turned to filler."""
    answer_BT = answer_weights(tokens_BT, vocab_size, num_pairs)[:, :-1] > 0
    return tokens_BT[:, :-1].at[:, 1:].set(
        jnp.where(answer_BT, FILLER, tokens_BT[:, 1:-1]))


def answer_positions(tokens_BT: jax.Array, vocab_size: int, num_pairs: int) -> jax.Array:
    """int32 (B, num_pairs): where each row's answers are among the next-token targets
    tokens_BT[:, 1:], in order; a row asks for every key once, so it has num_pairs."""
    weights_BT = answer_weights(tokens_BT, vocab_size, num_pairs)
    return jax.vmap(lambda w: jnp.nonzero(w, size=num_pairs)[0])(weights_BT).astype(jnp.int32)


def evaluate(logits_fn, rows_NbxBxT: jax.Array, vocab_size: int, num_pairs: int) -> dict:
    """Answers right, and answers asked, over the held-out rows (batches of them)."""
    def batch_sums(tokens_BT):
        at_BP = answer_positions(tokens_BT, vocab_size, num_pairs)
        logits_BPV = logits_fn(model_inputs(tokens_BT, vocab_size, num_pairs),
                               logit_positions_BP=at_BP)
        answers_BP = jnp.take_along_axis(tokens_BT[:, 1:], at_BP, axis=1)
        return {"correct": (jnp.argmax(logits_BPV, axis=-1) == answers_BP).sum(),
                "answers": jnp.float32(answers_BP.size)}

    return jax.tree.map(lambda x: x.sum(), jax.lax.map(batch_sums, rows_NbxBxT))


def finish_eval(sums: dict) -> dict:
    return {"answer_accuracy": float(sums["correct"]) / float(sums["answers"])}
