"""python -m train.suite {listops,mqar,lm} [--out DIR] [--size SIZE] [--variants V,..]
                          [--jobs N] [--steps N] [--set FIELD=VALUE ...] [--lengths L,..]
                          [--pairs P,..] [--seeds S,..]

Runs one quality comparison of the attention variants, each run a `python -m train` of
its own (its workdir kept under OUT/<name>_runs/, so a cut suite resumes where it
stopped and every run can be inspected), then writes quality_<name>.json, .md and .png
to OUT with the commands that made them. SIGTERM or Ctrl-C stops the runs in flight, each
saving its step; the same command resumes them (one with other settings is refused).

listops: every variant in an encoder (configs/listops_<variant>.py; the bidirectional
Linformer) on ListOps, test accuracy at the end of training; --size full is the Long
Range Arena's budget, small the 2-layer d-64 model, local a CPU-sized run. The data is
written to --data first if that folder holds none.
mqar: every causal variant on multi-query associative recall (configs/mqar.py) at
sequence lengths 64 to 512 and 4 to 64 key-value pairs: held-out answer accuracy per
(length, pairs), drawn as a heatmap per variant; --size local is a small grid on a CPU.
lm: every causal variant and the lumenspark preset as a language model on the default
corpus (configs/lm_<variant>.py, configs/lumenspark.py) at a short and a long context,
the same tokens per step and steps for all: validation bits per byte against tokens and
against wall-clock seconds; --size local is a CPU-sized run.

--jobs N runs N trainings at once (on a GPU each gets 1/N of its memory): small models
leave most of a GPU idle. --set FIELD=VALUE gives every run that config field, after its
own (`--set batch_size=256 --set lr=3e-3`). --lengths L,.. (mqar, lm) and --pairs P,..
(mqar) run those of the grid's cells alone, so a grid too long for one sitting can be
split. --seeds S,.. trains each run once per seed (a run's config seed sets its
initialisation, its batches and, for mqar, its data); the tables give the mean over the
seeds beside each seed's figure.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import NamedTuple

import ml_collections
from flax.traverse_util import flatten_dict

from configs.base import LISTOPS_SIZES as LISTOPS_CONFIG_SIZES
from configs.mqar import ATTENTION_KWARGS as MQAR_ATTENTION
from configs.mqar import SIZES as MQAR_SIZES
from lowrank_jax.tasks import mqar as mqar_task
from lowrank_jax.tasks.listops import MAX_LENGTH, MIN_LENGTH
from lowrank_jax.training.config import MAX_SEED, run_spec
from lowrank_jax.validation import is_digits
from train.cli import (Parser, RawEpilogFormatter, apply_override, check_folder_can_be_made,
                       load_config_file, make_output_folder, word_list)
from train.checkpoint import describe_differences
from train.errors import UserError, exit_on_user_error
from train.loop import CONFIG_FILE
from train.metrics import read_metrics
from train.preemption import EXIT_CODES, StopSignals

PROGRAM = "python -m train.suite"
VARIANTS = ("standard", "deep_qkv", "lowrank_qk", "linformer")
# Long Range Arena, ListOps test accuracy (Tay et al. 2021, table 1).
LRA_LISTOPS = {"standard": 0.3637, "linformer": 0.3570}
LISTOPS_SIZES = {"full": "", "small": ":small", "local": ":local"}
MQAR_GRID = {"full": ((64, 128, 256, 512), (4, 16, 64)), "local": ((32, 64), (2, 4))}
LM_VARIANTS = (*VARIANTS, "lumenspark")
# Context lengths, tokens per step (the batch is tokens // length) and steps.
LM_GRID = {"full": ((1024, 8192), 65_536, 1000), "local": ((64, 128), 2048, 300)}


class Suite(NamedTuple):
    sizes: tuple[str, ...]
    default_size: str
    variants: tuple[str, ...]
    metric: str               # the figure of a run's last evaluation that the table reports


SUITES = {"listops": Suite(tuple(LISTOPS_SIZES), "small", VARIANTS, "test_accuracy"),
          "mqar": Suite(tuple(MQAR_GRID), "full", VARIANTS, "answer_accuracy"),
          "lm": Suite(tuple(LM_GRID), "full", LM_VARIANTS, "bits_per_byte")}


class Run(NamedTuple):
    name: str                 # its workdir under OUT/<suite>_runs/
    config: str               # the --config argument
    overrides: tuple          # --config.FIELD=VALUE arguments
    row: dict                 # what identifies it in the results


def listops_runs(size: str, variants, data: str) -> list[Run]:
    return [Run(variant, f"configs/listops_{variant}.py{LISTOPS_SIZES[size]}",
                (f"--config.listops.path={data}",), {"variant": variant})
            for variant in variants]


def mqar_runs(size: str, variants) -> list[Run]:
    """Each cell of the grid whose rows hold the pairs (mqar.check_shape), every variant
    side by side from the shortest rows up (a cut suite has compared the cells it reached);
    the causal Linformer's blocks scale with the length as configs/mqar.py sizes them."""
    model = MQAR_SIZES["" if size == "full" else "local"][0]
    lengths, pair_counts = MQAR_GRID[size]
    runs = []
    for length in lengths:
        for pairs in pair_counts:
            if mqar_task.check_shape(model["vocab_size"], length + 1, pairs):
                continue
            for variant in variants:
                kwargs = MQAR_ATTENTION[variant](model["d_model"] // model["n_heads"], length)
                overrides = (f"--config.model.max_len={length}",
                             f"--config.mqar.num_pairs={pairs}",
                             *(f"--config.model.attention_kwargs.{k}={v}" for k, v in
                               kwargs.items()))
                arg = variant + ("" if size == "full" else ",local")
                runs.append(Run(f"{variant}_L{length}_p{pairs}", f"configs/mqar.py:{arg}",
                                overrides, {"variant": variant, "L": length, "pairs": pairs}))
    return runs


def lm_runs(size: str, variants) -> list[Run]:
    """Each variant at each length with the same tokens per step and steps, the variants side
    by side from the shortest rows up (a cut suite has compared whole lengths). The lumenspark
    preset names its Linformer by k, kept at a quarter of the length as in the seed (128 of
    512); configs/lm_linformer.py's blocks keep that ratio at any length by themselves."""
    lengths, tokens, steps = LM_GRID[size]
    runs = []
    for length in lengths:
        for variant in variants:
            config = ("configs/lumenspark.py" if variant == "lumenspark"
                      else f"configs/lm_{variant}.py") + ("" if size == "full" else ":local")
            overrides = (f"--config.model.max_len={length}",
                         f"--config.batch_size={tokens // length}",
                         *schedule(steps, evaluations=8, logs=20),
                         *((f"--config.model.attention_kwargs.k={length // 4}",)
                           if variant == "lumenspark" else ()))
            runs.append(Run(f"{variant}_L{length}", config, overrides,
                            {"variant": variant, "L": length}))
    return runs


GRID_FLAGS = {  # a grid key -> its flag, what it counts, the suites that have it
    "L": ("--lengths", "sequence-length", "mqar and lm"),
    "pairs": ("--pairs", "key-value pair", "mqar"),
}


def at_grid(runs: list[Run], key: str, values: str | None, suite: str) -> list[Run]:
    """The runs whose row's `key` (L or pairs) is one of `values`, comma-separated, given by
    its flag (None: all of them)."""
    if values is None:
        return runs
    flag, what, _ = GRID_FLAGS[key]
    grid = sorted({run.row[key] for run in runs if key in run.row})
    chosen = values.split(",")
    bad = [text for text in chosen if not is_digits(text) or int(text) not in grid]
    if not grid or bad:
        allowed = (f"choose from {', '.join(map(str, grid))}" if grid
                   else f"{suite} has no {what} grid")
        raise UserError(f"{flag}={values!r} is not allowed; {allowed}.")
    keep = {int(text) for text in chosen}
    return [run for run in runs if run.row[key] in keep]


def at_seeds(runs: list[Run], seeds: str | None) -> list[Run]:
    """Each run once per seed of --seeds, the seeds of a run side by side (None: each run
    once, at its config's seed)."""
    if seeds is None:
        return runs
    chosen = seeds.split(",")
    if (not all(is_digits(text) and int(text) <= MAX_SEED for text in chosen)
            or len(set(map(int, chosen))) < len(chosen)):
        raise UserError(f"--seeds={seeds!r} is not allowed; give distinct integers from 0 to "
                        f"{MAX_SEED}, comma-separated (e.g. --seeds 0,1,2).")
    return [run._replace(name=f"{run.name}_seed{seed}",
                         overrides=(*run.overrides, f"--config.seed={seed}"),
                         row={**run.row, "seed": seed})
            for run in runs for seed in map(int, chosen)]


def config_overrides(settings: list[str]) -> tuple[str, ...]:
    """--set FIELD=VALUE arguments as --config.FIELD=VALUE ones (after a run's own, so
    they win)."""
    bad = [item for item in settings if "=" not in item or item.startswith("=")]
    if bad:
        raise UserError(f"--set {bad[0]!r} is not allowed; give FIELD=VALUE, e.g. "
                        "--set lr=3e-3 or --set model.d_model=256.")
    return tuple(f"--config.{item.removeprefix('config.')}" for item in settings)


def schedule(steps: int, evaluations: int = 1, logs: int = 4) -> tuple[str, ...]:
    """`steps` steps, their warm-up, logging, evaluations and checkpoints in proportion."""
    warmup = min(steps - 1, max(1, steps // 10))   # it must end before the last step
    return (f"--config.steps={steps}", f"--config.warmup_steps={warmup}",
            f"--config.log_every={max(1, steps // logs)}",
            f"--config.eval_every={max(1, steps // evaluations)}",
            f"--config.checkpoint_every={max(1, steps // min(evaluations, 4))}")


def command(run: Run, workdir: str) -> list[str]:
    return [sys.executable, "-m", "train", "--config", run.config, "--workdir", workdir,
            *run.overrides]


def environment(jobs: int) -> dict:
    """Several trainings on one GPU: each takes its share of the memory as it needs it."""
    env = dict(os.environ)
    if jobs > 1:
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 / jobs:.3f}")
    return env


def run_all(runs: list[Run], folder: str, jobs: int, after_each=None,
            progress=print) -> tuple[dict[str, dict], int | None]:
    """({run name: {"seconds", "returncode"}}, the stop signal or None); `jobs` at a time,
    each logging to folder/<name>.log; `after_each(timings so far)` when one ends.
    SIGTERM or SIGINT starts no more runs and passes SIGTERM to the running ones, which save
    their step and end; they are left out of the timings (unfinished), so the same command
    resumes them, and none is left writing into its workdir meanwhile. A run the stop
    reached after its last evaluation (while it saved or exited) that still exits 0 ran to
    its end and is timed; one the signal killed outright is left for the next call, which
    finds it finished and reports it."""
    os.makedirs(folder, exist_ok=True)
    done = {run.name: timing_of(folder, run.name) for run in runs
            if finished(os.path.join(folder, run.name))}
    waiting, running = [run for run in runs if run.name not in done], {}
    env = environment(jobs)
    stopped = None
    with StopSignals() as signals, killed_on_interrupt(running):
        while running or waiting and stopped is None:
            while waiting and len(running) < jobs and signals.requested is None:
                run = waiting.pop(0)
                log = open(os.path.join(folder, f"{run.name}.log"), "w")
                process = subprocess.Popen(command(run, os.path.join(folder, run.name)),
                                           stdout=log, stderr=subprocess.STDOUT, env=env)
                running[run.name] = (process, log, time.monotonic())
            if signals.requested is not None and stopped is None:
                stopped = signals.requested
                progress(f"stopping: {len(running)} run(s) save their step first")
                for process, _, _ in running.values():  # SIGTERM: they save and end
                    process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            for name, (process, log, started) in list(running.items()):
                if process.poll() is None:
                    continue
                log.close()
                del running[name]
                if stopped is None or (process.returncode == 0
                                       and finished(os.path.join(folder, name))):
                    done[name] = ended(folder, name, process.returncode, started, len(done) + 1,
                                       len(runs), progress)
                    if after_each:
                        after_each(done)
    return done, stopped


@contextlib.contextmanager
def killed_on_interrupt(running: dict):
    """A second Ctrl-C ends the suite at once, and its runs with it (kill -9 loses only the
    steps since their last checkpoint): none is left writing into its workdir."""
    try:
        yield
    except KeyboardInterrupt:
        for process, _, _ in running.values():
            process.kill()
            process.wait()
        raise


def ended(folder: str, name: str, returncode: int, started: float, count: int, total: int,
          progress) -> dict:
    """The timing of a run that ran to its end (or failed), kept beside its log."""
    timing = {"seconds": time.monotonic() - started, "returncode": returncode}
    with open(os.path.join(folder, f"{name}.timing.json"), "w") as f:
        json.dump(timing, f)
    log = os.path.join(folder, f"{name}.log")
    state = "done" if returncode == 0 else f"failed ({last_line(log)})"
    progress(f"[{count}/{total}] {name}: {state} in {timing['seconds']:.0f} s")
    return timing


def timing_of(folder: str, name: str) -> dict:
    """What run_all measured of a run it ran before (its wall-clock seconds)."""
    try:
        with open(os.path.join(folder, f"{name}.timing.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"seconds": None, "returncode": 0}


def finished(workdir: str) -> bool:
    """The run was evaluated at its last step already (a suite started again skips it)."""
    try:
        with open(os.path.join(workdir, CONFIG_FILE)) as f:
            steps = json.load(f)["steps"]
        records = read_metrics(workdir)
    except (OSError, ValueError, KeyError):
        return False
    return any(r["step"] == steps and any(k.startswith("eval/") for k in r) for r in records)


def last_line(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1] if lines else "no output"


def curves(workdir: str) -> dict:
    """The run's training loss, its training seconds so far (compiles left
    out) and its evaluations, step by step."""
    records = read_metrics(workdir)
    return {"train": [(r["step"], r["loss"]) for r in records if "loss" in r],
            "seconds": training_seconds(records),
            "eval": [{"step": r["step"], **{k.removeprefix("eval/"): v for k, v in r.items()
                                            if k.startswith("eval/")}}
                     for r in records if any(k.startswith("eval/") for k in r)]}


def training_seconds(records: list[dict]) -> list[tuple[int, float]]:
    """(step, seconds of training up to it) at each log record. A record's steps_per_second
    is the mean since its process started training, so step / rate is that time (for a run
    in one process; a resumed one restarts the mean)."""
    return [(r["step"], r["step"] / r["steps_per_second"]) for r in records
            if r.get("steps_per_second")]


def collect(runs: list[Run], folder: str, timings: dict, metric: str) -> list[dict]:
    """A results row per run: its identity, its last evaluation's figures (`metric` first),
    its steps and batch, the wall-clock seconds and its curves; a failed run keeps its error."""
    rows = []
    for run in runs:
        workdir, log = os.path.join(folder, run.name), os.path.join(folder, f"{run.name}.log")
        timing = timings.get(run.name)
        row = {**run.row, metric: None, "command": " ".join(command(run, workdir)[1:])}
        # A run not ended yet (or cut with the suite) is unfinished, not failed.
        problem = ("not run" if not os.path.exists(log) else "not finished" if timing is None
                   else last_line(log))
        try:
            with open(os.path.join(workdir, CONFIG_FILE)) as f:
                config = json.load(f)
            found = curves(workdir)
        except (OSError, ValueError):
            rows.append({**row, "error": problem})
            continue
        final = found["eval"][-1] if found["eval"] else {}
        if timing is None or timing["returncode"] != 0 or metric not in final:
            row["error"] = problem
        rows.append({**row, **{k: v for k, v in final.items() if k != "step"},
                     **at_best_validation(found["eval"]),
                     "steps": final.get("step"), "batch": config["batch_size"],
                     "seconds": (timing or {}).get("seconds"), "curves": found})
    return rows


def at_best_validation(evals: list[dict]) -> dict:
    """A labelled run's test accuracy at its evaluation of highest validation accuracy
    (the earliest of ties): the model an early-stopped run would keep, chosen without
    looking at the test split. {} for a run without both accuracies."""
    scored = [e for e in evals if "val_accuracy" in e and "test_accuracy" in e]
    if not scored:
        return {}
    best = max(scored, key=lambda e: e["val_accuracy"])
    return {"best_val_step": best["step"], "best_val_accuracy": best["val_accuracy"],
            "test_accuracy_at_best_val": best["test_accuracy"]}


def build_parser() -> Parser:
    parser = Parser(prog=PROGRAM, description="Runs one quality comparison of the attention "
                    "variants and writes its figures (JSON, markdown, PNG).",
                    epilog=__doc__.split("\n\n", 1)[1], formatter_class=RawEpilogFormatter)
    parser.add_argument("suite", choices=list(SUITES))
    parser.add_argument("--out", default=None,
                        help="folder for the results (default: a fresh folder under runs/)")
    parser.add_argument("--size", default=None,
                        help="listops: full, small or local (default small); mqar and lm: "
                             "full or local (default full)")
    parser.add_argument("--variants", type=word_list(list(LM_VARIANTS)), default=None,
                        help="default: every variant (lm: and lumenspark)")
    parser.add_argument("--jobs", type=int, default=1, help="trainings run at once")
    parser.add_argument("--steps", type=int, default=None,
                        help="train each run this many steps instead of its config's")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a config field for every run, given to each as "
                             "--config.FIELD=VALUE (repeatable; e.g. --set lr=3e-3)")
    for flag, what, suites in GRID_FLAGS.values():
        parser.add_argument(flag, default=None, help=f"{suites}: only these of the grid's "
                            f"{what} values, comma-separated (default: all)")
    parser.add_argument("--seeds", default=None,
                        help="train each run once per seed, comma-separated (default: once, "
                             "at its config's seed)")
    parser.add_argument("--data", default=None,
                        help="listops: the folder of LRA's files (default data/listops, "
                             "data/listops_local for --size local)")
    return parser


def chosen_runs(args) -> tuple[str, list[Run]]:
    """The size and the runs that the arguments pick, or a UserError naming the bad one."""
    suite = SUITES[args.suite]
    size = args.size or suite.default_size
    if size not in suite.sizes:
        raise UserError(f"--size={size!r} is not allowed for {args.suite}; choose one of "
                        f"{', '.join(suite.sizes)}.")
    variants = args.variants or list(suite.variants)
    unknown = [v for v in variants if v not in suite.variants]
    if unknown:
        raise UserError(f"--variants={','.join(unknown)} is not allowed for {args.suite}; "
                        f"choose from {', '.join(suite.variants)}.")
    if args.jobs < 1 or args.steps is not None and args.steps < 1:
        raise UserError("--jobs and --steps are not allowed below 1.")
    if args.seeds is not None and any(item.removeprefix("config.").startswith("seed=")
                                      for item in args.set):
        raise UserError("--set seed=.. is not allowed with --seeds; --seeds sets each run's "
                        "seed.")
    # --steps after --set: it shortens the run whatever --set steps= said
    overrides = config_overrides(args.set) + (() if args.steps is None else schedule(args.steps))
    data = listops_folder(args.data, size)
    runs = (listops_runs(size, variants, data) if args.suite == "listops"
            else (mqar_runs if args.suite == "mqar" else lm_runs)(size, variants))
    runs = at_grid(at_grid(runs, "L", args.lengths, args.suite), "pairs", args.pairs,
                   args.suite)
    named = settings_name(args)
    runs = [with_settings(run, named, overrides) for run in at_seeds(runs, args.seeds)]
    for run in runs:
        check_config(run)
    return size, runs


def settings_name(args) -> str:
    """The --set items and --steps in one order, whatever order they were given in: what
    names a suite's rows beside their variant ("" when neither is given)."""
    items = [item.removeprefix("config.") for item in args.set]
    return ", ".join(sorted(items + ([] if args.steps is None else [f"steps={args.steps}"])))


def with_settings(run: Run, named: str, overrides: tuple[str, ...]) -> Run:
    """The run with the --set and --steps overrides after its own; its row names them, so
    runs of one variant at other settings stay apart in a merged table."""
    row = {**run.row, "settings": named} if named else run.row
    return run._replace(overrides=run.overrides + overrides, row=row)


def listops_folder(data: str | None, size: str) -> str:
    return data or ("data/listops_local" if size == "local" else "data/listops")


def run_config(run: Run) -> ml_collections.ConfigDict:
    """The run's config as `python -m train` reads it (and writes it into its workdir)."""
    try:
        config = load_config_file(run.config)
        for override in run.overrides:
            apply_override(config, override.removeprefix("--config."))
    except UserError as err:
        raise UserError(f"run {run.name}: {err}") from None
    return config


def check_config(run: Run) -> None:
    """The run's config checked before anything starts (a --set naming no field would fail
    every run, one by one)."""
    config = run_config(run)
    try:
        run_spec(config)
    except UserError as err:
        raise UserError(f"run {run.name}: {err}") from None


def check_runs_there_match(runs: list[Run], folder: str) -> None:
    """A run already in `folder` (finished, or cut and to be resumed) was made by the
    settings this command gives it, or a finished one would be reported as this command's.
    Fields one side lacks (one added to the configs since) are not compared."""
    for run in runs:
        workdir = os.path.join(folder, run.name)
        try:
            with open(os.path.join(workdir, CONFIG_FILE)) as f:
                saved = json.load(f)
        except (OSError, ValueError):
            continue
        try:
            there = config_fields(saved)
        except UserError as err:
            raise UserError(f"{workdir} holds a run whose settings this version does not take "
                            f"({err}); give another --out.") from None
        here = config_fields(json.loads(run_config(run).to_json()))
        what = describe_differences(there, here, keys=sorted(set(there) & set(here)))
        if what:
            raise UserError(f"{workdir} holds a run made with other settings ({what}); give "
                            "another --out, or the settings it was made with to resume or "
                            "report it.")


def config_fields(config: dict) -> dict:
    """A config (as JSON) by dotted field name, its attention options resolved: a config file
    lists only the options it sets, so a --set of a default names the same run."""
    options = run_spec(ml_collections.ConfigDict(config)).model.attention_kwargs
    model = {**config["model"], "attention_kwargs": dict(options)}
    return flatten_dict({**config, "model": model}, sep=".")


def main(argv: list[str]) -> None:
    with exit_on_user_error(PROGRAM):
        args = build_parser().parse_args(argv[1:])
        size, runs = chosen_runs(args)
        out = args.out or os.path.join("runs", time.strftime("suite-%Y%m%d-%H%M%S"))
        folder = os.path.join(out, f"{args.suite}_runs")
        check_runs_there_match(runs, folder)
        check_folder_can_be_made(out)
        if args.suite == "listops":  # the arguments are all good: the data may be written
            write_listops_if_missing(listops_folder(args.data, size), size)
        make_output_folder(out)
    metric = SUITES[args.suite].metric
    command_line = " ".join([PROGRAM, *argv[1:]])

    def write(timings: dict) -> str:
        """The results so far (a cut suite keeps the runs that finished)."""
        return write_results(args.suite, size, command_line, out,
                             collect(runs, folder, timings, metric))

    try:
        timings, stopped = run_all(runs, folder, args.jobs, after_each=write)
    except KeyboardInterrupt:
        print(f"\n{PROGRAM}: interrupted at once; the runs in flight keep their last "
              "checkpoints, and the same command resumes them.", file=sys.stderr)
        sys.exit(130)
    print(write(timings))
    if stopped is not None:
        print(f"stopped by {signal.Signals(stopped).name} with {len(runs) - len(timings)} "
              "run(s) unfinished; those started saved where they stopped, and the same "
              "command resumes them.", file=sys.stderr)
        sys.exit(EXIT_CODES[stopped])
    failed = [name for name, t in timings.items() if t["returncode"] != 0]
    if failed:
        print(f"{len(failed)} run(s) failed; their logs are in {folder}", file=sys.stderr)
        sys.exit(1)


def write_results(suite: str, size: str, command_line: str, out: str, rows: list[dict]) -> str:
    """quality_<suite>.json, .md and .png in `out`; returns the markdown."""
    from train import suite_report

    return suite_report.write({"benchmark": f"quality_{suite}", "size": size,
                               "command": command_line, "machine": machine(),
                               "results": rows}, out)


def write_listops_if_missing(data: str, size: str) -> None:
    """LRA's sizes, or for the local suite fewer and shorter examples."""
    from train import listops

    if all(os.path.exists(os.path.join(data, name)) for name in listops.FILES.values()):
        return
    if size == "local":
        counts = {"train": 5000, "val": 500, "test": 500}
        lengths = (listops.LOCAL_SHORTEST, LISTOPS_CONFIG_SIZES["local"][0]["max_len"])
    else:
        counts, lengths = listops.LRA_COUNTS, (MIN_LENGTH, MAX_LENGTH)
    listops.write_splits(data, counts, 0, lengths, flag="--data")


def machine() -> dict:
    # This process only asks for the device's name: it must not take the memory the
    # trainings it starts next need (run_all copied their environment before this).
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax

    return {"device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
            "jax": jax.__version__, "date": time.strftime("%Y-%m-%d")}


if __name__ == "__main__":
    main(sys.argv)
