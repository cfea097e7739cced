"""python -m train.bench {attention,step,memory,abc-sort,abc-variants,lm-variants,decode} [--out DIR] [options]

attention: forward + backward of every variant's attention core on the GPU at 65,536
tokens per step (16 heads of 64, bf16), its fast path, its plain form and cuDNN flash
attention in one process: ms, TFLOP/s of useful work, ratio to cuDNN.
step: the GPT-2-small-shape train step with each variant at L 1024 x 16, 8192 x 2 and
32768 x 1 (remat per block): tokens/s, MFU, ratio to standard, and where the time goes.
memory: peak device memory of that step at batch 1 from 4K tokens up to the longest
length that fits.

abc-sort: times `python -m train`'s default run (the seed-001 ABC sorter, 15000 steps)
on this machine: compile time, training wall time, steps per second, and whether it
reached 27/27.
abc-variants: every attention variant on the ABC task with the seed's budget, over
several seeds: parameters and triples sorted.
lm-variants: every lm_<variant> config and the lumenspark preset on the default corpus
with the same steps and batch: parameters, validation loss and bits per byte, speed.
decode: generation speed of each lm_<variant> model (GPU-sized, random weights, bf16 on
a GPU) with and without the decode cache, at several numbers of new tokens, and the
size of each variant's cache.
Each writes JSON and a markdown table (the GPU ones also a PNG) to --out, by default a
fresh folder under runs/, never over the committed results in benchmarks/.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from types import SimpleNamespace

from lowrank_jax.attention import ATTENTIONS
from train.cli import (
    DEFAULT_CONFIG,
    Parser,
    RawEpilogFormatter,
    load_config,
    make_output_folder,
    number_list,
    word_list,
)
from lowrank_jax.training.config import MAX_SEED
from lowrank_jax.validation import INT32_MAX
from train.errors import UserError, exit_on_user_error

PROGRAM = "python -m train.bench"


# name -> (configs/abc_sort.py argument, overrides): every registered variant with the
# options that config gives it, and seed 001's strict factorization.
VARIANTS = {**{name: (name, {}) for name in ATTENTIONS},
            "deep_qkv strict": ("deep_qkv", {"strict": True})}
# configs/lm_<variant>.py for every registered variant, then the lumenspark preset.
VARIANT_LM_CONFIGS = tuple(f"lm_{name}" for name in ATTENTIONS)
LM_CONFIGS = (*VARIANT_LM_CONFIGS, "lumenspark")


def train_quietly(config, workdir: str | None = None) -> tuple[dict, float]:
    from train.loop import train_and_evaluate

    with contextlib.ExitStack() as stack:
        workdir = workdir or stack.enter_context(tempfile.TemporaryDirectory())
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
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
            "command": f"{PROGRAM} abc-variants --seeds {','.join(map(str, seeds))}",
            "steps": steps, "machine": machine(), "rows": rows}


def bench_lm_variants(size: str, steps: int | None, keep: str | None) -> dict:
    """One shared token cache; each run's workdir kept under `keep` when given."""
    arg = ":local" if size == "local" else ""
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in LM_CONFIGS:
            config = load_config(SimpleNamespace(config=f"configs/{name}.py{arg}", overrides=[]))
            config.data.cache_dir = os.path.join(keep or scratch, "token_cache")
            config.data.eval_windows = 512
            if steps:
                config.update(dict(steps=steps, warmup_steps=min(config.warmup_steps, steps // 10),
                                   eval_every=steps, checkpoint_every=steps,
                                   log_every=min(config.log_every, steps)))
            summary, _ = train_quietly(config, keep and os.path.join(keep, name))
            rows.append({"config": f"configs/{name}.py{arg}",
                         "attention": config.model.attention,
                         "attention_kwargs": config.model.attention_kwargs.to_dict(),
                         "parameters": summary["parameters"],
                         "train_loss": summary["train"]["loss"],
                         **{k.removeprefix("eval/"): v for k, v in summary["eval"].items()
                            if k != "step"},
                         "train_seconds": summary["train_seconds"],
                         "steps_per_second": config.steps / summary["train_seconds"]})
    command = f"{PROGRAM} lm-variants --size {size}" + (f" --steps {steps}" if steps else "")
    return {"benchmark": f"lm_variants_{size}", "command": command, "steps": config.steps,
            "batch_size": config.batch_size, "max_len": config.model.max_len,
            "eval_windows": 512, "machine": machine(), "rows": rows}


def lm_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"# Language models on the Python standard library, {result['steps']} steps x "
             f"batch {result['batch_size']} x {result['max_len']} tokens each", "",
             f"`{result['command']}` on {m['cpus']} CPU cores (jax {m['jax']}, backend "
             f"{m['backend']}). Validation: {result['eval_windows']} windows of "
             f"{result['max_len']} tokens spread over the validation split.", "",
             "| config | attention | parameters | val loss | val bits/byte | train s | steps/s |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        kwargs = ", ".join(f"{k}={v}" for k, v in r["attention_kwargs"].items())
        lines.append(f"| `{r['config']}` | {r['attention']}({kwargs}) | {r['parameters']:,} | "
                     f"{r['loss']:.4f} | {r['bits_per_byte']:.4f} | {r['train_seconds']:.0f} | "
                     f"{r['steps_per_second']:.1f} |")
    return "\n".join(lines) + "\n"


DECODE_MAX_LEN, DECODE_BATCH, DECODE_PROMPT = 2048, 8, 16
DECODE_NEW_TOKENS = (128, 512, 2032)


def decode_model_config(name: str, backend: str):
    from lowrank_jax.config import ModelConfig

    config = load_config(SimpleNamespace(config=f"configs/{name}.py", overrides=[]))
    model = {**config.model.to_dict(), "vocab_size": 256, "max_len": DECODE_MAX_LEN,
             "dtype": "bfloat16" if backend == "gpu" else "float32"}
    return ModelConfig.from_dict(model)


def time_call(fn, repeats: int = 2) -> float:
    """Seconds of the fastest of `repeats` calls, after one that compiles."""
    import jax

    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def cache_bytes(model, params, prompt_BP) -> int:
    import jax

    from lowrank_jax import GPT

    decode = GPT(model.cfg.replace(mode="prefill"))
    _, state = jax.eval_shape(lambda: decode.apply({"params": params}, prompt_BP,
                                                   mutable=["cache"]))
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state["cache"]))


