"""lowrank-jax: low-rank attention variants for GPT-style models in JAX/Flax."""
from lowrank_jax.attention import ATTENTIONS
from lowrank_jax.config import ModelConfig
from lowrank_jax.validation import ConfigError
from lowrank_jax.model import GPT, Classifier, count_parameters, parameter_groups

__all__ = ["ATTENTIONS", "Classifier", "ConfigError", "GPT", "ModelConfig", "count_parameters",
           "parameter_groups"]
