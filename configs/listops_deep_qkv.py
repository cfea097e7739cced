"""ListOps with deep-QKV attention (each head's Q, K, V weights built from rank d_head/4
factors) in an encoder; the gate as the seed has it (--config.model.attention_kwargs.unit_gate=True
scales it to start W at its base's scale).
    python -m train --config configs/listops_deep_qkv.py[:small|:local]
(configs/listops_standard.py says how to write the data first.)
"""
from configs.base import make_listops_config


def get_config(arg: str = ""):
    return make_listops_config(arg, lambda d_head: dict(
        attention="deep_qkv", attention_kwargs={"rank": d_head // 4, "unit_gate": False}))