def bench_decode() -> dict:
    import jax
    import numpy as np

    from lowrank_jax import GPT, generate

    rows, backend = [], jax.default_backend()
    prompt_BP = np.random.default_rng(0).integers(0, 256, (DECODE_BATCH, DECODE_PROMPT), np.int32)
    for name in VARIANT_LM_CONFIGS:
        model = GPT(decode_model_config(name, backend))
        params = model.init(jax.random.key(0), prompt_BP)["params"]
        row = {"config": f"configs/{name}.py", "attention": model.cfg.attention,
               "attention_kwargs": dict(model.cfg.attention_kwargs),
               "cache_bytes": cache_bytes(model, params, prompt_BP), "runs": []}
        for new in DECODE_NEW_TOKENS:
            for use_cache in (True, False):
                seconds = time_call(lambda: generate(
                    model, params, prompt_BP, max_new_tokens=new, temperature=0.0,
                    use_cache=use_cache).tokens)
                row["runs"].append({"new_tokens": new, "cache": use_cache, "seconds": seconds,
                                    "tokens_per_second": DECODE_BATCH * new / seconds})
        rows.append(row)
    return {"benchmark": f"decode_{backend}", "command": f"{PROGRAM} decode",
            "max_len": DECODE_MAX_LEN, "batch": DECODE_BATCH, "prompt": DECODE_PROMPT,
            "machine": {**machine(), "device": str(jax.devices()[0].device_kind)}, "rows": rows}


