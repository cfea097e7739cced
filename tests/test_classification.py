"""Classification through the same training loop: ListOps's files become labelled rows, the
step's label loss is the classifier's cross-entropy, every encoder variant trains, a run
learns and resumes as if unbroken, bad files are refused in one sentence, and the suite
writes its figures."""
import json
import math
import shutil
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs.listops_linformer import get_config as linformer_config
from configs.listops_standard import get_config as standard_config
from lowrank_jax.model import Classifier
from lowrank_jax.tasks import labelled, listops
from lowrank_jax.training.config import check_train_config, run_spec
from lowrank_jax.training.step import make_loss_fn
from train import suite
from train.errors import UserError
from train.listops import FILES, load_rows, write_splits
from train.loop import train_and_evaluate
from train.metrics import read_metrics

from helpers import assert_clean_error, run, tree_digest

LENGTHS = (16, 60)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("listops")
    write_splits(str(folder), {"train": 600, "val": 100, "test": 100}, 0, LENGTHS,
                 progress=lambda _: None)
    return str(folder)


def local_config(data_dir, make=standard_config, **changes):
    config = make("local")
    config.listops.path = data_dir
    config.model.max_len = LENGTHS[1]
    config.update(dict(num_devices=1, **changes))
    return config


def test_rows_hold_the_tokens_then_the_label(data_dir):
    spec = run_spec(local_config(data_dir))
    rows = load_rows(spec.options, LENGTHS[1])
    sources, labels = zip(*listops.splits(0, {"train": 600}, LENGTHS)["train"])
    assert rows["train"].shape == (600, LENGTHS[1] + 1)
    for row, source, label in zip(rows["train"], sources, labels):
        tokens = listops.tokenize(source)
        assert list(row[:len(tokens)]) == tokens and not row[len(tokens):-1].any()
        assert row[-1] == label
    # 100 held-out rows in batches of 50; a partial last batch is filled with padding
    assert rows["val"].shape == (2, 50, LENGTHS[1] + 1)
    batches = labelled.eval_batches(rows["train"][:7], 3)
    assert batches.shape == (3, 3, LENGTHS[1] + 1) and not batches[2, 1:].any()


def test_the_label_loss_is_the_classifiers_cross_entropy_on_the_last_column(data_dir):
    spec = run_spec(local_config(data_dir))
    model_cfg, task = check_train_config(spec, load_rows(spec.options, LENGTHS[1]))
    model = Classifier(model_cfg, task.num_classes)
    rows = task.make_batch(jax.random.key(0), 8, task.data)
    params = model.init(jax.random.key(1), rows[:, :-1])["params"]
    loss, sums = make_loss_fn(model, task)(params, rows, jax.random.key(2))
    logits = model.apply({"params": params}, rows[:, :-1], rows[:, :-1] != 0)
    expected = optax.softmax_cross_entropy_with_integer_labels(logits, rows[:, -1]).mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    assert float(sums["targets"]) == 8
    assert int(sums["correct"]) == int((jnp.argmax(logits, -1) == rows[:, -1]).sum())


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """A 150-step local run: (its workdir, its summary)."""
    workdir = str(tmp_path_factory.mktemp("trained") / "w")
    config = local_config(data_dir, steps=150, warmup_steps=15, log_every=50, eval_every=150,
                          checkpoint_every=150)
    return workdir, train_and_evaluate(config, workdir)


def test_a_short_run_learns_and_reports_held_out_accuracy(trained):
    workdir, summary = trained
    losses = [r["loss"] for r in read_metrics(workdir) if "loss" in r]
    final = summary["eval"]
    # Measured (2-core CPU, jax 0.10.2): train loss 2.17, 1.78, 1.76 against ln(10) = 2.30
    # for guessing; test accuracy 0.33, val 0.31, where one label always would score
    # about 0.2.
    assert losses[-1] < math.log(10) - 0.3
    assert final["eval/test_accuracy"] > 0.2 and final["eval/val_accuracy"] > 0.2
    assert 0 < final["eval/test_loss"] < math.log(10)


