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

Shape suffixes follow attention/core.py's legend (B batch, L query positions, S key
positions, D query/key width), with R the rank e, W the value width and N, M the axes
of a generic stack or matrix: q_LD, a_LS, v_SW, u_s_LR, d_RS, out_LW.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lowrank_jax.validation import is_int, is_number, require


class Decomposition(NamedTuple):
    a_LS: np.ndarray
    u_s_LR: np.ndarray
    d_RS: np.ndarray
    offset: float
    positive_LR: np.ndarray        # U S + offset
    m_offset_RR: np.ndarray
    rowsum_L: np.ndarray
    a_hat_LR: np.ndarray
    v_hat_RW: np.ndarray
    k_hat_RD: np.ndarray
    fitted_logits_LR: np.ndarray   # Q K_hat^T, the least-squares fit of log(U S + offset)
    a_hat_prime_LR: np.ndarray
    a_p_LS: np.ndarray
    a_pp_LS: np.ndarray
    out_LW: np.ndarray
    out_p_LW: np.ndarray
    out_pp_LW: np.ndarray


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


def softmax_rows(x_NM: np.ndarray) -> np.ndarray:
    shifted_NM = x_NM - x_NM.max(axis=-1, keepdims=True)  # exp cannot overflow
    exp_NM = np.exp(shifted_NM)
    return exp_NM / exp_NM.sum(axis=-1, keepdims=True)


def logsumexp_rows(x_NM: np.ndarray) -> np.ndarray:
    top_N = x_NM.max(axis=-1)
    return top_N + np.log(np.exp(x_NM - top_N[:, None]).sum(axis=-1))


