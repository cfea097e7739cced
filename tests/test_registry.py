"""The variant contract (lowrank_jax/attention/base.py): a variant registered in one line
is picked up by the config checks, the model, the train step, decoding, the fast-path
dispatch and the suite's case lists, with no other edit; and every registered variant
comes with what the recipe asks for."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.abc_sort import get_config
from lowrank_jax import ATTENTIONS, GPT, UserError, generate
from lowrank_jax.attention import Attention, StandardAttention, attention_path
from train.loop import train_and_evaluate

import reference
from conftest import float64_config, small_config, variant_cases, x64

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class EchoAttention(StandardAttention):
    """A throw-away variant: standard attention under another name, with one option."""

    DEFAULTS = {"gain": 1.0}
    EXAMPLES = ({}, {"gain": 1.0})

    @staticmethod
    def resolve(cfg, kwargs):
        if kwargs["gain"] != 1.0:
            raise UserError(f"attention_kwargs.gain={kwargs['gain']!r} is not allowed; "
                              "echo attention only echoes (gain 1.0).")
        return kwargs


@pytest.fixture
def echo(monkeypatch):
    monkeypatch.setitem(ATTENTIONS, "echo", EchoAttention)
    monkeypatch.setitem(reference.ATTENTION, "echo", reference.standard_attention)


def test_config_checks_know_a_registered_variant(echo):
    assert small_config(attention="echo").attention_kwargs == {"gain": 1.0}
    with pytest.raises(UserError, match=r"^attention_kwargs for 'echo' got unknown key 'r'; "
                                          r"allowed keys are gain\.$"):
        small_config(attention="echo", attention_kwargs={"r": 2})
    with pytest.raises(UserError, match=r"^attention_kwargs\.gain=2 is not allowed; echo"):
        small_config(attention="echo", attention_kwargs={"gain": 2})
    gpu_sized = small_config(attention="echo", dtype="bfloat16", d_model=64)
    assert attention_path(gpu_sized, backend="gpu") == "fast"


def test_the_suite_case_lists_include_a_registered_variant(echo):
    assert ("echo", {}) in variant_cases(causal=True)
    assert ("echo", {"gain": 1.0}) in variant_cases(causal=False)


def test_a_registered_variant_runs_in_the_gpt_and_matches_its_reference(echo):
    with x64():
        cfg = float64_config(attention="echo")
        tokens = jax.random.randint(jax.random.key(0), (2, 12), 0, cfg.vocab_size)
        params = GPT(cfg).init(jax.random.key(1), tokens)["params"]
        logits = GPT(cfg).apply({"params": params}, tokens)
        expected = reference.gpt(params, np.asarray(tokens), cfg)
    np.testing.assert_allclose(logits, expected, rtol=1e-5)


def test_a_registered_variant_trains_and_decodes(echo, tmp_path):
    config = get_config("echo")
    config.update(dict(steps=20, warmup_steps=2, log_every=10, eval_every=20,
                       checkpoint_every=20, num_devices=1))
    summary = train_and_evaluate(config, str(tmp_path))
    assert summary["step"] == 20 and np.isfinite(summary["train"]["loss"])
    cfg = small_config(attention="echo", tie_embeddings=False)
    params = GPT(cfg).init(jax.random.key(2), jnp.zeros((1, 4), jnp.int32))["params"]

    def greedy(use_cache):
        return generate(GPT(cfg), params, [[1, 2, 3]], max_new_tokens=8, temperature=0.0,
                        use_cache=use_cache).tokens

    np.testing.assert_array_equal(greedy(True), greedy(False))


@pytest.mark.parametrize("name", list(ATTENTIONS))
def test_every_variant_has_what_the_recipe_asks_for(name):
    variant = ATTENTIONS[name]
    assert issubclass(variant, Attention)
    assert name in reference.ATTENTION, f"tests/reference.py has no float64 reference for {name}"
    assert os.path.exists(os.path.join(ROOT, "configs", f"lm_{name}.py"))
    assert [kwargs for case, kwargs in variant_cases(True) + variant_cases(False)
            if case == name], f"none of {name}'s EXAMPLES fits the suite's small model"
