"""lowrank-jax: low-rank attention variants for GPT-style models in JAX/Flax."""
from lowrank_jax.attention import ATTENTIONS
from lowrank_jax.config import ModelConfig
from lowrank_jax.validation import UserError
from lowrank_jax.model import GPT, Classifier, count_parameters, parameter_groups
from lowrank_jax.generate import Generation, generate

__all__ = ["ATTENTIONS", "Classifier", "UserError", "GPT", "Generation", "ModelConfig",
           "count_parameters", "generate", "parameter_groups"]

