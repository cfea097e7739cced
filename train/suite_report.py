"""The quality suites' markdown tables and PNGs (train/suite.py makes the results)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: CI and the GPU machine have no display
import matplotlib.pyplot as plt
import numpy as np

from train.plots import save


def heading(result: dict, title: str) -> list[str]:
    m = result["machine"]
    return [f"# {title}", "", f"`{result['command']}` on {m['device']} ({m['date']}; jax "
            f"{m['jax']}). Each run's own command is in the JSON.", ""]


def percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def listops_report(result: dict, png: str) -> str:
    from train.suite import LRA_LISTOPS

    rows = result["results"]
    lines = heading(result, f"ListOps, every variant in an encoder ({result['size']} size)")
    lines += ["Test accuracy after the last step (basic_test.tsv), and at the evaluation "
              "with the best validation accuracy (basic_val.tsv; what early stopping would "
              "keep); LRA's published figures beside them (Transformer 36.37%, Linformer "
              "35.70%).", "",
              "| variant | test accuracy | val accuracy | test at best val (step) | LRA | "
              "steps x batch | wall s |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("test_accuracy") is None:
            lines.append(f"| {r['variant']} | {r.get('error', 'not run')} | | | | | |")
            continue
        lines.append(f"| {r['variant']} | {percent(r['test_accuracy'])} | "
                     f"{percent(r.get('val_accuracy'))} | "
                     f"{percent(r.get('test_accuracy_at_best_val'))} "
                     f"({r.get('best_val_step', 0):,}) | {percent(LRA_LISTOPS.get(r['variant']))}"
                     f" | {r['steps']:,} x {r['batch']} | {r['seconds'] or 0:.0f} |")
    plot_listops(rows, png, LRA_LISTOPS)
    return "\n".join(lines) + "\n"


def plot_listops(rows: list[dict], png: str, reference: dict) -> None:
    done = [r for r in rows if r.get("test_accuracy") is not None]
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    names = [r["variant"] for r in done]
    bars.bar(names, [100 * r["test_accuracy"] for r in done], color="tab:blue")
    for name, value in reference.items():
        bars.axhline(100 * value, ls="--", lw=1, color="grey")
        bars.annotate(f"LRA {name} {100 * value:.2f}", (0, 100 * value), fontsize="small",
                      xytext=(0, 3), textcoords="offset points")
    bars.set(ylabel="test accuracy (%)", title="ListOps test accuracy")
    for r in done:
        steps = [e["step"] for e in r["curves"]["eval"]]
        curves.plot(steps, [100 * e["val_accuracy"] for e in r["curves"]["eval"]], marker=".",
                    label=r["variant"])
    curves.set(xlabel="step", ylabel="validation accuracy (%)", title="learning curves")
    curves.grid(True, alpha=0.3)
    curves.legend(fontsize="small")
    save(fig, png)


def mqar_report(result: dict, png: str) -> str:
    rows = result["results"]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    lengths = sorted({r["L"] for r in rows})
    pairs = sorted({r["pairs"] for r in rows})
    # A cut run's last evaluation is from part of its schedule, not its result.
    accuracy = {(r["variant"], r["L"], r["pairs"]): None if "error" in r
                else r.get("answer_accuracy") for r in rows}
    lines = heading(result, "Multi-query associative recall: held-out answer accuracy")
    lines += ["Rows: variant and key-value pairs; columns: sequence length. '-': the pairs do "
              "not fit in the row, or the run failed or did not finish (listed below).", "",
              "| variant | pairs | " + " | ".join(f"L {n}" for n in lengths) + " |",
              "|---|---|" + "---|" * len(lengths)]
    for variant in variants:
        for p in pairs:
            lines.append(f"| {variant} | {p} | " + " | ".join(
                percent(accuracy.get((variant, n, p))) for n in lengths) + " |")
    failed = [r for r in rows if "error" in r]
    lines += [""] + [f"- {r['variant']} L {r['L']} pairs {r['pairs']}: {r['error']}"
                     for r in failed]
    plot_mqar(variants, lengths, pairs, accuracy, png)
    return "\n".join(lines) + "\n"


def plot_mqar(variants, lengths, pairs, accuracy: dict, png: str) -> None:
    fig, axes = plt.subplots(1, len(variants), figsize=(3.2 * len(variants) + 1, 3.2),
                             squeeze=False, constrained_layout=True)
    for ax, variant in zip(axes[0], variants):
        grid = np.array([[np.nan if accuracy.get((variant, n, p)) is None
                          else 100 * accuracy[(variant, n, p)] for n in lengths] for p in pairs])
        mesh = ax.imshow(grid, vmin=0, vmax=100, cmap="RdYlGn", origin="lower", aspect="auto")
        for i, j in np.ndindex(grid.shape):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize="small")
        ax.set_xticks(range(len(lengths)), lengths)
        ax.set_yticks(range(len(pairs)), pairs)
        ax.set(title=variant, xlabel="sequence length")
    axes[0][0].set_ylabel("key-value pairs")
    fig.colorbar(mesh, ax=axes, shrink=0.8, label="answer accuracy (%)")
    save(fig, png)


def lm_report(result: dict, png: str) -> str:
    rows = result["results"]
    lines = heading(result, "Language models at equal tokens: validation bits per byte")
    lines += ["Every run sees the same tokens per step for the same steps (the batch is the "
              "tokens over the context length). 'training s' leaves compiles out "
              "(the logged rates' time); 'wall s' is the whole run.", "",
              "| variant | context | val bits/byte | tokens | training s | wall s |",
              "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["L"], r["variant"])):
        if r.get("bits_per_byte") is None:
            lines.append(f"| {r['variant']} | {r['L']:,} | {r.get('error', 'not run')} | | | |")
            continue
        lines.append(f"| {r['variant']} | {r['L']:,} | {r['bits_per_byte']:.4f} | "
                     f"{tokens_seen(r, r['steps']):,} | {training_time(r):.0f} | "
                     f"{r['seconds'] or 0:.0f} |")
    plot_lm(rows, png)
    return "\n".join(lines) + "\n"


def tokens_seen(row: dict, step: int) -> int:
    return step * row["batch"] * row["L"]


def training_time(row: dict, step: int | None = None) -> float:
    """Training seconds up to `step` (default: the last), read off the logged rates."""
    points = row["curves"]["seconds"]
    if not points:
        return 0.0
    steps, seconds = zip(*points)
    return float(np.interp(row["steps"] if step is None else step, (0, *steps), (0, *seconds)))


def plot_lm(rows: list[dict], png: str) -> None:
    done = [r for r in rows if r.get("bits_per_byte") is not None]
    lengths = sorted({r["L"] for r in done}) or [None]
    fig, axes = plt.subplots(2, len(lengths), figsize=(5 * len(lengths), 7), squeeze=False,
                             constrained_layout=True)
    for column, length in enumerate(lengths):
        by_tokens, by_seconds = axes[0][column], axes[1][column]
        for r in (r for r in done if r["L"] == length):
            evals = r["curves"]["eval"]
            bpb = [e["bits_per_byte"] for e in evals]
            by_tokens.plot([tokens_seen(r, e["step"]) / 1e6 for e in evals], bpb, marker=".",
                           label=r["variant"])
            by_seconds.plot([training_time(r, e["step"]) for e in evals], bpb, marker=".",
                            label=r["variant"])
        by_tokens.set(xlabel="tokens (millions)", ylabel="validation bits per byte",
                      title=f"context {length:,}" if length else "no run finished")
        by_seconds.set(xlabel="training seconds", ylabel="validation bits per byte")
        for ax in (by_tokens, by_seconds):
            ax.grid(True, alpha=0.3)
            if ax.lines:
                ax.legend(fontsize="small")
    save(fig, png)


REPORTS = {"listops": listops_report, "mqar": mqar_report, "lm": lm_report}
