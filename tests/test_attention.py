"""Every attention variant and the whole GPT against the float64 NumPy references.

The modules run in float64 (x64 mode), so the comparison checks the math at rtol 1e-5
without float32 rounding in the way.
"""
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from lowrank_jax import ATTENTIONS, GPT
from lowrank_jax.layers import LowRankLinear
from lowrank_jax.attention.core import ATTENTION_QUERIES, ATTENTION_VALUES, ATTENTION_WEIGHTS
from lowrank_jax.attention.lowrank_qk import fixed_u
from lowrank_jax.model import apply_with_attention, attention_intermediates

import reference
from conftest import float64_config, small_config, variant_cases, x64

RTOL = 1e-5


def case_config(make, name, kwargs, **changes):
    """The bidirectional Linformer lives in an encoder (causal=False)."""
    return make(attention=name, attention_kwargs=kwargs, causal=kwargs.get("causal", True), **changes)


# Every registered variant's examples: the causal ones, and those only an encoder takes;
# and deep_qkv's unit_gate, which changes its weights alone, so it is checked here only.
CASES = variant_cases(causal=True) + [case for case in variant_cases(causal=False)
                                      if case[1].get("causal") is False] + [
    ("deep_qkv", {"unit_gate": True})]
# The GPT's norm placement, norm and tying: each case takes one of them in turn, and
# standard attention takes every one, so each is checked without the full product.
NORM_OPTIONS = list(itertools.product(["pre", "post"], ["layernorm", "rmsnorm"], [True, False]))
GPT_CASES = ([(case, *NORM_OPTIONS[i % len(NORM_OPTIONS)]) for i, case in enumerate(CASES)]
             + [(("standard", {}), *options) for options in NORM_OPTIONS[1:]])
# A module alone has no layer-shared module to lean on: those cases run in the GPT only.
MODULE_CASES = [(name, kwargs) for name, kwargs in CASES
                if ATTENTIONS[name].shared_module(case_config(small_config, name, kwargs)) is None]


class ReferenceTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*MODULE_CASES)
    def test_attention_matches_float64_reference(self, name, kwargs):
        with x64():
            cfg = case_config(float64_config, name, kwargs)
            module = ATTENTIONS[name](cfg)
            x_BLE = jax.random.normal(jax.random.key(1), (3, 9, cfg.d_model), jnp.float64)
            params = module.init(jax.random.key(2), x_BLE)["params"]
            y_BLE = self.variant(lambda p, x: module.apply({"params": p}, x))(params, x_BLE)
            expected, _ = reference.ATTENTION[name](reference.f64(params), np.asarray(x_BLE), cfg)
        chex.assert_shape(y_BLE, x_BLE.shape)
        assert y_BLE.dtype == jnp.float64
        np.testing.assert_allclose(y_BLE, expected, rtol=RTOL)

    @chex.variants(with_jit=True)
    @parameterized.parameters(*GPT_CASES)
    def test_gpt_matches_float64_reference(self, case, norm_position, norm, tie):
        name, kwargs = case
        with x64():
            cfg = case_config(float64_config, name, kwargs, norm=norm,
                              norm_position=norm_position, tie_embeddings=tie)
            tokens_BL = jax.random.randint(jax.random.key(3), (2, 12), 0, cfg.vocab_size)
            model = GPT(cfg)
            params = model.init(jax.random.key(4), tokens_BL)["params"]
            logits = self.variant(lambda p, t: model.apply({"params": p}, t))(params, tokens_BL)
            expected = reference.gpt(params, np.asarray(tokens_BL), cfg)
        assert logits.dtype == jnp.float64
        np.testing.assert_allclose(logits, expected, rtol=RTOL)


@pytest.mark.parametrize("name,kwargs", CASES)
def test_sown_weights_are_the_reference_attention(name, kwargs):
    with x64():
        cfg = case_config(float64_config, name, kwargs, n_layers=1)
        tokens_BL = jax.random.randint(jax.random.key(5), (2, 10), 0, cfg.vocab_size)
        model = GPT(cfg)
        params = model.init(jax.random.key(6), tokens_BL)["params"]
        _, weights = apply_with_attention(model, params, tokens_BL)
    p = reference.f64(params)
    x = p["token_embed"]["embedding"][np.asarray(tokens_BL)] + p["pos_embed"][:10]
    x = reference.layer_norm(p["block_0"]["norm1"], x)
    _, expected = reference.layer_attention(p, 0, x, cfg)
    chex.assert_shape(weights[0], (2, cfg.n_heads, 10, expected.shape[-1]))
    np.testing.assert_allclose(weights[0], expected, rtol=RTOL, atol=1e-12)


