"""Seed 003 (lumenspark): a causal Linformer LM with factorized FFNs and RMSNorm, on text.

The seed's defaults: vocab 50257 (a byte-level BPE, here trained on the corpus; point
--config.data.tokenizer_path at GPT-2's tokenizer.json to use that one), embed 512,
depth 6, 4 heads, sequence 512, dropout 0.1, k 128 (here 8 blocks of 64 tokens, 16 slots
each), LowRankLinear FFN with GELU, RMSNorm, learned token and position embeddings.
The corpus is the default (the Python standard library):
    python -m train --config configs/lumenspark.py
    python -m train --config configs/lumenspark.py:local   # byte-level and small, for a CPU
"""
from configs.base import make_lm_config

SEED_MODEL = dict(
    max_len=512, d_model=512, n_layers=6, n_heads=4, d_ff=2048,
    attention="linformer",
    attention_kwargs={"causal": True, "k": 128, "block_size": 64, "sharing": "headwise"},
    norm="rmsnorm", ffn="lowrank", ffn_rank=128, activation="gelu", dropout=0.1,
    use_bias=False,
)
LOCAL_MODEL = {**SEED_MODEL, **dict(max_len=128, d_model=128, n_layers=2, n_heads=4, d_ff=512,
                                    ffn_rank=32, dropout=0.0,
                                    attention_kwargs={"causal": True, "k": 32, "block_size": 16})}
SEED_VOCAB = 50257


def get_config(arg: str = ""):
    config = make_lm_config(arg, SEED_MODEL, LOCAL_MODEL, lr=3e-4 if arg == "" else 2e-3)
    if arg == "":
        config.data.tokenizer, config.data.vocab_size = "bpe", SEED_VOCAB
    return config