def test_a_resumed_classifier_run_equals_an_unbroken_one(data_dir, tmp_path):
    """The run's step-8 checkpoint, resumed, trains and evaluates as the unbroken run did
    (the Linformer's learnt projection, shared by every layer, among the state restored)."""
    config = local_config(data_dir, make=linformer_config, steps=12, warmup_steps=2,
                          log_every=4, eval_every=12, checkpoint_every=4)
    config.model.attention_kwargs.projection = "learnt"
    unbroken = train_and_evaluate(config, str(tmp_path / "whole"))
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    shutil.rmtree(tmp_path / "cut" / "checkpoints" / "12")
    resumed = train_and_evaluate(config, str(tmp_path / "cut"))
    assert resumed["step"] == 12
    for key in ("eval/test_accuracy", "eval/test_loss", "eval/val_loss"):
        np.testing.assert_allclose(resumed["eval"][key], unbroken["eval"][key], rtol=1e-5)
    curve = [(r["step"], r["loss"]) for r in read_metrics(str(tmp_path / "cut")) if "loss" in r]
    expected = [(r["step"], r["loss"]) for r in read_metrics(str(tmp_path / "whole"))
                if "loss" in r]
    assert [s for s, _ in curve] == [4, 8, 12]
    np.testing.assert_allclose([v for _, v in curve], [v for _, v in expected], rtol=1e-5)


@pytest.mark.parametrize("config_file", ["listops_deep_qkv", "listops_lowrank_qk"])
def test_every_encoder_variant_takes_a_finite_step_and_learns(data_dir, config_file):
    """The train step on a labelled task for the variants the runs above leave out (standard
    and the bidirectional Linformer train there): two steps on one batch lower its loss."""
    import importlib

    config = local_config(data_dir, make=importlib.import_module(f"configs.{config_file}")
                          .get_config)
    spec = run_spec(config)
    model_cfg, task = check_train_config(spec, load_rows(spec.options, LENGTHS[1]))
    model = Classifier(model_cfg, task.num_classes)
    rows = task.make_batch(jax.random.key(0), 16, task.data)
    params = model.init(jax.random.key(1), rows[:, :-1])["params"]
    loss_fn = jax.jit(jax.value_and_grad(lambda p: make_loss_fn(model, task)(
        p, rows, jax.random.key(2))[0]))
    before, grads = loss_fn(params)
    for _ in range(2):
        params = jax.tree.map(lambda p, g: p - 0.05 * g, params, grads)
        after, grads = loss_fn(params)
    assert np.isfinite(float(before)) and float(after) < float(before)


@pytest.mark.parametrize("content, message", [
    (None, "basic_val.tsv cannot be read there (No such file or directory)"),
    ("Src\tLabel\n( [MAX 2 3 ] )\t3\n", "is not a ListOps file: its first line must be the "
                                         "header Source<TAB>Target."),
    ("Source\tTarget\n( [MAX 2 3 ] )\t12\n", "basic_val.tsv line 2 is not allowed; each line is "
                                             "an example, a tab, and its label 0-9."),
    ("Source\tTarget\n( [MAX 2 3 ] )\t\u00b2\n", "basic_val.tsv line 2 is not allowed; each "
                                                  "line is an example, a tab, and its label 0-9."),
    ("Source\tTarget\n( [MAX 2 33 ] )\t3\n", "basic_val.tsv in '{}' is not allowed with "
                                             "model.max_len=60: its example 1 holds '33', which "
                                             "is not a ListOps symbol."),
    ("Source\tTarget\n( [MAX " + "2 " * 70 + "] )\t2\n",
     "its example 1 has 72 tokens, more than the 60 a row holds."),
])
def test_bad_listops_files_are_refused_in_one_sentence(data_dir, tmp_path, content, message):
    folder = tmp_path / "data"
    shutil.copytree(data_dir, folder)
    if content is None:
        (folder / FILES["val"]).unlink()
    else:
        (folder / FILES["val"]).write_text(content)
    with pytest.raises(UserError) as refused:
        train_and_evaluate(local_config(str(folder)), str(tmp_path / "w"))
    assert message.format(folder) in str(refused.value)
    assert not (tmp_path / "w").exists()   # refused before anything was written


