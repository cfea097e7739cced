"""GPU speed and memory: the attention cores, the whole train step, the longest sequence
that trains. Each benchmark returns a dict with a `results` list (train.bench writes it
as JSON, a markdown table and a PNG).

FLOPs are the useful work a variant must do, counted in the flash-attention convention
(forward: the score and output products; backward: 2.5 times the forward, as a flash
backward recomputes the scores): 2 * pairs * (4 * d_qk + 3 * d_v) for the (query, key)
pairs that are not masked, plus the Linformer's compression (3 * 2 * rows * columns *
width for each of K and V). Times are the median of several groups of back-to-back
calls, after a call that compiles; the reference (cuDNN) runs in the same process.
"""
from __future__ import annotations

import collections
import functools
import glob
import re
import statistics
import tempfile
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from lowrank_jax.attention import core
from lowrank_jax.attention import linformer_ops as linformer

TOKENS, HEADS, D_HEAD = 65536, 16, 64
ATTENTION_LENGTHS = (1024, 4096, 16384, 32768)
CAUSAL_BLOCK, CAUSAL_SLOTS, BIDIRECTIONAL_K, LOWRANK_R = 128, 8, 256, 16
GROUPS, CALLS = 5, 4


def machine() -> dict:
    """The device and the software the figures depend on."""
    import datetime

    import jaxlib

    try:
        from jax._src.lib import cuda_versions
        cudnn = cuda_versions.cudnn_get_version() if cuda_versions else None
    except ImportError:
        cudnn = None
    return {"device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
            "jax": jax.__version__, "jaxlib": jaxlib.__version__, "cudnn": cudnn,
            "date": datetime.date.today().isoformat()}


def device_tag() -> str:
    """'h200' for an NVIDIA H200: the suffix of the committed result files."""
    kind = jax.devices()[0].device_kind.lower().replace("nvidia", "").strip()
    return "".join(ch for ch in kind.split()[0] if ch.isalnum()) if kind else "device"


def median_ms(fn: Callable, args: tuple) -> float:
    """Median over GROUPS of CALLS back-to-back calls (launch gaps amortised), in ms."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(GROUPS):
        start = time.perf_counter()
        for _ in range(CALLS):
            out = fn(*args)
        jax.block_until_ready(out)
        times.append((time.perf_counter() - start) / CALLS * 1e3)
    return statistics.median(times)


def out_of_memory(err: Exception) -> bool:
    text = str(err)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def failure(err: Exception) -> str:
    return "out of memory" if out_of_memory(err) else str(err).strip().splitlines()[0][:200]


def matmul_peak_tflops(n: int = 8192) -> float:
    """A bf16 n x n x n product on random data: the ceiling MFU is measured against."""
    a, b = (jax.random.normal(jax.random.key(i), (n, n), jnp.bfloat16) for i in range(2))
    return 2 * n ** 3 / median_ms(jax.jit(jnp.matmul), (a, b)) / 1e9


# ---------------------------------------------------------------- attention cores

class Core(NamedTuple):
    variant: str
    path: str                      # "fast", "plain" or "cudnn" (the reference)
    fn: Callable                   # (*inputs) -> out_BLHD
    inputs: Callable               # (key, B, L) -> tuple of arrays
    flops: Callable                # (B, L) -> useful FLOPs of forward + backward


def causal_pairs(length: int) -> int:
    return length * (length + 1) // 2


def causal_linformer_pairs(length: int, b: int = CAUSAL_BLOCK, c: int = CAUSAL_SLOTS) -> int:
    """Slots of every earlier block plus the own block's keys up to the query."""
    n = length // b
    return b * c * n * (n - 1) // 2 + n * causal_pairs(b)


def attention_flops(pairs: int, d_qk: int = D_HEAD, d_v: int = D_HEAD) -> int:
    return 2 * pairs * (4 * d_qk + 3 * d_v)


def compression_flops(rows: int, columns: int) -> int:
    return 2 * 3 * 2 * rows * columns * D_HEAD     # K and V, forward and two backward products


def qkv(key, batch, length, d_qk=D_HEAD):
    kq, kk, kv = jax.random.split(key, 3)
    shape = (batch, length, HEADS)
    return (jax.random.normal(kq, (*shape, d_qk), jnp.bfloat16),
            jax.random.normal(kk, (*shape, d_qk), jnp.bfloat16),
            jax.random.normal(kv, (*shape, D_HEAD), jnp.bfloat16))


