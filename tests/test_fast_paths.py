"""The GPU fast paths on a CPU: which path each config takes, the causal Linformer's Pallas
kernel (interpreted) against the einsum form, rematerialisation, and the GPU benchmark
plumbing. tests/test_gpu.py checks the same paths compiled on a GPU."""
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lowrank_jax import GPT, UserError
from lowrank_jax.attention import attention_path, core
from lowrank_jax.attention import linformer_ops as linformer

from conftest import small_config

EXAMPLES = {  # variant -> attention_kwargs of a config the fast path takes
    "standard": {},
    "deep_qkv": {},
    "lowrank_qk": {"r": 4},
    "linformer": {"block_size": 16, "block_slots": 4},
}


def gpu_sized(attention, kwargs, **changes):
    base = dict(attention=attention, attention_kwargs=kwargs, d_model=64, n_heads=4,
                max_len=64, dtype="bfloat16")
    return small_config(**{**base, **changes})


@pytest.mark.parametrize("attention", EXAMPLES)
def test_fast_path_only_on_a_gpu_in_half_precision(attention):
    cfg = gpu_sized(attention, EXAMPLES[attention])
    assert attention_path(cfg, backend="gpu") == "fast"
    assert attention_path(cfg.replace(dtype="float16"), backend="gpu") == "fast"
    assert attention_path(cfg.replace(dtype="float32"), backend="gpu") == "plain"
    assert attention_path(cfg, backend="cpu") == "plain"
    assert attention_path(cfg) == ("fast" if jax.default_backend() == "gpu" else "plain")


def by_lengths_stand_in(q, k, v, *, causal, scale, lengths_B):
    """cuDNN's contract on a CPU: each row's first lengths_B[b] tokens are its keys."""
    mask_BL = jnp.arange(q.shape[1])[None, :] < lengths_B[:, None]
    return core.softmax_attention(q, k, v, core.self_attention_mask(q.shape[1], causal,
                                                                    mask_BL), scale)[0]


@pytest.mark.parametrize("causal", [True, False])
def test_any_padding_mask_goes_to_cudnn_by_lengths_after_reordering_the_rows(monkeypatch,
                                                                            causal):
    """Holes, left padding, right padding and an all-padding row: on the real tokens, values
    and gradients equal the masked softmax's. tests/test_gpu.py runs the real cuDNN."""
    monkeypatch.setattr(core, "cudnn_attention", by_lengths_stand_in)
    q, k, v = (jax.random.normal(jax.random.key(i), (4, 8, 2, 4)) for i in range(3))
    mask = jnp.array([[1, 1, 0, 1, 1, 0, 1, 0],    # holes
                      [0, 0, 0, 1, 1, 1, 1, 1],    # left padding
                      [1, 1, 1, 1, 1, 0, 0, 0],    # right padding
                      [0, 0, 0, 0, 0, 0, 0, 0]], bool)

    def real(attend):
        def out(q, k, v):
            return attend(q, k, v) * mask[:, :, None, None]
        return out

    reordered = real(lambda q, k, v: core.padded_cudnn_attention(q, k, v, mask, causal=causal,
                                                                 scale=0.5))
    softmax = real(lambda q, k, v: core.softmax_attention(
        q, k, v, core.self_attention_mask(8, causal, mask), 0.5)[0])
    np.testing.assert_allclose(reordered(q, k, v), softmax(q, k, v), rtol=1e-5, atol=1e-6)
    weights = jax.random.normal(jax.random.key(3), v.shape)
    grads = [jax.grad(lambda q, k, v: (f(q, k, v) * weights).sum(), (0, 1, 2))(q, k, v)
             for f in (reordered, softmax)]
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.isfinite(core.padded_cudnn_attention(q, k, v, mask, causal=causal,
                                                   scale=0.5)).all()


