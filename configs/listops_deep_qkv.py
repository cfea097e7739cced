"""ListOps with deep-QKV attention (each head's Q, K, V weights built from rank d_head/4
factors) in an encoder, with `unit_gate` on: under the seed's own gate
(--config.model.attention_kwargs.unit_gate=False) attention starts exactly uniform and the
model never leaves the labels' prior (19.75% at :small on a GPU; 36.52% with the unit gate,
README "ListOps: classification").
    python -m train --config configs/listops_deep_qkv.py[:small|:local]
(configs/listops_standard.py says how to write the data first.)
"""
from configs.base import make_listops_config


def get_config(arg: str = ""):
    return make_listops_config(arg, lambda d_head: dict(
        attention="deep_qkv", attention_kwargs={"rank": d_head // 4, "unit_gate": True}))
