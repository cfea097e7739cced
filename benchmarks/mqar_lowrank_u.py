"""Why lowrank_qk stays on the MQAR plateau: its shared U learnt, fixed (learn_u=False), or
learnt but kept out of weight decay, beside standard attention, on the CPU-sized MQAR (vocabulary 32, 64 tokens,
4 pairs, 2 layers, d 64, one head, r = d_head = 64 so that U is a rotation and the function
class is standard attention's). The run's recipe: AdamW at lr LR, 100 warm-up steps, cosine
to lr/10 at STEPS, weight decay 0.1 on matrices, clipping at 1.0, batch 32. Prints held-out
answer accuracy (256 rows) every 500 steps.

    PYTHONPATH=. python benchmarks/mqar_lowrank_u.py MODE SEED [LR] [STEPS]

MODE: standard | trained (U learnt and decayed: the library's default) | fixed
(learn_u=False: U a constant orthonormal matrix) | no_decay (U learnt, not decayed).
"""
import sys

import jax
import jax.numpy as jnp
import optax

from benchmarks.mqar_plateau import answer_loss_and_accuracy
from lowrank_jax import GPT, ModelConfig
from lowrank_jax.tasks import mqar

VOCAB, SEQ, PAIRS, BATCH = 32, 65, 4, 32
ATTENTION = {"standard": ("standard", {}), "trained": ("lowrank_qk", {"r": 64}),
             "fixed": ("lowrank_qk", {"r": 64, "learn_u": False}),
             "no_decay": ("lowrank_qk", {"r": 64})}
MODES = tuple(ATTENTION)


def is_u(params):
    return jax.tree_util.tree_map_with_path(
        lambda path, _: jax.tree_util.keystr(path).endswith("['U']"), params)


def u_leaves(params) -> list:
    """Every layer's U (none for standard attention or a fixed U)."""
    return [p for p, u in zip(jax.tree.leaves(params), jax.tree.leaves(is_u(params))) if u]


def optimizer(mode: str, lr: float, steps: int, params) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, 100, steps, lr / 10)
    u = is_u(params)
    decayed = jax.tree.map(lambda p, is_u_: p.ndim >= 2 and not (mode == "no_decay" and is_u_),
                           params, u)
    return optax.chain(optax.clip_by_global_norm(1.0),
                       optax.adamw(schedule, weight_decay=0.1, mask=decayed))


def main(mode: str, seed: int, lr: float = 1e-3, steps: int = 6000) -> None:
    if mode not in MODES:
        raise SystemExit(f"MODE={mode!r} is not allowed; choose one of {', '.join(MODES)}.")
    attention = ATTENTION[mode]
    model = GPT(ModelConfig(vocab_size=VOCAB, max_len=SEQ - 1, d_model=64, n_layers=2,
                            n_heads=1, d_ff=128, attention=attention[0],
                            attention_kwargs=attention[1]))
    key_init, key_eval, key_data = jax.random.split(jax.random.key(seed), 3)
    held_out = mqar.make_batch(key_eval, 256, VOCAB, SEQ, PAIRS)
    params = model.init(key_init, held_out[:1, :-1])["params"]
    tx = optimizer(mode, lr, steps, params)

    def loss_and_accuracy(params, rows_BT):
        return answer_loss_and_accuracy(model, params, rows_BT, VOCAB, PAIRS)

    @jax.jit
    def step(params, opt_state, i):
        rows_BT = mqar.make_batch(jax.random.fold_in(key_data, i), BATCH, VOCAB, SEQ, PAIRS)
        grads, _ = jax.grad(loss_and_accuracy, has_aux=True)(params, rows_BT)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    evaluate = jax.jit(lambda params: loss_and_accuracy(params, held_out)[1])
    opt_state = tx.init(params)
    u_start = u_leaves(params)
    accuracies = []
    for i in range(1, steps + 1):
        params, opt_state = step(params, opt_state, i)
        if i % 500 == 0:
            accuracies.append(f"{i}: {float(evaluate(params)):.3f}")
    moved = [float(jnp.linalg.norm(b - a) / jnp.linalg.norm(a))
             for a, b in zip(u_start, u_leaves(params))]
    print(f"{mode} seed {seed} lr {lr:g}: " + "  ".join(accuracies)
          + (f"  | U moved {', '.join(f'{m:.2f}' for m in moved)} of its norm" if moved else ""),
          flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *(float(a) for a in sys.argv[3:4]),
         *(int(a) for a in sys.argv[4:5]))