def test_narrow_queries_are_zero_padded_where_jax_lacks_its_private_cudnn_binding(monkeypatch):
    """The binding lowrank_qk's narrow route needs is jax-internal: without it (a jax that
    moved it), Q' and K' are zero-padded to V's width and the scores stay the same."""
    def xla_in_place_of_cudnn(q, k, v, *, implementation, **kwargs):
        assert implementation == "cudnn" and q.shape[-1] == k.shape[-1] == v.shape[-1]
        return real(q, k, v, implementation="xla", **kwargs)

    real = jax.nn.dot_product_attention
    monkeypatch.setattr(core, "cudnn_fmha", None)
    monkeypatch.setattr(jax.nn, "dot_product_attention", xla_in_place_of_cudnn)
    q, k = (jax.random.normal(jax.random.key(i), (2, 8, 2, 3)) for i in range(2))
    v = jax.random.normal(jax.random.key(2), (2, 8, 2, 4))
    mask = core.self_attention_mask(8, True)
    np.testing.assert_allclose(core.cudnn_attention(q, k, v, causal=True, scale=0.5),
                               core.softmax_attention(q, k, v, mask, 0.5)[0], rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("changes,expected", [
    (dict(attention_kwargs={"block_size": 8, "block_slots": 2}), "plain"),   # block < 16
    (dict(attention_kwargs={"block_size": 16, "block_slots": 4}, d_model=96), "plain"),  # D 24
    (dict(attention_kwargs={"block_size": 32, "block_slots": 4}), "fast"),
    (dict(attention_kwargs={"block_size": 48, "block_slots": 3}, max_len=96), "fast"),
])
def test_causal_linformer_fast_path_needs_a_shape_the_kernel_takes(changes, expected):
    cfg = gpu_sized("linformer", {}, **changes)
    assert attention_path(cfg, backend="gpu") == expected


def test_cudnn_takes_head_widths_that_are_multiples_of_eight_up_to_128():
    for d_model, heads, expected in ((96, 4, "fast"), (80, 8, "plain"), (272, 2, "plain")):
        cfg = gpu_sized("standard", {}, d_model=d_model, n_heads=heads)
        assert attention_path(cfg, backend="gpu") == expected, (d_model, heads)


KERNEL_CASES = [  # block, slots, length, heads of their own E (sharing none), padded
    (16, 4, 64, False, False),
    (32, 2, 80, True, True),     # the last block partial, per-head E, padding
    (16, 16, 48, False, True),   # every key of a block kept as a slot
    (48, 3, 96, False, False),   # a query tile (16) smaller than the block
]


@pytest.mark.parametrize("block,slots,length,per_head,padded", KERNEL_CASES)
def test_causal_kernel_equals_the_einsum_form(block, slots, length, per_head, padded):
    """Interpreted on the CPU, in float32: values and the gradients of q, k, v, E and F."""
    B, H, D = 2, 2, 16
    keys = jax.random.split(jax.random.key(block * length), 7)
    q, k, v = (jax.random.normal(kk, (B, length, H, D)) for kk in keys[:3])
    rows = -(-length // block) * block
    E, F = (jax.random.uniform(kk, ((H,) if per_head else ()) + (rows, slots), minval=-0.3,
                               maxval=0.3) for kk in keys[3:5])
    real = (jax.random.uniform(keys[5], (B, length)) > 0.3) if padded else None
    cotangent = jax.random.normal(keys[6], (B, length, H, D))

    def hide(x):  # what the module does to padded keys and values before either path
        return x if real is None else x * real[:, :, None, None]

    def fast(q, k, v, E, F):
        return linformer.causal_attention_fast(q, hide(k), hide(v), E, F, block, slots,
                                               D ** -0.5, real, interpret=True)

    def plain(q, k, v, E, F):
        return linformer.causal_attention(q, hide(k), hide(v), E, F, block, slots, D ** -0.5,
                                          real)[0]

    out_fast, vjp_fast = jax.vjp(fast, q, k, v, E, F)
    out_plain, vjp_plain = jax.vjp(plain, q, k, v, E, F)
    np.testing.assert_allclose(out_fast, out_plain, rtol=1e-5, atol=1e-5)
    for a, b in zip(vjp_fast(cotangent), vjp_plain(cotangent), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.abs(b).max()))


def test_causal_kernel_never_sees_the_future():
    B, H, D, L, block = 1, 1, 16, 64, 16
    keys = jax.random.split(jax.random.key(5), 4)
    q, k, v = (jax.random.normal(kk, (B, L, H, D)) for kk in keys[:3])
    E = jax.random.uniform(keys[3], (L, 4))

    def attend(k, v):
        return linformer.causal_attention_fast(q, k, v, E, E, block, 4, 0.25, interpret=True)

    base = attend(k, v)
    for cut in (1, 15, 16, 17, 40):
        noise = jax.random.normal(jax.random.key(cut), (B, L - cut, H, D))
        changed = attend(k.at[:, cut:].add(noise), v.at[:, cut:].add(noise))
        np.testing.assert_array_equal(base[:, :cut], changed[:, :cut])
        assert not np.allclose(base[:, cut:], changed[:, cut:])


@pytest.mark.parametrize("fold", [2, 8])
def test_queries_cut_into_chunks_give_the_same_bidirectional_attention(fold):
    """The bidirectional fast path's query folding, with the einsum attention in cuDNN's
    place: the same output and the same gradients (the repeated keys' ones summed)."""
    B, L, K, H, D = 2, 64, 8, 2, 16
    keys = jax.random.split(jax.random.key(fold), 4)
    q = jax.random.normal(keys[0], (B, L, H, D))
    k, v = (jax.random.normal(kk, (B, K, H, D)) for kk in keys[1:3])
    cotangent = jax.random.normal(keys[3], (B, L, H, D))

    def attend(q, k, v):
        return linformer.core.softmax_attention(q, k, v, True, 0.25)[0]

    whole, vjp_whole = jax.vjp(attend, q, k, v)
    chunked, vjp_chunked = jax.vjp(
        lambda *a: linformer.attend_in_chunks(attend, *a, fold), q, k, v)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
    for a, b in zip(vjp_chunked(cotangent), vjp_whole(cotangent), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch,heads,length,fold", [
    (16, 16, 4096, 1), (4, 16, 16384, 1), (2, 16, 32768, 2), (1, 16, 65536, 4),
    (1, 12, 1000, 8), (1, 1, 6, 2)])   # the fold divides the length, so it may stop short
