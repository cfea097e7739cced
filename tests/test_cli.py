"""The entry points as a user runs them: bad input is one sentence, exit 2, nothing touched."""
import json
import os
import re

import pytest

from lowrank_jax import ATTENTIONS
from configs.abc_sort import get_config
from train.cli import load_config_file
from train import plot
from train.loop import train_and_evaluate
from train.errors import UserError

from helpers import QUICK, assert_clean_error, run, tree_digest


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("trained"))
    result = run("train", "--workdir", workdir, *QUICK)
    assert result.returncode == 0, result.stderr
    assert "trainable parameters: 480" in result.stdout
    return workdir, result.stdout


@pytest.fixture(scope="module")
def trained(trained_run):
    return trained_run[0]


def test_a_run_outside_a_terminal_logs_lines_and_ends_with_a_summary(trained_run):
    """stdout is a pipe here, as under nohup or a batch scheduler: no bar, but lines."""
    out = trained_run[1]
    assert re.search(r"^step 2/4  loss \d+\.\d{4}  lr \S+  [\d,]+ tokens/s  ETA \dm\d\ds$", out,
                     re.M), out
    assert re.search(r"^step 4/4  loss ", out, re.M)
    assert re.search(r"^eval at step 4: triples_correct \d+", out, re.M)
    assert re.search(r"^done: step 4, train loss \d+\.\d{4}, validation triples_correct \d+, "
                     r"training [\d.]+ s \(\+[\d.]+ s compiling\); workdir ", out, re.M)


ENTRY_POINTS = ["train", "train.evaluate", "train.generate", "train.analyze", "train.plot",
                "train.sort_demo", "train.bench", "train.suite_merge"]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_help_says_what_the_tool_does_and_shows_defaults(module):
    result = run(module, "--help")
    assert result.returncode == 0, result.stderr
    paragraphs = result.stdout.split("\n\n")
    assert paragraphs[0].startswith(f"usage: python -m {module}")
    said = " ".join(paragraphs[1].split())
    assert said[0].isupper() and said.endswith("."), said
    if module in ("train", "train.generate", "train.bench"):
        assert "(default: " in result.stdout


def test_train_help_lists_the_shipped_configs_and_the_override_syntax():
    out = " ".join(run("train", "--help").stdout.split())
    assert "Shipped configs: abc_sort, gpt_lowrank_qk, listops_deep_qkv" in out
    assert "--config.FIELD=VALUE" in out