def decode_markdown(result: dict) -> str:
    m = result["machine"]
    news = sorted({r["new_tokens"] for row in result["rows"] for r in row["runs"]})
    rate = {(row["config"], r["new_tokens"], r["cache"]): r["tokens_per_second"]
            for row in result["rows"] for r in row["runs"]}
    reference = result["rows"][0]["config"]  # standard attention, cached
    lines = [f"# Decoding speed with and without the cache: {result['batch']} rows, a "
             f"{result['prompt']}-token prompt, greedy, max_len {result['max_len']}", "",
             f"`{result['command']}` on {m['device']} (jax {m['jax']}). Tokens/s counts "
             "new tokens over all rows, prefill and compiled loop included (the fastest of 2 "
             "calls after one that compiles). 'vs standard' divides by standard attention "
             "with its cache at the same length.", "",
             "| config | cache (MiB) | " + " | ".join(
                 f"{n} new: cached / uncached tok/s (speedup, vs standard)" for n in news) + " |",
             "|---|---|" + "---|" * len(news)]
    for row in result["rows"]:
        cells = []
        for n in news:
            cached, uncached = rate[(row["config"], n, True)], rate[(row["config"], n, False)]
            cells.append(f"{cached:,.0f} / {uncached:,.0f} ({cached / uncached:.1f}x, "
                         f"{cached / rate[(reference, n, True)]:.2f})")
        lines.append(f"| `{row['config']}` {row['attention']} | "
                     f"{row['cache_bytes'] / 2**20:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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


def gpu_benchmark(name: str, args) -> tuple[dict, str]:
    """attention, step or memory: (result with the machine and command, markdown)."""
    from train import perf, perf_report

    if name == "attention":
        lengths = args.lengths or perf.ATTENTION_LENGTHS
        result = perf.bench_attention(lengths, args.tokens)
        options = (f" --lengths {','.join(map(str, lengths))}" if args.lengths else "") + (
            f" --tokens {args.tokens}" if args.tokens != perf.TOKENS else "")
    else:
        variants = tuple(label for label, (attention, _) in perf.STEP_VARIANTS.items()
                         if not args.variants or attention in args.variants)
        options = (f" --lengths {','.join(map(str, args.lengths))}" if args.lengths else "") + (
            f" --variants {','.join(args.variants)}" if args.variants else "")
        if name == "step":
            shapes = tuple(s for s in perf.STEP_SHAPES if not args.lengths or s[0] in args.lengths)
            result = perf.bench_step(shapes, variants, profile=not args.no_breakdown)
            options += " --no-breakdown" if args.no_breakdown else ""
        else:
            result = perf.bench_memory(args.lengths or perf.MEMORY_LENGTHS, variants)
    result = {**result, "benchmark": f"{name}_{perf.device_tag()}",
              "command": f"{PROGRAM} {name}{options} --out benchmarks", "machine": perf.machine()}
    markdown_of, png_of = perf_report.REPORTS[name]
    result["png"] = png_of
    return result, markdown_of(result)


def check_counts(args) -> None:
    """The lengths, tokens, repeats and steps are counts (from 1), the seeds keys' seeds."""
    for flag, values in (("--lengths", args.lengths or [1]), ("--tokens", [args.tokens]),
                         ("--repeats", [args.repeats]), ("--steps", [args.steps or 1])):
        bad = [v for v in values if not 1 <= v <= INT32_MAX]
        if bad:
            raise UserError(f"{flag}={bad[0]} is not allowed; it must be from 1 to {INT32_MAX}.")
    bad = [seed for seed in args.seeds if not 0 <= seed <= MAX_SEED]
    if bad:
        raise UserError(f"--seeds={bad[0]} is not allowed; seeds go from 0 to {MAX_SEED}.")


def fresh_run_folder() -> str:
    return os.path.join("runs", time.strftime("bench-%Y%m%d-%H%M%S"))


def main(argv: list[str]) -> None:
    parser = Parser(prog=PROGRAM, description="Runs one benchmark and writes its figures "
                    "(JSON, markdown and, for the GPU ones, a PNG).",
                    epilog=__doc__.split("\n", 1)[1], formatter_class=RawEpilogFormatter)
    parser.add_argument("benchmark", choices=["attention", "step", "memory", "abc-sort",
                                              "abc-variants", "lm-variants", "decode"])
    parser.add_argument("--lengths", type=number_list(int), default=None,
                        help="attention, step, memory: sequence lengths (default: the committed set)")
    parser.add_argument("--variants", type=word_list(list(ATTENTIONS)), default=None,
                        help="step, memory: the variants to run (default: all)")
    parser.add_argument("--no-breakdown", action="store_true",
                        help="step: leave out where each row's time goes (its op-by-op "
                             "profile compiles the step a second time)")
    parser.add_argument("--tokens", type=int, default=65536,
                        help="attention: tokens per step (batch = tokens / L)")
    parser.add_argument("--size", choices=["local", "full"], default="local")
    parser.add_argument("--steps", type=int, default=None, help="lm-variants: steps per run")
    parser.add_argument("--keep", default=None, help="lm-variants: keep each run's workdir here")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=number_list(int), default=[42, 0, 1])
    parser.add_argument("--out", default=None,
                        help="folder for the results (default: a fresh folder under runs/)")
    png = None
    with exit_on_user_error(PROGRAM):
        args = parser.parse_args(argv[1:])
        check_counts(args)
        out = args.out or fresh_run_folder()
        make_output_folder(out)   # before the benchmark: its figures must have a place
        if args.benchmark in ("attention", "step", "memory"):
            result, text = gpu_benchmark(args.benchmark, args)
            png = result.pop("png")
        elif args.benchmark == "abc-sort":
            result, text = bench_abc_sort(args.repeats), None
        elif args.benchmark == "abc-variants":
            result = bench_abc_variants(args.seeds)
            text = variants_markdown(result)
        elif args.benchmark == "lm-variants":
            result = bench_lm_variants(args.size, args.steps, args.keep)
            text = lm_markdown(result)
        else:
            result = bench_decode()
            text = decode_markdown(result)
    stem = os.path.join(out, result["benchmark"])
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=2)
    text = text or markdown(result)
    with open(stem + ".md", "w") as f:
        f.write(text)
    if png:
        png(result, stem + ".png")
    print(text)
    print(f"written: {stem}.json, .md" + (", .png" if png else ""))


if __name__ == "__main__":
    main(sys.argv)