def test_the_query_fold_makes_64_row_head_pairs(batch, heads, length, fold):
    assert linformer.query_fold(batch, heads, length) == fold


def test_remat_per_block_changes_nothing_but_memory():
    cfg = small_config(attention="linformer", attention_kwargs={"block_size": 4,
                                                                "block_slots": 2})
    tokens = jax.random.randint(jax.random.key(0), (2, 16), 0, cfg.vocab_size)
    params = GPT(cfg).init(jax.random.key(1), tokens)["params"]

    def loss_and_grads(cfg):
        loss = lambda p: jnp.mean(GPT(cfg).apply({"params": p}, tokens) ** 2)  # noqa: E731
        return jax.jit(jax.value_and_grad(loss))(params)

    plain, remat = loss_and_grads(cfg), loss_and_grads(cfg.replace(remat="block"))
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(remat), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    def checkpoints(cfg):  # jax.checkpoint's primitive: remat2, or checkpoint in newer JAX
        text = str(jax.make_jaxpr(lambda p: GPT(cfg).apply({"params": p}, tokens))(params))
        return len(re.findall(r"\b(?:remat2|checkpoint)\[", text))

    assert checkpoints(cfg.replace(remat="block")) == cfg.n_layers
    assert checkpoints(cfg) == 0


def test_remat_must_be_a_known_mode():
    with pytest.raises(UserError, match=r"remat='layers' is not allowed.*'none', 'block'"):
        small_config(remat="layers")


def test_attention_benchmark_writes_json_markdown_and_png(tmp_path, capsys):
    """On a CPU the cuDNN and kernel rows fail (no GPU) and say so; the plain ones are timed."""
    from train import bench

    bench.main(["bench", "attention", "--lengths", "32", "--tokens", "64",
                "--out", str(tmp_path)])
    stem = tmp_path / f"attention_{jax.devices()[0].device_kind.lower().split()[0]}"
    result = json.loads(stem.with_suffix(".json").read_text())
    assert stem.with_suffix(".md").exists() and stem.with_suffix(".png").stat().st_size > 0
    assert {"device", "jax", "jaxlib", "cudnn", "date"} <= set(result["machine"])
    assert result["command"].startswith("python -m train.bench attention --lengths 32")
    rows = result["results"]
    assert {r["variant"] for r in rows} >= {"standard", "lowrank_qk r=16",
                                            "linformer causal b=128 c=8", "linformer k=256"}
    for r in rows:
        assert {"variant", "path", "L", "ms", "tflops"} <= set(r)
        if r["path"] == "plain":
            assert r["ms"] > 0 and r["tflops"] > 0
        elif jax.default_backend() != "gpu":
            assert r["ms"] is None and r["error"]
    assert "written:" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["attention", "--lengths", "0"], "--lengths=0 is not allowed; it must be from 1 to "),
    (["attention", "--lengths", "64,-5"], "--lengths=-5 is not allowed"),
    (["attention", "--tokens", "-1"], "--tokens=-1 is not allowed"),
    (["abc-sort", "--repeats", "0"], "--repeats=0 is not allowed"),
    (["abc-variants", "--seeds", "1,-2"], "--seeds=-2 is not allowed; seeds go from 0 to "),
])
def test_benchmark_counts_are_refused_in_one_sentence(tmp_path, capsys, args, message):
    from train import bench

    with pytest.raises(SystemExit) as stop:
        bench.main(["bench", *args, "--out", str(tmp_path / "b")])
    assert stop.value.code == 2 and not (tmp_path / "b").exists()
    assert message in capsys.readouterr().err


def test_the_step_benchmark_says_where_the_time_goes():
    """A trace's ops go to the parts their metadata names (on a CPU the ops run on host
    threads), and the parts with 'rest' add up to the step's time."""
    from train import perf

    def step(x):
        with jax.named_scope("attention"):
            x = jnp.tanh(x @ x)
        with jax.named_scope("ffn"):
            x = jnp.exp(x @ x.T)
        with jax.named_scope("optimizer"):
            return x * 0.5 + 1.0

    x = jax.random.normal(jax.random.key(0), (256, 256))
    compiled = jax.jit(step).lower(x).compile()
    compiled(x).block_until_ready()
    parts = perf.breakdown(compiled, lambda: compiled(x), step_ms=100.0)
    assert parts["attention"] > 0 and parts["mlp"] > 0 and parts["optimizer"] > 0
    assert parts["lm head + loss"] == 0 and sum(parts.values()) == pytest.approx(100.0)
    assert perf.part_of("jit(run)/while/body/transpose(jvp(GPT))/block_1/attention/dot") == "attention"
    assert perf.part_of("jit(run)/while/body/jvp(loss)/reduce_max") == "lm head + loss"


def test_benchmarks_default_to_a_fresh_folder_under_runs():
    from train.bench import fresh_run_folder

    assert fresh_run_folder().startswith("runs/bench-")
