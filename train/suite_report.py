"""The quality suites' markdown tables and PNGs (train/suite.py makes the results)."""
from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")  # files only: CI and the GPU machine have no display
import matplotlib.pyplot as plt
import numpy as np

from train.plots import save


def write(result: dict, out: str) -> str:
    """quality_<suite>.json, .md and .png in `out`; returns the markdown."""
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, result["benchmark"])
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1)
    text = REPORTS[result["benchmark"].removeprefix("quality_")](result, stem + ".png")
    with open(stem + ".md", "w") as f:
        f.write(text)
    return text + f"\nwritten: {stem}.json, .md, .png"


def commands_of(result: dict) -> list[str]:
    """A result's `command`: one suite's command line, or the list of those merged into it
    (train/suite_merge.py)."""
    command = result["command"]
    return command if isinstance(command, list) else [command]


def heading(result: dict, title: str) -> list[str]:
    m, commands = result["machine"], ", ".join(f"`{c}`" for c in commands_of(result))
    return [f"# {title}", "", f"{commands} on {m['device']} "
            f"({m['date']}; jax {m['jax']}). Each run's own command is in the JSON.", ""]


def percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def seconds(value) -> str:
    """Wall-clock seconds; "-" where none were measured (a run another suite call ended)."""
    return "-" if value is None else f"{value:.0f}"


IDENTITY = ("variant", "L", "pairs", "settings")   # what names a row, apart from its seed


def name(row: dict, between: str = " ") -> str:
    """The row's variant, and the --set items and --steps it was trained with (a suite's
    rows of one variant at other settings, merged into one table, stay apart)."""
    settings = row.get("settings")
    return row["variant"] + (f"{between}({settings})" if settings else "")


