"""Linformer (seed 002): bidirectional and causal against the float64 loop reference,
padding that never leaks, and its configuration errors."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lowrank_jax import ATTENTIONS, GPT, UserError
from lowrank_jax.model import apply_with_attention

import reference
from conftest import float64_config, small_config, x64

BIDIRECTIONAL = [dict(causal=False, k=5, sharing=s) for s in ("none", "headwise", "kv")]
CAUSAL = [dict(block_size=4, block_slots=2, sharing="headwise"),
          dict(block_size=8, block_slots=3, sharing="none"),
          dict(block_size=2, block_slots=1, sharing="kv"),
          dict(block_size=16, block_slots=4, sharing="headwise")]
LENGTHS = [16, 13, 5, 1]  # multiples of the block size and not


def run_module(kwargs, length, padding_mask=None, seed=0):
    with x64():
        cfg = float64_config(attention="linformer", attention_kwargs=kwargs,
                             causal=kwargs.get("causal", True))
        module = ATTENTIONS["linformer"](cfg)
        x_BLE = jax.random.normal(jax.random.key(seed), (2, length, cfg.d_model), jnp.float64)
        params = module.init(jax.random.key(seed + 1), x_BLE)["params"]
        y, state = module.apply({"params": params}, x_BLE, padding_mask,
                                mutable=["intermediates"])
    return cfg, params, x_BLE, y, state["intermediates"]["attention_weights"][0]


@pytest.mark.parametrize("kwargs", BIDIRECTIONAL + CAUSAL)
@pytest.mark.parametrize("length", LENGTHS)
def test_linformer_matches_float64_reference(kwargs, length):
    cfg, params, x, y, probs = run_module(kwargs, length)
    expected, expected_probs = reference.linformer_attention(reference.f64(params), np.asarray(x), cfg)
    chex.assert_shape(y, x.shape)
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    np.testing.assert_allclose(probs, expected_probs, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("kwargs", BIDIRECTIONAL)
def test_padding_mask_matches_reference_and_never_leaks(kwargs):
    mask = np.ones((2, 11), bool)
    mask[0, 7:] = False
    mask[1, 3:] = False
    cfg, params, x, y, _ = run_module(kwargs, 11, jnp.asarray(mask))
    expected, _ = reference.linformer_attention(reference.f64(params), np.asarray(x), cfg, mask)
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    # New content at the padded positions: the real positions do not move.
    with x64():
        module = ATTENTIONS["linformer"](cfg)
        noise = jax.random.normal(jax.random.key(7), x.shape, jnp.float64) * 10
        x2 = jnp.where(jnp.asarray(mask)[..., None], x, noise)
        y2 = module.apply({"params": params}, x2, jnp.asarray(mask))
    np.testing.assert_array_equal(np.where(mask[..., None], y2, 0), np.where(mask[..., None], y, 0))


@pytest.mark.parametrize("causal_kwargs", [dict(causal=False, k=6), dict(block_size=4, block_slots=3)])
def test_layerwise_sharing_is_one_projection_for_every_layer(causal_kwargs):
    kwargs = {**causal_kwargs, "sharing": "layerwise"}
    with x64():
        cfg = float64_config(attention="linformer", attention_kwargs=kwargs, n_layers=3,
                             causal=kwargs.get("causal", True))
        tokens = jax.random.randint(jax.random.key(3), (2, 13), 0, cfg.vocab_size)
        model = GPT(cfg)
        params = model.init(jax.random.key(4), tokens)["params"]
        logits = model.apply({"params": params}, tokens)
        expected = reference.gpt(params, np.asarray(tokens), cfg)
    assert set(params["linformer_shared"]) == {"E"}
    assert all("E" not in params[f"block_{i}"]["attention"] for i in range(3))
    np.testing.assert_allclose(logits, expected, rtol=1e-5)


# projection="pool" at max_len 16: the positions each slot averages, written out by hand
# (causal: within each block of 4).
POOLED = [(dict(causal=False, k=5, projection="pool"), [(0, 4), (4, 7), (7, 10), (10, 13), (13, 16)]),
          (dict(block_size=4, block_slots=3, projection="pool"), [(0, 2), (2, 3), (3, 4)])]


@pytest.mark.parametrize("kwargs,segments", POOLED)
@pytest.mark.parametrize("length", [16, 13])
def test_pooling_projection_averages_contiguous_segments(kwargs, segments, length):
    cfg, params, x, y, _ = run_module(kwargs, length)
    assert not {"E", "F"} & set(params)
    expected, _ = reference.linformer_attention(reference.f64(params), np.asarray(x), cfg)
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    span = kwargs.get("block_size", cfg.max_len)
    by_hand = np.zeros((cfg.max_len, len(segments)))
    for start in range(0, cfg.max_len, span):
        for slot, (first, end) in enumerate(segments):
            by_hand[start + first:start + end, slot] = 1 / (end - first)
    np.testing.assert_array_equal(reference.pooled(cfg.max_len, span, len(segments)), by_hand)


def test_pooling_has_no_projection_to_share():
    cfg = small_config(attention="linformer", causal=False,
                       attention_kwargs=dict(projection="pool", sharing="layerwise"))
    params = GPT(cfg).init(jax.random.key(0), jnp.zeros((1, 16), jnp.int32))["params"]
    assert "linformer_shared" not in params and "E" not in params["block_0"]["attention"]


def test_causal_decoding_cache_size_is_slots_plus_one_block():
    cfg = small_config(attention="linformer", attention_kwargs=dict(block_size=4, block_slots=2))
    _, weights = apply_with_attention(GPT(cfg), GPT(cfg).init(jax.random.key(0), jnp.zeros((1, 16), jnp.int32))["params"],
                                      jnp.zeros((1, 16), jnp.int32))
    # Each query sees (16 / 4) * 2 = 8 slots plus the 4 keys of its block, not 16 keys.
    chex.assert_shape(weights[0], (1, cfg.n_heads, 16, 8 + 4))
    np.testing.assert_allclose(np.asarray(weights[0]).sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("kwargs,model_causal,message", [
    (dict(causal=False), True, r"attention_kwargs\.causal=False is not allowed in a model with causal=True; "
                               r"a bidirectional Linformer would let a language model see the future, so "
                               r"set the model's causal=false for an encoder\."),
    (dict(k=17), False, r"attention_kwargs\.k=17 is not allowed; it must be an integer from 1 to max_len=16\."),
    (dict(block_size=5), True, r"attention_kwargs\.block_size=5 is not allowed with max_len=16; the causal Linformer needs a block size that divides max_len\."),
    (dict(block_size=4, block_slots=5), True, r"attention_kwargs\.block_slots=5 is not allowed; it must be an integer from 1 to block_size=4\."),
    (dict(block_size=4, k=6), True, r"attention_kwargs\.k=6 is not allowed with max_len=16 and block_size=4; the causal Linformer has block_slots x 4 slots\."),
    (dict(block_size=4, block_slots=2, k=12), True, r"attention_kwargs\.k=12 is not allowed with block_slots=2; it must be \(max_len / block_size\) \* block_slots = 8\."),
    (dict(sharing="global"), True, r"attention_kwargs\.sharing='global' is not allowed; choose one of 'none', 'headwise', 'kv', 'layerwise'\."),
    (dict(block_size=4), False, r"attention_kwargs\.block_size=4 is not allowed with causal=false; blocks belong to the causal Linformer\."),
    (dict(projection="mean"), False, r"attention_kwargs\.projection='mean' is not allowed; choose one of 'learnt', 'pool'\."),
])
def test_bad_linformer_config(kwargs, model_causal, message):
    with pytest.raises(UserError, match=f"^{message}$"):
        small_config(attention="linformer", attention_kwargs=kwargs, causal=model_causal)


def test_linformer_defaults_follow_the_model():
    causal = small_config(attention="linformer").attention_kwargs
    assert (causal["causal"], causal["block_size"], causal["block_slots"], causal["k"]) == (True, 4, 1, 4)
    encoder = small_config(attention="linformer", causal=False).attention_kwargs
    assert (encoder["causal"], encoder["k"]) == (False, 16)


def test_causal_k_gives_the_slots_per_block():
    cfg = small_config(attention="linformer", attention_kwargs=dict(k=8, block_size=4))
    assert cfg.attention_kwargs["block_slots"] == 2 and cfg.attention_kwargs["k"] == 8
