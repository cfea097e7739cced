"""lowrank-jax: low-rank attention variants for GPT-style models in JAX/Flax."""
from lowrank_jax.attention import ATTENTIONS
from lowrank_jax.config import ModelConfig
from lowrank_jax.validation import ConfigError
from lowrank_jax.model import GPT, count_parameters, parameter_groups

__all__ = ["ATTENTIONS", "ConfigError", "GPT", "ModelConfig", "count_parameters",
           "parameter_groups"]
