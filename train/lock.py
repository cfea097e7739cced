"""One run per workdir: a lock file naming its holder (pid, host, start time).

A second run on the same workdir is refused in one sentence; a lock whose holder died
(a kill -9, a crash) is taken over with a note, so a killed run never blocks the next."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time

from train.errors import UserError

LOCK_FILE = "run.lock"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def holder(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def stale(record: dict | None) -> bool:
    """A lock of a process on this host that is gone (or a lock file cut short)."""
    if record is None:
        return True
    return record.get("host") == socket.gethostname() and not alive(int(record.get("pid", -1)))


def acquire(path: str) -> None:
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            other = holder(path)
            if not stale(other):
                raise UserError(
                    f"workdir {os.path.dirname(path)!r} is in use by another run (pid "
                    f"{other['pid']} on {other['host']}, since {other['started']}); wait for it "
                    "to end, or pass another --workdir.") from None
            gone = f"pid {other['pid']} on {other['host']}" if other else "a run"
            print(f"note: taking over the lock of {gone}, which is no longer running.",
                  file=sys.stderr)
            os.remove(path)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f)
        return
    raise UserError(f"the lock {path!r} could not be taken; another run may be starting there.")


@contextlib.contextmanager
def workdir_lock(workdir: str):
    """Holds WORKDIR/run.lock for the span of a run."""
    path = os.path.join(workdir, LOCK_FILE)
    acquire(path)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
