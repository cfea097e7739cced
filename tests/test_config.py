"""Every bad-config path ends in one sentence naming the field, the value and what is allowed."""
import dataclasses

import pytest

from lowrank_jax import ATTENTIONS, UserError, ModelConfig

from conftest import choices_message, small_config

BAD = [
    (dict(d_model=10, n_heads=4), r"d_model=10 is not allowed with n_heads=4; d_model must be divisible by n_heads\."),
    (dict(attention="flash"), choices_message("attention", "flash", ATTENTIONS)),
    (dict(attention="lowrank_qk", attention_kwargs={"r": 5}),
     r"attention_kwargs\.r=5 is not allowed; lowrank_qk needs an integer rank from 1 to d_head=4 \(d_model / n_heads\)\."),
    (dict(attention="lowrank_qk"),
     r"attention_kwargs\.r=None is not allowed; lowrank_qk needs an integer rank from 1 to d_head=4"),
    (dict(attention="lowrank_qk", attention_kwargs={"r": 2, "learn_u": "no"}),
     r"attention_kwargs\.learn_u='no' is not allowed; it must be true or false\."),
    (dict(n_layers=0), r"n_layers=0 is not allowed; it must be a positive integer\."),
    (dict(vocab_size=2.5), r"vocab_size=2.5 is not allowed; it must be a positive integer\."),
    (dict(norm="batchnorm"), r"norm='batchnorm' is not allowed; choose one of 'layernorm', 'rmsnorm'\."),
    (dict(norm_position="middle"), r"norm_position='middle' is not allowed; choose one of 'pre', 'post'\."),
    (dict(activation="tanh"), r"activation='tanh' is not allowed; choose one of 'relu', 'gelu'\."),
    (dict(ffn="moe"), r"ffn='moe' is not allowed; choose one of 'dense', 'lowrank'\."),
    (dict(ffn="lowrank"), r"ffn_rank=0 is not allowed with ffn='lowrank'; it must be an integer from 1 to min\(d_model, d_ff\)=16\."),
    (dict(dtype="int8"), r"dtype='int8' is not allowed; choose one of 'float32', 'bfloat16', 'float16', 'float64'\."),
    (dict(dtype="float64"), r"dtype='float64' needs JAX's x64 mode"),
    (dict(dropout=1.0), r"dropout=1\.0 is not allowed; it must be in \[0, 1\)\."),
    (dict(use_bias="yes"), r"use_bias='yes' is not allowed; it must be true or false\."),
    (dict(embed_init_std=0), r"embed_init_std=0 is not allowed; it must be positive\."),
    (dict(attention="standard", attention_kwargs={"r": 4}),
     r"attention_kwargs for 'standard' got unknown key 'r'; allowed keys are none\."),
    (dict(attention="deep_qkv", attention_kwargs={"rnak": 4}),
     r"attention_kwargs for 'deep_qkv' got unknown key 'rnak'; allowed keys are rank, strict, temp, unit_gate\."),
    (dict(attention="deep_qkv", attention_kwargs={"rank": 0}),
     r"attention_kwargs\.rank=0 is not allowed; it must be a positive integer\."),
    (dict(attention="deep_qkv", attention_kwargs={"temp": -1.0}),
     r"attention_kwargs\.temp=-1\.0 is not allowed; it must be a number >= 0\."),
    (dict(attention="deep_qkv", attention_kwargs={"strict": "no"}),
     r"attention_kwargs\.strict='no' is not allowed; it must be true or false\."),
    (dict(attention="deep_qkv", attention_kwargs={"unit_gate": 1}),
     r"attention_kwargs\.unit_gate=1 is not allowed; it must be true or false\."),
]


@pytest.mark.parametrize("changes,message", BAD)
def test_bad_model_config_is_one_clear_sentence(changes, message):
    with pytest.raises(UserError, match=f"^{message}") as info:
        small_config(**changes)
    assert "\n" not in str(info.value)


def test_unknown_model_field():
    with pytest.raises(UserError, match=r"^model\.heads is not a model field; known fields are "):
        ModelConfig.from_dict({"heads": 4})


def test_defaults_are_filled_and_frozen():
    cfg = small_config(attention="deep_qkv", attention_kwargs={"rank": 2})
    assert dict(cfg.attention_kwargs) == {"rank": 2, "temp": 1.0, "strict": False,
                                       "unit_gate": False}
    hash(cfg)  # usable as a static jit argument
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'd_model'"):
        cfg.d_model = 8
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
