"""Tokenizers: byte-level (vocab 256, nothing to train) and byte-level BPE (HF `tokenizers`).

Both round-trip any Unicode text exactly: they work on UTF-8 bytes, so no character is
unknown. `to_json` writes either kind as a plain Hugging Face tokenizer.json
(`tokenizers.Tokenizer.from_file` reads it; the byte tokenizer is a BPE without merges
over the 256 byte symbols, id = byte), and `from_json` reads it back.
"""
from __future__ import annotations

import functools
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


def byte_symbols() -> dict[int, str]:
    """The characters byte-level BPE spells each byte with (GPT-2's convention): printable
    Latin-1 bytes stand for themselves, every other byte, in order, for chr(256 + n)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(BYTE_VOCAB) if b not in printable]
    return {**{b: chr(b) for b in printable},
            **{b: chr(BYTE_VOCAB + n) for n, b in enumerate(others)}}


def byte_level_tokenizer(model, split_words: bool) -> Tokenizer:
    """A byte-level HF tokenizer around `model`; `split_words` cuts text into words first
    (GPT-2's pattern), which BPE merges respect."""
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                       use_regex=split_words)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


@functools.cache
def byte_tokenizer_json() -> str:
    """The byte tokenizer as a Hugging Face tokenizer.json: BPE without merges over the
    byte symbols, id = byte."""
    vocab = {symbol: b for b, symbol in byte_symbols().items()}
    return byte_level_tokenizer(models.BPE(vocab=vocab, merges=[]), split_words=False).to_str()


class ByteTokenizer:
    """Token i is the byte i of the UTF-8 encoding."""

    vocab_size = BYTE_VOCAB

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        # A sampled sequence can end inside a multi-byte character: show it, don't fail.
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def to_json(self) -> str:
        return byte_tokenizer_json()

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
        tokenizer = byte_level_tokenizer(models.BPE(), split_words=True)
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids])

    def to_json(self) -> str:
        return self.tokenizer.to_str()

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
    """The inverse of `to_json`: any HF tokenizer.json (e.g. GPT-2's) is read as BPE, the
    byte tokenizer's own file as the byte tokenizer. Workdirs of earlier versions wrapped
    the file as {"kind": "bytes"} or {"kind": "bpe", "tokenizer": ...}; both still read."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"the tokenizer file is not JSON ({err.msg} at line {err.lineno}).") from None
    if data.get("kind") == "bytes" or data == json.loads(byte_tokenizer_json()):
        return ByteTokenizer()
    spec = data["tokenizer"] if data.get("kind") == "bpe" else data
    try:
        return BPETokenizer(Tokenizer.from_str(json.dumps(spec)))
    except Exception as err:  # tokenizers raises its own exception type with a long text
        raise UserError("the tokenizer file is not a tokenizer.json that HF tokenizers can "
                          f"read ({str(err).splitlines()[0][:120]}).") from None
