"""Every variant as an encoder (causal=False) under the pooled classifier head, and
padding masks: padded content never reaches a real position."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lowrank_jax import GPT, Classifier

import reference
from conftest import float64_config, small_config, variant_cases, x64

ENCODERS, DECODERS = variant_cases(causal=False), variant_cases(causal=True)


def padded_batch(cfg, length=12, real=(12, 7, 3)):
    tokens = jax.random.randint(jax.random.key(1), (len(real), length), 0, cfg.vocab_size)
    mask = np.arange(length)[None, :] < np.array(real)[:, None]
    return tokens, jnp.asarray(mask)


def scramble_padding(cfg, tokens, mask):
    noise = jax.random.randint(jax.random.key(2), tokens.shape, 0, cfg.vocab_size)
    return jnp.where(mask, tokens, noise)


@pytest.mark.parametrize("name,kwargs", ENCODERS)
def test_encoder_classifier_matches_float64_reference(name, kwargs):
    with x64():
        cfg = float64_config(attention=name, attention_kwargs=kwargs, causal=False)
        tokens, mask = padded_batch(cfg)
        model = Classifier(cfg, num_classes=3)
        params = model.init(jax.random.key(3), tokens, mask)["params"]
        logits = model.apply({"params": params}, tokens, mask)
        expected = reference.classifier(params, np.asarray(tokens), cfg, np.asarray(mask))
    assert logits.shape == (3, 3)
    np.testing.assert_allclose(logits, expected, rtol=1e-5)


@pytest.mark.parametrize("name,kwargs", ENCODERS)
def test_padding_content_never_changes_the_classification(name, kwargs):
    cfg = small_config(attention=name, attention_kwargs=kwargs, causal=False)
    tokens, mask = padded_batch(cfg)
    model = Classifier(cfg, num_classes=3)
    params = model.init(jax.random.key(3), tokens, mask)["params"]
    apply = jax.jit(lambda t: model.apply({"params": params}, t, mask))
    scrambled = scramble_padding(cfg, tokens, mask)
    assert not np.array_equal(scrambled, tokens)
    np.testing.assert_array_equal(apply(scrambled), apply(tokens))


@pytest.mark.parametrize("name,kwargs", DECODERS)
def test_left_padding_never_reaches_real_positions_of_a_decoder(name, kwargs):
    cfg = small_config(attention=name, attention_kwargs=kwargs)
    length = 12
    tokens = jax.random.randint(jax.random.key(4), (3, length), 0, cfg.vocab_size)
    mask = jnp.asarray(np.arange(length)[None, :] >= np.array([0, 5, 9])[:, None])  # left padding
    model = GPT(cfg)
    params = model.init(jax.random.key(5), tokens)["params"]
    apply = jax.jit(lambda t: model.apply({"params": params}, t, mask))
    with x64():
        expected = reference.gpt(params, np.asarray(tokens), cfg.replace(), np.asarray(mask))
    logits = apply(tokens)
    real = np.asarray(mask)
    np.testing.assert_allclose(np.asarray(logits)[real], expected[real], rtol=2e-4, atol=2e-5)
    np.testing.assert_array_equal(np.asarray(apply(scramble_padding(cfg, tokens, mask)))[real],
                                  np.asarray(logits)[real])
    assert np.all(np.isfinite(logits))