def over_seeds(rows: list[dict], metric: str) -> list[dict]:
    """One row per variant (and grid cell): rows trained at several seeds (--seeds) merge
    into the mean of their figures, each seed's `metric` kept in `per_seed`."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in IDENTITY), []).append(r)
    return [group[0] if "seed" not in group[0] else merged(group, metric)
            for group in groups.values()]


def merged(group: list[dict], metric: str) -> dict:
    """The seeds of one row: a seed that failed or did not finish is the row's error (a
    mean of the others would pass for all of them)."""
    row = {k: group[0][k] for k in IDENTITY if k in group[0]}
    row["per_seed"] = {r["seed"]: r.get(metric) for r in group}
    errors = [f"seed {r['seed']}: {r['error']}" for r in group if "error" in r]
    figures = [r for r in group if r.get(metric) is not None]
    if errors or not figures:
        return {**row, metric: None, "error": "; ".join(errors) or "no figures"}
    for key in (metric, "val_accuracy", "test_accuracy_at_best_val", "seconds"):
        values = [r[key] for r in figures if r.get(key) is not None]
        row[key] = float(np.mean(values)) if values else None
    return {**row, "steps": figures[0]["steps"], "batch": figures[0]["batch"],
            "training_seconds": float(np.mean([trained_seconds(r) for r in figures]))}


def each_seed(row: dict, show) -> str:
    """`row`'s seeds' figures, written by `show`, after its mean ("" for a single run)."""
    if "per_seed" not in row:
        return ""
    return " (" + ", ".join(f"seed {seed} {show(value)}" for seed, value in
                            row["per_seed"].items()) + ")"


def listops_report(result: dict, png: str) -> str:
    from train.suite import LRA_LISTOPS

    rows = over_seeds(result["results"], "test_accuracy")
    lines = heading(result, f"ListOps, every variant in an encoder ({result['size']} size)")
    lines += ["Test accuracy after the last step (basic_test.tsv), and at the evaluation "
              "with the best validation accuracy (basic_val.tsv; what early stopping would "
              "keep); LRA's published figures beside them (Transformer 36.37%, Linformer "
              "35.70%). A variant trained at several seeds shows their mean, each seed's "
              "figure beside it.", "",
              "| variant | test accuracy | val accuracy | test at best val | LRA | "
              "steps x batch | wall s |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("test_accuracy") is None:
            lines.append(f"| {name(r)} | {r.get('error', 'not run')} | | | | | |")
            continue
        # one seed's step; seeds stop at different steps, so a mean has none
        best_step = f" (step {r['best_val_step']:,})" if "best_val_step" in r else ""
        lines.append(f"| {name(r)} | {percent(r['test_accuracy'])}"
                     f"{each_seed(r, percent)} | {percent(r.get('val_accuracy'))} | "
                     f"{percent(r.get('test_accuracy_at_best_val'))}{best_step} | "
                     f"{percent(LRA_LISTOPS.get(r['variant']))} | {r['steps']:,} x {r['batch']}"
                     f" | {seconds(r['seconds'])} |")
    plot_listops(rows, result["results"], png, LRA_LISTOPS)
    return "\n".join(lines) + "\n"


def plot_listops(rows: list[dict], runs: list[dict], png: str, reference: dict) -> None:
    """Left: each variant's test accuracy, the mean over its seeds with their spread as a
    line and each seed a dot (points, not bars: the variants lie within a few points, which
    bars from 0 would hide); right: the validation accuracy of every run."""
    done = [r for r in rows if r.get("test_accuracy") is not None]
    fig, (marks, curves) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    positions = list(range(len(done)))
    marks.errorbar(positions, [100 * r["test_accuracy"] for r in done], yerr=spread(done),
                   fmt="o", color="tab:blue", capsize=4, label="mean")
    label = "a seed"
    for x, r in zip(positions, done):
        seeds = [v for v in r.get("per_seed", {}).values() if v is not None]
        if seeds:
            marks.plot([x] * len(seeds), [100 * v for v in seeds], ".", color="grey",
                       label=label)
            label = None
    marks.set_xticks(positions, [name(r, between="\n") for r in done])
    marks.set_xlim(-0.5, max(len(done), 1) - 0.5)   # a suite's first write may have none done
    # The figures lie less than a point apart: the higher one labelled above its line,
    # the lower one below, both at the right edge, clear of the points.
    for model, value in reference.items():
        above = value == max(reference.values())
        marks.axhline(100 * value, ls="--", lw=1, color="grey")
        marks.annotate(f"LRA {model} {100 * value:.2f}", (len(done) - 0.5, 100 * value),
                       fontsize="small", xytext=(-3, 3 if above else -3),
                       textcoords="offset points", ha="right",
                       va="bottom" if above else "top")
    marks.set(ylabel="test accuracy (%)", title="ListOps test accuracy")
    marks.grid(True, axis="y", alpha=0.3)
    marks.legend(fontsize="small", loc="lower center")
    for r, style in styled(r for r in runs if r.get("test_accuracy") is not None):
        steps = [e["step"] for e in r["curves"]["eval"]]
        curves.plot(steps, [100 * e["val_accuracy"] for e in r["curves"]["eval"]], marker=".",
                    **style)
    curves.set(xlabel="step", ylabel="validation accuracy (%)", title="learning curves")
    curves.grid(True, alpha=0.3)
    curves.legend(fontsize="small")
    save(fig, png)


def spread(rows: list[dict]):
    """Error bars in percent from each mean down to its lowest seed and up to its highest
    (None when no row has seeds)."""
    if not any("per_seed" in r for r in rows):
        return None
    values = [list(r["per_seed"].values()) if "per_seed" in r else [r["test_accuracy"]]
              for r in rows]
    return [[100 * (r["test_accuracy"] - min(v)) for r, v in zip(rows, values)],
            [100 * (max(v) - r["test_accuracy"]) for r, v in zip(rows, values)]]


def styled(runs):
    """(run, plot keywords): a colour per variant and settings, its name on its first line
    only."""
    colours: dict[str, str] = {}
    for r in runs:
        first = name(r) not in colours
        colours.setdefault(name(r), f"C{len(colours)}")
        yield r, {"color": colours[name(r)], "label": name(r) if first else None}


def mqar_report(result: dict, png: str) -> str:
    rows = over_seeds(result["results"], "answer_accuracy")
    variants = list(dict.fromkeys(name(r) for r in rows))
    lengths = sorted({r["L"] for r in rows})
    pairs = sorted({r["pairs"] for r in rows})
    # A cut run's last evaluation is from part of its schedule, not its result.
    accuracy = {(name(r), r["L"], r["pairs"]): None if "error" in r
                else r.get("answer_accuracy") for r in rows}
    seeds = {(name(r), r["L"], r["pairs"]): r["per_seed"] for r in rows
             if "per_seed" in r and "error" not in r}
    lines = heading(result, "Multi-query associative recall: held-out answer accuracy")
    lines += ["Rows: variant and key-value pairs; columns: sequence length. '-': not run (the "
              "pairs do not fit in the row, or the cell was left out), or the run failed or "
              "did not finish (listed below). Over "
              "several seeds a cell is their mean, the lowest and the highest seed in "
              "brackets.", "",
              "| variant | pairs | " + " | ".join(f"L {n}" for n in lengths) + " |",
              "|---|---|" + "---|" * len(lengths)]
    for variant in variants:
        for p in pairs:
            lines.append(f"| {variant} | {p} | " + " | ".join(
                percent(accuracy.get((variant, n, p))) + seed_range(seeds.get((variant, n, p)))
                for n in lengths) + " |")
    failed = [r for r in rows if "error" in r]
    lines += [""] + [f"- {name(r)} L {r['L']} pairs {r['pairs']}: {r['error']}"
                     for r in failed]
    titles = list(dict.fromkeys(name(r, between="\n") for r in rows))   # settings below
    plot_mqar(variants, titles, lengths, pairs, accuracy, png)
    return "\n".join(lines) + "\n"


def seed_range(per_seed: dict | None) -> str:
    if not per_seed:
        return ""
    return f" ({100 * min(per_seed.values()):.1f}-{100 * max(per_seed.values()):.1f})"


def plot_mqar(variants, titles, lengths, pairs, accuracy: dict, png: str) -> None:
    fig, axes = plt.subplots(1, len(variants), figsize=(3.2 * len(variants) + 1, 3.2),
                             squeeze=False, constrained_layout=True)
    for ax, variant, title in zip(axes[0], variants, titles):
        grid = np.array([[np.nan if accuracy.get((variant, n, p)) is None
                          else 100 * accuracy[(variant, n, p)] for n in lengths] for p in pairs])
        mesh = ax.imshow(grid, vmin=0, vmax=100, cmap="RdYlGn", origin="lower", aspect="auto")
        for i, j in np.ndindex(grid.shape):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize="small")
        ax.set_xticks(range(len(lengths)), lengths)
        ax.set_yticks(range(len(pairs)), pairs)
        ax.set(title=title, xlabel="sequence length")
    axes[0][0].set_ylabel("key-value pairs")
    fig.colorbar(mesh, ax=axes, shrink=0.8, label="answer accuracy (%)")
    save(fig, png)


def lm_report(result: dict, png: str) -> str:
    rows = over_seeds(result["results"], "bits_per_byte")
    lines = heading(result, "Language models at equal tokens: validation bits per byte")
    lines += ["Every run sees the same tokens per step for the same steps (the batch is the "
              "tokens over the context length). 'training s' leaves compiles out "
              "(the logged rates' time); 'wall s' is the whole run. Over several seeds: "
              "the means, each seed's bits per byte beside them.", "",
              "| variant | context | val bits/byte | tokens | training s | wall s |",
              "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["L"], name(r))):
        if r.get("bits_per_byte") is None:
            lines.append(f"| {name(r)} | {r['L']:,} | {r.get('error', 'not run')} | | | |")
            continue
        lines.append(f"| {name(r)} | {r['L']:,} | {r['bits_per_byte']:.4f}"
                     f"{each_seed(r, '{:.4f}'.format)} | {tokens_seen(r, r['steps']):,} | "
                     f"{trained_seconds(r):.0f} | {seconds(r['seconds'])} |")
    plot_lm(result["results"], png)
    return "\n".join(lines) + "\n"


def tokens_seen(row: dict, step: int) -> int:
    return step * row["batch"] * row["L"]


def trained_seconds(row: dict) -> float:
    """A run's training seconds (compiles left out); a row of several seeds holds their mean."""
    return row["training_seconds"] if "per_seed" in row else training_time(row, row["steps"])


