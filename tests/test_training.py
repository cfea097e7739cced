"""Training: the ABC sorter learns, resume is exact, 8 devices match 1, the optimizer is the seed's."""
import itertools
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.abc_sort import get_config
from lowrank_jax import ATTENTIONS, GPT
from lowrank_jax.tasks import abc_sort
from lowrank_jax.training.config import check_train_config, run_spec
from lowrank_jax.training.optim import make_optimizer, make_schedule
from lowrank_jax.training.state import abstract_state, create_state, make_mesh
from lowrank_jax.training.step import cross_entropy_BT, make_train_fn, make_train_step, summarize
from train.loop import chunk_lengths, distinct_chunk_lengths, train_and_evaluate
from train.metrics import read_metrics
from train.errors import UserError
from train.pretrained import load_latest

from helpers import tensorboard_scalars, tree_digest

TRAIN_KEYS = ("loss", "accuracy", "grad_norm", "lr")


def short_config(**changes):
    config = get_config()
    config.update(dict(steps=40, warmup_steps=5, log_every=5, eval_every=40, checkpoint_every=20,
                       num_devices=1))
    config.update(changes)
    return config


def train_records(workdir):
    return [{k: r[k] for k in ("step", *TRAIN_KEYS)} for r in read_metrics(workdir) if "loss" in r]


@pytest.mark.parametrize("saved_dtype", [jnp.float32, jnp.bfloat16])
def test_the_cross_entropy_keeping_its_logits_narrow_has_optax_values_and_gradients(saved_dtype):
    """Logits a bfloat16 model makes (bfloat16 values held in float32), as the step feeds it."""
    import optax

    logits_BTV = jax.random.normal(jax.random.key(0), (3, 5, 50), jnp.bfloat16).astype(jnp.float32) * 4
    targets_BT = jax.random.randint(jax.random.key(1), (3, 5), 0, 50)
    weights_BT = jax.random.uniform(jax.random.key(2), (3, 5))

    def loss(fn):
        return jax.value_and_grad(lambda x: (fn(x) * weights_BT).sum())(logits_BTV)

    value, grad = loss(lambda x: cross_entropy_BT(x, targets_BT, saved_dtype))
    want_value, want_grad = loss(lambda x: optax.softmax_cross_entropy_with_integer_labels(x, targets_BT))
    np.testing.assert_allclose(value, want_value, rtol=1e-6)
    # The gradient is rounded to the saved dtype, as the bfloat16 matmul after it would round it.
    tolerance = 1e-6 if saved_dtype == jnp.float32 else 2 ** -8
    np.testing.assert_allclose(grad, want_grad, rtol=tolerance, atol=tolerance * 1e-3)


def test_abc_sorter_sorts_all_27_triples(tmp_path, capsys):
    # 2000 steps at lr 1e-2 reached 27/27 for 19 of the seeds 0-19 (seed 11: 26/27, also at 3000).
    config = short_config(steps=2000, lr=1e-2, warmup_steps=100, log_every=500, eval_every=1000,
                          checkpoint_every=1000, seed=3)
    summary = train_and_evaluate(config, str(tmp_path))
    assert summary["eval"]["eval/triples_correct"] == 27
    out = capsys.readouterr().out
    assert "trainable parameters: 480" in out
    assert "accuracy on all 27 triples: 27/27" in out
    for letters in abc_sort.TRACED:
        assert f"trace {letters}:" in out and f"output {''.join(sorted(letters))}" in out
    losses = [r["loss"] for r in train_records(tmp_path)]
    # This run's windows: 0.682, 0.376, 0.370, 0.369 (the floor is the unpredictable input letters).
    assert len(losses) == 4 and losses[-1] < 0.45 < losses[0]


def test_resumed_run_reproduces_the_uninterrupted_one(tmp_path):
    config = short_config(dropout=0.0)
    config.model.dropout = 0.1  # dropout keys must also follow the step
    train_and_evaluate(config, str(tmp_path))
    uninterrupted = train_records(tmp_path)
    full = load_latest(str(tmp_path))
    assert full.step == 40
    # Lose everything after step 20, as a crash between checkpoints would.
    shutil.rmtree(tmp_path / "checkpoints" / "40")
    summary = train_and_evaluate(config, str(tmp_path))
    assert summary["step"] == 40
    assert train_records(tmp_path) == uninterrupted
    jax.tree.map(np.testing.assert_array_equal, load_latest(str(tmp_path)).params, full.params)


def test_every_run_writes_tensorboard_events(tmp_path):
    config = short_config(steps=10, log_every=5, eval_every=10, checkpoint_every=10)
    train_and_evaluate(config, str(tmp_path))
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    logged = {r["step"]: r["loss"] for r in read_metrics(tmp_path) if "loss" in r}
    assert scalars["loss"] == pytest.approx(logged) and set(logged) == {5, 10}
    assert set(scalars["validation/triples_correct"]) == {10} and set(scalars["lr"]) == {5, 10}


def test_metrics_are_strict_json(tmp_path):
    from train.metrics import MetricsLog

    log = MetricsLog(str(tmp_path), 0)
    log.write({"step": 1, "loss": float("nan"), "grad_norm": float("inf"), "lr": 0.5})
    text = (tmp_path / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert read_metrics(str(tmp_path)) == [{"step": 1, "loss": None, "grad_norm": None, "lr": 0.5}]


def test_schedule_is_the_seeds_warmup_then_cosine_to_a_tenth():
    schedule = make_schedule(run_spec(get_config()).optimizer)
    assert float(schedule(0)) == 0.0
    np.testing.assert_allclose(float(schedule(250)), 0.5e-3, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(500)), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(7750)), 0.55e-3, rtol=1e-5)  # cosine midpoint
    np.testing.assert_allclose(float(schedule(15000)), 1e-4, rtol=1e-5)