def with_projections(columns: int, block: int = 1):
    """q, k, v and E, F of (L, columns), L rounded up to whole blocks: headwise sharing,
    the library's default."""
    def inputs(key, batch, length):
        k1, k2 = jax.random.split(key)
        rows = -(-length // block) * block
        E, F = (jax.random.uniform(k, (rows, columns), jnp.bfloat16, -0.1, 0.1)
                for k in jax.random.split(k2))
        return (*qkv(k1, batch, length), E, F)
    return inputs


def masked_softmax(causal):
    def attend(q, k, v):
        mask = core.causal_mask_LS(q.shape[1]) if causal else True
        return core.softmax_attention(q, k, v, mask, D_HEAD ** -0.5)[0]
    return attend


SCALE = D_HEAD ** -0.5
CORES = (
    Core("standard", "cudnn", functools.partial(core.cudnn_attention, causal=True, scale=SCALE),
         qkv, lambda B, L: B * HEADS * attention_flops(causal_pairs(L))),
    Core("standard", "plain", masked_softmax(True), qkv,
         lambda B, L: B * HEADS * attention_flops(causal_pairs(L))),
    Core("lowrank_qk r=16", "fast",
         functools.partial(core.cudnn_attention, causal=True, scale=SCALE),
         functools.partial(qkv, d_qk=LOWRANK_R),
         lambda B, L: B * HEADS * attention_flops(causal_pairs(L), LOWRANK_R)),
    Core("lowrank_qk r=16", "plain", masked_softmax(True),
         functools.partial(qkv, d_qk=LOWRANK_R),
         lambda B, L: B * HEADS * attention_flops(causal_pairs(L), LOWRANK_R)),
    Core("linformer causal b=128 c=8", "fast",
         functools.partial(linformer.causal_attention_fast, block_size=CAUSAL_BLOCK,
                           slots=CAUSAL_SLOTS, scale=SCALE),
         with_projections(CAUSAL_SLOTS, CAUSAL_BLOCK),
         lambda B, L: B * (HEADS * attention_flops(causal_linformer_pairs(L))
                           + HEADS * compression_flops(L, CAUSAL_SLOTS))),
    Core("linformer causal b=128 c=8", "plain",
         lambda *a: linformer.causal_attention(*a, CAUSAL_BLOCK, CAUSAL_SLOTS, SCALE)[0],
         with_projections(CAUSAL_SLOTS, CAUSAL_BLOCK),
         lambda B, L: B * (HEADS * attention_flops(causal_linformer_pairs(L))
                           + HEADS * compression_flops(L, CAUSAL_SLOTS))),
    Core("bidirectional", "cudnn", functools.partial(core.cudnn_attention, causal=False,
                                                     scale=SCALE),
         qkv, lambda B, L: B * HEADS * attention_flops(L * L)),
    Core("linformer k=256", "fast",
         functools.partial(linformer.bidirectional_attention_fast, scale=SCALE),
         with_projections(BIDIRECTIONAL_K),
         lambda B, L: B * HEADS * (attention_flops(L * BIDIRECTIONAL_K)
                                   + compression_flops(L, BIDIRECTIONAL_K))),
    Core("linformer k=256", "plain",
         lambda *a: linformer.bidirectional_attention(*a, SCALE)[0],
         with_projections(BIDIRECTIONAL_K),
         lambda B, L: B * HEADS * (attention_flops(L * BIDIRECTIONAL_K)
                                   + compression_flops(L, BIDIRECTIONAL_K))),
)


def forward_backward(fn: Callable) -> Callable:
    """jit((inputs, cotangent) -> gradients of every input): one forward and one backward."""
    def run(inputs, cotangent):
        out, vjp = jax.vjp(fn, *inputs)
        return vjp(cotangent.astype(out.dtype))
    return jax.jit(run)


def time_core(case: Core, length: int, tokens: int = TOKENS) -> dict:
    batch = max(1, tokens // length)
    row = {"variant": case.variant, "path": case.path, "L": length, "batch": batch,
           "ms": None, "tflops": None}
    try:
        inputs = case.inputs(jax.random.key(length), batch, length)
        cotangent = jax.random.normal(jax.random.key(1), (batch, length, HEADS, D_HEAD),
                                      jnp.bfloat16)
        ms = median_ms(forward_backward(case.fn), (inputs, cotangent))
    except Exception as err:  # noqa: BLE001 - a plain form out of memory is a result
        return {**row, "error": failure(err)}
    return {**row, "ms": ms, "tflops": case.flops(batch, length) / ms / 1e9}


def reference_of(variant: str) -> str:
    bidirectional = variant == "bidirectional" or variant.startswith("linformer k=")
    return "bidirectional" if bidirectional else "standard"


def with_ratios(rows: list[dict]) -> list[dict]:
    """speedup: cuDNN's ms (causal or bidirectional, same L) over the row's."""
    cudnn = {(r["variant"], r["L"]): r["ms"] for r in rows if r["path"] == "cudnn"}
    out = []
    for r in rows:
        ref = cudnn.get((reference_of(r["variant"]), r["L"]))
        out.append({**r, "speedup_vs_cudnn": ref / r["ms"] if ref and r["ms"] else None})
    return out


def bench_attention(lengths=ATTENTION_LENGTHS, tokens: int = TOKENS, progress=print) -> dict:
    rows = []
    for length in lengths:
        for case in CORES:
            rows.append(time_core(case, length, tokens))
            progress(format_attention_row(rows[-1]))
    return {"benchmark": "attention", "tokens_per_step": tokens, "heads": HEADS,
            "d_head": D_HEAD, "dtype": "bfloat16", "results": with_ratios(rows)}


def format_attention_row(r: dict) -> str:
    if r["ms"] is None:
        return f"{r['variant']:28s} {r['path']:6s} L={r['L']:6d}  {r['error']}"
    return (f"{r['variant']:28s} {r['path']:6s} L={r['L']:6d}  {r['ms']:8.2f} ms "
            f"{r['tflops']:6.1f} TFLOP/s")


# ---------------------------------------------------------------- the whole train step

GPT2_SMALL = dict(vocab_size=50304, d_model=768, n_layers=12, n_heads=12, d_ff=3072,
                  dtype="bfloat16")
STEP_VARIANTS = {  # label -> (attention, attention_kwargs)
    "standard": ("standard", {}),
    "deep_qkv": ("deep_qkv", {}),
    "lowrank_qk r=16": ("lowrank_qk", {"r": LOWRANK_R}),
    "linformer causal b=128 c=8": ("linformer", {"causal": True, "block_size": CAUSAL_BLOCK,
                                                 "block_slots": CAUSAL_SLOTS}),
}
STEP_SHAPES = ((1024, 16, "none"), (8192, 2, "none"), (32768, 1, "block"))  # L, batch, remat
TIMED_STEPS = 10


class StepSetup(NamedTuple):
    model_cfg: object
    spec: object
    task: object
    model: object
    optimizer: object
    abstract: object
    mesh: object


def step_setup(label: str, length: int, batch: int, remat: str) -> StepSetup:
    """The project's own train step for GPT-2 small with one variant, on one device."""
    from configs.base import make_config
    from lowrank_jax.model import GPT
    from lowrank_jax.training.config import check_train_config, run_spec
    from lowrank_jax.training.optim import make_optimizer
    from lowrank_jax.training.state import abstract_state, make_mesh

    attention, kwargs = STEP_VARIANTS[label]
    model = {**GPT2_SMALL, "max_len": length, "attention": attention,
             "attention_kwargs": kwargs, "remat": remat}
    config = make_config("random_tokens", model, batch_size=batch, steps=1000, warmup_steps=10,
                         num_devices=1)
    spec = run_spec(config)
    model_cfg, task = check_train_config(spec)
    mesh = make_mesh(1)
    train_model = GPT(model_cfg.replace(deterministic=False))
    optimizer = make_optimizer(spec.optimizer)
    abstract = abstract_state(train_model, optimizer, spec.seed, task.seq_len, mesh)
    return StepSetup(model_cfg, spec, task, train_model, optimizer, abstract, mesh)


# A GPU step runs as CUDA graphs, whose kernels a trace cannot tie to their HLO ops; the
# copy of the step that is profiled runs op by op.
OP_BY_OP = {"xla_gpu_enable_command_buffer": ""}


def compile_step(s: StepSetup, compiler_options: dict | None = None):
    from lowrank_jax.training.step import make_train_fn, make_train_step

    step = make_train_step(s.model, s.optimizer, s.task, s.spec.batch_size, s.mesh)
    return (make_train_fn(step, s.abstract, s.mesh, 1).lower(s.abstract, s.task.data)
            .compile(compiler_options))


def flops_per_token(label: str, length: int, params: int, cfg) -> float:
    """6 x the parameters that multiply (all but the position table), plus attention's
    useful FLOPs per token (see the module docstring)."""
    attention, kwargs = STEP_VARIANTS[label]
    if attention == "linformer":
        b, c = kwargs["block_size"], kwargs["block_slots"]
        per_head = (attention_flops(causal_linformer_pairs(length, b, c), cfg.d_head, cfg.d_head)
                    + compression_flops(length, c) * cfg.d_head / D_HEAD) / length
    else:
        d_qk = kwargs.get("r", cfg.d_head)
        per_head = attention_flops(causal_pairs(length), d_qk, cfg.d_head) / length
    return 6 * params + cfg.n_layers * cfg.n_heads * per_head


def time_step(label: str, length: int, batch: int, remat: str, peak_tflops: float,
              profile: bool = True) -> dict:
    """One row; `profile`: also where the time goes (a second, op-by-op compile)."""
    from lowrank_jax.model import count_parameters
    from lowrank_jax.training.state import create_state, replicated

    row = {"variant": label, "L": length, "batch": batch, "remat": remat,
           "tokens_per_s": None, "mfu": None}
    try:
        s = step_setup(label, length, batch, remat)
        start = time.perf_counter()
        run = compile_step(s)
        row["compile_s"] = time.perf_counter() - start
        state = create_state(s.model, s.optimizer, s.spec.seed, s.task.seq_len, s.abstract)
        data = jax.device_put(s.task.data, replicated(s.mesh))
        held = {"state": state}

        def call(executable=run):
            held["state"], sums = executable(held["state"], data)
            return sums

        for _ in range(2):
            jax.block_until_ready(call())
        start = time.perf_counter()
        for _ in range(TIMED_STEPS):
            sums = call()
        jax.block_until_ready((held["state"], sums))
        seconds = (time.perf_counter() - start) / TIMED_STEPS
        parts = None
        if profile:
            profiled = compile_step(s, OP_BY_OP)
            jax.block_until_ready(call(profiled))
            parts = breakdown(profiled, functools.partial(call, profiled), seconds * 1e3)
    except Exception as err:  # noqa: BLE001 - out of memory is a result
        return {**row, "error": failure(err)}
    params = count_parameters(held["state"].params) - held["state"].params["pos_embed"].size
    tokens_per_s = batch * length / seconds
    mfu = tokens_per_s * flops_per_token(label, length, params, s.model_cfg) / (peak_tflops * 1e12)
    return {**row, "step_ms": seconds * 1e3, "tokens_per_s": tokens_per_s, "mfu": mfu,
            "loss": float(sums["loss"] / sums["targets"]), "parts_ms": parts}


PARTS = (("attention", lambda c: c == "attention"), ("mlp", lambda c: c == "ffn"),
         ("lm head + loss", lambda c: c in ("token_embed.attend", "lm_head", "loss")),
         ("optimizer", lambda c: c == "optimizer"), ("norms", lambda c: c.startswith("norm")))


def part_of(op_name: str) -> str:
    """The model part an HLO op's metadata names: its Flax module path or the step's named
    scopes, under transformation wrappers ("transpose(jvp(GPT))/block_0/attention/...")."""
    components = re.sub(r"[\w.]+\(", "", op_name).replace(")", "").split("/")
    for part, names in PARTS:
        if any(names(c) for c in components):
            return part
    return "rest"


def op_names(compiled) -> dict[str, str]:
    """HLO instruction name -> the op_name of its metadata, from the optimised HLO text."""
    pattern = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = .*?op_name="([^"]*)"', re.M)
    return dict(pattern.findall(compiled.as_text()))


