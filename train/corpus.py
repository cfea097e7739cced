"""Text corpora: which files, their UTF-8 text, the train/validation split, and a token
cache that a second run maps from disk instead of tokenizing again.

A path is a text file, a folder (searched recursively with a glob; by default every
file, which must then be UTF-8 text), or a list of them. The embedded default is the
Python standard library's own source files (its .py files), which every machine with
Python has, so language-model configs run with no download.
"""
from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from train.errors import UserError

DEFAULT_CORPUS = "stdlib"
STDLIB_GLOB = "**/*.py"
EVERY_FILE = "**/*"
# How a corpus is split; part of the token cache's key, so a cache made by another way
# of splitting is never read.
SPLIT = "tail of each document"
# A NUL byte does not occur in text; a file holding one is binary whatever its name.
BINARY_MARK = b"\x00"


# Third-party packages live under the standard library's folder; they are not part of it.
NOT_STDLIB = {"site-packages", "dist-packages"}


def stdlib_folder() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def matching_files(folder: Path, glob: str, default: bool) -> list[Path]:
    return sorted(p for p in folder.glob(glob) if p.is_file() and
                  not (default and NOT_STDLIB & set(p.relative_to(folder).parts)))


def resolve_files(paths: str | Sequence[str], glob: str = "") -> list[Path]:
    """Every file the corpus is made of, in a stable order. An empty glob means every file
    of a folder, and the .py files of the standard library."""
    if isinstance(paths, str):
        paths = [paths]
    files = []
    for entry in paths:
        default = entry == DEFAULT_CORPUS
        path = stdlib_folder() if default else Path(entry).expanduser()
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(matching_files(path, glob or (STDLIB_GLOB if default else EVERY_FILE),
                                        default))
        else:
            raise UserError(f"data.path {entry!r} does not exist; give a text file, a folder or "
                            f"a list of them ({DEFAULT_CORPUS!r} is the Python standard library).")
    if not files:
        raise UserError(f"data.path {list(paths)!r} holds no file matching data.glob {glob!r}.")
    return files


def read_text(path: Path) -> str:
    data = path.read_bytes()
    if BINARY_MARK in data:
        raise UserError(f"{path} is a binary file, not text; leave it out of data.path or narrow "
                        "data.glob.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not UTF-8 text (byte {err.start} cannot be decoded); convert "
                        "it to UTF-8 or leave it out.") from None


def read_documents(files: Sequence[Path], skip_undecodable: bool = False) -> list[str]:
    """The text of every file. The default corpus skips the few stdlib files that are not
    UTF-8 text (test data); a user's corpus is refused instead, naming the file."""
    documents = []
    for path in files:
        try:
            documents.append(read_text(path))
        except UserError:
            if not skip_undecodable:
                raise
    if not any(documents):
        raise UserError("the corpus is empty: its files hold no text.")
    return documents


def split(documents: Sequence[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """The last `val_fraction` of each document's characters to validation, the rest to
    training: one file is a corpus, and every document is in both splits."""
    train, val = [], []
    for document in documents:
        cut = round(len(document) * (1 - val_fraction))
        train.append(document[:cut])
        val.append(document[cut:])
    train, val = [d for d in train if d], [d for d in val if d]
    if not train or not val:
        raise UserError(f"data.val_fraction={val_fraction} leaves "
                        f"{'no training' if not train else 'no validation'} text in a corpus of "
                        f"{sum(map(len, documents))} characters; give more text or another "
                        "fraction.")
    return train, val


def fingerprint(files: Sequence[Path], tokenizer_json: str, val_fraction: float) -> str:
    """Changes when a file, its size or mtime, the tokenizer or the split changes."""
    digest = hashlib.sha256(f"{tokenizer_json}|{val_fraction!r}|{SPLIT}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def tokenize(documents: Sequence[str], tokenizer, dtype) -> np.ndarray:
    """The documents' tokens joined end to end."""
    pieces = [np.asarray(tokenizer.encode(d), dtype) for d in documents]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype)


def cached_tokens(cache_dir: str, key: str, name: str, make_tokens: Callable[[], np.ndarray]):
    """The array `make_tokens()` gives, memory-mapped from cache_dir/{name}-{key}.npy;
    computed only when that file is missing."""
    path = os.path.join(cache_dir, f"{name}-{key}.npy")
    if os.path.exists(path):
        try:
            return np.load(path, mmap_mode="r")
        except (ValueError, OSError, EOFError):  # a truncated or overwritten file
            print(f"warning: the token cache {path} is damaged; tokenizing again.",
                  file=sys.stderr)
    tokens = make_tokens()
    os.makedirs(cache_dir, exist_ok=True)
    partial = path + ".partial.npy"  # an interrupted write never looks finished
    np.save(partial, tokens)
    os.replace(partial, path)
    return np.load(path, mmap_mode="r")
