"""Multi-query associative recall: rows hold distinct keys with their values and ask for
each key once later, the model never reads an answer, only the answers are scored, and a
short run trains and reports answer accuracy; shapes that cannot be made are refused in
one sentence."""
import re
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.mqar import get_config
from lowrank_jax import GPT
from lowrank_jax.tasks import mqar, mqar_task
from lowrank_jax.training.step import make_loss_fn
from train.errors import UserError
from train.loop import train_and_evaluate
from train.metrics import read_metrics

from conftest import small_config

VOCAB, SEQ, PAIRS = 64, 40, 5


def test_rows_ask_for_every_key_once_after_listing_the_pairs():
    rows = np.asarray(mqar.make_batch(jax.random.key(0), 50, VOCAB, SEQ, PAIRS))
    weights = np.asarray(mqar.answer_weights(jnp.asarray(rows), VOCAB, PAIRS))
    assert rows.shape == (50, SEQ) and weights.shape == (50, SEQ - 1)
    for row, weight in zip(rows, weights):
        keys, values = row[:2 * PAIRS:2], row[1:2 * PAIRS:2]
        assert len(set(keys)) == PAIRS and all(1 <= k < VOCAB // 2 for k in keys)
        assert all(VOCAB // 2 <= v < VOCAB for v in values)
        value_of = dict(zip(keys, values))
        region = row[2 * PAIRS:]
        asked = [i for i, t in enumerate(region) if t in value_of]
        assert sorted(region[i] for i in asked) == sorted(keys)       # each key once
        assert all(i % 2 == 0 and region[i + 1] == value_of[region[i]] for i in asked)
        answered = {2 * PAIRS + i for i in asked}                      # inputs whose target is scored
        assert set(np.flatnonzero(weight)) == answered
        assert np.count_nonzero(region) == 2 * PAIRS                   # filler elsewhere
    assert len({r.tobytes() for r in rows}) == 50


def test_the_model_reads_filler_where_an_answer_is_and_the_rows_elsewhere():
    """Shown the answers, later queries could be answered by elimination, without recall."""
    rows = mqar.make_batch(jax.random.key(3), 8, VOCAB, SEQ, PAIRS)
    inputs = np.asarray(mqar.model_inputs(rows, VOCAB, PAIRS))
    answers = np.asarray(mqar.answer_weights(rows, VOCAB, PAIRS)) > 0
    shown = np.asarray(rows[:, :-1]).copy()
    shown[:, 1:][answers[:, :-1]] = mqar.FILLER
    np.testing.assert_array_equal(inputs, shown)
    hidden = np.asarray(rows[:, :-1])[inputs != np.asarray(rows[:, :-1])]
    # Every answer but a last one past the inputs (a query at the row's end) is hidden.
    assert len(hidden) >= 8 * (PAIRS - 1) and (hidden >= VOCAB // 2).all()


def test_the_loss_counts_the_answers_alone_read_with_the_answers_hidden():
    """The step's loss (logits at the answers alone) equals the mean over the answers of
    the cross-entropy of every position's logits for the rows as model_inputs shows them."""
    model = GPT(small_config(vocab_size=VOCAB, max_len=SEQ - 1))
    task = mqar_task(model.cfg, SimpleNamespace(num_pairs=PAIRS, eval_examples=4,
                                                eval_batch_size=4))
    rows = mqar.make_batch(jax.random.key(4), 4, VOCAB, SEQ, PAIRS)
    params = model.init(jax.random.key(5), rows[:, :-1])["params"]
    loss, sums = make_loss_fn(model, task)(params, rows, jax.random.key(6))
    logits = model.apply({"params": params}, mqar.model_inputs(rows, VOCAB, PAIRS))
    nll = -jax.nn.log_softmax(logits)[
        jnp.arange(4)[:, None], jnp.arange(SEQ - 1)[None], rows[:, 1:]]
    answers = mqar.answer_weights(rows, VOCAB, PAIRS) > 0
    assert float(sums["targets"]) == 4 * PAIRS
    np.testing.assert_allclose(loss, nll[answers].mean(), rtol=1e-5)


def test_answer_positions_are_where_the_answer_weights_are():
    rows = mqar.make_batch(jax.random.key(7), 6, VOCAB, SEQ, PAIRS)
    positions = np.asarray(mqar.answer_positions(rows, VOCAB, PAIRS))
    weights = np.asarray(mqar.answer_weights(rows, VOCAB, PAIRS))
    assert positions.shape == (6, PAIRS)
    for row_positions, row_weights in zip(positions, weights):
        np.testing.assert_array_equal(row_positions, np.flatnonzero(row_weights))



@pytest.mark.parametrize("pairs, message", [
    (0, "mqar.num_pairs=0 is not allowed; it must be a positive integer."),
    (17, "mqar.num_pairs=17 is not allowed with rows of 65 tokens (model.max_len + 1); a row "
         "holds the pairs and their queries, so it needs at least 68."),
])
def test_a_shape_that_cannot_be_made_is_refused(tmp_path, pairs, message):
    config = get_config("standard,local")
    config.mqar.num_pairs = pairs
    with pytest.raises(UserError, match=re.escape(message)):
        train_and_evaluate(config, str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


def test_a_short_run_trains_on_the_answers_and_reports_their_accuracy(tmp_path):
    config = get_config("standard,local")
    config.update(dict(steps=10, warmup_steps=2, log_every=5, eval_every=10,
                       checkpoint_every=10))
    config.mqar.update(dict(eval_examples=32, eval_batch_size=32))
    summary = train_and_evaluate(config, str(tmp_path / "w"))
    records = read_metrics(str(tmp_path / "w"))
    assert 0 <= summary["eval"]["eval/answer_accuracy"] <= 1
    assert [r["step"] for r in records if "loss" in r] == [5, 10]
