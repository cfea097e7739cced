"""python -m train.listops --out DIR [--num-train N] [--num-val N] [--num-test N] [--seed S]
                          [--lengths MIN,MAX] [--workers N]

Writes the ListOps dataset of the Long Range Arena (lowrank_jax/tasks/listops.py says the
recipe) as LRA's files: basic_train.tsv, basic_val.tsv and basic_test.tsv in DIR, each
with the columns Source and Target, so code written for LRA's data reads them. The same
seed (and lengths) gives the same files, whatever the number of workers; no example is
in two splits. The default sizes (96,000 / 2,000 / 2,000) take about 3 minutes of one
CPU core, spread over every core by default; --lengths 16,128 makes short examples for
a quick run on a CPU (configs/listops_<variant>.py:local).
"""
from __future__ import annotations

import csv
import os
import sys
import time

from lowrank_jax.tasks import labelled, listops
from lowrank_jax.validation import is_digits
from train.cli import Parser, check_folder_can_be_made, number_list
from train.data import write_atomically
from train.errors import UserError, exit_on_user_error

PROGRAM = "python -m train.listops"
FILES = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}
PARALLEL_FROM = 5_000   # examples: below, starting worker processes costs more than it saves
LOCAL_SHORTEST = 16     # tokens: the shortest example of the CPU-sized data (configs' :local)
LRA_COUNTS = {"train": 96_000, "val": 2_000, "test": 2_000}


def parse_args(argv: list[str]):
    parser = Parser(prog=PROGRAM, doc=__doc__)
    parser.add_argument("--out", required=True, help="the folder to write the three files into")
    for split, default in LRA_COUNTS.items():
        parser.add_argument(f"--num-{split}", type=int, default=default,
                            help=f"examples in {FILES[split]}")
    parser.add_argument("--seed", type=int, default=0, help="the generator's seed")
    parser.add_argument("--lengths", type=number_list(int), default=[listops.MIN_LENGTH,
                                                                   listops.MAX_LENGTH],
                        help="the shortest and the longest example, in tokens (default "
                             f"{listops.MIN_LENGTH},{listops.MAX_LENGTH}, LRA's)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes that draw examples (default: every CPU core for "
                             f"{PARALLEL_FROM:,} examples or more, else 1)")
    args = parser.parse_args(argv[1:])
    for split in FILES:
        if getattr(args, f"num_{split}") < 0:
            raise UserError(f"--num-{split}={getattr(args, f'num_{split}')} is not allowed; "
                            "give a count of 0 or more.")
    if args.seed < 0:
        raise UserError(f"--seed={args.seed} is not allowed; give 0 or more.")
    if len(args.lengths) != 2 or not listops.SHORTEST <= args.lengths[0] <= args.lengths[1]:
        raise UserError(f"--lengths={','.join(map(str, args.lengths))} is not allowed; give "
                        f"the shortest and the longest length, {listops.SHORTEST} <= MIN <= MAX, "
                        "as MIN,MAX.")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers={args.workers} is not allowed; give 1 or more.")
    return args


def write_splits(out: str, counts: dict[str, int], seed: int, lengths=(listops.MIN_LENGTH,
                 listops.MAX_LENGTH), workers: int | None = None, progress=print,
                 flag: str = "--out") -> None:
    """The three TSV files in `out` (given by `flag`); refuses, before generating, to replace
    any or to write where it cannot. `workers` None: every core for PARALLEL_FROM examples or
    more."""
    if not out or os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"{flag} {out!r} is not allowed; give a folder (new or holding no "
                        "ListOps files).")
    held = [name for name in FILES.values() if os.path.exists(os.path.join(out, name))]
    if held:
        raise UserError(f"{flag} {out!r} already holds {held[0]}; choose another folder or "
                        "remove the ListOps files there first.")
    check_folder_can_be_made(out, flag)
    progress(f"writing {sum(counts.values()):,} ListOps examples into {out}")
    started = time.monotonic()

    def report(split, count):
        progress(f"{split}: {count:,} examples ({time.monotonic() - started:.0f} s)")

    if workers is None:
        workers = os.cpu_count() if sum(counts.values()) >= PARALLEL_FROM else 1
    data = listops.splits(seed, counts, tuple(lengths), report, workers)
    os.makedirs(out, exist_ok=True)
    for split, rows in data.items():
        write_atomically(os.path.join(out, FILES[split]),
                         "Source\tTarget\n" + "".join(f"{s}\t{t}\n" for s, t in rows))
    progress(f"written: {', '.join(FILES.values())} in {out}")


def write_command(folder: str, longest: int) -> str:
    """The command that writes ListOps files into `folder` that rows of `longest` tokens
    hold (a CPU-sized model's rows are shorter than LRA's examples)."""
    if longest >= listops.MAX_LENGTH:
        return f"{PROGRAM} --out {folder}"
    shortest = listops.MIN_LENGTH if listops.MIN_LENGTH <= longest else LOCAL_SHORTEST
    return f"{PROGRAM} --out {folder} --lengths {shortest},{longest}"


def read_split(folder: str, split: str, longest: int) -> tuple[list[str], list[int]]:
    """(sources, labels) of one of LRA's files; UserError naming the file if it is missing
    (with the command that writes examples of at most `longest` tokens) or not of their
    form."""
    path = os.path.join(folder, FILES[split])
    try:
        with open(os.path.expanduser(path), encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
    except OSError as err:
        raise UserError(f"listops.path={folder!r} is not allowed: {FILES[split]} cannot be "
                        f"read there ({err.strerror}); write the files with "
                        f"{write_command(folder, longest)}.") from None
    if not rows or rows[0] != ["Source", "Target"]:
        raise UserError(f"{path} is not a ListOps file: its first line must be the header "
                        "Source<TAB>Target.")
    sources, labels = [], []
    for number, row in enumerate(rows[1:], 2):
        if len(row) != 2 or not is_digits(row[1]) or int(row[1]) >= listops.NUM_CLASSES:
            raise UserError(f"{path} line {number} is not allowed; each line is an example, "
                            f"a tab, and its label 0-{listops.NUM_CLASSES - 1}.")
        sources.append(row[0])
        labels.append(int(row[1]))
    if not sources:
        raise UserError(f"{path} holds no examples.")
    return sources, labels


def load_rows(options, length: int) -> dict:
    """The task's data (lowrank_jax/tasks/__init__.py, listops_task): the training rows and
    the held-out splits in eval batches, each example padded to `length` tokens."""
    data = {}
    for split in FILES:
        sources, labels = read_split(options.path, split, length)
        try:
            rows = listops.encode_rows(sources, labels, length)
        except ValueError as err:
            raise UserError(f"{FILES[split]} in {options.path!r} is not allowed with "
                            f"model.max_len={length}: its {err}.") from None
        data[split] = rows if split == "train" else labelled.eval_batches(
            rows, options.eval_batch_size)
    return data


def main(argv: list[str]) -> None:
    with exit_on_user_error(PROGRAM):
        args = parse_args(argv)
        write_splits(args.out, {split: getattr(args, f"num_{split}") for split in FILES},
                     args.seed, args.lengths, args.workers)


if __name__ == "__main__":
    main(sys.argv)
