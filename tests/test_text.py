"""The text task: windows, validation, bits per byte, the workdir's tokenizer, resuming."""
import math
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lowrank_jax.tasks import text
from lowrank_jax.tokenizer import BPETokenizer, ByteTokenizer
from helpers import assert_clean_error, run, tiny_config, tree_digest
from train.errors import UserError
from train.loop import train_and_evaluate
from train.metrics import read_metrics
from train.pretrained import load_latest



@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    words = ["lambda", "def", "return", "yield", "naïve", "日本", "→", "(", ")", ":", "\n"]
    for i in range(6):
        (folder / f"doc{i}.txt").write_text(" ".join(rng.choice(words, 400)), encoding="utf-8")
    return folder


def test_batches_are_windows_of_the_training_split_and_a_function_of_the_key():
    train = np.arange(1000) % 251
    arrays = {"train": jnp.asarray(train, jnp.uint8)}
    key = jax.random.key(3)
    batch = np.asarray(text.make_batch(key, 8, arrays, seq_len=17))
    assert batch.shape == (8, 17) and batch.dtype == np.int32
    for row in batch:
        np.testing.assert_array_equal(row, train[row[0]:row[0] + 17])  # value == index here
    np.testing.assert_array_equal(batch, text.make_batch(key, 8, arrays, seq_len=17))
    assert not np.array_equal(batch, text.make_batch(jax.random.fold_in(key, 1), 8, arrays, seq_len=17))


def test_validation_windows_predict_every_token_once():
    val = np.arange(50)
    windows = text.validation_windows(val, 8, 0)
    assert windows.shape == (7, 8)  # (50 - 1) // 7 windows
    targets = windows[:, 1:].ravel()
    np.testing.assert_array_equal(targets, np.arange(1, 50))
    spread = text.validation_windows(val, 8, 3)
    np.testing.assert_array_equal(spread[:, 0], [0, 21, 42])


def test_bits_per_byte_of_a_uniform_model():
    """A uniform model over V tokens spends log2(V) bits per token; per byte that is
    divided by the bytes each target stands for."""
    tok = BPETokenizer.train(["the cat sat on the mat " * 40], 300)
    ids = np.asarray(tok.encode("the cat sat on the mat " * 12), np.int32)
    data = text.TextData(ids, ids, tok.byte_lengths(), eval_windows=0, eval_batch_size=2)
    arrays = text.device_arrays(data, seq_len=9)
    vocab = tok.vocab_size
    sums = text.evaluate(lambda t: jnp.zeros((*t.shape, vocab)), arrays)
    metrics = text.finish_eval(jax.device_get(sums))
    targets = arrays["val_NbxBxT"][..., 1:].ravel()
    expected_bytes = sum(len(tok.decode([t]).encode()) for t in targets)
    assert sums["bytes"] == expected_bytes
    np.testing.assert_allclose(metrics["loss"], math.log(vocab), rtol=1e-6)
    np.testing.assert_allclose(metrics["perplexity"], vocab, rtol=1e-5)
    np.testing.assert_allclose(metrics["bits_per_byte"],
                               math.log2(vocab) * len(targets) / expected_bytes, rtol=1e-6)
    assert ByteTokenizer().byte_lengths().sum() == 256


def test_narrow_token_dtypes():
    assert text.token_dtype(256) == np.uint8
    assert text.token_dtype(257) == np.uint16 and text.token_dtype(65536) == np.uint16
    assert text.token_dtype(50257) == np.uint16 and text.token_dtype(65537) == np.uint32


def without_timing(records):
    return [{k: v for k, v in r.items() if k != "steps_per_second"} for r in records]


def test_resumed_text_run_keeps_the_data_order(corpus_dir, tmp_path):
    config = tiny_config(corpus_dir, tmp_path / "cache")
    whole, halves = str(tmp_path / "whole"), str(tmp_path / "halves")
    train_and_evaluate(config, whole)
    shutil.copytree(whole, halves)
    shutil.rmtree(os.path.join(halves, "checkpoints", "8"))  # as if stopped after step 4
    assert train_and_evaluate(config, halves)["step"] == 8
    assert without_timing(read_metrics(halves)) == without_timing(read_metrics(whole))
    jax.tree.map(np.testing.assert_array_equal, load_latest(halves).params,
                 load_latest(whole).params)
    evals = [r for r in read_metrics(whole) if "eval/bits_per_byte" in r]
    assert [r["step"] for r in evals] == [4, 8]
    # A uniform byte model scores 8 bits per byte; this run: 7.840 at step 4, 7.741 at step 8.
    assert 0 < evals[-1]["eval/bits_per_byte"] < evals[0]["eval/bits_per_byte"] < 8.0


