"""Tokenizers round-trip arbitrary Unicode and survive serialisation."""
import json

import numpy as np
import pytest
from tokenizers import Tokenizer

from lowrank_jax.tokenizer import BPETokenizer, ByteTokenizer, from_json
from lowrank_jax.validation import UserError

SAMPLES = ["", "plain ascii", "naïve café 😀 中文 ∑ x² \t\n\r", "e\u0301 (combining)", "\x00\x7f\u2028",
           "def f(x):\n    return x ** 2  # ✓\n"]
CORPUS = ["def add(a, b):\n    return a + b\n", "class Foo:\n    pass\n", "import os\nprint('hi')\n"] * 20


def random_unicode(seed, n=200):
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 0x2FFFF, n)
    return "".join(chr(p) for p in points if not 0xD800 <= p <= 0xDFFF)  # no lone surrogates


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(CORPUS, vocab_size=300)


@pytest.mark.parametrize("seed", range(5))
def test_both_round_trip_arbitrary_unicode(bpe, seed):
    for text in SAMPLES + [random_unicode(seed)]:
        assert ByteTokenizer().decode(ByteTokenizer().encode(text)) == text
        assert bpe.decode(bpe.encode(text)) == text


def test_bpe_learns_merges_and_compresses(bpe):
    text = CORPUS[0]
    assert 256 < bpe.vocab_size <= 300  # training stops early when no pair is left to merge
    assert len(bpe.encode(text)) < len(ByteTokenizer().encode(text)) / 2
    assert max(bpe.encode(text)) < bpe.vocab_size


def test_serialisation_round_trip(bpe):
    restored = from_json(bpe.to_json())
    assert restored.encode(CORPUS[1]) == bpe.encode(CORPUS[1]) and restored.vocab_size == bpe.vocab_size
    assert isinstance(from_json(ByteTokenizer().to_json()), ByteTokenizer)
    # Workdirs of earlier versions wrapped the file; they still read.
    assert isinstance(from_json('{"kind": "bytes"}'), ByteTokenizer)
    wrapped = json.dumps({"kind": "bpe", "tokenizer": json.loads(bpe.to_json())})
    assert from_json(wrapped).encode(CORPUS[2]) == bpe.encode(CORPUS[2])


@pytest.mark.parametrize("seed", range(3))
def test_the_saved_file_is_a_plain_hugging_face_tokenizer(bpe, tmp_path, seed):
    """tokenizers.Tokenizer.from_file reads what a workdir keeps, with the same ids."""
    for ours in (ByteTokenizer(), bpe):
        path = tmp_path / "tokenizer.json"
        path.write_text(ours.to_json(), encoding="utf-8")
        theirs = Tokenizer.from_file(str(path))
        for text in SAMPLES + [random_unicode(seed)]:
            assert theirs.encode(text).ids == ours.encode(text)
            assert theirs.decode(ours.encode(text)) == text


def test_bytes_decode_a_cut_character_without_failing():
    ids = ByteTokenizer().encode("é")[:1]
    assert ByteTokenizer().decode(ids) == "\ufffd"


@pytest.mark.parametrize("text,message", [
    ("not json", r"^the tokenizer file is not JSON"),
    ('{"model": 3}', r"^the tokenizer file is not a tokenizer\.json that HF tokenizers can read"),
])
def test_bad_tokenizer_files(text, message):
    with pytest.raises(UserError, match=message):
        from_json(text)


def test_bpe_vocab_too_small():
    with pytest.raises(UserError, match=r"vocab_size=100 is not allowed; byte-level BPE needs at least 257"):
        BPETokenizer.train(CORPUS, vocab_size=100)
