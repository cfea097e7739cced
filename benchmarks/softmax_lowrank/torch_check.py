"""Seed 004's setting through PyTorch's own linear algebra, to separate precision from the
least-squares solver (needs `pip install torch`; not a dependency of the package):

    python benchmarks/softmax_lowrank/torch_check.py    (torch_check.txt holds three runs)

For seeds 0-4 of lowrank_jax's synthetic inputs (d 64, e 200, l 400, psd_ratio 1) it prints
the notebook's number, the mean row L2 of out - out_pp, from the same pipeline in torch,
in float32 and float64, with torch.linalg.lstsq's CPU default (gelsy, QR with pivoting) and
with gelsd (SVD, what numpy.linalg.lstsq uses), next to lowrank_jax's float64 NumPy figure.
"""
import torch

from lowrank_jax.analysis.softmax_lowrank import decompose, stage_errors, synthetic_inputs

D, E, L = 64, 200, 400


def mean_row_l2(q, k, v, driver):
    a = torch.softmax(q @ k.T, dim=-1)
    u, s, d = torch.linalg.svd(a)
    u_s, d = u[:, :E] * s[:E], d[:E]
    positive = u_s + (1 - u_s.min())
    m_offset = torch.linalg.lstsq(positive, u_s, driver=driver).solution
    rowsum = positive.sum(-1, keepdim=True)
    k_hat = torch.linalg.lstsq(q, torch.log(positive), driver=driver).solution.T
    out_pp = (torch.softmax(q @ k_hat.T, dim=-1) @ (m_offset @ d @ v)) * rowsum
    return float(torch.linalg.vector_norm(a @ v - out_pp, dim=-1).mean())


print(f"seed 004's setting (d {D}, e {E}, l {L}, psd_ratio 1); torch {torch.__version__}")
print("seed | numpy float64 gelsd | torch float64 gelsy | torch float32 gelsy | torch float32 gelsd")
for seed in range(5):
    inputs = synthetic_inputs(D, L, 1.0, seed)
    ours = stage_errors(decompose(*inputs, E)).out_pp_mean_row_l2
    row = [ours]
    for dtype, driver in ((torch.float64, "gelsy"), (torch.float32, "gelsy"), (torch.float32, "gelsd")):
        row.append(mean_row_l2(*(torch.tensor(x, dtype=dtype) for x in inputs), driver))
    print(f"{seed} | " + " | ".join(f"{x:.3g}" for x in row))
