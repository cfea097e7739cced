"""The text task's inputs: the tokenizer (kept in the workdir) and the token arrays.

A run's tokenizer is made once, saved as workdir/tokenizer.json, and read back from
there whenever the workdir holds a checkpoint, so resuming, evaluating and generating
all see the tokens the model was trained on. Token arrays come from the memory-mapped
cache (train/corpus.py), so a second run does not read or tokenize the corpus again.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from lowrank_jax.tasks.text import TextData, token_dtype
from lowrank_jax.tokenizer import BPETokenizer, ByteTokenizer, TextTokenizer, from_json
from train import corpus
from train.errors import UserError

TOKENIZER_FILE = "tokenizer.json"
# The token cache's key for this run's corpus, so a workdir whose corpus has gone can
# still be evaluated (and resumed) from its cache.
DATA_KEY_FILE = "data_key"
# The data fields that decide which tokens a run trains on (not where they are cached,
# nor how much of the validation split an evaluation reads).
DATA_IDENTITY = ("path", "glob", "val_fraction", "tokenizer", "vocab_size", "tokenizer_path")
CACHE_DIR = "cache"


def tokenizer_path(workdir: str) -> str:
    return os.path.join(workdir, TOKENIZER_FILE)


def read_tokenizer(path: str) -> TextTokenizer:
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            return from_json(f.read())
    except OSError as err:
        raise UserError(f"tokenizer file {path!r} cannot be read ({err.strerror}).") from None


def save_tokenizer(tokenizer: TextTokenizer, workdir: str) -> None:
    write_atomically(tokenizer_path(workdir), tokenizer.to_json())


def make_tokenizer(data_cfg, train_documents) -> TextTokenizer:
    if data_cfg.tokenizer == "bytes":
        return ByteTokenizer()
    if data_cfg.tokenizer_path:
        return read_tokenizer(data_cfg.tokenizer_path)
    print(f"training a byte-level BPE tokenizer with {data_cfg.vocab_size} tokens "
          "on the training split")
    return BPETokenizer.train(train_documents(), data_cfg.vocab_size)


def load_text(data_cfg, workdir: str, resuming: bool) -> tuple[TextTokenizer, TextData]:
    """(tokenizer, token arrays) of the run; `resuming`: the workdir's tokenizer is the run's.
    A resumed run whose corpus is gone reads the token cache it made, if that is still there."""
    try:
        files = corpus.resolve_files(data_cfg.path, data_cfg.glob)
    except UserError:
        if resuming and cached_key(workdir):
            return load_cached_text(data_cfg, workdir)
        raise

    @functools.cache
    def splits():
        is_default = data_cfg.path == corpus.DEFAULT_CORPUS
        documents = corpus.read_documents(files, skip_undecodable=is_default)
        return corpus.split(documents, data_cfg.val_fraction)

    if resuming:
        tokenizer = read_tokenizer(tokenizer_path(workdir))
    else:
        tokenizer = make_tokenizer(data_cfg, lambda: splits()[0])
        save_tokenizer(tokenizer, workdir)
    key = corpus.fingerprint(files, tokenizer.to_json(), data_cfg.val_fraction)
    cache_dir = cache_folder(data_cfg, workdir)
    dtype = token_dtype(tokenizer.vocab_size)

    def tokens_of(index: int, name: str):
        def make():
            print(f"tokenizing the {name} split of {len(files)} file(s) into {cache_dir}")
            return corpus.tokenize(splits()[index], tokenizer, dtype)
        return corpus.cached_tokens(cache_dir, key, name, make)

    data = TextData(tokens_of(0, "train"), tokens_of(1, "validation"), tokenizer.byte_lengths(),
                    data_cfg.eval_windows, data_cfg.eval_batch_size)
    if not resuming:  # readers of a finished run never write into its workdir
        write_atomically(os.path.join(workdir, DATA_KEY_FILE), key)
    return tokenizer, data


def cache_folder(data_cfg, workdir: str) -> str:
    return data_cfg.cache_dir or os.path.join(workdir, CACHE_DIR)


def cached_key(workdir: str) -> str | None:
    try:
        with open(os.path.join(workdir, DATA_KEY_FILE), encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def write_atomically(path: str, text: str) -> None:
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(partial, path)


def load_cached_text(data_cfg, workdir: str) -> tuple[TextTokenizer, TextData]:
    """The run's tokens from its token cache alone (the corpus is gone)."""
    key, cache_dir = cached_key(workdir), cache_folder(data_cfg, workdir)
    paths = [os.path.join(cache_dir, f"{name}-{key}.npy") for name in ("train", "validation")]
    if not all(os.path.exists(p) for p in paths):
        raise UserError(f"data.path {data_cfg.path!r} is gone and so is the token cache made "
                        f"from it in {cache_dir}; put the corpus back to evaluate or resume.")
    tokenizer = read_tokenizer(tokenizer_path(workdir))
    train, val = (np.load(p, mmap_mode="r") for p in paths)
    return tokenizer, TextData(train, val, tokenizer.byte_lengths(), data_cfg.eval_windows,
                               data_cfg.eval_batch_size)


def load_task_data(spec, workdir: str, resuming: bool):
    """(tokenizer, task data): the text task's corpus, ListOps's files; (None, None) for
    tasks that make their own."""
    if spec.task == "listops":
        from train.listops import load_rows

        return None, load_rows(spec.options, spec.model.max_len)
    if spec.data is None:
        return None, None
    return load_text(spec.data, workdir, resuming)
