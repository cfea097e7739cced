"""MQAR through a bare optax loop (AdamW at a constant lr, weight decay 0.1, 64 tokens,
2 layers, d 64, 1 head): training loss and answer accuracy every 500 steps, to see how
long the plateau before recall lasts at a vocabulary size and batch (default 32 rows).

    PYTHONPATH=. python benchmarks/mqar_plateau.py LR STEPS VOCAB PAIRS [BATCH]
"""
import sys

import jax
import optax

from lowrank_jax import GPT, ModelConfig
from lowrank_jax.tasks import mqar

SEQ = 65


def answer_loss_and_accuracy(model, params, rows_BT, vocab: int, pairs: int):
    """The mean loss and accuracy over a batch's answers, the only tokens MQAR scores."""
    logits_BTV = model.apply({"params": params}, mqar.model_inputs(rows_BT, vocab, pairs))
    weights_BT = mqar.answer_weights(rows_BT, vocab, pairs)
    nll_BT = optax.softmax_cross_entropy_with_integer_labels(logits_BTV, rows_BT[:, 1:])
    right_BT = logits_BTV.argmax(-1) == rows_BT[:, 1:]
    return ((nll_BT * weights_BT).sum() / weights_BT.sum(),
            (right_BT * weights_BT).sum() / weights_BT.sum())


def main(lr: float, steps: int, vocab: int, pairs: int, batch: int = 32) -> None:
    model = GPT(ModelConfig(vocab_size=vocab, max_len=SEQ - 1, d_model=64, n_layers=2,
                            n_heads=1, d_ff=128))

    def rows(key):
        return mqar.make_batch(key, batch, vocab, SEQ, pairs)

    params = model.init(jax.random.key(0), rows(jax.random.key(1))[:, :-1])["params"]
    optimizer = optax.adamw(lr, weight_decay=0.1)

    def loss(params, rows_BT):
        return answer_loss_and_accuracy(model, params, rows_BT, vocab, pairs)

    @jax.jit
    def step(params, opt_state, key):
        (value, accuracy), grads = jax.value_and_grad(loss, has_aux=True)(params, rows(key))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value, accuracy

    opt_state = optimizer.init(params)
    for i in range(steps + 1):
        params, opt_state, value, accuracy = step(params, opt_state, jax.random.key(i + 10))
        if i % 500 == 0:
            print(f"step {i}: loss {float(value):.3f}, answer accuracy {float(accuracy):.3f}",
                  flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]), *map(int, sys.argv[2:]))
