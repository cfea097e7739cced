"""python -m train.evaluate --workdir DIR [--eval-windows N]

Evaluates the newest checkpoint in DIR on its task: for a language model, the
validation loss, perplexity and bits per byte (N windows of max_len tokens spread over
the validation split; 0 reads all of it); for ListOps, the accuracy and loss on the
validation and test files.
"""
from __future__ import annotations

import sys

import jax

from train.cli import Parser
from train.errors import UserError, exit_on_user_error
from train.loop import eval_record, make_eval_fn
from train.pretrained import load_latest

PROGRAM = "python -m train.evaluate"


def parse_args(argv: list[str]):
    parser = Parser(prog=PROGRAM, doc=__doc__)
    parser.add_argument("--workdir", required=True, help="the folder a training run wrote")
    parser.add_argument("--eval-windows", type=int, default=None,
                        help="validation windows to read (text tasks; 0: all; default: the run's)")
    args = parser.parse_args(argv[1:])
    if args.eval_windows is not None and args.eval_windows < 0:
        raise UserError(f"--eval-windows={args.eval_windows} is not allowed; it must be >= 0 "
                        "(0 reads the whole validation split).")
    return args


def main(argv: list[str]) -> None:
    with exit_on_user_error(PROGRAM):
        args = parse_args(argv)
        data_overrides = {} if args.eval_windows is None else {"eval_windows": args.eval_windows}
        run = load_latest(args.workdir, data_overrides)
    evaluate = make_eval_fn(run.model(), run.task)
    record = eval_record(run.step, run.task, evaluate(run.params, jax.device_put(run.task.data)))
    print(f"{args.workdir} at step {run.step} ({run.config.task}):")
    for name, value in record.items():
        if name != "step":
            print(f"  {name.removeprefix('eval/')}: {value:.6g}")


if __name__ == "__main__":
    main(sys.argv)
