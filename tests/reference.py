"""Independent float64 NumPy references, written from the seeds' math (not from our modules).

Each takes the Flax parameter tree (converted to float64) so weights are shared exactly.
"""
import numpy as np

EPS = 1e-5


def f64(tree):
    if isinstance(tree, dict):
        return {k: f64(v) for k, v in tree.items()}
    return np.asarray(tree, np.float64)


def softmax(x, axis=-1):
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def layer_norm(p, x):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * p["scale"] + p["bias"]


def rms_norm(p, x):
    return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + EPS) * p["scale"]


def gelu(x):  # tanh approximation, as jax.nn.gelu's default
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


ACT = {"relu": lambda x: np.maximum(x, 0), "gelu": gelu}
NORM = {"layernorm": layer_norm, "rmsnorm": rms_norm}


def causal_softmax_attention(q, k, v, d_scale=None):
    """q, k (B, L, H, R), v (B, L, H, D) -> out (B, L, H, D), probs (B, H, L, L).
    Scores are divided by sqrt(d_scale), by default sqrt(R)."""
    scores = np.einsum("blhd,bshd->bhls", q, k) / np.sqrt(d_scale or q.shape[-1])
    length = q.shape[1]
    scores = np.where(np.tril(np.ones((length, length), bool)), scores, -np.inf)
    probs = softmax(scores)
    return np.einsum("bhls,bshd->blhd", probs, v), probs


def project_heads(p, x):
    out = np.einsum("ble,ehd->blhd", x, p["kernel"])
    return out + p["bias"] if "bias" in p else out


def merge_heads(p, o):
    out = np.einsum("blhd,hde->ble", o, p["kernel"])
    return out + p["bias"] if "bias" in p else out


def standard_attention(p, x, cfg):
    q, k, v = (project_heads(p[n], x) for n in ("query", "key", "value"))
    out, probs = causal_softmax_attention(q, k, v)
    return merge_heads(p["out"], out), probs


def deep_qkv_weight(p, name, temp, strict):
    """Seed 001: W[h] = softmax(A[h] @ B[h] / temp, over D) (* base[h] unless strict)."""
    W = softmax(np.einsum("her,hrd->hed", p[f"{name}_A"], p[f"{name}_B"]) / max(temp, 1e-6))
    return W if strict else p[f"{name}_base"] * W


def deep_qkv_attention(p, x, cfg):
    kw = cfg.attention_kwargs
    q, k, v = (np.einsum("ble,hed->blhd", x, deep_qkv_weight(p, n, kw["temp"], kw["strict"]))
               for n in ("query", "key", "value"))
    out, probs = causal_softmax_attention(q, k, v)
    return merge_heads(p["out"], out), probs


def lowrank_qk_attention(p, x, cfg):
    """Seed 000, unfolded: Q' = (x W_q + b_q) U, K' = (x W_k + b_k) U, scores / sqrt(d_k)."""
    q, k, v = (project_heads(p[n], x) for n in ("query", "key", "value"))
    out, probs = causal_softmax_attention(q @ p["U"], k @ p["U"], v, d_scale=cfg.d_head)
    return merge_heads(p["out"], out), probs


ATTENTION = {"standard": standard_attention, "deep_qkv": deep_qkv_attention,
             "lowrank_qk": lowrank_qk_attention}


def dense(p, x):
    out = x @ p["kernel"]
    return out + p["bias"] if "bias" in p else out


def lowrank_linear(p, x):
    """Seed 003: x W with W = U V^T."""
    return x @ (p["U"] @ p["V"].T)


def ffn_layer(p, x):
    return lowrank_linear(p, x) if "U" in p else dense(p, x)


def gpt(params, tokens, cfg):
    """Logits (B, L, V) of the GPT in float64, dropout off."""
    p = f64(params)
    length = tokens.shape[1]
    x = p["token_embed"]["embedding"][tokens] + p["pos_embed"][:length]
    norm = NORM[cfg.norm]
    for i in range(cfg.n_layers):
        b = p[f"block_{i}"]
        attn = lambda h: ATTENTION[cfg.attention](b["attention"], h, cfg)[0]
        ffn = lambda h: ffn_layer(b["ffn"]["down"], ACT[cfg.activation](ffn_layer(b["ffn"]["up"], h)))
        for f, n in ((attn, "norm1"), (ffn, "norm2")):
            if cfg.norm_position == "pre":
                x = x + f(norm(b[n], x))
            else:
                x = norm(b[n], x + f(x))
    x = norm(p["final_norm"], x)
    if cfg.tie_embeddings:
        return x @ p["token_embed"]["embedding"].T
    return dense(p["lm_head"], x)
