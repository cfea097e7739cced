"""Seed 004: approximate softmax(Q K^T) V by an L x e attention softmax(Q K_hat^T) over e
learned keys, i.e. a Linformer whose keys are fitted to a truncated SVD of the attention.

Pipeline (float64 unless asked for float32; the seed applies no 1/sqrt(d) scaling, so
neither do we):
    A = softmax(Q K^T)                        L x L, rows sum to 1
    A ~ U S D                                 rank-e truncated SVD, U S is L x e, D is e x L
    P = U S + offset, offset = 1 - min(U S)   so that every entry of P is >= 1 and log(P) exists
    M_offset = argmin ||P M - U S||           e x e, so that P M_offset D ~ U S D
    r = P 1, A_hat = P / r                    row-normalised P, itself a softmax of log(P)
    V_hat = M_offset D V                      e x d_v
    K_hat = argmin ||Q K_hat^T - log(P)||     e x d; overdetermined whenever L > d
    A_hat' = softmax(Q K_hat^T)               L x e
    A_p  = (A_hat  M_offset D) * r,   out_p  = (A_hat  V_hat) * r
    A_pp = (A_hat' M_offset D) * r,   out_pp = (A_hat' V_hat) * r
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lowrank_jax.validation import is_int, is_number, require


class Decomposition(NamedTuple):
    a_LxL: np.ndarray
    u_s_LxE: np.ndarray
    d_ExL: np.ndarray
    offset: float
    positive_LxE: np.ndarray        # U S + offset
    m_offset_ExE: np.ndarray
    rowsum_L: np.ndarray
    a_hat_LxE: np.ndarray
    v_hat_ExV: np.ndarray
    k_hat_ExD: np.ndarray
    fitted_logits_LxE: np.ndarray   # Q K_hat^T, the least-squares fit of log(U S + offset)
    a_hat_prime_LxE: np.ndarray
    a_p_LxL: np.ndarray
    a_pp_LxL: np.ndarray
    out_LxV: np.ndarray
    out_p_LxV: np.ndarray
    out_pp_LxV: np.ndarray


class StageErrors(NamedTuple):
    """Relative Frobenius errors ||approx - exact|| / ||exact|| unless named otherwise."""
    truncation: float          # U S D against A
    offset_fit: float          # (U S + offset) M_offset against U S
    a_p: float                 # A_p against A
    k_hat_residual: float      # Q K_hat^T against log(U S + offset)
    a_hat_prime: float         # A_hat' against A_hat
    scale_mismatch: float      # mean |log(sum_j exp(Q K_hat^T)_ij) - log(r_i)|, see row_scale_mismatch
    a_pp: float                # A_pp against A
    out_p: float               # out_p against out
    out_pp: float              # out_pp against out
    out_pp_mean_row_l2: float  # the seed's number: mean over rows of ||out - out_pp||_2


def softmax_rows(x_NxM: np.ndarray) -> np.ndarray:
    shifted_NxM = x_NxM - x_NxM.max(axis=-1, keepdims=True)  # exp cannot overflow
    exp_NxM = np.exp(shifted_NxM)
    return exp_NxM / exp_NxM.sum(axis=-1, keepdims=True)


def logsumexp_rows(x_NxM: np.ndarray) -> np.ndarray:
    top_N = x_NxM.max(axis=-1)
    return top_N + np.log(np.exp(x_NxM - top_N[:, None]).sum(axis=-1))


def least_squares(a_NxM: np.ndarray, b_NxK: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(a_NxM, b_NxK, rcond=None)[0]


def truncated_svd(svd: tuple[np.ndarray, np.ndarray, np.ndarray], rank: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """U S (L x rank) and D (rank x L) of the best rank-`rank` approximation, from the full
    SVD (u, s, d) = np.linalg.svd(A), which a sweep over ranks computes once."""
    u_LxL, s_L, d_LxL = svd
    return u_LxL[:, :rank] * s_L[:rank], d_LxL[:rank]


def positive_offset(u_s_LxE: np.ndarray) -> float:
    """The seed's shift: the smallest entry of U S + offset is exactly 1, so its log is >= 0."""
    return float(1.0 - u_s_LxE.min())


