"""python -m train.sort_demo --workdir DIR

Traces the trained ABC sorter on triples you type: reads one triple per line (three letters from a, b, c) until end of input and prints
seed 001's trace: p(a), p(b), p(c) at each step and each head's attention weights.
"""
from __future__ import annotations

import sys

from lowrank_jax.attention import weights_are_per_token
from lowrank_jax.model import GPT
from lowrank_jax.tasks import abc_sort
from train.cli import Parser
from train.errors import UserError, exit_on_user_error
from train.pretrained import load_latest

PROGRAM = "python -m train.sort_demo"
PROMPT = "three letters from a, b, c (end of input to quit)> "


def main(argv: list[str]) -> None:
    with exit_on_user_error(PROGRAM):
        parser = Parser(prog=PROGRAM, doc=__doc__)
        parser.add_argument("--workdir", required=True, help="the folder an ABC run wrote")
        flags = parser.parse_args(argv[1:])
        run = load_latest(flags.workdir)
        if run.config.task != "abc_sort":
            raise UserError(f"workdir {flags.workdir!r} holds a {run.config.task!r} model, "
                            "not an ABC sorter; pass the workdir of an abc_sort run.")
    print(f"loaded the ABC sorter from {flags.workdir} (step {run.step})")
    apply_with_weights = abc_sort.traceable(GPT(run.model_cfg), run.params)
    while True:
        print(PROMPT, end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            print()
            return
        try:
            letters = abc_sort.parse_triple(line)
        except ValueError as err:
            print(err)
            continue
        print(abc_sort.format_trace(letters, abc_sort.trace(apply_with_weights, letters),
                                    weights_are_per_token(run.model_cfg)))


if __name__ == "__main__":
    main(sys.argv)
