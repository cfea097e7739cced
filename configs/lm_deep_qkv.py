"""A byte-level GPT with seed 001's deep-QKV attention (factorized Q, K, V of rank d_head/2)
on the default corpus (the Python standard library).
    python -m train --config configs/lm_deep_qkv.py
    python -m train --config configs/lm_deep_qkv.py:local
"""
from configs.base import head_sized, make_lm_config

ATTENTION = head_sized("deep_qkv", "rank", 2)


def get_config(arg: str = ""):
    return make_lm_config(arg, ATTENTION, ATTENTION)
