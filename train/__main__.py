"""python -m train [--config configs/NAME.py] [--config.FIELD=VALUE ...] [--workdir DIR]

With no arguments it trains the seed-001 ABC sorter (configs/abc_sort.py) in runs/abc_sort.
"""
from __future__ import annotations

import os
import sys

from train.cli import load_config, parse_flags
from train.errors import exit_on_user_error

PROGRAM = "python -m train"


def main(argv: list[str]) -> None:
    with exit_on_user_error(PROGRAM):
        flags = parse_flags(argv, PROGRAM, workdir=True)
        config = load_config(flags)
        workdir = flags.workdir or os.path.join("runs", flags.config_name)
        from train.loop import train_and_evaluate  # after load_config set up XLA
        try:
            summary = train_and_evaluate(config, workdir)
        except KeyboardInterrupt:
            print(f"\n{PROGRAM}: interrupted; the checkpoints in {workdir} are intact.", file=sys.stderr)
            sys.exit(130)
    print(summary_line(summary, workdir))


def summary_line(summary: dict, workdir: str) -> str:
    """The run's last words: its step, final losses, validation figures and time."""
    parts = [f"done: step {summary['step']}"]
    if "loss" in summary["train"]:
        parts.append(f"train loss {summary['train']['loss']:.4f}")
    figures = {k.removeprefix("eval/"): v for k, v in (summary["eval"] or {}).items()
               if k != "step" and not k.endswith("_fraction")}
    parts += [f"validation {name} {value:.4g}" for name, value in figures.items()]
    parts.append(f"training {summary['train_seconds']:.1f} s (+{summary['compile_seconds']:.1f} "
                 f"s compiling); workdir {workdir}")
    return ", ".join(parts)


if __name__ == "__main__":
    main(sys.argv)
