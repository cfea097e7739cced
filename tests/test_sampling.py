"""Sampling semantics against hand-computed cases (HF's order and boundaries)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lowrank_jax.sampling import SamplingConfig, keep_top_k, keep_top_p, penalize_repeats, sample
from lowrank_jax.validation import UserError

NEG = -np.inf


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    logits = jnp.array([[2.0, -2.0, 1.0, -1.0]])
    seen = jnp.array([[True, True, False, False]])
    np.testing.assert_allclose(penalize_repeats(logits, seen, 2.0), [[1.0, -4.0, 1.0, -1.0]])


def test_top_k_keeps_the_k_largest_and_zero_keeps_all():
    logits = jnp.array([[1.0, 3.0, 2.0, 0.0], [5.0, 5.0, 1.0, 0.0]])
    np.testing.assert_array_equal(keep_top_k(logits, 2), [[NEG, 3.0, 2.0, NEG], [5.0, 5.0, NEG, NEG]])
    np.testing.assert_array_equal(keep_top_k(logits, 0), logits)
    np.testing.assert_array_equal(keep_top_k(logits, 1)[1], [5.0, 5.0, NEG, NEG])  # ties kept


@pytest.mark.parametrize("p,kept", [(0.5, [True, False, False]), (0.49, [True, False, False]),
                                    (0.8, [True, True, False]), (0.81, [True, True, True]),
                                    (1.0, [True, True, True])])
def test_top_p_keeps_the_token_that_crosses_p(p, kept):
    logits = jnp.log(jnp.array([[0.2, 0.5, 0.3]]))  # ranked: 0.5, 0.3, 0.2
    out = np.asarray(keep_top_p(logits, p))[0]
    expected_kept = dict(zip([1, 2, 0], kept))
    assert [bool(np.isfinite(out[i])) for i in range(3)] == [expected_kept[i] for i in range(3)]


def test_temperature_zero_is_greedy_and_ignores_the_key():
    logits = jnp.array([[0.1, 2.0, 1.9], [3.0, -1.0, 0.0]])
    seen = jnp.zeros_like(logits, bool)
    cfg = SamplingConfig(temperature=0.0)
    for seed in range(3):
        np.testing.assert_array_equal(sample(jax.random.key(seed), logits, seen, cfg), [1, 0])


def test_sampling_frequencies_follow_the_filtered_distribution():
    logits = jnp.log(jnp.array([0.1, 0.2, 0.3, 0.4]))[None].repeat(20000, 0)
    seen = jnp.zeros_like(logits, bool)
    draws = sample(jax.random.key(0), logits, seen, SamplingConfig(top_k=3, top_p=1.0))
    freq = np.bincount(np.asarray(draws), minlength=4) / draws.size
    np.testing.assert_allclose(freq, [0.0, 2 / 9, 3 / 9, 4 / 9], atol=0.015)
    hot = sample(jax.random.key(1), logits, seen, SamplingConfig(temperature=0.5))
    freq_hot = np.bincount(np.asarray(hot), minlength=4) / hot.size
    expected = np.array([0.1, 0.2, 0.3, 0.4]) ** 2
    np.testing.assert_allclose(freq_hot, expected / expected.sum(), atol=0.015)


@pytest.mark.parametrize("changes,message", [
    (dict(top_p=0.0), r"top_p=0\.0 is not allowed; it must be in \(0, 1\]\."),
    (dict(top_p=1.5), r"top_p=1\.5 is not allowed; it must be in \(0, 1\]\."),
    (dict(top_k=-1), r"top_k=-1 is not allowed; it must be an integer from 0 to 2147483647 \(0 "
                     r"keeps every token\)\."),
    (dict(top_k=2**31), r"top_k=2147483648 is not allowed; it must be an integer from 0 to "),
    (dict(temperature=-0.1), r"temperature=-0\.1 is not allowed; it must be a number >= 0"),
    (dict(repetition_penalty=0), r"repetition_penalty=0 is not allowed; it must be a positive number"),
])
def test_bad_sampling_settings(changes, message):
    with pytest.raises(UserError, match=message):
        SamplingConfig(**changes).check()


def test_top_p_of_one_keeps_every_token():
    """The float32 cumulative sum reaches 1 before the last token: without the p >= 1 case
    these 40 rows lost 906,864 tail tokens at top_p = 1, which must keep every one."""
    logits_BV = jax.random.normal(jax.random.key(0), (40, 50000)) * 8
    kept = jnp.isfinite(keep_top_p(logits_BV, 1.0))
    assert bool(kept.all())
    assert not bool(jnp.isfinite(keep_top_p(logits_BV, 0.5)).all())
