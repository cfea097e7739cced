"""The fields every experiment config has, with neutral defaults; experiments override them."""
import dataclasses

import ml_collections

from lowrank_jax.config import ModelConfig

# ModelConfig's own defaults, but for the fields a run sets itself (dropout on in
# training, the decode modes in generation).
RUN_FIELDS = ("deterministic", "mode")
MODEL_DEFAULTS = {f.name: f.default_factory() if callable(f.default_factory) else f.default
                  for f in dataclasses.fields(ModelConfig) if f.name not in RUN_FIELDS}


def make_config(task: str, model: dict, **training) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict(dict(
        task=task, seed=0, steps=1000, batch_size=32, lr=3e-4, warmup_steps=100,
        end_lr_ratio=0.1, weight_decay=0.01, weight_decay_on="matrices", grad_clip=1.0,
        log_every=100, eval_every=1000, checkpoint_every=1000, keep_checkpoints=3,
        num_devices=0,  # 0: every device
        # The device mesh: weights and optimizer state split along d_model over fsdp
        # devices, the batch over all of them; data 0: num_devices // fsdp.
        mesh=ml_collections.ConfigDict(dict(data=0, fsdp=1)),
        cpu_single_thread=False,
        # A resumed run must keep the schedule (steps, lr, warmup_steps, end_lr_ratio) of
        # its checkpoint unless this is true: changing it re-shapes the learning rate.
        allow_schedule_change=False,
        # An update whose loss or gradient is NaN or infinite is never applied; false: the
        # run stops there naming the step, true: it goes on and counts the skips.
        skip_nonfinite=False,
    ))
    config.update(training)
    config.model = ml_collections.ConfigDict({**MODEL_DEFAULTS, **model})
    return config


# A language model on a text corpus; the default is the Python standard library.
DATA_DEFAULTS = dict(
    path="stdlib", glob="", val_fraction=0.05,   # glob "": every file (the stdlib: its .py)
    tokenizer="bytes", vocab_size=4096,   # vocab_size: BPE only
    tokenizer_path="",                    # a tokenizer.json to load instead of training BPE
    cache_dir="",                         # "": <workdir>/cache
    eval_windows=64, eval_batch_size=16,  # eval_windows 0: the whole validation split
)
# A GPU-sized LM, and a local one that trains in minutes on a CPU.
LM_MODEL = dict(vocab_size=0, max_len=512, d_model=512, n_layers=6, n_heads=8, d_ff=2048,
                dtype="bfloat16")  # float32 parameters and optimizer state, bf16 compute
LM_LOCAL_MODEL = dict(vocab_size=0, max_len=128, d_model=128, n_layers=2, n_heads=4, d_ff=512)
LM_TRAINING = dict(steps=20000, batch_size=32, lr=6e-4, warmup_steps=500, log_every=500,
                   eval_every=2000, checkpoint_every=2000)
LM_LOCAL_TRAINING = dict(steps=1500, batch_size=16, lr=2e-3, warmup_steps=100, log_every=100,
                         eval_every=500, checkpoint_every=500)


def head_sized(attention: str, option: str, divisor: int):
    """The model fields of `attention` with `option` = d_head // divisor, as a function of the
    size make_lm_config lands on."""
    def fields(model: dict) -> dict:
        d_head = model["d_model"] // model["n_heads"]
        return dict(attention=attention, attention_kwargs={option: d_head // divisor})
    return fields


def make_lm_config(arg: str, model, local_model, **training):
    """`arg` "" for the GPU-sized run, "local" for the CPU-sized one; vocab_size 0 in a
    model takes the tokenizer's. `model` and `local_model` are the fields an experiment
    sets, or functions of the size they land on (for options sized by d_head)."""
    if arg not in ("", "local"):
        raise ValueError(f"unknown argument {arg!r}; leave it out, or use :local.")
    local = arg == "local"
    size, changes = (LM_LOCAL_MODEL, local_model) if local else (LM_MODEL, model)
    model = {**size, **(changes(size) if callable(changes) else changes)}
    config = make_config("text", model, **{**(LM_LOCAL_TRAINING if local else LM_TRAINING),
                                           **training})
    config.data = ml_collections.ConfigDict(DATA_DEFAULTS)
    return config


# ListOps, classified by an encoder (bidirectional, padding masked) with mean pooling:
# the Long Range Arena's budget, the 2-layer d-64 model of the best reproductions, and a
# CPU-sized run on short examples.
LISTOPS_SIZES = {  # model, training, the listops section
    "": (dict(max_len=2000, d_model=512, n_layers=4, n_heads=8, d_ff=1024, dropout=0.1,
              dtype="bfloat16"),
         dict(steps=5000, batch_size=32, lr=5e-4, warmup_steps=1000),
         dict(path="data/listops")),
    "small": (dict(max_len=2000, d_model=64, n_layers=2, n_heads=2, d_ff=128, dropout=0.1,
                   dtype="bfloat16"),
              dict(steps=5000, batch_size=32, lr=1e-3, warmup_steps=1000),
              dict(path="data/listops")),
    "local": (dict(max_len=128, d_model=32, n_layers=2, n_heads=2, d_ff=64),
              dict(steps=300, batch_size=16, lr=2e-3, warmup_steps=30),
              dict(path="data/listops_local")),
}
LISTOPS_LOGGING = {"": dict(log_every=100, eval_every=1000, checkpoint_every=1000),
                   "small": dict(log_every=100, eval_every=1000, checkpoint_every=1000),
                   "local": dict(log_every=50, eval_every=150, checkpoint_every=150)}


def make_listops_config(arg: str, attention_of):
    """`arg` "" (LRA's budget), "small" or "local"; `attention_of(d_head)`: the model's
    attention fields at that head width."""
    if arg not in LISTOPS_SIZES:
        raise ValueError(f"unknown argument {arg!r}; leave it out, or use :small or :local.")
    model, training, listops = LISTOPS_SIZES[arg]
    from lowrank_jax.tasks import listops as task

    model = {**model, "vocab_size": len(task.VOCAB), "causal": False,
             **attention_of(model["d_model"] // model["n_heads"])}
    config = make_config("listops", model, weight_decay=0.1, **training, **LISTOPS_LOGGING[arg])
    config.listops = ml_collections.ConfigDict({**listops, "eval_batch_size": 50})
    return config
