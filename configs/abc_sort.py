"""Seed 001: the ABC sorter with deep-QKV attention (E=6, H=2, r=3, T=7, one block, tied head).

The default of `python -m train`:
    python -m train --config configs/abc_sort.py --workdir runs/abc_sort
Strict factorization (W = softmax(A @ B), no base; 372 parameters):
    python -m train --config configs/abc_sort.py --config.model.attention_kwargs.strict=true
The same task with another attention variant (standard, lowrank_qk, linformer):
    python -m train --config configs/abc_sort.py:standard
A quick local run:
    python -m train --config configs/abc_sort.py --config.steps=3000 --config.warmup_steps=100
"""
from configs.base import make_config

# The seed's deep-QKV options, and the other variants sized for this task (head dim 3).
ATTENTION_KWARGS = {
    "deep_qkv": {"rank": 3, "temp": 1.0, "strict": False},
    "lowrank_qk": {"r": 2},
    # Causal Linformer: blocks of 2 tokens, each completed block compressed to 1 slot.
    "linformer": {"causal": True, "block_size": 2, "block_slots": 1},
}
# The causal Linformer needs a block size that divides max_len; T = 7 is prime.
MAX_LEN = {"linformer": 8}


def get_config(attention: str = "deep_qkv"):
    model = dict(
        vocab_size=4,                          # SEP, a, b, c
        max_len=MAX_LEN.get(attention, 7),     # T: 3 letters, SEP, 3 sorted letters
        d_model=6, n_layers=1, n_heads=2,      # E, one block, H
        d_ff=6,                                # mlp_mult = 1
        attention=attention, attention_kwargs=ATTENTION_KWARGS.get(attention, {}),
        activation="relu",
        use_bias=False,                        # no biases except the norms
        embed_init_std=1.0,                    # nn.Embedding's N(0, 1)
    )
    return make_config(
        "abc_sort", model, seed=42, steps=15000, batch_size=128, lr=1e-3, warmup_steps=500,
        end_lr_ratio=0.1,
        # PyTorch AdamW's default: decay 0.01 on every parameter, norms and embeddings included.
        weight_decay=0.01, weight_decay_on="all",
        log_every=500, eval_every=5000, checkpoint_every=5000,
        # A 480-parameter model: XLA's per-op threading costs more than it saves (2.5x on 2 cores).
        cpu_single_thread=True,
    )