def training_time(row: dict, step: int) -> float:
    """Training seconds up to `step`, read off the logged rates."""
    points = row["curves"]["seconds"]
    if not points:
        return 0.0
    steps, seconds = zip(*points)
    return float(np.interp(step, (0, *steps), (0, *seconds)))


def plot_lm(rows: list[dict], png: str) -> None:
    done = [r for r in rows if r.get("bits_per_byte") is not None]
    lengths = sorted({r["L"] for r in done}) or [None]
    fig, axes = plt.subplots(2, len(lengths), figsize=(5 * len(lengths), 7), squeeze=False,
                             constrained_layout=True)
    for column, length in enumerate(lengths):
        by_tokens, by_seconds = axes[0][column], axes[1][column]
        for r, style in styled(r for r in done if r["L"] == length):
            evals = r["curves"]["eval"]
            bpb = [e["bits_per_byte"] for e in evals]
            by_tokens.plot([tokens_seen(r, e["step"]) / 1e6 for e in evals], bpb, marker=".",
                           **style)
            by_seconds.plot([training_time(r, e["step"]) for e in evals], bpb, marker=".",
                            **style)
        by_tokens.set(xlabel="tokens (millions)", ylabel="validation bits per byte",
                      title=f"context {length:,}" if length else "no run finished")
        by_seconds.set(xlabel="training seconds", ylabel="validation bits per byte")
        for ax in (by_tokens, by_seconds):
            ax.grid(True, alpha=0.3)
            if ax.lines:
                ax.legend(fontsize="small")
    save(fig, png)


REPORTS = {"listops": listops_report, "mqar": mqar_report, "lm": lm_report}
