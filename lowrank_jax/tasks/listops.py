"""ListOps (Long Range Arena): nested lists of digits under MIN, MAX, MED and SM (sum mod
10), each example labelled with its value 0-9.

The recipe: values 0-9; an operator takes 2 to 10 arguments; a node below the maximum
depth (10) is a leaf with probability 0.75, at it always a leaf; examples of 500 to 2,000
tokens are kept, duplicates dropped. MED is the median rounded down to an integer,
`int(np.median(args))`. An example is written as LRA's files write it, every list in
parentheses: "( [MAX 2 ( [MIN 4 7 ] ) 0 ] )"; a model reads it without the parentheses,
`]` a token of its own (`tokenize`)."""
from __future__ import annotations

import contextlib
import functools
import itertools
import multiprocessing
import random
from collections.abc import Iterator

import numpy as np

from lowrank_jax.validation import UserError

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
MAX_DEPTH, MAX_ARGS, LEAF_PROBABILITY = 10, 10, 0.75
MIN_LENGTH, MAX_LENGTH = 500, 2000
SHORTEST = 4   # the shortest list: an operator, two values and its "]"
# Chunks in a row that bring no new example before the draw is given up as exhausted.
FRUITLESS_CHUNKS = 100
NUM_CLASSES = 10   # the values an example can have
PROGRESS_EVERY = 10_000
# Token ids: 0 pads, then the symbols a model sees.
VOCAB = ("<pad>", *OPERATORS, "]", *map(str, range(10)))
TOKEN_IDS = {symbol: i for i, symbol in enumerate(VOCAB)}


def apply(operator: str, args: list[int]) -> int:
    if operator == "[MIN":
        return min(args)
    if operator == "[MAX":
        return max(args)
    if operator == "[MED":
        return int(np.median(args))
    return sum(args) % 10


class TooLong(Exception):
    """A tree grew past the longest kept length: drawn again, not finished."""


def tree(rng: random.Random, depth: int = 1, budget: list[int] | None = None) -> tuple[list[str], int]:
    """(the tree's symbols without parentheses, its value): a leaf, or an operator over
    2..MAX_ARGS subtrees. `depth` counts from 1 at the root; once the tree holds more than
    `budget[0]` symbols, TooLong."""
    budget = [MAX_LENGTH] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise TooLong
    if depth >= MAX_DEPTH or rng.random() < LEAF_PROBABILITY:
        value = rng.randrange(10)
        return [str(value)], value
    operator = OPERATORS[rng.randrange(len(OPERATORS))]
    symbols, values = [operator], []
    for _ in range(rng.randint(2, MAX_ARGS)):
        sub_symbols, value = tree(rng, depth + 1, budget)
        symbols += sub_symbols
        values.append(value)
    budget[0] -= 1   # the closing "]"
    if budget[0] < 0:
        raise TooLong
    return symbols + ["]"], apply(operator, values)


def with_parentheses(symbols: list[str]) -> str:
    """LRA's written form: each list "( [OP ... ] )"."""
    return " ".join(f"( {s}" if s in OPERATORS else f"{s} )" if s == "]" else s
                    for s in symbols)


CHUNK = 100   # examples drawn from one random stream, so that workers can draw in parallel


def chunk(seed: int, index: int, lengths=(MIN_LENGTH, MAX_LENGTH)) -> list[tuple[str, int]]:
    """The `index`-th CHUNK of (source, label) pairs of `lengths` tokens (parentheses not
    counted) for `seed`, from a stream of its own; a root that is a leaf or a tree out of
    range is drawn again."""
    rng, out = random.Random(f"listops/{seed}/{index}"), []
    while len(out) < CHUNK:
        try:
            symbols, label = tree(rng, budget=[lengths[1]])
        except TooLong:
            continue
        if len(symbols) >= lengths[0]:
            out.append((with_parentheses(symbols), label))
    return out


def examples(seed: int, lengths=(MIN_LENGTH, MAX_LENGTH), workers: int = 1
             ) -> Iterator[tuple[str, int]]:
    """Distinct (source, label) pairs, forever: the chunks in order, repeats dropped; the
    same ones for the same seed whatever the number of worker processes."""
    seen, fruitless = set(), 0
    with contextlib.ExitStack() as stack:
        pool = (stack.enter_context(multiprocessing.get_context("spawn").Pool(workers))
                if workers > 1 else None)
        for start in itertools.count(0, 4 * workers):
            indices = range(start, start + 4 * workers)
            draw = functools.partial(chunk, seed, lengths=lengths)
            for drawn in (pool.map(draw, indices) if pool else map(draw, indices)):
                before = len(seen)
                for example in drawn:
                    if example[0] not in seen:
                        seen.add(example[0])
                        yield example
                fruitless = 0 if len(seen) > before else fruitless + 1
                if fruitless == FRUITLESS_CHUNKS:
                    raise UserError(f"lengths {lengths[0]}-{lengths[1]} hold too few distinct "
                                    f"ListOps examples: {len(seen):,} found; widen the "
                                    "lengths or ask for fewer examples.")


def splits(seed: int, counts: dict[str, int], lengths=(MIN_LENGTH, MAX_LENGTH),
           progress=None, workers: int = 1) -> dict[str, list[tuple[str, int]]]:
    """{split: examples} in the order of `counts`, no example in two splits;
    `progress(split, examples so far)` every PROGRESS_EVERY examples and at each split's end.
    `workers` processes draw the chunks (the data does not depend on how many)."""
    stream, out = examples(seed, lengths, workers), {}
    for name, count in counts.items():
        out[name] = []
        for _ in range(count):
            out[name].append(next(stream))
            if progress and len(out[name]) % PROGRESS_EVERY == 0:
                progress(name, len(out[name]))
        if progress and count % PROGRESS_EVERY:
            progress(name, count)
    stream.close()
    return out


def tokenize(source: str) -> list[int]:
    """A written example -> token ids, parentheses dropped."""
    return [TOKEN_IDS[s] for s in source.split() if s not in ("(", ")")]


def encode_rows(sources: list[str], labels: list[int], length: int) -> np.ndarray:
    """int8 (N, length + 1): each example's tokens (as `tokenize` gives them), padded with
    0 to `length`, then its label: a labelled task's rows (lowrank_jax/tasks/labelled.py).
    Raises ValueError naming the first example longer than `length` or holding a word
    ListOps does not have."""
    rows = np.zeros((len(sources), length + 1), np.int8)
    for i, (source, label) in enumerate(zip(sources, labels)):
        try:
            tokens = tokenize(source)
        except KeyError as err:
            raise ValueError(f"example {i + 1} holds {err}, which is not a ListOps symbol") from None
        if len(tokens) > length:
            raise ValueError(f"example {i + 1} has {len(tokens):,} tokens, more than the "
                             f"{length:,} a row holds")
        rows[i, :len(tokens)] = tokens
        rows[i, -1] = label
    return rows

