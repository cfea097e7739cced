"""python -m train.analyze {synthetic,model} ...

Measures seed 004's question: whether softmax(Q K^T) V can be replaced by a softmax over
e fitted keys, softmax(Q K_hat^T) V_hat (a Linformer with e keys), and at what error.

synthetic [--d 64] [--l 400] [--e 200] [--psd-ratio 1] [--seed 0] [--float32] [--out DIR]
    The notebook's inputs, in float64 (--float32: single precision, as the notebook). --e, --psd-ratio and --seed take comma-separated lists; one of
    each prints every stage's error, several print a table and, with --out, write
    sweep.csv, sweep.json and PNG plots of the error against e.
model --workdir DIR [--batch 4] [--target 0.1] [--ranks 1,2,...] [--block-size B]
      [--seed 0] [--out DIR]
    Every layer's and head's attention from the newest checkpoint in DIR, on --batch
    windows of its training data: the singular-value spectrum; the smallest e whose error
    reaches --target, by truncation alone and through the whole pipeline; and a lower
    bound on the slots c per block a causal Linformer with blocks of B tokens needs, per
    head and per layer (see lowrank_jax.analysis.heads). Writes heads.csv, summary.json and attention_maps.png,
    spectra.png, errors.png to --out (default DIR/analysis).
"""
from __future__ import annotations

import csv
import json
import os
import sys

import jax
import numpy as np
from tqdm import tqdm

from lowrank_jax.analysis import softmax_lowrank as sl
from lowrank_jax.analysis.heads import REPORTED, FinishedBlocks, analyse_head, finished_blocks
from lowrank_jax.attention import weights_are_per_token
from lowrank_jax.attention.core import ATTENTION_QUERIES, ATTENTION_VALUES, ATTENTION_WEIGHTS
from lowrank_jax.attention.linformer import default_block_size
from lowrank_jax.model import GPT, attention_intermediates
from lowrank_jax.training.config import MAX_SEED
from train.cli import Parser, make_output_folder, number_list
from train.errors import UserError, exit_on_user_error
from train.plots import Curve, plot_curves, plot_log_grid, plot_spectra
from train.pretrained import language_model, load_latest

PROGRAM = "python -m train.analyze"
MAX_LENGTH = 4096
MAX_BATCH = 256


