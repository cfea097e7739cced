"""Generation: one prefill of the right-padded prompts, then a jit-compiled decode loop.

The prefill runs every prompt through the model in mode "prefill" in one forward pass
and fills the attention caches; each loop step (mode "step") feeds one token a row, at the row's
own position, so prompts of different lengths share a batch and each row gets what it
would get alone. A row stops after it emits `eos_id`; the loop ends when every row has
stopped or has max_new_tokens tokens. `use_cache=False` re-runs the full forward pass
over a max_len-wide buffer every step instead (the baseline a benchmark compares with).

Past max_len the context slides: when a row's context is full, it keeps its last
max_len // 2 tokens (positions restart at 0) and goes on; with the cache that is one
re-prefill of those tokens, so the cost of a full cache is paid every max_len / 2 tokens,
not at every token as cropping to the last max_len (nanoGPT) would. Both paths follow
the same rule, so they give the same tokens.

Sampling is lowrank_jax.sampling's (HF semantics). Row b draws step t with
fold_in(key_b, t), where key_b is its own key when `rng` holds one key per row, and
fold_in(rng, b) when `rng` is one key. A row's draws depend only on its key and its own
logits, so with one key per row, batched sampling equals sampling each row alone with
its key; greedy decoding (temperature=0) needs no key and always equals it.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lowrank_jax.config import ModelConfig
from lowrank_jax.model import GPT
from lowrank_jax.sampling import SamplingConfig, sample
from lowrank_jax.validation import INT32_MAX, UserError, is_int, require


class Generation(NamedTuple):
    tokens: jax.Array   # int32 (B, max_new_tokens): new tokens, then eos_id (or 0) once a row stops
    lengths: jax.Array  # int32 (B,): new tokens per row, its EOS included


class Progress(NamedTuple):
    """The decode loop's own state, beside the model's (cache or token buffer)."""
    step: jax.Array        # tokens drawn so far
    last_B: jax.Array      # each row's newest token
    seen_BV: jax.Array     # tokens present in each row, prompt included (repetition penalty)
    tokens_BT: jax.Array
    lengths_B: jax.Array
    done_B: jax.Array      # the row has emitted eos_id


def generate(model: GPT, params, prompt, max_new_tokens: int = 64, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, repetition_penalty: float = 1.0, rng=None,
             eos_id: int | None = None, use_cache: bool = True) -> Generation:
    """Continues each prompt row by up to max_new_tokens tokens.

    `prompt`: an int (B, P) array, or a list of B token lists of any lengths. `rng`: one
    key, one key per row (shape (B,)), or None for jax.random.key(0); temperature=0 is
    greedy. Raises UserError for bad input.
    """
    require(isinstance(model, GPT),
            f"model={type(model).__name__} is not allowed; generate needs a GPT language model.")
    cfg = model.cfg.replace(deterministic=True)
    cfg.replace(mode="prefill")  # refuses a model that cannot decode (an encoder)
    sampling = SamplingConfig(temperature, top_k, top_p, repetition_penalty).check()
    rows = prompt_rows(prompt, cfg.vocab_size)
    require(is_int(max_new_tokens) and 1 <= max_new_tokens <= INT32_MAX,
            f"max_new_tokens={max_new_tokens!r} is not allowed; it must be an integer from 1 to "
            f"{INT32_MAX}.")
    longest = max(len(row) for row in rows)
    require(longest <= cfg.max_len,
            f"a prompt of {longest} tokens is longer than max_len={cfg.max_len}; shorten it "
            "(generation itself may run past max_len: the context slides).")
    require(cfg.max_len >= 2 or longest + max_new_tokens <= cfg.max_len,
            f"max_new_tokens={max_new_tokens} is not allowed with max_len={cfg.max_len}; a "
            "context of one token cannot slide.")
    require(eos_id is None or (is_int(eos_id) and 0 <= eos_id < cfg.vocab_size),
            f"eos_id={eos_id!r} is not allowed; it must be None or a token id in "
            f"[0, vocab_size={cfg.vocab_size}).")
    prompt_BP = np.zeros((len(rows), prompt_width(longest, cfg.max_len)), np.int32)
    for b, row in enumerate(rows):
        prompt_BP[b, :len(row)] = row
    lengths_B = np.array([len(row) for row in rows], np.int32)
    run = generate_cached if use_cache else generate_uncached
    # No token equals -1: a row without eos_id never stops early, and is filled with 0.
    eos = np.int32(-1 if eos_id is None else eos_id)
    # Only the temperature shapes the program (0 is argmax): changing the others needs no
    # new compilation.
    sampling_values = (np.int32(top_k), np.float32(top_p), np.float32(repetition_penalty))
    tokens_BT, new_lengths_B = run(params, prompt_BP, lengths_B, row_keys(rng, len(rows)), eos,
                                   sampling_values, cfg=cfg, temperature=sampling.temperature,
                                   max_new_tokens=max_new_tokens)
    return Generation(tokens_BT, new_lengths_B)


def prompt_rows(prompt, vocab_size: int) -> list[np.ndarray]:
    """The prompt as a list of 1-D int arrays, checked: some rows, none empty, ids in range."""
    is_array = isinstance(prompt, (np.ndarray, jax.Array))
    given = f"of shape {tuple(prompt.shape)}" if is_array else f"of type {type(prompt).__name__}"
    require(prompt.ndim == 2 if is_array else isinstance(prompt, (list, tuple)),
            f"prompt {given} is not allowed; it must be a (batch, length) array or a list of "
            "token lists.")
    rows = [np.asarray(row) for row in prompt]
    require(len(rows) > 0, "prompt has no rows; it needs at least one row of tokens.")
    for b, row in enumerate(rows):
        require(row.size > 0, f"prompt row {b} is empty; every row needs at least one token.")
        require(row.ndim == 1 and np.issubdtype(row.dtype, np.integer),
                f"prompt row {b} is not allowed; each row must be a sequence of integer token ids.")
        bad = row[(row < 0) | (row >= vocab_size)]
        if bad.size:
            raise UserError(f"prompt token {bad[0]} in row {b} is not allowed; token ids must be "
                              f"in [0, vocab_size={vocab_size}).")
    return rows


def prompt_width(longest: int, max_len: int) -> int:
    """The padded prompt width: the next power of two, so that prompts of similar lengths
    share one compiled program (at most twice the prefill work)."""
    return min(1 << (longest - 1).bit_length(), max_len)


def row_keys(rng, batch: int) -> jax.Array:
    """One typed key per row: rng's own when it has one per row, else fold_in(rng, row)."""
    rng = jax.random.key(0) if rng is None else jnp.asarray(rng)
    if not jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
        rng = jax.random.wrap_key_data(rng)  # a raw uint32 key (or keys) from jax.random.PRNGKey
    if rng.ndim == 0:
        return jax.vmap(jax.random.fold_in, (None, 0))(rng, jnp.arange(batch))
    require(rng.shape == (batch,),
            f"rng of shape {rng.shape} is not allowed with a prompt of {batch} rows; pass one key "
            "or one key per row.")
    return rng


