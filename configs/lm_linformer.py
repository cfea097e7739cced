"""A byte-level GPT with the causal Linformer (block-diagonal E: each finished block of b
tokens compressed to c slots) on the default corpus (the Python standard library).
    python -m train --config configs/lm_linformer.py       # 8 blocks of 64 -> 16 slots each
    python -m train --config configs/lm_linformer.py:local # 8 blocks of 16 -> 4 slots each
"""
from configs.base import make_lm_config

MODEL = dict(attention="linformer",
             attention_kwargs={"causal": True, "block_size": 64, "block_slots": 16})
LOCAL_MODEL = dict(attention="linformer",
                   attention_kwargs={"causal": True, "block_size": 16, "block_slots": 4})


def get_config(arg: str = ""):
    return make_lm_config(arg, MODEL, LOCAL_MODEL)
