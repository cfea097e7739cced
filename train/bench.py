"""python -m train.bench {abc-sort,abc-variants} [--repeats N] [--seeds S ...] [--out benchmarks]

abc-sort: times `python -m train`'s default run (the seed-001 ABC sorter, 15000 steps)
on this machine: compile time, training wall time, steps per second, and whether it
reached 27/27.
abc-variants: every attention variant on the ABC task with the seed's budget, over
several seeds: parameters and triples sorted.
Both write JSON and a markdown table to --out.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from types import SimpleNamespace

from train.cli import DEFAULT_CONFIG, load_config
from train.errors import exit_on_user_error

PROGRAM = "python -m train.bench"


VARIANTS = {  # name -> (config argument, overrides)
    "standard": ("standard", {}),
    "deep_qkv": ("deep_qkv", {}),
    "deep_qkv strict": ("deep_qkv", {"strict": True}),
    "lowrank_qk r=2": ("lowrank_qk", {}),
    "linformer causal b=2 c=1": ("linformer", {}),
}


def train_quietly(config) -> tuple[dict, float]:
    from train.loop import train_and_evaluate

    with tempfile.TemporaryDirectory() as workdir, contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        summary = train_and_evaluate(config, workdir)
    return summary, time.perf_counter() - start


def machine() -> dict:
    import jax

    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "jax": jax.__version__,
            "backend": jax.default_backend()}


def bench_abc_variants(seeds: list[int]) -> dict:
    rows = []
    for name, (arg, kwargs) in VARIANTS.items():
        config = load_config(SimpleNamespace(config=f"{DEFAULT_CONFIG}:{arg}", overrides=[]))
        config.model.attention_kwargs.update(kwargs)
        correct = []
        for seed in seeds:
            config.seed = seed
            summary, _ = train_quietly(config)
            correct.append(summary["eval"]["eval/triples_correct"])
        rows.append({"variant": name, "parameters": summary["parameters"], "seeds": seeds,
                     "triples_correct": correct, "final_loss": summary["train"]["loss"]})
    steps = config.steps
    return {"benchmark": "abc_variants",
            "command": f"{PROGRAM} abc-variants --seeds {' '.join(map(str, seeds))}",
            "steps": steps, "machine": machine(), "rows": rows}


def bench_abc_sort(repeats: int) -> dict:
    config = load_config(SimpleNamespace(config=DEFAULT_CONFIG, overrides=[]))
    runs = []
    for _ in range(repeats):
        summary, total = train_quietly(config)
        runs.append({"train_seconds": summary["train_seconds"],
                     "compile_seconds": summary["compile_seconds"],
                     "total_seconds": total,
                     "steps_per_second": config.steps / summary["train_seconds"],
                     "triples_correct": summary["eval"]["eval/triples_correct"]})
    return {"benchmark": "abc_sort_cpu", "command": f"{PROGRAM} abc-sort --repeats {repeats}",
            "steps": config.steps, "batch_size": config.batch_size, "machine": machine(),
            "runs": runs}


def variants_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"# Attention variants on the ABC task, {result['steps']} steps each (seed 001's recipe)",
             "", f"`{result['command']}` on {m['cpus']} CPU cores (jax {m['jax']}, backend "
             f"{m['backend']}).", "",
             "| variant | parameters | triples sorted, per seed | seeds at 27/27 | final train loss |",
             "|---|---|---|---|---|"]
    for r in result["rows"]:
        per_seed = ", ".join(f"{c}" for c in r["triples_correct"])
        full = sum(c == 27 for c in r["triples_correct"])
        lines.append(f"| {r['variant']} | {r['parameters']} | {per_seed} | {full} of "
                     f"{len(r['seeds'])} | {r['final_loss']:.4f} |")
    return "\n".join(lines) + "\n"


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"# ABC sorter (seed 001), default config, {result['steps']} steps x batch "
             f"{result['batch_size']}", "",
             f"`{result['command']}` on {m['cpus']} CPU cores ({m['platform']}, jax {m['jax']}, "
             f"backend {m['backend']}).", "",
             "| run | training wall time (s) | steps/s | compile (s) | whole call (s) | triples |",
             "|---|---|---|---|---|---|"]
    for i, r in enumerate(result["runs"], 1):
        lines.append(f"| {i} | {r['train_seconds']:.1f} | {r['steps_per_second']:.0f} | "
                     f"{r['compile_seconds']:.1f} | {r['total_seconds']:.1f} | "
                     f"{r['triples_correct']}/27 |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", choices=["abc-sort", "abc-variants"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 0, 1])
    parser.add_argument("--out", default="benchmarks")
    args = parser.parse_args(argv[1:])
    with exit_on_user_error(PROGRAM):
        if args.benchmark == "abc-sort":
            result, text = bench_abc_sort(args.repeats), None
        else:
            result = bench_abc_variants(args.seeds)
            text = variants_markdown(result)
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, result["benchmark"])
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=2)
    text = text or markdown(result)
    with open(stem + ".md", "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv)