def test_the_cli_refuses_bad_files_in_one_sentence_and_a_classifier_generation(
        trained, tmp_path):
    trained = trained[0]
    folder = tmp_path / "data"
    folder.mkdir()
    assert_clean_error(run("train", "--config", "configs/listops_standard.py:local",
                           "--workdir", str(tmp_path / "w"), f"--config.listops.path={folder}"),
                       f"basic_train.tsv cannot be read there (No such file or directory); "
                       f"write the files with python -m train.listops --out {folder} "
                       "--lengths 16,128.")
    assert_clean_error(run("train.generate", "--workdir", trained, "--prompt", "x"),
                       "holds a classifier (task 'listops'), not a language model")
    evaluated = run("train.evaluate", "--workdir", trained)
    assert evaluated.returncode == 0 and "test_accuracy" in evaluated.stdout


def test_the_data_does_not_depend_on_the_number_of_workers():
    counts = {"train": 150, "val": 20}
    assert listops.splits(4, counts, LENGTHS, workers=2) == listops.splits(4, counts, LENGTHS)


def test_the_listops_suite_runs_each_variant_and_writes_its_figures(data_dir, tmp_path):
    result = run("train.suite", "listops", "--size", "local", "--variants", "standard",
                 "--steps", "4", "--data", data_dir, "--out", str(tmp_path / "q"))
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "q" / "quality_listops.json") as f:
        rows = json.load(f)["results"]
    assert [r["variant"] for r in rows] == ["standard"]
    assert 0 <= rows[0]["test_accuracy"] <= 1 and rows[0]["steps"] == 4 and rows[0]["batch"] == 16
    assert rows[0]["best_val_step"] == 4   # the one evaluation
    assert rows[0]["test_accuracy_at_best_val"] == rows[0]["test_accuracy"]
    assert (tmp_path / "q" / "quality_listops.png").stat().st_size > 0
    table = (tmp_path / "q" / "quality_listops.md").read_text()
    assert "| standard (steps=4) |" in table and "(step 4)" in table   # one seed: its best step
    assert "--config.steps=4" in rows[0]["command"]   # the command that made the run


def test_a_suite_run_again_skips_what_it_finished_and_refuses_changed_settings(data_dir,
                                                                               tmp_path):
    """The same command (or one setting an option to its default) reports the finished run
    again; one with other settings is refused before it starts, rather than reporting the
    4-step run as a 6-step one, or the pooled projection's run as the learnt one's."""
    command = ["train.suite", "listops", "--size", "local", "--variants", "linformer",
               "--data", data_dir, "--out", str(tmp_path / "q")]
    assert run(*command, "--steps", "4").returncode == 0
    results = (tmp_path / "q" / "quality_listops.json").read_text()
    again = run(*command, "--steps", "4", "--set", "model.attention_kwargs.projection=pool")
    assert again.returncode == 0 and "[1/1]" not in again.stdout, again.stdout
    results_again = (tmp_path / "q" / "quality_listops.json").read_text()
    assert (json.loads(results)["results"][0]["test_accuracy"]
            == json.loads(results_again)["results"][0]["test_accuracy"])
    results = results_again   # what the refusals below must leave as it is
    workdir = tmp_path / "q" / "listops_runs" / "linformer"
    assert_clean_error(run(*command, "--steps", "4", "--set",
                           "model.attention_kwargs.projection=learnt"),
                       f"{workdir} holds a run made with other settings (model.attention_kwargs."
                       "projection is 'pool' there but 'learnt' here); give another --out")
    assert_clean_error(run(*command, "--steps", "6"),
                       f"{workdir} holds a run made with other settings (checkpoint_every "
                       "is 4 there but 6 here, eval_every is 4 there but 6 here, steps is 4 "
                       "there but 6 here); give another --out, or the settings it was made "
                       "with to resume or report it.")
    # other data is refused before it is written
    other = tmp_path / "other_data"
    assert_clean_error(run(*command[:-4], "--data", str(other), "--out", str(tmp_path / "q"),
                           "--steps", "4"),
                       f"listops.path is {str(data_dir)!r} there but {str(other)!r} here")
    assert not other.exists()
    assert (tmp_path / "q" / "quality_listops.json").read_text() == results


def test_the_mqar_grid_keeps_the_cells_that_fit_and_scales_the_linformer_blocks():
    runs = suite.mqar_runs("full", ["standard", "linformer"])
    cells = {(r.row["L"], r.row["pairs"]) for r in runs if r.row["variant"] == "standard"}
    # a row of L + 1 tokens holds the pairs and one query per pair (mqar.check_shape)
    assert cells == {(64, 4), (64, 16), (128, 4), (128, 16), (256, 4), (256, 16), (256, 64),
                     (512, 4), (512, 16), (512, 64)}
    linformer = next(r for r in runs if r.name == "linformer_L512_p64")
    assert "--config.model.attention_kwargs.block_size=64" in linformer.overrides
    assert "--config.model.attention_kwargs.block_slots=16" in linformer.overrides


