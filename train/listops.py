"""python -m train.listops --out DIR [--num-train N] [--num-val N] [--num-test N] [--seed S]

Writes the ListOps dataset of the Long Range Arena (lowrank_jax/tasks/listops.py says the
recipe) as LRA's files: basic_train.tsv, basic_val.tsv and basic_test.tsv in DIR, each
with the columns Source and Target, so code written for LRA's data reads them. The same
seed gives the same files; no example is in two splits. The default sizes (96,000 /
2,000 / 2,000) take a few minutes.
"""
from __future__ import annotations

import os
import sys
import time

from lowrank_jax.tasks import listops
from train.cli import Parser
from train.data import write_atomically
from train.errors import UserError, exit_on_user_error

PROGRAM = "python -m train.listops"
FILES = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}


def parse_args(argv: list[str]):
    parser = Parser(prog=PROGRAM, doc=__doc__)
    parser.add_argument("--out", required=True, help="the folder to write the three files into")
    for split, default in (("train", 96_000), ("val", 2_000), ("test", 2_000)):
        parser.add_argument(f"--num-{split}", type=int, default=default,
                            help=f"examples in {FILES[split]}")
    parser.add_argument("--seed", type=int, default=0, help="the generator's seed")
    args = parser.parse_args(argv[1:])
    for split in FILES:
        if getattr(args, f"num_{split}") < 0:
            raise UserError(f"--num-{split}={getattr(args, f'num_{split}')} is not allowed; "
                            "give a count of 0 or more.")
    if args.seed < 0:
        raise UserError(f"--seed={args.seed} is not allowed; give 0 or more.")
    return args


def write_splits(out: str, counts: dict[str, int], seed: int, progress=print) -> None:
    """The three TSV files in `out`; refuses (before generating) to replace any."""
    held = [name for name in FILES.values() if os.path.exists(os.path.join(out, name))]
    if held:
        raise UserError(f"--out {out!r} already holds {held[0]}; choose another folder or "
                        "remove the ListOps files there first.")
    started = time.monotonic()

    def report(split, count):
        progress(f"{split}: {count:,} examples ({time.monotonic() - started:.0f} s)")

    data = listops.splits(seed, counts, progress=report)
    os.makedirs(out, exist_ok=True)
    for split, rows in data.items():
        write_atomically(os.path.join(out, FILES[split]),
                         "Source\tTarget\n" + "".join(f"{s}\t{t}\n" for s, t in rows))
    progress(f"written: {', '.join(FILES.values())} in {out}")


def main(argv: list[str]) -> None:
    with exit_on_user_error(PROGRAM):
        args = parse_args(argv)
        write_splits(args.out, {split: getattr(args, f"num_{split}") for split in FILES},
                     args.seed)


if __name__ == "__main__":
    main(sys.argv)