def device_op_ns(call: Callable[[], object], calls: int = 3) -> dict[str, float]:
    """Device time per HLO op of `call()` (a compiled step, already run once), from a
    jax.profiler trace of `calls` calls, in ns per call."""
    from jax.profiler import ProfileData

    with tempfile.TemporaryDirectory() as folder:
        jax.profiler.start_trace(folder)
        for _ in range(calls):
            out = call()
        jax.block_until_ready(out)
        jax.profiler.stop_trace()
        trace = ProfileData.from_file(glob.glob(f"{folder}/**/*.xplane.pb", recursive=True)[0])
    devices = [p for p in trace.planes if p.name.startswith("/device:")]
    totals = collections.Counter()
    for plane in devices or trace.planes:   # the CPU backend's ops run on host threads
        for line in plane.lines:
            for event in line.events:
                op = dict(event.stats).get("hlo_op")
                if op:
                    totals[op] += event.duration_ns / calls
    return totals


def breakdown(compiled, call: Callable[[], object], step_ms: float) -> dict[str, float]:
    """Where a step's time goes, in ms: a profiler trace of `call()` (running `compiled`,
    op by op), each op's device time given to the model part its HLO metadata names; 'rest'
    is `step_ms` less the parts: embeddings, residuals, the batch, metrics, the gaps."""
    names = op_names(compiled)
    parts = dict.fromkeys([part for part, _ in PARTS], 0.0)
    for op, ns in device_op_ns(call).items():
        part = part_of(names.get(op, ""))
        if part != "rest":
            parts[part] += ns / 1e6
    return {**parts, "rest": step_ms - sum(parts.values())}


