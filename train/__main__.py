"""python -m train [--config NAME[:ARG]] [--config.FIELD=VALUE ...] [--workdir DIR] [--dry-run]

Trains the model a config describes, or resumes it from the newest checkpoint in its
workdir; with no arguments, the seed-001 ABC sorter (configs/abc_sort.py) in runs/abc_sort.
"""
from __future__ import annotations

import os
import sys

from train.cli import load_config, parse_flags
from train.errors import exit_on_user_error

PROGRAM = "python -m train"


def main(argv: list[str]) -> None:
    with exit_on_user_error(PROGRAM):
        flags = parse_flags(argv, PROGRAM, __doc__, workdir=True, dry_run=True)
        config = load_config(flags)
        if flags.dry_run:
            print(dry_run(config))
            return
        workdir = flags.workdir or os.path.join("runs", flags.config_name)
        from train.distributed import start_from_environment  # after load_config set up XLA
        from train.loop import train_and_evaluate
        start_from_environment()
        from train.preemption import Preempted
        try:
            summary = train_and_evaluate(config, workdir)
        except Preempted as stop:
            print(f"{PROGRAM}: {stop}; the checkpoint there is saved in {workdir}, and the same "
                  "command resumes from it.", file=sys.stderr)
            sys.exit(stop.exit_code)
        except KeyboardInterrupt:
            print(f"\n{PROGRAM}: interrupted; the checkpoints in {workdir} are intact.", file=sys.stderr)
            sys.exit(130)
    print(summary_line(summary, workdir))


def dry_run(config) -> str:
    """The resolved config and the model's size, checked as a run would check them."""
    import jax

    from lowrank_jax.model import count_parameters, model_for_task
    from lowrank_jax.tasks import NUM_CLASSES
    from lowrank_jax.training.config import run_spec

    spec = run_spec(config)
    model = model_for_task(spec.model, NUM_CLASSES.get(spec.task, 0))
    shapes = jax.eval_shape(lambda: model.init(
        jax.random.key(0), jax.numpy.zeros((1, spec.model.max_len), jax.numpy.int32)))
    vocab = " (vocabulary: the tokenizer's, counted here as 1)" if spec.vocab_from_tokenizer else ""
    return (f"{config.to_json(indent=2)}\ntrainable parameters: "
            f"{count_parameters(shapes['params']):,}{vocab}")


def summary_line(summary: dict, workdir: str) -> str:
    """The run's last words: its step, final losses, validation figures and time."""
    parts = [f"done: step {summary['step']}"]
    if "loss" in summary["train"]:
        parts.append(f"train loss {summary['train']['loss']:.4f}")
    figures = {k.removeprefix("eval/"): v for k, v in (summary["eval"] or {}).items()
               if k != "step" and not k.endswith("_fraction")}
    parts += [f"{'' if name.startswith(('val_', 'test_')) else 'validation '}{name} {value:.4g}"
              for name, value in figures.items()]
    parts.append(f"training {summary['train_seconds']:.1f} s (+{summary['compile_seconds']:.1f} "
                 f"s compiling); workdir {workdir}")
    return ", ".join(parts)


if __name__ == "__main__":
    main(sys.argv)
