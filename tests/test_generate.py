"""Cached decoding: every causal variant's prefill and steps equal the full forward pass;
generate() batches prompts of different lengths, stops rows at EOS, matches the uncached
path, and refuses bad input with one sentence."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lowrank_jax import GPT, UserError, ModelConfig, generate
from lowrank_jax.generate import decode_loop, row_keys
from lowrank_jax.sampling import SamplingConfig

from conftest import small_config, variant_cases

# (attention, kwargs, norm_position): every registered causal example, pre and post norm in
# turn; the Linformer's blocks of 4 do not divide the 15 tokens below, and the prompts of
# 4, 1 and 6 tokens end at a block boundary and inside blocks.
VARIANTS = [(name, kwargs, ("pre", "post")[i % 2])
            for i, (name, kwargs) in enumerate(variant_cases(causal=True))]
SEQ_LEN = 15
PROMPT_LENGTHS = (4, 1, 6)


@pytest.fixture(autouse=True)
def exact_matmuls():
    """A GPU multiplies float32 in TF32 by default; the equalities below are float32's."""
    with jax.default_matmul_precision("highest"):
        yield


def lm_config(attention="standard", attention_kwargs=None, **changes) -> ModelConfig:
    # An untied head: a random model whose greedy output depends on the whole context
    # instead of repeating the last token.
    return small_config(attention=attention, attention_kwargs=attention_kwargs or {},
                        tie_embeddings=False, **changes)


def init_params(cfg: ModelConfig, seed=0):
    """Random weights drawn by NumPy in the shapes GPT.init gives, like Flax's init: matrices
    U(-1/sqrt(n), 1/sqrt(n)) with n their first axis, embeddings N(0, embed_init_std), zero
    biases, unit norm scales. (Flax's own init compiles a random kernel per parameter shape,
    which takes longer than everything this file tests.)"""
    shapes = jax.eval_shape(GPT(cfg).init, jax.random.key(0), jnp.zeros((1, 4), jnp.int32))
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name, shape = path[-1].key, leaf.shape
        if name in ("embedding", "pos_embed"):
            values = rng.normal(0, cfg.embed_init_std, shape)
        elif len(shape) == 1:
            values = np.full(shape, float(name == "scale"))
        else:
            values = rng.uniform(-1, 1, shape) / np.sqrt(shape[0])
        return jnp.asarray(values, leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, shapes["params"])


def run_once(fn, *args):
    """fn(*args), compiled without LLVM optimisation: it runs once, so compiling is the cost."""
    return jax.jit(fn).lower(*args).compile({"xla_backend_optimization_level": 0})(*args)


def teacher_forced(cfg, steps, params, tokens_BL, lengths_B):
    """(full logits, prefill logits, step logits (steps, B, V), cache): the prefill takes each
    row's first lengths_B tokens (right-padded), then step t feeds token lengths_B + t."""
    full_BLV = GPT(cfg).apply({"params": params}, tokens_BL)
    prefill, stepper = GPT(cfg.replace(mode="prefill")), GPT(cfg.replace(mode="step"))
    width = max(PROMPT_LENGTHS)
    real_BP = jnp.arange(width) < lengths_B[:, None]
    prompt_BP = jnp.where(real_BP, tokens_BL[:, :width], 0)
    prefill_BPV, state = prefill.apply({"params": params}, prompt_BP, real_BP, mutable=["cache"])

    def step(cache, t):
        token_B1 = tokens_BL[jnp.arange(tokens_BL.shape[0]), lengths_B + t][:, None]
        logits_B1V, state = stepper.apply({"params": params, "cache": cache}, token_B1,
                                          mutable=["cache"])
        return state["cache"], logits_B1V[:, 0]

    cache, steps_TBV = jax.lax.scan(step, state["cache"], jnp.arange(steps))
    return full_BLV, prefill_BPV, steps_TBV, cache


