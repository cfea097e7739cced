"""Seed 001: the ABC sorter with deep-QKV attention (E=6, H=2, r=3, T=7, one block, tied head).

The default of `python -m train`:
    python -m train --config configs/abc_sort.py --workdir runs/abc_sort
Strict factorization (W = softmax(A @ B), no base; 372 parameters):
    python -m train --config configs/abc_sort.py --config.model.attention_kwargs.strict=True
The same task with another attention variant (its default options):
    python -m train --config configs/abc_sort.py:standard
A quick local run:
    python -m train --config configs/abc_sort.py --config.steps=3000 --config.warmup_steps=100
"""
import ml_collections


# The seed's deep-QKV options; other variants start from their own defaults.
ATTENTION_KWARGS = {"deep_qkv": {"rank": 3, "temp": 1.0, "strict": False}}


def get_config(attention: str = "deep_qkv") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "abc_sort"
    config.seed = 42
    config.steps = 15000
    config.batch_size = 128
    config.lr = 1e-3
    config.warmup_steps = 500
    config.end_lr_ratio = 0.1
    # PyTorch AdamW's default: decay 0.01 on every parameter, norms and embeddings included.
    config.weight_decay = 0.01
    config.weight_decay_on = "all"
    config.grad_clip = 1.0
    config.log_every = 500
    config.eval_every = 5000
    config.checkpoint_every = 5000
    config.keep_checkpoints = 3
    config.num_devices = 0  # 0: every local device
    # A 480-parameter model: XLA's per-op threading costs more than it saves (2.5x on 2 cores).
    config.cpu_single_thread = True

    config.model = ml_collections.ConfigDict()
    model = config.model
    model.vocab_size = 4           # SEP, a, b, c
    model.max_len = 7              # T: 3 letters, SEP, 3 sorted letters
    model.d_model = 6              # E
    model.n_layers = 1
    model.n_heads = 2              # H
    model.d_ff = 6                 # mlp_mult = 1
    model.attention = attention
    model.attention_kwargs = ml_collections.ConfigDict(ATTENTION_KWARGS.get(attention, {}))
    model.norm = "layernorm"
    model.norm_position = "pre"
    model.ffn = "dense"
    model.activation = "relu"
    model.dropout = 0.0
    model.use_bias = False         # no biases except the norms
    model.tie_embeddings = True
    model.dtype = "float32"
    model.param_dtype = "float32"
    model.embed_init_std = 1.0     # nn.Embedding's N(0, 1)
    return config
