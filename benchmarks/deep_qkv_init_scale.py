"""Why deep_qkv attends uniformly at initialisation: its Q/K weight is a free base times a
softmax over the head dim whose entries all start near 1/D, so the weight starts at 1/D
of the base and the scores at 1/D^2 of those the base alone would give.
ListOps `:small` shapes (d_model 64, 2 heads of 32, rank 8), 400 random N(0, 1) tokens.

    PYTHONPATH=. python benchmarks/deep_qkv_init_scale.py
"""
import jax
import jax.numpy as jnp

from lowrank_jax.attention.deep_qkv import base_init, factor_init, factorized_weight

H, E, D, R, L = 2, 64, 32, 8, 400


def main() -> None:
    k_a, k_b, k_base, k_x = jax.random.split(jax.random.key(0), 4)
    A_HER, B_HRD = factor_init(k_a, (H, E, R)), factor_init(k_b, (H, R, D))
    base_HED = base_init(k_base, (H, E, D))
    gate_HED = jax.nn.softmax(jnp.einsum("her,hrd->hed", A_HER, B_HRD), axis=-1)
    print(f"softmax factor entries: {float(gate_HED.min()):.5f} to {float(gate_HED.max()):.5f}"
          f" (1/D = {1 / D:.5f})")
    x_LE = jax.random.normal(k_x, (L, E))
    for name, W_HED in (("deep_qkv", factorized_weight(A_HER, B_HRD, base_HED, 1.0)),
                        ("its base alone", base_HED)):
        q_HLD = jnp.einsum("le,hed->hld", x_LE, W_HED)
        scores_HLL = jnp.einsum("hld,hmd->hlm", q_HLD, q_HLD) / jnp.sqrt(D)
        top = jax.nn.softmax(scores_HLL, axis=-1).max(-1).mean()
        print(f"{name:15s} weight std {float(W_HED.std()):.5f}, score std "
              f"{float(scores_HLL.std()):.6f}, mean largest attention weight {float(top):.5f} "
              f"(uniform {1 / L:.5f})")


if __name__ == "__main__":
    main()
