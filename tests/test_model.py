"""GPT structure: parameter counts, causality, dropout, sequence length."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lowrank_jax import GPT, UserError, ModelConfig, count_parameters, parameter_groups

from conftest import small_config, variant_cases

CAUSAL = variant_cases(causal=True)
SORTER = dict(vocab_size=4, max_len=7, d_model=6, n_layers=1, n_heads=2, d_ff=6,
              attention="deep_qkv", activation="relu", use_bias=False, embed_init_std=1.0)


def init(cfg, length=6):
    tokens = jnp.zeros((1, length), jnp.int32)
    return GPT(cfg).init(jax.random.key(0), tokens)["params"]


@pytest.mark.parametrize("strict,total,attention", [(False, 480, 306), (True, 372, 198)])
def test_seed_001_parameter_breakdown(strict, total, attention):
    cfg = ModelConfig(**SORTER, attention_kwargs={"rank": 3, "strict": strict})
    params = init(cfg)
    # The seed's own breakdown: V*E, T*E, 3H(Er + rD) [+ 3HED] + E*E, 2*E*E, 3 * 2E.
    assert parameter_groups(params) == {"token_embed": 24, "pos_embed": 42, "attention": attention,
                                        "ffn": 72, "norms": 36}
    assert count_parameters(params) == total


@pytest.mark.parametrize("name,kwargs", CAUSAL)
@pytest.mark.parametrize("norm_position,length", [("pre", 16), ("post", 13)])
def test_future_tokens_never_change_earlier_outputs(name, kwargs, norm_position, length):
    cfg = small_config(attention=name, attention_kwargs=kwargs, norm_position=norm_position)
    model = GPT(cfg)
    tokens = jax.random.randint(jax.random.key(1), (2, length), 0, cfg.vocab_size)
    params = model.init(jax.random.key(2), tokens)["params"]
    apply = jax.jit(lambda t: model.apply({"params": params}, t))
    logits = apply(tokens)
    for t in range(length - 1):
        # Every token after t replaced by a different one.
        shift = jax.random.randint(jax.random.key(3 + t), tokens.shape, 1, cfg.vocab_size)
        future = jnp.arange(length) > t
        perturbed = jnp.where(future, (tokens + shift) % cfg.vocab_size, tokens)
        assert bool(jnp.all((perturbed != tokens) == future))
        out = apply(perturbed)
        np.testing.assert_array_equal(out[:, :t + 1], logits[:, :t + 1])
        assert not np.array_equal(out[:, t + 1:], logits[:, t + 1:])


def test_dropout_only_when_not_deterministic():
    cfg = small_config(dropout=0.5)
    tokens = jax.random.randint(jax.random.key(1), (2, 8), 0, cfg.vocab_size)
    params = init(cfg)
    eval_logits = GPT(cfg).apply({"params": params}, tokens)
    np.testing.assert_array_equal(eval_logits, GPT(cfg).apply({"params": params}, tokens))
    train = GPT(cfg.replace(deterministic=False))
    a = train.apply({"params": params}, tokens, rngs={"dropout": jax.random.key(1)})
    b = train.apply({"params": params}, tokens, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(a, eval_logits) and not np.allclose(a, b)


def test_untied_head_has_its_own_weights():
    tied, untied = init(small_config()), init(small_config(tie_embeddings=False))
    assert "lm_head" not in tied and "lm_head" in untied
    assert count_parameters(untied) - count_parameters(tied) == 16 * 11 + 11


def test_sequence_longer_than_max_len_is_refused():
    cfg = small_config(max_len=8)
    params = init(cfg, 8)
    with pytest.raises(UserError, match=r"length 9 is longer than max_len=8"):
        GPT(cfg).apply({"params": params}, jnp.zeros((1, 9), jnp.int32))


def test_trace_labels_tokens_or_numbers_the_columns_of_compressed_variants():
    from configs.abc_sort import get_config
    from lowrank_jax.attention import weights_are_per_token
    from lowrank_jax.tasks import abc_sort
    from lowrank_jax.training.config import check_train_config, run_spec

    for attention, token_labels in (("deep_qkv", True), ("linformer", False)):
        model_cfg, _ = check_train_config(run_spec(get_config(attention)))
        model = GPT(model_cfg)
        params = model.init(jax.random.key(0), jnp.zeros((1, 6), jnp.int32))["params"]
        steps = abc_sort.trace(abc_sort.traceable(model, params), "cab")
        text = abc_sort.format_trace("cab", steps, weights_are_per_token(model_cfg))
        assert len(steps) == 3 and text.count("head 1: [") == 3
        assert ("[c:" in text) == token_labels and ("[#0:" in text) == (not token_labels)


def scatter_adds(jaxpr):
    """Every scatter-add in a jaxpr and the jaxprs nested in its equations."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "scatter-add":
            yield eqn
        for value in eqn.params.values():
            inner = getattr(value, "jaxpr", value)
            if hasattr(inner, "eqns"):
                yield from scatter_adds(inner)


@pytest.mark.parametrize("at_positions", [False, True])
def test_bfloat16_model_accumulates_its_embedding_gradient_in_float32(at_positions):
    # A bfloat16 scatter-add is 16-bit atomics on a GPU: MQAR's d-128 step took 258 ms
    # with it and 2.3 ms without (benchmarks/embedding_scatter_h200.log).
    cfg = small_config(dtype="bfloat16")
    model = GPT(cfg)
    tokens = jnp.zeros((2, cfg.max_len), jnp.int32)
    positions = jnp.array([[1, 3], [0, 2]]) if at_positions else None
    params = model.init(jax.random.key(0), tokens)["params"]
    grad = jax.make_jaxpr(jax.grad(
        lambda p: model.apply({"params": p}, tokens, logit_positions_BP=positions).sum()))(params)
    found = list(scatter_adds(grad.jaxpr))
    assert len(found) == 1 + at_positions, "the lookups' gradients are scatter-adds"
    assert all(v.aval.dtype == jnp.float32 for eqn in found for v in eqn.invars
               if jnp.issubdtype(v.aval.dtype, jnp.floating))


@pytest.mark.parametrize("tie", [True, False])
def test_logits_at_positions_are_those_of_every_position_picked_out(tie):
    cfg = small_config(tie_embeddings=tie)
    model = GPT(cfg)
    tokens = jax.random.randint(jax.random.key(1), (3, cfg.max_len), 0, cfg.vocab_size)
    params = model.init(jax.random.key(2), tokens)["params"]
    positions = jnp.array([[0, 5, 2], [7, 7, 1], [cfg.max_len - 1, 3, 4]])
    every = model.apply({"params": params}, tokens)
    picked = model.apply({"params": params}, tokens, logit_positions_BP=positions)
    assert picked.shape == (3, 3, cfg.vocab_size)
    np.testing.assert_allclose(picked, every[jnp.arange(3)[:, None], positions], rtol=1e-6,
                               atol=1e-6)