def test_workdir_keeps_the_tokenizer_and_the_cache_is_reused(corpus_dir, tmp_path, capsys):
    config = tiny_config(corpus_dir, tmp_path / "cache", steps=4)
    config.data.update(dict(tokenizer="bpe", vocab_size=300))
    workdir = str(tmp_path / "run")
    train_and_evaluate(config, workdir)
    first = capsys.readouterr().out
    assert "training a byte-level BPE tokenizer" in first and "tokenizing the train split" in first
    loaded = load_latest(workdir)
    assert loaded.model_cfg.vocab_size == loaded.tokenizer.vocab_size <= 300
    sample = "def naïve(): return 日本 → x"
    assert loaded.tokenizer.decode(loaded.tokenizer.encode(sample)) == sample
    config.update(dict(steps=6, allow_schedule_change=True))
    train_and_evaluate(config, workdir)  # resumes: the saved tokenizer, the cached tokens
    again = capsys.readouterr().out
    assert "resuming from the checkpoint at step 4" in again
    assert "tokenizing" not in again and "training a byte-level BPE" not in again


def test_other_data_in_the_workdir_is_refused_and_left_alone(corpus_dir, tmp_path):
    workdir = str(tmp_path / "run")
    train_and_evaluate(tiny_config(corpus_dir, tmp_path / "cache", steps=4), workdir)
    before = tree_digest(workdir)
    config = tiny_config(corpus_dir, tmp_path / "cache", steps=6)
    config.data.val_fraction = 0.3
    with pytest.raises(UserError, match=r"^workdir holds a checkpoint trained on other data "
                                        r"\(data\.val_fraction is 0\.2 there but 0\.3 here\)"):
        train_and_evaluate(config, workdir)
    assert tree_digest(workdir) == before


def cli_flags(corpus_dir, cache_dir):
    return ["--config", "configs/lm_standard.py:local", "--config.steps=4",
            "--config.warmup_steps=1", "--config.log_every=2", "--config.eval_every=4",
            "--config.checkpoint_every=4", "--config.batch_size=4", "--config.num_devices=1",
            "--config.model.max_len=16", "--config.model.d_model=16", "--config.model.n_layers=1",
            f"--config.data.path={corpus_dir}", "--config.data.glob=*.txt",
            "--config.data.val_fraction=0.2", f"--config.data.cache_dir={cache_dir}",
            "--config.data.eval_windows=8", "--config.data.eval_batch_size=4"]


@pytest.fixture(scope="module")
def text_run(corpus_dir, tmp_path_factory):
    """A workdir the command line trained (4 steps of a tiny byte-level model)."""
    root = tmp_path_factory.mktemp("text_run")
    flags = cli_flags(corpus_dir, root / "cache")
    result = run("train", "--workdir", str(root / "run"), *flags)
    assert result.returncode == 0, result.stderr
    return str(root / "run"), flags


def test_evaluate_reports_what_training_logged(text_run):
    workdir, _ = text_run
    logged = [r for r in read_metrics(workdir) if "eval/loss" in r][-1]
    result = run("train.evaluate", "--workdir", workdir)
    assert result.returncode == 0, result.stderr
    for name in ("loss", "perplexity", "bits_per_byte"):
        assert f"  {name}: {logged[f'eval/{name}']:.6g}" in result.stdout


def test_a_foreign_tokenizer_is_refused_and_nothing_is_touched(text_run, tmp_path):
    workdir = str(tmp_path / "copy")
    shutil.copytree(text_run[0], workdir)
    with open(os.path.join(workdir, "tokenizer.json"), "w") as f:
        f.write(BPETokenizer.train(["some other text " * 30], 280).to_json())
    before = tree_digest(workdir)
    for module, args in (("train", text_run[1] + ["--config.steps=8"]), ("train.evaluate", []),
                         ("train.generate", ["--prompt", "x"])):
        assert_clean_error(run(module, "--workdir", workdir, *args),
                           "tokens but the checkpoint in the workdir was trained with 256; put "
                           "back the tokenizer.json the run was trained with.")
    assert tree_digest(workdir) == before


