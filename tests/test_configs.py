"""Every experiment config builds the model it documents; the small local ones train."""
import math

import jax
import pytest

from lowrank_jax import ATTENTIONS, count_parameters
from lowrank_jax.model import model_for_task
from lowrank_jax.tasks import NUM_CLASSES
from lowrank_jax.training.config import check_train_config, run_spec
from lowrank_jax.training.optim import make_optimizer
from lowrank_jax.training.state import init_state
from train.cli import load_config_file
from train.loop import train_and_evaluate
from train.metrics import read_metrics

CONFIGS = ["configs/abc_sort.py", "configs/abc_sort.py:standard", "configs/abc_sort.py:lowrank_qk",
           "configs/abc_sort.py:linformer", "configs/gpt_lowrank_qk.py:abc",
           "configs/gpt_lowrank_qk.py:random", "configs/gpt_lowrank_qk.py:abc_local",
           "configs/gpt_lowrank_qk.py:random_local", "configs/lumenspark.py",
           "configs/lumenspark.py:local"] + [f"configs/lm_{variant}.py{arg}" for variant in ATTENTIONS
                                             for arg in ("", ":local")] + [
    f"configs/mqar.py:{variant}{size}" for variant in ATTENTIONS for size in ("", ",local")] + [
    f"configs/listops_{variant}.py{size}" for variant in ATTENTIONS
    for size in ("", ":small", ":local")]


def parameters(config) -> int:
    spec = run_spec(config)  # a text model's vocabulary waits for its tokenizer
    model = model_for_task(spec.model, NUM_CLASSES.get(config.task, 0))
    shapes = jax.eval_shape(lambda: init_state(model, make_optimizer(spec.optimizer),
                                               0, spec.model.max_len + 1).params)
    return count_parameters(shapes)


@pytest.mark.parametrize("spec", CONFIGS)
def test_config_builds(spec):
    assert parameters(load_config_file(spec)) > 0


def test_seed_models_have_the_seeds_shapes():
    seed000 = load_config_file("configs/gpt_lowrank_qk.py:random")
    model_cfg, _ = check_train_config(run_spec(seed000))
    assert (model_cfg.d_model, model_cfg.n_layers, model_cfg.n_heads, model_cfg.d_ff) == (512, 6, 8, 2048)
    assert model_cfg.attention_kwargs["r"] == 64 and model_cfg.norm_position == "post"
    lumen = load_config_file("configs/lumenspark.py")
    model_cfg = run_spec(lumen).model
    assert lumen.task == "text" and lumen.data.tokenizer == "bpe"
    assert (lumen.data.vocab_size, model_cfg.d_model, model_cfg.n_layers, model_cfg.n_heads,
            model_cfg.max_len, model_cfg.dropout) == (50257, 512, 6, 4, 512, 0.1)
    assert model_cfg.attention_kwargs["k"] == 128 and model_cfg.attention_kwargs["causal"]
    assert model_cfg.ffn == "lowrank" and model_cfg.norm == "rmsnorm"


@pytest.mark.parametrize("spec", ["configs/gpt_lowrank_qk.py:random_local"])
def test_local_configs_train_to_the_entropy_of_random_tokens(spec, tmp_path):
    config = load_config_file(spec)
    config.update(dict(steps=60, warmup_steps=10, log_every=20, eval_every=60, checkpoint_every=60,
                       num_devices=1))
    train_and_evaluate(config, str(tmp_path))
    # Random tokens: nothing to learn, so the loss falls towards ln(vocab) from above and
    # cannot go below it (up to sampling noise). Measured (2-core CPU, jax 0.10.2): windows
    # 6.019, 5.926, 5.843 against ln(256) = 5.545.
    losses = [r["loss"] for r in read_metrics(str(tmp_path)) if "loss" in r]
    entropy = math.log(config.model.vocab_size)
    assert losses == sorted(losses, reverse=True) and entropy - 0.05 < losses[-1] < entropy + 0.5