@pytest.mark.parametrize("steps", [1, 2, 25, 4000])
def test_a_shortened_suite_run_has_a_schedule_the_config_check_takes(steps):
    run_ = suite.mqar_runs("local", ["standard"])[0]
    suite.check_config(run_._replace(overrides=run_.overrides + suite.schedule(steps)))


def test_the_lm_suite_gives_every_run_the_same_tokens_and_keeps_lumensparks_ratio():
    runs = suite.lm_runs("full", ["linformer", "lumenspark"])
    # Whole lengths first, so a suite cut by its time limit has compared the short one.
    assert [r.name for r in runs] == ["linformer_L1024", "lumenspark_L1024", "linformer_L8192",
                                      "lumenspark_L8192"]
    for r in runs:
        fields = dict(o.removeprefix("--config.").split("=") for o in r.overrides)
        assert int(fields["batch_size"]) * r.row["L"] == 65_536 and fields["steps"] == "1000"
        if r.row["variant"] == "lumenspark":   # the seed's k = 128 of 512 tokens
            assert int(fields["model.attention_kwargs.k"]) * 4 == r.row["L"]
    assert runs[0].config == "configs/lm_linformer.py" and runs[1].config == "configs/lumenspark.py"


def test_training_seconds_read_each_logged_mean_rate_since_the_start():
    records = [{"step": 10, "steps_per_second": 5.0}, {"step": 10, "eval/bits_per_byte": 3.0},
               {"step": 30, "steps_per_second": 10.0}]
    assert suite.training_seconds(records) == [(10, 2.0), (30, 3.0)]


def test_lumenspark_is_an_lm_suite_variant_only():
    assert_clean_error(run("train.suite", "listops", "--variants", "lumenspark"),
                       "--variants=lumenspark is not allowed for listops; choose from standard, "
                       "deep_qkv, lowrank_qk, linformer.")


def test_a_bad_suite_size_is_one_sentence():
    assert_clean_error(run("train.suite", "mqar", "--size", "small"),
                       "--size='small' is not allowed for mqar; choose one of full, local.")


def test_the_listops_configs_have_lras_budget_and_the_small_model():
    full, small = standard_config(""), linformer_config("small")
    assert (full.model.n_layers, full.model.d_model, full.model.n_heads, full.model.d_ff,
            full.model.max_len, full.batch_size, full.steps) == (4, 512, 8, 1024, 2000, 32, 5000)
    assert (small.model.n_layers, small.model.d_model) == (2, 64)
    assert not full.model.causal and not small.model.causal
    assert small.model.attention_kwargs.to_dict() == {"causal": False, "k": 256,
                                                      "sharing": "layerwise",
                                                      "projection": "pool"}


def test_a_workdir_trained_on_other_files_is_refused_and_left_alone(trained, data_dir, tmp_path):
    workdir = tmp_path / "w"
    shutil.copytree(trained[0], workdir)
    other = tmp_path / "other"
    shutil.copytree(data_dir, other)
    before = tree_digest(workdir)
    with pytest.raises(UserError, match=r"workdir holds a checkpoint trained on other data "
                                        r"\(listops.path is .* there but .* here\)"):
        train_and_evaluate(local_config(str(other), steps=150, warmup_steps=15, log_every=50,
                                        eval_every=150, checkpoint_every=150), str(workdir))
    assert tree_digest(workdir) == before


def test_the_test_accuracy_kept_is_the_one_at_the_best_validation_step():
    evals = [{"step": 1000, "val_accuracy": 0.30, "test_accuracy": 0.29},
             {"step": 2000, "val_accuracy": 0.38, "test_accuracy": 0.36},
             {"step": 3000, "val_accuracy": 0.38, "test_accuracy": 0.40},   # a later tie
             {"step": 4000, "val_accuracy": 0.33, "test_accuracy": 0.37}]
    assert suite.at_best_validation(evals) == {"best_val_step": 2000, "best_val_accuracy": 0.38,
                                               "test_accuracy_at_best_val": 0.36}
    assert suite.at_best_validation([{"step": 5, "answer_accuracy": 0.5}]) == {}