def test_generate_continues_the_prompt(text_run):
    result = run("train.generate", "--workdir", text_run[0], "--prompt", "def naïve",
                 "--max-new-tokens", "6", "--num-samples", "2", "--top-k", "5", "--top-p", "0.9",
                 "--repetition-penalty", "1.3", "--seed", "7")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "--- sample 1 ---" and lines[1].startswith("def naïve")
    assert "--- sample 2 ---" in lines and "12 tokens in" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["--prompt", "x" * 17], "a prompt of 17 tokens is longer than max_len=16; shorten it"),
    (["--top-p", "1.5"], "--top-p=1.5 is not allowed; it must be in (0, 1]."),
    (["--top-p", "0"], "--top-p=0.0 is not allowed; it must be in (0, 1]."),
    (["--top-k", "3000000000"], "--top-k=3000000000 is not allowed; it must be an integer from 0 "
                                "to 2147483647"),
    (["--temperature", "-0.5"], "--temperature=-0.5 is not allowed; it must be a number >= 0"),
    (["--repetition-penalty", "0"],
     "--repetition-penalty=0.0 is not allowed; it must be a positive"),
    (["--num-samples", "0"], "--num-samples=0 is not allowed; it must be from 1 to 2147483647."),
    (["--seed", "99999999999999999999"],
     "--seed=99999999999999999999 is not allowed; it must be from 0 to 4294967295."),
    (["--prompt", "a\udcffb"], "--prompt is not UTF-8 text; give the prompt in UTF-8."),
    (["--prompt", ""], "--prompt is empty; give at least one character to continue."),
    (["--max-new-tokens", "zero"], "argument --max-new-tokens: invalid int value: 'zero'; see --help."),
    (["--max-new-tokens", "0"], "--max-new-tokens=0 is not allowed; it must be an integer from 1"),
])
def test_generate_refuses_bad_input(text_run, args, message):
    base = {"--prompt": "ab", "--max-new-tokens": "4"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    flat = [x for pair in base.items() for x in pair]
    assert_clean_error(run("train.generate", "--workdir", text_run[0], *flat), message)


def test_one_text_file_is_a_corpus(tmp_path):
    """nanoGPT's Shakespeare style: one input.txt; and a folder of text files of any
    extension, the default glob taking every file."""
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "input.txt").write_text("".join(f"line {i}: to be or not to be\n"
                                             for i in range(200)), encoding="utf-8")
    (texts / "notes.md").write_text("# notes\n" + "more words here\n" * 100, encoding="utf-8")
    for name, path in (("file", texts / "input.txt"), ("folder", texts)):
        config = tiny_config(path, tmp_path / f"cache_{name}", steps=4)
        config.data.update(dict(glob="", val_fraction=0.05))
        summary = train_and_evaluate(config, str(tmp_path / f"run_{name}"))
        assert summary["step"] == 4 and 0 < summary["eval"]["eval/bits_per_byte"] < 8.0


def test_without_the_corpus_evaluation_reads_the_token_cache_and_generation_the_workdir(
        corpus_dir, tmp_path):
    """The tokenizer is in the workdir: with the corpus gone, evaluation reads the token
    cache; with the cache gone too, generation still works and evaluation is refused."""
    from train.pretrained import load_pretrained

    corpus = shutil.copytree(corpus_dir, tmp_path / "corpus")
    workdir = str(tmp_path / "run")
    train_and_evaluate(tiny_config(corpus, tmp_path / "cache", steps=4), workdir)
    with_corpus = run("train.evaluate", "--workdir", workdir)
    shutil.rmtree(corpus)
    without = run("train.evaluate", "--workdir", workdir)
    assert with_corpus.returncode == without.returncode == 0, without.stderr
    assert without.stdout == with_corpus.stdout and "bits_per_byte" in without.stdout
    shutil.rmtree(tmp_path / "cache")
    model, _, tokenizer, _ = load_pretrained(workdir)
    assert model.cfg.vocab_size == tokenizer.vocab_size == 256
    result = run("train.generate", "--workdir", workdir, "--prompt", "def", "--max-new-tokens", "3")
    assert result.returncode == 0 and result.stdout.startswith("def"), result.stderr
    assert_clean_error(run("train.evaluate", "--workdir", workdir),
                       f"is gone and so is the token cache made from it in {tmp_path / 'cache'}; "
                       "put the corpus back to evaluate or resume.")


def test_python_api_loads_and_generates(text_run):
    from lowrank_jax import generate
    from train.pretrained import load_pretrained

    model, params, tokenizer, config = load_pretrained(text_run[0])
    assert config.task == "text" and model.cfg.vocab_size == tokenizer.vocab_size == 256
    prompts = [tokenizer.encode("def "), tokenizer.encode("return x")]
    out = generate(model, params, prompts, max_new_tokens=5, temperature=0.0)
    alone = generate(model, params, prompts[:1], max_new_tokens=5, temperature=0.0)
    np.testing.assert_array_equal(out.tokens[0], alone.tokens[0])
    assert out.tokens.shape == (2, 5) and list(out.lengths) == [5, 5]
    assert isinstance(tokenizer.decode(out.tokens[1]), str)


@pytest.mark.parametrize("content,message", [
    (None, "does not exist; give a text file, a folder or a list of them"),
    (b"", "the corpus is empty: its files hold no text."),
    (b"ab\x00cd", "bad.txt is a binary file, not text"),
    ("café".encode("latin-1"), "bad.txt is not UTF-8 text"),
])
def test_bad_corpus_from_the_command_line(content, message, tmp_path):
    path = tmp_path / "bad.txt"
    if content is not None:
        path.write_bytes(content)
    flags = cli_flags(path, tmp_path / "cache")
    assert_clean_error(run("train", "--workdir", str(tmp_path / "run"), *flags), message)
