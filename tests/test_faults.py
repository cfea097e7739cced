"""What a user's worst day does to a workdir: damaged checkpoints fall back to the newest
older one that restores, torn metrics lines and truncated token caches are mended, and
none of it ends in a traceback."""
import glob
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs.abc_sort import get_config
from lowrank_jax.tokenizer import ByteTokenizer
from train import corpus
from train.errors import UserError
from train.loop import train_and_evaluate
from train.metrics import read_metrics
from train.pretrained import load_latest

from helpers import assert_clean_error, run, start, tree_digest, wait_until


SCHEDULE = dict(steps=30, warmup_steps=2, log_every=5, eval_every=10, checkpoint_every=10,
                keep_checkpoints=5, num_devices=1)
FLAGS = [f"--config.{k}={v}" for k, v in SCHEDULE.items()]


def short_config():
    config = get_config()
    config.update(SCHEDULE)
    return config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 30-step run, and the same run as if killed after its step-20 checkpoint."""
    root = tmp_path_factory.mktemp("faults")
    train_and_evaluate(short_config(), str(root / "whole"))
    shutil.copytree(root / "whole", root / "stopped")
    shutil.rmtree(root / "stopped" / "checkpoints" / "30")
    return root


def state_file(step_dir, pattern):
    return sorted(glob.glob(os.path.join(step_dir, "state", pattern), recursive=True))[0]


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def corrupt(path):
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        f.seek(0)
        f.write(bytes(b ^ 0xFF for b in data))


DAMAGE = {  # what is done to checkpoints/20, and the file the warning must name
    "truncated manifest": (lambda d: truncate(state_file(d, "manifest.ocdbt")), "manifest.ocdbt"),
    "deleted _METADATA": (lambda d: os.remove(state_file(d, "_METADATA")), "20"),
    "corrupted data": (lambda d: [corrupt(p) for p in glob.glob(os.path.join(d, "state", "**", "d", "*"),
                                                              recursive=True)], "20"),
    "corrupted record": (lambda d: corrupt(os.path.join(d, "meta", "metadata")), "20"),
}


@pytest.mark.parametrize("name", DAMAGE)
def test_a_damaged_checkpoint_falls_back_and_training_goes_on(runs, tmp_path, capsys, name):
    workdir = tmp_path / "run"
    shutil.copytree(runs / "stopped", workdir)
    harm, named = DAMAGE[name]
    harm(str(workdir / "checkpoints" / "20"))
    capsys.readouterr()
    summary = train_and_evaluate(short_config(), str(workdir))
    err = capsys.readouterr().err
    assert "the checkpoint at step 20 cannot be restored" in err and named in err, err
    assert "falling back to the one at step 10" in err
    assert summary["step"] == 30
    # Deterministic batches: the fallback retrains 10 -> 30 into the uninterrupted run.
    whole = load_latest(str(runs / "whole")).params
    jax.tree.map(np.testing.assert_array_equal, load_latest(str(workdir)).params, whole)
    assert [r["step"] for r in read_metrics(workdir)] == [r["step"] for r in read_metrics(runs / "whole")]
    assert os.listdir(workdir / "damaged_checkpoints")  # set aside, not deleted


def test_readers_fall_back_too(runs, tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(runs / "stopped", workdir)
    truncate(state_file(str(workdir / "checkpoints" / "20"), "manifest.ocdbt"))
    assert load_latest(str(workdir)).step == 10
    assert "falling back to the one at step 10" in capsys.readouterr().err
    result = run("train.sort_demo", "--workdir", str(workdir), stdin="cab\n")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "(step 10)" in result.stdout


def test_with_every_checkpoint_damaged_the_run_stops_in_one_sentence(runs, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(runs / "stopped", workdir)
    for step in ("10", "20"):
        os.remove(state_file(str(workdir / "checkpoints" / step), "manifest.ocdbt"))
    with pytest.raises(UserError, match=r"^every checkpoint in .* is damaged \(the checkpoint "
                                        r"at step 20 cannot be restored"):
        train_and_evaluate(short_config(), str(workdir))
    assert_clean_error(run("train", "--workdir", str(workdir), *FLAGS), "is damaged")


def test_a_torn_metrics_line_is_dropped_with_a_warning(runs, tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(runs / "stopped", workdir)
    before = read_metrics(workdir)
    with open(workdir / "metrics.jsonl", "a") as f:
        f.write('{"step": 35, "loss": 0.')   # a write cut off mid-record
    assert read_metrics(workdir) == before
    assert (f"metrics.jsonl line {len(before) + 1} is not a whole record; it is left out"
            in capsys.readouterr().err)
    assert train_and_evaluate(short_config(), str(workdir))["step"] == 30
    assert [r["step"] for r in read_metrics(workdir)] == [r["step"] for r in read_metrics(runs / "whole")]


def test_metrics_lines_that_are_not_records_of_a_step_are_left_out(tmp_path, capsys):
    good = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]
    bad = [b"[1]", b'{"step": "abc"}', b'{"loss": 1}', b"\xff\xfe", b"null"]
    lines = [json.dumps(good[0]).encode(), *bad, json.dumps(good[1]).encode()]
    (tmp_path / "metrics.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    assert read_metrics(tmp_path) == good
    warned = capsys.readouterr().err
    assert all(f"metrics.jsonl line {n} is not a whole record" in warned for n in range(2, 7))
    folder = tmp_path / "as_folder"
    (folder / "metrics.jsonl").mkdir(parents=True)
    with pytest.raises(UserError, match="metrics.jsonl is a folder, not a run's metrics file"):
        read_metrics(folder)


def test_a_truncated_token_cache_is_rebuilt(tmp_path, capsys):
    tokens = np.arange(1000) % 256
    cache = str(tmp_path / "cache")
    corpus.cached_tokens(cache, "k", "train", lambda: tokens.astype(np.uint8))
    truncate(os.path.join(cache, "train-k.npy"))
    again = corpus.cached_tokens(cache, "k", "train", lambda: tokens.astype(np.uint8))
    np.testing.assert_array_equal(again, tokens)
    assert "is damaged; tokenizing again" in capsys.readouterr().err
    assert ByteTokenizer().vocab_size == 256


def test_a_nan_stops_the_run_at_its_step_and_saves_nothing_of_it(tmp_path):
    """lr 1e6 blows the ABC sorter up within a few steps."""
    config = short_config()
    config.update(dict(lr=1e6, warmup_steps=1))
    with pytest.raises(UserError, match=r"^the loss or a gradient became NaN or infinite at step "
                                        r"\d+; the run stopped there and saved nothing of it "
                                        r"\(no checkpoint was saved before it\); lower lr"):
        train_and_evaluate(config, str(tmp_path))
    assert not os.listdir(tmp_path / "checkpoints")
    result = run("train", "--workdir", str(tmp_path / "cli"), *FLAGS, "--config.lr=1e6")
    assert_clean_error(result, "became NaN or infinite at step")


def test_a_nan_after_a_checkpoint_names_it_and_leaves_it_finite(runs, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(runs / "stopped", workdir)
    config = short_config()
    config.update(dict(lr=1e6, allow_schedule_change=True))
    with pytest.raises(UserError, match=r"at step 2\d; .*\(the last good checkpoint is at step "
                                        r"20\)"):
        train_and_evaluate(config, str(workdir))
    assert sorted(os.listdir(workdir / "checkpoints")) == ["10", "20"]
    params = load_latest(str(workdir)).params
    assert all(bool(np.isfinite(p).all()) for p in jax.tree.leaves(params))


def test_skipping_nonfinite_updates_goes_on_and_counts_them(tmp_path):
    config = short_config()
    config.update(dict(lr=1e6, warmup_steps=1, skip_nonfinite=True))
    assert train_and_evaluate(config, str(tmp_path))["step"] == 30
    skipped = [r["skipped_updates"] for r in read_metrics(tmp_path) if "loss" in r]
    assert sum(skipped) > 0 and len(skipped) == 6
    params = load_latest(str(tmp_path)).params
    assert all(bool(np.isfinite(p).all()) for p in jax.tree.leaves(params))


@pytest.mark.parametrize("flag,message", [
    ("--config.lr=inf", "lr=inf is not allowed; it must be a positive number."),
    ("--config.grad_clip=nan", "grad_clip=nan is not allowed; it must be a positive number."),
    ("--config.model.embed_init_std=inf", "embed_init_std=inf is not allowed; it must be positive."),
    ("--config.skip_nonfinite=maybe", "--config.skip_nonfinite='maybe' is not allowed; it must be "
                                      "true or false."),
])
def test_non_finite_settings_are_refused_before_anything_is_written(tmp_path, flag, message):
    assert_clean_error(run("train", "--workdir", str(tmp_path / "w"), flag), message)
    assert not os.path.exists(tmp_path / "w")


def lock_of(pid, host=None):
    import socket
    return json.dumps({"pid": pid, "host": host or socket.gethostname(),
                       "started": "2026-12-01 00:00:00"})


def test_a_second_run_on_a_workdir_is_refused(runs, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(runs / "stopped", workdir)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (workdir / "run.lock").write_text(lock_of(holder.pid))
        before = tree_digest(workdir)
        assert_clean_error(run("train", "--workdir", str(workdir), *FLAGS),
                           f"is in use by another run (pid {holder.pid} on ")
        assert tree_digest(workdir) == before
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_dead_run_is_taken_over(runs, tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(runs / "stopped", workdir)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (workdir / "run.lock").write_text(lock_of(gone.pid))
    assert train_and_evaluate(short_config(), str(workdir))["step"] == 30
    assert f"taking over the lock of pid {gone.pid}" in capsys.readouterr().err
    assert not (workdir / "run.lock").exists()


def test_two_runs_started_together_never_mix(tmp_path):
    """The second of two runs on one workdir is refused while the first trains; killed
    with -9, the first leaves a stale lock the next run takes over."""
    workdir = str(tmp_path / "run")
    first = start("train", "--workdir", workdir, *FLAGS, "--config.steps=100000",
                  "--config.checkpoint_every=1000")
    try:
        wait_until(lambda: os.path.exists(os.path.join(workdir, "run.lock")), first)
        assert_clean_error(run("train", "--workdir", workdir, *FLAGS),
                           f"is in use by another run (pid {first.pid} on ")
    finally:
        first.kill()
        first.wait()
    result = run("train", "--workdir", workdir, *FLAGS, "--config.steps=100000",
                 "--config.checkpoint_every=1000", "--config.allow_schedule_change=true",
                 "--config.steps=10")
    assert result.returncode == 0 and "taking over the lock" in result.stderr, result.stderr