def parse_args(argv: list[str]):
    parser = Parser(prog=PROGRAM, doc=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    synthetic = commands.add_parser("synthetic", help="the notebook's synthetic Q, K, V")
    synthetic.add_argument("--d", type=int, default=64, help="width of Q and K")
    synthetic.add_argument("--l", type=int, default=400, help="sequence length (>= d)")
    synthetic.add_argument("--e", type=number_list(int), default=[200], help="ranks, e.g. 8,32,200")
    synthetic.add_argument("--psd-ratio", type=number_list(float), default=[1.0],
                           help="in [0, 1]: 1 makes Q = K positive semi-definite, 0 pure noise")
    synthetic.add_argument("--seed", type=number_list(int), default=[0], help="seeds, e.g. 0,1,2")
    synthetic.add_argument("--float32", action="store_true",
                           help="every stage in single precision, as the notebook (default float64)")
    synthetic.add_argument("--out", help="folder for sweep.csv, sweep.json and the plots")
    model = commands.add_parser("model", help="the attention of a trained model")
    model.add_argument("--workdir", required=True, help="the folder a training run wrote")
    model.add_argument("--batch", type=int, default=4, help="sequences to average over")
    model.add_argument("--target", type=float, default=0.1,
                       help="relative error that counts as good enough, in (0, 1)")
    model.add_argument("--ranks", type=number_list(int), default=None,
                       help="ranks to run the pipeline at (default: about 32 from 1 to the length)")
    model.add_argument("--block-size", type=int, default=None,
                       help="causal Linformer block size to assess (default: the Linformer's "
                            "default for the length)")
    model.add_argument("--seed", type=int, default=0, help="which training windows")
    model.add_argument("--out", help="output folder (default WORKDIR/analysis)")
    args = parser.parse_args(argv[1:])
    check_synthetic(args) if args.command == "synthetic" else check_model(args)
    return args


def check_synthetic(args) -> None:
    if args.d < 1:
        raise UserError(f"--d={args.d} is not allowed; it must be >= 1.")
    if args.l < args.d:
        raise UserError(f"--l={args.l} is not allowed with --d={args.d}; the notebook needs l >= d.")
    if args.l > MAX_LENGTH:
        raise UserError(f"--l={args.l} is not allowed; it must be at most {MAX_LENGTH} (the "
                        "pipeline holds several l x l float64 matrices and their SVD).")
    bad = [e for e in args.e if not 1 <= e <= args.l]
    if bad:
        raise UserError(f"--e={bad[0]} is not allowed; every e must be from 1 to --l={args.l}.")
    bad = [p for p in args.psd_ratio if not 0 <= p <= 1]
    if bad:
        raise UserError(f"--psd-ratio={bad[0]} is not allowed; it must be in [0, 1].")
    bad = [seed for seed in args.seed if not 0 <= seed <= MAX_SEED]
    if bad:
        raise UserError(f"--seed={bad[0]} is not allowed; seeds go from 0 to {MAX_SEED}.")
    # A repeated value would be counted twice; the plots draw e in ascending order.
    args.e = sorted(set(args.e))
    args.psd_ratio, args.seed = list(dict.fromkeys(args.psd_ratio)), list(dict.fromkeys(args.seed))


def check_model(args) -> None:
    if not 1 <= args.batch <= MAX_BATCH:
        raise UserError(f"--batch={args.batch} is not allowed; it must be from 1 to {MAX_BATCH} "
                        "(each sequence costs an SVD and a rank sweep per head).")
    if not 0 <= args.seed <= MAX_SEED:
        raise UserError(f"--seed={args.seed} is not allowed; seeds go from 0 to {MAX_SEED}.")
    if not 0 < args.target < 1:
        raise UserError(f"--target={args.target} is not allowed; it must be in (0, 1).")
    if args.ranks is not None and min(args.ranks) < 1:
        raise UserError(f"--ranks={min(args.ranks)} is not allowed; every rank must be >= 1.")


# ---- synthetic ---------------------------------------------------------------------------

STAGE_NOTES = {
    "truncation": "rank-e SVD U S D against A",
    "offset_fit": "(U S + offset) M_offset against U S",
    "a_p": "A_p against A",
    "k_hat_residual": "Q K_hat^T against log(U S + offset): the overdetermined fit",
    "a_hat_prime": "softmax(Q K_hat^T) against A_hat",
    "scale_mismatch": "mean |log row scale of exp(Q K_hat^T) - log r|",
    "a_pp": "A_pp against A",
    "out_p": "out_p against out",
    "out_pp": "out_pp against out",
    "out_pp_mean_row_l2": "the notebook's number: mean over rows of ||out - out_pp||",
}


def run_synthetic(args) -> None:
    if args.out:
        make_output_folder(args.out)
    dtype = np.float32 if args.float32 else np.float64
    rows = sl.synthetic_sweep(args.d, args.l, args.e, args.psd_ratio, args.seed, dtype)
    print(f"synthetic Q, K, V: d {args.d}, l {args.l} ({np.dtype(dtype).name}; relative "
          "Frobenius errors unless named otherwise)")
    if len(rows) == 1:
        row = rows[0]
        print(f"e {row['rank']}, psd_ratio {row['psd_ratio']:g}, seed {row['seed']}:")
        for name, note in STAGE_NOTES.items():
            print(f"  {name:<20} {row[name]:.4g}   {note}")
    else:
        print_sweep_table(rows, args.seed)
    if args.out:
        write_sweep(args.out, rows, args)


def sweep_groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    """(psd_ratio, rank) -> that point's rows, one per seed."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["psd_ratio"], row["rank"]), []).append(row)
    return groups


def print_sweep_table(rows: list[dict], seeds: list[int]) -> None:
    print(f"mean over seeds {','.join(map(str, seeds))} [min, max]:")
    print(f"  {'psd_ratio':>9} {'e':>5} {'truncation':>10} {'out_pp':>28} {'out_pp_mean_row_l2':>19}")
    for (psd_ratio, rank), group in sweep_groups(rows).items():
        out_pp = [r["out_pp"] for r in group]
        row_l2 = np.mean([r["out_pp_mean_row_l2"] for r in group])
        truncation = np.mean([r["truncation"] for r in group])
        spread = f"{np.mean(out_pp):.3g} [{min(out_pp):.3g}, {max(out_pp):.3g}]"
        print(f"  {psd_ratio:>9g} {rank:>5} {truncation:>10.3g} {spread:>28} {row_l2:>19.3g}")


def write_sweep(out: str, rows: list[dict], args) -> None:
    write_csv(os.path.join(out, "sweep.csv"), rows)
    with open(os.path.join(out, "sweep.json"), "w") as f:
        json.dump({"d": args.d, "l": args.l, "float32": args.float32, "rows": rows}, f, indent=1)
    written = ["sweep.csv", "sweep.json"]
    if len(args.e) > 1:
        groups = sweep_groups(rows)
        for name, label in (("out_pp", "output error ||out_pp - out|| / ||out||"),
                            ("truncation", "truncation error ||U S D - A|| / ||A||")):
            curves = []
            for psd_ratio in args.psd_ratio:
                per_rank = [[r[name] for r in g] for (p, _), g in groups.items() if p == psd_ratio]
                curves.append(Curve(f"psd_ratio {psd_ratio:g}", np.array(args.e),
                                    np.mean(per_rank, axis=1),
                                    (np.min(per_rank, axis=1), np.max(per_rank, axis=1))))
            file = f"sweep_{name}.png"
            plot_curves(os.path.join(out, file), curves, xlabel="e (rank)", ylabel=label,
                        title=f"seed 004 on synthetic inputs (d {args.d}, l {args.l}; "
                              f"{len(args.seed)} seeds, band: min-max)")
            written.append(file)
    print(f"wrote {', '.join(written)} to {out}")


def write_csv(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# ---- a trained model ---------------------------------------------------------------------

def attention_of(run, batch: int, seed: int):
    """Tokens (B, L) from the run's task and each layer's sown (weights, scaled queries, values)."""
    cfg = run.model_cfg
    if not weights_are_per_token(cfg):
        raise UserError(f"the model has {cfg.attention!r} attention, whose weights are over "
                        "compressed slots, not tokens; analyse a model with per-token attention "
                        "(standard, deep_qkv or lowrank_qk).")
    rows = run.task.make_batch(jax.random.key(seed), batch, run.task.data)
    tokens_BL = rows[:, :cfg.max_len]
    _, layers = jax.jit(lambda p, t: attention_intermediates(GPT(cfg), p, t))(run.params, tokens_BL)
    layers = [tuple(np.asarray(layer[name], np.float64)
                    for name in (ATTENTION_WEIGHTS, ATTENTION_QUERIES, ATTENTION_VALUES))
              for layer in layers]
    for i, arrays in enumerate(layers):
        if not all(np.isfinite(x).all() for x in arrays):
            raise UserError(f"the attention weights of layer {i} are not finite (did training "
                            "diverge?); analyse a checkpoint whose loss is finite.")
    return jax.device_get(tokens_BL), layers


def check_lengths(args, length: int, width: int) -> tuple[list[int], int]:
    """The ranks to sweep and the block size, checked against the model's length L."""
    if length < width:
        raise UserError(f"the model reads {length} tokens, fewer than its query width {width}; "
                        "the K_hat fit needs at least as many tokens as query dimensions (l >= d).")
    ranks = sorted(set(args.ranks)) if args.ranks else sl.rank_grid(length)
    if ranks[-1] > length:
        raise UserError(f"--ranks={ranks[-1]} is not allowed; ranks go up to the sequence "
                        f"length {length}.")
    block = default_block_size(length) if args.block_size is None else args.block_size
    if not (1 <= block <= length // 2 and length % block == 0):
        raise UserError(f"--block-size={block} is not allowed; it must divide the sequence "
                        f"length {length} into at least two blocks.")
    return ranks, block


def run_model(args) -> None:
    run = language_model(load_latest(args.workdir), args.workdir)
    tokens_BL, layers = attention_of(run, args.batch, args.seed)
    length = tokens_BL.shape[1]
    ranks, block = check_lengths(args, length, layers[0][1].shape[-1])
    out = args.out or os.path.join(args.workdir, "analysis")
    make_output_folder(out)   # after the checks: a refused run leaves no empty folder
    heads = {}
    progress = tqdm(total=len(layers) * layers[0][0].shape[1], unit="head", disable=None,
                    desc="analysing")
    for layer, (a_BHLL, q_BLHD, v_BLHD) in enumerate(layers):
        for head in range(a_BHLL.shape[1]):
            heads[layer, head] = analyse_head(a_BHLL[:, head], q_BLHD[:, :, head],
                                              v_BLHD[:, :, head], ranks, block)
            progress.update()
    progress.close()
    # sharing="headwise": every head of a layer shares the layer's projections.
    headwise = [finished_blocks(a_BHLL.reshape(-1, length, length), block)
                for a_BHLL, _, _ in layers]
    summary = summarise(heads, headwise, ranks, args.target)
    print_model_table(run, args, length, block, summary)
    write_model(out, run, args, block, layers, heads, ranks, summary)


def smallest_count(errors, target: float) -> int:
    """The smallest n whose error (entry n - 1) meets the target: every n from 1 is listed."""
    return sl.smallest_rank(range(1, len(errors) + 1), errors, target)


def summarise(heads: dict, headwise: list[FinishedBlocks], ranks: list[int], target: float
              ) -> dict:
    rows = []
    for (layer, head), h in heads.items():
        best = int(np.argmin(h.errors["out_pp"]))
        rows.append({
            "layer": layer, "head": head,
            "top_singular_share": float(h.spectrum_L[0] ** 2 / (h.spectrum_L ** 2).sum()),
            "e_truncation": smallest_count(h.truncation_L, target),
            "e_pipeline": sl.smallest_rank(ranks, h.errors["out_pp"], target),
            "best_out_pp": float(h.errors["out_pp"][best]), "best_out_pp_rank": ranks[best],
            "finished_share": h.finished.share, "slots_per_block": smallest_count(h.finished.slot_errors_b, target),
            "slot_errors": h.finished.slot_errors_b.tolist()})
    layers = [{"layer": i, "finished_share": f.share, "slots_per_block": smallest_count(f.slot_errors_b, target),
               "slot_errors": f.slot_errors_b.tolist()} for i, f in enumerate(headwise)]
    return {"heads": rows, "headwise": layers}


def print_model_table(run, args, length: int, block: int, summary: dict) -> None:
    heads = summary["heads"]
    print(f"{args.workdir} at step {run.step} ({run.model_cfg.attention} attention, "
          f"{args.batch} sequences of {length} tokens); error target {args.target:g}:")
    print(f"  {'layer':>5} {'head':>4} {'sigma1^2 share':>14} {'e truncation':>12} "
          f"{'e pipeline':>10} {'best out_pp (e)':>16} {f'finished share b={block}':>20} "
          f"{'slots c >=':>10}")
    for row in heads:
        e_pipe = "-" if row["e_pipeline"] is None else str(row["e_pipeline"])
        best = f"{row['best_out_pp']:.3g} ({row['best_out_pp_rank']})"
        print(f"  {row['layer']:>5} {row['head']:>4} {row['top_singular_share']:>14.3f} "
              f"{row['e_truncation']:>12} {e_pipe:>10} {best:>16} {row['finished_share']:>20.3f} "
              f"{row['slots_per_block']:>10}")
    e_trunc = [row["e_truncation"] for row in heads]
    print(f"  a rank-e factor of the attention (e keys, exact values): e >= {max(e_trunc)} for "
          f"every head (median {np.median(e_trunc):g}) of {length}")
    reached = [row["e_pipeline"] for row in heads if row["e_pipeline"] is not None]
    best = min(heads, key=lambda row: row["best_out_pp"])
    print(f"  seed 004's fitted keys: {len(reached)} of {len(heads)} heads reach the target"
          + (f" (largest e {max(reached)})" if reached else "")
          + f"; the best output error is {best['best_out_pp']:.3g} (layer {best['layer']} head "
          f"{best['head']}, e {best['best_out_pp_rank']})")
    per_head = [row["slots_per_block"] for row in heads]
    per_layer = ", ".join(str(layer["slots_per_block"]) for layer in summary["headwise"])
    print(f"  a causal Linformer with blocks of {block} needs at least c slots per block: "
          f"{max(per_head)} with its own projections per head (sharing none; median head "
          f"{np.median(per_head):g}), by layer {per_layer} with one per layer (headwise)")


def write_model(out, run, args, block, layers, heads, ranks, summary) -> None:
    rows = [{"layer": layer, "head": head, "rank": rank,
             **{name: float(h.errors[name][i]) for name in REPORTED}}
            for (layer, head), h in heads.items() for i, rank in enumerate(ranks)]
    write_csv(os.path.join(out, "heads.csv"), rows)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"workdir": args.workdir, "step": run.step, "attention": run.model_cfg.attention,
                   "batch": args.batch, "seed": args.seed, "target": args.target, "ranks": ranks,
                   "block_size": block, **summary,
                   "spectra": {f"{l}/{h}": a.spectrum_L.tolist() for (l, h), a in heads.items()},
                   "truncation": {f"{l}/{h}": a.truncation_L.tolist() for (l, h), a in heads.items()}},
                  f, indent=1)
    labels = [f"layer {layer} head {head}" for layer, head in heads]
    n_heads = layers[0][0].shape[1]
    plot_log_grid(os.path.join(out, "attention_maps.png"),
                  [[a_BHLL[0, head] for head in range(n_heads)] for a_BHLL, _, _ in layers],
                  row_labels=[f"layer {i}" for i in range(len(layers))],
                  col_labels=[f"head {h}" for h in range(n_heads)], floor=1e-6, colorbar="weight",
                  title=f"attention weights, sequence 0 of {args.batch} (query down, key across)")
    plot_spectra(os.path.join(out, "spectra.png"), np.stack([h.spectrum_L for h in heads.values()]),
                 labels=labels, title=f"singular values of each head's attention "
                                      f"(mean over {args.batch} sequences)")
    plot_curves(os.path.join(out, "errors.png"),
                [Curve(label, np.array(ranks), h.errors["out_pp"])
                 for label, h in zip(labels, heads.values())],
                title="seed 004 pipeline on each head: output error against e",
                xlabel="e (fitted keys)", ylabel="||out_pp - out|| / ||out||", target=args.target)
    print(f"wrote heads.csv, summary.json, attention_maps.png, spectra.png, errors.png to {out}")


def main(argv: list[str]) -> None:
    with exit_on_user_error(PROGRAM):
        args = parse_args(argv)
        run_synthetic(args) if args.command == "synthetic" else run_model(args)


if __name__ == "__main__":
    main(sys.argv)
