"""Stops a run meets: SIGTERM (a scheduler's preemption) and SIGINT save the step they
arrive at and the run resumes there as if never stopped; kill -9 at random moments, during
saves too, loses only the steps since the last checkpoint, and the finished run equals an
unbroken one. A suite passes a stop on to its trainings and leaves none running."""
import contextlib
import json
import os
import random
import signal
import sys
import threading
import time

import jax
import numpy as np
import pytest

from train.loop import CONFIG_FILE
from train.metrics import METRICS_FILE, read_metrics
from train.pretrained import load_latest

from helpers import run, start, wait_until


# Calls of 50 steps (the gcd of the periods): a stop between log steps and checkpoints.
SCHEDULE = dict(steps=1000, warmup_steps=20, log_every=100, eval_every=500,
                checkpoint_every=250, keep_checkpoints=3, num_devices=1)
FLAGS = [f"--config.{k}={v}" for k, v in SCHEDULE.items()]
KILLS = 4


def train(workdir, *extra):
    result = run("train", "--workdir", str(workdir), *FLAGS, *extra)
    assert result.returncode == 0, result.stderr
    return result


def logged(workdir):
    """Every metrics record, less the timings, which differ from run to run."""
    return [{k: v for k, v in r.items() if "second" not in k} for r in read_metrics(workdir)]


def assert_same_run(workdir, unbroken):
    jax.tree.map(np.testing.assert_array_equal, load_latest(str(workdir)).params,
                 load_latest(str(unbroken)).params)
    assert logged(workdir) == logged(unbroken)


def read_until_logged(process, step):
    """Reads the run's log lines until one reports a step >= `step`."""
    for line in process.stdout:
        if line.startswith("step ") and int(line.split()[1].split("/")[0]) >= step:
            return
    pytest.fail(f"the run ended before logging step {step}: {process.stderr.read()}")


def saving_since(workdir, started):
    """Whether Orbax is writing a checkpoint (a temporary folder touched after `started`)."""
    checkpoints = os.path.join(workdir, "checkpoints")

    def saving():
        try:
            names = os.listdir(checkpoints)
            return any(n.endswith("orbax-checkpoint-tmp")
                       and os.stat(os.path.join(checkpoints, n)).st_mtime > started for n in names)
        except FileNotFoundError:  # not made yet, or renamed as we looked
            return False
    return saving


def saved_steps(workdir):
    checkpoints = os.path.join(workdir, "checkpoints")
    names = os.listdir(checkpoints) if os.path.isdir(checkpoints) else []
    return sorted(int(n) for n in names if n.isdigit())


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("unbroken") / "run"
    train(workdir)
    return workdir


@pytest.mark.parametrize("signum, exit_code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_signal_saves_the_step_it_arrives_at_and_the_run_resumes_there(
        unbroken, tmp_path, signum, exit_code):
    workdir = tmp_path / "run"
    process = start("train", "--workdir", str(workdir), *FLAGS)
    read_until_logged(process, 100)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == exit_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"stopped by {signal.Signals(signum).name} at step " in lines[0], err
    stopped_at = int(lines[0].split(" at step ")[1].split(";")[0])
    assert stopped_at % 50 == 0 and stopped_at > 100
    assert saved_steps(workdir)[-1] == stopped_at  # the step itself, not the last scheduled one
    if signum == signal.SIGINT:
        return  # resuming is the same as after SIGTERM
    resumed = train(workdir)
    assert f"resuming from the checkpoint at step {stopped_at}" in resumed.stdout
    assert_same_run(workdir, unbroken)


def test_kill_9_at_random_moments_and_during_saves_loses_nothing_saved(unbroken, tmp_path):
    """Half the kills land while Orbax writes a checkpoint, half at a random moment of
    training (never so late that the run could finish first); each restart takes over the
    dead run's lock and resumes from its newest whole checkpoint."""
    workdir = tmp_path / "run"
    moments = random.Random(0)
    saves_cut = 0
    for kill in range(KILLS):
        # A slow machine may not have finished the first save before a kill: then step 0.
        resume = max(saved_steps(workdir), default=0)
        started = time.time()
        process = start("train", "--workdir", str(workdir), *FLAGS)
        if kill % 2:
            wait_until(saving_since(workdir, started), process)
        else:
            read_until_logged(process, moments.randint(resume + 1, 800))
            time.sleep(moments.uniform(0, 0.1))
        process.kill()
        process.wait()
        saves_cut += saving_since(workdir, started)()
    assert saves_cut >= KILLS // 2
    resumed = train(workdir)
    assert "taking over the lock" in resumed.stderr
    assert_same_run(workdir, unbroken)


