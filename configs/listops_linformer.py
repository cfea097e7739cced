"""ListOps with the bidirectional Linformer (keys and values compressed along the
sequence to k = 256 rows, LRA's setting; 32 in the local run) in an encoder, one projection
shared by every layer, key and value (the paper's layerwise sharing): per-layer E and F
(sharing=headwise) hold 2.0M parameters at 2,000 tokens against the rest of the :small
model's 0.2M and overfit (32.30% at :small on a GPU; 37.38% layerwise, README "ListOps:
classification").
    python -m train --config configs/listops_linformer.py[:small|:local]
(configs/listops_standard.py says how to write the data first.)
"""
from configs.base import make_listops_config


def get_config(arg: str = ""):
    k = 32 if arg == "local" else 256
    return make_listops_config(arg, lambda d_head: dict(
        attention="linformer", attention_kwargs={"causal": False, "k": k,
                                                 "sharing": "layerwise"}))
