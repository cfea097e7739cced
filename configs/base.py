"""The fields every experiment config has, with neutral defaults; experiments override them."""
import ml_collections

MODEL_DEFAULTS = dict(
    vocab_size=256, max_len=512, d_model=256, n_layers=4, n_heads=4, d_ff=1024,
    attention="standard", attention_kwargs={}, norm="layernorm", norm_position="pre",
    ffn="dense", ffn_rank=0, activation="gelu", dropout=0.0, use_bias=True, tie_embeddings=True,
    dtype="float32", param_dtype="float32", embed_init_std=0.02,
)


def make_config(task: str, model: dict, **training) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict(dict(
        task=task, seed=0, steps=1000, batch_size=32, lr=3e-4, warmup_steps=100,
        end_lr_ratio=0.1, weight_decay=0.01, weight_decay_on="matrices", grad_clip=1.0,
        log_every=100, eval_every=1000, checkpoint_every=1000, keep_checkpoints=3,
        num_devices=0,  # 0: every local device
        cpu_single_thread=False,
    ))
    config.update(training)
    config.model = ml_collections.ConfigDict({**MODEL_DEFAULTS, **model})
    return config
