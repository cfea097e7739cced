"""A byte-level GPT with seed 000's low-rank QK attention (scores in r = d_head/4
dimensions through one shared U) on the default corpus (the Python standard library).
    python -m train --config configs/lm_lowrank_qk.py
    python -m train --config configs/lm_lowrank_qk.py:local
"""
from configs.base import head_sized, make_lm_config

ATTENTION = head_sized("lowrank_qk", "r", 4)


def get_config(arg: str = ""):
    return make_lm_config(arg, ATTENTION, ATTENTION)
