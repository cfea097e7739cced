"""A byte-level GPT with seed 000's low-rank QK attention (scores in r = d_head/4
dimensions through one shared U) on the default corpus (the Python standard library).
    python -m train --config configs/lm_lowrank_qk.py
    python -m train --config configs/lm_lowrank_qk.py:local
"""
from configs.base import make_lm_config


def attention(model: dict) -> dict:
    d_head = model["d_model"] // model["n_heads"]
    return dict(attention="lowrank_qk", attention_kwargs={"r": d_head // 4})


def get_config(arg: str = ""):
    return make_lm_config(arg, attention, attention)