def start_suite_in_training(out):
    """A two-run local MQAR suite, each run long, once both have logged a step."""
    process = start("train.suite", "mqar", "--size", "local", "--variants", "standard,linformer",
                    "--lengths", "32", "--pairs", "2", "--jobs", "2", "--out", str(out),
                    *(f"--set={k}={v}" for k, v in dict(steps=100_000, log_every=50,
                                                        eval_every=100_000,
                                                        checkpoint_every=100_000).items()))
    workdirs = [out / "mqar_runs" / f"{variant}_L32_p2" for variant in ("standard", "linformer")]

    def training():
        return all(os.path.exists(f"{w}.log") and "step 50/" in open(f"{w}.log").read()
                   for w in workdirs)

    wait_until(training, process, timeout=240)
    return process, workdirs


def running_in(folder):
    """Processes whose command line names `folder` (the suite's trainings)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:  # ended?
            if str(folder).encode() in f.read():
                found.append(pid)
    return found


def test_a_stopped_suite_stops_its_runs_each_saved_and_reports_them_unfinished(tmp_path):
    """SIGTERM to `train.suite` reaches its trainings: each saves its step and ends (none is
    left writing into a workdir that the same command, run again, resumes), and the table
    calls them unfinished rather than reporting their last evaluation as the result."""
    out = tmp_path / "suite"
    process, workdirs = start_suite_in_training(out)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert err.strip().splitlines()[-1] == (
        "stopped by SIGTERM with 2 run(s) unfinished; those started saved where they stopped, "
        "and the same command resumes them."), err
    assert not running_in(out)
    for workdir in workdirs:
        log = open(f"{workdir}.log").read()
        stopped_at = int(log.split("stopped by SIGTERM at step ")[1].split(";")[0])
        assert saved_steps(workdir)[-1] == stopped_at > 0, log
    rows = json.loads((out / "quality_mqar.json").read_text())["results"]
    assert [(r["variant"], r["error"]) for r in rows] == [("standard", "not finished"),
                                                          ("linformer", "not finished")]


def test_a_second_ctrl_c_ends_a_suite_and_its_runs_at_once_in_one_sentence(tmp_path):
    out = tmp_path / "suite"
    process, _ = start_suite_in_training(out)
    process.send_signal(signal.SIGINT)
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines() == ["python -m train.suite: interrupted at once; the runs "
                                        "in flight keep their last checkpoints, and the same "
                                        "command resumes them."]
    assert not running_in(out)


# A stand-in training: writes its config and metrics files (argv[4], argv[5]) as evaluated
# at step argv[2] of 10, then waits for SIGTERM, which ends it as argv[3] says: "saves" exits 0, as a real run that saved its step does;
# "killed" takes the signal's default action, as a run past its own handler would.
STAND_IN = """
import json, os, signal, sys, time
workdir, step, ending, config_file, metrics_file = sys.argv[1:]
step = int(step)
os.makedirs(workdir)
json.dump({"steps": 10, "batch_size": 4}, open(os.path.join(workdir, config_file), "w"))
with open(os.path.join(workdir, metrics_file), "w") as f:
    f.write(json.dumps({"step": step, "eval/answer_accuracy": 0.5}) + "\\n")
if ending == "saves":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
open(workdir + ".ready", "w").close()
time.sleep(120)
"""


@pytest.mark.parametrize("ending, reported", [("saves", True), ("killed", False)])
def test_a_stop_that_reaches_a_run_after_its_last_evaluation_leaves_it_finished(
        tmp_path, monkeypatch, ending, reported):
    """The stop arrives while one run, evaluated at its last step, is still saving or
    exiting, and while another is midway: the first, exiting 0, is timed and reported, not
    called unfinished (an H100 suite lost two finished ListOps runs' wall time so); killed
    by the signal, it is left unfinished, not failed, for the next call to report."""
    from train import suite

    runs = [suite.Run(name, "unused", (step, ending), {"variant": name})
            for name, step in (("ended", "10"), ("midway", "5"))]
    monkeypatch.setattr(suite, "command", lambda run, workdir: [
        sys.executable, "-c", STAND_IN, workdir, *run.overrides, CONFIG_FILE, METRICS_FILE])

    def stop_once_both_wait():   # or after 60 s, so that a stand-in that never starts fails
        deadline = time.monotonic() + 60
        while (not all(os.path.exists(tmp_path / f"{run.name}.ready") for run in runs)
               and time.monotonic() < deadline):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)   # StopSignals holds it: pytest runs on the main thread

    threading.Thread(target=stop_once_both_wait, daemon=True).start()
    done, stopped = suite.run_all(runs, str(tmp_path), jobs=2, progress=lambda line: None)
    assert stopped == signal.SIGTERM
    rows = suite.collect(runs, str(tmp_path), done, "answer_accuracy")
    if reported:
        assert list(done) == ["ended"] and done["ended"]["returncode"] == 0
        assert done["ended"]["seconds"] > 0
        assert [(r["variant"], r.get("error")) for r in rows] == [("ended", None),
                                                                  ("midway", "not finished")]
    else:
        assert done == {}
        assert [(r["variant"], r.get("error")) for r in rows] == [("ended", "not finished"),
                                                                  ("midway", "not finished")]
    assert [r["answer_accuracy"] for r in rows] == [0.5, 0.5]
