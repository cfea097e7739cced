"""python -m train.multi_gpu [--size full|local] [--variants V,..] [--steps N] [--data PATH]
                          [--out DIR]

The same language-model run on one device and on two, for each variant and for each
two-device mesh (data: the batch split, the weights copied; fsdp: the weights and the
optimizer state split too), the global batch the same: the loss at every step on two
devices against one, the tokens per second of each, and a checkpoint that moves, written
on two devices and continued on one, and back, against the curve of the run it came from.
Writes two_gpus_<device>.json (a `results` row per variant and mesh) and .md to --out.

--size full is the GPT-2-small shape (12 layers, d 768, 12 heads, 1,024 tokens, batch 16,
bf16 compute) with a byte vocabulary, so that the loss moves within the 50 steps; local is
a CPU-sized model, for a dry run on fake devices:
    XLA_FLAGS=--xla_force_host_platform_device_count=2 python -m train.multi_gpu --size local
The corpus is the default one (the Python standard library) unless --data names another.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import time

import jax

from configs.base import make_lm_config
from lowrank_jax.validation import is_digits
from train.bench import train_quietly
from train.cli import Parser, RawEpilogFormatter, make_output_folder, word_list
from train.errors import UserError, exit_on_user_error
from train.metrics import read_metrics
from train.suite import training_seconds

PROGRAM = "python -m train.multi_gpu"
SIZES = {  # the model, the global batch
    "full": (dict(max_len=1024, d_model=768, n_layers=12, n_heads=12, d_ff=3072,
                  dtype="bfloat16"), 16),
    "local": (dict(max_len=64, d_model=32, n_layers=2, n_heads=4, d_ff=64), 8),
}
ATTENTION = {  # variant -> size -> attention fields
    "standard": lambda size: dict(attention="standard", attention_kwargs={}),
    "linformer": lambda size: dict(attention="linformer", attention_kwargs=(
        {"causal": True, "block_size": 128, "block_slots": 16} if size == "full"
        else {"causal": True, "block_size": 16, "block_slots": 4})),
}
MESHES = {"data": (2, 1), "fsdp": (1, 2)}   # (data, fsdp) on two devices


def run_config(size: str, variant: str, devices: int, mesh: str, steps: int, data: str,
               cache_dir: str):
    """Every step logged, so that the curves compare step by step; a checkpoint halfway."""
    model, batch = SIZES[size]
    fields = {**model, **ATTENTION[variant](size)}
    config = make_lm_config("local", fields, fields, lr=6e-4 if size == "full" else 2e-3)
    config.update(dict(steps=steps, batch_size=batch, warmup_steps=max(1, steps // 10),
                       log_every=1, eval_every=steps, checkpoint_every=steps // 2,
                       keep_checkpoints=2, num_devices=devices))
    config.mesh.data, config.mesh.fsdp = MESHES[mesh] if devices == 2 else (1, 1)
    config.data.update(dict(path=data, tokenizer="bytes", eval_windows=8, cache_dir=cache_dir))
    return config


def losses(workdir: str) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(workdir) if "loss" in r}


def largest_difference(a: dict[int, float], b: dict[int, float]) -> float:
    return max(abs(a[step] - b[step]) for step in a.keys() & b.keys())


def tokens_per_second(workdir: str, tokens_per_step: int) -> float:
    """The median of the per-step rates (from the logged means since the start), the first
    fifth (warming up) left out."""
    points = training_seconds(read_metrics(workdir))
    rates = [(s1 - s0) / (t1 - t0) for (s0, t0), (s1, t1) in zip(points, points[1:]) if t1 > t0]
    return tokens_per_step * statistics.median(rates[len(rates) // 5:])


def moved(source: str, workdir: str, config) -> dict[int, float]:
    """The run of `source` as if stopped after its middle checkpoint, continued by `config`
    (another number of devices): its losses after the move."""
    shutil.copytree(source, workdir)
    middle = config.steps // 2
    for step in os.listdir(os.path.join(workdir, "checkpoints")):
        if is_digits(step) and int(step) > middle:
            shutil.rmtree(os.path.join(workdir, "checkpoints", step))
    train_quietly(config, workdir)
    return {step: loss for step, loss in losses(workdir).items() if step > middle}


def compare_variant(size: str, variant: str, steps: int, data: str, folder: str,
                    progress=print) -> tuple[list[dict], list[dict]]:
    """(a results row per mesh, the checkpoint moves) for one variant."""
    def config(devices, mesh):
        return run_config(size, variant, devices, mesh, steps, data,
                          os.path.join(folder, "cache"))

    def run(devices, mesh):
        workdir = os.path.join(folder, f"{variant}_{devices}_{mesh}")
        started = time.perf_counter()
        train_quietly(config(devices, mesh), workdir)
        progress(f"{variant}, {devices} device(s), {mesh} mesh: {steps} steps in "
                 f"{time.perf_counter() - started:.0f} s")
        return workdir

    one = run(1, "data")
    tokens = SIZES[size][1] * SIZES[size][0]["max_len"]
    rows, moves = [], []
    for mesh in MESHES:
        two = run(2, mesh)
        one_rate, two_rate = tokens_per_second(one, tokens), tokens_per_second(two, tokens)
        rows.append({"variant": variant, "mesh": mesh, "tokens_per_s_1gpu": one_rate,
                     "tokens_per_s_2gpu": two_rate, "speedup": two_rate / one_rate,
                     "max_abs_loss_diff": largest_difference(losses(one), losses(two))})
        for source, devices in ((two, 1), (one, 2)):
            after = moved(source, f"{source}_to_{devices}_{mesh}", config(devices, mesh))
            moves.append({"variant": variant, "mesh": mesh, "from_devices": 3 - devices,
                          "to_devices": devices,
                          "max_abs_loss_diff": largest_difference(after, losses(source))})
    return rows, moves


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"# One device against two: {result['size']} size, {result['steps']} steps", "",
             f"`{result['command']}` on {jax.device_count()} x {m['device']} ({m['date']}; jax "
             f"{m['jax']}). The same global batch on one device and on two; the loss "
             "difference is the largest over every step.", "",
             "| variant | mesh | tokens/s, 1 device | tokens/s, 2 devices | speedup | "
             "max loss difference |", "|---|---|---|---|---|---|"]
    for r in result["results"]:
        lines.append(f"| {r['variant']} | {r['mesh']} | {r['tokens_per_s_1gpu']:,.0f} | "
                     f"{r['tokens_per_s_2gpu']:,.0f} | {r['speedup']:.2f}x | "
                     f"{r['max_abs_loss_diff']:.2e} |")
    lines += ["", "A checkpoint written at the middle step and continued on the other number "
              "of devices, against the curve of the run it came from:", "",
              "| variant | mesh | from -> to devices | max loss difference after the move |",
              "|---|---|---|---|"]
    for r in result["checkpoint_moves"]:
        lines.append(f"| {r['variant']} | {r['mesh']} | {r['from_devices']} -> "
                     f"{r['to_devices']} | {r['max_abs_loss_diff']:.2e} |")
    return "\n".join(lines) + "\n"


def compare(size: str, variants, steps: int, data: str, out: str, command: str,
            progress=print) -> str:
    """Runs every comparison, writes two_gpus_<device>.json and .md to `out`; returns the
    markdown."""
    from train import perf

    folder = os.path.join(out, "two_gpus_runs")
    rows, moves = [], []
    for variant in variants:
        more_rows, more_moves = compare_variant(size, variant, steps, data, folder, progress)
        rows, moves = rows + more_rows, moves + more_moves
    result = {"benchmark": f"two_gpus_{perf.device_tag()}", "size": size, "steps": steps,
              "command": command, "machine": perf.machine(), "results": rows,
              "checkpoint_moves": moves}
    stem = os.path.join(out, result["benchmark"])
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1)
    text = markdown(result)
    with open(stem + ".md", "w") as f:
        f.write(text)
    return text + f"\nwritten: {stem}.json, .md"


def main(argv: list[str]) -> None:
    parser = Parser(prog=PROGRAM, description="Trains the same run on one device and on two "
                    "and compares their losses, speed and checkpoints.",
                    epilog=__doc__.split("\n\n", 1)[1], formatter_class=RawEpilogFormatter)
    parser.add_argument("--size", choices=list(SIZES), default="full")
    parser.add_argument("--variants", type=word_list(list(ATTENTION)), default=list(ATTENTION))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--data", default="stdlib",
                        help="the corpus (default: the Python standard library)")
    parser.add_argument("--out", default=None,
                        help="folder for the results (default: a fresh folder under runs/)")
    with exit_on_user_error(PROGRAM):
        args = parser.parse_args(argv[1:])
        if args.steps < 4:
            raise UserError(f"--steps={args.steps} is not allowed; give at least 4, so that "
                            "a checkpoint sits halfway.")
        if jax.device_count() < 2:
            raise UserError(f"{PROGRAM} needs two devices and this machine has "
                            f"{jax.device_count()}; on a CPU, set XLA_FLAGS="
                            "--xla_force_host_platform_device_count=2 for a dry run.")
        out = args.out or os.path.join("runs", time.strftime("two-gpus-%Y%m%d-%H%M%S"))
        make_output_folder(out)
        print(compare(args.size, args.variants, args.steps, args.data, out,
                      " ".join([PROGRAM, *argv[1:]])))


if __name__ == "__main__":
    main(sys.argv)