@pytest.mark.parametrize("decay_on,decayed", [("all", {"scale", "kernel", "bias"}), ("matrices", {"kernel"})])
def test_weight_decay_mask(decay_on, decayed):
    config = get_config()
    config.weight_decay_on = decay_on
    config.warmup_steps = 1
    params = {"norm": {"scale": jnp.ones(3), "bias": jnp.ones(3)}, "dense": {"kernel": jnp.ones((3, 3))}}
    optimizer = make_optimizer(run_spec(config).optimizer)
    state = optimizer.init(params)
    for _ in range(2):  # past warmup, so the learning rate is not 0
        updates, state = optimizer.update(jax.tree.map(jnp.zeros_like, params), state, params)
    moved = {path[-1].key for path, u in jax.tree_util.tree_leaves_with_path(updates) if jnp.any(u != 0)}
    assert moved == decayed


def test_batches_are_a_pure_function_of_the_key():
    key = jax.random.key(5)
    batch = abc_sort.make_batch(key, 64)
    np.testing.assert_array_equal(batch, abc_sort.make_batch(key, 64))
    assert not np.array_equal(batch, abc_sort.make_batch(jax.random.fold_in(key, 1), 64))
    assert batch.shape == (64, 7) and batch.dtype == jnp.int32
    np.testing.assert_array_equal(batch[:, 3], abc_sort.SEP)
    np.testing.assert_array_equal(batch[:, 4:], np.sort(batch[:, :3], axis=1))
    assert set(np.unique(batch[:, :3])) == {1, 2, 3}


@pytest.mark.parametrize("start,steps,period,expected", [
    (0, 10, 5, [5, 5]), (0, 12, 5, [5, 5, 2]), (3, 12, 5, [2, 5, 2]), (12, 12, 5, [])])
def test_calls_end_on_every_period_and_at_the_last_step(start, steps, period, expected):
    assert list(chunk_lengths(start, steps, period)) == expected
    assert distinct_chunk_lengths(start, steps, period) == set(expected)


def test_the_distinct_call_lengths_match_the_schedule():
    rng = np.random.default_rng(0)
    for start, steps, period in rng.integers(0, 60, size=(300, 3)) + [0, 0, 1]:
        assert distinct_chunk_lengths(start, steps, period) == set(chunk_lengths(start, steps, period))


def test_a_huge_number_of_steps_is_scheduled_lazily():
    """steps=10**12 once built a list of every call length and hung, growing past 4.7 GB."""
    assert distinct_chunk_lengths(7, 10**12, 5) == {3, 5}
    assert list(itertools.islice(chunk_lengths(7, 10**12, 5), 3)) == [3, 5, 5]


def test_a_finished_run_only_evaluates_and_keeps_its_schedule_unless_allowed(tmp_path, capsys):
    config = short_config(steps=10, checkpoint_every=10, eval_every=10)
    train_and_evaluate(config, str(tmp_path))
    before = tree_digest(tmp_path)
    for field, value in (("steps", 20), ("lr", 0.5), ("warmup_steps", 2)):
        changed = short_config(**{"steps": 10, "checkpoint_every": 10, "eval_every": 10,
                                  field: value})
        with pytest.raises(UserError, match=rf"^{field}={value!r} differs from the .* of the "
                                            r"checkpoint in the workdir; changing the schedule"):
            train_and_evaluate(changed, str(tmp_path))
    assert tree_digest(tmp_path) == before
    # The same, finished run again only evaluates: no metrics, no checkpoint.
    logged = read_metrics(tmp_path)
    assert train_and_evaluate(config, str(tmp_path))["step"] == 10
    assert read_metrics(tmp_path) == logged and os.listdir(tmp_path / "checkpoints") == ["10"]
    fewer = short_config(steps=6, checkpoint_every=6, eval_every=6, allow_schedule_change=True)
    capsys.readouterr()
    assert train_and_evaluate(fewer, str(tmp_path))["step"] == 10
    assert ("the checkpoint in the workdir is at step 10, which steps=6 does not pass: "
            "nothing to train; evaluating it") in capsys.readouterr().out
    more = short_config(steps=14, checkpoint_every=7, eval_every=7, allow_schedule_change=True)
    assert train_and_evaluate(more, str(tmp_path))["step"] == 14


# Standard attention's parameters are the mesh tests' own (test_sharding.py); these are
# the variants with parameters of other shapes (factors, U, the Linformer's E and F).
@pytest.mark.parametrize("attention", [a for a in ATTENTIONS if a != "standard"])
def test_every_variant_trains_alike_on_one_and_eight_devices(attention):
    config = get_config(attention)
    config.model.dropout = 0.1
    spec = run_spec(config)
    model_cfg, task = check_train_config(spec)
    model, optimizer = GPT(model_cfg.replace(deterministic=False)), make_optimizer(spec.optimizer)
    results = {}
    for n in (1, 8):
        mesh = make_mesh(n)
        abstract = abstract_state(model, optimizer, spec.seed, task.seq_len, mesh)
        state = create_state(model, optimizer, spec.seed, task.seq_len, abstract)
        step = make_train_step(model, optimizer, task, spec.batch_size, mesh)
        state, sums = make_train_fn(step, abstract, mesh, 3)(state, task.data)
        assert len(state.params["token_embed"]["embedding"].sharding.device_set) == n
        results[n] = summarize(jax.device_get(sums))
    assert np.isfinite(results[1]["loss"])
    for key in ("loss", "accuracy", "grad_norm"):
        np.testing.assert_allclose(results[8][key], results[1][key], rtol=1e-5)
