"""Seed 004 on a trained model: one attention head's weights over a batch of sequences,
its singular-value spectrum, the pipeline's errors at each rank, and how many slots a
causal Linformer would need for it.

The causal Linformer (lowrank_jax.attention.linformer) keeps the query's own block of b
tokens exact and compresses finished block j with its own b x c projection F_j, a
parameter: the same for every sequence, and for every head of a layer under
sharing="headwise". Its weights on block j's values are then W F_j^T: the rows of A on
block j, over every sequence (and head) that shares F_j, are approximated by a rank-c
row space. Whatever the softmax makes of W, its error is at least the best rank-c error
of those stacked rows (Eckart-Young), summed over the blocks: a lower bound on the error,
so the smallest c meeting a target is a lower bound on the slots needed.

Shapes as in softmax_lowrank.py (core.py's legend: B batch, L query and S key positions,
D width; N a stack of sequences or heads).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lowrank_jax.analysis.softmax_lowrank import dropped_energy, rank_sweep, truncation_errors

# The stage errors a head report keeps (see softmax_lowrank.StageErrors).
REPORTED = ("truncation", "k_hat_residual", "a_pp", "out_p", "out_pp", "out_pp_mean_row_l2")


class FinishedBlocks(NamedTuple):
    """Relative to ||A|| over every matrix that shares the projections."""
    share: float                    # ||weights on finished blocks|| / ||A||
    slot_errors_b: np.ndarray       # entry c - 1: least error with c slots per finished block


class HeadAnalysis(NamedTuple):
    spectrum_L: np.ndarray          # singular values over the largest, mean over the batch
    truncation_L: np.ndarray        # entry e - 1: best rank-e relative error, mean over the batch
    errors: dict[str, np.ndarray]   # REPORTED name -> mean over the batch at each swept rank
    finished: FinishedBlocks        # this head's own projections (sharing="none")


def finished_block_rows(a_NLS: np.ndarray, block: int, block_size: int) -> np.ndarray:
    """(rows, b): the weights of every later query of every matrix on finished block `block`."""
    keys = slice(block * block_size, (block + 1) * block_size)
    return a_NLS[:, (block + 1) * block_size:, keys].reshape(-1, block_size)


def finished_blocks(a_NLS: np.ndarray, block_size: int) -> FinishedBlocks:
    """The bound for N attention matrices (L x L, causal) that share one projection per
    block; `block_size` divides L into at least two blocks (checked by the caller)."""
    a_NLS = np.asarray(a_NLS, np.float64)
    finished, dropped_b = 0.0, np.zeros(block_size)
    for block in range(a_NLS.shape[-1] // block_size - 1):
        s = np.linalg.svd(finished_block_rows(a_NLS, block, block_size), compute_uv=False)
        finished += float(np.sum(s ** 2))
        dropped_b += dropped_energy(s, block_size)
    total = float(np.sum(a_NLS ** 2))
    return FinishedBlocks(float(np.sqrt(finished / total)), np.sqrt(dropped_b / total))


def analyse_head(a_BLS: np.ndarray, q_BLD: np.ndarray, v_BSW: np.ndarray, ranks,
                 block_size: int) -> HeadAnalysis:
    spectra, truncations, sweeps = [], [], []
    for a_LS, q_LD, v_SW in zip(a_BLS, q_BLD, v_BSW, strict=True):
        s_L = np.linalg.svd(np.asarray(a_LS, np.float64), compute_uv=False)
        spectra.append(s_L / s_L[0])
        truncations.append(truncation_errors(s_L))
        sweeps.append(rank_sweep(a_LS, q_LD, v_SW, ranks))
    errors = {name: np.mean([[getattr(e, name) for e in sweep] for sweep in sweeps], axis=0)
              for name in REPORTED}
    return HeadAnalysis(np.mean(spectra, axis=0), np.mean(truncations, axis=0), errors,
                        finished_blocks(a_BLS, block_size))
