"""Seed 004 on one head of a model: batch means of the spectrum and the pipeline, and the
finished-block spectrum that says how many slots a causal Linformer needs."""
import numpy as np
import pytest

from lowrank_jax.analysis.heads import REPORTED, analyse_head, finished_block_rows
from lowrank_jax.analysis.softmax_lowrank import rank_sweep, softmax_rows, truncation_errors

L, D, B = 12, 3, 4


def causal_attention(logits_LxL):
    return softmax_rows(np.where(np.tril(np.ones((L, L), bool)), logits_LxL, -np.inf))


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    a = np.stack([causal_attention(rng.normal(size=(L, L)) * 2) for _ in range(2)])
    return a, rng.normal(size=(2, L, D)), rng.normal(size=(2, L, 2))


def test_finished_block_rows_are_later_queries_on_each_finished_block():
    a = np.arange(36.0).reshape(6, 6)
    rows = finished_block_rows(a, block_size=2)
    np.testing.assert_array_equal(rows, np.concatenate([a[2:, 0:2], a[4:, 2:4]]))


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


def test_finished_blocks_share_and_slot_errors(batch):
    a, q, v = batch
    head = analyse_head(a, q, v, [L], block_size=B)
    far = np.arange(L)[:, None] // B > np.arange(L)[None, :] // B
    shares = [np.linalg.norm(x * far) / np.linalg.norm(x) for x in a]
    assert head.finished_share == pytest.approx(np.mean(shares), rel=1e-12)
    one_slot = [share * truncation_errors(np.linalg.svd(finished_block_rows(x, B), compute_uv=False))[0]
                for share, x in zip(shares, a)]
    assert head.block_truncation_b[0] == pytest.approx(np.mean(one_slot), rel=1e-12)
    assert head.block_truncation_b.shape == (B,) and head.block_truncation_b[-1] < 1e-12
    assert np.all(np.diff(head.block_truncation_b) <= 1e-15)


def test_attention_within_blocks_needs_no_slots(batch):
    _, q, v = batch
    own_block = np.arange(L)[:, None] // B == np.arange(L)[None, :] // B
    local = np.stack([causal_attention(np.where(own_block, 0.0, -np.inf))] * 2)
    head = analyse_head(local, q, v, [L], block_size=B)
    assert head.finished_share == 0 and np.all(head.block_truncation_b == 0)
