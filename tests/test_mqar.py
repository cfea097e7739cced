"""Multi-query associative recall: rows hold distinct keys with their values and ask for
each key once later, only the answers are scored, and a short run trains and reports
answer accuracy; shapes that cannot be made are refused in one sentence."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.mqar import get_config
from lowrank_jax.tasks import mqar
from lowrank_jax.training.step import next_token_metrics
from train.errors import UserError
from train.loop import train_and_evaluate
from train.metrics import read_metrics

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


def test_only_the_answers_count_in_the_loss():
    tokens = mqar.make_batch(jax.random.key(1), 4, VOCAB, SEQ, PAIRS)
    weights = mqar.answer_weights(tokens, VOCAB, PAIRS)
    logits = jax.random.normal(jax.random.key(2), (4, SEQ - 1, VOCAB))
    loss, sums = next_token_metrics(logits, tokens[:, 1:], jnp.float32, weights)
    nll = -jax.nn.log_softmax(logits)[
        jnp.arange(4)[:, None], jnp.arange(SEQ - 1)[None], tokens[:, 1:]]
    assert float(sums["targets"]) == 4 * PAIRS
    np.testing.assert_allclose(loss, nll[weights > 0].mean(), rtol=1e-6)


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
