"""Is it the learnt Linformer projection's start that overfits ListOps, or its being learnt?
Trains the bidirectional Linformer of `configs/listops_linformer.py:local` (k 32, one E
shared by every layer) with its projection learnt (the config has pooled since), as
`python -m train.suite listops --size local --set steps=4000` did for
benchmarks/quality_listops_local{,_pool}_cpu.* (the config's warm-up, logging and
evaluations kept), with its learnt E starting as the mean pooling of projection="pool"
instead of PyTorch's uniform init, and prints each seed's test accuracy, test loss and last
logged training loss.

    PYTHONPATH=. python benchmarks/linformer_pool_init.py OUT SEED [SEED ...]

OUT: a fresh folder for the runs; the ListOps :local data is read from data/listops_local,
written there first if missing, as the suite does.
"""
import json
import os
import sys

import jax.numpy as jnp

from lowrank_jax.attention import linformer
from train.loop import train_and_evaluate
from train.suite import curves, listops_runs, run_config, write_listops_if_missing

STEPS = 4000


def pooling_start(cfg):
    """projection_init's replacement: E starts as the pooling matrix, then is learnt."""
    P = linformer.pooling(cfg.max_len, linformer.slot_span(cfg),
                          linformer.projection_shape(cfg)[-1])
    return lambda key, shape, dtype: jnp.broadcast_to(jnp.asarray(P, dtype), shape)


def main(out: str, seeds: list[int]) -> None:
    linformer.projection_init = pooling_start
    write_listops_if_missing("data/listops_local", "local")
    (run,) = listops_runs("local", ["linformer"], "data/listops_local")
    for seed in seeds:
        config = run_config(run._replace(overrides=(
            *run.overrides, "--config.model.attention_kwargs.projection=learnt",
            f"--config.seed={seed}", f"--config.steps={STEPS}")))
        workdir = os.path.join(out, f"seed{seed}")
        train_and_evaluate(config, workdir)
        found = curves(workdir)
        last = found["eval"][-1]
        print(json.dumps({"seed": seed, "test_accuracy": last["test_accuracy"],
                          "test_loss": round(last["test_loss"], 3),
                          "train_loss": round(found["train"][-1][1], 3)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2:]])
