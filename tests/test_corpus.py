"""Corpus files, UTF-8 text, the split, the token cache, and every bad-input sentence."""
import os

import numpy as np
import pytest

from lowrank_jax.tokenizer import ByteTokenizer
from train import corpus
from train.errors import UserError


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "a.txt").write_text("alpha ✓\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("beta\n" * 50, encoding="utf-8")
    (tmp_path / "sub" / "c.md").write_text("not matched", encoding="utf-8")
    return tmp_path


def test_file_folder_and_list(tree):
    assert corpus.resolve_files(str(tree / "a.txt"), "**/*.txt") == [tree / "a.txt"]
    assert corpus.resolve_files(str(tree), "**/*.txt") == [tree / "a.txt", tree / "sub" / "b.txt"]
    both = corpus.resolve_files([str(tree / "sub"), str(tree / "a.txt")], "**/*.md")
    assert both == [tree / "sub" / "c.md", tree / "a.txt"]


def test_default_corpus_is_the_standard_library():
    files = corpus.resolve_files(corpus.DEFAULT_CORPUS, "")
    assert len(files) > 100 and any(f.name == "os.py" for f in files)
    assert all(f.suffix == ".py" for f in files)  # the default glob is the stdlib's only
    assert not any("site-packages" in f.parts for f in files)
    documents = corpus.read_documents(files[:50], skip_undecodable=True)
    assert all(isinstance(d, str) for d in documents)


def test_an_empty_glob_takes_every_file_of_a_folder(tree):
    assert corpus.resolve_files(str(tree), "") == [tree / "a.txt", tree / "sub" / "b.txt",
                                                   tree / "sub" / "c.md"]


def test_validation_is_the_tail_of_every_document():
    train, val = corpus.split(["a" * 90 + "A" * 10, "b" * 18 + "B" * 2, "c"], 0.1)
    assert train == ["a" * 90, "b" * 18, "c"] and val == ["A" * 10, "B" * 2]
    one_file = "first line\n" * 40
    train, val = corpus.split([one_file], 0.05)
    assert train[0] + val[0] == one_file and len(val[0]) == 22


def test_token_cache_is_written_once_and_mapped(tree, tmp_path):
    docs = corpus.read_documents(corpus.resolve_files(str(tree), "**/*.txt"))
    cache = str(tmp_path / "cache")
    tokens = corpus.cached_tokens(cache, "k1", "train",
                                  lambda: corpus.tokenize(docs, ByteTokenizer(), np.uint8))
    assert isinstance(tokens, np.memmap) and tokens.dtype == np.uint8
    assert ByteTokenizer().decode(tokens) == "".join(docs)

    def refuse():
        raise AssertionError("a cached corpus must not be tokenized again")

    again = corpus.cached_tokens(cache, "k1", "train", refuse)
    np.testing.assert_array_equal(again, tokens)
    assert os.listdir(cache) == ["train-k1.npy"]


def test_fingerprint_follows_files_and_tokenizer(tree):
    files = corpus.resolve_files(str(tree), "**/*.txt")
    key = corpus.fingerprint(files, ByteTokenizer().to_json(), 0.1)
    assert key == corpus.fingerprint(files, ByteTokenizer().to_json(), 0.1)
    assert key != corpus.fingerprint(files, '{"kind": "other"}', 0.1)
    assert key != corpus.fingerprint(files, ByteTokenizer().to_json(), 0.2)
    (tree / "a.txt").write_text("changed", encoding="utf-8")
    os.utime(tree / "a.txt", ns=(1, 1))
    assert key != corpus.fingerprint(files, ByteTokenizer().to_json(), 0.1)


def test_bad_corpora(tree):
    with pytest.raises(UserError, match=r"^data\.path '.*nope' does not exist; give a text file"):
        corpus.resolve_files(str(tree / "nope"), "**/*")
    with pytest.raises(UserError, match=r"holds no file matching data\.glob '\*\*/\*\.rst'\.$"):
        corpus.resolve_files(str(tree), "**/*.rst")
    (tree / "empty.txt").write_text("")
    with pytest.raises(UserError, match=r"^the corpus is empty: its files hold no text\.$"):
        corpus.read_documents([tree / "empty.txt"])
    (tree / "blob.txt").write_bytes(b"abc\x00\x01\x02")
    with pytest.raises(UserError, match=r"blob\.txt is a binary file, not text"):
        corpus.read_documents([tree / "blob.txt"])
    (tree / "latin.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin\.txt is not UTF-8 text \(byte 3 cannot be decoded\)"):
        corpus.read_documents([tree / "latin.txt"])
    with pytest.raises(UserError, match=r"^data\.val_fraction=0\.01 leaves no validation text "
                                        r"in a corpus of 8 characters; give more text"):
        corpus.split(["only one"], 0.01)
