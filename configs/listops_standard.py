"""ListOps with standard softmax attention in an encoder: the baseline.
    python -m train.listops --out data/listops          # LRA's 96,000 / 2,000 / 2,000
    python -m train --config configs/listops_standard.py        # LRA's budget
    python -m train --config configs/listops_standard.py:small  # 2 layers, d 64
    python -m train --config configs/listops_standard.py:local  # a CPU, short examples:
        # first python -m train.listops --out data/listops_local --lengths 16,128
"""
from configs.base import make_listops_config


def get_config(arg: str = ""):
    return make_listops_config(arg, lambda d_head: dict(attention="standard",
                                                        attention_kwargs={}))