def relative_frobenius(approx: np.ndarray, exact: np.ndarray) -> float:
    """||approx - exact|| / ||exact||; 0 when both are zero (l = d = 1 makes log P zero)."""
    error, scale = np.linalg.norm(approx - exact), np.linalg.norm(exact)
    return float(error / scale) if scale > 0 else (0.0 if error == 0 else float("inf"))


def mean_row_l2(approx_NxM: np.ndarray, exact_NxM: np.ndarray) -> float:
    return float(np.linalg.norm(approx_NxM - exact_NxM, axis=-1).mean())


def row_scale_mismatch(fitted_logits_LxE: np.ndarray, rowsum_L: np.ndarray) -> float:
    """Softmax discards each row's scale sum_j exp(logits); A_pp puts back r_i, the scale of
    the exact target log(P). This is how far apart the two are, as a mean |log ratio|:
    zero when the K_hat fit is exact, and a per-row shift of the logits shows up here only."""
    return float(np.abs(logsumexp_rows(fitted_logits_LxE) - np.log(rowsum_L)).mean())


def check_matrix(name: str, x: np.ndarray) -> None:
    require(x.ndim == 2, f"{name}.shape={x.shape} is not allowed; it must be a 2-D matrix.")
    require(bool(np.isfinite(x).all()),
            f"{name} has non-finite entries, which is not allowed; every entry must be finite.")


def check_queries(q_LxD: np.ndarray) -> None:
    length, width = q_LxD.shape
    # The seed asserts l >= d: with fewer tokens than dimensions the K_hat fit is underdetermined.
    require(length >= width,
            f"q.shape={q_LxD.shape} is not allowed; the sequence length must be at least the width (l >= d).")
    # A zero query makes its row of Q K_hat^T zero for every K_hat, so that row of log(P) cannot be fitted.
    zero_rows = np.flatnonzero(~q_LxD.any(axis=-1))
    require(zero_rows.size == 0,
            f"q row {zero_rows[0] if zero_rows.size else -1} is all zeros, which is not allowed; "
            "every query row needs a nonzero entry.")


def check_rank(rank, length: int) -> None:
    require(is_int(rank) and 1 <= rank <= length,
            f"rank={rank!r} is not allowed; it must be an integer from 1 to the sequence length {length}.")


def check_values(v_LxV: np.ndarray, q_LxD: np.ndarray) -> None:
    require(v_LxV.shape[0] == q_LxD.shape[0],
            f"v.shape={v_LxV.shape} is not allowed with q.shape={q_LxD.shape}; v needs one row per query.")


def check_inputs(q_LxD: np.ndarray, k_LxD: np.ndarray, v_LxV: np.ndarray, rank) -> None:
    for name, x in (("q", q_LxD), ("k", k_LxD), ("v", v_LxV)):
        check_matrix(name, x)
    require(k_LxD.shape == q_LxD.shape,
            f"k.shape={k_LxD.shape} is not allowed with q.shape={q_LxD.shape}; they must be equal.")
    check_values(v_LxV, q_LxD)
    check_queries(q_LxD)
    check_rank(rank, q_LxD.shape[0])


def check_attention(a_LxL: np.ndarray, q_LxD: np.ndarray, v_LxV: np.ndarray) -> None:
    for name, x in (("a", a_LxL), ("q", q_LxD), ("v", v_LxV)):
        check_matrix(name, x)
    length = q_LxD.shape[0]
    require(a_LxL.shape == (length, length),
            f"a.shape={a_LxL.shape} is not allowed with q.shape={q_LxD.shape}; "
            f"the attention must be ({length}, {length}), one row and one column per token.")
    # Float32 weights from a model sum to 1 within about 1e-6 per row.
    require(bool((a_LxL >= 0).all()) and np.allclose(a_LxL.sum(axis=-1), 1, atol=1e-3),
            "a is not allowed; it must be attention weights (entries >= 0, every row summing to 1).")
    check_values(v_LxV, q_LxD)
    check_queries(q_LxD)


def as_dtype(dtype, *arrays) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(x, dtype=dtype) for x in arrays)