def test_suite_settings_reach_every_run_after_its_own():
    assert suite.config_overrides(["lr=3e-3", "config.model.d_model=256"]) == (
        "--config.lr=3e-3", "--config.model.d_model=256")
    args = suite.build_parser().parse_args(["mqar", "--lengths", "64", "--pairs", "4",
                                            "--variants", "lowrank_qk", "--steps", "50",
                                            "--set", "model.attention_kwargs.r=4",
                                            "--set", "config.lr=3e-3"])
    (only,) = suite.chosen_runs(args)[1]
    given = only.overrides.index("--config.model.attention_kwargs.r=4")
    assert only.overrides[given + 1:given + 3] == ("--config.lr=3e-3", "--config.steps=50")
    assert only.overrides.index("--config.model.attention_kwargs.r=16") < given   # its own
    # the row names them in one order, whatever order they came in, --steps among them
    assert only.row["settings"] == "lr=3e-3, model.attention_kwargs.r=4, steps=50"
    assert "settings" not in suite.chosen_runs(suite.build_parser().parse_args(
        ["mqar", "--lengths", "64", "--pairs", "4"]))[1][0].row
    assert_clean_error(run("train.suite", "mqar", "--set", "lr"),
                       "--set 'lr' is not allowed; give FIELD=VALUE, e.g. --set lr=3e-3 or "
                       "--set model.d_model=256.")


def test_the_mqar_table_shows_a_cut_run_as_unfinished_not_its_partial_accuracy(tmp_path):
    from train import suite_report

    machine = {"device": "cpu", "date": "2026-12-03", "jax": "0"}
    rows = [{"variant": "standard", "L": 64, "pairs": 4, "answer_accuracy": 0.991},
            {"variant": "standard", "L": 128, "pairs": 4, "answer_accuracy": 0.0002,
             "error": "not finished"}]
    text = suite_report.mqar_report({"command": "c", "machine": machine, "results": rows},
                                    str(tmp_path / "mqar.png"))
    assert "| standard | 4 | 99.10% | - |" in text
    assert "- standard L 128 pairs 4: not finished" in text
    assert "0.02%" not in text


def test_suite_lengths_and_pairs_pick_runs_of_the_grid_and_refuse_others_in_one_sentence():
    runs = suite.lm_runs("full", ["standard", "linformer"])
    assert [r.name for r in suite.at_grid(runs, "L", "8192", "lm")] == ["standard_L8192",
                                                                        "linformer_L8192"]
    assert suite.at_grid(runs, "L", None, "lm") == runs
    cells = suite.at_grid(suite.mqar_runs("full", ["standard"]), "pairs", "16,64", "mqar")
    assert [r.name for r in suite.at_grid(cells, "L", "256,512", "mqar")] == [
        "standard_L256_p16", "standard_L256_p64", "standard_L512_p16", "standard_L512_p64"]
    assert_clean_error(run("train.suite", "mqar", "--pairs", "8"),
                       "--pairs='8' is not allowed; choose from 4, 16, 64.")
    assert_clean_error(run("train.suite", "lm", "--pairs", "4"),
                       "--pairs='4' is not allowed; lm has no key-value pair grid.")
    assert_clean_error(run("train.suite", "lm", "--lengths", "1024,100"),
                       "--lengths='1024,100' is not allowed; choose from 1024, 8192.")
    assert_clean_error(run("train.suite", "listops", "--lengths", "64"),
                       "--lengths='64' is not allowed; listops has no sequence-length grid.")


def test_suite_seeds_train_each_run_once_per_seed_side_by_side():
    runs = suite.at_seeds(suite.listops_runs("small", ["standard", "linformer"], "d"), "0,7")
    assert [r.name for r in runs] == ["standard_seed0", "standard_seed7", "linformer_seed0",
                                      "linformer_seed7"]
    assert runs[1].overrides[-1] == "--config.seed=7" and runs[1].row == {"variant": "standard",
                                                                        "seed": 7}
    assert suite.at_seeds(runs, None) == runs
    for bad in ("0,0", "1,x", "-1", "4294967296", "\u00b2"):
        with pytest.raises(UserError, match=rf"--seeds='{bad}' is not allowed; give distinct "
                                            r"integers from 0 to 4294967295"):
            suite.at_seeds(runs, bad)


