"""The text task's inputs: the tokenizer (kept in the workdir) and the token arrays.

A run's tokenizer is made once, saved as workdir/tokenizer.json, and read back from
there whenever the workdir holds a checkpoint, so resuming, evaluating and generating
all see the tokens the model was trained on. Token arrays come from the memory-mapped
cache (train/corpus.py), so a second run does not read or tokenize the corpus again.
"""
from __future__ import annotations

import functools
import os

from lowrank_jax.tasks.text import TextData, token_dtype
from lowrank_jax.tokenizer import BPETokenizer, ByteTokenizer, TextTokenizer, from_json
from train import corpus
from train.errors import UserError

TOKENIZER_FILE = "tokenizer.json"
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
    partial = tokenizer_path(workdir) + ".partial"
    with open(partial, "w", encoding="utf-8") as f:
        f.write(tokenizer.to_json())
    os.replace(partial, tokenizer_path(workdir))


def make_tokenizer(data_cfg, train_documents) -> TextTokenizer:
    if data_cfg.tokenizer == "bytes":
        return ByteTokenizer()
    if data_cfg.tokenizer_path:
        return read_tokenizer(data_cfg.tokenizer_path)
    print(f"training a byte-level BPE tokenizer with {data_cfg.vocab_size} tokens "
          "on the training split")
    return BPETokenizer.train(train_documents(), data_cfg.vocab_size)


def load_text(data_cfg, workdir: str, resuming: bool) -> tuple[TextTokenizer, TextData]:
    """(tokenizer, token arrays) of the run; `resuming`: the workdir's tokenizer is the run's."""
    files = corpus.resolve_files(data_cfg.path, data_cfg.glob)

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
    cache_dir = data_cfg.cache_dir or os.path.join(workdir, CACHE_DIR)
    dtype = token_dtype(tokenizer.vocab_size)

    def tokens_of(index: int, name: str):
        def make():
            print(f"tokenizing the {name} split of {len(files)} file(s) into {cache_dir}")
            return corpus.tokenize(splits()[index], tokenizer, dtype)
        return corpus.cached_tokens(cache_dir, key, name, make)

    data = TextData(tokens_of(0, "train"), tokens_of(1, "validation"), tokenizer.byte_lengths(),
                    data_cfg.eval_windows, data_cfg.eval_batch_size)
    return tokenizer, data


def load_task_data(spec, workdir: str, resuming: bool):
    """(tokenizer, task data) for the text task; (None, None) for tasks that make their own."""
    if spec.data is None:
        return None, None
    return load_text(spec.data, workdir, resuming)