# What each per-token variant's queries are before the 1/sqrt(d_head) scale (tests/reference.py).
REFERENCE_QUERIES = {
    "standard": lambda p, x, kw: reference.project_heads(p["query"], x),
    "deep_qkv": lambda p, x, kw: np.einsum(
        "ble,hed->blhd", x, reference.deep_qkv_weight(p, "query", kw)),
    "lowrank_qk": lambda p, x, kw: (reference.project_heads(p["query"], x)
                                    @ reference.lowrank_u(p, kw)),
}


@pytest.mark.parametrize("name,kwargs", [case for case in CASES if case[0] in REFERENCE_QUERIES])
def test_sown_queries_and_values_give_the_attention_output(name, kwargs):
    """What the seed-004 analysis reads: the weights are softmax(scaled queries keys^T), and
    the layer's output is the weights times the sown values, merged by the out projection."""
    with x64():
        cfg = case_config(float64_config, name, kwargs, n_layers=1)
        tokens_BL = jax.random.randint(jax.random.key(5), (2, 10), 0, cfg.vocab_size)
        model = GPT(cfg)
        params = model.init(jax.random.key(6), tokens_BL)["params"]
        _, (sown,) = attention_intermediates(model, params, tokens_BL)
    p = reference.f64(params)
    x = p["token_embed"]["embedding"][np.asarray(tokens_BL)] + p["pos_embed"][:10]
    x = reference.layer_norm(p["block_0"]["norm1"], x)
    attention = p["block_0"]["attention"]
    expected_out, _ = reference.ATTENTION[name](attention, x, cfg)
    queries = REFERENCE_QUERIES[name](attention, x, cfg.attention_kwargs) / np.sqrt(cfg.d_head)
    np.testing.assert_allclose(sown[ATTENTION_QUERIES], queries, rtol=RTOL)
    out = np.einsum("bhls,bshd->blhd", sown[ATTENTION_WEIGHTS], sown[ATTENTION_VALUES])
    np.testing.assert_allclose(reference.merge_heads(attention["out"], out), expected_out, rtol=RTOL)


def test_linformer_sows_no_token_queries():
    cfg = small_config(attention="linformer", attention_kwargs={"block_size": 4, "block_slots": 2})
    tokens_BL = jnp.zeros((1, 8), jnp.int32)
    model = GPT(cfg)
    _, layers = attention_intermediates(model, model.init(jax.random.key(0), tokens_BL)["params"],
                                        tokens_BL)
    assert all(set(layer) == {ATTENTION_WEIGHTS} for layer in layers)


@pytest.mark.parametrize("name,kwargs", CASES)
def test_intermediates_only_on_request(name, kwargs):
    cfg = case_config(small_config, name, kwargs)
    tokens_BL = jnp.zeros((1, 5), jnp.int32)
    model = GPT(cfg)
    variables = model.init(jax.random.key(0), tokens_BL)
    assert set(variables) == {"params"}
    _, state = model.apply(variables, tokens_BL, mutable=["intermediates"])
    assert sorted(state["intermediates"]) == [f"block_{i}" for i in range(cfg.n_layers)]


@pytest.mark.parametrize("name,kwargs", CASES)
def test_bfloat16_compute_stays_close_to_float32(name, kwargs):
    cfg = case_config(small_config, name, kwargs)
    tokens_BL = jax.random.randint(jax.random.key(7), (2, 12), 0, cfg.vocab_size)
    params = GPT(cfg).init(jax.random.key(8), tokens_BL)["params"]
    full = GPT(cfg).apply({"params": params}, tokens_BL)
    half = GPT(cfg.replace(dtype="bfloat16")).apply({"params": params}, tokens_BL)
    assert half.dtype == jnp.float32
    assert not np.array_equal(half, full)  # the compute really ran in bfloat16
    np.testing.assert_allclose(half, full, atol=0.05 * float(jnp.abs(full).max()))


@pytest.mark.parametrize("unit_gate,mean_ratio", [(False, 1 / 16), (True, 1.0)])
def test_deep_qkv_weight_starts_at_its_base_over_d_or_with_unit_gate_at_it(unit_gate, mean_ratio):
    """The seed's gate makes W start D times below its base (attention starts uniform);
    unit_gate scales it by D so W starts at the base's scale."""
    cfg = small_config(attention="deep_qkv", d_model=32, n_heads=2,
                       attention_kwargs={"rank": 4, "unit_gate": unit_gate})
    p = ATTENTIONS["deep_qkv"](cfg).init(jax.random.key(0), jnp.zeros((1, 4, 32)))["params"]
    W_HED = reference.deep_qkv_weight(reference.f64(p), "query", cfg.attention_kwargs)
    ratio = W_HED / np.asarray(p["query_base"], np.float64)
    np.testing.assert_allclose(ratio.mean(axis=-1), mean_ratio, rtol=1e-9)
    np.testing.assert_allclose(ratio, mean_ratio, rtol=0.05)