STATIC = ("cfg", "temperature", "max_new_tokens")


@functools.partial(jax.jit, static_argnames=STATIC)
def generate_cached(params, prompt_BP, lengths_B, keys_B, eos, sampling_values, *, cfg: ModelConfig,
                    temperature: float, max_new_tokens: int):
    prefill, step = GPT(cfg.replace(mode="prefill")), GPT(cfg.replace(mode="step"))
    real_BP = jnp.arange(prompt_BP.shape[1]) < lengths_B[:, None]
    logits_BPV, state = prefill.apply({"params": params}, prompt_BP, real_BP, mutable=["cache"])

    def refill(cache, context_BS, full_B):
        """Full rows: the cache of their last `kept` tokens, re-prefilled; others unchanged."""
        kept_BK = context_BS[:, cfg.max_len - kept(cfg):]
        _, state = prefill.apply({"params": params}, kept_BK, mutable=["cache"])
        return jax.tree.map(lambda new, old: jnp.where(rows_mask(full_B, old), new, old),
                            state["cache"], cache)

    def next_logits(model_state, token_B):
        cache, context_BS = model_state
        full_B = cache["lengths"] == cfg.max_len
        cache = jax.lax.cond(full_B.any(), refill, lambda c, *_: c, cache, context_BS, full_B)
        context_BS = slide(context_BS, full_B, cfg.max_len)
        context_BS = context_BS.at[jnp.arange(len(token_B)), cache["lengths"]].set(token_B)
        logits_B1V, state = step.apply({"params": params, "cache": cache}, token_B[:, None],
                                       mutable=["cache"])
        return logits_B1V[:, 0], (state["cache"], context_BS)

    context_BS = jnp.zeros((prompt_BP.shape[0], cfg.max_len), jnp.int32)
    context_BS = context_BS.at[:, :prompt_BP.shape[1]].set(prompt_BP)
    return decode_loop(next_logits, (state["cache"], context_BS),
                       at_rows(logits_BPV, lengths_B - 1),
                       seen_tokens(prompt_BP, real_BP, cfg.vocab_size), keys_B,
                       SamplingConfig(temperature, *sampling_values), max_new_tokens, eos)


def kept(cfg: ModelConfig) -> int:
    """The tokens a full context keeps when it slides."""
    return cfg.max_len // 2


