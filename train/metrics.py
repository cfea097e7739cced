"""metrics.jsonl (one strict-JSON object per log step), TensorBoard event files in
WORKDIR/tensorboard, the terminal progress bar, and one plain line per log step and
evaluation when stdout is not a terminal (pipes, nohup, batch schedulers), where a bar
would print nothing."""
from __future__ import annotations

import json
import math
import os
import sys
import time

import jax
import numpy as np
from tensorboardX import SummaryWriter
from tqdm import tqdm

from lowrank_jax.training.step import FIRST_NONFINITE, summarize
from lowrank_jax.validation import UserError, is_int
from train.data import write_atomically
from train.distributed import is_primary

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
BAR_EVAL_METRICS = ("loss", "bits_per_byte", "triples_correct", "answer_accuracy",
                    "val_accuracy")


class MetricsLog:
    """metrics.jsonl and TensorBoard; of several hosts' processes, the primary's alone."""

    def __init__(self, workdir: str, resume_step: int):
        self.path = os.path.join(workdir, METRICS_FILE)
        self.primary = is_primary()
        if self.primary:
            self.drop_records_after(resume_step)
            self.tensorboard = SummaryWriter(os.path.join(workdir, TENSORBOARD_DIR))

    def drop_records_after(self, step: int) -> None:
        """A run that stopped after logging but before its next checkpoint logged steps the
        resumed run will redo; dropping them keeps exactly one record per step."""
        if not os.path.exists(self.path):
            return
        # Atomically: a kill while this runs must not lose the records that stay.
        write_atomically(self.path, "".join(json.dumps(r) + "\n" for r in records(self.path)
                                            if r["step"] <= step))

    def write(self, record: dict) -> None:
        if not self.primary:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(strict(record), allow_nan=False) + "\n")
        for name, value in record.items():
            if name != "step" and isinstance(value, (int, float)):
                self.tensorboard.add_scalar(name.replace("eval/", "validation/"), value,
                                            record["step"])

    def close(self) -> None:
        if self.primary:
            self.tensorboard.close()


def strict(record: dict) -> dict:
    """NaN and infinities as null: JSON has no spelling for them."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in record.items()}


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return (f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s")


def log_line(record: dict, total: int, tokens_per_step: int, eta_seconds: float) -> str:
    skipped = record.get("skipped_updates", 0)
    return (f"step {record['step']}/{total}  loss {record['loss']:.4f}  lr {record['lr']:.2e}  "
            f"{record['steps_per_second'] * tokens_per_step:,.0f} tokens/s  "
            f"ETA {duration(eta_seconds)}" + (f"  skipped {skipped} updates" if skipped else ""))


def eval_line(record: dict) -> str:
    figures = ", ".join(f"{k.removeprefix('eval/')} {v:.4g}" for k, v in record.items()
                        if k != "step" and isinstance(v, (int, float)))
    return f"eval at step {record['step']}: {figures}"


def records(path: str) -> list[dict]:
    """Every whole record; a line a crash cut short (or any line that is not a record of a
    step) is left out, with a warning."""
    kept = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = list(f)
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not a run's metrics file; move it away.") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and is_int(record.get("step")):
            kept.append(record)
        else:
            print(f"warning: {os.path.basename(path)} line {number} is not a whole record; "
                  "it is left out.", file=sys.stderr)
    return kept


def read_metrics(workdir: str) -> list[dict]:
    return records(os.path.join(workdir, METRICS_FILE))


class TrainLogger:
    """Collects each call's metric sums (device arrays) and turns them into log records.

    `close_window(step)` marks a log step; the window's sums are read only at the next
    `flush()`, which the loop calls after dispatching the following call, so reading
    metrics never stalls the device.
    """

    def __init__(self, workdir: str, start: int, total: int, schedule, tokens_per_step: int):
        self.log = MetricsLog(workdir, start)
        self.schedule = schedule
        # disable=None: a bar on a terminal, nothing in logs and pipes, which get lines.
        self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, disable=None)
        self.lines = self.bar.disable
        self.window, self.pending, self.last, self.postfix = [], None, {}, {}
        self.start, self.total, self.t_start = start, total, time.perf_counter()
        self.tokens_per_step = tokens_per_step

    def add(self, sums, steps: int) -> None:
        self.window.append(sums)
        self.bar.update(steps)

    def open_window(self) -> dict | None:
        """The sums of the steps since the last log step, as plain numbers (a checkpoint's
        record carries them, so a resumed run logs the windows an unbroken run logs)."""
        if not self.window:
            return None
        window = [{k: v for k, v in sums.items() if k != FIRST_NONFINITE}
                  for sums in jax.device_get(self.window)]
        totals = jax.tree.map(lambda *xs: np.sum(xs, axis=0), *window)
        return {k: float(v) for k, v in totals.items()}

    def resume_window(self, sums: dict | None) -> None:
        if sums:
            self.window = [{k: np.float32(v) for k, v in sums.items()}]

    def close_window(self, step: int) -> None:
        self.pending, self.window = (step, self.window), []

    def flush(self) -> None:
        if self.pending is None:
            return
        step, sums_list = self.pending
        self.pending = None
        window = [{k: v for k, v in sums.items() if k != FIRST_NONFINITE}
                  for sums in jax.device_get(sums_list)]
        totals = jax.tree.map(lambda *xs: np.sum(xs, axis=0), *window)
        # The average since this process started training: a window's own time is not
        # observable without stalling the device, since calls are read one call late.
        rate = (step - self.start) / (time.perf_counter() - self.t_start)
        self.last = {"step": step, **summarize(totals), "lr": float(self.schedule(step - 1)),
                     "steps_per_second": rate}
        self.log.write(self.last)
        self.postfix.update(loss=f"{self.last['loss']:.4f}", lr=f"{self.last['lr']:.2e}")
        self.bar.set_postfix(self.postfix)
        if self.lines:
            print(log_line(self.last, self.total, self.tokens_per_step,
                           (self.total - step) / rate if rate else 0.0), flush=True)

    def write_eval(self, record: dict) -> None:
        """Logged as its own record; the headline figures join the progress bar."""
        self.log.write(record)
        for name in BAR_EVAL_METRICS:
            if f"eval/{name}" in record:
                self.postfix[name if name.startswith("val_") else f"val_{name}"] = (
                    f"{record[f'eval/{name}']:.4g}")
        self.bar.set_postfix(self.postfix)
        if self.lines:
            print(eval_line(record), flush=True)

    def close(self) -> None:
        self.flush()
        self.bar.close()
        self.log.close()
