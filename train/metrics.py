"""metrics.jsonl (one JSON object per log step) and the terminal progress bar."""
from __future__ import annotations

import json
import os

from tqdm import tqdm

METRICS_FILE = "metrics.jsonl"


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


def progress_bar(total: int, initial: int) -> tqdm:
    # disable=None: a bar on a terminal, nothing in logs and pipes.
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, disable=None)
