"""metrics.jsonl (one JSON object per log step) and the terminal progress bar."""
from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from tqdm import tqdm

from lowrank_jax.training.step import summarize

METRICS_FILE = "metrics.jsonl"
BAR_EVAL_METRICS = ("loss", "bits_per_byte", "triples_correct")


class MetricsLog:
    def __init__(self, workdir: str, resume_step: int):
        self.path = os.path.join(workdir, METRICS_FILE)
        self.drop_records_after(resume_step)

    def drop_records_after(self, step: int) -> None:
        """A run that stopped after logging but before its next checkpoint logged steps the
        resumed run will redo; dropping them keeps exactly one record per step."""
        if not os.path.exists(self.path):
            return
        with open(self.path) as f:
            kept = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
        with open(self.path, "w") as f:
            f.writelines(kept)

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, METRICS_FILE)) as f:
        return [json.loads(line) for line in f if line.strip()]


class TrainLogger:
    """Collects each call's metric sums (device arrays) and turns them into log records.

    `close_window(step)` marks a log step; the window's sums are read only at the next
    `flush()`, which the loop calls after dispatching the following call, so reading
    metrics never stalls the device.
    """

    def __init__(self, workdir: str, start: int, total: int, schedule):
        self.log = MetricsLog(workdir, start)
        self.schedule = schedule
        # disable=None: a bar on a terminal, nothing in logs and pipes.
        self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, disable=None)
        self.window, self.pending, self.last, self.postfix = [], None, {}, {}
        self.start, self.t_start = start, time.perf_counter()

    def add(self, sums, steps: int) -> None:
        self.window.append(sums)
        self.bar.update(steps)

    def close_window(self, step: int) -> None:
        self.pending, self.window = (step, self.window), []

    def flush(self) -> None:
        if self.pending is None:
            return
        step, sums_list = self.pending
        self.pending = None
        totals = jax.tree.map(lambda *xs: np.sum(xs, axis=0), *jax.device_get(sums_list))
        # The average since this process started training: a window's own time is not
        # observable without stalling the device, since calls are read one call late.
        rate = (step - self.start) / (time.perf_counter() - self.t_start)
        self.last = {"step": step, **summarize(totals), "lr": float(self.schedule(step - 1)),
                     "steps_per_second": rate}
        self.log.write(self.last)
        self.postfix.update(loss=f"{self.last['loss']:.4f}", lr=f"{self.last['lr']:.2e}")
        self.bar.set_postfix(self.postfix)

    def write_eval(self, record: dict) -> None:
        """Logged as its own record; the headline figures join the progress bar."""
        self.log.write(record)
        for name in BAR_EVAL_METRICS:
            if f"eval/{name}" in record:
                self.postfix[f"val_{name}"] = f"{record[f'eval/{name}']:.4g}"
        self.bar.set_postfix(self.postfix)

    def close(self) -> None:
        self.flush()
        self.bar.close()
