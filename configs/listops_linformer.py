"""ListOps with the bidirectional Linformer (keys and values compressed along the
sequence to k = 256 rows, LRA's setting; 32 in the local run) in an encoder.
    python -m train --config configs/listops_linformer.py[:small|:local]
(configs/listops_standard.py says how to write the data first.)
"""
from configs.base import make_listops_config


def get_config(arg: str = ""):
    k = 32 if arg == "local" else 256
    return make_listops_config(arg, lambda d_head: dict(
        attention="linformer", attention_kwargs={"causal": False, "k": k}))
