"""The entry points as a user runs them: bad input is one sentence, exit 2, nothing touched."""
import os

import pytest

from lowrank_jax import ATTENTIONS

from helpers import QUICK, assert_clean_error, run, tree_digest


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("trained"))
    result = run("train", "--workdir", workdir, *QUICK)
    assert result.returncode == 0, result.stderr
    assert "trainable parameters: 480" in result.stdout
    return workdir


@pytest.mark.parametrize("args,message", [
    (["--config.stepz=5"], "--config.stepz: the config has no field 'stepz'; did you mean 'steps'?"),
    (["--config.model.atention=x"], "--config.model.atention: model has no field 'atention'; did you mean 'attention'?"),
    (["--config.model.attention=flash"], "attention='flash' is not allowed; choose one of "
     f"{', '.join(map(repr, ATTENTIONS))}."),
    (["--config.model.d_model=7"], "d_model=7 is not allowed with n_heads=2; d_model must be divisible by n_heads."),
    (["--config.steps=many"], "--config.steps='many' is not allowed; it must be an integer."),
    (["--config.steps=0"], "steps=0 is not allowed; it must be a positive integer."),
    (["--config=nowhere.py"], "--config 'nowhere.py' is not a file"),
    (["--config=configs/lumenspark.py:big"],
     "--config 'configs/lumenspark.py:big': unknown argument 'big'; leave it out, or use :local."),
    (["--config.model.attention_kwargs.rnak=2"],
     "attention_kwargs for 'deep_qkv' got unknown key 'rnak'; allowed keys are rank, strict, temp."),
    (["--frobnicate"], "unknown argument '--frobnicate'; see --help."),
])
def test_bad_arguments(args, message, tmp_path):
    result = run("train", "--workdir", str(tmp_path / "w"), *args)
    assert_clean_error(result, message)
    assert not os.path.exists(tmp_path / "w")


def test_attention_option_the_config_file_does_not_list(tmp_path):
    result = run("train", "--config", "configs/abc_sort.py:linformer", "--workdir", str(tmp_path),
                 "--config.model.attention_kwargs.k=4", *QUICK)
    assert result.returncode == 0, result.stderr
    assert "block_slots=1" in result.stdout and "k=4" in result.stdout


def test_config_argument_picks_the_attention_variant(tmp_path):
    result = run("train", "--config", "configs/abc_sort.py:standard", "--workdir", str(tmp_path), *QUICK)
    assert result.returncode == 0, result.stderr
    assert "attention standard()" in result.stdout
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
