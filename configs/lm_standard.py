"""A byte-level GPT with standard softmax attention on the default corpus (the Python
standard library): the baseline the low-rank variants are compared with.
    python -m train --config configs/lm_standard.py              # GPU-sized
    python -m train --config configs/lm_standard.py:local        # minutes on a CPU
"""
from configs.base import make_lm_config

ATTENTION = dict(attention="standard", attention_kwargs={})


def get_config(arg: str = ""):
    return make_lm_config(arg, ATTENTION, ATTENTION)
