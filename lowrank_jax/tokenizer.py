"""Tokenizers: byte-level (vocab 256, nothing to train) and byte-level BPE (HF `tokenizers`).

Both round-trip any Unicode text exactly: they work on UTF-8 bytes, so no character is
unknown. `to_json` / `from_json` serialise either kind, so a checkpoint can carry it.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Protocol

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from lowrank_jax.validation import UserError, is_int, require

BYTE_VOCAB = 256
# The smallest BPE vocabulary: the 256 byte symbols plus room for merges.
MIN_BPE_VOCAB = BYTE_VOCAB + 1


class TextTokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Iterable[int]) -> str: ...
    def to_json(self) -> str: ...
    def byte_lengths(self) -> np.ndarray: ...


class ByteTokenizer:
    """Token i is the byte i of the UTF-8 encoding."""

    vocab_size = BYTE_VOCAB

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        # A sampled sequence can end inside a multi-byte character: show it, don't fail.
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def to_json(self) -> str:
        return json.dumps({"kind": "bytes"})

    def byte_lengths(self) -> np.ndarray:
        return np.ones(BYTE_VOCAB, np.int32)


class BPETokenizer:
    """Byte-level BPE as GPT-2 uses it, through HF tokenizers."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> BPETokenizer:
        require(is_int(vocab_size) and vocab_size >= MIN_BPE_VOCAB,
                f"tokenizer vocab_size={vocab_size!r} is not allowed; byte-level BPE needs at "
                f"least {MIN_BPE_VOCAB} (256 bytes plus merges).")
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids])

    def to_json(self) -> str:
        return json.dumps({"kind": "bpe", "tokenizer": json.loads(self.tokenizer.to_str())})

    def byte_lengths(self) -> np.ndarray:
        """UTF-8 bytes per token (special tokens: 0). A byte-level token's string spells one
        character per byte; decoding it alone could split a character, so it is not used."""
        byte_symbols = set(pre_tokenizers.ByteLevel.alphabet())
        special = {i for i, t in self.tokenizer.get_added_tokens_decoder().items() if t.special}
        lengths = np.zeros(self.vocab_size, np.int32)
        for i in range(self.vocab_size):
            token = self.tokenizer.id_to_token(i)
            if i in special or token is None:
                continue
            lengths[i] = (len(token) if set(token) <= byte_symbols else
                          len(self.tokenizer.decode([i]).encode("utf-8")))
        return lengths


def from_json(text: str) -> TextTokenizer:
    """The inverse of `to_json`; a plain HF tokenizer.json (e.g. GPT-2's) is read as BPE."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"the tokenizer file is not JSON ({err.msg} at line {err.lineno}).") from None
    if data.get("kind") == "bytes":
        return ByteTokenizer()
    spec = data["tokenizer"] if data.get("kind") == "bpe" else data
    try:
        return BPETokenizer(Tokenizer.from_str(json.dumps(spec)))
    except Exception as err:  # tokenizers raises its own exception type with a long text
        raise UserError("the tokenizer file is not a tokenizer.json that HF tokenizers can "
                          f"read ({str(err).splitlines()[0][:120]}).") from None
