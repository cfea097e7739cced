"""Seed 004 on a trained model: one attention head's weights over a batch of sequences,
its singular-value spectrum, the pipeline's errors at each rank, and how much of it a
causal Linformer would compress, averaged over the batch.

The causal Linformer (lowrank_jax.attention.linformer) keeps the query's own block of b
tokens exact and compresses every finished block's keys and values with one shared
c x b projection P. Its output on finished blocks is then W (P V_block): the weights a
query puts on a finished block, A[q, block], must be close to W_q P for some W. The best
shared P spans the top c right singular vectors of those rows stacked over every query
and block, so their spectrum says which c is enough, before any softmax is fitted.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lowrank_jax.analysis.softmax_lowrank import rank_sweep, truncation_errors

# The stage errors a head report keeps (see softmax_lowrank.StageErrors).
REPORTED = ("truncation", "k_hat_residual", "a_pp", "out_p", "out_pp", "out_pp_mean_row_l2")


class HeadAnalysis(NamedTuple):
    """Means over the batch; errors are relative to ||A|| (Frobenius) unless named otherwise."""
    spectrum_L: np.ndarray          # singular values over the largest
    truncation_L: np.ndarray        # entry e - 1: error of the best rank-e approximation
    errors: dict[str, np.ndarray]   # REPORTED name -> its value at each swept rank
    finished_share: float           # ||weights on finished blocks|| / ||A||
    block_truncation_b: np.ndarray  # entry c - 1: error of the best shared c x b block projection


def finished_block_rows(a_LxL: np.ndarray, block_size: int) -> np.ndarray:
    """(rows, b): for every finished block j, the weights of each later query on its keys."""
    return np.concatenate([a_LxL[(j + 1) * block_size:, j * block_size:(j + 1) * block_size]
                           for j in range(a_LxL.shape[0] // block_size - 1)])


def analyse_head(a_BxLxL: np.ndarray, q_BxLxD: np.ndarray, v_BxLxV: np.ndarray, ranks,
                 block_size: int) -> HeadAnalysis:
    """`block_size` divides L with at least two blocks (checked by the caller)."""
    spectra, truncations, sweeps, shares, blocks = [], [], [], [], []
    for a_LxL, q_LxD, v_LxV in zip(a_BxLxL, q_BxLxD, v_BxLxV, strict=True):
        a_LxL = np.asarray(a_LxL, np.float64)
        s_L = np.linalg.svd(a_LxL, compute_uv=False)
        spectra.append(s_L / s_L[0])
        truncations.append(truncation_errors(s_L))
        sweeps.append(rank_sweep(a_LxL, q_LxD, v_LxV, ranks))
        finished_Nxb = finished_block_rows(a_LxL, block_size)
        share = np.linalg.norm(finished_Nxb) / np.linalg.norm(a_LxL)
        shares.append(share)
        blocks.append(share * truncation_errors(np.linalg.svd(finished_Nxb, compute_uv=False)))
    errors = {name: np.mean([[getattr(e, name) for e in sweep] for sweep in sweeps], axis=0)
              for name in REPORTED}
    return HeadAnalysis(np.mean(spectra, axis=0), np.mean(truncations, axis=0), errors,
                        float(np.mean(shares)), np.mean(blocks, axis=0))