@pytest.mark.parametrize("attention,kwargs,norm_position", VARIANTS)
def test_prefill_and_every_step_equal_the_full_forward(attention, kwargs, norm_position):
    cfg = lm_config(attention, kwargs, norm_position=norm_position)
    params = init_params(cfg)
    tokens = jax.random.randint(jax.random.key(1), (len(PROMPT_LENGTHS), SEQ_LEN), 0,
                                cfg.vocab_size)
    lengths = np.array(PROMPT_LENGTHS)
    steps = SEQ_LEN - lengths.max()  # the longest row reaches the last token
    full, prefill, step_logits, cache = run_once(functools.partial(teacher_forced, cfg, int(steps)),
                                                 params, tokens, jnp.asarray(lengths))
    full = np.asarray(full)
    for b, length in enumerate(lengths):
        np.testing.assert_allclose(prefill[b, :length], full[b, :length], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(step_logits[:, b], full[b, length:length + steps],
                                   rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(cache["lengths"], lengths + steps)


def cache_shapes(cfg, batch):
    cache = jax.eval_shape(lambda: GPT(cfg.replace(mode="prefill")).init(
        jax.random.key(0), jnp.zeros((batch, 3), jnp.int32)))["cache"]
    return jax.tree.map(lambda leaf: leaf.shape, cache)


@pytest.mark.parametrize("kwargs", [dict(block_size=4, block_slots=2, sharing="headwise"),
                                    dict(block_size=2, block_slots=1, sharing="layerwise"),
                                    dict(block_size=8, block_slots=3, sharing="none")])
def test_linformer_cache_is_the_slots_plus_one_raw_block(kwargs):
    cfg = lm_config("linformer", kwargs)
    b, c, h, d = kwargs["block_size"], kwargs["block_slots"], cfg.n_heads, cfg.d_head
    shapes = cache_shapes(cfg, batch=3)
    slots = cfg.max_len // b * c
    assert shapes["lengths"] == (3,)
    for i in range(cfg.n_layers):
        assert shapes[f"block_{i}"]["attention"] == {
            "key_slots": (3, slots, h, d), "value_slots": (3, slots, h, d),
            "key_block": (3, b, h, d), "value_block": (3, b, h, d)}


def test_kv_caches_are_every_position_and_lowrank_keys_are_r_wide():
    h, d, n = 4, 4, 16
    standard = cache_shapes(lm_config("standard"), batch=2)["block_0"]["attention"]
    assert standard == {"cached_key": (2, n, h, d), "cached_value": (2, n, h, d)}
    lowrank = cache_shapes(lm_config("lowrank_qk", {"r": 2}), batch=2)["block_1"]["attention"]
    assert lowrank == {"cached_key": (2, n, h, 2), "cached_value": (2, n, h, d)}


# generate(): one model per family; prompts that end inside and at the end of a block of 4,
# all padded to a width of 8, so that each row alone shares one compiled program.
FAMILIES = {"standard": lm_config("standard"),
            "linformer": lm_config("linformer", dict(block_size=4, block_slots=2))}
PROMPTS = [[3, 1, 4, 1, 5], [6, 5, 3, 5, 8, 9, 7, 9], [2, 7, 1, 8, 2, 8]]
NEW = 7


@functools.cache
def greedy(family, use_cache=True, prompts=tuple(map(tuple, PROMPTS)), eos_id=None):
    cfg = FAMILIES[family]
    return generate(GPT(cfg), init_params(cfg), [list(p) for p in prompts], max_new_tokens=NEW,
                    temperature=0.0, eos_id=eos_id, use_cache=use_cache)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_row_of_a_batch_generates_what_it_generates_alone(family):
    batched = greedy(family)
    chex.assert_shape(batched.tokens, (len(PROMPTS), NEW))
    assert batched.tokens.dtype == jnp.int32 and batched.lengths.dtype == jnp.int32
    np.testing.assert_array_equal(batched.lengths, NEW)
    for b, prompt in enumerate(PROMPTS):
        alone = greedy(family, prompts=(tuple(prompt),))
        np.testing.assert_array_equal(batched.tokens[b], alone.tokens[0])
    # The rows differ, so a mix-up of rows or positions could not pass unnoticed.
    assert len({tuple(row) for row in np.asarray(batched.tokens).tolist()}) == len(PROMPTS)


def test_cached_and_uncached_generation_agree():
    # The uncached path is the same for every variant; the Linformer's cache is the intricate one.
    np.testing.assert_array_equal(greedy("linformer").tokens,
                                  greedy("linformer", use_cache=False).tokens)


@pytest.mark.parametrize("attention,kwargs", variant_cases(causal=True))
def test_generation_slides_past_max_len_with_and_without_the_cache(attention, kwargs):
    """3 x max_len new tokens; rows of different prompt lengths fill up at different steps."""
    cfg = lm_config(attention, kwargs)
    params, new = init_params(cfg), 3 * cfg.max_len
    cached, uncached = (generate(GPT(cfg), params, PROMPTS, max_new_tokens=new, temperature=0.0,
                                 use_cache=use_cache) for use_cache in (True, False))
    chex.assert_shape(cached.tokens, (len(PROMPTS), new))
    np.testing.assert_array_equal(cached.lengths, new)
    np.testing.assert_array_equal(cached.tokens, uncached.tokens)


def test_the_sliding_context_keeps_the_last_half_of_max_len():
    """The rule both paths follow, written out: before a token joins a full context, the
    context drops to its last max_len // 2 tokens; each token is the argmax of the full
    forward pass over the context."""
    cfg = FAMILIES["standard"]
    params = init_params(cfg)
    forward = jax.jit(lambda t: GPT(cfg).apply({"params": params}, t)[0, -1])
    out = generate(GPT(cfg), params, PROMPTS[:1], max_new_tokens=2 * cfg.max_len,
                   temperature=0.0, use_cache=False)
    context, expected = list(PROMPTS[0]), []
    for _ in range(2 * cfg.max_len):
        token = int(jnp.argmax(forward(jnp.asarray([context]))))
        expected.append(token)
        if len(context) == cfg.max_len:
            context = context[-(cfg.max_len // 2):]
        context.append(token)
    assert np.asarray(out.tokens[0]).tolist() == expected


def test_greedy_tokens_follow_the_full_forward_and_the_repetition_penalty():
    # A penalty below 1 favours tokens already in the row, so a token wrongly counted as seen
    # (prompt padding, say) or a generated one left out changes the output.
    cfg, penalty = FAMILIES["linformer"], 0.5
    params = init_params(cfg)
    out = generate(GPT(cfg), params, PROMPTS, max_new_tokens=NEW, temperature=0.0,
                   repetition_penalty=penalty)
    new_tokens = np.asarray(out.tokens).tolist()
    sequences = [prompt + new for prompt, new in zip(PROMPTS, new_tokens, strict=True)]
    width = max(map(len, sequences))
    padded = jnp.asarray([seq + [0] * (width - len(seq)) for seq in sequences])
    logits = np.asarray(run_once(GPT(cfg).apply, {"params": params}, padded))
    for b, sequence in enumerate(sequences):
        start = len(PROMPTS[b])
        for t in range(start, len(sequence)):  # HF: a token already in the row is penalized
            row = logits[b, t - 1].copy()
            seen = list(set(sequence[:t]))
            row[seen] = np.where(row[seen] > 0, row[seen] / penalty, row[seen] * penalty)
            assert sequence[t] == np.argmax(row), (b, t)


def test_a_row_stops_at_eos_and_the_others_continue():
    free = np.asarray(greedy("standard").tokens)
    # An EOS that some row emits before its last step and another row never emits.
    eos = next(t for row in free for t in row[:-1] if any(t not in other for other in free))
    stopped = greedy("standard", eos_id=int(eos))
    for row, out, length in zip(free, np.asarray(stopped.tokens), np.asarray(stopped.lengths),
                                strict=True):
        hits = np.flatnonzero(row == eos)
        expected = NEW if hits.size == 0 else hits[0] + 1
        assert length == expected
        np.testing.assert_array_equal(out[:length], row[:length])
        np.testing.assert_array_equal(out[length:], eos)
    assert (np.asarray(stopped.lengths) < NEW).any() and (np.asarray(stopped.lengths) == NEW).any()


def test_the_loop_ends_once_every_row_has_stopped():
    eos, vocab, calls = 3, 5, []

    def next_logits(step, token_B):  # a stub model: row b emits EOS from call b + 1 on
        jax.debug.callback(lambda: calls.append(step))
        return jax.nn.one_hot(jnp.where(jnp.arange(2) < step, eos, 1), vocab), step + 1

    first_BV = jax.nn.one_hot(jnp.ones(2, jnp.int32), vocab)
    run = jax.jit(lambda: decode_loop(next_logits, 1, first_BV, jnp.zeros((2, vocab), bool),
                                      row_keys(None, 2), SamplingConfig(temperature=0.0), 10,
                                      jnp.int32(eos)))
    tokens, lengths = run()
    jax.effects_barrier()
    assert len(calls) == 2  # not the 9 that max_new_tokens=10 allows
    np.testing.assert_array_equal(lengths, [2, 3])
    np.testing.assert_array_equal(tokens, [[1, eos] + [eos] * 8, [1, 1, eos] + [eos] * 7])


def test_each_row_samples_with_its_own_key_wherever_it_sits_in_the_batch():
    cfg = FAMILIES["standard"]
    model, params = GPT(cfg), init_params(cfg)
    options = dict(max_new_tokens=NEW, temperature=1.5, top_k=6, top_p=0.95,
                   repetition_penalty=1.3)
    keys = jax.random.split(jax.random.key(5), len(PROMPTS))
    batched = generate(model, params, PROMPTS, rng=keys, **options)
    # The same rows and keys in another order: each row's draws follow it.
    order = [2, 0, 1]
    shuffled = generate(model, params, [PROMPTS[i] for i in order], rng=keys[jnp.array(order)],
                        **options)
    np.testing.assert_array_equal(shuffled.tokens, np.asarray(batched.tokens)[order])
    other = generate(model, params, PROMPTS, rng=jax.random.split(jax.random.key(6), len(PROMPTS)),
                     **options)
    assert not np.array_equal(batched.tokens, other.tokens)  # the keys do drive the draws
    # One key gives row b the key fold_in(rng, b), so a row can be reproduced alone.
    rng = jax.random.key(7)
    one_key = generate(model, params, PROMPTS, rng=rng, **options)
    row_keys = jax.vmap(jax.random.fold_in, (None, 0))(rng, jnp.arange(len(PROMPTS)))
    np.testing.assert_array_equal(one_key.tokens,
                                  generate(model, params, PROMPTS, rng=row_keys, **options).tokens)


def test_prompt_may_be_an_array():
    out = generate(GPT(FAMILIES["standard"]), init_params(FAMILIES["standard"]),
                   np.array([PROMPTS[0]]), max_new_tokens=NEW, temperature=0.0)
    np.testing.assert_array_equal(out.tokens[0], greedy("standard").tokens[0])


BAD = [
    (dict(prompt=[[1] * 17, [2]]),
     r"a prompt of 17 tokens is longer than max_len=16; shorten it \(generation itself may run "
     r"past max_len: the context slides\)\."),
    (dict(prompt=[[1, 2], []]), r"prompt row 1 is empty; every row needs at least one token\."),
    (dict(prompt=[]), r"prompt has no rows; it needs at least one row of tokens\."),
    (dict(prompt=[1, 2, 3]), r"prompt row 0 is not allowed; each row must be a sequence of integer "
                             r"token ids\."),
    (dict(prompt=np.array([1, 2, 3])), r"prompt of shape \(3,\) is not allowed; it must be a "
                                       r"\(batch, length\) array or a list of token lists\."),
    (dict(prompt="hello"), r"prompt of type str is not allowed; it must be a \(batch, length\) "
                           r"array or a list of token lists\."),
    (dict(prompt=[[1.5, 2.0]]), r"prompt row 0 is not allowed; each row must be a sequence of "
                                r"integer token ids\."),
    (dict(prompt=[[1, 2], [3, 11]]), r"prompt token 11 in row 1 is not allowed; token ids must be "
                                     r"in \[0, vocab_size=11\)\."),
    (dict(prompt=[[-1]]), r"prompt token -1 in row 0 is not allowed; token ids must be in "
                          r"\[0, vocab_size=11\)\."),
    (dict(max_new_tokens=0), r"max_new_tokens=0 is not allowed; it must be an integer from 1 to "
                             r"2147483647\."),
    (dict(max_new_tokens=2**31), r"max_new_tokens=2147483648 is not allowed; it must be an "
                                 r"integer from 1 to 2147483647\."),
    (dict(eos_id=11), r"eos_id=11 is not allowed; it must be None or a token id in "
                      r"\[0, vocab_size=11\)\."),
    (dict(top_p=0.0), r"top_p=0\.0 is not allowed; it must be in \(0, 1\]\."),
    (dict(top_k=-1), r"top_k=-1 is not allowed; it must be an integer from 0 to 2147483647 "
                     r"\(0 keeps every token\)\."),
    (dict(temperature=-0.5), r"temperature=-0\.5 is not allowed; it must be a number >= 0 "
                             r"\(0 is greedy decoding\)\."),
    (dict(repetition_penalty=0), r"repetition_penalty=0 is not allowed; it must be a positive "
                                 r"number \(1 is no penalty\)\."),
    (dict(rng=jax.random.split(jax.random.key(0), 3)),
     r"rng of shape \(3,\) is not allowed with a prompt of 1 rows; pass one key or one key per "
     r"row\."),
]


@pytest.mark.parametrize("changes,message", BAD)
def test_bad_input_is_one_clear_sentence(changes, message):
    cfg = FAMILIES["standard"]
    kwargs = {"prompt": [[1, 2, 3]], "max_new_tokens": 4, **changes}
    with pytest.raises(UserError, match=f"^{message}$"):
        generate(GPT(cfg), None, **kwargs)


def test_an_encoder_cannot_generate():
    encoder = lm_config(causal=False)
    message = (r"^causal=False is not allowed with mode='prefill' \(decoding, as generate uses\); "
               r"an encoder sees the whole sequence at once, so only a causal model can "
               r"generate\.$")
    with pytest.raises(UserError, match=message):
        generate(GPT(encoder), init_params(encoder), [[1, 2]], max_new_tokens=2)


def test_decode_modes_are_never_a_training_config():
    for mode in ("prefill", "step"):
        with pytest.raises(UserError, match=rf"^mode='{mode}' is not allowed with "
                                              r"deterministic=False; decoding never uses dropout"):
            lm_config(mode=mode, deterministic=False)
    with pytest.raises(UserError, match=r"^mode='decode' is not allowed; choose one of "
                                          r"'forward', 'prefill', 'step'\.$"):
        lm_config(mode="decode")
    cfg = lm_config(mode="prefill")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg and not lm_config().decoding


def test_a_step_needs_the_cache_of_a_prefill():
    step = GPT(lm_config(mode="step"))
    message = (r"^mode='step' needs the cache a prefill made; apply the model with "
               r"mode='prefill' first and pass its 'cache' collection back\.(\n|$)")
    with pytest.raises(UserError, match=message):
        jax.eval_shape(step.init, jax.random.key(0), jnp.ones((1, 1), jnp.int32))


def test_a_decode_step_takes_one_token_a_row():
    cfg = lm_config(mode="prefill")
    variables = jax.eval_shape(GPT(cfg).init, jax.random.key(0), jnp.ones((1, 3), jnp.int32))
    step = functools.partial(GPT(cfg.replace(mode="step")).apply, mutable=["cache"])
    jax.eval_shape(step, variables, jnp.ones((1, 1), jnp.int32))
    # JAX appends a note on its traceback filtering to errors raised while tracing.
    message = (r"^a decode step of 2 tokens is not allowed; after the prefill each call adds "
               r"exactly one token a row\.(\n|$)")
    with pytest.raises(UserError, match=message):
        jax.eval_shape(step, variables, jnp.ones((1, 2), jnp.int32))
