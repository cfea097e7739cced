"""python -m train.plot WORKDIR [--out PNG]

Draws a training run's curves from its metrics.jsonl: training and validation loss
against step, and the learning rate beneath; written to WORKDIR/curves.png unless --out
names another file.
"""
from __future__ import annotations

import os
import sys

from lowrank_jax.validation import is_number
from train.cli import Parser
from train.errors import UserError, exit_on_user_error
from train.metrics import METRICS_FILE, read_metrics

PROGRAM = "python -m train.plot"
IMAGE_TYPES = (".png", ".pdf", ".svg", ".jpg")
CURVES_FILE = "curves.png"


def parse_args(argv: list[str]):
    parser = Parser(prog=PROGRAM, doc=__doc__)
    parser.add_argument("workdir", help="the folder a training run wrote")
    parser.add_argument("--out", default=None,
                        help=f"the PNG to write (default WORKDIR/{CURVES_FILE})")
    return parser.parse_args(argv[1:])


def series(records: list[dict], name: str) -> tuple[list[int], list[float]]:
    """The steps and values of `name`; a value that is not a finite number (a non-finite
    loss is logged as null; a hand-edited file may hold anything) is no point."""
    points = [(r["step"], r[name]) for r in records if is_number(r.get(name))]
    return [s for s, _ in points], [v for _, v in points]


def plot_run(records: list[dict], path: str, title: str) -> None:
    from train.plots import plt, save

    fig, (loss_ax, lr_ax) = plt.subplots(2, 1, figsize=(7, 6), sharex=True,
                                         gridspec_kw={"height_ratios": [3, 1]})
    for name, label in (("loss", "training loss"), ("eval/loss", "validation loss")):
        steps, values = series(records, name)
        if steps:
            loss_ax.plot(steps, values, marker="." if name != "loss" else None, label=label)
    loss_ax.set(title=title, ylabel="loss (nats)")
    loss_ax.grid(True, alpha=0.3)
    loss_ax.legend(fontsize="small")
    lr_ax.plot(*series(records, "lr"), color="grey")
    lr_ax.set(xlabel="step", ylabel="learning rate")
    lr_ax.grid(True, alpha=0.3)
    fig.tight_layout()
    save(fig, path)


def main(argv: list[str]) -> None:
    with exit_on_user_error(PROGRAM):
        args = parse_args(argv)
        if not os.path.exists(os.path.join(args.workdir, METRICS_FILE)):
            raise UserError(f"workdir {args.workdir!r} holds no {METRICS_FILE}; train a run "
                            "there first.")
        records = read_metrics(args.workdir)
        if not series(records, "loss")[0]:
            raise UserError(f"{os.path.join(args.workdir, METRICS_FILE)} holds no training "
                            "loss yet; plot it after the first log step.")
        out = os.path.join(args.workdir, CURVES_FILE) if args.out is None else args.out
        if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
            raise UserError(f"--out {out!r} is in a folder that does not exist.")
        if os.path.splitext(out)[1].lower() not in IMAGE_TYPES or os.path.isdir(out):
            raise UserError(f"--out {out!r} is not allowed; give an image file ending in "
                            f"{', '.join(IMAGE_TYPES)}.")
        plot_run(records, out, f"{os.path.basename(os.path.abspath(args.workdir))}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv)