def test_lowrank_qk_folded_equals_unfolded_and_scores_have_rank_r():
    cfg = small_config(attention="lowrank_qk", attention_kwargs={"r": 2}, n_layers=1)
    module = ATTENTIONS["lowrank_qk"](cfg)
    x_BLE = jax.random.normal(jax.random.key(9), (2, 12, cfg.d_model))
    params = module.init(jax.random.key(10), x_BLE)["params"]
    y_folded, captured = module.apply({"params": params}, x_BLE, capture_intermediates=True)
    q_BLHR, k_BLHR = (captured["intermediates"][n]["__call__"][0] for n in ("query", "key"))
    chex.assert_shape(q_BLHR, (2, 12, cfg.n_heads, 2))  # the folded projection is r wide

    def unfolded(p, x):
        head = lambda n: jnp.einsum("ble,ehd->blhd", x, p[n]["kernel"]) + p[n]["bias"]
        q, k, v = head("query"), head("key"), head("value")
        scores = jnp.einsum("blhr,bshr->bhls", q @ p["U"], k @ p["U"]) / jnp.sqrt(cfg.d_head)
        scores = jnp.where(jnp.tril(jnp.ones((12, 12), bool)), scores, -jnp.inf)
        out = jnp.einsum("bhls,bshd->blhd", jax.nn.softmax(scores), v)
        return jnp.einsum("blhd,hde->ble", out, p["out"]["kernel"]) + p["out"]["bias"]

    np.testing.assert_allclose(y_folded, unfolded(params, x_BLE), rtol=1e-5, atol=1e-6)
    scores_BHLL = np.einsum("blhr,bshr->bhls", np.float64(q_BLHR), np.float64(k_BLHR))
    ranks = np.linalg.matrix_rank(scores_BHLL, tol=1e-6 * np.abs(scores_BHLL).max())
    assert ranks.max() <= 2 and ranks.shape == (2, cfg.n_heads)


def test_lowrank_qk_fixed_u_is_a_constant_not_a_parameter():
    """learn_u=False: no U among the parameters (nothing for the optimizer to move or decay),
    and the function of a learnt U set to fixed_u; fixed_u has orthonormal columns."""
    learnt = small_config(attention="lowrank_qk", attention_kwargs={"r": 3}, n_layers=1)
    fixed = learnt.replace(attention_kwargs={"r": 3, "learn_u": False})
    x_BLE = jax.random.normal(jax.random.key(3), (2, 8, learnt.d_model))
    p_learnt = ATTENTIONS["lowrank_qk"](learnt).init(jax.random.key(4), x_BLE)["params"]
    p_fixed = ATTENTIONS["lowrank_qk"](fixed).init(jax.random.key(4), x_BLE)["params"]
    assert set(p_learnt) - set(p_fixed) == {"U"}
    U_DR = fixed_u(learnt.d_head, 3)
    np.testing.assert_allclose(U_DR.T @ U_DR, np.eye(3), atol=1e-12)
    assert not np.allclose(U_DR, p_learnt["U"], atol=1e-3)   # the check below can tell them apart
    y_fixed = ATTENTIONS["lowrank_qk"](fixed).apply({"params": p_fixed}, x_BLE)
    y_learnt = ATTENTIONS["lowrank_qk"](learnt).apply({"params": {**p_fixed, "U": U_DR}}, x_BLE)
    np.testing.assert_allclose(y_fixed, y_learnt, rtol=1e-6, atol=1e-6)


def test_lowrank_linear_is_x_U_Vt_of_rank_r():
    with x64():
        layer = LowRankLinear(features=12, rank=3, dtype=jnp.float64, param_dtype=jnp.float64)
        x = jax.random.normal(jax.random.key(11), (4, 5, 10), jnp.float64)
        params = layer.init(jax.random.key(12), x)["params"]
        y = layer.apply({"params": params}, x)
    assert set(params) == {"U", "V"} and params["U"].shape == (10, 3) and params["V"].shape == (12, 3)
    np.testing.assert_allclose(y, reference.lowrank_linear(reference.f64(params), np.asarray(x)),
                               rtol=RTOL)
    assert np.linalg.matrix_rank(np.asarray(params["U"]) @ np.asarray(params["V"]).T) == 3


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_gpt_with_factorized_ffn_and_rmsnorm_matches_reference(activation):
    with x64():
        cfg = float64_config(ffn="lowrank", ffn_rank=3, norm="rmsnorm", activation=activation,
                             use_bias=False)
        tokens_BL = jax.random.randint(jax.random.key(13), (2, 12), 0, cfg.vocab_size)
        model = GPT(cfg)
        params = model.init(jax.random.key(14), tokens_BL)["params"]
        logits = model.apply({"params": params}, tokens_BL)
        expected = reference.gpt(params, np.asarray(tokens_BL), cfg)
    assert set(params["block_0"]["ffn"]["up"]) == {"U", "V"}
    np.testing.assert_allclose(logits, expected, rtol=RTOL)
