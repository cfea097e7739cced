"""lowrank-jax: low-rank attention variants for GPT-style models in JAX/Flax."""
from lowrank_jax.attention import ATTENTIONS
from lowrank_jax.config import ModelConfig
from lowrank_jax.validation import ConfigError
from lowrank_jax.model import GPT, Classifier, count_parameters, parameter_groups
from lowrank_jax.generate import Generation, generate

__all__ = ["ATTENTIONS", "Classifier", "ConfigError", "GPT", "Generation", "ModelConfig",
           "count_parameters", "generate", "load_pretrained", "parameter_groups"]


def load_pretrained(workdir: str):
    """(model, params, tokenizer, config) of the newest checkpoint a training run left in
    `workdir`. Reading files is the training side's job (train/), so this forwards there."""
    from train.pretrained import load_pretrained as load

    return load(workdir)
