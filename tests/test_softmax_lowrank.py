"""Seed 004's softmax low-rank pipeline: every stage against a direct computation, exact
recovery at full rank, the guards' messages and the synthetic inputs."""
import itertools

import numpy as np
import pytest

from lowrank_jax import UserError
from lowrank_jax.analysis.softmax_lowrank import (
    decompose,
    decompose_attention,
    rank_grid,
    rank_sweep,
    row_scale_mismatch,
    smallest_rank,
    softmax_rows,
    stage_errors,
    synthetic_inputs,
    synthetic_sweep,
    truncation_errors,
)

L, D, V = 12, 4, 3


def random_inputs(seed=0, length=L, width=D):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(length, width)), rng.normal(size=(length, width)), rng.normal(size=(length, V))


@pytest.fixture(scope="module")
def inputs():
    return random_inputs()


@pytest.fixture(scope="module")
def dec(inputs):
    return decompose(*inputs, rank=5)


def test_attention_is_the_unscaled_softmax(inputs, dec):
    q, k, v = inputs
    exp_logits = np.exp(q @ k.T)
    np.testing.assert_allclose(dec.a_LS, exp_logits / exp_logits.sum(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(dec.out_LW, dec.a_LS @ v, rtol=1e-12)


def test_truncation_error_is_the_singular_value_tail(dec):
    s = np.linalg.svd(dec.a_LS, compute_uv=False)
    expected = np.sqrt((s[5:] ** 2).sum() / (s ** 2).sum())
    assert stage_errors(dec).truncation == pytest.approx(expected, rel=1e-9)
    assert dec.u_s_LR.shape == (L, 5) and dec.d_RS.shape == (5, L)


def test_offset_makes_the_smallest_entry_one(dec):
    assert dec.positive_LR.min() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(dec.positive_LR - dec.u_s_LR, dec.offset, atol=1e-12)


def test_least_squares_solutions_satisfy_the_normal_equations(inputs, dec):
    q = inputs[0]
    m_residual = dec.positive_LR @ dec.m_offset_RR - dec.u_s_LR
    np.testing.assert_allclose(dec.positive_LR.T @ m_residual, 0, atol=1e-10)
    k_residual = q @ dec.k_hat_RD.T - np.log(dec.positive_LR)
    np.testing.assert_allclose(q.T @ k_residual, 0, atol=1e-10)
    np.testing.assert_allclose(dec.fitted_logits_LR, q @ dec.k_hat_RD.T, rtol=1e-12)


def test_a_hat_is_row_normalised_and_a_softmax_of_the_log_target(dec):
    np.testing.assert_allclose(dec.rowsum_L, dec.positive_LR.sum(1), rtol=1e-12)
    np.testing.assert_allclose(dec.a_hat_LR.sum(1), 1.0, rtol=1e-12)
    # Why K_hat targets log(P): softmax(log P) is exactly A_hat.
    np.testing.assert_allclose(softmax_rows(np.log(dec.positive_LR)), dec.a_hat_LR, rtol=1e-12)


def test_recomputed_attention_and_reconstructions(inputs, dec):
    q, _, v = inputs
    logits = q @ dec.k_hat_RD.T
    np.testing.assert_allclose(dec.a_hat_prime_LR, np.exp(logits) / np.exp(logits).sum(1, keepdims=True),
                               rtol=1e-12)
    np.testing.assert_allclose(dec.v_hat_RW, dec.m_offset_RR @ dec.d_RS @ v, rtol=1e-12)
    r = dec.rowsum_L[:, None]
    np.testing.assert_allclose(dec.a_p_LS, r * (dec.a_hat_LR @ dec.m_offset_RR @ dec.d_RS), atol=1e-14)
    np.testing.assert_allclose(dec.a_pp_LS, r * (dec.a_hat_prime_LR @ dec.m_offset_RR @ dec.d_RS),
                               atol=1e-14)
    # Moving V inside (V_hat) must agree with applying the reconstructed attention to V.
    np.testing.assert_allclose(dec.out_p_LW, dec.a_p_LS @ v, atol=1e-12)
    np.testing.assert_allclose(dec.out_pp_LW, dec.a_pp_LS @ v, atol=1e-12)


def test_errors_match_direct_norms(dec):
    errors = stage_errors(dec)
    diff = dec.out_pp_LW - dec.out_LW
    assert errors.out_pp_mean_row_l2 == pytest.approx(np.sqrt((diff ** 2).sum(1)).mean(), rel=1e-12)
    assert errors.out_pp == pytest.approx(np.sqrt((diff ** 2).sum() / (dec.out_LW ** 2).sum()), rel=1e-12)
    assert errors.a_pp == pytest.approx(
        np.linalg.norm(dec.a_pp_LS - dec.a_LS) / np.linalg.norm(dec.a_LS), rel=1e-12)
    assert errors.k_hat_residual > 1e-6  # L > d: the K_hat system is overdetermined, so not exact


def test_full_rank_recovers_everything_before_the_k_hat_fit(inputs):
    errors = stage_errors(decompose(*inputs, rank=L))
    for name in ("truncation", "offset_fit", "a_p", "out_p"):
        assert getattr(errors, name) < 1e-10, name


def test_full_rank_with_square_q_recovers_the_output():
    # With l == d, Q is invertible, so the K_hat fit is exact too.
    errors = stage_errors(decompose(*random_inputs(seed=1, length=6, width=6), rank=6))
    for name in ("truncation", "a_p", "k_hat_residual", "a_hat_prime", "scale_mismatch", "a_pp", "out_pp"):
        assert getattr(errors, name) < 1e-10, name
    assert errors.out_pp_mean_row_l2 < 1e-10


def test_truncation_error_does_not_grow_with_rank(inputs):
    errors = [stage_errors(decompose(*inputs, rank=e)).truncation for e in range(1, L + 1)]
    assert all(later <= earlier + 1e-12 for earlier, later in itertools.pairwise(errors))
    assert errors[0] > 1e-3


def test_softmax_rows_is_stable_for_rows_of_very_different_scale():
    # The seed's setting has logits near 1e4 in some rows and near 1e2 in others.
    logits = np.array([[1e4, 1e4 - 1.0], [0.0, np.log(3.0)]])
    expected = np.array([[np.e, 1.0], [1.0, 3.0]])
    np.testing.assert_allclose(softmax_rows(logits), expected / expected.sum(1, keepdims=True), rtol=1e-12)


def test_scale_mismatch_sees_a_per_row_shift_that_softmax_hides(dec):
    shift_L = np.linspace(-0.5, 1.0, L)
    shifted = np.log(dec.positive_LR) + shift_L[:, None]
    np.testing.assert_allclose(softmax_rows(shifted), dec.a_hat_LR, rtol=1e-12)
    assert row_scale_mismatch(shifted, dec.rowsum_L) == pytest.approx(np.abs(shift_L).mean(), rel=1e-12)


def with_entry(x, row, value):
    x = x.copy()
    x[row] = value
    return x


GUARDS = [
    (lambda q, k, v: (q[:3], k[:3], v[:3], 2), r"^q\.shape=\(3, 4\) is not allowed; the sequence length must be at least the width \(l >= d\)\.$"),
    (lambda q, k, v: (q, k, v, 0), r"^rank=0 is not allowed; it must be an integer from 1 to the sequence length 12\.$"),
    (lambda q, k, v: (q, k, v, L + 1), r"^rank=13 is not allowed; it must be an integer from 1 to the sequence length 12\.$"),
    (lambda q, k, v: (q, k, v, 2.0), r"^rank=2\.0 is not allowed"),
    (lambda q, k, v: (with_entry(q, 2, np.nan), k, v, 2), r"^q has non-finite entries, which is not allowed; every entry must be finite\.$"),
    (lambda q, k, v: (q, with_entry(k, 0, np.inf), v, 2), r"^k has non-finite entries"),
    (lambda q, k, v: (q, k, with_entry(v, 1, -np.inf), 2), r"^v has non-finite entries"),
    (lambda q, k, v: (q, k[:, :3], v, 2), r"^k\.shape=\(12, 3\) is not allowed with q\.shape=\(12, 4\); they must be equal\.$"),
    (lambda q, k, v: (q, k, v[:5], 2), r"^v\.shape=\(5, 3\) is not allowed with q\.shape=\(12, 4\); v needs one row per query\.$"),
    (lambda q, k, v: (q[0], k, v, 2), r"^q\.shape=\(4,\) is not allowed; it must be a 2-D matrix\.$"),
    (lambda q, k, v: (with_entry(q, 7, 0.0), k, v, 2), r"^q row 7 is all zeros, which is not allowed; every query row needs a nonzero entry\.$"),
]


@pytest.mark.parametrize("corrupt, message", GUARDS)
def test_guards(inputs, corrupt, message):
    with pytest.raises(UserError, match=message):
        decompose(*corrupt(*inputs))


@pytest.mark.parametrize("kwargs, message", [
    ({"d": 0, "l": 4, "psd_ratio": 1.0}, r"^d=0 is not allowed; it must be a positive integer\.$"),
    ({"d": 8, "l": 4, "psd_ratio": 1.0}, r"^l=4 is not allowed; it must be an integer of at least d=8\.$"),
    ({"d": 4, "l": 8, "psd_ratio": 1.5}, r"^psd_ratio=1\.5 is not allowed; it must be a number in \[0, 1\]\.$"),
])
def test_synthetic_guards(kwargs, message):
    with pytest.raises(UserError, match=message):
        synthetic_inputs(seed=0, **kwargs)


def test_synthetic_inputs_shapes_and_determinism():
    q, k, v = synthetic_inputs(d=4, l=10, psd_ratio=0.5, seed=3)
    assert q.shape == k.shape == v.shape == (10, 4)
    for a, b in zip((q, k, v), synthetic_inputs(d=4, l=10, psd_ratio=0.5, seed=3)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(q, synthetic_inputs(d=4, l=10, psd_ratio=0.5, seed=4)[0])


def test_synthetic_inputs_blend():
    q, k, _ = synthetic_inputs(d=4, l=10, psd_ratio=1.0, seed=0)
    np.testing.assert_array_equal(q, k)  # noise has weight 0: Q and K are the structured part
    np.testing.assert_array_equal(q[4:], 1.0)  # the l - d rows of ones
    r = np.random.default_rng(0).random((4, 4))
    np.testing.assert_allclose(q[:4], r @ r, rtol=1e-12)
    q0, k0, _ = synthetic_inputs(d=4, l=10, psd_ratio=0.0, seed=0)
    assert not np.array_equal(q0, k0) and 0 <= q0.min() and q0.max() < 1


def test_given_attention_runs_the_same_pipeline(inputs, dec):
    q, k, v = inputs
    given = decompose_attention(softmax_rows(q @ k.T), q, v, rank=5)
    for name, expected in dec._asdict().items():
        np.testing.assert_allclose(getattr(given, name), expected, rtol=1e-9, atol=1e-12, err_msg=name)


def test_a_sweep_is_each_rank_on_its_own(inputs):
    q, k, v = inputs
    a = softmax_rows(q @ k.T)
    for rank, swept in zip((1, 4, L), rank_sweep(a, q, v, (1, 4, L))):
        np.testing.assert_allclose(swept, stage_errors(decompose(q, k, v, rank)), rtol=1e-9, atol=1e-13)


def test_truncation_errors_from_the_spectrum_are_the_stage_errors(inputs):
    q, k, v = inputs
    a = softmax_rows(q @ k.T)
    errors = truncation_errors(np.linalg.svd(a, compute_uv=False))
    expected = [e.truncation for e in rank_sweep(a, q, v, range(1, L + 1))]
    np.testing.assert_allclose(errors, expected, rtol=1e-7, atol=1e-13)
    assert errors[-1] == 0 and np.all(np.diff(errors) <= 0)


def test_smallest_rank_and_rank_grid():
    assert smallest_rank([1, 2, 4, 8], [0.5, 0.2, 0.1, 0.01], target=0.1) == 4
    assert smallest_rank([1, 2], [0.5, 0.2], target=0.1) is None
    assert rank_grid(10) == list(range(1, 11))
    grid = rank_grid(128)
    assert grid[0] == 1 and grid[-1] == 128 and len(grid) == 33 and set(np.diff(grid[1:])) == {4}
    assert rank_grid(130)[-1] == 130


def test_synthetic_sweep_rows_are_the_pipeline_on_the_seed_inputs():
    rows = synthetic_sweep(d=4, l=10, ranks=[2, 10], psd_ratios=[1.0, 0.0], seeds=[0, 1])
    assert [(r["psd_ratio"], r["seed"], r["rank"]) for r in rows] == list(
        itertools.product([1.0, 0.0], [0, 1], [2, 10]))
    direct = stage_errors(decompose(*synthetic_inputs(4, 10, 0.0, 1), rank=2))
    assert rows[6] == {"psd_ratio": 0.0, "seed": 1, "rank": 2, **direct._asdict()}


def test_notebook_setting_golden():
    """d 64, e 200, l 400, psd_ratio 1, seed 0: the figure in the README (a real run).
    Q = K with l - d rows of ones makes A numerically rank 2, so only the K_hat fit errs."""
    errors = stage_errors(decompose(*synthetic_inputs(64, 400, 1.0, seed=0), rank=200))
    assert errors.out_pp_mean_row_l2 == pytest.approx(1.938e-3, rel=1e-3)
    assert errors.truncation < 1e-12 and errors.out_p < 1e-12
    assert errors.k_hat_residual == pytest.approx(5.194e-3, rel=1e-3)


ATTENTION_GUARDS = [
    (lambda a, q, v: (a[:, :5], q, v), r"^a\.shape=\(12, 5\) is not allowed with q\.shape=\(12, 4\); the attention must be \(12, 12\)"),
    (lambda a, q, v: (a * 2, q, v), r"^a is not allowed; it must be attention weights \(entries >= 0, every row summing to 1\)\.$"),
    (lambda a, q, v: (with_entry(a, 0, np.r_[1.5, -0.5, np.zeros(L - 2)]), q, v), r"^a is not allowed"),
    (lambda a, q, v: (with_entry(a, 3, np.nan), q, v), r"^a has non-finite entries"),
    (lambda a, q, v: (a, q, v[:4]), r"^v\.shape=\(4, 3\) is not allowed"),
    (lambda a, q, v: (a, with_entry(q, 0, 0.0), v), r"^q row 0 is all zeros"),
]


@pytest.mark.parametrize("corrupt, message", ATTENTION_GUARDS)
def test_attention_guards(inputs, corrupt, message):
    q, k, v = inputs
    with pytest.raises(UserError, match=message):
        decompose_attention(*corrupt(softmax_rows(q @ k.T), q, v), rank=2)
    with pytest.raises(UserError, match=message):
        rank_sweep(*corrupt(softmax_rows(q @ k.T), q, v), ranks=[2])


def test_a_sweep_checks_every_rank(inputs):
    q, k, v = inputs
    with pytest.raises(UserError, match=r"^rank=13 is not allowed"):
        rank_sweep(softmax_rows(q @ k.T), q, v, ranks=[1, 13])


def test_float32_runs_every_stage_in_single_precision():
    full_rank = dict(d=4, l=10, ranks=[10], psd_ratios=[0.5], seeds=[0])
    (double,) = synthetic_sweep(**full_rank)
    (single,) = synthetic_sweep(**full_rank, dtype=np.float32)
    assert double["truncation"] < 1e-13 < 1e-8 < single["truncation"] < 1e-5


def test_a_one_token_sequence_has_finite_errors():
    """l = d = e = 1: log P is zero and so is its fit; 0 / 0 is reported as no error."""
    errors = stage_errors(decompose(*synthetic_inputs(d=1, l=1, psd_ratio=1.0, seed=0), rank=1))
    assert all(np.isfinite(errors)) and errors.k_hat_residual == 0