def seed_row(variant, seed, accuracy, **more):
    evals = [{"step": 10, "val_accuracy": accuracy, "test_accuracy": accuracy}]
    return {"variant": variant, "seed": seed, "test_accuracy": accuracy, "val_accuracy": accuracy,
            "test_accuracy_at_best_val": accuracy, "best_val_step": 10, "steps": 10, "batch": 4,
            "seconds": 2.0 * (seed + 1), "curves": {"eval": evals, "train": [], "seconds": []},
            **more}


def test_the_listops_table_gives_the_mean_over_seeds_and_each_seed(tmp_path):
    from train import suite_report

    rows = [seed_row("standard", 0, 0.36), seed_row("standard", 1, 0.38),
            seed_row("linformer", 0, 0.35), seed_row("linformer", 1, 0.2, error="not finished"),
            # runs an earlier call of the suite ended: their wall time was not measured
            *(seed_row("lowrank_qk", seed, 0.4, seconds=None) for seed in (0, 1))]
    machine = {"device": "cpu", "date": "2026-12-04", "jax": "0"}
    text = suite_report.listops_report({"command": "c", "machine": machine, "size": "small",
                                        "results": rows}, str(tmp_path / "listops.png"))
    assert ("| standard | 37.00% (seed 0 36.00%, seed 1 38.00%) | 37.00% | 37.00% | 36.37% | "
            "10 x 4 | 3 |") in text
    assert text.splitlines()[-1].endswith("| - | 10 x 4 | - |"), text   # not 0 s
    # One seed cut short: the variant has no figure, not the mean of the seeds that finished.
    assert "| linformer | seed 1: not finished |" in text
    assert (tmp_path / "listops.png").stat().st_size > 0


