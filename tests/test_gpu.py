"""GPU-only checks of the cuDNN flash-attention path (run on a GPU machine:
`python -m pytest tests/test_gpu.py`); CI has no GPU and does not select them."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.abc_sort import get_config
from lowrank_jax import GPT, ModelConfig
from train.loop import train_and_evaluate

pytestmark = pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a GPU")


def flash_config(dtype):
    return ModelConfig(vocab_size=512, max_len=1024, d_model=512, n_layers=2, n_heads=8, d_ff=1024,
                       dtype=dtype)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_standard_attention_runs_cudnn_and_matches_xla(dtype):
    cfg = flash_config(dtype)
    tokens = jax.random.randint(jax.random.key(0), (4, 1024), 0, cfg.vocab_size)
    model = GPT(cfg)
    params = model.init(jax.random.key(1), tokens)["params"]
    flash = jax.jit(lambda p, t: model.apply({"params": p}, t))
    assert "cudnn$fmha" in flash.lower(params, tokens).compile().as_text().lower()
    # Asking for the attention weights takes the XLA path, which materialises them.
    xla = jax.jit(lambda p, t: model.apply({"params": p}, t, mutable=["intermediates"])[0])
    assert "cudnn$fmha" not in xla.lower(params, tokens).compile().as_text().lower()
    exact = GPT(cfg.replace(dtype="float32")).apply({"params": params}, tokens)
    scale = float(jnp.abs(exact).max())
    np.testing.assert_allclose(flash(params, tokens), xla(params, tokens), atol=0.03 * scale)
    np.testing.assert_allclose(flash(params, tokens), exact, atol=0.03 * scale)


def test_cudnn_gradients_match_xla():
    cfg = flash_config("bfloat16")
    tokens = jax.random.randint(jax.random.key(0), (2, 512), 0, cfg.vocab_size)
    model = GPT(cfg)
    params = model.init(jax.random.key(1), tokens)["params"]

    def loss(p, mutable):
        out = model.apply({"params": p}, tokens, mutable=["intermediates"] if mutable else False)
        logits = out[0] if mutable else out
        return jnp.mean(jax.nn.log_softmax(logits)[..., 0])

    g_flash = jax.jit(jax.grad(lambda p: loss(p, False)))(params)
    g_xla = jax.jit(jax.grad(lambda p: loss(p, True)))(params)
    # Relative to the largest gradient: some leaves (key biases) have true gradient 0 and hold noise.
    scale = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(g_xla))
    for a, b in zip(jax.tree.leaves(g_flash), jax.tree.leaves(g_xla)):
        np.testing.assert_allclose(a, b, atol=0.02 * scale)


def test_bf16_standard_training_on_gpu(tmp_path):
    config = get_config("standard")
    config.update(dict(steps=300, warmup_steps=30, lr=3e-3, log_every=100, eval_every=300,
                       checkpoint_every=300, num_devices=1))
    config.model.update(dict(d_model=64, n_heads=4, d_ff=128, dtype="bfloat16",
                             embed_init_std=0.1))
    summary = train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(summary["train"]["loss"]) and summary["train"]["loss"] < 1.0
