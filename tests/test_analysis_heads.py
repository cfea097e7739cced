"""Seed 004 on one head of a model: batch means of the spectrum and the pipeline, and the
finished-block spectrum that says how many slots a causal Linformer needs."""
import numpy as np
import pytest

from lowrank_jax.analysis.heads import REPORTED, analyse_head, finished_block_rows, finished_blocks
from lowrank_jax.analysis.softmax_lowrank import rank_sweep, softmax_rows, truncation_errors

L, D, B = 12, 3, 4


def causal_attention(logits_LS):
    return softmax_rows(np.where(np.tril(np.ones((L, L), bool)), logits_LS, -np.inf))


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    a = np.stack([causal_attention(rng.normal(size=(L, L)) * 2) for _ in range(2)])
    return a, rng.normal(size=(2, L, D)), rng.normal(size=(2, L, 2))


def test_finished_block_rows_are_later_queries_on_each_finished_block():
    a = np.arange(72.0).reshape(2, 6, 6)
    np.testing.assert_array_equal(finished_block_rows(a, 0, block_size=2),
                                  np.concatenate([a[0, 2:, 0:2], a[1, 2:, 0:2]]))
    np.testing.assert_array_equal(finished_block_rows(a, 1, block_size=2),
                                  np.concatenate([a[0, 4:, 2:4], a[1, 4:, 2:4]]))


def test_a_head_is_the_mean_of_its_sequences(batch):
    a, q, v = batch
    ranks = [1, 5, L]
    head = analyse_head(a, q, v, ranks, block_size=B)
    spectra = [np.linalg.svd(x, compute_uv=False) for x in a]
    np.testing.assert_allclose(head.spectrum_L, np.mean([s / s[0] for s in spectra], axis=0))
    np.testing.assert_allclose(head.truncation_L, np.mean([truncation_errors(s) for s in spectra], axis=0))
    sweeps = [rank_sweep(a[i], q[i], v[i], ranks) for i in range(2)]
    for name in REPORTED:
        expected = np.mean([[getattr(e, name) for e in sweep] for sweep in sweeps], axis=0)
        np.testing.assert_allclose(head.errors[name], expected, rtol=1e-12, err_msg=name)
    expected = finished_blocks(a, B)
    assert head.finished.share == expected.share
    np.testing.assert_array_equal(head.finished.slot_errors_b, expected.slot_errors_b)


def projection_error(a_NLS, projections):
    """||A - A with every finished block's weights projected on the row space of its P|| /
    ||A||, the error of a Linformer whose block j is compressed by P_j (c x b, orthonormal
    rows), the weights on the slots chosen freely (least squares)."""
    dropped = 0.0
    for j, p_cxb in enumerate(projections):
        rows = finished_block_rows(a_NLS, j, B)
        dropped += np.sum((rows - rows @ p_cxb.T @ p_cxb) ** 2)
    return np.sqrt(dropped / np.sum(a_NLS ** 2))


def test_slot_errors_are_reached_by_the_top_singular_vectors_and_beat_other_projections(batch):
    a, _, _ = batch
    found = finished_blocks(a, B)
    rng = np.random.default_rng(1)
    for c in range(1, B + 1):
        best = [np.linalg.svd(finished_block_rows(a, j, B))[2][:c] for j in range(L // B - 1)]
        assert projection_error(a, best) == pytest.approx(found.slot_errors_b[c - 1], rel=1e-9, abs=1e-12)
        for _ in range(5):  # random orthonormal rows do no better
            other = [np.linalg.qr(rng.normal(size=(B, c)))[0].T for _ in range(L // B - 1)]
            assert projection_error(a, other) >= found.slot_errors_b[c - 1] - 1e-12
    assert found.slot_errors_b[-1] < 1e-12 and np.all(np.diff(found.slot_errors_b) <= 1e-15)


def test_the_finished_share_is_the_weight_outside_the_own_block(batch):
    a, _, _ = batch
    far = np.arange(L)[:, None] // B > np.arange(L)[None, :] // B
    assert finished_blocks(a, B).share == pytest.approx(
        np.linalg.norm(a * far) / np.linalg.norm(a), rel=1e-12)


def test_attention_within_blocks_needs_no_slots():
    own_block = np.arange(L)[:, None] // B == np.arange(L)[None, :] // B
    local = np.stack([causal_attention(np.where(own_block, 0.0, -np.inf))] * 2)
    found = finished_blocks(local, B)
    assert found.share == 0 and np.all(found.slot_errors_b == 0)
