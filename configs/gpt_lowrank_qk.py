"""Seed 000: a GPT whose queries and keys pass through one shared U (d_k x r).

The seed's model: post-LN blocks, ReLU FFN with biases, d_model 512, 6 layers, 8 heads,
d_ff 2048, r 64, max_len 512, an untied output projection with bias. `get_config(ARG)`:
    python -m train --config configs/gpt_lowrank_qk.py:abc      # the ABC sorting task
    python -m train --config configs/gpt_lowrank_qk.py:random   # random tokens, vocab 30000
    python -m train --config configs/gpt_lowrank_qk.py:abc_local     # small, for a CPU
    python -m train --config configs/gpt_lowrank_qk.py:random_local
"""
from configs.base import make_config
from lowrank_jax.tasks import abc_sort

SEED_MODEL = dict(
    max_len=512, d_model=512, n_layers=6, n_heads=8, d_ff=2048,
    attention="lowrank_qk", attention_kwargs={"r": 64},
    norm_position="post", activation="relu", use_bias=True, tie_embeddings=False,
)
LOCAL_MODEL = dict(max_len=64, d_model=64, n_layers=2, n_heads=4, d_ff=128,
                   attention_kwargs={"r": 8})
TASKS = {"abc": ("abc_sort", abc_sort.VOCAB_SIZE), "random": ("random_tokens", 30000)}


def get_config(arg: str = "abc"):
    name, _, local = arg.partition("_")
    if name not in TASKS or local not in ("", "local"):
        raise ValueError(f"unknown argument {arg!r}; use abc, random, abc_local or random_local.")
    task, vocab_size = TASKS[name]
    model = {**SEED_MODEL, "vocab_size": vocab_size, **(LOCAL_MODEL if local else {})}
    if local and task == "random_tokens":
        model["vocab_size"] = 256
    steps = 300 if local else 3000
    return make_config(task, model, steps=steps, batch_size=32, lr=3e-4,
                       warmup_steps=steps // 10, log_every=steps // 10, eval_every=steps,
                       checkpoint_every=steps, cpu_single_thread=bool(local))
