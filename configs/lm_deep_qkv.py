"""A byte-level GPT with seed 001's deep-QKV attention (factorized Q, K, V of rank d_head/2)
on the default corpus (the Python standard library).
    python -m train --config configs/lm_deep_qkv.py
    python -m train --config configs/lm_deep_qkv.py:local
"""
from configs.base import make_lm_config


def attention(model: dict) -> dict:
    d_head = model["d_model"] // model["n_heads"]
    return dict(attention="deep_qkv", attention_kwargs={"rank": d_head // 2})


def get_config(arg: str = ""):
    return make_lm_config(arg, attention, attention)