def test_configs_are_found_by_name_from_any_directory(tmp_path):
    result = run("train", "--config", "lm_standard:local", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"attention": "standard"' in result.stdout
    assert "trainable parameters: " in result.stdout
    assert os.listdir(tmp_path) == []  # a dry run writes nothing


def test_a_run_writes_its_resolved_config(trained):
    with open(os.path.join(trained, "config.json")) as f:
        config = json.load(f)
    assert config["task"] == "abc_sort" and config["steps"] == 4


def test_plot_draws_the_curves_of_a_run(trained, tmp_path):
    out = tmp_path / "curves.png"
    result = run("train.plot", trained, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_clean_error(run("train.plot", str(tmp_path / "none")),
                       "holds no metrics.jsonl; train a run there first.")
    assert_clean_error(run("train.plot", trained, "--out", str(tmp_path / "curves.txt")),
                       f"--out '{tmp_path / 'curves.txt'}' is not allowed; give an image file "
                       "ending in .png, .pdf, .svg, .jpg.")


def test_plot_skips_values_that_are_not_numbers(tmp_path):
    records = [{"step": 1, "loss": 2.5, "lr": 1e-3}, {"step": 2, "loss": "abc", "lr": 1e-3},
               {"step": 3, "loss": None, "lr": True}, {"step": 4, "loss": 2.0, "lr": 1e-3}]
    assert plot.series(records, "loss") == ([1, 4], [2.5, 2.0])
    assert plot.series(records, "lr") == ([1, 2, 4], [1e-3, 1e-3, 1e-3])
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": "abc"}\n')
    assert_clean_error(run("train.plot", str(tmp_path)), "holds no training loss yet")


@pytest.mark.parametrize("args,message", [
    (["--config.stepz=5"], "--config.stepz: the config has no field 'stepz'; did you mean 'steps'?"),
    (["--config.model.atention=x"], "--config.model.atention: model has no field 'atention'; did you mean 'attention'?"),
    (["--config.model.attention=flash"], "attention='flash' is not allowed; choose one of "
     f"{', '.join(map(repr, ATTENTIONS))}."),
    (["--config.model.d_model=7"], "d_model=7 is not allowed with n_heads=2; d_model must be divisible by n_heads."),
    (["--config.steps=many"], "--config.steps='many' is not allowed; it must be an integer."),
    (["--config.steps=0"], "steps=0 is not allowed; it must be a positive integer."),
    (["--config=nowhere.py"], "--config 'nowhere.py' is neither a config file nor a shipped "
                              "config; shipped: abc_sort, gpt_lowrank_qk"),
    (["--config=configs/lumenspark.py:big"],
     "--config 'configs/lumenspark.py:big': unknown argument 'big'; leave it out, or use :local."),
    (["--config.model.attention_kwargs.rnak=2"],
     "attention_kwargs for 'deep_qkv' got unknown key 'rnak'; allowed keys are rank, strict, temp, unit_gate."),
    (["--frobnicate"], "unknown argument '--frobnicate'; see --help."),
    (["--workdir="], "--workdir is empty; give a folder."),
    (["--config.model=3"], "--config.model: model is a section, not a value; set one of its "
                           "fields, as --config.model.FIELD=VALUE."),
    (["--config.steps.x=1"], "--config.steps.x: steps is a value, not a section; write "
                             "--config.steps=VALUE."),
    (["--config.task=text"], "task 'text' needs the config section data (see "
                             "configs/lm_standard.py)."),
    (["--config=README.md"], "--config 'README.md' is not a config file: it must be a Python "
                             "file (.py) with a get_config() function."),
    (["--config.batch_size=99999999999999999999"],
     "batch_size=99999999999999999999 is not allowed; it must be at most 2147483647."),
    (["--config.seed=99999999999999999999"],
     "seed=99999999999999999999 is not allowed; it must be an integer from 0 to 4294967295."),
    # Refused once the run had begun to write (checkpoints/, the task's data): undone.
    (["--config.num_devices=64"], "num_devices=64 is not allowed; this machine has 1."),
    (["--config.model.max_len=3"],
     "model.max_len=3 is not allowed for task 'abc_sort'; it must be at least 6."),
    (["--config.batch_size=1000000000"], "the run does not fit in device memory ("),
])
def test_bad_arguments(args, message, tmp_path):
    result = run("train", "--workdir", str(tmp_path / "w"), *args)
    assert_clean_error(result, message)
    assert not os.path.exists(tmp_path / "w")


def test_a_text_run_refused_late_leaves_its_fresh_workdir_as_it_found_it(tmp_path):
    """Out of memory once the tokenizer, the token cache and checkpoints/ were written:
    all removed again; a workdir that held a file keeps it."""
    corpus = tmp_path / "input.txt"
    corpus.write_text("to be or not to be, that is the question\n" * 200)
    flags = ["--config=lm_standard:local", f"--config.data.path={corpus}",
             "--config.batch_size=1000000000"]
    assert_clean_error(run("train", "--workdir", str(tmp_path / "w"), *flags),
                       "lower batch_size=1000000000, model.max_len=128, model.d_model=128 or "
                       "model.n_layers=2, or set model.remat=block.")
    assert not os.path.exists(tmp_path / "w")


def test_a_workdir_that_held_a_file_keeps_it_when_a_run_is_refused(tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    config = get_config()
    config.model.max_len = 3  # refused once the run has begun to write
    with pytest.raises(UserError, match="model.max_len=3 is not allowed"):
        train_and_evaluate(config, str(used))
    assert (used / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("text,message", [
    ("def get_config(:\n    pass\n", "line 1: invalid syntax."),
    ("import os\n\ndef get_config():\n    return os.nope\n",
     "line 4 raised AttributeError: module 'os' has no attribute 'nope'."),
    ("import no_such_module\n", "line 1 raised ModuleNotFoundError: No module named 'no_such_module'."),
    ("def get_config():\n    return {'steps': 5}\n",
     ": get_config() returned a dict, not an ml_collections.ConfigDict; build it with "
     "configs/base.py's make_config or make_lm_config."),
    ("import ml_collections\n\ndef get_config():\n    return ml_collections.ConfigDict({'steps': 5})\n",
     ": the config has no field batch_size, checkpoint_every, "),
])
def test_a_broken_config_file_is_named_with_its_line(text, message, tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(text)
    with pytest.raises(UserError) as refused:
        load_config_file(str(path))
    assert str(refused.value).startswith(f"--config {str(path)!r}") and message in str(refused.value)
    if "syntax" in message:  # and as the command line tells it
        assert_clean_error(run("train", "--config", str(path), "--workdir", str(tmp_path / "w")),
                           message)


def test_attention_option_the_config_file_does_not_list(tmp_path):
    """--dry-run builds the model from the resolved config, as training would."""
    result = run("train", "--config", "configs/abc_sort.py:linformer", "--workdir", str(tmp_path),
                 "--config.model.attention_kwargs.k=4", "--dry-run")
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout[:result.stdout.rindex("}") + 1])["model"]
    assert resolved["attention_kwargs"] == {"causal": True, "block_size": 2, "block_slots": 1,
                                            "k": 4}
    assert "trainable parameters" in result.stdout


def test_config_argument_picks_the_attention_variant(tmp_path):
    result = run("train", "--config", "configs/abc_sort.py:standard", "--workdir", str(tmp_path),
                 "--dry-run")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout[:result.stdout.rindex("}") + 1])["model"]["attention"] == "standard"
    assert_clean_error(run("train", "--config", "configs/abc_sort.py:flash", "--workdir", str(tmp_path)),
                       "attention='flash' is not allowed")


def test_workdir_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run("train", "--workdir", str(blocker / "run"), *QUICK)
    assert_clean_error(result, "is not a writable folder")


def test_workdir_of_another_model_is_refused_and_left_alone(trained):
    before = tree_digest(trained)
    result = run("train", "--workdir", trained, *QUICK, "--config.model.d_model=8")
    assert_clean_error(result, "workdir holds a checkpoint of a different model "
                               "(model.d_model is 6 there but 8 here)")
    assert tree_digest(trained) == before


def test_sort_demo_traces_what_the_user_types(trained):
    result = run("train.sort_demo", "--workdir", trained, stdin="cab\nabcd\nxyz\n\nCCA\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "trace cab:" in out and "trace cca:" in out
    assert out.count("head 0: [") == 6 and out.count("head 1: [") == 6
    for bad in ("'abcd'", "'xyz'", "''"):
        assert f"{bad} is not a triple; type exactly three letters from a, b, c" in out


def test_sort_demo_without_a_checkpoint(tmp_path):
    result = run("train.sort_demo", "--workdir", str(tmp_path))
    assert_clean_error(result, "holds no checkpoint")
