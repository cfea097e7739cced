"""The attention, step and memory benchmarks (train/perf.py) as markdown tables and PNGs."""
from __future__ import annotations

import numpy as np

from train.plots import Curve, plot_curves


def fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def times(ratio) -> str:
    return fmt(ratio, ".2f") + ("x" if ratio is not None else "")


def header(result: dict) -> list[str]:
    m = result["machine"]
    return [f"`{result['command']}` on {m['device']} ({m['date']}; jax {m['jax']}, jaxlib "
            f"{m['jaxlib']}, cuDNN {m['cudnn']}).", ""]


def attention_markdown(result: dict) -> str:
    lines = [f"# Attention cores, forward + backward: {result['tokens_per_step']:,} tokens per "
             f"step, {result['heads']} heads of {result['d_head']}, {result['dtype']}", "",
             *header(result),
             "TFLOP/s counts each variant's useful work (train/perf.py says how); 'vs cuDNN' "
             "divides cuDNN's time (causal for the causal variants, bidirectional for the "
             "bidirectional Linformer) by the row's.", "",
             "| variant | path | L | batch | ms | TFLOP/s | vs cuDNN |", "|---|---|---|---|---|---|---|"]
    for r in result["results"]:
        ms = fmt(r["ms"], ".2f", r.get("error", "-"))
        lines.append(f"| {r['variant']} | {r['path']} | {r['L']:,} | {r['batch']} | {ms} | "
                     f"{fmt(r['tflops'], '.0f')} | {times(r['speedup_vs_cudnn'])} |")
    return "\n".join(lines) + "\n"


def attention_png(result: dict, path: str) -> None:
    curves = {}
    for r in result["results"]:
        if r["ms"] is not None:
            curves.setdefault(f"{r['variant']} ({r['path']})", []).append((r["L"], r["ms"]))
    plot_curves(path, [Curve(label, *map(np.array, zip(*points)))
                       for label, points in curves.items()],
                title=f"attention forward + backward, {result['tokens_per_step']:,} tokens/step",
                xlabel="sequence length L", ylabel="ms per step (lower is faster)")


def step_markdown(result: dict) -> str:
    model = result["model"]
    lines = [f"# Train step, GPT-2-small shape ({model['n_layers']} layers, d {model['d_model']}, "
             f"{model['n_heads']} heads, vocab {model['vocab_size']}, {model['dtype']} compute, "
             "float32 weights and AdamW)", "", *header(result),
             f"The project's jitted train step, the mean of {result['timed_steps']} steps after "
             f"two warm-up steps. MFU divides the useful FLOPs by the bf16 matmul rate measured "
             f"in the same run ({result['peak_tflops']:.0f} TFLOP/s).", "",
             "| variant | L x batch | remat | tokens/s | MFU | vs standard | compile s |",
             "|---|---|---|---|---|---|---|"]
    for r in result["results"]:
        lines.append(f"| {r['variant']} | {r['L']:,} x {r['batch']} | {r['remat']} | "
                     f"{fmt(r['tokens_per_s'], ',.0f', r.get('error', '-'))} | "
                     f"{fmt(r['mfu'], '.1%')} | {times(r.get('vs_standard'))} | "
                     f"{fmt(r.get('compile_s'), '.0f')} |")
    profiled = [r for r in result["results"] if r.get("parts_ms")]
    if profiled:
        parts = list(profiled[0]["parts_ms"])
        lines += ["", "Where a step's time goes, in ms (a jax.profiler trace of the compiled "
                  "step: each op's device time goes to the part its HLO metadata names; "
                  "'rest' is the step less the parts: embeddings, residuals, the batch, "
                  "metrics and the gaps between ops):", "",
                  "| variant | L x batch | step ms | " + " | ".join(parts) + " |",
                  "|---|---|---|" + "---|" * len(parts)]
        for r in profiled:
            cells = [f"{r['parts_ms'][k]:.1f} ({r['parts_ms'][k] / r['step_ms']:.0%})"
                     for k in parts]
            lines.append(f"| {r['variant']} | {r['L']:,} x {r['batch']} | {r['step_ms']:.1f} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def step_png(result: dict, path: str) -> None:
    curves = {}
    for r in result["results"]:
        if r["tokens_per_s"] is not None:
            curves.setdefault(r["variant"], []).append((r["L"], r["tokens_per_s"]))
    plot_curves(path, [Curve(label, *map(np.array, zip(*points)))
                       for label, points in curves.items()],
                title="GPT-2-small train step", xlabel="sequence length L",
                ylabel="tokens/s (higher is faster)")


def memory_markdown(result: dict) -> str:
    lines = ["# Peak device memory of a train step, batch 1, remat per block, GPT-2-small shape",
             "", *header(result),
             "XLA's buffer assignment for the compiled step (arguments + outputs + temporaries - "
             f"donated); the device allows {result['bytes_limit'] / 2**30:.1f} GiB. Each "
             "variant's lengths double until a step no longer fits.", "",
             "| variant | L | peak GiB | fits |", "|---|---|---|---|"]
    for r in result["results"]:
        peak = fmt(r["peak_bytes"] and r["peak_bytes"] / 2**30, ".2f", r.get("error", "-"))
        lines.append(f"| {r['variant']} | {r['L']:,} | {peak} | {'yes' if r['fits'] else 'no'} |")
    return "\n".join(lines) + "\n"


def memory_png(result: dict, path: str) -> None:
    curves = {}
    for r in result["results"]:
        if r["peak_bytes"]:
            curves.setdefault(r["variant"], []).append((r["L"], r["peak_bytes"] / 2**30))
    plot_curves(path, [Curve(label, *map(np.array, zip(*points)))
                       for label, points in curves.items()],
                title="peak memory of a train step (batch 1, remat per block)",
                xlabel="sequence length L", ylabel="GiB",
                target=result["bytes_limit"] / 2**30)


REPORTS = {"attention": (attention_markdown, attention_png),
           "step": (step_markdown, step_png),
           "memory": (memory_markdown, memory_png)}