def least_squares(a_NM: np.ndarray, b_NK: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(a_NM, b_NK, rcond=None)[0]


def truncated_svd(svd: tuple[np.ndarray, np.ndarray, np.ndarray], rank: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """U S (L x rank) and D (rank x L) of the best rank-`rank` approximation, from the full
    SVD (u, s, d) = np.linalg.svd(A), which a sweep over ranks computes once."""
    u_LL, s_L, d_LS = svd
    return u_LL[:, :rank] * s_L[:rank], d_LS[:rank]


def positive_offset(u_s_LR: np.ndarray) -> float:
    """The seed's shift: the smallest entry of U S + offset is exactly 1, so its log is >= 0."""
    return float(1.0 - u_s_LR.min())


def relative_frobenius(approx: np.ndarray, exact: np.ndarray) -> float:
    """||approx - exact|| / ||exact||; 0 when both are zero (l = d = 1 makes log P zero)."""
    error, scale = np.linalg.norm(approx - exact), np.linalg.norm(exact)
    return float(error / scale) if scale > 0 else (0.0 if error == 0 else float("inf"))


def mean_row_l2(approx_NM: np.ndarray, exact_NM: np.ndarray) -> float:
    return float(np.linalg.norm(approx_NM - exact_NM, axis=-1).mean())


def row_scale_mismatch(fitted_logits_LR: np.ndarray, rowsum_L: np.ndarray) -> float:
    """Softmax discards each row's scale sum_j exp(logits); A_pp puts back r_i, the scale of
    the exact target log(P). This is how far apart the two are, as a mean |log ratio|:
    zero when the K_hat fit is exact, and a per-row shift of the logits shows up here only."""
    return float(np.abs(logsumexp_rows(fitted_logits_LR) - np.log(rowsum_L)).mean())


def check_matrix(name: str, x: np.ndarray) -> None:
    require(x.ndim == 2, f"{name}.shape={x.shape} is not allowed; it must be a 2-D matrix.")
    require(bool(np.isfinite(x).all()),
            f"{name} has non-finite entries, which is not allowed; every entry must be finite.")


def check_queries(q_LD: np.ndarray) -> None:
    length, width = q_LD.shape
    # The seed asserts l >= d: with fewer tokens than dimensions the K_hat fit is underdetermined.
    require(length >= width,
            f"q.shape={q_LD.shape} is not allowed; the sequence length must be at least the width (l >= d).")
    # A zero query makes its row of Q K_hat^T zero for every K_hat, so that row of log(P) cannot be fitted.
    zero_rows = np.flatnonzero(~q_LD.any(axis=-1))
    require(zero_rows.size == 0,
            f"q row {zero_rows[0] if zero_rows.size else -1} is all zeros, which is not allowed; "
            "every query row needs a nonzero entry.")


def check_rank(rank, length: int) -> None:
    require(is_int(rank) and 1 <= rank <= length,
            f"rank={rank!r} is not allowed; it must be an integer from 1 to the sequence length {length}.")


def check_values(v_SW: np.ndarray, q_LD: np.ndarray) -> None:
    require(v_SW.shape[0] == q_LD.shape[0],
            f"v.shape={v_SW.shape} is not allowed with q.shape={q_LD.shape}; v needs one row per query.")


def check_inputs(q_LD: np.ndarray, k_SD: np.ndarray, v_SW: np.ndarray, rank) -> None:
    for name, x in (("q", q_LD), ("k", k_SD), ("v", v_SW)):
        check_matrix(name, x)
    require(k_SD.shape == q_LD.shape,
            f"k.shape={k_SD.shape} is not allowed with q.shape={q_LD.shape}; they must be equal.")
    check_values(v_SW, q_LD)
    check_queries(q_LD)
    check_rank(rank, q_LD.shape[0])


def check_attention(a_LS: np.ndarray, q_LD: np.ndarray, v_SW: np.ndarray) -> None:
    for name, x in (("a", a_LS), ("q", q_LD), ("v", v_SW)):
        check_matrix(name, x)
    length = q_LD.shape[0]
    require(a_LS.shape == (length, length),
            f"a.shape={a_LS.shape} is not allowed with q.shape={q_LD.shape}; "
            f"the attention must be ({length}, {length}), one row and one column per token.")
    # Float32 weights from a model sum to 1 within about 1e-6 per row.
    require(bool((a_LS >= 0).all()) and np.allclose(a_LS.sum(axis=-1), 1, atol=1e-3),
            "a is not allowed; it must be attention weights (entries >= 0, every row summing to 1).")
    check_values(v_SW, q_LD)
    check_queries(q_LD)


def as_dtype(dtype, *arrays) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(x, dtype=dtype) for x in arrays)


def decompose(q_LD: np.ndarray, k_SD: np.ndarray, v_SW: np.ndarray, rank: int) -> Decomposition:
    """The seed's pipeline from Q, K, V: A = softmax(Q K^T), unscaled."""
    q_LD, k_SD, v_SW = as_dtype(np.float64, q_LD, k_SD, v_SW)
    check_inputs(q_LD, k_SD, v_SW, rank)
    a_LS = softmax_rows(q_LD @ k_SD.T)
    return pipeline(a_LS, np.linalg.svd(a_LS), q_LD, v_SW, rank)


def decompose_attention(a_LS: np.ndarray, q_LD: np.ndarray, v_SW: np.ndarray, rank: int
                        ) -> Decomposition:
    """The seed's pipeline on given attention weights A (a model's, causal mask included)
    and the queries Q with A = softmax(Q K^T) for some K: a layer's scaled queries."""
    a_LS, q_LD, v_SW = as_dtype(np.float64, a_LS, q_LD, v_SW)
    check_attention(a_LS, q_LD, v_SW)
    check_rank(rank, q_LD.shape[0])
    return pipeline(a_LS, np.linalg.svd(a_LS), q_LD, v_SW, rank)


def rank_sweep(a_LS: np.ndarray, q_LD: np.ndarray, v_SW: np.ndarray, ranks,
               dtype=np.float64) -> list[StageErrors]:
    """stage_errors(decompose_attention(a, q, v, e)) for each e in `ranks`, one SVD for all;
    `dtype` np.float32 runs every stage in single precision, as the notebook did."""
    a_LS, q_LD, v_SW = as_dtype(dtype, a_LS, q_LD, v_SW)
    check_attention(a_LS, q_LD, v_SW)
    for rank in ranks:
        check_rank(rank, q_LD.shape[0])
    svd = np.linalg.svd(a_LS)
    return [stage_errors(pipeline(a_LS, svd, q_LD, v_SW, rank)) for rank in ranks]


def pipeline(a_LS, svd, q_LD, v_SW, rank: int) -> Decomposition:
    """Every stage, on checked float64 inputs; `svd` is np.linalg.svd(a_LS)."""
    u_s_LR, d_RS = truncated_svd(svd, rank)
    offset = positive_offset(u_s_LR)
    positive_LR = u_s_LR + offset
    m_offset_RR = least_squares(positive_LR, u_s_LR)
    rowsum_L = positive_LR.sum(axis=-1)
    a_hat_LR = positive_LR / rowsum_L[:, None]
    v_hat_RW = m_offset_RR @ d_RS @ v_SW
    k_hat_RD = least_squares(q_LD, np.log(positive_LR)).T
    fitted_logits_LR = q_LD @ k_hat_RD.T
    a_hat_prime_LR = softmax_rows(fitted_logits_LR)
    return Decomposition(
        a_LS=a_LS, u_s_LR=u_s_LR, d_RS=d_RS, offset=offset, positive_LR=positive_LR,
        m_offset_RR=m_offset_RR, rowsum_L=rowsum_L, a_hat_LR=a_hat_LR, v_hat_RW=v_hat_RW,
        k_hat_RD=k_hat_RD, fitted_logits_LR=fitted_logits_LR, a_hat_prime_LR=a_hat_prime_LR,
        a_p_LS=(a_hat_LR @ m_offset_RR @ d_RS) * rowsum_L[:, None],
        a_pp_LS=(a_hat_prime_LR @ m_offset_RR @ d_RS) * rowsum_L[:, None],
        out_LW=a_LS @ v_SW,
        out_p_LW=(a_hat_LR @ v_hat_RW) * rowsum_L[:, None],
        out_pp_LW=(a_hat_prime_LR @ v_hat_RW) * rowsum_L[:, None])


def stage_errors(dec: Decomposition) -> StageErrors:
    return StageErrors(
        truncation=relative_frobenius(dec.u_s_LR @ dec.d_RS, dec.a_LS),
        offset_fit=relative_frobenius(dec.positive_LR @ dec.m_offset_RR, dec.u_s_LR),
        a_p=relative_frobenius(dec.a_p_LS, dec.a_LS),
        k_hat_residual=relative_frobenius(dec.fitted_logits_LR, np.log(dec.positive_LR)),
        a_hat_prime=relative_frobenius(dec.a_hat_prime_LR, dec.a_hat_LR),
        scale_mismatch=row_scale_mismatch(dec.fitted_logits_LR, dec.rowsum_L),
        a_pp=relative_frobenius(dec.a_pp_LS, dec.a_LS),
        out_p=relative_frobenius(dec.out_p_LW, dec.out_LW),
        out_pp=relative_frobenius(dec.out_pp_LW, dec.out_LW),
        out_pp_mean_row_l2=mean_row_l2(dec.out_pp_LW, dec.out_LW))


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
    r_DD = rng.random((d, d))
    structured_LD = np.concatenate([r_DD @ r_DD, np.ones((l - d, d))], axis=0)
    q_LD = rng.random((l, d)) * (1 - psd_ratio) + structured_LD * psd_ratio
    k_SD = rng.random((l, d)) * (1 - psd_ratio) + structured_LD * psd_ratio
    v_SD = rng.random((l, d))
    return q_LD, k_SD, v_SD


def synthetic_sweep(d: int, l: int, ranks, psd_ratios, seeds, dtype=np.float64) -> list[dict]:
    """One row per (psd_ratio, seed, rank): the seed's inputs and every stage's error, each
    stage computed in `dtype` (the inputs are drawn in float64 either way)."""
    rows = []
    for psd_ratio in psd_ratios:
        for seed in seeds:
            q_LD, k_SD, v_SD = as_dtype(dtype, *synthetic_inputs(d, l, psd_ratio, seed))
            a_LS = softmax_rows(q_LD @ k_SD.T)
            for rank, errors in zip(ranks, rank_sweep(a_LS, q_LD, v_SD, ranks, dtype)):
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