def bench_step(shapes=STEP_SHAPES, variants=tuple(STEP_VARIANTS), progress=print,
               profile: bool = True) -> dict:
    peak = matmul_peak_tflops()
    progress(f"bf16 matmul peak: {peak:.0f} TFLOP/s")
    rows = []
    for length, batch, remat in shapes:
        for label in variants:
            rows.append(time_step(label, length, batch, remat, peak, profile))
            progress(format_step_row(rows[-1]))
    standard = {r["L"]: r["tokens_per_s"] for r in rows if r["variant"] == "standard"}
    for r in rows:
        ref = standard.get(r["L"])
        r["vs_standard"] = r["tokens_per_s"] / ref if ref and r["tokens_per_s"] else None
    return {"benchmark": "step", "model": GPT2_SMALL, "peak_tflops": peak,
            "timed_steps": TIMED_STEPS, "results": rows}


def format_step_row(r: dict) -> str:
    head = f"{r['variant']:28s} L={r['L']:6d} x {r['batch']:2d} remat={r['remat']:5s}"
    if r["tokens_per_s"] is None:
        return f"{head}  {r['error']}"
    return f"{head}  {r['tokens_per_s']:10,.0f} tokens/s  MFU {r['mfu']:.1%}"


# ---------------------------------------------------------------- memory