def decompose(q_LxD: np.ndarray, k_LxD: np.ndarray, v_LxV: np.ndarray, rank: int) -> Decomposition:
    """The seed's pipeline from Q, K, V: A = softmax(Q K^T), unscaled."""
    q_LxD, k_LxD, v_LxV = as_dtype(np.float64, q_LxD, k_LxD, v_LxV)
    check_inputs(q_LxD, k_LxD, v_LxV, rank)
    a_LxL = softmax_rows(q_LxD @ k_LxD.T)
    return pipeline(a_LxL, np.linalg.svd(a_LxL), q_LxD, v_LxV, rank)


def decompose_attention(a_LxL: np.ndarray, q_LxD: np.ndarray, v_LxV: np.ndarray, rank: int
                        ) -> Decomposition:
    """The seed's pipeline on given attention weights A (a model's, causal mask included)
    and the queries Q with A = softmax(Q K^T) for some K: a layer's scaled queries."""
    a_LxL, q_LxD, v_LxV = as_dtype(np.float64, a_LxL, q_LxD, v_LxV)
    check_attention(a_LxL, q_LxD, v_LxV)
    check_rank(rank, q_LxD.shape[0])
    return pipeline(a_LxL, np.linalg.svd(a_LxL), q_LxD, v_LxV, rank)


def rank_sweep(a_LxL: np.ndarray, q_LxD: np.ndarray, v_LxV: np.ndarray, ranks,
               dtype=np.float64) -> list[StageErrors]:
    """stage_errors(decompose_attention(a, q, v, e)) for each e in `ranks`, one SVD for all;
    `dtype` np.float32 runs every stage in single precision, as the notebook did."""
    a_LxL, q_LxD, v_LxV = as_dtype(dtype, a_LxL, q_LxD, v_LxV)
    check_attention(a_LxL, q_LxD, v_LxV)
    for rank in ranks:
        check_rank(rank, q_LxD.shape[0])
    svd = np.linalg.svd(a_LxL)
    return [stage_errors(pipeline(a_LxL, svd, q_LxD, v_LxV, rank)) for rank in ranks]


def pipeline(a_LxL, svd, q_LxD, v_LxV, rank: int) -> Decomposition:
    """Every stage, on checked float64 inputs; `svd` is np.linalg.svd(a_LxL)."""
    u_s_LxE, d_ExL = truncated_svd(svd, rank)
    offset = positive_offset(u_s_LxE)
    positive_LxE = u_s_LxE + offset
    m_offset_ExE = least_squares(positive_LxE, u_s_LxE)
    rowsum_L = positive_LxE.sum(axis=-1)
    a_hat_LxE = positive_LxE / rowsum_L[:, None]
    v_hat_ExV = m_offset_ExE @ d_ExL @ v_LxV
    k_hat_ExD = least_squares(q_LxD, np.log(positive_LxE)).T
    fitted_logits_LxE = q_LxD @ k_hat_ExD.T
    a_hat_prime_LxE = softmax_rows(fitted_logits_LxE)
    return Decomposition(
        a_LxL=a_LxL, u_s_LxE=u_s_LxE, d_ExL=d_ExL, offset=offset, positive_LxE=positive_LxE,
        m_offset_ExE=m_offset_ExE, rowsum_L=rowsum_L, a_hat_LxE=a_hat_LxE, v_hat_ExV=v_hat_ExV,
        k_hat_ExD=k_hat_ExD, fitted_logits_LxE=fitted_logits_LxE, a_hat_prime_LxE=a_hat_prime_LxE,
        a_p_LxL=(a_hat_LxE @ m_offset_ExE @ d_ExL) * rowsum_L[:, None],
        a_pp_LxL=(a_hat_prime_LxE @ m_offset_ExE @ d_ExL) * rowsum_L[:, None],
        out_LxV=a_LxL @ v_LxV,
        out_p_LxV=(a_hat_LxE @ v_hat_ExV) * rowsum_L[:, None],
        out_pp_LxV=(a_hat_prime_LxE @ v_hat_ExV) * rowsum_L[:, None])


