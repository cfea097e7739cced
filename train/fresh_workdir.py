"""A run refused before it trained (bad settings found late, data that does not fit the
model, out of memory at the start) leaves a fresh workdir as it found it: what it wrote
there (checkpoints/, tokenizer.json, the token cache, config.json) is removed again, so a
corrected command starts clean. A workdir that held anything is never touched: its files
may be another run's work."""
from __future__ import annotations

import contextlib
import os
import shutil

from train.checkpoint import CHECKPOINT_DIR, check_workdir_writable
from train.lock import LOCK_FILE, workdir_lock
from train.metrics import METRICS_FILE


def trained(workdir: str) -> bool:
    """Whether the run logged a step or saved a checkpoint: work that must be kept."""
    checkpoints = os.path.join(workdir, CHECKPOINT_DIR)
    return os.path.exists(os.path.join(workdir, METRICS_FILE)) or (
        os.path.isdir(checkpoints) and any(name.isdigit() for name in os.listdir(checkpoints)))


def remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


@contextlib.contextmanager
def held_and_undone_if_refused(workdir: str):
    """Holds the workdir's lock for a run; if the run fails before it trained and the
    workdir was fresh (absent or empty), removes what the run wrote, the folder too."""
    existed = os.path.isdir(workdir)
    fresh = not existed or not os.listdir(workdir)
    check_workdir_writable(workdir)
    try:
        with workdir_lock(workdir):
            try:
                yield
            except BaseException:
                if fresh and not trained(workdir):
                    for name in set(os.listdir(workdir)) - {LOCK_FILE}:
                        remove(os.path.join(workdir, name))
                raise
    except BaseException:
        if fresh and not existed:
            with contextlib.suppress(OSError):  # only while empty: never another run's files
                os.rmdir(workdir)
        raise
