"""Does deep_qkv learn ListOps on long rows once its weights start at a standard
projection's scale? Trains the `:small` ListOps model (float32, rows up to 512 tokens,
600 steps) with deep_qkv's free base weights drawn GAIN times larger than the seed's
Xavier init (GAIN 1: the seed's), or standard attention for reference.

    python -m train.listops --out /tmp/lo300 --lengths 300,500 --num-train 2000 \\
        --num-val 200 --num-test 200
    PYTHONPATH=. python benchmarks/deep_qkv_base_gain.py /tmp/lo300 WORKDIR GAIN
    PYTHONPATH=. python benchmarks/deep_qkv_base_gain.py /tmp/lo300 WORKDIR standard
"""
import importlib
import sys

from flax import linen as nn

from lowrank_jax.attention import deep_qkv
from train.loop import train_and_evaluate


def main(data: str, workdir: str, gain: str) -> None:
    variant = "standard" if gain == "standard" else "deep_qkv"
    if variant == "deep_qkv":
        seed_init = nn.initializers.xavier_uniform(in_axis=1, out_axis=0)
        # head_weight reads the module's base_init when it builds its parameters.
        deep_qkv.base_init = lambda key, shape, dtype=None: float(gain) * seed_init(key, shape,
                                                                                   dtype)
    config = importlib.import_module(f"configs.listops_{variant}").get_config("small")
    config.update(dict(steps=600, warmup_steps=60, log_every=100, eval_every=300,
                       checkpoint_every=600))
    config.model.update(dict(max_len=512, dtype="float32"))
    config.listops.path = data
    print(train_and_evaluate(config, workdir)["eval"])


if __name__ == "__main__":
    main(*sys.argv[1:])