def stage_errors(dec: Decomposition) -> StageErrors:
    return StageErrors(
        truncation=relative_frobenius(dec.u_s_LxE @ dec.d_ExL, dec.a_LxL),
        offset_fit=relative_frobenius(dec.positive_LxE @ dec.m_offset_ExE, dec.u_s_LxE),
        a_p=relative_frobenius(dec.a_p_LxL, dec.a_LxL),
        k_hat_residual=relative_frobenius(dec.fitted_logits_LxE, np.log(dec.positive_LxE)),
        a_hat_prime=relative_frobenius(dec.a_hat_prime_LxE, dec.a_hat_LxE),
        scale_mismatch=row_scale_mismatch(dec.fitted_logits_LxE, dec.rowsum_L),
        a_pp=relative_frobenius(dec.a_pp_LxL, dec.a_LxL),
        out_p=relative_frobenius(dec.out_p_LxV, dec.out_LxV),
        out_pp=relative_frobenius(dec.out_pp_LxV, dec.out_LxV),
        out_pp_mean_row_l2=mean_row_l2(dec.out_pp_LxV, dec.out_LxV))


def synthetic_inputs(d: int, l: int, psd_ratio: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seed's Q, K, V (each l x d). With R uniform on [0, 1)^{d x d}, the structured part
    is R R stacked over l - d rows of ones; psd_ratio blends it with fresh uniform noise
    (1 gives Q = K = the structured part, 0 gives pure noise). V is uniform noise."""
    require(is_int(d) and d >= 1, f"d={d!r} is not allowed; it must be a positive integer.")
    require(is_int(l) and l >= d, f"l={l!r} is not allowed; it must be an integer of at least d={d}.")
    require(is_number(psd_ratio) and 0 <= psd_ratio <= 1,
            f"psd_ratio={psd_ratio!r} is not allowed; it must be a number in [0, 1].")
    rng = np.random.default_rng(seed)
    r_DxD = rng.random((d, d))
    structured_LxD = np.concatenate([r_DxD @ r_DxD, np.ones((l - d, d))], axis=0)
    q_LxD = rng.random((l, d)) * (1 - psd_ratio) + structured_LxD * psd_ratio
    k_LxD = rng.random((l, d)) * (1 - psd_ratio) + structured_LxD * psd_ratio
    v_LxD = rng.random((l, d))
    return q_LxD, k_LxD, v_LxD


def synthetic_sweep(d: int, l: int, ranks, psd_ratios, seeds, dtype=np.float64) -> list[dict]:
    """One row per (psd_ratio, seed, rank): the seed's inputs and every stage's error, each
    stage computed in `dtype` (the inputs are drawn in float64 either way)."""
    rows = []
    for psd_ratio in psd_ratios:
        for seed in seeds:
            q_LxD, k_LxD, v_LxD = as_dtype(dtype, *synthetic_inputs(d, l, psd_ratio, seed))
            a_LxL = softmax_rows(q_LxD @ k_LxD.T)
            for rank, errors in zip(ranks, rank_sweep(a_LxL, q_LxD, v_LxD, ranks, dtype)):
                rows.append({"psd_ratio": psd_ratio, "seed": seed, "rank": rank, **errors._asdict()})
    return rows


def dropped_energy(singular_values: np.ndarray, ranks: int) -> np.ndarray:
    """Entry e - 1, for e = 1..ranks: the sum of the squared singular values past the e-th,
    the squared Frobenius error of the best rank-e approximation (Eckart-Young)."""
    energy = np.zeros(max(ranks, len(singular_values)) + 1)  # a zero past the end
    energy[:len(singular_values)] = np.asarray(singular_values, np.float64) ** 2
    return np.cumsum(energy[::-1])[::-1][1:ranks + 1]


def truncation_errors(singular_values_L: np.ndarray) -> np.ndarray:
    """Entry e - 1 is the relative Frobenius error of the best rank-e approximation; all
    zeros for a zero matrix, which every rank reproduces."""
    total = float(np.sum(np.square(singular_values_L, dtype=np.float64)))
    dropped_L = dropped_energy(singular_values_L, len(singular_values_L))
    return np.sqrt(dropped_L / total) if total > 0 else np.zeros_like(dropped_L)


def smallest_rank(ranks, errors, target: float) -> int | None:
    """The first rank (ranks ascending) whose error is at most `target`; None if none is."""
    return next((int(r) for r, err in zip(ranks, errors) if err <= target), None)


def rank_grid(length: int, points: int = 32) -> list[int]:
    """About `points` ranks from 1 to `length`, evenly spaced, both ends included."""
    step = max(1, length // points)
    return sorted({1, *range(step, length + 1, step), length})
