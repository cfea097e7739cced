"""python -m train.bench abc-sort [--repeats N] [--out benchmarks]

Times `python -m train`'s default run (the seed-001 ABC sorter, 15000 steps) on this
machine: compile time, training wall time, steps per second, and whether it reached
27/27. Writes JSON and a markdown table to --out.
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


def bench_abc_sort(repeats: int) -> dict:
    config = load_config(SimpleNamespace(config=DEFAULT_CONFIG, overrides=[]))
    import jax  # after load_config has set XLA's threading for this config

    from train.loop import train_and_evaluate

    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as workdir, contextlib.redirect_stdout(io.StringIO()):
            start = time.perf_counter()
            summary = train_and_evaluate(config, workdir)
            total = time.perf_counter() - start
        runs.append({"train_seconds": summary["train_seconds"],
                     "compile_seconds": summary["compile_seconds"],
                     "total_seconds": total,
                     "steps_per_second": config.steps / summary["train_seconds"],
                     "triples_correct": summary["eval"]["eval/triples_correct"]})
    return {"benchmark": "abc_sort_cpu", "command": f"{PROGRAM} abc-sort --repeats {repeats}",
            "steps": config.steps, "batch_size": config.batch_size,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(), "jax": jax.__version__,
                        "backend": jax.default_backend()},
            "runs": runs}


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
    parser.add_argument("benchmark", choices=["abc-sort"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks")
    args = parser.parse_args(argv[1:])
    with exit_on_user_error(PROGRAM):
        result = bench_abc_sort(args.repeats)
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, result["benchmark"])
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main(sys.argv)
