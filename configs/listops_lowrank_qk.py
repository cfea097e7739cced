"""ListOps with low-rank QK attention (scores in r = d_head/4 dimensions) in an encoder.
    python -m train --config configs/listops_lowrank_qk.py[:small|:local]
(configs/listops_standard.py says how to write the data first.)
"""
from configs.base import make_listops_config


def get_config(arg: str = ""):
    return make_listops_config(arg, lambda d_head: dict(
        attention="lowrank_qk", attention_kwargs={"r": d_head // 4}))