def test_the_listops_plot_of_a_suite_with_no_variant_done_yet_warns_of_nothing(tmp_path):
    """A suite writes its results after each run: after the first of two seeds no variant
    has a figure yet, and matplotlib warned of an empty x range on the user's console."""
    from train import suite_report

    rows = [seed_row("standard", 0, 0.36), seed_row("standard", 1, 0.2, error="not finished")]
    machine = {"device": "cpu", "date": "2026-12-07", "jax": "0"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        suite_report.listops_report({"command": "c", "machine": machine, "size": "small",
                                     "results": rows}, str(tmp_path / "listops.png"))
    assert (tmp_path / "listops.png").stat().st_size > 0


def test_suite_results_merge_into_one_table_a_later_row_replacing_an_earlier(tmp_path):
    def result(command, device, rows):
        return {"benchmark": "quality_listops", "size": "small", "command": command,
                "machine": {"device": device, "date": "2026-12-06", "jax": "0"},
                "results": rows}
    failed = {"variant": "standard", "seed": 0, "test_accuracy": None, "error": "out of memory"}
    first = result("a", "H100", [failed, seed_row("lowrank_qk", 0, 0.37)])
    # a run of one variant at other --set settings is another row, named by them
    second = result(["b", "c"], "H200", [seed_row("standard", 0, 0.38),
                                         seed_row("lowrank_qk", 0, 0.39, settings="lr=1e-3")])
    # a suite's file from before rows named their settings: its command names them
    older = result("python -m train.suite listops --set lr=1e-3 --out o", "H100",
                   [seed_row("lowrank_qk", 0, 0.41)])
    paths = []
    for number, content in enumerate((first, second, older)):
        paths.append(tmp_path / f"{number}.json")
        paths[-1].write_text(json.dumps(content))
    result = run("train.suite_merge", "--out", str(tmp_path / "m"), *map(str, paths))
    assert result.returncode == 0, result.stderr
    merged = json.loads((tmp_path / "m" / "quality_listops.json").read_text())
    assert [(r["variant"], r.get("settings"), r["test_accuracy"])
            for r in merged["results"]] == [("standard", None, 0.38), ("lowrank_qk", None, 0.37),
                                            ("lowrank_qk", "lr=1e-3", 0.41)]
    assert merged["command"][:3] == ["a", "b", "c"] and merged["machine"]["device"] == "H100, H200"
    table = (tmp_path / "m" / "quality_listops.md").read_text()
    assert ("`a`, `b`, `c`, `python -m train.suite listops --set lr=1e-3 --out o` on H100, "
            "H200") in table
    assert "| standard | 38.00% (seed 0 38.00%) |" in table
    assert "| lowrank_qk | 37.00%" in table and "| lowrank_qk (lr=1e-3) | 41.00%" in table
    for change, refusal in [({"benchmark": "quality_lm"}, "different suites (quality_listops, "
                                                           "quality_lm)"),
                            ({"size": "full"}, "different sizes (full, small)")]:
        other = tmp_path / "other.json"
        other.write_text(json.dumps({**second, **change}))
        assert_clean_error(run("train.suite_merge", "--out", str(tmp_path / "x"),
                               str(paths[0]), str(other)),
                           f"the files hold {refusal}; merge the results of one suite at one "
                           "size at a time.")
    assert_clean_error(run("train.suite_merge", "--out", str(tmp_path / "x"), str(tmp_path)),
                       "is not a readable suite results file (IsADirectoryError)")
    assert not (tmp_path / "x").exists()


def test_suite_arguments_are_checked_before_any_data_or_run_is_written(tmp_path, capsys):
    data = tmp_path / "data"
    with pytest.raises(SystemExit) as stop:
        suite.main(["suite", "listops", "--seeds", "0,1", "--set", "seed=3", "--data", str(data)])
    assert stop.value.code == 2 and not data.exists()
    assert capsys.readouterr().err.strip().endswith(
        "--set seed=.. is not allowed with --seeds; --seeds sets each run's seed.")
    taken = tmp_path / "a_file"
    taken.write_text("mine")
    with pytest.raises(SystemExit):
        suite.main(["suite", "listops", "--out", str(taken), "--data", str(data)])
    assert capsys.readouterr().err.strip().endswith(
        f"--out '{taken}' cannot be made a folder ({taken} is not a folder you can write to); "
        "pass a folder you can write to.")
    assert taken.read_text() == "mine" and not data.exists()
    # A setting no config can take is refused before any run starts, not by every run.
    with pytest.raises(SystemExit):
        suite.main(["suite", "mqar", "--set", "stepz=3", "--out", str(tmp_path / "q")])
    assert capsys.readouterr().err.strip() == (
        "python -m train.suite: error: run standard_L64_p4: --config.stepz: the config has no "
        "field 'stepz'; did you mean 'steps'?")
    assert not (tmp_path / "q").exists()
    # ... and before the ListOps data, minutes of work, is written for it.
    with pytest.raises(SystemExit):
        suite.main(["suite", "listops", "--set", "steps=abc", "--data", str(data)])
    assert capsys.readouterr().err.strip().endswith(
        "run standard: --config.steps='abc' is not allowed; it must be an integer.")
    assert not data.exists()


def test_the_mqar_and_lm_tables_over_seeds(tmp_path):
    from train import suite_report

    machine = {"device": "cpu", "date": "2026-12-04", "jax": "0"}
    cells = [{"variant": "linformer", "L": 64, "pairs": 4, "seed": s, "answer_accuracy": a,
              "steps": 10, "batch": 2, "curves": {"eval": [], "train": [], "seconds": []}}
             for s, a in ((0, 0.98), (1, 1.0))]
    text = suite_report.mqar_report({"command": "c", "machine": machine, "results": cells},
                                    str(tmp_path / "mqar.png"))
    assert "| linformer | 4 | 99.00% (98.0-100.0) |" in text

    def lm_row(seed, bpb, rate):   # rate: steps per training second, logged at step 10
        curves = {"eval": [{"step": 10, "bits_per_byte": bpb}], "train": [],
                  "seconds": [(10, 10 / rate)]}
        return {"variant": "standard", "L": 64, "seed": seed, "bits_per_byte": bpb, "steps": 10,
                "batch": 2, "seconds": 9.0, "curves": curves}
    single = {k: v for k, v in lm_row(0, 1.5, 2.0).items() if k != "seed"}
    for rows, line in (([single], "| standard | 64 | 1.5000 | 1,280 | 5 | 9 |"),
                       ([lm_row(0, 1.5, 2.0), lm_row(1, 1.7, 1.0)],
                        "| standard | 64 | 1.6000 (seed 0 1.5000, seed 1 1.7000) | 1,280 | 8 | 9 |")):
        text = suite_report.lm_report({"command": "c", "machine": machine, "results": rows},
                                      str(tmp_path / "lm.png"))
        assert line in text
