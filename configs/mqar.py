"""Multi-query associative recall (Zoology's MQAR): 2 layers, d_model 128, vocabulary 8192,
rows of 256 tokens with 16 key-value pairs; the loss and the accuracy count the answers
alone. One config per causal variant, with a CPU-sized local form:
    python -m train --config configs/mqar.py:standard --workdir runs/mqar_standard
    python -m train --config configs/mqar.py:linformer --config.model.max_len=512 \
        --config.mqar.num_pairs=64
    python -m train --config configs/mqar.py:standard,local      # a minute on a CPU
"""
import ml_collections

from configs.base import make_config
from lowrank_jax.attention import ATTENTIONS

# Each variant sized by the model: a quarter of the head dim for the low-rank ones; the
# causal Linformer in blocks of an eighth of the row, each kept as a quarter of its length.
ATTENTION_KWARGS = {
    "standard": lambda d_head, max_len: {},
    "deep_qkv": lambda d_head, max_len: {"rank": d_head // 4, "unit_gate": False},  # the seed's
    "lowrank_qk": lambda d_head, max_len: {"r": d_head // 4},
    "linformer": lambda d_head, max_len: {"causal": True, "block_size": max_len // 8,
                                          "block_slots": max_len // 32},
}
SIZES = {  # model, training, task
    "": (dict(vocab_size=8192, max_len=256, d_model=128, n_layers=2, n_heads=2, d_ff=256,
              dtype="bfloat16"),
         # benchmarks/mqar_recipe_h200.md: batch 256 at lr 3e-3 on a 10,000-step schedule
         # left the plateau by step 2,000 at 64 and 256 tokens; batch 64 at lr 1e-3 stayed at
         # chance for 4,000 steps, and a 4,000-step schedule left it in some cells only.
         dict(steps=10_000, batch_size=256, lr=3e-3, warmup_steps=200, log_every=500,
              eval_every=1000, checkpoint_every=1000),
         dict(num_pairs=16, eval_examples=1024, eval_batch_size=64)),
    "local": (dict(vocab_size=256, max_len=64, d_model=32, n_layers=2, n_heads=2, d_ff=64),
              dict(steps=600, batch_size=32, lr=3e-3, warmup_steps=50, log_every=100,
                   eval_every=300, checkpoint_every=300),
              dict(num_pairs=4, eval_examples=256, eval_batch_size=64)),
}


def get_config(arg: str = "standard"):
    attention, _, size = arg.partition(",")
    if attention not in ATTENTIONS or size not in SIZES:
        raise ValueError(f"unknown argument {arg!r}; give a variant ({', '.join(ATTENTIONS)})"
                         ", optionally followed by ',local'.")
    model, training, task = SIZES[size]
    sized = ATTENTION_KWARGS.get(attention, lambda d_head, max_len: {})  # else its defaults
    kwargs = sized(model["d_model"] // model["n_heads"], model["max_len"])
    config = make_config("mqar", {**model, "attention": attention, "attention_kwargs": kwargs},
                         weight_decay=0.1, **training)
    config.mqar = ml_collections.ConfigDict(task)
    return config