def slide(context_BS, full_B, max_len: int):
    """Full rows move their last max_len // 2 tokens to the front (the rest is stale)."""
    shifted_BS = jnp.roll(context_BS, -(max_len - max_len // 2), axis=1)
    return jnp.where(full_B[:, None], shifted_BS, context_BS)


def rows_mask(full_B, like):
    """full_B shaped to broadcast against a batch-first array."""
    return full_B.reshape(full_B.shape + (1,) * (like.ndim - 1))


@functools.partial(jax.jit, static_argnames=STATIC)
def generate_uncached(params, prompt_BP, lengths_B, keys_B, eos, sampling_values, *, cfg: ModelConfig,
                      temperature: float, max_new_tokens: int):
    model = GPT(cfg)
    batch, length = prompt_BP.shape
    # Causal: what lies past a row's length (padding, zeros) never reaches its last token.
    buffer_BS = jnp.zeros((batch, cfg.max_len), jnp.int32).at[:, :length].set(prompt_BP)

    def last_logits(buffer_BS, lengths_B):
        return at_rows(model.apply({"params": params}, buffer_BS), lengths_B - 1)

    def next_logits(state, token_B):
        buffer_BS, lengths_B = state
        full_B = lengths_B == cfg.max_len
        buffer_BS = slide(buffer_BS, full_B, cfg.max_len)
        lengths_B = jnp.where(full_B, kept(cfg), lengths_B)
        buffer_BS = buffer_BS.at[jnp.arange(batch), lengths_B].set(token_B)
        return last_logits(buffer_BS, lengths_B + 1), (buffer_BS, lengths_B + 1)

    real_BP = jnp.arange(length) < lengths_B[:, None]
    return decode_loop(next_logits, (buffer_BS, lengths_B), last_logits(buffer_BS, lengths_B),
                       seen_tokens(prompt_BP, real_BP, cfg.vocab_size), keys_B,
                       SamplingConfig(temperature, *sampling_values), max_new_tokens, eos)


def at_rows(x_BL, index_B):
    """x_BL[b, index_B[b]] for every row b."""
    return x_BL[jnp.arange(x_BL.shape[0]), index_B]


def seen_tokens(prompt_BP, real_BP, vocab_size: int):
    """bool (B, V): which tokens each prompt row contains."""
    one_hot_BPV = jax.nn.one_hot(prompt_BP, vocab_size, dtype=bool) & real_BP[..., None]
    return one_hot_BPV.any(axis=1)


def decode_loop(next_logits, model_state, logits_BV, seen_BV, keys_B, sampling, max_new_tokens,
                eos):
    """Draws from the prefill's logits, then feeds each draw back until every row is done.

    `next_logits(model_state, token_B) -> (logits_BV, model_state)` runs the model on one
    token a row. Returns (tokens_BT, lengths_B).
    """
    batch = logits_BV.shape[0]
    none_B = jnp.zeros((batch,), jnp.int32)
    start = Progress(step=jnp.int32(0), last_B=none_B, seen_BV=seen_BV,
                     tokens_BT=jnp.full((batch, max_new_tokens), fill_token(eos), jnp.int32),
                     lengths_B=none_B, done_B=none_B.astype(bool))
    progress = advance(start, logits_BV, keys_B, sampling, eos)

    def unfinished(carry):
        progress, _ = carry
        return (progress.step < max_new_tokens) & ~progress.done_B.all()

    def one_token(carry):
        progress, model_state = carry
        logits_BV, model_state = next_logits(model_state, progress.last_B)
        return advance(progress, logits_BV, keys_B, sampling, eos), model_state

    progress, _ = jax.lax.while_loop(unfinished, one_token, (progress, model_state))
    return progress.tokens_BT, progress.lengths_B


def advance(progress: Progress, logits_BV, keys_B, sampling, eos) -> Progress:
    """Draws each live row's next token; a stopped row gets the fill token and no length."""
    step_keys_B = jax.vmap(jax.random.fold_in, (0, None))(keys_B, progress.step)
    drawn_B = jax.vmap(functools.partial(sample_row, sampling=sampling))(step_keys_B, logits_BV,
                                                                         progress.seen_BV)
    live_B = ~progress.done_B
    token_B = jnp.where(live_B, drawn_B, fill_token(eos))
    rows_B = jnp.arange(token_B.shape[0])
    return Progress(step=progress.step + 1, last_B=token_B,
                    seen_BV=progress.seen_BV.at[rows_B, token_B].set(True),
                    tokens_BT=progress.tokens_BT.at[:, progress.step].set(token_B),
                    lengths_B=progress.lengths_B + live_B,
                    done_B=progress.done_B | (token_B == eos))


def fill_token(eos):
    """What a row holds after it stops: eos_id, or 0 without one."""
    return jnp.maximum(eos, 0)


def sample_row(key, logits_V, seen_V, sampling: SamplingConfig):
    """One row's draw, so that it depends on its own key and logits only, not on the batch."""
    return sample(key, logits_V[None], seen_V[None], sampling)[0]