MEMORY_LENGTHS = (4096, 8192, 16384, 32768, 65536, 131072, 262144)


def peak_bytes(compiled) -> int:
    """What XLA's buffer assignment needs at once: arguments, outputs and temporaries,
    less the outputs that reuse donated arguments."""
    m = compiled.memory_analysis()
    return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
            - m.alias_size_in_bytes)


def bench_memory(lengths=MEMORY_LENGTHS, variants=tuple(STEP_VARIANTS), progress=print) -> dict:
    """Batch 1, remat per block, each length doubling until a step no longer fits."""
    limit = jax.devices()[0].memory_stats()["bytes_limit"]
    rows = []
    for label in variants:
        for length in lengths:
            row = {"variant": label, "L": length, "batch": 1, "remat": "block"}
            try:
                row["peak_bytes"] = peak_bytes(compile_step(step_setup(label, length, 1,
                                                                       "block")))
                row["fits"] = row["peak_bytes"] <= limit
            except Exception as err:  # noqa: BLE001 - too large to compile is a result
                row.update(peak_bytes=None, fits=False, error=failure(err))
            rows.append(row)
            progress(f"{label:28s} L={length:7d}  " + (
                f"{row['peak_bytes'] / 2**30:7.2f} GiB" if row["peak_bytes"] else row["error"]))
            if not row["fits"]:
                break
    return {"benchmark": "memory", "model": GPT2_SMALL, "bytes_limit": limit, "results": rows}
