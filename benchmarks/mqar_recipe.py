"""Which training recipe gets standard attention past MQAR's plateau at Zoology's vocabulary
(8192)? Trains configs/mqar.py:standard under each recipe below (`python -m train` runs,
through train.suite's runner) and writes the held-out answer accuracy at every evaluation
to OUT/mqar_recipe.md and .json.

    PYTHONPATH=. python benchmarks/mqar_recipe.py OUT [JOBS]    # JOBS trainings at once (1)
"""
import json
import os
import sys

from train.suite import Run, collect, run_all

STEPS = 10_000


def recipe(name: str, batch: int, lr: float, length: int = 64, pairs: int = 4,
           d_model: int = 128, heads: int = 2, variant: str = "standard") -> Run:
    overrides = (f"--config.batch_size={batch}", f"--config.lr={lr}",
                 f"--config.model.max_len={length}", f"--config.mqar.num_pairs={pairs}",
                 f"--config.model.d_model={d_model}", f"--config.model.d_ff={2 * d_model}",
                 f"--config.model.n_heads={heads}", f"--config.steps={STEPS}",
                 f"--config.eval_every={STEPS // 10}", f"--config.log_every={STEPS // 10}",
                 f"--config.checkpoint_every={STEPS}")
    return Run(name, f"configs/mqar.py:{variant}", overrides,
               {"variant": variant, "L": length, "pairs": pairs, "batch": batch, "lr": lr,
                "d_model": d_model, "heads": heads})


RECIPES = [
    recipe("b256_lr3e-3", 256, 3e-3),
    recipe("b256_lr1e-2", 256, 1e-2),
    recipe("b1024_lr3e-3", 1024, 3e-3),
    recipe("b256_lr3e-3_1head", 256, 3e-3, heads=1),
    recipe("b256_lr3e-3_L256_p16", 256, 3e-3, length=256, pairs=16),
    recipe("linformer_b256_lr3e-3_L256_p16", 256, 3e-3, length=256, pairs=16,
           variant="linformer"),
    recipe("b256_lr3e-3_L512_p64", 256, 3e-3, length=512, pairs=64),
]


def report(out: str, jobs: int, rows: list[dict]) -> str:
    lines = ["# MQAR recipes for standard attention at vocabulary 8192", "",
             f"`PYTHONPATH=. python benchmarks/mqar_recipe.py {out} {jobs}`; {STEPS} steps, "
             "warm-up 200, cosine to 0.1, AdamW (weight decay 0.1), 2 layers, d_ff 2 d_model. "
             "Held-out answer accuracy at each evaluation.", "",
             "| run | L | pairs | batch | lr | d_model | heads | tokens/s | accuracy by step |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run, row in zip(RECIPES, rows):
        found = row.get("curves", {})
        curve = ", ".join(f"{100 * e['answer_accuracy']:.1f} ({e['step']})"
                          for e in found.get("eval", []))
        seconds = found.get("seconds")
        rate = (f"{seconds[-1][0] * tokens_per_step(run) / seconds[-1][1]:,.0f}" if seconds else "")
        r = run.row
        lines.append(f"| {run.name} | {r['L']} | {r['pairs']} | {r['batch']} | {r['lr']} | "
                     f"{r['d_model']} | {r['heads']} | {rate} | "
                     f"{curve or row.get('error', '')} |")
    return "\n".join(lines) + "\n"


def tokens_per_step(run: Run) -> int:
    return run.row["batch"] * run.row["L"]


def main(out: str, jobs: int = 1) -> None:
    folder = os.path.join(out, "mqar_recipe_runs")

    def write(timings: dict) -> str:
        rows = collect(RECIPES, folder, timings, "answer_accuracy")
        with open(os.path.join(out, "mqar_recipe.json"), "w") as f:
            json.dump(rows, f, indent=1)
        text = report(out, jobs, rows)
        with open(os.path.join(out, "mqar_recipe.md"), "w") as f:
            f.write(text)
        return text

    timings, _ = run_all(RECIPES, folder, jobs, after_each=write)
    print(write(timings))


if __name__ == "__main__":
    main(sys.argv[1], *map(int, sys.argv[2:]))
