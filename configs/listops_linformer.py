"""ListOps with the bidirectional Linformer (keys and values compressed along the
sequence to k = 256 rows, LRA's setting; 32 in the local run) in an encoder, E = F fixed
to mean pooling over contiguous segments (projection="pool", not the seed's learnt E).
A learnt E overfits ListOps at :small: per-layer E and F (sharing=headwise, 2.0M
parameters at 2,000 tokens against the rest of the model's 0.2M) reach 32.30% at 5,000
steps (one seed, H200); one learnt E for every layer (sharing=layerwise) 37.38% at 5,000
steps and 30.90% at 16,000, where pooling reaches 39.80% (two seeds each, H100; README
"ListOps: classification"). `sharing` stays as those runs had it; pooling has no weights
to share.
    python -m train --config configs/listops_linformer.py[:small|:local]
    python -m train --config configs/listops_linformer.py:small --config.model.attention_kwargs.projection=learnt
(the second is the seed's learnt projection; configs/listops_standard.py says how to
write the data first.)
"""
from configs.base import make_listops_config


def get_config(arg: str = ""):
    k = 32 if arg == "local" else 256
    return make_listops_config(arg, lambda d_head: dict(
        attention="linformer", attention_kwargs={"causal": False, "k": k,
                                                 "sharing": "layerwise", "projection": "pool"}))
