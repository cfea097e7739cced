"""Seed 003 (lumenspark): a causal Linformer LM with factorized FFNs and RMSNorm.

The seed's defaults: vocab 50257, embed 512, depth 6, 4 heads, sequence 512, dropout 0.1,
k 128 (here 8 blocks of 64 tokens, 16 slots each), LowRankLinear FFN with GELU, RMSNorm,
learned token and position embeddings. Until a text corpus lands it trains on random tokens:
    python -m train --config configs/lumenspark.py
    python -m train --config configs/lumenspark.py:local     # small, for a CPU
"""
from configs.base import make_config

SEED_MODEL = dict(
    vocab_size=50257, max_len=512, d_model=512, n_layers=6, n_heads=4, d_ff=2048,
    attention="linformer",
    attention_kwargs={"causal": True, "k": 128, "block_size": 64, "sharing": "headwise"},
    norm="rmsnorm", ffn="lowrank", ffn_rank=128, activation="gelu", dropout=0.1,
    use_bias=False,
)
LOCAL_MODEL = dict(vocab_size=256, max_len=128, d_model=64, n_layers=2, n_heads=4, d_ff=256,
                   ffn_rank=16, attention_kwargs={"causal": True, "k": 32, "block_size": 16})


def get_config(arg: str = ""):
    if arg not in ("", "local"):
        raise ValueError(f"unknown argument {arg!r}; use configs/lumenspark.py or :local.")
    model = {**SEED_MODEL, **(LOCAL_MODEL if arg else {})}
    steps = 300 if arg else 5000
    return make_config("random_tokens", model, steps=steps, batch_size=16, lr=3e-4,
                       warmup_steps=steps // 10, log_every=steps // 10, eval_every=steps,
                       checkpoint_every=steps, cpu_single_thread=bool(arg))
